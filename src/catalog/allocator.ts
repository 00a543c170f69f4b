// Address allocation inside a transaction: the one allocator of every writer (API, config,
// Docker source). Next-fit over the network's pool with the cursor kept on the network, so
// freed addresses are handed out last; what is in use comes from the transaction's view.
// A writer beside another IPAM (the Docker source) asks for addresses from the top of the
// subnet and names the addresses that IPAM holds, which the catalog may not know of yet.
// Automatic picks also skip every address on the host's interfaces (Txn.host), and automatic
// published ports skip every port published by another service or listened on by the host.
import { VipdnsError } from '../errors.js';
import { parseCidr, parseIp } from '../net/ip.js';
import { type Pool, allocate, allocateTop, checkRequested, excludedBoth } from './ipam.js';
import { DEFAULT_PUBLISH_RANGE, type Network, type Protocol } from './model.js';
import type { Txn } from './txn.js';

export interface AllocOptions {
  /** 'top': the highest free address downwards (cursor untouched); default: next-fit. */
  from?: 'next' | 'top';
  /** Addresses automatic picks skip on a network, beyond the catalog's own (canonical text). */
  exclude?: (network: string) => ReadonlySet<string> | undefined;
}

export function poolOf(net: Network): Pool {
  return { name: net.name, prefix: parseCidr(net.subnet), gateway: parseIp(net.gateway).value };
}

/** The next free address of `network`; a next-fit allocation moves its cursor. */
export function allocateOn(tx: Txn, network: string, opts: AllocOptions = {}): string {
  const net = tx.network(network);
  // The host's own addresses too: a VIP equal to eth0's address would take the host's traffic.
  const exclude = excludedBoth(opts.exclude?.(net.name), tx.host.addresses?.());
  if (opts.from === 'top') return allocateTop(poolOf(net), tx.addresses(net.name), exclude);
  const got = allocate(poolOf(net), tx.addresses(net.name), BigInt(net.ipamCursor), exclude);
  tx.put('network', net.name, { ...net, ipamCursor: got.cursor.toString() });
  return got.ip;
}

/** Checks that `ip` may be given out on `network` (inside, not reserved, free); returns it canonical. */
export function requestOn(tx: Txn, network: string, ip: string, what: string): string {
  const net = tx.network(network);
  return checkRequested(poolOf(net), ip, tx.addresses(net.name), what);
}

/** `requested` when given (checked against the catalog only), else a free address. */
export function addressOn(tx: Txn, network: string, requested: string | undefined, what: string, opts: AllocOptions = {}): string {
  return requested !== undefined && requested !== '' ? requestOn(tx, network, requested, what) : allocateOn(tx, network, opts);
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
