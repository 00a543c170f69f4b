// Ports something on this host (in the daemon's network namespace) listens on, read from
// /proc/net/{tcp,tcp6,udp,udp6}: an automatic published port must not take one, or the routing
// mesh would capture that service's traffic. Read only when asked, and kept briefly.
import { readFileSync } from 'node:fs';
// The transport protocols /proc/net lists listeners of (the catalog's Protocol is the same union; net/ imports nothing above it).
type Protocol = 'tcp' | 'udp';

const TCP_LISTEN = '0A';

/** Local ports in a /proc/net table: listening sockets for TCP, every bound socket for UDP. */
export function parseProcNet(text: string, protocol: Protocol): number[] {
  const out: number[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4) continue;
    if (protocol === 'tcp' && f[3] !== TCP_LISTEN) continue;
    const port = parseInt(f[1]!.split(':')[1] ?? '', 16);
    if (Number.isInteger(port) && port > 0) out.push(port);
  }
  return out;
}

export function listeningPorts(ttlMs = 2000, root = '/proc/net'): (protocol: Protocol) => ReadonlySet<number> {
  const cache = new Map<Protocol, { at: number; ports: ReadonlySet<number> }>();
  return (protocol) => {
    const hit = cache.get(protocol);
    if (hit && Date.now() - hit.at <= ttlMs) return hit.ports;
    const ports = new Set<number>();
    for (const file of [protocol, `${protocol}6`]) {
      let text = '';
      try {
        text = readFileSync(`${root}/${file}`, 'utf8');
      } catch {
        continue; // no IPv6, or no /proc: nothing known to skip
      }
      for (const p of parseProcNet(text, protocol)) ports.add(p);
    }
    cache.set(protocol, { at: Date.now(), ports });
    return ports;
  };
}
