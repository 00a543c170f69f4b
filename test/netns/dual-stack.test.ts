// Dual stack through the nftables dataplane, with real TCP in namespaces this test creates: a network
// with an IPv4 and an IPv6 subnet, a service with a VIP in each, tasks with an address in each; A and
// AAAA answer the two VIPs, and connections to either VIP and to the published port over either family
// spread over the tasks' addresses of that family.
import test from 'ava';
import { inNs, netnsUnavailable, sh, startIn } from '../helpers/netns.js';
import { fixture, nftablesDaemon, spreadsEvenly, testTopology } from './common.js';

const why = await netnsUnavailable();
const rootTest = why ? test.serial.skip : test.serial;
if (why) console.log(`dual-stack traffic test skipped: ${why}`);

rootTest(`dual stack: a VIP per family, A and AAAA, both balance real TCP; published port on both families${why ? ` (skipped: ${why})` : ''}`, async (t) => {
  const { topo, procs } = await testTopology(t, 2);
  await sh('ip', ['-n', topo.host, '-batch', '-'], 'addr add fd00:9::1/64 dev br0 nodad\n');
  await inNs(topo.host, 'sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1');
  const ips6 = topo.backends.map((_, i) => `fd00:9::${11 + i}`);
  for (const [i, b] of topo.backends.entries()) {
    await sh('ip', ['-n', b.ns, '-batch', '-'], `addr add ${ips6[i]}/64 dev eth0 nodad\nroute add default via fd00:9::1\n`);
    procs.push(await startIn(b.ns, fixture('echo-server'), [`b${i + 1}`, '80', '6:80']));
  }
  await sh('ip', ['-n', topo.client.ns, '-batch', '-'], 'addr add fd00:9::100/64 dev eth0 nodad\nroute add default via fd00:9::1\n');
  const d = await nftablesDaemon(t, topo);
  const ok = (...a: string[]): Promise<string> => d.ok(...a);
  await ok('network', 'create', 'dual', '--subnet', 'fd00:9::/64', '--subnet', '10.0.9.0/24', '--attachable');
  const net = JSON.parse(await ok('--json', 'network', 'inspect', 'dual')) as { subnet: string; subnet6: string; gateway: string; gateway6: string };
  t.like(net, { subnet: '10.0.9.0/24', subnet6: 'fd00:9::/64', gateway: '10.0.9.1', gateway6: 'fd00:9::1' }, 'IPv4 in subnet, IPv6 in subnet6, whatever the order given');
  await ok('service', 'create', 'web', '--network', 'dual', '--port', '80', '--publish', '8080:80');
  for (const [i, b] of topo.backends.entries()) await ok('task', 'add', 'web', '--ip', b.ip, '--ip', ips6[i]!);
  const att = (JSON.parse(await ok('--json', 'service', 'inspect', 'web')) as { attachments: { vip: string; vip6: string }[] }).attachments[0]!;
  t.regex(att.vip, /^10\.0\.9\./);
  t.regex(att.vip6, /^fd00:9::/);
  // An automatic address on each subnet for a task without --ip; a container gets both too.
  const auto = JSON.parse(await ok('--json', 'container', 'add', 'probe', '--network', 'dual')) as { addresses: Record<string, string>; addresses6: Record<string, string> };
  t.regex(auto.addresses.dual!, /^10\.0\.9\./);
  t.regex(auto.addresses6.dual!, /^fd00:9::/);

  const dig = async (from: string, name: string, type: string): Promise<string[]> =>
    (await inNs(from, 'dig', '@127.0.0.1', '-p', String(d.dnsPort), '+short', name, type)).trim().split('\n').filter(Boolean).sort();
  t.deepEqual(await dig(topo.host, 'web', 'A'), [att.vip]);
  t.deepEqual(await dig(topo.host, 'web', 'AAAA'), [att.vip6]);
  t.deepEqual(await dig(topo.host, 'tasks.web', 'AAAA'), [...ips6].sort());
  t.deepEqual(await dig(topo.host, 'tasks.web', 'A'), topo.backends.map((b) => b.ip).sort());
  t.deepEqual(await dig(topo.host, 'probe', 'AAAA'), [auto.addresses6.dual!]);
  t.deepEqual(await dig(topo.host, '-x', att.vip6), ['web.dual.vipdns.internal.']);

  const spread = (host: string, port: number): Promise<void> => spreadsEvenly(t, topo.client.ns, host, port);
  await spread(att.vip, 80);
  await spread(att.vip6, 80);
  await spread(topo.hostIp, 8080);
  await spread('fd00:9::1', 8080);
  const shown = await ok('dataplane', 'show', 'web');
  t.true(shown.includes(`${att.vip}:80/tcp`) && shown.includes(`[${att.vip6}]:80/tcp`), shown);

  // Removing the service frees both VIPs (a new service gets addresses again from both subnets).
  await ok('service', 'rm', 'web');
  t.deepEqual(await dig(topo.host, 'web', 'AAAA'), []);
});
