import test from 'ava';
import { diff } from '../../src/balancer/diff.js';
import { NftablesDriver } from '../../src/balancer/drivers/nftables.js';
import { parseObserved } from '../../src/balancer/drivers/nftables-observe.js';
import { CLASS_RE, DEFAULT_NFT_OPTIONS, baseHash, classComment, classOf, renderDiff, slots, unitElements, unitHash, unitId, type NftUnitNative } from '../../src/balancer/drivers/nftables-render.js';
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
/** The own chain of the rr/wrr unit that dispatches from `map` by `key`, slot count `w`. */
const own = (map: string, key: string, w: number, kind = 'v4', proto = 'tcp') => `c-${kind}-${proto}-k${w}-u${unitHash(map, key)}`;
const WEB = '10.0.9.2 . tcp . 80';
/** A round-robin class's slot chains, 0 … w-1. */
const slotChains = (w: number, kind = 'v4', proto = 'tcp') => Array.from({ length: w }, (_, s) => `c-${kind}-${proto}-k${w}-n${s}`);

test('a VIP port: one dispatch element to its own chain, one slot element per backend in its class map', (t) => {
  t.deepEqual(lines(vs([{}, {}, {}])), [
    `vips4 10.0.9.2 . tcp . 80 : goto ${own('vips4', WEB, 3)}`,
    't-v4-tcp-k3 10.0.9.2 . tcp . 80 . 0 : 10.0.9.11 . 80',
    't-v4-tcp-k3 10.0.9.2 . tcp . 80 . 1 : 10.0.9.12 . 80',
    't-v4-tcp-k3 10.0.9.2 . tcp . 80 . 2 : 10.0.9.13 . 80',
  ]);
  t.is(unitId(vs([])), 'vip|10.0.9.2 . tcp . 80');
  t.regex(own('vips4', WEB, 3), /^c-v4-tcp-k3-u[0-9a-f]{12}$/);
  t.deepEqual(classOf(own('vips4', WEB, 3)), { kind: 'v4', proto: 'tcp', w: 3, pick: 'inc', unit: unitHash('vips4', WEB) });
  t.is(classOf(`c-v4-tcp-h3-u${unitHash('vips4', WEB)}`), undefined, 'sh has no unit chains');
  t.is(CLASS_RE.exec(`c-v4-tcp-k3-s60-u${unitHash('vips4', WEB)}`), null, 'nor sticky');
  t.deepEqual(classOf('c-v4-tcp-k3-n2'), { kind: 'v4', proto: 'tcp', w: 3, pick: 'inc', slot: 2 });
  t.is(classOf('c-v4-tcp-k3-n3'), undefined, 'slots only below W');
  t.is(classOf('c-v4-tcp-h3-n0'), undefined);
});

test('rr and wrr: units of one slot count get chains of their own (their own counters), through the class\'s slot chains to one slot map', (t) => {
  const a = vs([{}, {}]);
  const b = vs([{ ip: '10.0.9.21' }, { ip: '10.0.9.22' }], { vip: '10.0.9.3', scheduler: 'wrr' });
  const r = renderDiff({ base: false, add: [a, b], change: [], remove: [], unchanged: 0 }, o, ctx());
  const ca = own('vips4', WEB, 2);
  const cb = own('vips4', '10.0.9.3 . tcp . 80', 2);
  t.not(ca, cb);
  t.deepEqual(r.classes, [...slotChains(2), ca, cb]);
  t.deepEqual(r.deleted, []);
  const l = r.text.trim().split('\n');
  const comment = (x: object) => classComment({ kind: 'v4', proto: 'tcp', w: 2, pick: 'inc', ...x }, o);
  // Each unit's rule picks a slot with its own counter; the slot chains do what the class rule did.
  for (const c of [ca, cb]) t.true(l.includes(`add rule inet vipdns ${c} numgen inc mod 2 vmap @g-v4-tcp-k2 comment "${comment({ unit: c.slice(-12) })}"`));
  t.is(comment({ unit: ca.slice(-12) }), comment({ unit: cb.slice(-12) }), 'the same rule');
  for (const s of [0, 1]) {
    t.true(l.includes(`add rule inet vipdns c-v4-tcp-k2-n${s} meta mark set meta mark | 0x4000 ct mark set ct mark | 0x4000 dnat ip to ip daddr . meta l4proto . th dport . numgen inc mod 1 offset ${s} map @t-v4-tcp-k2 comment "${comment({ slot: s })}"`));
  }
  t.deepEqual(l.filter((x) => x.includes('g-v4-tcp-k2') && !x.startsWith('add rule')), [
    'add map inet vipdns g-v4-tcp-k2 { typeof numgen inc mod 2 : verdict ; }',
    'flush map inet vipdns g-v4-tcp-k2',
    'add element inet vipdns g-v4-tcp-k2 { 0 : goto c-v4-tcp-k2-n0, 1 : goto c-v4-tcp-k2-n1 }',
  ]);
  t.is(r.text.match(/add map inet vipdns t-v4-tcp-k2 /g)?.length, 1, 'the slot map is made once');
  const at = (x: string) => l.findIndex((y) => y.startsWith(x));
  t.true(at('add rule inet vipdns c-v4-tcp-k2-n1') < at('add element inet vipdns g-v4-tcp-k2'), 'slot chains before the map naming them');
  t.true(at('add element inet vipdns g-v4-tcp-k2') < at(`add rule inet vipdns ${ca}`), 'the map before the rules reading it');
  t.regex(r.text, new RegExp(`add element inet vipdns vips4 \\{ 10\\.0\\.9\\.2 \\. tcp \\. 80 : goto ${ca}, 10\\.0\\.9\\.3 \\. tcp \\. 80 : goto ${cb} \\}`));
  t.true(at(`add rule inet vipdns ${cb}`) < at('add element inet vipdns vips4'), 'chains before the elements that name them');
  // Slots known intact: a new unit writes its own chain only.
  const more = renderDiff({ base: false, add: [vs([{ ip: '10.0.9.31' }, { ip: '10.0.9.32' }], { vip: '10.0.9.4' })], change: [], remove: [], unchanged: 0 }, o, { knownClasses: new Set([...slotChains(2), ca, cb]), knownMaps: new Set(['t-v4-tcp-k2']) });
  t.deepEqual(more.classes, [own('vips4', '10.0.9.4 . tcp . 80', 2)]);
  t.notRegex(more.text, /-n\d|element inet vipdns g-|add map/);
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
  t.deepEqual(lines(vs(weighted)), [`vips4 10.0.9.2 . tcp . 80 : goto ${own('vips4', WEB, 2)}`, 't-v4-tcp-k2 10.0.9.2 . tcp . 80 . 0 : 10.0.9.11 . 80', 't-v4-tcp-k2 10.0.9.2 . tcp . 80 . 1 : 10.0.9.13 . 80']);
  t.deepEqual(
    lines(vs(weighted, { scheduler: 'wrr' })).slice(1).map((l) => l.split(' : ')[1]),
    ['10.0.9.11 . 80', '10.0.9.11 . 80', '10.0.9.13 . 80', '10.0.9.11 . 80'],
    'wrr: 3:1 slots, interleaved',
  );
  const sh = vs([{}, {}, {}], { scheduler: 'sh' });
  t.is(lines(sh)[0], 'vips4 10.0.9.2 . tcp . 80 : goto c-v4-tcp-h3', 'sh: a shared hash class chain over the same slot map');
  const other = vs([{ ip: '10.0.9.21' }, { ip: '10.0.9.22' }, { ip: '10.0.9.23' }], { vip: '10.0.9.3', scheduler: 'sh' });
  t.is(lines(other)[0], 'vips4 10.0.9.3 . tcp . 80 : goto c-v4-tcp-h3', 'shared by every sh unit of that slot count');
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
  t.is(lines(vs([{ ip: '10.0.9.21' }, { ip: '10.0.9.22' }, { ip: '10.0.9.23' }], { vip: '10.0.9.3', persistence: 600 }))[0], 'vips4 10.0.9.3 . tcp . 80 : goto c-v4-tcp-k3-s600', 'sticky classes stay shared');
  // sh and sticky: the same memory, the first pick hashed.
  t.regex(renderDiff({ base: false, add: [vs([{}, {}], { persistence: 30, scheduler: 'sh' })], change: [], remove: [], unchanged: 0 }, o, ctx()).text, /c-v4-tcp-h2-s30 .*jhash ip saddr mod 2 seed 0x[0-9a-f]+ offset 0x4000/);
});

test('IPv6 VIP: vips6 and a v6 class; nft input brackets the addresses', (t) => {
  const u = vs([{ ip: 'fd00::11', port: 53 }], { family: 6, vip: 'fd00::2', protocol: 'udp', port: 53 });
  // One backend: no counter to keep, so no chain of its own; straight to the class's slot chain.
  const c = 'c-v6-udp-k1-n0';
  t.deepEqual(lines(u), [`vips6 fd00::2 . udp . 53 : goto ${c}`, 't-v6-udp-k1 fd00::2 . udp . 53 . 0 : fd00::11 . 53']);
  const { text } = renderDiff({ base: false, add: [u], change: [], remove: [], unchanged: 0 }, o, ctx());
  t.regex(text, /add element inet vipdns t-v6-udp-k1 \{ \[fd00::2\] \. udp \. 53 \. 0 : \[fd00::11\] \. 53 \}/);
  t.regex(text, /add map inet vipdns t-v6-udp-k1 \{ typeof ip6 daddr \. meta l4proto \. th dport \. numgen inc mod 1 : ip6 daddr \. udp dport ; \}/);
  t.notRegex(text, /-k1-u/);
  t.regex(text, /add rule inet vipdns c-v6-udp-k1-n0 meta mark set meta mark \| 0x4000 ct mark set ct mark \| 0x4000 dnat ip6 to ip6 daddr \. meta l4proto \. th dport \. numgen inc mod 1 offset 0 map @t-v6-udp-k1/);
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
    `published4 tcp . 8080 : goto ${own('published4', 'tcp . 8080', 2, 'p4')}`,
    't-p4-tcp-k2 tcp . 8080 . 0 : 10.0.9.11 . 80',
    't-p4-tcp-k2 tcp . 8080 . 1 : 10.0.9.12 . 80',
    'published6 tcp . 8080 : goto c-p6-tcp-k1-n0',
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
  t.true(text.includes(`comment "${classComment({ kind: 'v4', proto: 'tcp', w: 2, pick: 'inc', slot: 1 }, o)}"`));
});

test('a one-endpoint change is two element commands: no rule, no chain, no class', (t) => {
  const before = vs([{}, {}, {}]);
  const after = vs([{}, { ip: '10.0.9.99' }, {}]);
  const known = { knownClasses: new Set([own('vips4', WEB, 3)]), knownMaps: new Set(['t-v4-tcp-k3']) };
  const r = renderDiff({ base: false, add: [], change: [{ unit: after, observed: driver.expect(before) }], remove: [], unchanged: 0 }, o, known);
  t.deepEqual(r.text.trim().split('\n'), [
    'delete element inet vipdns t-v4-tcp-k3 { 10.0.9.2 . tcp . 80 . 1 }',
    'add element inet vipdns t-v4-tcp-k3 { 10.0.9.2 . tcp . 80 . 1 : 10.0.9.99 . 80 }',
  ]);
  t.deepEqual([r.classes, r.deleted], [[], []], 'the unit keeps its chain (and its counter)');
  // Even when its chain is not known intact yet: the chain is only written for an element naming it.
  t.notRegex(renderDiff({ base: false, add: [], change: [{ unit: after, observed: driver.expect(before) }], remove: [], unchanged: 0 }, o, ctx()).text, /chain/);
});

test('scaling to a new backend count moves the unit to a new chain of its own and deletes the old one, atomically', (t) => {
  const [k2, k3] = [own('vips4', WEB, 2), own('vips4', WEB, 3)];
  const known = { knownClasses: new Set([k2, ...slotChains(2)]), knownMaps: new Set(['t-v4-tcp-k2']) };
  const r = renderDiff({ base: false, add: [], change: [{ unit: vs([{}, {}, {}]), observed: driver.expect(vs([{}, {}])) }], remove: [], unchanged: 0 }, o, known);
  const l = r.text.trim().split('\n');
  const at = (line: string) => l.findIndex((x) => x.startsWith(line));
  t.is(at('delete element inet vipdns vips4 { 10.0.9.2 . tcp . 80 }'), 0);
  t.true(at('delete element inet vipdns t-v4-tcp-k2') > 0);
  t.true(at(`flush chain inet vipdns ${k2}`) > at('delete element inet vipdns t-v4-tcp-k2'), 'the old chain goes after the element naming it');
  t.true(at(`delete chain inet vipdns ${k2}`) > at(`flush chain inet vipdns ${k2}`));
  t.true(at('add map inet vipdns t-v4-tcp-k3') > 0, 'the new class map is created');
  t.true(at(`add rule inet vipdns ${k3} `) > at(`delete chain inet vipdns ${k2}`));
  t.true(at(`add element inet vipdns vips4 { 10.0.9.2 . tcp . 80 : goto ${k3} }`) > at(`add rule inet vipdns ${k3} `));
  t.deepEqual([r.classes, r.deleted], [[...slotChains(3), k3], [k2]], 'the new class\'s slots with it; the old class\'s stay');

  // To a scheduler with a shared chain (sh) and back; to no backend at all (c-none).
  const sh = renderDiff({ base: false, add: [], change: [{ unit: vs([{}, {}], { scheduler: 'sh' }), observed: driver.expect(vs([{}, {}])) }], remove: [], unchanged: 0 }, o, known);
  t.deepEqual([sh.classes, sh.deleted], [['c-v4-tcp-h2'], [k2]]);
  const back = renderDiff({ base: false, add: [], change: [{ unit: vs([{}, {}]), observed: driver.expect(vs([{}, {}], { scheduler: 'sh' })) }], remove: [], unchanged: 0 }, o, { knownClasses: new Set(['c-v4-tcp-h2', ...slotChains(2)]), knownMaps: new Set(['t-v4-tcp-k2']) });
  t.deepEqual([back.classes, back.deleted], [[k2], []]);
  const none = renderDiff({ base: false, add: [], change: [{ unit: vs([{ weight: 0 }]), observed: driver.expect(vs([{}, {}])) }], remove: [], unchanged: 0 }, o, known);
  t.deepEqual([none.classes, none.deleted], [[], [k2]]);
  t.regex(none.text, /add element inet vipdns vips4 \{ 10\.0\.9\.2 \. tcp \. 80 : goto c-none \}\n$/);
});

test('a unit rewritten whole keeps its chain; a scaffolding rewrite rewrites every known chain but those deleted', (t) => {
  const k2 = own('vips4', WEB, 2);
  const broken = { ...driver.expect(vs([{}, {}])), fingerprint: '' };
  const whole = renderDiff({ base: false, add: [], change: [{ unit: vs([{}, {}]), observed: broken }], remove: [], unchanged: 0 }, o, ctx());
  t.deepEqual([whole.classes, whole.deleted], [[...slotChains(2), k2], []], 'not known intact: written again (with its slots), not deleted');
  const gone = driver.expect(vs([{ ip: '10.0.9.21' }, { ip: '10.0.9.22' }], { vip: '10.0.9.3' }));
  const k2b = own('vips4', '10.0.9.3 . tcp . 80', 2);
  const base = renderDiff({ base: true, add: [], change: [], remove: [gone], unchanged: 0 }, o, { knownClasses: new Set([k2, k2b, 'c-v4-tcp-h2', ...slotChains(2)]), knownMaps: new Set(['t-v4-tcp-k2']) });
  t.deepEqual([base.classes, base.deleted], [[...slotChains(2), k2, 'c-v4-tcp-h2'], [k2b]]);
  t.notRegex(base.text, new RegExp(`add chain inet vipdns ${k2b}`));
  t.is(base.text.match(/add element inet vipdns g-v4-tcp-k2 /g)?.length, 1, 'the slots once');
});

test('removal deletes every element of the unit; stray chains go before stray maps', (t) => {
  const gone = driver.expect(vs([{}, {}]));
  const strayChain = { id: 'chain|x', fingerprint: '', native: { elements: [], stray: { chain: 'x' } } satisfies NftUnitNative };
  const strayMap = { id: 'map|m', fingerprint: '', native: { elements: [], stray: { map: 'm' } } satisfies NftUnitNative };
  const { text } = renderDiff({ base: false, add: [], change: [], remove: [strayMap, gone, strayChain], unchanged: 0 }, o, ctx());
  t.deepEqual(text.trim().split('\n'), [
    'delete element inet vipdns vips4 { 10.0.9.2 . tcp . 80 }',
    'delete element inet vipdns t-v4-tcp-k2 { 10.0.9.2 . tcp . 80 . 0, 10.0.9.2 . tcp . 80 . 1 }',
    `flush chain inet vipdns ${own('vips4', WEB, 2)}`,
    'flush chain inet vipdns x',
    `delete chain inet vipdns ${own('vips4', WEB, 2)}`,
    'delete chain inet vipdns x',
    'delete map inet vipdns m',
  ]);
});

test('removal and re-adding in one diff (another unit of the same key): the chain stays', (t) => {
  const was = driver.expect(vs([{}, {}]));
  const r = renderDiff({ base: false, add: [vs([{ ip: '10.0.9.31' }, { ip: '10.0.9.32' }])], change: [], remove: [was], unchanged: 0 }, o, ctx());
  t.deepEqual(r.deleted, []);
  t.notRegex(r.text, /delete chain/);
});

// Shaped like `nft -j list table inet vipdns` (nft 1.0.6).
const K2 = own('vips4', WEB, 2);
const SLOTS2 = slotChains(2);
function listing(opts: { classComment?: string; extraElem?: unknown[]; extraRule?: object; extraChains?: string[]; gotos?: unknown[] } = {}): string {
  const b = `b:${baseHash(o)}`;
  const rule = (chain: string, comment: string) => ({ rule: { family: 'inet', table: 'vipdns', chain, handle: 1, comment, expr: [] } });
  const chain = (name: string, hook?: string) => ({ chain: { family: 'inet', table: 'vipdns', name, ...(hook ? { hook, type: 'nat' } : {}) } });
  const map = (name: string, elem: unknown[] = []) => ({ map: { family: 'inet', table: 'vipdns', name, elem } });
  return JSON.stringify({
    nftables: [
      { metainfo: { version: '1.0.6' } },
      map('vips4', [[{ concat: ['10.0.9.2', 'tcp', 80] }, { goto: { target: K2 } }]]),
      map('vips6'), map('published4'), map('published6'),
      map('t-v4-tcp-k2', [
        [{ concat: ['10.0.9.2', 'tcp', 80, 0] }, { concat: ['10.0.9.11', 80] }],
        [{ concat: ['10.0.9.2', 'tcp', 80, 1] }, { concat: ['10.0.9.12', 80] }],
        ...(opts.extraElem ?? []),
      ]),
      map('g-v4-tcp-k2', opts.gotos ?? [[0, { goto: { target: SLOTS2[0] } }], [1, { goto: { target: SLOTS2[1] } }]]),
      chain('prerouting', 'prerouting'), chain('output', 'output'), chain('postrouting', 'postrouting'), chain('services'), chain('c-none'), ...SLOTS2.map((c) => chain(c)), chain(K2),
      rule('prerouting', b), rule('output', b), rule('postrouting', b), rule('c-none', b),
      rule('services', b), rule('services', b), rule('services', b), rule('services', b),
      ...SLOTS2.map((c) => rule(c, classComment(classOf(c)!, o))),
      rule(K2, opts.classComment ?? classComment(classOf(K2)!, o)),
      ...(opts.extraRule ? [opts.extraRule] : []),
      // Intact round-robin chains: their one rule, their map.
      ...(opts.extraChains ?? []).flatMap((c) => [chain(c), rule(c, classComment(classOf(c)!, o))]),
    ],
  });
}

test('observe: our own listing reads back as exactly what we would program', (t) => {
  const obs = parseObserved(listing(), o);
  t.is(obs.base, 'ok');
  t.deepEqual([...obs.knownClasses], [...SLOTS2, K2]);
  t.false([...obs.units.keys()].some((id) => id.startsWith('map|') || id.startsWith('chain|')), 'nothing stray: the goto map and slot chains are the class\'s');
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
  t.deepEqual([...tampered.knownClasses], SLOTS2);
  // A goto map naming the wrong chain, or missing a slot: the class's slots and its units are broken.
  for (const gotos of [[[0, { goto: { target: SLOTS2[1] } }], [1, { goto: { target: SLOTS2[1] } }]], [[0, { goto: { target: SLOTS2[0] } }]]]) {
    const g = parseObserved(listing({ gotos }), o);
    t.is(g.units.get('vip|10.0.9.2 . tcp . 80')?.fingerprint, '');
    t.is(g.knownClasses.size, 0);
    const r = renderDiff(diff({ services: [(vs([{}, {}]) as { vip: VirtualService }).vip], published: [] }, g, driver), o, g);
    t.deepEqual(r.classes, [...SLOTS2, K2], 'rewritten: slots, goto map, the unit chain');
    t.true(r.text.includes('flush map inet vipdns g-v4-tcp-k2\nadd element inet vipdns g-v4-tcp-k2 { 0 : goto c-v4-tcp-k2-n0, 1 : goto c-v4-tcp-k2-n1 }\n'));
  }
  const foreign = parseObserved(listing({ extraRule: { rule: { family: 'inet', table: 'vipdns', chain: 'services', handle: 9, expr: [] } } }), o);
  t.is(foreign.base, 'drifted');
});

test('observe: a unit chain no dispatch element names is stray (so is a shared round-robin chain of the old layout); sh and sticky chains stay', (t) => {
  const orphan = own('vips4', '10.0.9.3 . tcp . 80', 2);
  const obs = parseObserved(listing({ extraChains: [orphan, 'c-v4-tcp-k2', 'c-v4-tcp-h2'] }), o);
  t.deepEqual([...obs.knownClasses].sort(), [...SLOTS2, K2, 'c-v4-tcp-h2'].sort(), 'the named unit chain is known, the unnamed ones are not');
  t.deepEqual(obs.units.get(`chain|${orphan}`)?.native, { elements: [], stray: { chain: orphan } });
  t.deepEqual(obs.units.get('chain|c-v4-tcp-k2')?.native, { elements: [], stray: { chain: 'c-v4-tcp-k2' } });
  t.false(obs.units.has('chain|c-v4-tcp-h2'), 'a shared sh chain without units stays (as before)');
  t.false(obs.units.has(`chain|${K2}`));
  const u = vs([{}, {}]);
  t.is(obs.units.get('vip|10.0.9.2 . tcp . 80')?.fingerprint, driver.expect(u).fingerprint);
  // The diff removes the strays and nothing else.
  const d = diff({ services: [(u as { vip: VirtualService }).vip], published: [] }, obs, driver);
  t.is(d.unchanged, 1);
  t.deepEqual(d.remove.map((r) => r.id).sort(), ['chain|c-v4-tcp-k2', `chain|${orphan}`].sort());
  const r = renderDiff(d, o, obs);
  t.deepEqual(r.text.trim().split('\n').sort(), [`flush chain inet vipdns ${orphan}`, 'flush chain inet vipdns c-v4-tcp-k2', `delete chain inet vipdns ${orphan}`, 'delete chain inet vipdns c-v4-tcp-k2'].sort());
  t.deepEqual(r.deleted.sort(), [orphan, 'c-v4-tcp-k2'].sort());
});

test('observe: a unit whose own chain is not intact is rewritten whole', (t) => {
  const obs = parseObserved(listing({ classComment: 'k:other' }), o);
  const u = obs.units.get('vip|10.0.9.2 . tcp . 80')!;
  t.is(u.fingerprint, '');
  const r = renderDiff(diff({ services: [(vs([{}, {}]) as { vip: VirtualService }).vip], published: [] }, obs, driver), o, obs);
  t.true(r.text.includes(`flush chain inet vipdns ${K2}\nadd rule inet vipdns ${K2} `));
  t.deepEqual([r.classes, r.deleted], [[K2], []], 'its class\'s slots are intact: only its own chain');
});

test('one backend: straight to the slot chain, no chain of its own; scaling to two gives it one, back to one deletes it', (t) => {
  const one = renderDiff({ base: false, add: [vs([{}])], change: [], remove: [], unchanged: 0 }, o, ctx());
  t.deepEqual([one.classes, one.deleted], [slotChains(1), []]);
  t.regex(one.text, /add element inet vipdns vips4 \{ 10\.0\.9\.2 \. tcp \. 80 : goto c-v4-tcp-k1-n0 \}/);
  const known = { knownClasses: new Set([...slotChains(1), ...slotChains(2)]), knownMaps: new Set(['t-v4-tcp-k1', 't-v4-tcp-k2']) };
  const up = renderDiff({ base: false, add: [], change: [{ unit: vs([{}, { ip: '10.0.9.12' }]), observed: driver.expect(vs([{}])) }], remove: [], unchanged: 0 }, o, known);
  t.deepEqual([up.classes, up.deleted], [[own('vips4', WEB, 2)], []]);
  const down = renderDiff({ base: false, add: [], change: [{ unit: vs([{}]), observed: driver.expect(vs([{}, { ip: '10.0.9.12' }])) }], remove: [], unchanged: 0 }, o, { ...known, knownClasses: new Set([...known.knownClasses, own('vips4', WEB, 2)]) });
  t.deepEqual([down.classes, down.deleted], [[], [own('vips4', WEB, 2)]]);
});
