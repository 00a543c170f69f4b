// Network namespaces for root tests. Every name starts with `vipdns-t` and is unique per run; nothing
// here ever touches the namespace the tests run in (all commands are `ip -n NS` / `ip netns exec NS`).
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { onLines } from './lines.js';

const pexec = promisify(execFile);

export async function sh(cmd: string, args: string[], input?: string): Promise<string> {
  if (input === undefined) {
    const { stdout } = await pexec(cmd, args, { maxBuffer: 256 * 1024 * 1024 });
    return stdout;
  }
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args);
    let out = '';
    let err = '';
    c.stdout.on('data', (b) => (out += b));
    c.stderr.on('data', (b) => (err += b));
    c.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')}: exit ${code}: ${err}`))));
    c.stdin.end(input);
  });
}

export const inNs = (ns: string, cmd: string, ...args: string[]) => sh('ip', ['netns', 'exec', ns, cmd, ...args]);

/** Why root netns tests cannot run here, or undefined when they can. */
export async function netnsUnavailable(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'not root';
  try {
    await sh('/usr/sbin/nft', ['--version']).catch(() => sh('nft', ['--version']));
  } catch {
    return 'nft is not installed';
  }
  const probe = `${uniquePrefix()}-probe`;
  try {
    await sh('ip', ['netns', 'add', probe]);
  } catch (e) {
    return `cannot create network namespaces: ${(e as Error).message.split('\n')[0]}`;
  } finally {
    await sh('ip', ['netns', 'del', probe]).catch(() => {});
  }
  return undefined;
}

// Names carry the creating pid (`vipdns-tlb<pid36>-<rand4>-<role>`), so a later run can tell a namespace
// leaked by a killed worker (pid gone) from one a parallel suite is using right now. The `lb` marker keeps
// the sweep away from other suites' `vipdns-t…` namespaces.
const PREFIX = /^vipdns-tlb([0-9a-z]+)-[0-9a-f]{4}-/;
const mine = new Set<string>();

export function uniquePrefix(): string {
  return `vipdns-tlb${process.pid.toString(36)}-${randomBytes(2).toString('hex')}`;
}

/** Registers a namespace for the synchronous last-resort cleanup at process exit. */
export function track(ns: string): void {
  mine.add(ns);
}

export function untrack(ns: string): void {
  mine.delete(ns);
}

// After a test timeout the runner may exit without running teardown hooks: delete what is left, sync.
process.on('exit', () => {
  for (const ns of mine) {
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  }
});

/** Deletes `vipdns-t…` namespaces whose creating process no longer exists. */
export async function sweepStale(): Promise<string[]> {
  const out = await sh('ip', ['netns', 'list']).catch(() => '');
  const gone: string[] = [];
  for (const line of out.split('\n')) {
    const ns = line.split(' ')[0] ?? '';
    const m = PREFIX.exec(ns);
    if (!m) continue;
    const pid = parseInt(m[1]!, 36);
    try {
      process.kill(pid, 0);
      continue; // its creator is alive
    } catch {
      await sh('ip', ['netns', 'del', ns]).catch(() => {});
      gone.push(ns);
    }
  }
  return gone;
}

export interface Member {
  ns: string;
  ip: string;
}

export interface Topology {
  host: string; // the balancing namespace: owns the bridge, hosts the VIPs and the dataplane
  hostIp: string;
  client: Member;
  backends: Member[];
  all: string[];
  destroy(): Promise<void>;
}

/**
 * host: bridge br0 10.0.9.1/24, ip_forward on. client 10.0.9.100 and backends 10.0.9.11.. on veths in br0,
 * default route via the host. Client and backends share the /24, so without masquerade replies would
 * bypass the host — the case the dataplane must handle.
 */
export async function createTopology(prefix: string, nBackends: number): Promise<Topology> {
  const host = `${prefix}-h`;
  const client: Member = { ns: `${prefix}-c`, ip: '10.0.9.100' };
  const backends: Member[] = Array.from({ length: nBackends }, (_, i) => ({ ns: `${prefix}-b${i + 1}`, ip: `10.0.9.${11 + i}` }));
  const all = [host, client.ns, ...backends.map((b) => b.ns)];
  const topo: Topology = {
    host,
    hostIp: '10.0.9.1',
    client,
    backends,
    all,
    async destroy() {
      for (const ns of all) {
        await sh('ip', ['netns', 'del', ns]).catch(() => {});
        untrack(ns);
      }
    },
  };
  await sweepStale();
  for (const ns of all) track(ns);
  try {
    await sh('ip', ['netns', 'add', host]);
    const batch = [
      `link set lo up`,
      `link add br0 type bridge`,
      `addr add 10.0.9.1/24 dev br0`,
      `link set br0 up`,
    ];
    await sh('ip', ['-n', host, '-batch', '-'], batch.join('\n') + '\n');
    await inNs(host, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    for (const [i, m] of [client, ...backends].entries()) {
      await sh('ip', ['netns', 'add', m.ns]);
      await sh('ip', ['-n', host, 'link', 'add', `v${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', m.ns]);
      await sh('ip', ['-n', host, 'link', 'set', `v${i}`, 'master', 'br0', 'up']);
      await sh('ip', ['-n', m.ns, '-batch', '-'], [`link set lo up`, `addr add ${m.ip}/24 dev eth0`, `link set eth0 up`, `route add default via 10.0.9.1`].join('\n') + '\n');
    }
  } catch (e) {
    await topo.destroy();
    throw e;
  }
  return topo;
}

/** Starts a node script inside a namespace; resolves once it prints a line matching `ready`. */
export async function startIn(ns: string, script: string, args: string[], ready = /^ready/): Promise<ChildProcess & { lines: string[] }> {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, script, ...args], { stdio: ['pipe', 'pipe', 'pipe'] }) as ChildProcess & { lines: string[] };
  child.lines = [];
  let errText = '';
  child.stderr!.on('data', (b) => (errText += b));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${script} in ${ns} not ready: ${errText}`)), 10_000);
    onLines(child.stdout!, (line) => {
      child.lines.push(line);
      child.emit('line', line);
      if (ready.test(line)) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${script} in ${ns} exited (${code}): ${errText}`));
    });
  });
}

/** Waits for the next line from a started child matching `re`. */
export function nextLine(child: ChildProcess, re: RegExp, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.off('line', on);
      reject(new Error(`no line matching ${re} within ${timeoutMs} ms`));
    }, timeoutMs);
    const on = (line: string) => {
      if (!re.test(line)) return;
      clearTimeout(timer);
      child.off('line', on);
      resolve(line);
    };
    child.on('line', on);
  });
}
