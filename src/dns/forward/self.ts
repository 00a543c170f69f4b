// Is an upstream this daemon itself? Forwarding to our own DNS address loops: each query comes
// back as a new query until one times out, and the upstream flaps between SERVFAIL and healthy.
// Pure apart from localAddresses(), which reads the host's interface addresses.
import { networkInterfaces } from 'node:os';
import { type Addr, isLoopback, tryParseIp, unmapV4 } from '../../net/ip.js';
import type { Endpoint } from './address.js';


/** Every address on this host's interfaces, loopback included. */
export function localAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((a) => a.address.replace(/%.*$/, '')));
}

/**
 * True when a query sent to `upstream` reaches our DNS socket on `listen`: the same port, and the
 * upstream's address is the one we listen on, or, when we listen on a wildcard, any address of this
 * host (loopback, a local interface address, or 0.0.0.0 / ::, which the kernel delivers locally).
 * A wildcard IPv6 socket is taken as dual-stack (Node's default), so it covers IPv4 addresses too.
 */
export function isSelf(upstream: Endpoint, listen: Endpoint, local: readonly string[]): boolean {
  if (listen.port === 0 || upstream.port !== listen.port) return false; // port 0: not bound yet, cannot be named
  const up = addr(upstream.host);
  const at = addr(listen.host);
  if (!up || !at) return false;
  const thisHost = up.value === 0n || isLoopback(up) || local.some((l) => same(addr(l), up));
  if (at.value === 0n) return thisHost && (at.family === 6 || up.family === 4);
  // An unspecified upstream address reaches loopback on Linux.
  if (up.value === 0n) return isLoopback(at);
  return same(up, at);
}

function addr(text: string): Addr | undefined {
  const a = tryParseIp(text);
  return a ? unmapV4(a) : undefined;
}

function same(a: Addr | undefined, b: Addr): boolean {
  return a !== undefined && a.family === b.family && a.value === b.value;
}
