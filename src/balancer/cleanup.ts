// `vipdns dataplane cleanup`: remove everything any vipdns dataplane made, and nothing else — whatever
// dataplane the daemon last ran with. Safe to run twice and when nothing is there.
import { NftablesDriver } from './drivers/nftables.js';
import type { NftOptions } from './drivers/nftables-render.js';
import type { DataplaneDriver, Logger } from './types.js';

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
