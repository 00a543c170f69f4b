// Shared pieces of the root traffic tests: fixture paths, backends, the catalog of the test service.
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ExecutionContext } from 'ava';
import { CatalogBuilder } from '../helpers/catalog.js';
import { type DaemonHandle, removeDir, startDaemon } from '../helpers/daemon.js';
import { resolveTool } from '../../src/balancer/drivers/exec.js';
import { createTopology, sh, startIn, type Topology, uniquePrefix } from '../helpers/netns.js';

export const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}.js`, import.meta.url));

export const VIP = '10.0.9.2';

export async function startBackends(topo: Topology): Promise<ChildProcess[]> {
  return Promise.all(topo.backends.map((b, i) => startIn(b.ns, fixture('echo-server'), [`b${i + 1}`, '80'])));
}

export async function addVip(topo: Topology, vip = VIP): Promise<void> {
  await sh('ip', ['-n', topo.host, 'addr', 'add', `${vip}/32`, 'dev', 'lo']);
}

/** The service `web`: VIP 10.0.9.2, tcp+udp 80, published 8080; one task per listed backend. */
export function webCatalog(topo: Topology, backends: number[]): CatalogBuilder {
  const c = new CatalogBuilder()
    .network('n', '10.0.9.0/24')
    .service({ name: 'web', vips: { n: VIP }, ports: [{ protocol: 'tcp', target: 80, published: 8080 }, { protocol: 'udp', target: 80, published: 8080 }] });
  for (const i of backends) c.task('web', { n: topo.backends[i - 1]!.ip }, 'healthy', `b${i}`);
  return c;
}

export interface Burst {
  counts: Record<string, number>;
  errors: number;
}

/** N fresh connections from namespace `ns` (from its address `source` when given). */
export function burst(ns: string, proto: 'tcp' | 'udp', host: string, port: number, n: number, source?: string): Promise<Burst> {
  return new Promise((resolve, reject) => {
    const c = spawn('ip', ['netns', 'exec', ns, process.execPath, fixture('client'), 'burst', proto, host, String(port), String(n), ...(source ? [source] : [])]);
    let out = '';
    let err = '';
    c.stdout.on('data', (b) => (out += b));
    c.stderr.on('data', (b) => (err += b));
    c.on('close', (code) => (code === 0 ? resolve(JSON.parse(out) as Burst) : reject(new Error(`client: ${err}`))));
  });
}

export interface Held {
  child: ChildProcess & { lines: string[] };
  backend: string;
  /** Sends a line and resolves with the backend's echo, or rejects if the connection is gone. */
  ping(text: string): Promise<string>;
}

export async function hold(ns: string, host: string, port: number): Promise<Held> {
  const child = await startIn(ns, fixture('client'), ['hold', host, String(port)]);
  let cursor = 0; // lines before it are consumed
  const waitLine = (re: RegExp, timeoutMs = 3000): Promise<string> =>
    new Promise((resolve, reject) => {
      const scan = () => {
        while (cursor < child.lines.length) {
          const line = child.lines[cursor++]!;
          if (re.test(line)) return line;
        }
        return undefined;
      };
      const now = scan();
      if (now !== undefined) return resolve(now);
      const timer = setTimeout(() => (child.off('line', on), reject(new Error(`no line ${re} within ${timeoutMs} ms`))), timeoutMs);
      const on = () => {
        const l = scan();
        if (l === undefined) return;
        clearTimeout(timer);
        child.off('line', on);
        resolve(l);
      };
      child.on('line', on);
    });
  const greeting = await waitLine(/^reply |^closed|^error/);
  if (!greeting.startsWith('reply')) throw new Error(`hold ${host}:${port}: ${greeting}`);
  return {
    child,
    backend: greeting.slice('reply '.length),
    async ping(text) {
      const p = waitLine(new RegExp(`^reply \\S+ ${text}$|^closed|^error`));
      child.stdin!.write(`${text}\n`);
      const line = await p;
      if (!line.startsWith('reply')) throw new Error(`held connection: ${line}`);
      return line.split(' ')[1]!;
    },
  };
}

export async function nftRuleset(ns: string): Promise<string> {
  return sh('ip', ['netns', 'exec', ns, resolveTool('nft'), 'list', 'ruleset']);
}

/** A daemon on the nftables dataplane in the topology's host namespace, stopped and cleaned up with the test. */
export async function nftablesDaemon(t: ExecutionContext, topo: Topology, extraArgs: string[] = []): Promise<DaemonHandle> {
  const d = await startDaemon({ wrap: ['ip', 'netns', 'exec', topo.host], args: ['--dataplane', 'nftables', ...extraArgs] });
  t.teardown(async () => {
    await d.stop();
    await d.cli('dataplane', 'cleanup');
    removeDir(d.dataDir);
  });
  return d;
}

/** A topology of `backends` backends and the processes started in it, all removed with the test. */
export async function testTopology(t: ExecutionContext, backends: number): Promise<{ topo: Topology; procs: ChildProcess[] }> {
  const topo = await createTopology(uniquePrefix(), backends);
  const procs: ChildProcess[] = [];
  t.teardown(async () => {
    for (const p of procs) p.kill('SIGKILL');
    await topo.destroy();
  });
  return { topo, procs };
}

/**
 * Waits (up to 5 s) until 20 TCP connections from `ns` to [host]:port split 10/10 over b1 and b2, the
 * two backends of a topology: the dataplane may still be applying the change that made the unit.
 */
export async function spreadsEvenly(t: ExecutionContext, ns: string, host: string, port: number): Promise<void> {
  let last: unknown;
  for (let i = 0; i < 50; i++) {
    const r = await burst(ns, 'tcp', host, port, 20);
    last = r;
    if (r.errors === 0 && r.counts.b1 === 10 && r.counts.b2 === 10) {
      t.pass();
      return;
    }
    await new Promise((res) => setTimeout(res, 100));
  }
  t.fail(`${host} port ${port} never spread 10/10 over b1 and b2: last ${JSON.stringify(last)}`);
}
