// nftables: units → `nft -f` text. Pure. One table of our own; per unit one chain holding one DNAT rule
// per family (numgen over an anonymous map), reached from a verdict map element. A one-endpoint change
// therefore rewrites one chain, and the map element only when the VIP itself changes.
import { createHash } from 'node:crypto';
import type { Backend, Diff, Family, Unit } from '../types.js';

export interface NftOptions {
  table: string; // in family inet
  /** Packet mark bit that asks our postrouting chain to masquerade; 0 disables masquerading. */
  masqueradeMark: number;
}

export const DEFAULT_NFT_OPTIONS: NftOptions = { table: 'vipdns', masqueradeMark: 0x4000 };

export const MAPS = { vips4: 'vips4', vips6: 'vips6', published: 'published' } as const;
export type MapName = (typeof MAPS)[keyof typeof MAPS];
export const BASE_CHAINS = ['prerouting', 'output', 'postrouting', 'services'] as const;

/** A verdict-map element as text, e.g. `10.0.9.2 . tcp . 80` in map vips4. */
export interface ElementRef {
  map: MapName;
  key: string;
}

/** The driver's record of one unit chain, both rendered and observed. */
export interface NftUnitNative {
  chain: string;
  ruleHash: string; // '' = rules not ours or unreadable: rewrite
  elements: ElementRef[];
  hasChain: boolean; // false for a stray element whose chain is not a unit chain
}

const SAFE = /^[A-Za-z0-9_./-]{1,200}$/;

export function shortHash(text: string): string {
  return createHash('sha256').update(text).digest('base64url').slice(0, 16);
}

export function unitKey(u: Unit): string {
  return u.kind === 'vip' ? u.vip.key : u.published.key;
}

/** Chain name: readable where the key is a valid nft identifier, else hashed. Prefixes keep kinds apart. */
export function chainName(u: Unit): string {
  const key = unitKey(u);
  const p = u.kind === 'vip' ? 'vip' : 'pub';
  return SAFE.test(key) ? `${p}-${key}` : `${p}x-${shortHash(key)}`;
}

export function isUnitChain(name: string): boolean {
  return /^(vip|pub)x?-/.test(name);
}

function addr(ip: string, family: Family): string {
  return family === 6 ? `[${ip}]` : ip;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/** `numgen inc mod N map {...}`: each active backend owns a slice proportional to its weight. */
function spread(backends: Backend[], family: Family): string | undefined {
  const active = backends.filter((b) => b.weight > 0);
  if (active.length === 0) return undefined;
  const g = active.reduce((acc, b) => gcd(acc, b.weight), 0);
  let at = 0;
  const parts: string[] = [];
  for (const b of active) {
    const w = b.weight / g;
    const slot = w === 1 ? `${at}` : `${at}-${at + w - 1}`;
    parts.push(`${slot} : ${addr(b.ip, family)} . ${b.port}`);
    at += w;
  }
  return `numgen inc mod ${at} map { ${parts.join(', ')} }`;
}

function family(ip: string): Family {
  return ip.includes(':') ? 6 : 4;
}

/** Rule bodies of a unit chain, without comments. Never empty: a `counter` keeps the chain verifiable. */
export function unitRules(u: Unit, o: NftOptions): string[] {
  const mark = o.masqueradeMark ? `meta mark set meta mark | ${hex(o.masqueradeMark)} ` : '';
  const rules: string[] = [];
  if (u.kind === 'vip') {
    const s = u.vip;
    const to = spread(s.backends, s.family);
    if (to) rules.push(`meta l4proto ${s.protocol} ${mark}dnat ${s.family === 6 ? 'ip6' : 'ip'} to ${to}`);
  } else {
    const p = u.published;
    for (const f of [4, 6] as const) {
      const to = spread(p.backends.filter((b) => family(b.ip) === f), f);
      if (to) rules.push(`meta nfproto ipv${f} meta l4proto ${p.protocol} ${mark}dnat ${f === 6 ? 'ip6' : 'ip'} to ${to}`);
    }
  }
  // No backend: the packet falls through to the host, which answers RST / port unreachable.
  if (rules.length === 0) rules.push('counter');
  return rules;
}

export function unitElements(u: Unit): ElementRef[] {
  if (u.kind === 'vip') {
    const s = u.vip;
    return [{ map: s.family === 6 ? MAPS.vips6 : MAPS.vips4, key: `${s.vip} . ${s.protocol} . ${s.port}` }];
  }
  return [{ map: MAPS.published, key: `${u.published.protocol} . ${u.published.port}` }];
}

export function elementsText(els: ElementRef[]): string {
  return els.map((e) => `${e.map}:${e.key}`).sort().join(',');
}

/** The fingerprint compares what is programmed: the rule hash (kept in rule comments) plus the map elements. */
export function fingerprintOf(ruleHash: string, els: ElementRef[]): string {
  return `${ruleHash}|${elementsText(els)}`;
}

export function renderUnit(u: Unit, o: NftOptions): { native: NftUnitNative; rules: string[] } {
  const rules = unitRules(u, o);
  const ruleHash = shortHash(rules.join('\n'));
  return { native: { chain: chainName(u), ruleHash, elements: unitElements(u), hasChain: true }, rules };
}

export function ruleComment(ruleHash: string, n: number): string {
  return `h:${ruleHash}:${n}`;
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

// ---- scaffolding ----

function baseRules(o: NftOptions): Record<(typeof BASE_CHAINS)[number], string[]> {
  const m = hex(o.masqueradeMark);
  return {
    prerouting: ['jump services'],
    output: ['jump services'],
    postrouting: o.masqueradeMark ? [`meta mark & ${m} == ${m} meta mark set meta mark ^ ${m} masquerade fully-random`] : [],
    services: [
      `ip daddr . meta l4proto . th dport vmap @${MAPS.vips4}`,
      `ip6 daddr . meta l4proto . th dport vmap @${MAPS.vips6}`,
      // Published ports answer on every local address but loopback (DNAT from 127/8 would need route_localnet).
      `ip daddr != 127.0.0.0/8 fib daddr type local meta l4proto . th dport vmap @${MAPS.published}`,
      `ip6 daddr != ::1 fib daddr type local meta l4proto . th dport vmap @${MAPS.published}`,
    ],
  };
}

const HOOKS = {
  prerouting: 'type nat hook prerouting priority -100 ; policy accept ;',
  output: 'type nat hook output priority -100 ; policy accept ;',
  postrouting: 'type nat hook postrouting priority 100 ; policy accept ;',
} as const;

/** Identity of the scaffolding, kept in its rules' comments; changes when its rendering changes. */
export function baseHash(o: NftOptions): string {
  return shortHash(JSON.stringify(baseRules(o)) + JSON.stringify(HOOKS));
}

/** Expected rule count per base chain, for observing. */
export function baseRuleCounts(o: NftOptions): Record<string, number> {
  const r = baseRules(o);
  return Object.fromEntries(BASE_CHAINS.map((c) => [c, r[c].length]));
}

function renderBase(o: NftOptions, out: string[]): void {
  const t = `inet ${o.table}`;
  const h = baseHash(o);
  out.push(`add table ${t}`);
  out.push(`add map ${t} ${MAPS.vips4} { type ipv4_addr . inet_proto . inet_service : verdict ; }`);
  out.push(`add map ${t} ${MAPS.vips6} { type ipv6_addr . inet_proto . inet_service : verdict ; }`);
  out.push(`add map ${t} ${MAPS.published} { type inet_proto . inet_service : verdict ; }`);
  const rules = baseRules(o);
  // All chains exist before any rule jumps to one.
  for (const c of BASE_CHAINS) out.push(`add chain ${t} ${c}${c === 'services' ? '' : ` { ${HOOKS[c]} }`}`);
  for (const c of BASE_CHAINS) {
    out.push(`flush chain ${t} ${c}`);
    for (const r of rules[c]) out.push(`add rule ${t} ${c} ${r} comment "b:${h}"`);
  }
}

const ELEMENT_BATCH = 500;

function pushElements(out: string[], verb: 'add' | 'delete', table: string, els: ElementRef[], withVerdict: Map<ElementRef, string>): void {
  const byMap = new Map<MapName, ElementRef[]>();
  for (const e of els) {
    let l = byMap.get(e.map);
    if (!l) byMap.set(e.map, (l = []));
    l.push(e);
  }
  for (const [map, list] of byMap) {
    for (let i = 0; i < list.length; i += ELEMENT_BATCH) {
      const items = list.slice(i, i + ELEMENT_BATCH).map((e) => (verb === 'add' ? `${keyText(e)} : goto ${withVerdict.get(e)}` : keyText(e)));
      out.push(`${verb} element inet ${table} ${map} { ${items.join(', ')} }`);
    }
  }
}

/** IPv6 addresses in concatenated keys need brackets to be parsed back. */
function keyText(e: ElementRef): string {
  if (e.map !== MAPS.vips6) return e.key;
  const [ip, ...rest] = e.key.split(' . ');
  return [`[${ip}]`, ...rest].join(' . ');
}

/**
 * One `nft -f` transaction for a diff. Order matters inside it: stale elements go before their chains,
 * the scaffolding exists before unit chains, and chains exist before elements point at them.
 * (A jump from one stray chain into another can still fail the delete; the error then names the chain.)
 */
export function renderDiff(d: Diff, o: NftOptions): { text: string; ops: number } {
  const t = o.table;
  const out: string[] = [];
  const delEls: ElementRef[] = [];
  const addEls: ElementRef[] = [];
  const verdict = new Map<ElementRef, string>();
  const chains: string[] = [];

  for (const r of d.remove) {
    const n = r.native as NftUnitNative | undefined;
    if (!n) continue;
    delEls.push(...n.elements);
  }
  for (const { unit, observed } of d.change) {
    const want = renderUnit(unit, o);
    const have = observed.native as NftUnitNative | undefined;
    const haveEls = new Set((have?.elements ?? []).map((e) => `${e.map}:${e.key}`));
    const wantEls = new Set(want.native.elements.map((e) => `${e.map}:${e.key}`));
    for (const e of have?.elements ?? []) if (!wantEls.has(`${e.map}:${e.key}`)) delEls.push(e);
    for (const e of want.native.elements) {
      if (haveEls.has(`${e.map}:${e.key}`)) continue;
      addEls.push(e);
      verdict.set(e, want.native.chain);
    }
    // Always rewrite the chain: cheap (one rule per family), and a forced resync relies on it.
    chains.push(`add chain inet ${t} ${want.native.chain}`, `flush chain inet ${t} ${want.native.chain}`);
    for (const r of want.rules) chains.push(`add rule inet ${t} ${want.native.chain} ${r} comment "${ruleComment(want.native.ruleHash, want.rules.length)}"`);
  }
  for (const unit of d.add) {
    const want = renderUnit(unit, o);
    chains.push(`add chain inet ${t} ${want.native.chain}`);
    for (const r of want.rules) chains.push(`add rule inet ${t} ${want.native.chain} ${r} comment "${ruleComment(want.native.ruleHash, want.rules.length)}"`);
    for (const e of want.native.elements) {
      addEls.push(e);
      verdict.set(e, want.native.chain);
    }
  }

  pushElements(out, 'delete', t, delEls, verdict);
  // Scaffolding before chain deletes: rewriting base chains drops any foreign jump into a chain we delete.
  if (d.base) renderBase(o, out);
  for (const r of d.remove) {
    const n = r.native as NftUnitNative | undefined;
    if (n?.hasChain) out.push(`flush chain inet ${t} ${n.chain}`, `delete chain inet ${t} ${n.chain}`);
  }
  out.push(...chains);
  pushElements(out, 'add', t, addEls, verdict);
  return { text: out.length ? out.join('\n') + '\n' : '', ops: out.length };
}
