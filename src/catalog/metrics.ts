// Catalog sizes, computed at scrape time from the live state (no bookkeeping to drift).
import { Gauge, type Registry } from 'prom-client';
import type { Catalog } from './catalog.js';

export function registerCatalogMetrics(registry: Registry, catalog: Catalog): void {
  new Gauge({
    name: 'vipdns_catalog_networks',
    help: 'Networks in the catalog.',
    registers: [registry],
    collect() {
      this.set(Object.keys(catalog.state.networks).length);
    },
  });
  new Gauge({
    name: 'vipdns_catalog_services',
    help: 'Services in the catalog by endpoint mode.',
    labelNames: ['endpoint_mode'],
    registers: [registry],
    collect() {
      const n = { vip: 0, dnsrr: 0 };
      for (const s of Object.values(catalog.state.services)) n[s.endpointMode]++;
      this.set({ endpoint_mode: 'vip' }, n.vip);
      this.set({ endpoint_mode: 'dnsrr' }, n.dnsrr);
    },
  });
  new Gauge({
    name: 'vipdns_catalog_tasks',
    help: 'Tasks in the catalog by health (unknown: no verdict or no health check).',
    labelNames: ['health'],
    registers: [registry],
    collect() {
      const n = { unknown: 0, healthy: 0, unhealthy: 0 };
      for (const t of Object.values(catalog.state.tasks)) n[t.health]++;
      for (const [health, v] of Object.entries(n)) this.set({ health }, v);
    },
  });
  new Gauge({
    name: 'vipdns_catalog_containers',
    help: 'Standalone containers in the catalog.',
    registers: [registry],
    collect() {
      this.set(Object.keys(catalog.state.containers).length);
    },
  });
  new Gauge({
    name: 'vipdns_catalog_revision',
    help: 'Revision of the last committed catalog change.',
    registers: [registry],
    collect() {
      this.set(catalog.state.revision);
    },
  });
  new Gauge({
    name: 'vipdns_services_without_healthy_tasks',
    help: 'Services that have tasks but none serving (answers fail open to all tasks).',
    registers: [registry],
    collect() {
      const byService = new Map<string, { total: number; serving: number }>();
      for (const t of Object.values(catalog.state.tasks)) {
        const e = byService.get(t.service) ?? { total: 0, serving: 0 };
        e.total++;
        if (t.health !== 'unhealthy') e.serving++;
        byService.set(t.service, e);
      }
      let n = 0;
      for (const e of byService.values()) if (e.total > 0 && e.serving === 0) n++;
      this.set(n);
    },
  });
}
