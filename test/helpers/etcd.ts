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
