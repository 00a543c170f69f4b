// With the nftables dataplane, clients on a VIP's own subnet ARP for it, so the balancing host
// must own the address. IPv4 VIPs go on `lo` as /32 with the label `lo:vipdns` — the label is
// how we tell our addresses from anyone else's, so sync and cleanup never touch foreign ones.
// (The IPVS driver keeps its VIPs on its own dummy interface instead.) IPv6 has no address
// labels in iproute2 6.1: IPv6 VIPs must be routed to the balancing host.
import type { CatalogState } from '../catalog/model.js';
import { canonicalIp } from '../net/ip.js';
import { type Runner, toolError, toolRunner } from './drivers/exec.js';

export const VIP_LABEL = 'lo:vipdns';

/** The IPv4 VIPs that have something to balance: vip-mode services with ports. */
export function loopbackVips(state: Readonly<CatalogState>): string[] {
  const out = new Set<string>();
  for (const svc of Object.values(state.services)) {
    if (svc.endpointMode !== 'vip' || svc.ports.length === 0) continue;
    for (const a of svc.attachments) if (a.vip && !a.vip.includes(':')) out.add(canonicalIp(a.vip));
  }
  return [...out].sort();
}

/** Parses `ip -4 -o addr show dev lo label lo:vipdns`. */
export function parseLabelled(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /\binet (\d+\.\d+\.\d+\.\d+)\/32 .*?(\S+?)\\?\s+valid_lft/.exec(line) ?? /\binet (\d+\.\d+\.\d+\.\d+)\/32 .* (\S+)$/.exec(line.trim());
    if (m && m[2] === VIP_LABEL) out.push(m[1]!);
  }
  return out.sort();
}

export class LoopbackVips {
  private readonly ip: Runner;

  constructor(o: { netns?: string; runner?: Runner } = {}) {
    this.ip = o.runner ?? toolRunner('ip', o.netns);
  }

  async list(): Promise<string[]> {
    const r = await this.ip(['-4', '-o', 'addr', 'show', 'dev', 'lo', 'label', VIP_LABEL]);
    if (r.code !== 0) throw toolError('ip addr show', r);
    return parseLabelled(r.stdout);
  }

  /** Makes our labelled addresses exactly `want`; returns what changed. */
  async sync(want: string[]): Promise<{ added: string[]; removed: string[] }> {
    const have = new Set(await this.list());
    const wanted = new Set(want);
    const added = want.filter((v) => !have.has(v));
    const removed = [...have].filter((v) => !wanted.has(v));
    const batch = [...added.map((v) => `addr add ${v}/32 dev lo label ${VIP_LABEL}`), ...removed.map((v) => `addr del ${v}/32 dev lo label ${VIP_LABEL}`)];
    if (batch.length > 0) {
      const r = await this.ip(['-batch', '-'], `${batch.join('\n')}\n`);
      if (r.code !== 0) throw toolError('ip -batch (VIP addresses)', r);
    }
    return { added, removed };
  }

  async cleanup(): Promise<boolean> {
    return (await this.sync([])).removed.length > 0;
  }
}

/** Keeps the labelled addresses following the catalog: bursts coalesce, failures are logged and retried on the next call. */
export class LoopbackVipSync {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly vips: LoopbackVips,
    private readonly current: () => Readonly<CatalogState>,
    private readonly log: { info(o: object, m: string): void; error(o: object, m: string): void },
  ) {}

  private synced: string | undefined; // the VIP set last written successfully
  private force = false;

  /**
   * Syncs soon. Catalog changes rarely touch VIPs (tasks, health), so unless `repair` is set the
   * kernel is only read and written when the wanted set differs from the last one synced.
   */
  request(repair = false): void {
    this.force ||= repair;
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.running = (this.running ?? Promise.resolve()).then(() => this.run());
    }, 50);
    this.timer.unref?.();
  }

  async run(): Promise<void> {
    const wanted = loopbackVips(this.current());
    const key = wanted.join(',');
    const force = this.force;
    this.force = false;
    if (!force && key === this.synced) return;
    try {
      const r = await this.vips.sync(wanted);
      this.synced = key;
      if (r.added.length + r.removed.length > 0) this.log.info({ added: r.added, removed: r.removed, label: VIP_LABEL }, 'dataplane: VIP addresses on lo updated');
    } catch (e) {
      this.synced = undefined; // retried on the next request
      this.log.error({ err: (e as Error).message }, 'dataplane: cannot update VIP addresses on lo');
    }
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }
}
