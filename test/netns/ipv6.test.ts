// IPv6 through the nftables dataplane, with real TCP connections over v6 in namespaces: a v6 VIP
// and a published port reached on the host's v6 address spread over v6 backends, first from a client
// on another /64 that routes the service network through the host, then from a client on the VIP's
// own /64, which reaches it because the host owns it by proxy NDP.
import test from 'ava';
import { inNs, netnsUnavailable, sh, startIn } from '../helpers/netns.js';
import { fixture, nftablesDaemon, spreadsEvenly, testTopology } from './common.js';

const why = await netnsUnavailable();
const rootTest = why ? test.serial.skip : test.serial;
if (why) console.log(`IPv6 traffic test skipped: ${why}`);

rootTest(`IPv6: a v6 VIP and a v6 published port balance real TCP connections${why ? ` (skipped: ${why})` : ''}`, async (t) => {
  const { topo, procs } = await testTopology(t, 2);
  // nodad: addresses usable at once (duplicate address detection would hold them for a second).
  await sh('ip', ['-n', topo.host, '-batch', '-'], 'addr add fd00:9::1/64 dev br0 nodad\naddr add fd00:100::1/64 dev br0 nodad\n');
  await inNs(topo.host, 'sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1');
  const ips = topo.backends.map((_, i) => `fd00:9::${11 + i}`);
  for (const [i, b] of topo.backends.entries()) {
    await sh('ip', ['-n', b.ns, '-batch', '-'], `addr add ${ips[i]}/64 dev eth0 nodad\nroute add default via fd00:9::1\n`);
    procs.push(await startIn(b.ns, fixture('echo-server'), [`b${i + 1}`, '6:80']));
  }
  await sh('ip', ['-n', topo.client.ns, '-batch', '-'], 'addr add fd00:100::100/64 dev eth0 nodad\nroute add fd00:9::/64 via fd00:100::1\n');
  const d = await nftablesDaemon(t, topo);
  const ok = (...a: string[]): Promise<string> => d.ok(...a);
  await ok('network', 'create', 'n6', '--subnet', 'fd00:9::/64');
  await ok('service', 'create', 'web6', '--network', 'n6', '--port', '80', '--publish', '8080:80');
  for (const ip of ips) await ok('task', 'add', 'web6', '--ip', ip);
  const vip = (JSON.parse(await ok('--json', 'service', 'inspect', 'web6')) as { attachments: { vip: string }[] }).attachments[0]!.vip;
  t.regex(vip, /^fd00:9::/);
  const aaaa = await inNs(topo.host, 'dig', '@127.0.0.1', '-p', String(d.dnsPort), '+short', 'web6', 'AAAA');
  t.is(aaaa.trim(), vip, 'AAAA answers the v6 VIP');

  const spread = (host: string, port: number): Promise<void> => spreadsEvenly(t, topo.client.ns, host, port);
  await spread(vip, 80);
  await spread('fd00:100::1', 8080);
  t.regex(await ok('dataplane', 'show', 'web6'), new RegExp(`\\[${vip}\\]:80/tcp`));
});

rootTest(`IPv6: a v6 VIP on the client's own subnet is owned by the host (proxy NDP), and let go with its service${why ? ` (skipped: ${why})` : ''}`, async (t) => {
  const { topo, procs } = await testTopology(t, 2);
  await sh('ip', ['-n', topo.host, 'addr', 'add', 'fd00:9::1/64', 'dev', 'br0', 'nodad']);
  await inNs(topo.host, 'sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1');
  const ips = topo.backends.map((_, i) => `fd00:9::${11 + i}`);
  for (const [i, b] of topo.backends.entries()) {
    await sh('ip', ['-n', b.ns, '-batch', '-'], `addr add ${ips[i]}/64 dev eth0 nodad\n`);
    procs.push(await startIn(b.ns, fixture('echo-server'), [`b${i + 1}`, '6:80']));
  }
  // The client is on the VIP's /64 itself, with no route through the host: it solicits the VIP on the link.
  await sh('ip', ['-n', topo.client.ns, 'addr', 'add', 'fd00:9::100/64', 'dev', 'eth0', 'nodad']);
  const d = await nftablesDaemon(t, topo);
  await d.ok('network', 'create', 'n6', '--subnet', 'fd00:9::/64');
  await d.ok('service', 'create', 'web6', '--network', 'n6', '--vip', 'n6=fd00:9::2', '--port', '80');
  for (const ip of ips) await d.ok('task', 'add', 'web6', '--ip', ip);
  const proxies = async (): Promise<string> => inNs(topo.host, 'ip', '-6', 'neigh', 'show', 'proxy');
  // Connections from the same link reach both backends (once the last task's sync has landed).
  await spreadsEvenly(t, topo.client.ns, 'fd00:9::2', 80);
  t.regex(await proxies(), /fd00:9::2 dev br0 proxy/);
  t.is((await inNs(topo.host, 'sysctl', '-n', 'net.ipv6.conf.br0.proxy_ndp')).trim(), '1');

  // The service goes: so does its entry (a sync's own diff), and nothing else's.
  await inNs(topo.host, 'ip', '-6', 'neigh', 'add', 'proxy', 'fd00:9::77', 'dev', 'br0');
  await d.ok('service', 'rm', 'web6');
  let left = '';
  for (let i = 0; i < 50; i++) {
    left = await proxies();
    if (!left.includes('fd00:9::2 ')) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  t.notRegex(left, /fd00:9::2 /);
  t.regex(left, /fd00:9::77 dev br0 proxy/, "an entry that is not ours stays");
});
