// A real etcd (Debian's etcd-server) on random loopback ports, one per test, in a temp dir.
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { removeDir, tempDir } from './daemon.js';

export interface EtcdHandle {
  /** http://127.0.0.1:PORT */
  endpoint: string;
  /** etcd://127.0.0.1:PORT, for `vipdns serve --store` */
  url: string;
  port: number;
  dir: string;
  logs: string[];
  /** SIGKILL (keeps the data dir, so start() brings the same cluster back). */
  kill(): Promise<void>;
  start(): Promise<void>;
  /** Kill and remove the data dir. */
  destroy(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

/** A free port is only free until someone else binds it: a start that lost that race tries new ports. */
export async function startEtcd(): Promise<EtcdHandle> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startEtcdOnce();
    } catch (e) {
      if (attempt >= 3 || !/address already in use/.test((e as Error).message)) throw e;
    }
  }
}

async function startEtcdOnce(): Promise<EtcdHandle> {
  const dir = tempDir('vipdns-etcd-');
  const port = await freePort();
  const peer = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const peerUrl = `http://127.0.0.1:${peer}`;
  const logs: string[] = [];
  let proc: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  const start = async (): Promise<void> => {
    const args = [
      '--name', 'default',
      '--data-dir', join(dir, 'data'),
      '--listen-client-urls', endpoint,
      '--advertise-client-urls', endpoint,
      '--listen-peer-urls', peerUrl,
      '--initial-advertise-peer-urls', peerUrl,
      '--initial-cluster', `default=${peerUrl}`,
      '--log-level', 'warn',
    ];
    const p = spawn('etcd', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    proc = p;
    p.stdout!.on('data', (c: Buffer) => logs.push(c.toString()));
    p.stderr!.on('data', (c: Buffer) => logs.push(c.toString()));
    exited = new Promise((r) => p.once('exit', () => r()));
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (p.exitCode !== null) throw new Error(`etcd exited (${p.exitCode}):\n${logs.join('')}`);
      try {
        const r = await fetch(`${endpoint}/health`);
        if (r.ok && ((await r.json()) as { health?: string }).health === 'true') return;
      } catch {
        /* not up yet */
      }
      if (Date.now() > deadline) throw new Error(`etcd did not become healthy in 20 s:\n${logs.join('')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const kill = async (): Promise<void> => {
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL');
      await exited;
    }
  };
  try {
    await start();
  } catch (e) {
    await kill();
    removeDir(dir);
    throw e;
  }
  return {
    endpoint,
    url: `etcd://127.0.0.1:${port}`,
    port,
    dir,
    logs,
    kill,
    start,
    destroy: async () => {
      await kill();
      removeDir(dir);
    },
  };
}

export interface EtcdCluster {
  /** http://127.0.0.1:PORT of each member */
  endpoints: string[];
  /** etcd://h1,h2,h3 for `vipdns serve --store` */
  url: string;
  /** Index of the member that leads now (asked of the live members). */
  leader(): Promise<number>;
  /** SIGKILL one member (its data dir stays: start() brings it back). */
  kill(i: number): Promise<void>;
  start(i: number): Promise<void>;
  /** Process ids of the live members (for CPU readings). */
  pids(): number[];
  destroy(): Promise<void>;
}

/** A real n-member etcd cluster on loopback ports, in a temp dir. */
export async function startEtcdCluster(n = 3, onSpawn?: (p: ChildProcess) => void): Promise<EtcdCluster> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startClusterOnce(n, onSpawn);
    } catch (e) {
      if (attempt >= 3 || !/address already in use/.test((e as Error).message)) throw e;
    }
  }
}

async function startClusterOnce(n: number, onSpawn?: (p: ChildProcess) => void): Promise<EtcdCluster> {
  const dir = tempDir('vipdns-etcd-cluster-');
  const members: Array<{ name: string; client: string; peer: string; proc?: ChildProcess; exited: Promise<void>; logs: string[] }> = [];
  for (let i = 0; i < n; i++) members.push({ name: `m${i}`, client: `http://127.0.0.1:${await freePort()}`, peer: `http://127.0.0.1:${await freePort()}`, exited: Promise.resolve(), logs: [] });
  const initial = members.map((m) => `${m.name}=${m.peer}`).join(',');
  const spawnMember = (i: number): void => {
    const m = members[i]!;
    const p = spawn('etcd', ['--name', m.name, '--data-dir', join(dir, m.name), '--listen-client-urls', m.client, '--advertise-client-urls', m.client, '--listen-peer-urls', m.peer, '--initial-advertise-peer-urls', m.peer, '--initial-cluster', initial, '--initial-cluster-state', 'new', '--initial-cluster-token', dir, '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
    m.proc = p;
    onSpawn?.(p);
    p.stdout!.on('data', (c: Buffer) => m.logs.push(c.toString()));
    p.stderr!.on('data', (c: Buffer) => m.logs.push(c.toString()));
    m.exited = new Promise((r) => p.once('exit', () => r()));
  };
  const healthy = async (i: number): Promise<void> => {
    const m = members[i]!;
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (m.proc!.exitCode !== null) throw new Error(`etcd ${m.name} exited (${m.proc!.exitCode}):\n${m.logs.join('')}`);
      try {
        const r = await fetch(`${m.client}/health`, { signal: AbortSignal.timeout(1000) });
        if (r.ok && ((await r.json()) as { health?: string }).health === 'true') return;
      } catch {
        /* not up yet */
      }
      if (Date.now() > deadline) throw new Error(`etcd ${m.name} not healthy in 30 s:\n${m.logs.join('')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const kill = async (i: number): Promise<void> => {
    const p = members[i]!.proc;
    if (p && p.exitCode === null && p.signalCode === null) {
      p.kill('SIGKILL');
      await members[i]!.exited;
    }
  };
  const destroy = async (): Promise<void> => {
    for (let i = 0; i < n; i++) await kill(i);
    removeDir(dir);
  };
  try {
    for (let i = 0; i < n; i++) spawnMember(i);
    await Promise.all(members.map((_, i) => healthy(i)));
  } catch (e) {
    await destroy();
    throw e;
  }
  return {
    endpoints: members.map((m) => m.client),
    url: `etcd://${members.map((m) => new URL(m.client).host).join(',')}`,
    async leader() {
      for (const m of members) {
        if (!m.proc || m.proc.exitCode !== null || m.proc.signalCode !== null) continue;
        try {
          const r = await fetch(`${m.client}/v3/maintenance/status`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(1000) });
          const s = (await r.json()) as { header?: { member_id?: string }; leader?: string };
          if (!s.leader || s.leader === '0') continue;
          // Each member's status names the leader's id; find whose own id that is.
          for (const [j, other] of members.entries()) {
            if (!other.proc || other.proc.exitCode !== null || other.proc.signalCode !== null) continue;
            const o = (await (await fetch(`${other.client}/v3/maintenance/status`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(1000) })).json()) as { header?: { member_id?: string } };
            if (o.header?.member_id === s.leader) return j;
          }
        } catch {
          /* that member is down or electing: ask the next */
        }
      }
      throw new Error('no etcd member knows a leader');
    },
    kill,
    pids: () => members.filter((m) => m.proc && m.proc.exitCode === null && m.proc.signalCode === null).map((m) => m.proc!.pid!),
    async start(i) {
      spawnMember(i);
      await healthy(i);
    },
    destroy,
  };
}
