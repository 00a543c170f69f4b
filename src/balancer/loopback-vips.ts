// With the nftables dataplane, clients on a VIP's own subnet ARP for it, so the balancing host
// must own the address. IPv4 VIPs go on `lo` as /32 with the label `lo:vipdns` — the label is
// how we tell our addresses from anyone else's, so sync and cleanup never touch foreign ones.
// The nftables driver decides which (drivers/nftables-vips.ts); this file only reads and writes
// lo. (The IPVS driver keeps its VIPs on its own dummy interface instead.) IPv6 VIPs are owned by
// proxy NDP entries instead (proxy-ndp.ts): an address on lo does not answer neighbour solicitations.
import { type Runner, toolError, toolRunner } from './drivers/exec.js';

export const VIP_LABEL = 'lo:vipdns';

/** IPv4 addresses on lo: ours (labelled /32) and everyone else's (never touched; they count as present). */
export interface LoAddresses {
  ours: Set<string>;
  others: Set<string>;
}

/** Parses `ip -4 -j addr show dev lo`. */
export function parseLo(json: string): LoAddresses {
  const out: LoAddresses = { ours: new Set(), others: new Set() };
  const links = JSON.parse(json || '[]') as { addr_info?: { family?: string; local?: string; prefixlen?: number; label?: string }[] }[];
  for (const l of links) {
    for (const a of l.addr_info ?? []) {
      if (a.family !== 'inet' || !a.local) continue;
      if (a.label === VIP_LABEL && a.prefixlen === 32) out.ours.add(a.local);
      else out.others.add(a.local);
    }
  }
  return out;
}

/** `ip -batch` lines adding and removing our labelled addresses. Pure. */
export function loBatch(add: Iterable<string>, del: Iterable<string>): string[] {
  return [...[...add].sort().map((v) => `addr add ${v}/32 dev lo label ${VIP_LABEL}`), ...[...del].sort().map((v) => `addr del ${v}/32 dev lo label ${VIP_LABEL}`)];
}

export class LoopbackVips {
  private readonly ip: Runner;

  constructor(o: { netns?: string; runner?: Runner } = {}) {
    this.ip = o.runner ?? toolRunner('ip', o.netns);
  }

  async read(): Promise<LoAddresses> {
    const r = await this.ip(['-4', '-j', 'addr', 'show', 'dev', 'lo']);
    if (r.code !== 0) throw toolError('ip addr show dev lo', r);
    return parseLo(r.stdout);
  }

  /** One `ip -batch` for all of it; returns the number of addresses changed. */
  async write(add: Iterable<string>, del: Iterable<string>): Promise<number> {
    const lines = loBatch(add, del);
    if (lines.length === 0) return 0;
    const r = await this.ip(['-batch', '-'], `${lines.join('\n')}\n`);
    if (r.code !== 0) throw toolError('ip -batch (VIP addresses on lo)', r);
    return lines.length;
  }

  /** Removes every labelled address; false when there was none. */
  async cleanup(): Promise<boolean> {
    const { ours } = await this.read();
    return (await this.write([], ours)) > 0;
  }
}
