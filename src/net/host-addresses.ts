// The addresses configured on this host's interfaces (in the daemon's network namespace), which
// automatic allocation must never hand out: a VIP or task IP equal to eth0's address would take
// the host's own traffic. Read lazily and kept briefly: allocation asks per address, and a host
// whose lo holds 10,000 VIPs makes each read cost milliseconds.
import { networkInterfaces } from 'node:os';
import { formatIp, isLoopback, tryParseIp } from './ip.js';

export type HostAddresses = () => ReadonlySet<string>;

export function hostAddresses(ttlMs = 5000, read: typeof networkInterfaces = networkInterfaces): HostAddresses {
  let cached: ReadonlySet<string> | undefined;
  let at = 0;
  return () => {
    const now = Date.now();
    if (!cached || now - at > ttlMs) {
      const out = new Set<string>();
      for (const list of Object.values(read())) {
        for (const a of list ?? []) {
          const ip = tryParseIp(a.address.split('%')[0]!); // fe80::1%eth0: the zone is not part of the address
          if (ip) out.add(formatIp(ip));
        }
      }
      cached = out;
      at = now;
    }
    return cached;
  };
}

/**
 * The address other hosts know this one by, for `vipdns node ls`: the DNS listen address when it
 * is one specific address, else the first non-loopback IPv4 (then IPv6) address of an interface.
 */
export function advertisedAddress(listenHost: string, read: typeof networkInterfaces = networkInterfaces): string | undefined {
  const l = tryParseIp(listenHost);
  if (l && !isLoopback(l) && l.value !== 0n) return formatIp(l);
  const all = Object.values(read()).flatMap((x) => x ?? []).filter((a) => !a.internal);
  return (all.find((a) => a.family === 'IPv4') ?? all.find((a) => a.family === 'IPv6' && !a.address.startsWith('fe80')))?.address;
}
