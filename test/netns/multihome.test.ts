// A multi-homed server: one link carrying two IPv4 and two IPv6 subnets (and a link-local
// address), the daemon listening on the wildcard. Every UDP answer must come from the address
// the client asked: a client at 10.1.0.50 asking 10.0.9.1 drops a reply from 10.1.0.1 (the
// kernel's preferred source toward it), so `dig` times out. Checked with one DNS thread, with
// two (--dns-workers 2: a worker thread answers too), and without the UDP addon (node:dgram).
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { removeDir, run, startDaemon, type DaemonHandle } from '../helpers/daemon.js';
import { track, untrack } from '../helpers/netns.js';
import { NetnsSet, canUseNetns } from '../helpers/ns.js';

const digMissing = ((): string | undefined => {
  try {
    execFileSync('dig', ['-v'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'dig is not installed (dnsutils)';
  }
})();
const can = canUseNetns();
const why = can.ok ? digMissing : can.reason;
const rootTest = why ? test.skip : test.serial;
if (why) console.log(`netns multihome tests skipped: ${why}`);

/** Server and client addresses, pairwise in one subnet, all on one veth link. */
const V4 = [
  { server: '10.0.9.1', client: '10.0.9.50' },
  { server: '10.1.0.1', client: '10.1.0.50' },
];
const V6 = [
  { server: 'fd00:9::1', client: 'fd00:9::50' },
  { server: 'fd00:10::1', client: 'fd00:10::50' },
];
const LINK_LOCAL = { server: 'fe80::1', client: 'fe80::50' };

let ns: NetnsSet | undefined;
let server = '';
let client = '';

test.before(() => {
  if (why) return;
  ns = new NetnsSet();
  server = ns.add('s');
  client = ns.add('c');
  for (const n of [server, client]) track(n); // deleted at exit even if a hook never runs
  ns.link(server, 'eth0', `${V4[0]!.server}/24`, client, 'eth0', `${V4[0]!.client}/24`);
  const add = (n: string, cidr: string, v6: boolean): void => {
    // nodad: usable at once (DAD would hold them tentative, unbindable, for a second or two)
    execFileSync('ip', ['-n', n, 'addr', 'add', cidr, 'dev', 'eth0', ...(v6 ? ['nodad'] : [])]);
  };
  add(server, `${V4[1]!.server}/24`, false);
  add(client, `${V4[1]!.client}/24`, false);
  for (const p of V6) {
    add(server, `${p.server}/64`, true);
    add(client, `${p.client}/64`, true);
  }
  add(server, `${LINK_LOCAL.server}/64`, true);
  add(client, `${LINK_LOCAL.client}/64`, true);
});

test.after.always(() => {
  ns?.destroy();
  for (const n of [server, client]) if (n) untrack(n);
});

async function daemon(listen: string, args: string[], env: NodeJS.ProcessEnv): Promise<DaemonHandle> {
  const d = await startDaemon({
    wrap: ['ip', 'netns', 'exec', server],
    dnsListen: listen,
    args,
    // Clients outside every vipdns network see all names: the test is about addresses, not scoping.
    env: { VIPDNS_OTHERS_SEE_ALL: 'true', ...env },
  });
  await d.ok('network', 'create', 'n', '--subnet', '10.0.9.0/24');
  await d.ok('service', 'create', 'web', '--network', 'n');
  return d;
}

interface Dig {
  from: string;
  to: string;
  out: string;
}

/** `dig -b from @to web` over UDP in the client namespace; from '': the kernel picks (dig's -b takes no scope). */
async function dig(d: DaemonHandle, from: string, to: string, tcp = false): Promise<Dig> {
  const r = await run('ip', ['netns', 'exec', client, 'dig', ...(from ? ['-b', from] : []), `@${to}`, '-p', String(d.dnsPort), '+time=2', '+tries=1', ...(tcp ? ['+tcp'] : []), 'web']);
  return { from, to, out: r.stdout };
}

const answer = (out: string): string[] =>
  out.split('\n').filter((l) => /\sIN\s+A\s/.test(l) && !l.startsWith(';')).map((l) => l.trim().split(/\s+/).pop()!);

/** Every (client address, server address) pair of the families served, cross-subnet included. */
function pairs(families: (4 | 6)[]): { from: string; to: string }[] {
  const out: { from: string; to: string }[] = [];
  for (const f of families) {
    const set = f === 4 ? V4 : V6;
    for (const a of set) for (const b of set) out.push({ from: a.client, to: b.server });
  }
  // The server's eth0 has two link-local addresses (fe80::1 and the automatic one): either may be
  // the kernel's preferred source toward the client's.
  if (families.includes(6)) out.push({ from: '', to: `${LINK_LOCAL.server}%eth0` });
  return out;
}

/** Whether DNS worker thread 1 read any request (its metrics reach the main thread about once a second). */
async function workerAnswered(d: DaemonHandle): Promise<boolean> {
  for (let i = 0; i < 50; i++) {
    const m = (await run('ip', ['netns', 'exec', server, 'curl', '-s', `${d.metrics}/metrics`])).stdout;
    const n = /vipdns_dns_worker_requests_total\{worker="1"\} (\d+)/.exec(m);
    if (n && Number(n[1]) > 0) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

const configs: { name: string; args: string[]; env: NodeJS.ProcessEnv }[] = [
  { name: '1 DNS thread', args: [], env: {} },
  { name: '2 DNS threads', args: ['--dns-workers', '2'], env: {} },
  { name: 'addon disabled (node:dgram)', args: [], env: { VIPDNS_UDP_ADDON: '/nonexistent/vipdns_udp.node' } },
];
const listens: { listen: string; families: (4 | 6)[] }[] = [
  { listen: '0.0.0.0:0', families: [4] },
  { listen: '[::]:0', families: [4, 6] }, // dual-stack: IPv4 arrives v4-mapped
];

for (const c of configs) {
  for (const l of listens) {
    rootTest(`UDP answers come from the address asked: ${l.listen}, ${c.name}${why ? ` (skipped: ${why})` : ''}`, async (t) => {
      const d = await daemon(l.listen, c.args, c.env);
      t.teardown(async () => {
        await d.stop();
        removeDir(d.dataDir);
      });
      // TCP replies always come from the connection's address: the expected answer.
      const vip = answer((await dig(d, V4[0]!.client, V4[0]!.server, true)).out);
      t.is(vip.length, 1, 'the service has one VIP');
      // Several rounds, so that with two threads both answer (the daemon spreads datagrams at random).
      const rounds = c.args.length ? 3 : 1;
      const results: Dig[] = [];
      for (let r = 0; r < rounds; r++) results.push(...(await Promise.all(pairs(l.families).map((p) => dig(d, p.from, p.to)))));
      const wrong = results.filter((x) => answer(x.out).join() !== vip.join());
      t.deepEqual(
        wrong.map((x) => `${x.from || 'any'} -> ${x.to}: ${x.out.split('\n').filter((s) => /unexpected source|timed out|status:/.test(s)).join(' | ') || x.out}`),
        [],
      );
      t.is(results.length, rounds * pairs(l.families).length);
      if (c.env.VIPDNS_UDP_ADDON) t.true(d.logs.some((x) => x.includes('one socket per local address')), 'node:dgram path in use');
      if (c.args.includes('--dns-workers')) t.true(await workerAnswered(d), 'the worker thread answered some of them');
    });
  }
}
