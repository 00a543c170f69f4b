// Network scoping with real clients: each client lives in its own namespace with an address
// in one vipdns network, and queries the daemon running in a third namespace.
import test from 'ava';
import { removeDir, run, startDaemon } from '../helpers/daemon.js';
import { NetnsSet, canUseNetns } from '../helpers/ns.js';

const can = canUseNetns();
const rootTest = can.ok ? test.serial : test.skip;
if (!can.ok) console.log(`netns scoping tests skipped: ${can.reason}`);

rootTest(`a service is invisible from another network's client until attached there${can.ok ? '' : ` (skipped: ${can.reason})`}`, async (t) => {
  const ns = new NetnsSet();
  t.teardown(() => ns.destroy());
  const host = ns.add('h');
  const ca = ns.add('a');
  const cb = ns.add('b');
  ns.link(host, 'to-a', '10.77.1.1/24', ca, 'eth0', '10.77.1.50/24');
  ns.link(host, 'to-b', '10.77.2.1/24', cb, 'eth0', '10.77.2.50/24');

  const d = await startDaemon({ wrap: ['ip', 'netns', 'exec', host], dnsListen: '0.0.0.0:0' });
  t.teardown(async () => {
    await d.stop();
    removeDir(d.dataDir);
  });
  const ok = (...a: string[]): Promise<string> => d.ok(...a);
  await ok('network', 'create', 'neta', '--subnet', '10.77.1.0/24');
  await ok('network', 'create', 'netb', '--subnet', '10.77.2.0/24');
  await ok('service', 'create', 'helloworld', '--network', 'neta');
  await ok('task', 'add', 'helloworld');
  await ok('service', 'create', 'gethello', '--network', 'netb');
  await ok('task', 'add', 'gethello', '--ip', '10.77.2.50');

  const dig = async (client: string, server: string, name: string): Promise<string> => {
    const r = await run('ip', ['netns', 'exec', client, 'dig', `@${server}`, '-p', String(d.dnsPort), '+time=2', '+tries=2', name]);
    return r.stdout;
  };
  const short = (out: string): string[] =>
    out.split('\n').filter((l) => /\sIN\s+A\s/.test(l) && !l.startsWith(';')).map((l) => l.trim().split(/\s+/).pop()!);

  t.deepEqual(short(await dig(ca, '10.77.1.1', 'helloworld')), ['10.77.1.2'], 'neta client resolves its own service');
  t.regex(await dig(ca, '10.77.1.1', 'gethello'), /status: NXDOMAIN/, 'neta client cannot see netb');
  t.regex(await dig(cb, '10.77.2.1', 'helloworld'), /status: NXDOMAIN/, 'netb client cannot see helloworld yet');
  t.regex(await dig(cb, '10.77.2.1', 'tasks.helloworld'), /status: NXDOMAIN/);
  t.regex(await dig(cb, '10.77.2.1', 'example.org'), /status: SERVFAIL/, 'a known client may recurse; this daemon has no upstreams');

  await ok('service', 'update', 'helloworld', '--network-add', 'netb');
  const vipB = short(await dig(cb, '10.77.2.1', 'helloworld'));
  t.is(vipB.length, 1);
  t.regex(vipB[0]!, /^10\.77\.2\.\d+$/, 'netb client now gets the VIP on netb');
  t.deepEqual(short(await dig(ca, '10.77.1.1', 'helloworld')), ['10.77.1.2'], 'neta client still gets the neta VIP');
  t.is(short(await dig(cb, '10.77.2.1', 'tasks.helloworld')).length, 1);
  // The netb client reaches the daemon through netb's address only; scoping follows the source.
  t.regex(await dig(ca, '10.77.1.1', 'gethello.netb'), /status: NXDOMAIN/);
  // Metrics count requests by the client's network (never by client address).
  const metrics = (await run('ip', ['netns', 'exec', host, 'curl', '-s', `${d.metrics}/metrics`])).stdout;
  t.regex(metrics, /vipdns_dns_requests_total\{proto="udp",type="A",network="neta"\} \d+/);
  t.regex(metrics, /vipdns_dns_requests_total\{proto="udp",type="A",network="netb"\} \d+/);
  t.notRegex(metrics, /10\.77\.[12]\.50/);
});
