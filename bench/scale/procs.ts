// What the bench starts (daemons, etcd, temp dirs), and their end: everything is killed and
// removed on the way out, whether the bench finishes, throws or is interrupted.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, tempDir } from '../../test/helpers/daemon.js';
import { freePort } from '../../test/helpers/etcd.js';

const CLI = join(ROOT, 'dist/src/cli.js');

export class Resources {
  private readonly procs = new Set<ChildProcess>();
  private readonly dirs = new Set<string>();

  constructor() {
    // Last resort: synchronous kills and removals when the process exits any other way.
    process.once('exit', () => this.cleanupSync());
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.once(sig, () => {
        process.stderr.write(`\n${sig}: stopping what the bench started\n`);
        this.cleanupSync();
        process.exit(130);
      });
    }
  }

  dir(prefix: string): string {
    const d = tempDir(prefix);
    this.dirs.add(d);
    return d;
  }

  track(p: ChildProcess): void {
    this.procs.add(p);
    p.once('exit', () => this.procs.delete(p));
  }

  /** Kills every process still running (SIGKILL, waiting for each) and removes the temp dirs. */
  async cleanup(): Promise<void> {
    await Promise.all(
      [...this.procs].map(
        (p) =>
          new Promise<void>((r) => {
            if (p.exitCode !== null || p.signalCode !== null) return r();
            p.once('exit', () => r());
            p.kill('SIGKILL');
          }),
      ),
    );
    this.cleanupSync();
  }

  private cleanupSync(): void {
    for (const p of this.procs) p.kill('SIGKILL');
    this.procs.clear();
    for (const d of this.dirs) rmSync(d, { recursive: true, force: true });
    this.dirs.clear();
  }
}

export interface Daemon {
  proc: ChildProcess;
  pid: number;
  dataDir: string;
  api: string;
  metrics: string;
  dnsPort: number;
  logs: string[];
  args: string[];
}

export interface DaemonPorts {
  api: number;
  metrics: number;
  dns: number;
}

export async function freePorts(): Promise<DaemonPorts> {
  return { api: await freePort(), metrics: await freePort(), dns: await freePort() };
}

/** Spawns `vipdns serve` (dataplane none) on the given ports; does not wait for it. */
export function spawnDaemon(res: Resources, dataDir: string, ports: DaemonPorts, extra: string[] = []): Daemon {
  const args = [
    CLI, 'serve',
    '--data-dir', dataDir,
    '--dns-listen', `127.0.0.1:${ports.dns}`,
    '--api-listen', `127.0.0.1:${ports.api}`,
    '--metrics-listen', `127.0.0.1:${ports.metrics}`,
    '--dataplane', 'none',
    '--log-level', 'warn',
    ...extra,
  ];
  // No upstreams: the bench only asks names the catalog holds, and never forwards off the host.
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, VIPDNS_RESOLV_CONF: '/nonexistent/vipdns-bench-resolv.conf' } });
  res.track(proc);
  const logs: string[] = [];
  const keep = (c: Buffer): void => {
    logs.push(c.toString());
    if (logs.length > 200) logs.shift();
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  return { proc, pid: proc.pid!, dataDir, api: `http://127.0.0.1:${ports.api}`, metrics: `http://127.0.0.1:${ports.metrics}`, dnsPort: ports.dns, logs, args };
}

/** Milliseconds from now until /readyz answers 200; throws after `timeoutMs` or if the daemon exits. */
export async function waitReady(d: Daemon, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    if (d.proc.exitCode !== null || d.proc.signalCode !== null) throw new Error(`daemon exited (${d.proc.exitCode ?? d.proc.signalCode}) before ready:\n${d.logs.join('').slice(-2000)}`);
    try {
      const r = await fetch(`${d.metrics}/readyz`, { signal: AbortSignal.timeout(2000) });
      await r.text();
      if (r.status === 200) return performance.now() - t0;
    } catch {
      /* not listening yet */
    }
    if (performance.now() - t0 > timeoutMs) throw new Error(`daemon not ready after ${(timeoutMs / 1000).toFixed(0)} s`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** SIGTERM, then SIGKILL if it has not exited in `graceMs`. */
export async function stopDaemon(d: Daemon, graceMs = 30_000): Promise<void> {
  if (d.proc.exitCode !== null || d.proc.signalCode !== null) return;
  const exited = new Promise<void>((r) => d.proc.once('exit', () => r()));
  d.proc.kill('SIGTERM');
  const timer = setTimeout(() => d.proc.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Resident set size of a process, in bytes (VmRSS of /proc/PID/status). */
export function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** The daemon's longest event-loop stall since the previous scrape, in ms (undefined if not exported). */
export async function scrapeStallMs(d: Daemon): Promise<number | undefined> {
  const r = await fetch(`${d.metrics}/metrics`, { signal: AbortSignal.timeout(10_000) });
  const m = /^vipdns_event_loop_delay_max_seconds (\S+)$/m.exec(await r.text());
  return m ? Number(m[1]) * 1000 : undefined;
}

export interface Etcd {
  proc: ChildProcess;
  /** etcd://127.0.0.1:PORT, for `vipdns serve --store` */
  url: string;
}

/** A throwaway single-member etcd (Debian's etcd-server) on loopback, in a temp dir. */
export async function startEtcd(res: Resources, timeoutMs = 30_000): Promise<Etcd> {
  const dir = res.dir('vipdns-bench-etcd-');
  const client = `http://127.0.0.1:${await freePort()}`;
  const peer = `http://127.0.0.1:${await freePort()}`;
  const logs: string[] = [];
  const proc = spawn(
    'etcd',
    ['--name', 'bench', '--data-dir', join(dir, 'data'), '--listen-client-urls', client, '--advertise-client-urls', client, '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `bench=${peer}`, '--log-level', 'warn'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  res.track(proc);
  proc.on('error', (e) => logs.push(String(e)));
  proc.stdout!.on('data', (c: Buffer) => logs.push(c.toString()));
  proc.stderr!.on('data', (c: Buffer) => logs.push(c.toString()));
  const t0 = performance.now();
  for (;;) {
    if (proc.exitCode !== null || logs.some((l) => l.includes('ENOENT'))) throw new Error(`etcd did not start (apt-get install -y etcd-server):\n${logs.join('').slice(-2000)}`);
    try {
      const r = await fetch(`${client}/health`, { signal: AbortSignal.timeout(1000) });
      if (r.ok && ((await r.json()) as { health?: string }).health === 'true') return { proc, url: `etcd://127.0.0.1:${new URL(client).port}` };
    } catch {
      /* not up yet */
    }
    if (performance.now() - t0 > timeoutMs) throw new Error(`etcd not healthy after ${timeoutMs / 1000} s:\n${logs.join('').slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
