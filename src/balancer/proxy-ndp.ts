// IPv6 VIPs owned by the balancing host, for clients on the VIP's own subnet: they send a neighbour
// solicitation for the VIP, and Linux answers one only for an address on the receiving interface (an
// address on lo does not do, unlike IPv4's ARP). So the nftables driver keeps a proxy NDP entry per
// on-link IPv6 VIP on the interface whose route holds it (`ip -6 neigh add proxy VIP dev IF`, with
// proxy_ndp on for that interface). A VIP routed through a gateway needs none. Entries carry no label:
// ours are those for the VIPs our own table dispatches on (nftables-vips.ts classifies them); nothing
// else is touched.
import { contains, formatIp, parseCidr, tryParseIp } from '../net/ip.js';
import { type Runner, toolError, toolRunner } from './drivers/exec.js';
import type { LoAddresses } from './loopback-vips.js';

interface Route {
  prefix: ReturnType<typeof parseCidr>;
  dev: string;
  gateway: boolean;
}

/** Proxy NDP entries (VIP → interface) and the IPv6 routes, as read together. */
export interface NdpView {
  entries: Map<string, string>;
  routes: Route[];
}

/** Parses `ip -6 -j neigh show proxy`. */
export function parseProxies(json: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of JSON.parse(json || '[]') as { dst?: string; dev?: string }[]) {
    const a = e.dst ? tryParseIp(e.dst) : undefined;
    if (a && a.family === 6 && e.dev) out.set(formatIp(a), e.dev);
  }
  return out;
}

/** Parses `ip -6 -j route show` (main table). */
export function parseRoutes(json: string): Route[] {
  const out: Route[] = [];
  for (const r of JSON.parse(json || '[]') as { dst?: string; dev?: string; gateway?: string }[]) {
    if (!r.dst || !r.dev) continue;
    const dst = r.dst === 'default' ? '::/0' : r.dst.includes('/') ? r.dst : `${r.dst}/128`;
    try {
      const prefix = parseCidr(dst);
      if (prefix.family === 6) out.push({ prefix, dev: r.dev, gateway: r.gateway !== undefined });
    } catch {
      // unreachable, multicast and other route types with names for dst: not ours to judge
    }
  }
  return out;
}

/**
 * The interface where `vip` is on-link (longest matching route without a gateway), or undefined when
 * routed. The VIP's own /128 (its address on the IPVS driver's vipdns0) is not where clients are.
 */
export function onLinkDev(routes: Route[], vip: string): string | undefined {
  const a = tryParseIp(vip);
  if (!a || a.family !== 6) return undefined;
  let best: Route | undefined;
  for (const r of routes) {
    if (r.prefix.bits === 128 || !contains(r.prefix, a)) continue;
    if (!best || r.prefix.bits > best.prefix.bits) best = r;
  }
  return best && !best.gateway ? best.dev : undefined;
}

/**
 * Splits what the kernel holds into ours (entries for VIPs our units dispatch on) and present-but-not-
 * ours (other entries, and routed VIPs, which need none), in the shape the VIP book keeps for lo.
 */
export function classify(view: NdpView, unitVips: Iterable<string>): LoAddresses {
  const out: LoAddresses = { ours: new Set(), others: new Set() };
  const wanted = new Set(unitVips);
  for (const vip of view.entries.keys()) (wanted.has(vip) ? out.ours : out.others).add(vip);
  for (const vip of wanted) if (!view.entries.has(vip) && onLinkDev(view.routes, vip) === undefined) out.others.add(vip);
  return out;
}

export class ProxyNdp {
  private readonly ip: Runner;
  private readonly sysctl: Runner;
  private readonly enabled = new Set<string>(); // interfaces with proxy_ndp turned on by us
  private view: NdpView = { entries: new Map(), routes: [] };

  constructor(o: { netns?: string; runner?: Runner; sysctlRunner?: Runner } = {}) {
    this.ip = o.runner ?? toolRunner('ip', o.netns);
    this.sysctl = o.sysctlRunner ?? toolRunner('sysctl', o.netns);
  }

  async read(): Promise<NdpView> {
    const [n, r] = await Promise.all([this.ip(['-6', '-j', 'neigh', 'show', 'proxy']), this.ip(['-6', '-j', 'route', 'show'])]);
    if (n.code !== 0) throw toolError('ip -6 neigh show proxy', n);
    if (r.code !== 0) throw toolError('ip -6 route show', r);
    this.view = { entries: parseProxies(n.stdout), routes: parseRoutes(r.stdout) };
    return this.view;
  }

  /** Adds entries for on-link VIPs (routed ones need none) and deletes ours; returns the entries changed. */
  async write(add: string[], del: string[]): Promise<number> {
    const lines: string[] = [];
    const devs = new Set<string>();
    for (const vip of del) {
      const dev = this.view.entries.get(vip);
      if (dev) lines.push(`neigh del proxy ${vip} dev ${dev}`);
    }
    if (add.length > 0 && this.view.routes.length === 0) await this.read();
    for (const vip of add) {
      const dev = onLinkDev(this.view.routes, vip);
      if (!dev) continue;
      lines.push(`neigh replace proxy ${vip} dev ${dev}`);
      devs.add(dev);
    }
    for (const dev of devs) {
      if (this.enabled.has(dev)) continue;
      const r = await this.sysctl(['-qw', `net.ipv6.conf.${dev}.proxy_ndp=1`]);
      if (r.code !== 0) throw toolError(`sysctl net.ipv6.conf.${dev}.proxy_ndp=1`, r);
      this.enabled.add(dev);
    }
    if (lines.length === 0) return 0;
    const r = await this.ip(['-batch', '-'], `${lines.join('\n')}\n`);
    if (r.code !== 0) throw toolError('ip -batch (proxy NDP for IPv6 VIPs)', r);
    for (const vip of del) this.view.entries.delete(vip);
    for (const vip of add) {
      const dev = onLinkDev(this.view.routes, vip);
      if (dev) this.view.entries.set(vip, dev);
    }
    return lines.length;
  }

  /**
   * Makes the entries for `ours` (VIPs known to be ours, e.g. on our own interface) exactly those of
   * `want` that are on-link; returns the entries changed. Entries for any other address are left alone.
   */
  async sync(want: ReadonlySet<string>, ours: ReadonlySet<string>): Promise<number> {
    const view = await this.read();
    const v6 = (ip: string): boolean => ip.includes(':');
    const add = [...want].filter((ip) => v6(ip) && !view.entries.has(ip) && onLinkDev(view.routes, ip) !== undefined);
    const del = [...ours].filter((ip) => v6(ip) && !want.has(ip) && view.entries.has(ip));
    return this.write(add, del);
  }

  /** Whether an IPv6 VIP is reachable on its link as last read: it has its entry, or it is routed. */
  present(vip: string): boolean {
    return !vip.includes(':') || this.view.entries.has(vip) || onLinkDev(this.view.routes, vip) === undefined;
  }

  /** Removes the entries for these VIPs (our table's); false when there was none. */
  async cleanup(vips: string[]): Promise<boolean> {
    const view = await this.read();
    const ours = [...vips].filter((v) => view.entries.has(v));
    return (await this.write([], ours)) > 0;
  }
}
