// IP address management: pure functions over a network's prefix and the set of addresses in use.
import { VipdnsError } from '../errors.js';
import { type Prefix, contains, formatCidr, formatIp, parseIp, prefixSize } from '../net/ip.js';

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

export interface Allocation {
  ip: string;
  cursor: bigint;
}

/**
 * Next-fit allocation after `cursor`, wrapping once: recently freed addresses are handed out
 * last, so a stale DNS answer or conntrack entry rarely points at a new owner.
 * `inUse` holds canonical addresses of this pool only.
 */
export function allocate(pool: Pool, inUse: InUse, cursor: bigint): Allocation {
  const size = prefixSize(pool.prefix);
  const reserved = reservedOffsets(pool);
  const usable = size - BigInt(reserved.size);
  if (BigInt(inUse.size) >= usable) throw exhausted(pool, size, reserved.size, inUse.size);
  // At most inUse.size + reserved.size + 1 probes: a free address is always that close.
  let off = cursor;
  const limit = BigInt(inUse.size + reserved.size + 2);
  for (let i = 0n; i < limit; i++) {
    off = off + 1n >= size ? 0n : off + 1n;
    if (reserved.has(off)) continue;
    const ip = formatIp({ family: pool.prefix.family, value: pool.prefix.base + off });
    if (!inUse.has(ip)) return { ip, cursor: off };
  }
  throw exhausted(pool, size, reserved.size, inUse.size);
}

function exhausted(pool: Pool, size: bigint, reserved: number, used: number): VipdnsError {
  const bigger = pool.prefix.bits > 1 ? `/${pool.prefix.bits - 1} or shorter` : 'a shorter prefix';
  return new VipdnsError(
    'SUBNET_EXHAUSTED',
    `network "${pool.name}" (${formatCidr(pool.prefix)}) is exhausted: ${used} of its ${size - BigInt(reserved)} usable addresses are in use ` +
      `(${size} in the subnet, ${reserved} reserved for network/gateway/broadcast); use a network with a larger subnet (${bigger})`,
  );
}
