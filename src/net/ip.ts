// Pure IPv4/IPv6 address and prefix arithmetic on bigints. No I/O.
import { isIPv4, isIPv6 } from 'node:net';
import { VipdnsError } from '../errors.js';

export type Family = 4 | 6;

export interface Addr {
  family: Family;
  value: bigint;
}

export interface Prefix {
  family: Family;
  base: bigint; // network address, host bits zero
  bits: number; // prefix length
}

const BITS: Record<Family, number> = { 4: 32, 6: 128 };

export function familyBits(f: Family): number {
  return BITS[f];
}

export function parseIp(text: string): Addr {
  if (typeof text !== 'string') throw new VipdnsError('BAD_IP', `${JSON.stringify(text)} is not an IPv4 or IPv6 address`);
  const s = text.trim();
  if (isIPv4(s)) return { family: 4, value: v4ToBig(s) };
  if (isIPv6(s) && !s.includes('%')) return { family: 6, value: v6ToBig(s) };
  throw new VipdnsError('BAD_IP', `"${text}" is not an IPv4 or IPv6 address`);
}

export function tryParseIp(text: string): Addr | undefined {
  try {
    return parseIp(text);
  } catch {
    return undefined;
  }
}

function v4ToBig(s: string): bigint {
  let v = 0n;
  for (const part of s.split('.')) v = (v << 8n) | BigInt(Number(part));
  return v;
}

function v6ToBig(s: string): bigint {
  let text = s.toLowerCase();
  // Embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v = v4ToBig(tail);
    text = `${text.slice(0, lastColon + 1)}${(v >> 16n).toString(16)}:${(v & 0xffffn).toString(16)}`;
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const h = head === '' ? [] : head.split(':');
  const t = rest === undefined || rest === '' ? [] : rest.split(':');
  const groups = rest === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  let v = 0n;
  for (const g of groups) v = (v << 16n) | BigInt(parseInt(g, 16));
  return v;
}

export function formatIp(a: Addr): string {
  if (a.family === 4) {
    const v = a.value;
    return [24n, 16n, 8n, 0n].map((s) => ((v >> s) & 0xffn).toString()).join('.');
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((a.value >> BigInt(i * 16)) & 0xffffn));
  return formatV6Groups(groups);
}

/** Eight 16-bit groups as RFC 5952 text: lowercase, the longest run (>= 2) of zero groups compressed, first on ties. */
export function formatV6Groups(groups: number[]): string {
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** Canonical text of an address (lowercase, compressed), so equal addresses compare equal as strings. */
export function canonicalIp(text: string): string {
  return formatIp(parseIp(text));
}

export function parseCidr(text: string): Prefix {
  if (typeof text !== 'string') throw new VipdnsError('BAD_CIDR', `${JSON.stringify(text)} is not a CIDR subnet (expected ADDRESS/PREFIX, e.g. 10.0.9.0/24)`);
  const m = /^([^/]+)\/(\d{1,3})$/.exec(text.trim());
  if (!m) throw new VipdnsError('BAD_CIDR', `"${text}" is not a CIDR subnet (expected ADDRESS/PREFIX, e.g. 10.0.9.0/24 or fd00:9::/64)`);
  let addr: Addr;
  try {
    addr = parseIp(m[1]!);
  } catch {
    throw new VipdnsError('BAD_CIDR', `"${text}" is not a CIDR subnet: "${m[1]}" is not an IP address`);
  }
  const bits = Number(m[2]);
  const max = BITS[addr.family];
  if (bits > max) throw new VipdnsError('BAD_CIDR', `"${text}": prefix length /${bits} is longer than ${max} bits for IPv${addr.family}`);
  const hostMask = (1n << BigInt(max - bits)) - 1n;
  if ((addr.value & hostMask) !== 0n) {
    const base = formatIp({ family: addr.family, value: addr.value & ~hostMask });
    throw new VipdnsError('BAD_CIDR', `"${text}" has host bits set: did you mean ${base}/${bits}?`);
  }
  return { family: addr.family, base: addr.value, bits };
}

export function formatCidr(p: Prefix): string {
  return `${formatIp({ family: p.family, value: p.base })}/${p.bits}`;
}

export function prefixSize(p: Prefix): bigint {
  return 1n << BigInt(BITS[p.family] - p.bits);
}

export function prefixLast(p: Prefix): bigint {
  return p.base + prefixSize(p) - 1n;
}

export function contains(p: Prefix, a: Addr): boolean {
  return p.family === a.family && a.value >= p.base && a.value <= prefixLast(p);
}

export function overlaps(a: Prefix, b: Prefix): boolean {
  return a.family === b.family && a.base <= prefixLast(b) && b.base <= prefixLast(a);
}

export function isLoopback(a: Addr): boolean {
  if (a.family === 4) return a.value >> 24n === 127n;
  if (a.value === 1n) return true;
  // IPv4-mapped loopback ::ffff:127.x.y.z, as seen on dual-stack sockets.
  return a.value >> 32n === 0xffffn && (a.value & 0xffffffffn) >> 24n === 127n;
}

/** An IPv4-mapped IPv6 address (::ffff:a.b.c.d) as its IPv4 address; others unchanged. */
export function unmapV4(a: Addr): Addr {
  if (a.family === 6 && a.value >> 32n === 0xffffn) return { family: 4, value: a.value & 0xffffffffn };
  return a;
}

/** The reverse-lookup name (in-addr.arpa / ip6.arpa) of an address, without trailing dot. */
export function reverseName(a: Addr): string {
  if (a.family === 4) {
    const parts = formatIp(a).split('.').reverse();
    return `${parts.join('.')}.in-addr.arpa`;
  }
  const nibbles: string[] = [];
  for (let i = 0; i < 32; i++) nibbles.push(((a.value >> BigInt(i * 4)) & 0xfn).toString(16));
  return `${nibbles.join('.')}.ip6.arpa`;
}

/** Parses an in-addr.arpa / ip6.arpa name back to an address; undefined when it is not a full one. */
export function parseReverseName(name: string): Addr | undefined {
  const n = name.toLowerCase().replace(/\.$/, '');
  if (n.endsWith('.in-addr.arpa')) {
    const parts = n.slice(0, -'.in-addr.arpa'.length).split('.');
    if (parts.length !== 4 || !parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) <= 255)) return undefined;
    return { family: 4, value: v4ToBig(parts.reverse().join('.')) };
  }
  if (n.endsWith('.ip6.arpa')) {
    const parts = n.slice(0, -'.ip6.arpa'.length).split('.');
    if (parts.length !== 32 || !parts.every((p) => /^[0-9a-f]$/.test(p))) return undefined;
    let v = 0n;
    for (const p of parts.reverse()) v = (v << 4n) | BigInt(parseInt(p, 16));
    return { family: 6, value: v };
  }
  return undefined;
}
