// nftables: `nft -j list table` output → ObservedState. Pure. We only trust what we can verify cheaply:
// chain names, rule comments (which carry the hash of the rules we wrote), rule counts and map elements.
// A rule edited in place behind a matching comment is caught by the periodic full resync instead.
import { tryParseIp, formatIp } from '../../net/ip.js';
import type { ObservedState, ObservedUnit } from '../types.js';
import type { ElementRef, MapName, NftOptions, NftUnitNative } from './nftables-render.js';
import { BASE_CHAINS, MAPS, baseHash, baseRuleCounts, fingerprintOf, isUnitChain } from './nftables-render.js';

interface JChain { name: string; table: string; hook?: string; type?: string; prio?: number }
interface JRule { chain: string; table: string; comment?: string }
interface JMap { name: string; table: string; type?: unknown; elem?: unknown[] }

const MAP_NAMES = new Set<string>(Object.values(MAPS));

function canonicalKeyPart(v: unknown): string {
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') {
    const a = tryParseIp(v);
    return a ? formatIp(a) : v;
  }
  return JSON.stringify(v);
}

/** `[{concat:[ip,proto,port]}, {goto:{target}}]` → key text and target chain. */
function parseElement(e: unknown): { key: string; target: string | undefined } | undefined {
  if (!Array.isArray(e) || e.length !== 2) return undefined;
  const [k, v] = e as [unknown, unknown];
  const parts = (k as { concat?: unknown[] })?.concat;
  const key = Array.isArray(parts) ? parts.map(canonicalKeyPart).join(' . ') : canonicalKeyPart(k);
  const verdict = v as { goto?: { target?: string }; jump?: { target?: string } };
  return { key, target: verdict?.goto?.target ?? verdict?.jump?.target };
}

export function parseObserved(json: string, o: NftOptions): ObservedState {
  const doc = JSON.parse(json) as { nftables?: Record<string, unknown>[] };
  const chains = new Map<string, JChain>();
  const rules = new Map<string, JRule[]>();
  const maps = new Map<string, JMap>();
  for (const item of doc.nftables ?? []) {
    if ('chain' in item) {
      const c = item.chain as JChain;
      if (c.table === o.table) chains.set(c.name, c);
    } else if ('rule' in item) {
      const r = item.rule as JRule;
      if (r.table !== o.table) continue;
      let l = rules.get(r.chain);
      if (!l) rules.set(r.chain, (l = []));
      l.push(r);
    } else if ('map' in item) {
      const m = item.map as JMap;
      if (m.table === o.table) maps.set(m.name, m);
    }
  }

  // Scaffolding: maps present, hooked chains present, each base chain holding exactly our rules.
  let base: ObservedState['base'] = 'ok';
  const counts = baseRuleCounts(o);
  const bh = `b:${baseHash(o)}`;
  const missing = [...MAP_NAMES].some((m) => !maps.has(m)) || BASE_CHAINS.some((c) => !chains.has(c));
  if (missing) base = chains.size === 0 && maps.size === 0 ? 'missing' : 'drifted';
  else {
    for (const c of BASE_CHAINS) {
      const rs = rules.get(c) ?? [];
      if (rs.length !== counts[c] || rs.some((r) => r.comment !== bh)) base = 'drifted';
      if (c !== 'services' && chains.get(c)?.hook !== c) base = 'drifted';
    }
  }

  // Elements grouped by the chain they point at.
  const elsByChain = new Map<string, ElementRef[]>();
  const strays: ElementRef[] = [];
  for (const name of MAP_NAMES) {
    for (const e of maps.get(name)?.elem ?? []) {
      const p = parseElement(e);
      if (!p) continue;
      const ref: ElementRef = { map: name as MapName, key: p.key };
      if (p.target && isUnitChain(p.target)) {
        let l = elsByChain.get(p.target);
        if (!l) elsByChain.set(p.target, (l = []));
        l.push(ref);
      } else strays.push(ref);
    }
  }

  const units = new Map<string, ObservedUnit>();
  for (const name of chains.keys()) {
    if ((BASE_CHAINS as readonly string[]).includes(name)) continue;
    const rs = rules.get(name) ?? [];
    const elements = elsByChain.get(name) ?? [];
    // Every rule carries `h:<hash>:<count>`; anything else means someone touched the chain.
    let ruleHash = '';
    const m = /^h:([A-Za-z0-9_-]+):(\d+)$/.exec(rs[0]?.comment ?? '');
    if (m && Number(m[2]) === rs.length && rs.every((r) => r.comment === rs[0]!.comment)) ruleHash = m[1]!;
    const native: NftUnitNative = { chain: name, ruleHash, elements, hasChain: true };
    // Chains that are not unit chains are strays in our own table: observed under their name, so removed.
    const fingerprint = ruleHash && isUnitChain(name) ? fingerprintOf(ruleHash, elements) : '';
    units.set(name, { id: name, fingerprint, native });
  }
  if (strays.length) {
    const native: NftUnitNative = { chain: '', ruleHash: '', elements: strays, hasChain: false };
    units.set('#stray-elements', { id: '#stray-elements', fingerprint: '', native });
  }
  return { base, units };
}
