// `--dataplane auto|ipvs|nftables|none` → a driver, with one clear line saying what was chosen and why.
import { VipdnsError } from '../errors.js';
import { IpvsDriver } from './drivers/ipvs.js';
import { NftablesDriver } from './drivers/nftables.js';
import type { NftOptions } from './drivers/nftables-render.js';
import { NoneDriver } from './drivers/none.js';
import { toolRunner } from './drivers/exec.js';
import { probeIpvs } from './drivers/supported.js';
import { netlinkUnavailable } from './netlink/netlink-socket.js';
import type { DataplaneDriver, Logger, ProbeResult } from './types.js';

export type DataplaneKind = 'auto' | 'ipvs' | 'nftables' | 'none';

export const DATAPLANE_KINDS: readonly DataplaneKind[] = ['auto', 'ipvs', 'nftables', 'none'];

export interface CreateDriverOptions {
  isRoot: boolean;
  /** Program this named network namespace instead of our own (tests, benchmarks). */
  netns?: string;
  logger?: Logger;
  nft?: Partial<NftOptions>;
  /** Overrides the IPVS driver and its probe (tests); by default an IpvsDriver in our own namespace. */
  ipvs?: { create: () => DataplaneDriver; probe?: () => Promise<ProbeResult> };
}

export interface CreatedDriver {
  driver: DataplaneDriver;
  reason: string; // why this driver; the log line is `dataplane: <reason>`
}

/** Throws DATAPLANE_UNSUPPORTED when an explicitly requested dataplane cannot run here. */
export async function createDriver(kind: DataplaneKind, o: CreateDriverOptions): Promise<CreatedDriver> {
  const done = (driver: DataplaneDriver, reason: string, level: 'info' | 'warn' = 'info'): CreatedDriver => {
    o.logger?.[level]({ dataplane: driver.name, requested: kind }, `dataplane: ${reason}`);
    return { driver, reason };
  };
  if (kind === 'none') return done(new NoneDriver(), 'none (--dataplane none): DNS only, VIPs are not load-balanced');
  if (!o.isRoot) {
    if (kind === 'auto') return done(new NoneDriver(), 'none: not running as root, so DNS only; VIPs and published ports are not load-balanced', 'warn');
    throw new VipdnsError('DATAPLANE_UNSUPPORTED', `--dataplane ${kind} needs root (CAP_NET_ADMIN); run as root or use --dataplane none`);
  }

  // The IPVS driver programs the namespace the process runs in (its netlink socket cannot be moved).
  const ipvs = o.ipvs ?? (o.netns ? undefined : { create: () => new IpvsDriver({ ...(o.logger ? { logger: o.logger } : {}) }) });
  const noAddon = o.ipvs ? undefined : netlinkUnavailable();
  const ipvsProbe = noAddon
    ? { supported: false, reason: 'the IPVS driver needs the native netlink addon, which is not built (`npm run build:native` with a C toolchain)' }
    : o.ipvs || !o.netns
      ? await (o.ipvs?.probe ?? (() => probeIpvs()))()
      : { supported: false, reason: 'the IPVS driver cannot program another namespace (run vipdns inside it)' };
  if (kind === 'ipvs') {
    if (!ipvsProbe.supported) throw new VipdnsError('DATAPLANE_UNSUPPORTED', `--dataplane ipvs: ${ipvsProbe.reason ?? 'IPVS unavailable'}`);
    if (!ipvs) throw new VipdnsError('DATAPLANE_UNSUPPORTED', '--dataplane ipvs: the IPVS driver is not available here; use --dataplane nftables');
    return done(ipvs.create(), 'ipvs (--dataplane ipvs)');
  }
  if (kind === 'auto' && ipvsProbe.supported && ipvs) return done(ipvs.create(), 'ipvs (auto: kernel has IPVS)');

  const nft = new NftablesDriver({ ...o.nft, ...(o.netns ? { netns: o.netns } : {}) });
  const nftProbe = await nft.probe();
  if (nftProbe.supported) {
    const why = kind === 'nftables' ? '--dataplane nftables' : ipvsProbe.supported ? 'auto: IPVS driver not available yet' : `auto: ${ipvsProbe.reason}`;
    return done(nft, `nftables (${why})`);
  }
  if (kind === 'nftables') throw new VipdnsError('DATAPLANE_UNSUPPORTED', `--dataplane nftables: ${nftProbe.reason}`);
  return done(new NoneDriver(), `none (auto: no IPVS — ${ipvsProbe.reason}; no nftables — ${nftProbe.reason}): DNS only`, 'warn');
}

/**
 * Whether containers' own namespaces need vipdns's dataplane (sandboxes.ts), and the driver for one.
 * Only without IPVS: with it, the engine balances its overlay VIPs itself, in each container.
 */
export async function sandboxDrivers(o: { isRoot: boolean; probeIpvs?: () => Promise<ProbeResult> }): Promise<{ driverFor?: (netns: string) => DataplaneDriver; reason: string }> {
  if (!o.isRoot) return { reason: 'not root: containers on overlays reach VIPs only through the engine' };
  const ipvs = await (o.probeIpvs ?? (() => probeIpvs()))();
  if (ipvs.supported) return { reason: 'the kernel has IPVS: the engine balances overlay VIPs in each container itself' };
  const probe = await new NftablesDriver().probe();
  if (!probe.supported) return { reason: `no IPVS and no nftables (${probe.reason}): overlay VIPs are not balanced` };
  const expectCache = new WeakMap(); // the sandboxes share plans, so they render each unit once
  return {
    driverFor: (netns) => new NftablesDriver({ runner: toolRunner('nft', netns), expectCache }),
    reason: 'no IPVS, so the engine cannot balance overlay VIPs: vipdns programs them in each container namespace (nftables)',
  };
}
