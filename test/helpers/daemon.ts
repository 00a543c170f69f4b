// Starts the real daemon (`node dist/src/cli.js serve`) on ephemeral ports and talks to it
// with the real CLI and the real dig.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { onLines } from './lines.js';

export const ROOT = resolve(fileURLToPath(import.meta.url), '../../../..');
export const CLI = join(ROOT, 'dist/src/cli.js');

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return new Promise((res) => {
    execFile(cmd, args, { timeout: opts.timeoutMs ?? 30_000, env: opts.env ?? process.env, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      res({ code, stdout, stderr });
    });
  });
}

export interface DaemonHandle {
  proc: ChildProcess;
  dataDir: string;
  dnsPort: number;
  dnsHost: string;
  api: string;
  metrics: string;
  logs: string[];
  cli(...args: string[]): Promise<RunResult>;
  /** The CLI's stdout; throws with its stderr when it exits non-zero. */
  ok(...args: string[]): Promise<string>;
  dig(...args: string[]): Promise<string>;
  kill9(): Promise<void>;
  stop(): Promise<number | null>;
}

export interface StartOptions {
  dataDir?: string;
  args?: string[];
  wrap?: string[]; // e.g. ['ip', 'netns', 'exec', 'ns'] to run inside a namespace
  dnsListen?: string;
  /** Default: TCP on loopback (tests fetch() it); 'default': the daemon's own default, a unix socket. */
  apiListen?: string;
  env?: NodeJS.ProcessEnv;
}

export function tempDir(prefix = 'vipdns-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export async function startDaemon(opts: StartOptions = {}): Promise<DaemonHandle> {
  const dataDir = opts.dataDir ?? tempDir();
  const args = [
    CLI,
    'serve',
    '--data-dir',
    dataDir,
    '--dns-listen',
    opts.dnsListen ?? '127.0.0.1:0',
    ...(opts.apiListen === 'default' ? [] : ['--api-listen', opts.apiListen ?? '127.0.0.1:0']),
    '--metrics-listen',
    '127.0.0.1:0',
    '--dataplane',
    'none',
    ...(opts.args ?? []),
  ];
  const wrap = opts.wrap ?? [];
  const proc = spawn(wrap.length ? wrap[0]! : process.execPath, wrap.length ? [...wrap.slice(1), process.execPath, ...args] : args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    // Tests never forward to the host's real resolvers: no upstreams unless a test names them.
    env: { ...process.env, VIPDNS_RESOLV_CONF: '/nonexistent/vipdns-test-resolv.conf', ...opts.env },
  });
  const logs: string[] = [];
  const serving = new Promise<Record<string, string>>((resolveP, rejectP) => {
    onLines(proc.stdout!, (line) => {
      logs.push(line);
      try {
        const j = JSON.parse(line) as Record<string, string>;
        if (j.msg === 'vipdns serving') resolveP(j);
      } catch {
        /* not JSON */
      }
    });
    proc.stderr!.on('data', (c: Buffer) => logs.push(c.toString()));
    proc.once('exit', (code) => rejectP(new Error(`daemon exited with ${code} before serving:\n${logs.join('\n')}`)));
    setTimeout(() => rejectP(new Error(`daemon did not start in 20 s:\n${logs.join('\n')}`)), 20_000).unref();
  });
  const info = await serving;
  const dnsText = info.dns!;
  const colon = dnsText.lastIndexOf(':');
  const dnsHost = dnsText.slice(0, colon);
  const dnsPort = Number(dnsText.slice(colon + 1));
  const api = info.api!;
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  const cli = (...a: string[]): Promise<RunResult> =>
    wrap.length ? run(wrap[0]!, [...wrap.slice(1), process.execPath, CLI, '--api', api, ...a]) : run(process.execPath, [CLI, '--api', api, ...a]);
  return {
    proc,
    dataDir,
    dnsPort,
    dnsHost,
    api,
    metrics: info.metrics!,
    logs,
    cli,
    ok: async (...a: string[]) => {
      const r = await cli(...a);
      if (r.code !== 0) throw new Error(`vipdns ${a.join(' ')} failed (${r.code}): ${r.stderr}`);
      return r.stdout;
    },
    dig: async (...a: string[]) => {
      const r = await run('dig', [`@${dnsHost}`, '-p', String(dnsPort), '+time=2', '+tries=1', ...a]);
      return r.stdout;
    },
    kill9: async () => {
      proc.kill('SIGKILL');
      await exited;
    },
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      return exited;
    },
  };
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export function shortAnswers(digOutput: string): string[] {
  return digOutput.split('\n').map((l) => l.trim()).filter(Boolean);
}
