import test from 'ava';
import { diff } from '../../src/balancer/diff.js';
import { NftablesDriver } from '../../src/balancer/drivers/nftables.js';
import { parseObserved } from '../../src/balancer/drivers/nftables-observe.js';
import { DEFAULT_NFT_OPTIONS, baseHash, classComment, renderDiff, slots, unitElements, unitId, type NftUnitNative } from '../../src/balancer/drivers/nftables-render.js';
import { plan } from '../../src/balancer/plan.js';
import type { Backend, Unit, VirtualService } from '../../src/balancer/types.js';
import { CatalogBuilder } from '../helpers/catalog.js';

const o = DEFAULT_NFT_OPTIONS;
const driver = new NftablesDriver({ runner: async () => ({ code: 1, stdout: '', stderr: 'no nft in unit tests' }) });
const ctx = () => ({ knownClasses: new Set<string>(), knownMaps: new Set<string>() });

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

const lines = (u: Unit) => unitElements(u).map((e) => `${e.map} ${e.key} : ${e.value}`);

test('a VIP port: one dispatch element to its class chain, one slot element per backend', (t) => {
  t.deepEqual(lines(vs([{}, {}, {}])), [
    'vips4 10.0.9.2 . tcp . 80 : goto c-v4-tcp-k3',
    't-v4-tcp-k3 10.0.9.2 . tcp . 80 . 0 : 10.0.9.11 . 80',
    't-v4-tcp-k3 10.0.9.2 . tcp . 80 . 1 : 10.0.9.12 . 80',
    't-v4-tcp-k3 10.0.9.2 . tcp . 80 . 2 : 10.0.9.13 . 80',
  ]);
  t.is(unitId(vs([])), 'vip|10.0.9.2 . tcp . 80');
});

test('weights: slots proportional and interleaved; weight 0 (draining) gets none; none at all → c-none', (t) => {
  const picks = slots([
    { task: 'a', ip: 'A', port: 1, weight: 2, draining: false },
    { task: 'b', ip: 'B', port: 1, weight: 0, draining: true },
    { task: 'c', ip: 'C', port: 1, weight: 1, draining: false },
  ]);
  t.deepEqual(picks.map((b) => b.ip), ['A', 'C', 'A']);
  t.deepEqual(lines(vs([{ weight: 0, draining: true }])), ['vips4 10.0.9.2 . tcp . 80 : goto c-none']);
  const big = slots(Array.from({ length: 3 }, (_, i) => ({ task: `${i}`, ip: `${i}`, port: 1, weight: i === 0 ? 1000 : 1, draining: false })));
  t.true(big.length <= 256 && big.some((b) => b.ip === '1'), 'capped, and no backend loses its last slot');
});

test('schedulers: rr ignores weights but 0, wrr follows them, sh hashes the client address in its own class chain', (t) => {
  const weighted = [{ weight: 3 }, { weight: 0, draining: false }, { weight: 1 }];
  t.deepEqual(lines(vs(weighted)), ['vips4 10.0.9.2 . tcp . 80 : goto c-v4-tcp-k2', 't-v4-tcp-k2 10.0.9.2 . tcp . 80 . 0 : 10.0.9.11 . 80', 't-v4-tcp-k2 10.0.9.2 . tcp . 80 . 1 : 10.0.9.13 . 80']);
  t.deepEqual(
    lines(vs(weighted, { scheduler: 'wrr' })).slice(1).map((l) => l.split(' : ')[1]),
    ['10.0.9.11 . 80', '10.0.9.11 . 80', '10.0.9.13 . 80', '10.0.9.11 . 80'],
    'wrr: 3:1 slots, interleaved',
  );
  const sh = vs([{}, {}, {}], { scheduler: 'sh' });
  t.is(lines(sh)[0], 'vips4 10.0.9.2 . tcp . 80 : goto c-v4-tcp-h3', 'sh: a hash class chain over the same slot map');
  t.true(lines(sh).slice(1).every((l) => l.startsWith('t-v4-tcp-k3 ')));
  const r = renderDiff({ base: false, add: [sh], change: [], remove: [], unchanged: 0 }, o, ctx());
  t.regex(r.text, /add chain inet vipdns c-v4-tcp-h3\nflush chain inet vipdns c-v4-tcp-h3\nadd rule inet vipdns c-v4-tcp-h3 .*dnat ip to ip daddr \. meta l4proto \. th dport \. jhash ip saddr mod 3 seed 0x[0-9a-f]+ map @t-v4-tcp-k3/);
  t.deepEqual(r.classes, ['c-v4-tcp-h3']);
  t.notRegex(r.text, /t-v4-tcp-h3/, 'no second map');
});

test('sticky: its own class chain remembers each client\'s slot in a dynamic map, and slots are keyed by packet mark', (t) => {
  const u = vs([{}, {}, {}], { persistence: 600 });
  t.deepEqual(lines(u), [
    'vips4 10.0.9.2 . tcp . 80 : goto c-v4-tcp-k3-s600',
    'm-v4-tcp-k3 10.0.9.2 . tcp . 80 . 16384 : 10.0.9.11 . 80',
    'm-v4-tcp-k3 10.0.9.2 . tcp . 80 . 16385 : 10.0.9.12 . 80',
    'm-v4-tcp-k3 10.0.9.2 . tcp . 80 . 16386 : 10.0.9.13 . 80',
  ]);
  const r = renderDiff({ base: false, add: [u], change: [], remove: [], unchanged: 0 }, o, ctx());
  t.regex(r.text, /add map inet vipdns m-v4-tcp-k3 \{ typeof ip daddr \. meta l4proto \. th dport \. meta mark : ip daddr \. tcp dport ; \}/);
  t.regex(r.text, /add map inet vipdns s-v4-tcp-k3-s600 \{ typeof ip daddr \. meta l4proto \. th dport \. ip saddr : meta mark ; flags dynamic,timeout ; timeout 600s ; size \d+ ; \}/);
  t.regex(r.text, /update @s-v4-tcp-k3-s600 \{ ip daddr \. meta l4proto \. th dport \. ip saddr timeout 600s : numgen inc mod 3 offset 0x4000 \} meta mark set .* map @s-v4-tcp-k3-s600 ct mark set ct mark \| 0x4000 dnat ip to ip daddr \. meta l4proto \. th dport \. meta mark map @m-v4-tcp-k3/);
  t.deepEqual(r.classes, ['c-v4-tcp-k3-s600']);
  // sh and sticky: the same memory, the first pick hashed.
  t.regex(renderDiff({ base: false, add: [vs([{}, {}], { persistence: 30, scheduler: 'sh' })], change: [], remove: [], unchanged: 0 }, o, ctx()).text, /c-v4-tcp-h2-s30 .*jhash ip saddr mod 2 seed 0x[0-9a-f]+ offset 0x4000/);
});

test('IPv6 VIP: vips6 and a v6 class; nft input brackets the addresses', (t) => {
  const u = vs([{ ip: 'fd00::11', port: 53 }], { family: 6, vip: 'fd00::2', protocol: 'udp', port: 53 });
  t.deepEqual(lines(u), ['vips6 fd00::2 . udp . 53 : goto c-v6-udp-k1', 't-v6-udp-k1 fd00::2 . udp . 53 . 0 : fd00::11 . 53']);
  const { text } = renderDiff({ base: false, add: [u], change: [], remove: [], unchanged: 0 }, o, ctx());
  t.regex(text, /add element inet vipdns t-v6-udp-k1 \{ \[fd00::2\] \. udp \. 53 \. 0 : \[fd00::11\] \. 53 \}/);
  t.regex(text, /add map inet vipdns t-v6-udp-k1 \{ typeof ip6 daddr \. meta l4proto \. th dport \. numgen inc mod 1 : ip6 daddr \. udp dport ; \}/);
  t.regex(text, /add rule inet vipdns c-v6-udp-k1 meta mark set meta mark \| 0x4000 ct mark set ct mark \| 0x4000 dnat ip6 to ip6 daddr \. meta l4proto \. th dport \. numgen inc mod 1 map @t-v6-udp-k1/);
});

test('published port: per family a dispatch element and its own class', (t) => {
  const c = new CatalogBuilder()
    .network('a', '10.0.9.0/24').network('b', 'fd00:9::/64')
    .service({ name: 'web', vips: { a: '10.0.9.2', b: 'fd00:9::2' }, ports: [{ protocol: 'tcp', target: 80, published: 8080 }] })
    .task('web', { a: '10.0.9.11', b: 'fd00:9::11' })
    .task('web', { a: '10.0.9.12' });
  const u: Unit = { kind: 'published', published: plan(c.state).published[0]! };
  t.is(unitId(u), 'pub|tcp . 8080');
  t.deepEqual(lines(u), [
    'published4 tcp . 8080 : goto c-p4-tcp-k2',
    't-p4-tcp-k2 tcp . 8080 . 0 : 10.0.9.11 . 80',
    't-p4-tcp-k2 tcp . 8080 . 1 : 10.0.9.12 . 80',
    'published6 tcp . 8080 : goto c-p6-tcp-k1',
    't-p6-tcp-k1 tcp . 8080 . 0 : fd00:9::11 . 80',
  ]);
});

test('first transaction: scaffolding, then class chains, then elements', (t) => {
  const { text } = renderDiff({ base: true, add: [vs([{}, {}])], change: [], remove: [], unchanged: 0 }, o, ctx());
  const l = text.trim().split('\n');
  t.is(l[0], 'add table inet vipdns');
  const iBase = l.findIndex((x) => x.startsWith('flush chain inet vipdns services'));
  const iClass = l.findIndex((x) => x.startsWith('add rule inet vipdns c-v4-tcp-k2'));
  const iElem = l.findIndex((x) => x.startsWith('add element inet vipdns vips4'));
  t.true(iBase > 0 && iBase < iClass && iClass < iElem);
  t.regex(text, new RegExp(`comment "b:${baseHash(o)}"`));
  t.true(text.includes(`comment "${classComment({ kind: 'v4', proto: 'tcp', w: 2, pick: 'inc' }, o)}"`));
});

test('a one-endpoint change is two element commands: no rule, no chain, no class', (t) => {
  const before = vs([{}, {}, {}]);
  const after = vs([{}, { ip: '10.0.9.99' }, {}]);
  const known = { knownClasses: new Set(['c-v4-tcp-k3']), knownMaps: new Set(['t-v4-tcp-k3']) };
  const { text } = renderDiff({ base: false, add: [], change: [{ unit: after, observed: driver.expect(before) }], remove: [], unchanged: 0 }, o, known);
  t.deepEqual(text.trim().split('\n'), [
    'delete element inet vipdns t-v4-tcp-k3 { 10.0.9.2 . tcp . 80 . 1 }',
    'add element inet vipdns t-v4-tcp-k3 { 10.0.9.2 . tcp . 80 . 1 : 10.0.9.99 . 80 }',
  ]);
});

test('scaling to a new backend count moves the unit to another class, atomically', (t) => {
  const known = { knownClasses: new Set(['c-v4-tcp-k2']), knownMaps: new Set(['t-v4-tcp-k2']) };
  const { text } = renderDiff({ base: false, add: [], change: [{ unit: vs([{}, {}, {}]), observed: driver.expect(vs([{}, {}])) }], remove: [], unchanged: 0 }, o, known);
  const l = text.trim().split('\n');
  t.true(l[0]!.startsWith('delete element inet vipdns vips4 { 10.0.9.2 . tcp . 80 }') || l.some((x) => x.startsWith('delete element inet vipdns vips4')));
  t.true(l.some((x) => x.startsWith('delete element inet vipdns t-v4-tcp-k2')));
  t.true(l.some((x) => x.startsWith('add map inet vipdns t-v4-tcp-k3')), 'the new class is created');
  t.true(l.at(-1)!.includes('goto c-v4-tcp-k3') || l.some((x) => x.includes(': goto c-v4-tcp-k3')));
});

test('removal deletes every element of the unit; stray chains go before stray maps', (t) => {
  const gone = driver.expect(vs([{}]));
  const strayChain = { id: 'chain|x', fingerprint: '', native: { elements: [], stray: { chain: 'x' } } satisfies NftUnitNative };
  const strayMap = { id: 'map|m', fingerprint: '', native: { elements: [], stray: { map: 'm' } } satisfies NftUnitNative };
  const { text } = renderDiff({ base: false, add: [], change: [], remove: [strayMap, gone, strayChain], unchanged: 0 }, o, ctx());
  t.deepEqual(text.trim().split('\n'), [
    'delete element inet vipdns vips4 { 10.0.9.2 . tcp . 80 }',
    'delete element inet vipdns t-v4-tcp-k1 { 10.0.9.2 . tcp . 80 . 0 }',
    'flush chain inet vipdns x',
    'delete chain inet vipdns x',
    'delete map inet vipdns m',
  ]);
});

// Shaped like `nft -j list table inet vipdns` (nft 1.0.6).
function listing(opts: { classComment?: string; extraElem?: unknown[]; extraRule?: object } = {}): string {
  const b = `b:${baseHash(o)}`;
  const rule = (chain: string, comment: string) => ({ rule: { family: 'inet', table: 'vipdns', chain, handle: 1, comment, expr: [] } });
  const chain = (name: string, hook?: string) => ({ chain: { family: 'inet', table: 'vipdns', name, ...(hook ? { hook, type: 'nat' } : {}) } });
  const map = (name: string, elem: unknown[] = []) => ({ map: { family: 'inet', table: 'vipdns', name, elem } });
  return JSON.stringify({
    nftables: [
      { metainfo: { version: '1.0.6' } },
      map('vips4', [[{ concat: ['10.0.9.2', 'tcp', 80] }, { goto: { target: 'c-v4-tcp-k2' } }]]),
      map('vips6'), map('published4'), map('published6'),
      map('t-v4-tcp-k2', [
        [{ concat: ['10.0.9.2', 'tcp', 80, 0] }, { concat: ['10.0.9.11', 80] }],
        [{ concat: ['10.0.9.2', 'tcp', 80, 1] }, { concat: ['10.0.9.12', 80] }],
        ...(opts.extraElem ?? []),
      ]),
      chain('prerouting', 'prerouting'), chain('output', 'output'), chain('postrouting', 'postrouting'), chain('services'), chain('c-none'), chain('c-v4-tcp-k2'),
      rule('prerouting', b), rule('output', b), rule('postrouting', b), rule('c-none', b),
      rule('services', b), rule('services', b), rule('services', b), rule('services', b),
      rule('c-v4-tcp-k2', opts.classComment ?? classComment({ kind: 'v4', proto: 'tcp', w: 2, pick: 'inc' }, o)),
      ...(opts.extraRule ? [opts.extraRule] : []),
    ],
  });
}

test('observe: our own listing reads back as exactly what we would program', (t) => {
  const obs = parseObserved(listing(), o);
  t.is(obs.base, 'ok');
  t.deepEqual([...obs.knownClasses], ['c-v4-tcp-k2']);
  const u = vs([{}, {}]);
  t.is(obs.units.get('vip|10.0.9.2 . tcp . 80')?.fingerprint, driver.expect(u).fingerprint);
  const d = diff({ services: [(u as { vip: VirtualService }).vip], published: [] }, obs, driver);
  t.is(d.unchanged, 1);
  t.false(d.base);
});

test('observe: an extra slot, a tampered class rule or a foreign base rule is drift', (t) => {
  const extra = parseObserved(listing({ extraElem: [[{ concat: ['10.0.9.2', 'tcp', 80, 5] }, { concat: ['192.0.2.1', 80] }]] }), o);
  t.not(extra.units.get('vip|10.0.9.2 . tcp . 80')?.fingerprint, driver.expect(vs([{}, {}])).fingerprint);
  const tampered = parseObserved(listing({ classComment: 'k:other' }), o);
  t.is(tampered.units.get('vip|10.0.9.2 . tcp . 80')?.fingerprint, '', 'units of a broken class are rewritten');
  t.is(tampered.knownClasses.size, 0);
  const foreign = parseObserved(listing({ extraRule: { rule: { family: 'inet', table: 'vipdns', chain: 'services', handle: 9, expr: [] } } }), o);
  t.is(foreign.base, 'drifted');
});
