// nftables: `nft -j list table` output → ObservedState. Pure. Units are rebuilt from map elements, which
// are data the kernel returns exactly, so any edited, missing or extra element shows as a changed
// fingerprint. Rules (scaffolding, class chains) are verified by count and by the hash in their comment.
// An rr/wrr unit's own chain that no dispatch element names (its unit gone, or a crash between two
// transactions) is a stray, removed like any chain that is not ours. A round-robin class's slot
// chains and goto map are verified together: every slot chain's rule, and the map's exact elements.
import { formatIp, tryParseIp } from '../../net/ip.js';
import type { ObservedState, ObservedUnit } from '../types.js';
import type { Elem, NftOptions, NftUnitNative } from './nftables-render.js';
import { BASE_CHAINS, CLASS_RE, DISPATCH, baseHash, baseRuleCounts, classBase, classChain, classComment, classMap, classOf, fingerprintOf, gotoMap, perUnit, slotGotos, stickyMap, type Klass } from './nftables-render.js';

interface JChain { name: string; table: string; hook?: string }
interface JRule { chain: string; table: string; comment?: string }
interface JMap { name: string; table: string; elem?: unknown[] }

const DISPATCH_MAPS = new Set<string>(Object.values(DISPATCH));

function canonicalPart(v: unknown): string {
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') {
    const a = tryParseIp(v);
    return a ? formatIp(a) : v;
  }
  return JSON.stringify(v);
}

function concatText(v: unknown): string[] {
  const parts = (v as { concat?: unknown[] } | undefined)?.concat;
  return Array.isArray(parts) ? parts.map(canonicalPart) : [canonicalPart(v)];
}

function verdictText(v: unknown): string {
  const x = v as { goto?: { target?: string }; jump?: { target?: string } };
  if (x?.goto?.target) return `goto ${x.goto.target}`;
  if (x?.jump?.target) return `jump ${x.jump.target}`;
  return JSON.stringify(v);
}

export interface Observed extends ObservedState {
  /** Class chains found intact (one rule, our comment, their map present); a unit's own only while named. */
  knownClasses: Set<string>;
  /** Class maps present. */
  knownMaps: Set<string>;
}

export function parseObserved(json: string, o: NftOptions): Observed {
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
    } else if ('map' in item || 'set' in item) {
      const m = (item.map ?? item.set) as JMap;
      if (m.table === o.table) maps.set(m.name, m);
    }
  }

  // Scaffolding: dispatch maps and base chains present, each base chain holding exactly our rules.
  let base: ObservedState['base'] = 'ok';
  const counts = baseRuleCounts(o);
  const bh = `b:${baseHash(o)}`;
  if ([...DISPATCH_MAPS].some((m) => !maps.has(m)) || BASE_CHAINS.some((c) => !chains.has(c))) {
    base = chains.size === 0 && maps.size === 0 ? 'missing' : 'drifted';
  } else {
    for (const c of BASE_CHAINS) {
      const rs = rules.get(c) ?? [];
      if (rs.length !== counts[c] || rs.some((r) => r.comment !== bh)) base = 'drifted';
      if ((c === 'prerouting' || c === 'output' || c === 'postrouting') && chains.get(c)?.hook !== c) base = 'drifted';
    }
  }

  // Chains that dispatch elements name: a round-robin chain (a unit's own) is ours only while named.
  const named = new Set<string>();
  for (const name of DISPATCH_MAPS) {
    for (const e of maps.get(name)?.elem ?? []) if (Array.isArray(e) && e.length === 2) named.add(verdictText(e[1]).replace(/^goto /, ''));
  }
  const units = new Map<string, ObservedUnit & { native: NftUnitNative }>();
  const unit = (id: string) => {
    let u = units.get(id);
    if (!u) units.set(id, (u = { id, fingerprint: '', native: { elements: [] } }));
    return u;
  };

  const intact = (name: string, c: Klass): boolean => {
    const rs = rules.get(name) ?? [];
    return rs.length === 1 && rs[0]!.comment === classComment(c, o) && maps.has(classMap(c)) && (!c.sticky || maps.has(stickyMap(c)));
  };
  /** A round-robin class's slots: every slot chain intact, and its goto map naming exactly them. */
  const slotsIntact = new Map<string, boolean>();
  const slotsOk = (c: Klass): boolean => {
    const g = gotoMap(c);
    let ok = slotsIntact.get(g);
    if (ok === undefined) {
      const want = slotGotos(c).map((e) => `${e.key}|${e.value}`);
      const have = (maps.get(g)?.elem ?? []).map((e) => (Array.isArray(e) && e.length === 2 ? `${canonicalPart(e[0])}|${verdictText(e[1])}` : JSON.stringify(e)));
      ok = maps.has(g) && have.length === want.length && want.every((w) => have.includes(w));
      for (let s = 0; ok && s < c.w; s++) ok = intact(classChain({ ...classBase(c), slot: s }), { ...classBase(c), slot: s });
      slotsIntact.set(g, ok);
    }
    return ok;
  };
  const knownClasses = new Set<string>();
  for (const name of chains.keys()) {
    const c = classOf(name);
    if (!c) continue;
    // Unnamed: its unit is gone. A shared round-robin chain (neither a unit's nor a slot's) is the
    // layout before units had their own, which nothing renders to any more.
    if (perUnit(c) && c.slot === undefined && !named.has(name)) {
      unit(`chain|${name}`).native.stray = { chain: name };
      continue;
    }
    if (intact(name, c) && (c.unit === undefined && c.slot === undefined ? true : slotsOk(c))) knownClasses.add(name);
  }
  const broken = new Set<string>(); // units dispatching to a chain that is not an intact class chain
  for (const [name, m] of maps) {
    const dispatch = DISPATCH_MAPS.has(name);
    const cls = CLASS_RE.exec(name);
    // A sticky class's client memory is the kernel's own (dynamic): kept while its chain exists.
    if (cls && cls[5] && name.startsWith('s-') && chains.has(`c-${name.slice(2)}`)) continue;
    // A round-robin class's goto map (verified with its slot chains above): kept, as slot maps are.
    if (cls && name.startsWith('g-') && cls[3] === 'k' && !cls[5] && !cls[6] && !cls[7]) continue;
    if (!dispatch && !(cls && slotMap(name, cls))) {
      if (!name.startsWith('vipdns-probe')) unit(`map|${name}`).native.stray = { map: name };
      continue;
    }
    const kind = dispatch ? (name.startsWith('vips') ? 'vip' : 'pub') : cls![1]!.startsWith('v') ? 'vip' : 'pub';
    for (const e of m.elem ?? []) {
      if (!Array.isArray(e) || e.length !== 2) continue;
      const keyParts = concatText(e[0]);
      let elem: Elem;
      let id: string;
      if (dispatch) {
        elem = { map: name, key: keyParts.join(' . '), value: verdictText(e[1]) };
        id = `${kind}|${elem.key}`;
        const target = elem.value.startsWith('goto ') ? elem.value.slice(5) : '';
        if (target !== 'c-none' && !knownClasses.has(target)) broken.add(id);
      } else {
        elem = { map: name, key: keyParts.join(' . '), value: concatText(e[1]).join(' . ') };
        id = `${kind}|${keyParts.slice(0, -1).join(' . ')}`;
      }
      unit(id).native.elements.push(elem);
    }
  }
  for (const name of chains.keys()) {
    if ((BASE_CHAINS as readonly string[]).includes(name) || classOf(name)) continue;
    unit(`chain|${name}`).native.stray = { chain: name };
  }
  for (const u of units.values()) {
    if (u.native.stray || broken.has(u.id)) continue;
    u.fingerprint = fingerprintOf(u.native.elements);
  }
  const knownMaps = new Set(
    [...maps.keys()].filter((m) => {
      const cls = CLASS_RE.exec(m);
      return cls !== null && slotMap(m, cls);
    }),
  );
  return { base, units, knownClasses, knownMaps };
}

/** A slot map: t-<class>-k<W> (by slot number) or m-<class>-k<W> (by packet mark, sticky classes). */
function slotMap(name: string, cls: RegExpExecArray): boolean {
  return (name.startsWith('t-') || name.startsWith('m-')) && cls[3] === 'k' && cls[5] === undefined && cls[6] === undefined && cls[7] === undefined;
}
