// Address allocation inside a transaction: the one allocator of every writer (API, config,
// Docker source). Next-fit over the network's pool with the cursor kept on the network, so
// freed addresses are handed out last; what is in use comes from the transaction's view.
// A writer beside another IPAM (the Docker source) asks for addresses from the top of the
// subnet and names the addresses that IPAM holds, which the catalog may not know of yet.
// Automatic picks also skip every address on the host's interfaces (Txn.host), and automatic
// published ports skip every port published by another service or listened on by the host.
import { VipdnsError } from '../errors.js';
import { parseCidr, parseIp, tryParseIp } from '../net/ip.js';
import { type Pool, allocate, allocateTop, checkRequested, excludedBoth } from './ipam.js';
import { DEFAULT_PUBLISH_RANGE, type Network, type Protocol, pool6 } from './model.js';
import type { Txn } from './txn.js';

export interface AllocOptions {
  /** 'top': the highest free address downwards (cursor untouched); default: next-fit. */
  from?: 'next' | 'top';
  /** Addresses automatic picks skip on a network, beyond the catalog's own (canonical text). */
  exclude?: (network: string) => ReadonlySet<string> | undefined;
}

/**
 * A network's pool and its key in the address indexes: its `subnet`, or (`six`, on a dual-stack
 * network) its `subnet6`, keyed pool6(name) so each pool is counted on its own.
 */
function poolIn(net: Network, six: boolean): { pool: Pool; key: string; six: boolean } {
  if (six && net.subnet6 !== undefined && net.gateway6 !== undefined) {
    return { pool: { name: net.name, prefix: parseCidr(net.subnet6), gateway: parseIp(net.gateway6).value }, key: pool6(net.name), six: true };
  }
  return { pool: { name: net.name, prefix: parseCidr(net.subnet), gateway: parseIp(net.gateway).value }, key: net.name, six: false };
}

/** Whether `ip` belongs in a network's IPv6 pool (dual stack) rather than its `subnet`. */
export function inPool6(net: Network, ip: string): boolean {
  return net.subnet6 !== undefined && tryParseIp(ip)?.family === 6;
}

/** The next free address of `network` (`six`: of its IPv6 subnet, dual stack); a next-fit allocation moves its cursor. */
export function allocateOn(tx: Txn, network: string, opts: AllocOptions = {}, six = false): string {
  const net = tx.network(network);
  const p = poolIn(net, six);
  // The host's own addresses too: a VIP equal to eth0's address would take the host's traffic.
  const exclude = excludedBoth(opts.exclude?.(p.key), tx.host.addresses?.());
  if (opts.from === 'top') return allocateTop(p.pool, tx.addresses(p.key), exclude);
  const got = allocate(p.pool, tx.addresses(p.key), BigInt((p.six ? net.ipamCursor6 : net.ipamCursor) ?? '0'), exclude);
  tx.put('network', net.name, p.six ? { ...net, ipamCursor6: got.cursor.toString() } : { ...net, ipamCursor: got.cursor.toString() });
  return got.ip;
}

/**
 * Checks that `ip` may be given out on `network` (inside, not reserved, free); returns it canonical.
 * On a dual-stack network the address's family picks the subnet.
 */
export function requestOn(tx: Txn, network: string, ip: string, what: string): string {
  const net = tx.network(network);
  const p = poolIn(net, inPool6(net, ip));
  return checkRequested(p.pool, ip, tx.addresses(p.key), what);
}

/** Published ports Docker-style: the first port of the range no service publishes and nothing on the host listens on. */
export function allocatePublished(tx: Txn, protocol: Protocol, taken: ReadonlySet<number>): number {
  const { lo, hi } = tx.host.publishRange ?? DEFAULT_PUBLISH_RANGE;
  const listening = tx.host.listening?.(protocol);
  let published = 0;
  let heard = 0;
  for (let p = lo; p <= hi; p++) {
    if (taken.has(p) || tx.publishers(p, protocol).length > 0) published++;
    else if (listening?.has(p)) heard++;
    else return p;
  }
  throw new VipdnsError(
    'PORTS_EXHAUSTED',
    `no free ${protocol} port in the publish range ${lo}-${hi}: ${published} published by services, ${heard} in use on the host; give --publish PUBLISHED:TARGET, remove a service that publishes one, or widen --publish-range`,
  );
}
