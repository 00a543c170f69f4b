// `vipdns dataplane cleanup`: remove everything any vipdns dataplane made, and nothing else — whatever
// dataplane the daemon last ran with. Safe to run twice and when nothing is there.
import { NftablesDriver } from './drivers/nftables.js';
import type { NftOptions } from './drivers/nftables-render.js';
import { vipInterface } from './drivers/ipvs-vips.js';
import { LoopbackVips, VIP_LABEL } from './loopback-vips.js';
import type { DataplaneDriver, DriverName, Logger } from './types.js';

/** The command that removes what a stopped daemon leaves (cli.ts `dataplane cleanup`). */
export const CLEANUP_COMMAND = 'vipdns dataplane cleanup';

export interface CleanupOptions {
  netns?: string;
  logger?: Logger;
  nft?: Partial<NftOptions>;
  /** Further drivers to clean (the IPVS driver registers here once it exists). */
  extra?: DataplaneDriver[];
}

export interface CleanupReport {
  removed: string[]; // driver names that had something to remove
  errors: { driver: string; message: string }[];
}

export async function cleanupDataplane(o: CleanupOptions = {}): Promise<CleanupReport> {
  const drivers: DataplaneDriver[] = [new NftablesDriver({ ...o.nft, ...(o.netns ? { netns: o.netns } : {}) }), ...(o.extra ?? [])];
  const report: CleanupReport = { removed: [], errors: [] };
  for (const d of drivers) {
    try {
      const r = await d.cleanup();
      if (r.removed) report.removed.push(d.name);
      o.logger?.info({ dataplane: d.name, removed: r.removed }, r.removed ? `dataplane cleanup: removed ${d.name} state` : `dataplane cleanup: no ${d.name} state`);
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      report.errors.push({ driver: d.name, message });
      o.logger?.error({ dataplane: d.name, err: message }, 'dataplane cleanup failed');
    }
  }
  return report;
}

/** What a stopped daemon left programmed in the kernel, as read back from it. */
export interface Leftover {
  dataplane: DriverName;
  /** The kernel objects, for a person: table or services, and where the VIPs are. */
  objects: string;
  vipServices: number;
  publishedPorts: number;
  vips: number;
  cleanup: string;
}

/**
 * Reads what `driver` has in the kernel now; undefined when nothing of it is there. The daemon keeps
 * its dataplane on exit (a restart adopts it, established flows survive), so it says so on the way out.
 */
export async function leftInKernel(driver: DataplaneDriver, o: { vipInterface?: string } = {}): Promise<Leftover | undefined> {
  if (driver.name === 'none') return undefined;
  const state = await driver.observe();
  const ids = [...state.units.keys()];
  const vipServices = ids.filter((id) => id.startsWith('vip')).length;
  const publishedPorts = ids.filter((id) => id.startsWith('pub')).length;
  const counts = `${plural(vipServices, 'VIP service')} and ${plural(publishedPorts, 'published port')}`;
  let vips: number;
  let objects: string;
  if (driver instanceof NftablesDriver) {
    vips = (await new LoopbackVips().read()).ours.size;
    if (state.base === 'missing' && vips === 0) return undefined;
    objects = `nftables table inet ${driver.options.table} (${counts}), ${plural(vips, 'VIP')} on lo (label ${VIP_LABEL})`;
  } else {
    const dev = o.vipInterface ?? 'vipdns0';
    const addrs = await vipInterface(dev).addresses();
    vips = addrs?.size ?? 0;
    if (state.base === 'missing' && ids.length === 0 && addrs === undefined) return undefined;
    objects = `IPVS fwmark services (${counts}), iptables chains VIPDNS-*, ${plural(vips, 'VIP')} on ${addrs ? dev : `${dev} (missing)`}`;
  }
  return { dataplane: driver.name, objects, vipServices, publishedPorts, vips, cleanup: CLEANUP_COMMAND };
}

/** The one log line for it. */
export function leftoverMessage(l: Leftover): string {
  return `left the ${l.dataplane} dataplane in the kernel for the next start to adopt (connections keep flowing): ${l.objects}; to remove it, run \`${l.cleanup}\` as root with the daemon stopped`;
}

function plural(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? '' : 's'}`;
}
