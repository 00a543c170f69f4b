// IPv6 VIP ownership by proxy NDP: the pure parts (what the kernel lists, where a VIP is on-link,
// which entries are ours) and the VIP book of family 6. The kernel side is in test/netns/ipv6.test.ts.
import test from 'ava';
import { classify, onLinkDev, parseProxies, parseRoutes } from '../../src/balancer/proxy-ndp.js';
import { LoopbackVipBook, vipOfId } from '../../src/balancer/drivers/nftables-vips.js';
import type { ObservedUnit } from '../../src/balancer/types.js';

const ROUTES = JSON.stringify([
  { dst: 'fd00:9::/64', dev: 'br0', protocol: 'kernel' },
  { dst: 'fd00:9::80/124', dev: 'eth1', gateway: 'fd00:9::1' },
  { dst: 'fe80::/64', dev: 'eth0' },
  { dst: 'default', gateway: 'fd00::1', dev: 'eth0' },
  { dst: 'fd00:7::5', dev: 'eth2' },
  { type: 'unreachable', dst: 'fd00:dead::/64', dev: 'lo' },
]);

test('on-link or routed: the longest matching route decides', (t) => {
  const routes = parseRoutes(ROUTES);
  t.is(onLinkDev(routes, 'fd00:9::2'), 'br0');
  t.is(onLinkDev(routes, 'fd00:9:0:0::2'), 'br0', 'any spelling');
  t.is(onLinkDev(routes, 'fd00:9::85'), undefined, 'a longer route through a gateway wins: routed, no entry needed');
  t.is(onLinkDev(routes, 'fd00:7::5'), undefined, "a /128 of the VIP itself (its address on vipdns0) is not the clients' link");
  t.is(onLinkDev(routes, 'fd00:8::1'), undefined, 'only the default route: routed');
  t.is(onLinkDev(routes, '10.0.9.2'), undefined, 'IPv4 is not proxied');
});

test('ours are the entries for our units; a routed VIP counts as present; others are never ours', (t) => {
  const view = { entries: parseProxies(JSON.stringify([{ dst: 'fd00:9::2', dev: 'br0', proxy: null }, { dst: 'fd00:9::77', dev: 'br0', proxy: null }, { dst: '10.0.0.1', dev: 'x' }])), routes: parseRoutes(ROUTES) };
  t.deepEqual([...view.entries], [['fd00:9::2', 'br0'], ['fd00:9::77', 'br0']]);
  const c = classify(view, ['fd00:9::2', 'fd00:9::3', 'fd00:8::2']);
  t.deepEqual([...c.ours], ['fd00:9::2']);
  t.deepEqual([...c.others].sort(), ['fd00:8::2', 'fd00:9::77'], 'fd00:9::3 is on-link and missing: neither');
});

test('the family-6 book wants the IPv6 VIPs of its units, flags a unit whose entry is missing, and adds it back', (t) => {
  t.is(vipOfId('vip|fd00:9::2 . tcp . 80', 6), 'fd00:9::2');
  t.is(vipOfId('vip|10.0.9.2 . tcp . 80', 6), undefined);
  t.is(vipOfId('vip|fd00:9::2 . tcp . 80'), undefined, 'family 4 by default');
  const units = new Map<string, ObservedUnit>([
    ['vip|fd00:9::2 . tcp . 80', { id: 'vip|fd00:9::2 . tcp . 80', fingerprint: 'f1' }],
    ['vip|fd00:9::3 . tcp . 80', { id: 'vip|fd00:9::3 . tcp . 80', fingerprint: 'f2' }],
    ['vip|10.0.9.2 . tcp . 80', { id: 'vip|10.0.9.2 . tcp . 80', fingerprint: 'f3' }],
  ]);
  const book = new LoopbackVipBook(6);
  book.observed(units, { ours: new Set(['fd00:9::2']), others: new Set() });
  t.deepEqual(book.wanted(), ['fd00:9::2', 'fd00:9::3']);
  t.is(units.get('vip|fd00:9::2 . tcp . 80')!.fingerprint, 'f1');
  t.is(units.get('vip|fd00:9::3 . tcp . 80')!.fingerprint, 'f2 !lo', 'missing: rewritten by the next diff');
  t.is(units.get('vip|10.0.9.2 . tcp . 80')!.fingerprint, 'f3', 'IPv4 is the other book');
});
