import test from 'ava';
import { diff } from '../../src/balancer/diff.js';
import { NftablesDriver } from '../../src/balancer/drivers/nftables.js';
import { parseObserved } from '../../src/balancer/drivers/nftables-observe.js';
import { DEFAULT_NFT_OPTIONS, baseHash, chainName, renderDiff, unitRules } from '../../src/balancer/drivers/nftables-render.js';
import { plan } from '../../src/balancer/plan.js';
import type { Backend, ObservedState, Unit, VirtualService } from '../../src/balancer/types.js';
import { CatalogBuilder } from '../helpers/catalog.js';

const o = DEFAULT_NFT_OPTIONS;
const driver = new NftablesDriver({ runner: async () => ({ code: 1, stdout: '', stderr: 'no nft in unit tests' }) });

function vs(backends: Partial<Backend>[], extra: Partial<VirtualService> = {}): Unit {
  return {
    kind: 'vip',
    vip: {
      key: 'n/web/tcp/80', service: 'web', network: 'n', fwmark: 0x100, family: 4, vip: '10.0.9.2', protocol: 'tcp', port: 80, scheduler: 'rr',
      backends: backends.map((b, i) => ({ task: `t${i}`, ip: `10.0.9.${11 + i}`, port: 80, weight: 1, draining: false, ...b })),
      ...extra,
    },
  };
}

test('even spread: numgen inc over every active backend, masquerade mark set', (t) => {
  t.deepEqual(unitRules(vs([{}, {}, {}]), o), [
    'meta l4proto tcp meta mark set meta mark | 0x4000 dnat ip to numgen inc mod 3 map { 0 : 10.0.9.11 . 80, 1 : 10.0.9.12 . 80, 2 : 10.0.9.13 . 80 }',
  ]);
});

test('weights become slices; weight 0 (draining) is never chosen; no backend → counter only', (t) => {
  t.deepEqual(unitRules(vs([{ weight: 2 }, { weight: 0, draining: true }, { weight: 4 }]), o), [
    'meta l4proto tcp meta mark set meta mark | 0x4000 dnat ip to numgen inc mod 3 map { 0 : 10.0.9.11 . 80, 1-2 : 10.0.9.13 . 80 }',
  ]);
  t.deepEqual(unitRules(vs([{ weight: 0, draining: true }]), o), ['counter']);
});

test('IPv6 VIP: brackets in the map, dnat ip6, vips6 element', (t) => {
  const u = vs([{ ip: 'fd00::11' }], { family: 6, vip: 'fd00::2' });
  t.deepEqual(unitRules(u, { ...o, masqueradeMark: 0 }), ['meta l4proto tcp dnat ip6 to numgen inc mod 1 map { 0 : [fd00::11] . 80 }']);
  const { text } = renderDiff({ base: false, add: [u], change: [], remove: [], unchanged: 0 }, o);
  t.regex(text, /add element inet vipdns vips6 \{ \[fd00::2\] \. tcp \. 80 : goto vip-n\/web\/tcp\/80 \}/);
});

test('published port: one rule per family that has backends', (t) => {
  const c = new CatalogBuilder()
    .network('a', '10.0.9.0/24').network('b', 'fd00:9::/64')
    .service({ name: 'web', vips: { a: '10.0.9.2', b: 'fd00:9::2' }, ports: [{ protocol: 'udp', target: 53, published: 5353 }] })
    .task('web', { a: '10.0.9.11', b: 'fd00:9::11' });
  const u: Unit = { kind: 'published', published: plan(c.state).published[0]! };
  t.is(chainName(u), 'pub-udp/5353');
  t.deepEqual(unitRules(u, o), [
    'meta nfproto ipv4 meta l4proto udp meta mark set meta mark | 0x4000 dnat ip to numgen inc mod 1 map { 0 : 10.0.9.11 . 53 }',
    'meta nfproto ipv6 meta l4proto udp meta mark set meta mark | 0x4000 dnat ip6 to numgen inc mod 1 map { 0 : [fd00:9::11] . 53 }',
  ]);
});

test('chain names: readable when safe, hashed otherwise, never colliding with base chains', (t) => {
  t.is(chainName(vs([])), 'vip-n/web/tcp/80');
  const odd = vs([], { key: 'n/wé b/tcp/80' });
  t.regex(chainName(odd), /^vipx-[A-Za-z0-9_-]{16}$/);
});

test('full transaction order: scaffolding, chains, then elements; one rule comment per rule', (t) => {
  const { text } = renderDiff({ base: true, add: [vs([{}, {}])], change: [], remove: [], unchanged: 0 }, o);
  const lines = text.trim().split('\n');
  t.is(lines[0], 'add table inet vipdns');
  const iChain = lines.findIndex((l) => l.startsWith('add chain inet vipdns vip-'));
  const iElem = lines.findIndex((l) => l.startsWith('add element'));
  const iBase = lines.findIndex((l) => l.startsWith('flush chain inet vipdns services'));
  t.true(iBase < iChain && iChain < iElem);
  t.regex(text, /comment "h:[A-Za-z0-9_-]+:1"/);
  t.regex(text, new RegExp(`comment "b:${baseHash(o)}"`));
});

test('a one-endpoint change rewrites exactly one chain and touches no map element', (t) => {
  const before = vs([{}, {}]);
  const after = vs([{}, {}, {}]);
  const observed = driver.expect(before);
  const { text, ops } = renderDiff({ base: false, add: [], change: [{ unit: after, observed }], remove: [], unchanged: 0 }, o);
  t.is(ops, 3);
  t.deepEqual(text.trim().split('\n').map((l) => l.split(' ').slice(0, 2).join(' ')), ['add chain', 'flush chain', 'add rule']);
});

test('removal deletes the element before flushing and deleting the chain', (t) => {
  const gone = driver.expect(vs([{}]));
  const { text } = renderDiff({ base: false, add: [], change: [], remove: [gone], unchanged: 0 }, o);
  t.deepEqual(text.trim().split('\n'), [
    'delete element inet vipdns vips4 { 10.0.9.2 . tcp . 80 }',
    'flush chain inet vipdns vip-n/web/tcp/80',
    'delete chain inet vipdns vip-n/web/tcp/80',
  ]);
});

// Shaped like `nft -j list table inet vipdns` (nft 1.0.6).
function listing(extraRules: object[] = [], unitComment?: string): string {
  const u = vs([{}, {}]);
  const e = driver.expect(u);
  const ruleHash = (e.native as { ruleHash: string }).ruleHash;
  const b = `b:${baseHash(o)}`;
  const rule = (chain: string, comment: string) => ({ rule: { family: 'inet', table: 'vipdns', chain, handle: 1, comment, expr: [] } });
  return JSON.stringify({
    nftables: [
      { metainfo: { version: '1.0.6' } },
      { table: { family: 'inet', name: 'vipdns' } },
      { map: { family: 'inet', name: 'vips4', table: 'vipdns', elem: [[{ concat: ['10.0.9.2', 'tcp', 80] }, { goto: { target: 'vip-n/web/tcp/80' } }]] } },
      { map: { family: 'inet', name: 'vips6', table: 'vipdns' } },
      { map: { family: 'inet', name: 'published', table: 'vipdns' } },
      { chain: { family: 'inet', table: 'vipdns', name: 'prerouting', hook: 'prerouting', type: 'nat' } },
      { chain: { family: 'inet', table: 'vipdns', name: 'output', hook: 'output', type: 'nat' } },
      { chain: { family: 'inet', table: 'vipdns', name: 'postrouting', hook: 'postrouting', type: 'nat' } },
      { chain: { family: 'inet', table: 'vipdns', name: 'services' } },
      { chain: { family: 'inet', table: 'vipdns', name: 'vip-n/web/tcp/80' } },
      rule('prerouting', b), rule('output', b), rule('postrouting', b),
      rule('services', b), rule('services', b), rule('services', b), rule('services', b),
      rule('vip-n/web/tcp/80', unitComment ?? `h:${ruleHash}:1`),
      ...extraRules,
    ],
  });
}

test('observe: our own listing reads back as exactly what we would program', (t) => {
  const obs: ObservedState = parseObserved(listing(), o);
  t.is(obs.base, 'ok');
  const u = vs([{}, {}]);
  t.deepEqual(obs.units.get('vip-n/web/tcp/80')?.fingerprint, driver.expect(u).fingerprint);
  const d = diff({ services: [(u as { vip: VirtualService }).vip], published: [] }, obs, driver);
  t.is(d.unchanged, 1);
  t.false(d.base);
});

test('observe: an extra rule in a unit chain, an edited comment or a foreign base rule is drift', (t) => {
  const extra = { rule: { family: 'inet', table: 'vipdns', chain: 'vip-n/web/tcp/80', handle: 9, expr: [] } };
  t.is(parseObserved(listing([extra]), o).units.get('vip-n/web/tcp/80')?.fingerprint, '');
  t.is(parseObserved(listing([], 'h:zzz:1'), o).units.get('vip-n/web/tcp/80')?.fingerprint.startsWith('zzz|'), true);
  const foreign = { rule: { family: 'inet', table: 'vipdns', chain: 'services', handle: 9, expr: [] } };
  t.is(parseObserved(listing([foreign]), o).base, 'drifted');
});
