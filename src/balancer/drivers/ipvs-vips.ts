// VIPs must be local addresses of the balancing namespace, or IPVS never sees their packets (they would
// be forwarded, not delivered). Like kube-proxy's kube-ipvs0, the driver owns a dummy interface
// (`vipdns0`) and keeps exactly the VIPs of its units on it, as /32 and /128; deleting the interface
// removes them all. Linux answers ARP for them on the client-facing interfaces (arp_ignore=0).
import { toolError, toolRunner, type Runner } from './exec.js';

export interface VipInterface {
  readonly name: string;
  /** Addresses on the interface; undefined when the interface does not exist. */
  addresses(): Promise<Set<string> | undefined>;
  /** Creates the dummy interface (if missing) and sets it up. */
  ensure(): Promise<void>;
  /** Makes the interface hold exactly `want`; returns the number of addresses added or removed. */
  sync(want: ReadonlySet<string>, have?: ReadonlySet<string>): Promise<number>;
  /** Deletes the interface; false when it was not there. */
  remove(): Promise<boolean>;
}

/** `ip -batch` lines turning `have` into `want`. Pure. */
export function vipBatch(dev: string, want: ReadonlySet<string>, have: ReadonlySet<string>): string[] {
  const lines: string[] = [];
  const pfx = (ip: string): string => (ip.includes(':') ? `${ip}/128` : `${ip}/32`);
  for (const ip of [...have].sort()) if (!want.has(ip)) lines.push(`address del ${pfx(ip)} dev ${dev}`);
  for (const ip of [...want].sort()) if (!have.has(ip)) lines.push(`address add ${pfx(ip)} dev ${dev}${ip.includes(':') ? ' nodad' : ''}`);
  return lines;
}

export function vipInterface(name: string, ip: Runner = toolRunner('ip')): VipInterface {
  const addresses = async (): Promise<Set<string> | undefined> => {
    const r = await ip(['-j', 'address', 'show', 'dev', name]);
    if (r.code !== 0) {
      if (/does not exist|Cannot find device/i.test(r.stderr)) return undefined;
      throw toolError(`ip address show dev ${name}`, r);
    }
    const links = JSON.parse(r.stdout || '[]') as { addr_info?: { family: string; local: string; scope?: string }[] }[];
    const out = new Set<string>();
    for (const l of links) for (const a of l.addr_info ?? []) if (a.scope !== 'link') out.add(a.local);
    return out;
  };
  return {
    name,
    addresses,
    async ensure() {
      if ((await addresses()) === undefined) {
        const r = await ip(['link', 'add', name, 'type', 'dummy']);
        if (r.code !== 0 && !/File exists/.test(r.stderr)) throw toolError(`ip link add ${name} type dummy`, r);
      }
      const up = await ip(['link', 'set', name, 'up']);
      if (up.code !== 0) throw toolError(`ip link set ${name} up`, up);
    },
    async sync(want, have) {
      const cur = have ?? (await addresses()) ?? new Set<string>();
      const lines = vipBatch(name, want, cur);
      if (lines.length === 0) return 0;
      const r = await ip(['-batch', '-'], `${lines.join('\n')}\n`);
      if (r.code !== 0) throw toolError(`ip -batch (VIPs on ${name})`, r);
      return lines.length;
    },
    async remove() {
      const r = await ip(['link', 'del', name]);
      if (r.code === 0) return true;
      if (/does not exist|Cannot find device/i.test(r.stderr)) return false;
      throw toolError(`ip link del ${name}`, r);
    },
  };
}
