// IP address management: pure functions over a network's prefix and the set of addresses in use.
import { VipdnsError } from '../errors.js';
import { type Prefix, contains, formatCidr, formatIp, parseIp, prefixSize, tryParseIp } from '../net/ip.js';

/** The addresses in use on a pool's network, as far as allocation needs them. */
export interface InUse {
  has(ip: string): boolean;
  readonly size: number;
}

export interface Pool {
  name: string; // network name, for messages
  prefix: Prefix;
  gateway: bigint;
}

/** Offsets (from the prefix base) that are never handed out: network, broadcast (IPv4) and gateway. */
export function reservedOffsets(pool: Pool): Set<bigint> {
  const size = prefixSize(pool.prefix);
  const r = new Set<bigint>();
  // /31 and /32 (and IPv6 /127, /128) have no network or broadcast address to spare (RFC 3021).
  if (size > 2n) {
    r.add(0n);
    if (pool.prefix.family === 4) r.add(size - 1n);
  }
  r.add(pool.gateway - pool.prefix.base);
  return r;
}

export function usableCount(pool: Pool): bigint {
  return prefixSize(pool.prefix) - BigInt(reservedOffsets(pool).size);
}

/** The default gateway of a subnet: its first address after the network address (Docker's choice). */
export function defaultGateway(prefix: Prefix): bigint {
  return prefixSize(prefix) > 2n ? prefix.base + 1n : prefix.base;
}

/** Checks that a requested address may be given out; returns its canonical text. */
export function checkRequested(pool: Pool, ipText: string, inUse: InUse, what: string): string {
  const a = parseIp(ipText);
  if (!contains(pool.prefix, a)) {
    throw new VipdnsError('IP_OUTSIDE_SUBNET', `${what} ${ipText} is outside network "${pool.name}" (${formatCidr(pool.prefix)})`);
  }
  const canonical = formatIp(a);
  const off = a.value - pool.prefix.base;
  if (reservedOffsets(pool).has(off)) {
    const kind = a.value === pool.gateway ? 'gateway' : off === 0n ? 'network' : 'broadcast';
    throw new VipdnsError('IP_RESERVED', `${what} ${ipText} is the ${kind} address of network "${pool.name}" (${formatCidr(pool.prefix)})`);
  }
  if (inUse.has(canonical)) {
    throw new VipdnsError('IP_IN_USE', `${what} ${ipText} is already in use on network "${pool.name}"`);
  }
  return canonical;
}

/** Addresses automatic picks skip besides those in use: canonical text, iterable for the exhausted message. */
export interface Excluded extends Iterable<string> {
  has(ip: string): boolean;
  readonly size: number;
}

/** Both sets at once, without copying either (one may hold every address of the host). */
export function excludedBoth(a: Excluded | undefined, b: Excluded | undefined): Excluded | undefined {
  if (!a || a.size === 0) return b;
  if (!b || b.size === 0) return a;
  return {
    has: (ip) => a.has(ip) || b.has(ip),
    size: a.size + b.size,
    *[Symbol.iterator]() {
      yield* a;
      for (const ip of b) if (!a.has(ip)) yield ip;
    },
  };
}

export interface Allocation {
  ip: string;
  cursor: bigint;
}

const NONE: Excluded = new Set<string>();

/**
 * Next-fit allocation after `cursor`, wrapping once: recently freed addresses are handed out
 * last, so a stale DNS answer or conntrack entry rarely points at a new owner.
 * `inUse` holds canonical addresses of this pool only; `exclude` holds more to skip (canonical),
 * e.g. addresses another IPAM has handed out that the catalog does not hold (yet).
 */
export function allocate(pool: Pool, inUse: InUse, cursor: bigint, exclude: Excluded = NONE): Allocation {
  const size = prefixSize(pool.prefix);
  const reserved = reservedOffsets(pool);
  const usable = size - BigInt(reserved.size);
  if (BigInt(inUse.size) >= usable) throw exhausted(pool, inUse, exclude);
  // At most inUse.size + exclude.size + reserved.size + 1 probes: a free address is always that close.
  let off = cursor;
  const limit = BigInt(inUse.size + exclude.size + reserved.size + 2);
  for (let i = 0n; i < limit; i++) {
    off = off + 1n >= size ? 0n : off + 1n;
    if (reserved.has(off)) continue;
    const ip = formatIp({ family: pool.prefix.family, value: pool.prefix.base + off });
    if (!inUse.has(ip) && !exclude.has(ip)) return { ip, cursor: off };
  }
  throw exhausted(pool, inUse, exclude);
}

/**
 * The highest free address, from the top of the pool downwards, for VIPs beside an IPAM that
 * hands out addresses from the bottom (Docker's): the two meet last. No cursor: the top is
 * always tried first, so a freed VIP is the next one given out.
 */
export function allocateTop(pool: Pool, inUse: InUse, exclude: Excluded = NONE): string {
  const size = prefixSize(pool.prefix);
  const reserved = reservedOffsets(pool);
  if (BigInt(inUse.size) >= size - BigInt(reserved.size)) throw exhausted(pool, inUse, exclude);
  // Same bound as allocate(): every probe that fails is a reserved, used or excluded address.
  const limit = BigInt(inUse.size + exclude.size + reserved.size + 1);
  let off = size - 1n;
  for (let i = 0n; i < limit && off >= 0n; i++, off--) {
    if (reserved.has(off)) continue;
    const ip = formatIp({ family: pool.prefix.family, value: pool.prefix.base + off });
    if (!inUse.has(ip) && !exclude.has(ip)) return ip;
  }
  throw exhausted(pool, inUse, exclude);
}

function exhausted(pool: Pool, inUse: InUse, exclude: Excluded): VipdnsError {
  const size = prefixSize(pool.prefix);
  const reserved = reservedOffsets(pool);
  const bigger = pool.prefix.bits > 1 ? `/${pool.prefix.bits - 1} or shorter` : 'a shorter prefix';
  // Only on failure: count the excluded addresses that take room the catalog does not know of.
  let outside = 0;
  for (const ip of exclude) {
    const a = tryParseIp(ip);
    if (a && contains(pool.prefix, a) && !reserved.has(a.value - pool.prefix.base) && !inUse.has(ip)) outside++;
  }
  const held = outside > 0 ? ` and ${outside} more are held outside the catalog (another IPAM, or this host's own addresses)` : '';
  return new VipdnsError(
    'SUBNET_EXHAUSTED',
    `network "${pool.name}" (${formatCidr(pool.prefix)}) is exhausted: ${inUse.size} of its ${size - BigInt(reserved.size)} usable addresses are in use${held} ` +
      `(${size} in the subnet, ${reserved.size} reserved for network/gateway/broadcast); use a network with a larger subnet (${bigger})`,
  );
}
