// IPVS driver: kernel state (our iptables chains, our IPVS services, the VIP interface) → ObservedState.
// Pure; ipvs.ts does the reading. A unit is identified by its rule comment `vipdns:<id>`; its IPVS
// services are the fwmark services (one per family) whose mark that rule sets.
import type { Dest, Service } from '../netlink/ipvs-codec.js';
import type { SavedRule, SavedRuleset } from '../iptables/save.js';
import type { Family, ObservedState, ObservedUnit } from '../types.js';
import { isOurMark } from './ipvs-marks.js';
import { CHAINS, COMMENT, destKey, fingerprint, parseUnitRule, type FamilyShape } from './ipvs-render.js';

/** Where a unit lives in the kernel: enough to delete it, whatever its state. */
export interface IpvsUnitNative {
  id: string;
  mark: number | undefined;
  rules: { family: Family; chain: string; args: string[] }[];
  /** Families that have an IPVS service with the unit's mark. */
  services: Family[];
  /** The VIP (VIP units), for the VIP interface. */
  vip?: string;
}

/** Per family: which of our chains and scaffolding rules exist (to rewrite only what is missing). */
export interface BaseView {
  chains: Set<string>; // of ours, in mangle and nat
  /** Scaffolding rules as read (jumps from built-in chains, VIPDNS-MARK and VIPDNS-POSTROUTING contents). */
  scaffold: SavedRule[];
  ok: boolean;
  any: boolean; // something of ours exists
}

export interface KernelView {
  rules: Map<Family, SavedRuleset>;
  /** Our services (mark in range and referenced by our rules) with their destinations, by `family/mark`. */
  services: Map<string, { service: Service; dests: Dest[] }>;
  /** Addresses on the VIP interface; undefined when it does not exist. */
  localVips: Set<string> | undefined;
  /** Draining destinations the driver deleted early (no connections left), by unit id. */
  early: Map<string, Set<string>>;
  sysctlsOk: boolean;
}

export const svcKey = (family: Family, mark: number): string => `${family}/${mark}`;

export const MASQ_RULE = ['-m', 'ipvs', '--ipvs', '--vdir', 'ORIGINAL', '--vmethod', 'MASQ', '-m', 'mark', '--mark', '0x40000000/0xc0000000', '-m', 'comment', '--comment', COMMENT, '-j', 'MASQUERADE'];
export const JUMP = (chain: string): string[] => ['-m', 'comment', '--comment', COMMENT, '-j', chain];
/**
 * The conntrack mark bit of the flows we balance: the FORWARD guard (forward-guard.ts) accepts flows
 * carrying it, so a reply from a backend crosses a FORWARD policy of DROP (Docker hosts).
 */
export const IPVS_CONNMARK = 0x4000;
const connmark = `0x${IPVS_CONNMARK.toString(16)}`;
export const CONNMARK_RULE = ['-m', 'mark', '--mark', '0x40000000/0xc0000000', '-m', 'comment', '--comment', COMMENT, '-j', 'CONNMARK', '--set-xmark', `${connmark}/${connmark}`];

/** The scaffolding, as (table, chain, args) lists in write order. */
export function scaffold(): { table: string; chain: string; args: string[] }[] {
  return [
    { table: 'mangle', chain: 'PREROUTING', args: JUMP(CHAINS.mark) },
    { table: 'mangle', chain: 'OUTPUT', args: JUMP(CHAINS.mark) },
    // Published first, VIPs last: the last MARK wins, so a VIP:port rule beats a published port.
    { table: 'mangle', chain: CHAINS.mark, args: ['-j', CHAINS.published] },
    { table: 'mangle', chain: CHAINS.mark, args: ['-j', CHAINS.vips] },
    { table: 'mangle', chain: CHAINS.mark, args: CONNMARK_RULE },
    { table: 'nat', chain: 'POSTROUTING', args: JUMP(CHAINS.post) },
    { table: 'nat', chain: CHAINS.post, args: MASQ_RULE },
  ];
}

// iptables-save prints `-m ipvs --vdir …` without the `--ipvs` we write (vdir implies it).
const norm = (args: readonly string[]): string => args.filter((a) => a !== '--ipvs').join(' ');

const OWN_CHAINS: Record<string, string[]> = { mangle: [CHAINS.mark, CHAINS.vips, CHAINS.published], nat: [CHAINS.post] };

export function readBase(rs: SavedRuleset | undefined): BaseView {
  const chains = new Set<string>();
  const found: SavedRule[] = [];
  for (const [table, own] of Object.entries(OWN_CHAINS)) {
    const t = rs?.get(table);
    if (!t) continue;
    for (const c of own) if (t.chains.includes(c)) chains.add(c);
    for (const r of t.rules) {
      const jumpsToUs = r.args.includes('-j') && own.includes(r.args[r.args.indexOf('-j') + 1] ?? '');
      if ((r.chain === CHAINS.mark || r.chain === CHAINS.post) || (!own.includes(r.chain) && jumpsToUs)) found.push(r);
    }
  }
  const want = scaffold().map((s) => `${s.table} ${s.chain} ${norm(s.args)}`).sort();
  const have = found.map((r) => `${r.table} ${r.chain} ${norm(r.args)}`).sort();
  const allChains = Object.values(OWN_CHAINS).flat().every((c) => chains.has(c));
  return { chains, scaffold: found, ok: allChains && want.join('\n') === have.join('\n'), any: chains.size > 0 || found.length > 0 };
}

/** Marks set by our unit rules: the only fwmark services we may touch. */
export function referencedMarks(rules: Map<Family, SavedRuleset>): Set<number> {
  const out = new Set<number>();
  for (const rs of rules.values()) for (const r of unitRules(rs)) if (r.parsed.mark !== undefined && isOurMark(r.parsed.mark)) out.add(r.parsed.mark);
  return out;
}

function unitRules(rs: SavedRuleset): { rule: SavedRule; parsed: NonNullable<ReturnType<typeof parseUnitRule>> }[] {
  const out = [];
  for (const r of rs.get('mangle')?.rules ?? []) {
    if (r.chain !== CHAINS.vips && r.chain !== CHAINS.published) continue;
    const parsed = parseUnitRule(r.args);
    if (parsed) out.push({ rule: r, parsed });
  }
  return out;
}

export function tokenOf(d: Dest): string {
  if (d.weight > 0) return `w${d.weight}`;
  return d.activeConns + d.inactiveConns > 0 ? 'd' : 'idle';
}

export interface Observed {
  state: ObservedState;
  natives: Map<string, IpvsUnitNative>;
  base: Map<Family, BaseView>;
}

export function observeUnits(v: KernelView, families: readonly Family[]): Observed {
  const byId = new Map<string, { native: IpvsUnitNative; perFamily: Map<Family, { match: string[]; mark: number | undefined }[]> }>();
  for (const family of families) {
    const rs = v.rules.get(family);
    if (!rs) continue;
    for (const { rule, parsed } of unitRules(rs)) {
      let u = byId.get(parsed.id);
      if (!u) byId.set(parsed.id, (u = { native: { id: parsed.id, mark: undefined, rules: [], services: [] }, perFamily: new Map() }));
      u.native.rules.push({ family, chain: rule.chain, args: rule.args });
      const list = u.perFamily.get(family) ?? [];
      list.push({ match: parsed.match, mark: parsed.mark });
      u.perFamily.set(family, list);
      if (parsed.mark !== undefined && isOurMark(parsed.mark)) u.native.mark ??= parsed.mark;
      if (parsed.id.startsWith('vip') && rule.chain === CHAINS.vips) {
        const d = parsed.match[parsed.match.indexOf('-d') + 1];
        if (d) u.native.vip = d.replace(/\/\d+$/, '');
      }
    }
  }

  const units = new Map<string, ObservedUnit>();
  const natives = new Map<string, IpvsUnitNative>();
  for (const [id, { native, perFamily }] of byId) {
    let broken = native.mark === undefined;
    const shapes: FamilyShape[] = [];
    const mark = native.mark ?? -1;
    for (const family of [4, 6] as const) {
      const rules = perFamily.get(family);
      const svc = v.services.get(svcKey(family, mark));
      if (svc) native.services.push(family);
      if (!rules) {
        if (svc) broken = true; // a service without its rule: rewrite the unit
        continue;
      }
      if (rules.length !== 1 || rules[0]!.mark !== native.mark) broken = true;
      const early = v.early.get(id) ?? new Set<string>();
      const dests = (svc?.dests ?? []).map((d) => ({ ip: d.address, port: d.port, token: d.forward === 'masq' ? tokenOf(d) : `${d.forward}` }));
      const present = new Set(dests.map((d) => destKey(d.ip, d.port)));
      for (const k of early) {
        const [ip, port] = k.split('|');
        if (!present.has(k) && ip && (ip.includes(':') ? 6 : 4) === family) dests.push({ ip, port: Number(port), token: 'd' });
      }
      shapes.push({
        family,
        match: rules[0]!.match,
        scheduler: svc?.service.scheduler,
        persistence: svc?.service.persistence?.timeout ?? 0,
        dests,
        local: native.vip === undefined || (v.localVips?.has(native.vip) ?? false),
      });
    }
    natives.set(id, native);
    units.set(id, { id, fingerprint: broken ? '' : fingerprint(shapes), native });
  }

  const base = new Map<Family, BaseView>();
  let ok = v.sysctlsOk && v.localVips !== undefined;
  let any = v.localVips !== undefined;
  for (const f of families) {
    const b = readBase(v.rules.get(f));
    base.set(f, b);
    ok &&= b.ok;
    any ||= b.any;
  }
  return { state: { base: ok ? 'ok' : any ? 'drifted' : 'missing', units }, natives, base };
}
