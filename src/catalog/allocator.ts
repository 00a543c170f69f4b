// Address allocation inside a transaction: the one allocator of every writer (API, config,
// Docker source). Next-fit over the network's pool with the cursor kept on the network, so
// freed addresses are handed out last; what is in use comes from the transaction's view.
import { parseCidr, parseIp } from '../net/ip.js';
import { type Pool, allocate, checkRequested } from './ipam.js';
import type { Network } from './model.js';
import type { Txn } from './txn.js';

export function poolOf(net: Network): Pool {
  return { name: net.name, prefix: parseCidr(net.subnet), gateway: parseIp(net.gateway).value };
}

/** The next free address of `network`; moves its cursor. */
export function allocateOn(tx: Txn, network: string): string {
  const net = tx.network(network);
  const got = allocate(poolOf(net), tx.addresses(net.name), BigInt(net.ipamCursor));
  tx.put('network', net.name, { ...net, ipamCursor: got.cursor.toString() });
  return got.ip;
}

/** Checks that `ip` may be given out on `network` (inside, not reserved, free); returns it canonical. */
export function requestOn(tx: Txn, network: string, ip: string, what: string): string {
  const net = tx.network(network);
  return checkRequested(poolOf(net), ip, tx.addresses(net.name), what);
}

/** `requested` when given (checked), else the next free address. */
export function addressOn(tx: Txn, network: string, requested: string | undefined, what: string): string {
  return requested !== undefined && requested !== '' ? requestOn(tx, network, requested, what) : allocateOn(tx, network);
}
