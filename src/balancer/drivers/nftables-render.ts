// nftables: units → `nft -f` text. Pure.
//
// Layout of our one table, `inet vipdns`:
//   services chain (from prerouting and output):
//     ip daddr . l4proto . dport vmap @vips4        → goto c-v4-…   (one element per VIP port)
//     local daddr . l4proto . dport vmap @published4 → goto c-p4-…   (and the ip6 twins)
//   c-<class>-k<W>-u<H>: rr, wrr over W ≥ 2 slots: a chain per unit (H: a hash of its dispatch key), one rule,
//                  `numgen inc mod W vmap @g-<class>-k<W>`: the unit's own round-robin counter
//   g-<class>-k<W>: slot s → goto c-<class>-k<W>-n<s>, W elements, shared by the class
//   c-<class>-k<W>-n<s>: one rule, `dnat to <key> . s map @t-<class>-k<W>`              (slot s)
//   c-<class>-h<W>: one rule, `dnat to <key> . jhash saddr mod W map @t-<class>-k<W>`    (sh, shared)
//   t-<class>-k<W>: one element per (VIP port, slot): slot → backend, W slots per unit
//   c-<class>-{k,h}<W>-s<T>: sticky (--sticky T): a dynamic map s-… keyed by VIP port and client
//     address remembers the slot picked (numgen or jhash) for T seconds after the client's last new
//     connection; the slot goes through the packet mark into m-<class>-k<W> (the slot map keyed by
//     mark). A slot always names a live backend, so a removed or unhealthy backend is never sticky;
//     a change of the slot count starts a new map (clients pick again).
// A unit's backends are *elements*, never rules: a one-endpoint change deletes and adds a few elements.
// Measured alternatives: a rule (or anonymous map) per service makes every change O(table) — nft lists
// every chain and anonymous set before any change, and the kernel re-validates every rule that jumps.
// Round robin is exact per unit: numgen's counter lives in its rule, so each rr/wrr unit has a chain
// of its own (kube-proxy's nftables layout), written when the unit is added or its W changes, deleted
// with it; a backend change with the same W touches elements only. The unit's rule only picks the
// slot: a rule that reads a data map is validated by the kernel against every element added to that
// map (and binding it walks every element), so 10,000 unit rules reading one slot map of 100,000
// elements took 15 s to load and 72 s to rewrite; through the W slot chains the map has W readers.
// Measured at 10,000 × 10 (bench:dataplane): full sync ~2.1 s (was ~1.4 s with one chain per class),
// one change ~58 ms (was ~32 ms: nft lists every chain before any change). sh and sticky classes have
// no counter to be exact about and stay shared; nor has a unit of one slot (one backend, common),
// which goes straight to slot chain n0 with no chain of its own.
import { createHash } from 'node:crypto';
import type { Backend, Diff, DriverLimits, Family, Protocol, Scheduler, Unit } from '../types.js';

export interface NftOptions {
  table: string; // in family inet
  /** Packet mark bit that asks our postrouting chain to masquerade; 0 disables masquerading. */
  masqueradeMark: number;
}

export const DEFAULT_NFT_OPTIONS: NftOptions = { table: 'vipdns', masqueradeMark: 0x4000 };

export const DISPATCH = { vips4: 'vips4', vips6: 'vips6', published4: 'published4', published6: 'published6' } as const;
export const BASE_CHAINS = ['prerouting', 'output', 'postrouting', 'services', 'c-none'] as const;
/** Slots per unit beyond this would bloat maps: larger weights are scaled down (one slot per backend at least). */
export const MAX_SLOTS = 256;

export type ClassKind = 'v4' | 'v6' | 'p4' | 'p6';
/** How a class chain picks a slot: a round-robin counter, or a hash of the client's address. */
export type Pick = 'inc' | 'hash';

/** What this dataplane cannot do, said to the user instead of programming something else. */
export const NFT_LIMITS: DriverLimits = {
  schedulers: { lc: 'the nftables dataplane has no least-connections scheduler (nftables keeps no per-backend connection counts); use rr, wrr or sh, or run with --dataplane ipvs' },
};
/** Clients remembered per sticky class map (client address × VIP port). */
export const STICKY_SIZE = 1 << 20;
// The hash seed is fixed, so a client keeps its backend across restarts and re-programming.
const HASH_SEED = '0x76697064';

/** One map element as text: `map`, `key`, `value` (verdict or data), compared as strings. */
export interface Elem {
  map: string;
  key: string;
  value: string;
}

/** The driver's record of a unit: its elements, as rendered or as read back. */
export interface NftUnitNative {
  elements: Elem[];
  /** Observed only: a chain or map of ours that no unit owns (removed as a whole). */
  stray?: { chain?: string; map?: string };
}

export function shortHash(text: string): string {
  return createHash('sha256').update(text).digest('base64url').slice(0, 16);
}

/**
 * A class: dispatch kind (VIP or published, per family), protocol, slot count W, and how a slot is
 * picked. Both picks of a kind, protocol and W share one slot map (its key is the same integer).
 * A round-robin class (inc, not sticky) has no chain of its own: a chain per unit and one per slot.
 */
export interface Klass {
  kind: ClassKind;
  proto: Protocol;
  w: number;
  pick: Pick;
  /** Seconds a client keeps its slot (sticky sessions); absent = none. */
  sticky?: number;
  /** Round robin: a unit's own chain (its own counter), by the hash of its dispatch key. */
  unit?: string;
  /** Round robin: the chain of one slot (0 ≤ slot < W), which the class's goto map names. */
  slot?: number;
}
const pickTag = (c: Klass) => `${c.pick === 'hash' ? 'h' : 'k'}${c.w}${c.sticky ? `-s${c.sticky}` : ''}`;
export const classChain = (c: Klass) => `c-${c.kind}-${c.proto}-${pickTag(c)}${c.unit ? `-u${c.unit}` : c.slot !== undefined ? `-n${c.slot}` : ''}`;
/** Round robin without memory: its counter must be the unit's own, so each unit has its own chain. */
export const perUnit = (c: { pick: Pick; sticky?: number }): boolean => c.pick === 'inc' && !c.sticky;
/** A round-robin class's map from slot to slot chain, read by its units' chains. */
export const gotoMap = (c: Klass) => `g-${c.kind}-${c.proto}-k${c.w}`;
/** The class without a unit or slot: what its maps and shared pieces are named by. */
export const classBase = (c: Klass): Klass => ({ kind: c.kind, proto: c.proto, w: c.w, pick: c.pick, ...(c.sticky ? { sticky: c.sticky } : {}) });
/** The unit part of a unit chain's name: 12 hex digits of a hash of its dispatch map and key. */
export function unitHash(dispatch: string, key: string): string {
  return createHash('sha256').update(`${dispatch}|${key}`).digest('hex').slice(0, 12);
}
/** The slot map: keyed by the slot number (t-), or for sticky classes by the packet mark (m-). */
export const classMap = (c: Klass) => `${c.sticky ? 'm' : 't'}-${c.kind}-${c.proto}-k${c.w}`;
/** A sticky class's memory of clients: VIP port . client address → slot (as a packet mark). */
export const stickyMap = (c: Klass) => `s-${c.kind}-${c.proto}-${pickTag(c)}`;
export const CLASS_RE = /^[ctmsg]-(v4|v6|p4|p6)-(tcp|udp)-([kh])([1-9]\d{0,3})(?:-s([1-9]\d{0,6})|-u([0-9a-f]{12})|-n(0|[1-9]\d{0,3}))?$/;

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/**
 * W slots over the active backends, proportional to weight and interleaved (smooth weighted round robin),
 * so consecutive connections alternate even with unequal weights. Equal weights: backends in order.
 */
export function slots(backends: Backend[], scheduler: Scheduler = 'wrr'): Backend[] {
  const active = backends.filter((b) => b.weight > 0);
  if (active.length === 0) return [];
  // rr ignores weights (as IPVS's rr does), but for 0: a drained backend takes no new connections.
  const weight = (b: Backend): number => (scheduler === 'rr' ? 1 : b.weight);
  const g = active.reduce((acc, b) => gcd(acc, weight(b)), 0);
  let w = active.map((b) => weight(b) / g);
  const total = w.reduce((a, b) => a + b, 0);
  if (total > MAX_SLOTS) {
    // Scale down, keeping every backend at least one slot, then trim the largest to fit.
    w = w.map((x) => Math.max(1, Math.floor((x * MAX_SLOTS) / total)));
    for (let sum = w.reduce((a, b) => a + b, 0); sum > MAX_SLOTS; sum--) {
      const i = w.indexOf(Math.max(...w));
      if (w[i]! <= 1) break; // more backends than slots: every one keeps its single slot
      w[i]!--;
    }
  }
  const W = w.reduce((a, b) => a + b, 0);
  const current = w.map(() => 0);
  const out: Backend[] = [];
  for (let s = 0; s < W; s++) {
    let best = 0;
    for (let i = 0; i < w.length; i++) {
      current[i]! += w[i]!;
      if (current[i]! > current[best]!) best = i;
    }
    current[best]! -= W;
    out.push(active[best]!);
  }
  return out;
}

const familyOf = (ip: string): Family => (ip.includes(':') ? 6 : 4);

/** The unit's identity in the kernel: its dispatch key, which is what observe() can read back. */
export function unitId(u: Unit): string {
  return u.kind === 'vip' ? `vip|${u.vip.vip} . ${u.vip.protocol} . ${u.vip.port}` : `pub|${u.published.protocol} . ${u.published.port}`;
}

/**
 * Every element a unit owns. A unit without active backends dispatches to c-none (counted, not NATed).
 * `markBase`: the masquerade mark, which sticky slot keys carry (the slot travels in the packet mark).
 */
export function unitElements(u: Unit, markBase = DEFAULT_NFT_OPTIONS.masqueradeMark): Elem[] {
  const out: Elem[] = [];
  const sched = u.kind === 'vip' ? u.vip.scheduler : u.published.scheduler;
  const sticky = u.kind === 'vip' ? u.vip.persistence : u.published.persistence;
  const pick: Pick = sched === 'sh' ? 'hash' : 'inc';
  const add = (dispatch: string, kind: ClassKind, proto: Protocol, key: string, picks: Backend[]) => {
    if (picks.length === 0) {
      out.push({ map: dispatch, key, value: 'goto c-none' });
      return;
    }
    const k: Klass = { kind, proto, w: picks.length, pick, ...(sticky ? { sticky } : {}) };
    // Round robin over one slot has no counter to keep: straight to the class's slot chain, no chain
    // of its own (single-replica services are common, and every chain costs each later nft run).
    const target = !perUnit(k) ? k : k.w === 1 ? { ...k, slot: 0 } : { ...k, unit: unitHash(dispatch, key) };
    out.push({ map: dispatch, key, value: `goto ${classChain(target)}` });
    const map = classMap(k);
    const base = sticky ? markBase : 0;
    picks.forEach((b, s) => out.push({ map, key: `${key} . ${base + s}`, value: `${b.ip} . ${b.port}` }));
  };
  if (u.kind === 'vip') {
    const v = u.vip;
    const f = v.family;
    add(f === 6 ? DISPATCH.vips6 : DISPATCH.vips4, f === 6 ? 'v6' : 'v4', v.protocol, `${v.vip} . ${v.protocol} . ${v.port}`, slots(v.backends, sched));
  } else {
    const p = u.published;
    const key = `${p.protocol} . ${p.port}`;
    for (const f of [4, 6] as const) {
      const picks = slots(
        p.backends.filter((b) => familyOf(b.ip) === f),
        sched,
      );
      // A family without backends gets no dispatch at all: that family's packets stay local.
      if (picks.length > 0) add(f === 6 ? DISPATCH.published6 : DISPATCH.published4, f === 6 ? 'p6' : 'p4', p.protocol, key, picks);
    }
    if (out.length === 0) out.push({ map: DISPATCH.published4, key, value: 'goto c-none' });
  }
  return out;
}

export function elemLine(e: Elem): string {
  return `${e.map}|${e.key}|${e.value}`;
}

export function fingerprintOf(els: Elem[]): string {
  return shortHash(els.map(elemLine).sort().join('\n'));
}

// ---- class chains and maps ----

export function classRule(c: Klass, o: NftOptions): string {
  if (c.sticky) return stickyRule(c, o);
  // A unit's own chain: its counter picks the slot chain, which does the rest.
  if (c.unit) return `numgen inc mod ${c.w} vmap @${gotoMap(c)}`;
  // The packet mark asks postrouting to masquerade; the same bit on the conntrack entry lets our
  // iptables FORWARD accept (forward-guard.ts) pass both directions of the flow.
  const mark = o.masqueradeMark ? `meta mark set meta mark | ${hex(o.masqueradeMark)} ct mark set ct mark | ${hex(o.masqueradeMark)} ` : '';
  const ng = `${slotPick(c)} map @${classMap(c)}`;
  switch (c.kind) {
    case 'v4':
      return `${mark}dnat ip to ip daddr . meta l4proto . th dport . ${ng}`;
    case 'v6':
      return `${mark}dnat ip6 to ip6 daddr . meta l4proto . th dport . ${ng}`;
    case 'p4':
      return `${mark}dnat ip to meta l4proto . th dport . ${ng}`;
    case 'p6':
      return `${mark}dnat ip6 to meta l4proto . th dport . ${ng}`;
  }
}

function slotPick(c: Klass): string {
  if (c.pick === 'hash') return `jhash ${c.kind.endsWith('6') ? 'ip6' : 'ip'} saddr mod ${c.w} seed ${HASH_SEED}`;
  // A slot chain's constant slot: nft 1.0 takes no constant inside a concatenation, and a counter
  // modulo 1 is always 0, so this is `slot` (as an integer of numgen's type, like the map's key).
  if (c.slot !== undefined) return `numgen inc mod 1 offset ${c.slot}`;
  return `numgen inc mod ${c.w}`;
}

/** The unit's key fields (what the dispatch map matched) as packet expressions. */
function unitKeyExpr(c: Klass): string {
  const ip = c.kind.endsWith('6') ? 'ip6' : 'ip';
  return c.kind.startsWith('v') ? `${ip} daddr . meta l4proto . th dport` : 'meta l4proto . th dport';
}

/**
 * What a sticky class remembers a slot by: the unit's key and the client address. For IPv6 VIPs
 * without the VIP: nft 1.0 cannot build a dynamic-map key holding two IPv6 addresses and a value
 * (an assertion in its register allocation). Then VIPs of one class on one port share a client's
 * slot number, which still names a live backend of each.
 */
function stickyKeyExpr(c: Klass): string {
  const ip = c.kind.endsWith('6') ? 'ip6' : 'ip';
  return c.kind === 'v6' ? `meta l4proto . th dport . ip6 saddr` : `${unitKeyExpr(c)} . ${ip} saddr`;
}

/**
 * A sticky class's one rule: remember a slot for (unit, client) unless one is remembered (then only
 * its timeout restarts), read it into the packet mark, DNAT through the mark-keyed slot map. The
 * remembered value is the masquerade mark plus the slot, so the mark also asks for masquerading.
 */
function stickyRule(c: Klass, o: NftOptions): string {
  const ip = c.kind.endsWith('6') ? 'ip6' : 'ip';
  const client = stickyKeyExpr(c);
  const offset = o.masqueradeMark ? ` offset ${hex(o.masqueradeMark)}` : '';
  const ct = o.masqueradeMark ? `ct mark set ct mark | ${hex(o.masqueradeMark)} ` : '';
  return (
    `update @${stickyMap(c)} { ${client} timeout ${c.sticky}s : ${slotPick(c)}${offset} } ` +
    `meta mark set ${client} map @${stickyMap(c)} ${ct}dnat ${ip} to ${unitKeyExpr(c)} . meta mark map @${classMap(c)}`
  );
}

export function classComment(c: Klass, o: NftOptions): string {
  return `k:${shortHash(classRule(c, o))}`;
}

// The data half names the protocol (`tcp dport`/`udp dport`), so each class is per protocol: nft derives a
// `meta l4proto` check from it, and fails to re-read an existing map whose data is `… . th dport`.
function classMapType(c: Klass): string {
  const ng = c.sticky ? 'meta mark' : `numgen inc mod ${c.w}`;
  const port = `${c.proto} dport`;
  switch (c.kind) {
    case 'v4':
      return `typeof ip daddr . meta l4proto . th dport . ${ng} : ip daddr . ${port}`;
    case 'v6':
      return `typeof ip6 daddr . meta l4proto . th dport . ${ng} : ip6 daddr . ${port}`;
    case 'p4':
      return `typeof meta l4proto . th dport . ${ng} : ip daddr . ${port}`;
    case 'p6':
      return `typeof meta l4proto . th dport . ${ng} : ip6 daddr . ${port}`;
  }
}

/**
 * (Re)creates a class chain (shared, a unit's own or a slot's) and rewrites its one rule; creates its
 * slot map unless it exists. A unit's chain needs its class's slot chains and goto map: renderSlots.
 */
export function renderClass(c: Klass, o: NftOptions, out: string[], mapExists: boolean): void {
  const t = `inet ${o.table}`;
  const chain = classChain(c);
  if (!mapExists && !c.unit) out.push(`add map ${t} ${classMap(c)} { ${classMapType(c)} ; }`);
  if (c.sticky) {
    // `add` leaves an existing map (and the clients it remembers) as it is.
    out.push(`add map ${t} ${stickyMap(c)} { typeof ${stickyKeyExpr(c)} : meta mark ; flags dynamic,timeout ; timeout ${c.sticky}s ; size ${STICKY_SIZE} ; }`);
  }
  out.push(`add chain ${t} ${chain}`, `flush chain ${t} ${chain}`);
  out.push(`add rule ${t} ${chain} ${classRule(c, o)} comment "${classComment(c, o)}"`);
}

/**
 * A round-robin class's slot chains and goto map, (re)written whole: each slot chain's rule, then the
 * map's W elements (flushed first: a stale element would name another chain).
 */
export function renderSlots(c: Klass, o: NftOptions, out: string[], mapExists: boolean): void {
  const t = `inet ${o.table}`;
  const base = classBase(c);
  for (let s = 0; s < c.w; s++) renderClass({ ...base, slot: s }, o, out, mapExists || s > 0);
  out.push(`add map ${t} ${gotoMap(c)} { typeof numgen inc mod ${c.w} : verdict ; }`, `flush map ${t} ${gotoMap(c)}`);
  out.push(`add element ${t} ${gotoMap(c)} { ${slotGotos(c).map((e) => `${e.key} : ${e.value}`).join(', ')} }`);
}

/** The goto map's elements: slot → goto its slot chain. */
export function slotGotos(c: Klass): Omit<Elem, 'map'>[] {
  const base = classBase(c);
  return Array.from({ length: c.w }, (_, s) => ({ key: String(s), value: `goto ${classChain({ ...base, slot: s })}` }));
}

/** The class of a chain we render (shared, a round-robin unit's own, or a slot's); else undefined. */
export function classOf(chain: string): Klass | undefined {
  const m = CLASS_RE.exec(chain);
  if (!m || !chain.startsWith('c-')) return undefined;
  const c: Klass = { kind: m[1] as ClassKind, proto: m[2] as Protocol, w: Number(m[4]), pick: m[3] === 'h' ? 'hash' : 'inc', ...(m[5] ? { sticky: Number(m[5]) } : {}), ...(m[6] ? { unit: m[6] } : {}), ...(m[7] ? { slot: Number(m[7]) } : {}) };
  // Only round-robin classes have unit and slot chains, and slots only below W.
  if ((c.unit || c.slot !== undefined) && !perUnit(c)) return undefined;
  return c.slot === undefined || c.slot < c.w ? c : undefined;
}

// ---- scaffolding ----

function baseRules(o: NftOptions): Record<(typeof BASE_CHAINS)[number], string[]> {
  const m = hex(o.masqueradeMark);
  return {
    prerouting: ['jump services'],
    output: ['jump services'],
    postrouting: o.masqueradeMark ? [`meta mark & ${m} == ${m} meta mark set meta mark ^ ${m} masquerade fully-random`] : [],
    services: [
      `ip daddr . meta l4proto . th dport vmap @${DISPATCH.vips4}`,
      `ip6 daddr . meta l4proto . th dport vmap @${DISPATCH.vips6}`,
      // Published ports answer on every local address but loopback (DNAT from 127/8 would need route_localnet).
      `ip daddr != 127.0.0.0/8 fib daddr type local meta l4proto . th dport vmap @${DISPATCH.published4}`,
      `ip6 daddr != ::1 fib daddr type local meta l4proto . th dport vmap @${DISPATCH.published6}`,
    ],
    // VIP ports without a backend: counted, then the host answers (RST / port unreachable).
    'c-none': ['counter'],
  };
}

const HOOKS: Partial<Record<(typeof BASE_CHAINS)[number], string>> = {
  prerouting: 'type nat hook prerouting priority -100 ; policy accept ;',
  output: 'type nat hook output priority -100 ; policy accept ;',
  postrouting: 'type nat hook postrouting priority 100 ; policy accept ;',
};

/** Identity of the scaffolding, kept in its rules' comments; changes when its rendering changes. */
export function baseHash(o: NftOptions): string {
  return shortHash(JSON.stringify(baseRules(o)) + JSON.stringify(HOOKS));
}

export function baseRuleCounts(o: NftOptions): Record<string, number> {
  const r = baseRules(o);
  return Object.fromEntries(BASE_CHAINS.map((c) => [c, r[c].length]));
}

function renderBase(o: NftOptions, out: string[]): void {
  const t = `inet ${o.table}`;
  const h = baseHash(o);
  out.push(`add table ${t}`);
  out.push(`add map ${t} ${DISPATCH.vips4} { type ipv4_addr . inet_proto . inet_service : verdict ; }`);
  out.push(`add map ${t} ${DISPATCH.vips6} { type ipv6_addr . inet_proto . inet_service : verdict ; }`);
  out.push(`add map ${t} ${DISPATCH.published4} { type inet_proto . inet_service : verdict ; }`);
  out.push(`add map ${t} ${DISPATCH.published6} { type inet_proto . inet_service : verdict ; }`);
  const rules = baseRules(o);
  // All chains exist before any rule jumps to one.
  for (const c of BASE_CHAINS) out.push(`add chain ${t} ${c}${HOOKS[c] ? ` { ${HOOKS[c]} }` : ''}`);
  for (const c of BASE_CHAINS) {
    out.push(`flush chain ${t} ${c}`);
    for (const r of rules[c]) out.push(`add rule ${t} ${c} ${r} comment "b:${h}"`);
  }
}

// ---- transactions ----

const ELEMENT_BATCH = 1000;

/** Element text for nft input: IPv6 addresses in concatenations are bracketed. */
function part(p: string): string {
  return p.includes(':') && !p.startsWith('goto') ? `[${p}]` : p;
}
function text(s: string): string {
  return s.startsWith('goto ') ? s : s.split(' . ').map(part).join(' . ');
}

function pushElements(out: string[], verb: 'add' | 'delete', table: string, els: Elem[]): void {
  const byMap = new Map<string, Elem[]>();
  for (const e of els) {
    let l = byMap.get(e.map);
    if (!l) byMap.set(e.map, (l = []));
    l.push(e);
  }
  for (const [map, list] of byMap) {
    for (let i = 0; i < list.length; i += ELEMENT_BATCH) {
      const items = list.slice(i, i + ELEMENT_BATCH).map((e) => (verb === 'add' ? `${text(e.key)} : ${text(e.value)}` : text(e.key)));
      out.push(`${verb} element inet ${table} ${map} { ${items.join(', ')} }`);
    }
  }
}

export interface RenderContext {
  /**
   * Class chains (shared, units' own, slots') known to be intact in the kernel; others are (re)created
   * before use. A round-robin class's slot chains are known together with its goto map, or not at all.
   */
  knownClasses: Set<string>;
  /** Class maps known to exist. */
  knownMaps: Set<string>;
}

export interface Rendered {
  text: string;
  ops: number;
  /** Class chains this transaction (re)writes (a round-robin class's slot chains with their goto map). */
  classes: string[];
  /** Chains this transaction deletes: units' own chains their unit left, and stray chains. */
  deleted: string[];
}

const gotoTarget = (e: Elem): string | undefined => (e.value.startsWith('goto c-') ? e.value.slice('goto '.length) : undefined);
const isUnitChain = (name: string): boolean => classOf(name)?.unit !== undefined;

/**
 * One `nft -f` transaction for a diff. Order inside it: stale elements go first (a changed element is a
 * delete plus an add of the same key), then the scaffolding, stray objects and the units' own chains
 * their dispatch element no longer names, class chains, new elements.
 */
export function renderDiff(d: Diff, o: NftOptions, ctx: RenderContext, expect: (u: Unit) => Elem[] = (u) => unitElements(u, o.masqueradeMark)): Rendered {
  const t = o.table;
  const out: string[] = [];
  const del: Elem[] = [];
  const add: Elem[] = [];
  const strays: { chain?: string; map?: string }[] = [];

  for (const r of d.remove) {
    const n = r.native as NftUnitNative | undefined;
    if (!n) continue;
    del.push(...n.elements);
    if (n.stray) strays.push(n.stray);
  }
  for (const { unit, observed } of d.change) {
    const want = expect(unit);
    const have = (observed.native as NftUnitNative | undefined)?.elements ?? [];
    // An unreadable unit is rewritten whole; otherwise only the elements that differ.
    const whole = observed.fingerprint === '';
    const haveSet = new Set(have.map(elemLine));
    const wantSet = new Set(want.map(elemLine));
    for (const e of have) if (whole || !wantSet.has(elemLine(e))) del.push(e);
    for (const e of want) if (whole || !haveSet.has(elemLine(e))) add.push(e);
  }
  for (const unit of d.add) add.push(...expect(unit));

  // A unit's own chain goes once its dispatch element is deleted, unless an element added here names it.
  const targeted = new Set<string>();
  for (const e of add) {
    const chain = gotoTarget(e);
    if (chain) targeted.add(chain);
  }
  const gone = new Set<string>();
  for (const e of del) {
    const chain = gotoTarget(e);
    if (chain && !targeted.has(chain) && isUnitChain(chain)) gone.add(chain);
  }
  for (const s of strays) if (s.chain && !targeted.has(s.chain)) gone.add(s.chain);

  pushElements(out, 'delete', t, del);
  if (d.base) renderBase(o, out);
  // Chains before stray maps: a stray rule may reference a stray map, or jump to another stray chain.
  for (const chain of gone) out.push(`flush chain inet ${t} ${chain}`);
  for (const chain of gone) out.push(`delete chain inet ${t} ${chain}`);
  for (const s of strays) if (s.map) out.push(`delete map inet ${t} ${s.map}`);
  const classes = new Set<string>();
  const maps = new Set(ctx.knownMaps); // and those made here
  const write = (name: string, c: Klass) => {
    if (classes.has(name)) return;
    if (c.unit !== undefined || c.slot !== undefined) {
      // A round-robin class's slots are written whole, once, when not known intact (or with the scaffolding).
      const slot0 = classChain({ ...classBase(c), slot: 0 });
      if (!classes.has(slot0) && (d.base || !ctx.knownClasses.has(slot0))) {
        renderSlots(c, o, out, maps.has(classMap(c)));
        maps.add(classMap(c));
        for (let s = 0; s < c.w; s++) classes.add(classChain({ ...classBase(c), slot: s }));
      }
      if (c.slot !== undefined) return;
    }
    classes.add(name);
    renderClass(c, o, out, maps.has(classMap(c)));
    if (c.unit === undefined) maps.add(classMap(c));
  };
  // Rewriting the scaffolding (drift, or a forced resync) rewrites every class chain in use too.
  if (d.base) {
    for (const name of ctx.knownClasses) {
      const c = classOf(name);
      if (c && !gone.has(name)) write(name, c);
    }
  }
  for (const name of targeted) {
    const c = classOf(name);
    if (c && !ctx.knownClasses.has(name)) write(name, c);
  }
  pushElements(out, 'add', t, add);
  return { text: out.length ? out.join('\n') + '\n' : '', ops: out.length, classes: [...classes], deleted: [...gone] };
}
