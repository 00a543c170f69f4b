// IP address text <-> 16-byte nf_inet_addr, pure.
// IPVS always carries 16 address bytes; IPv4 uses the first 4 (rest zero).

import { formatV6Groups } from '../../net/ip.js';

export type Family = 4 | 6;
export const AF_INET = 2;
export const AF_INET6 = 10;

export const familyToAf = (f: Family): number => (f === 4 ? AF_INET : AF_INET6);
export function afToFamily(af: number): Family {
  if (af === AF_INET) return 4;
  if (af === AF_INET6) return 6;
  throw new RangeError(`unsupported address family ${af}`);
}

function parseV4(s: string, out: Uint8Array, at: number): boolean {
  const parts = s.split('.');
  if (parts.length !== 4) return false;
  for (let i = 0; i < 4; i++) {
    const p = parts[i] ?? '';
    if (!/^\d{1,3}$/.test(p) || (p.length > 1 && p[0] === '0')) return false;
    const n = Number(p);
    if (n > 255) return false;
    out[at + i] = n;
  }
  return true;
}

function parseV6(s: string, out: Uint8Array): boolean {
  const zone = s.indexOf('%');
  if (zone >= 0) return false;
  const halves = s.split('::');
  if (halves.length > 2) return false;
  const words = (h: string | undefined): string[] => (h ? h.split(':') : []);
  const head = words(halves[0]);
  const tail = words(halves[1]);
  const groups: number[] = [];
  const tailGroups: number[] = [];
  const push = (list: string[], into: number[], allowV4Last: boolean): boolean => {
    for (let i = 0; i < list.length; i++) {
      const g = list[i] ?? '';
      if (allowV4Last && i === list.length - 1 && g.includes('.')) {
        const b = new Uint8Array(4);
        if (!parseV4(g, b, 0)) return false;
        into.push(((b[0] ?? 0) << 8) | (b[1] ?? 0), ((b[2] ?? 0) << 8) | (b[3] ?? 0));
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return false;
      into.push(parseInt(g, 16));
    }
    return true;
  };
  const compressed = halves.length === 2;
  if (!push(head, groups, !compressed)) return false;
  if (compressed && !push(tail, tailGroups, true)) return false;
  const total = groups.length + tailGroups.length;
  if (compressed ? total > 7 : total !== 8) return false;
  const all = [...groups, ...new Array<number>(8 - total).fill(0), ...tailGroups];
  all.forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  return true;
}

/** Parses an IPv4 or IPv6 literal (no brackets, no zone). Throws RangeError when invalid. */
export function parseAddress(s: string): { family: Family; bytes: Buffer } {
  const bytes = Buffer.alloc(16);
  if (s.includes(':')) {
    if (parseV6(s, bytes)) return { family: 6, bytes };
  } else if (parseV4(s, bytes, 0)) {
    return { family: 4, bytes };
  }
  throw new RangeError(`invalid IP address '${s}'`);
}

export function familyOf(s: string): Family {
  return parseAddress(s).family;
}

/** Formats 4 or 16 address bytes; IPv6 in RFC 5952 canonical form (as ipvsadm prints it). */
export function formatAddress(family: Family, b: Uint8Array): string {
  if (family === 4) return `${b[0] ?? 0}.${b[1] ?? 0}.${b[2] ?? 0}.${b[3] ?? 0}`;
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push(((b[i * 2] ?? 0) << 8) | (b[i * 2 + 1] ?? 0));
  return formatV6Groups(g);
}

/** Prefix length -> IPv4 mask as a u32 (24 -> 0xffffff00). */
export function prefixToMask4(prefix: number): number {
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) throw new RangeError(`bad IPv4 prefix ${prefix}`);
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** IPv4 mask u32 -> prefix length (leading one bits; non-contiguous masks are not expected). */
export function mask4ToPrefix(mask: number): number {
  let n = 0;
  for (let bit = 31; bit >= 0 && (mask >>> bit) & 1; bit--) n++;
  return n;
}
