// IPVS driver, pure part: a unit → its fwmark rule per family, its IPVS fwmark services and their
// destinations, and the fingerprint that observe() must reproduce from the kernel. No I/O here.
import { createHash } from 'node:crypto';
import type { DestSpec, ServiceSpec } from '../netlink/ipvs-codec.js';
import type { Backend, Family, Protocol, Scheduler, Unit } from '../types.js';
import { hexMark } from './ipvs-marks.js';

/** Our chains: mangle VIPDNS-MARK (jumped from PREROUTING and OUTPUT) → PUBLISHED, then VIPS; nat POSTROUTING. */
export const CHAINS = {
  mark: 'VIPDNS-MARK',
  vips: 'VIPDNS-VIPS',
  published: 'VIPDNS-PUBLISHED',
  post: 'VIPDNS-POSTROUTING',
} as const;
/** Comment on scaffolding rules; unit rules carry `vipdns:<unit id>`. */
export const COMMENT = 'vipdns';
export const UNIT_COMMENT_PREFIX = 'vipdns:';
export const FULL_MASK = '0xffffffff';

const SAFE_KEY = /^[A-Za-z0-9_.:/-]{1,200}$/;

/** `vip/<net>/<svc>/<proto>/<port>` or `pub/<proto>/<port>`; hashed when the key would not be a safe comment. */
export function unitId(u: Unit): string {
  const [p, key] = u.kind === 'vip' ? ['vip', u.vip.key] : ['pub', u.published.key];
  return SAFE_KEY.test(key) ? `${p}/${key}` : `${p}x/${createHash('sha256').update(key).digest('base64url').slice(0, 22)}`;
}

export function unitServiceFwmark(u: Unit): number {
  return u.kind === 'vip' ? u.vip.fwmark : u.published.fwmark;
}

export function unitProtocol(u: Unit): Protocol {
  return u.kind === 'vip' ? u.vip.protocol : u.published.protocol;
}

const familyOf = (ip: string): Family => (ip.includes(':') ? 6 : 4);

/** A VIP unit lives in its VIP's family; a published port in v4, plus v6 when it has a v6 backend. */
export function unitFamilies(u: Unit): Family[] {
  if (u.kind === 'vip') return [u.vip.family];
  return u.published.backends.some((b) => familyOf(b.ip) === 6) ? [4, 6] : [4];
}

/** The rule's match part, in iptables-save's canonical order (so what we write reads back identically). */
export function unitMatch(u: Unit, family: Family): string[] {
  if (u.kind === 'vip') {
    const s = u.vip;
    return ['-d', `${s.vip}/${family === 6 ? 128 : 32}`, '-p', s.protocol, '-m', s.protocol, '--dport', String(s.port)];
  }
  const p = u.published;
  // Every local address but loopback (IPVS masquerading from 127/8 would need route_localnet).
  const lo = family === 6 ? '::1/128' : '127.0.0.0/8';
  return ['!', '-d', lo, '-p', p.protocol, '-m', 'addrtype', '--dst-type', 'LOCAL', '-m', p.protocol, '--dport', String(p.port)];
}

export function unitChain(u: Unit): string {
  return u.kind === 'vip' ? CHAINS.vips : CHAINS.published;
}

export function ruleArgs(match: readonly string[], id: string, mark: number): string[] {
  return [...match, '-m', 'comment', '--comment', `${UNIT_COMMENT_PREFIX}${id}`, '-j', 'MARK', '--set-xmark', `${hexMark(mark)}/${FULL_MASK}`];
}

/** A unit rule as read back: its unit id, mark and match part; undefined when it is not a unit rule. */
export function parseUnitRule(args: readonly string[]): { id: string; mark: number | undefined; match: string[] } | undefined {
  const ci = args.indexOf('--comment');
  const comment = ci >= 0 ? args[ci + 1] : undefined;
  if (!comment?.startsWith(UNIT_COMMENT_PREFIX)) return undefined;
  const id = comment.slice(UNIT_COMMENT_PREFIX.length);
  const ji = args.indexOf('-j');
  let mark: number | undefined;
  if (ji >= 0 && args[ji + 1] === 'MARK' && args[ji + 2] === '--set-xmark') {
    const [v, m] = (args[ji + 3] ?? '').split('/');
    const n = Number(v);
    if (m === FULL_MASK && Number.isInteger(n)) mark = n >>> 0;
  }
  const match: string[] = [];
  for (let i = 0; i < (ji >= 0 ? ji : args.length); i++) {
    if (args[i] === '-m' && args[i + 1] === 'comment') {
      i += 3; // -m comment --comment X
      continue;
    }
    match.push(args[i]!);
  }
  return { id, mark, match };
}

// ---- IPVS side ----

export interface FamilyPlan {
  family: Family;
  match: string[];
  scheduler: string;
  persistence: number; // seconds, 0 = none
  /** Wanted destinations: live backends with their weight, draining ones with weight 0. */
  dests: DestSpec[];
  /** Keys (`ip|port`) of backends that are draining. */
  draining: Set<string>;
}

export const destKey = (ip: string, port: number): string => `${ip}|${port}`;

/** The kernel's scheduler for each of ours: sh is mh (consistent hashing) where the kernel has it. */
export type KernelSchedulers = Record<Scheduler, string>;
export const PLAIN_SCHEDULERS: KernelSchedulers = { rr: 'rr', wrr: 'wrr', lc: 'lc', sh: 'sh' };

export function unitPlan(u: Unit, names: KernelSchedulers = PLAIN_SCHEDULERS): FamilyPlan[] {
  const s = u.kind === 'vip' ? u.vip : u.published;
  const scheduler = names[s.scheduler];
  const persistence = s.persistence ?? 0;
  const backends: Backend[] = u.kind === 'vip' ? u.vip.backends : u.published.backends;
  const port = (b: Backend): number => (u.kind === 'vip' ? b.port : u.published.targetPort);
  return unitFamilies(u).map((family) => {
    const mine = backends.filter((b) => familyOf(b.ip) === family);
    return {
      family,
      match: unitMatch(u, family),
      scheduler,
      persistence,
      dests: mine.map((b) => ({ address: b.ip, port: port(b), forward: 'masq', weight: b.draining ? 0 : b.weight })),
      draining: new Set(mine.filter((b) => b.draining).map((b) => destKey(b.ip, port(b)))),
    };
  });
}

export function serviceSpec(mark: number, f: Pick<FamilyPlan, 'family' | 'scheduler' | 'persistence'>): ServiceSpec {
  return {
    fwmark: mark,
    family: f.family,
    scheduler: f.scheduler,
    ...(f.persistence > 0 ? { persistence: { timeout: f.persistence, netmask: f.family === 6 ? 128 : 32 } } : {}),
  };
}

// ---- fingerprint: the same text from the plan (expect) and from the kernel (observe) ----

export interface ShapeDest {
  ip: string;
  port: number;
  /** `w<weight>` live, `d` draining (weight 0, still has connections), `idle` weight 0 without connections. */
  token: string;
}

export interface FamilyShape {
  family: Family;
  match: string[];
  /** undefined when the IPVS service is missing */
  scheduler: string | undefined;
  persistence: number;
  dests: ShapeDest[];
  /** The VIP is an address of the VIP interface (always true for published ports). */
  local: boolean;
}

export function fingerprint(families: FamilyShape[]): string {
  return [...families]
    .sort((a, b) => a.family - b.family)
    .map((f) => {
      const dests = [...f.dests]
        .sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : a.port - b.port))
        .map((d) => `${d.ip.includes(':') ? `[${d.ip}]` : d.ip}:${d.port}/${d.token}`);
      return `${f.family} ${f.match.join(' ')}${f.local ? '' : ' (vip not local)'} | ${f.scheduler ?? 'missing'} p${f.persistence} | ${dests.join(',')}`;
    })
    .join('\n');
}

export function planShape(p: FamilyPlan): FamilyShape {
  return {
    family: p.family,
    match: p.match,
    scheduler: p.scheduler,
    persistence: p.persistence,
    dests: p.dests.map((d) => ({ ip: d.address, port: d.port, token: d.weight > 0 ? `w${d.weight}` : 'd' })),
    local: true,
  };
}
