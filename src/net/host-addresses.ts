// The addresses configured on this host's interfaces (in the daemon's network namespace), which
// automatic allocation must never hand out: a VIP or task IP equal to eth0's address would take
// the host's own traffic. Read lazily and kept briefly: allocation asks per address, and a host
// whose lo holds 10,000 VIPs makes each read cost milliseconds.
import { networkInterfaces } from 'node:os';
import { formatIp, tryParseIp } from './ip.js';

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
