// Catalog sizes, read at scrape time from counts kept from each change (counts.ts).
import { Gauge, type Registry } from 'prom-client';
import type { Catalog } from './catalog.js';
import { CatalogCounts } from './counts.js';

export function registerCatalogMetrics(registry: Registry, catalog: Catalog): void {
  const counts = CatalogCounts.of(catalog.state);
  catalog.on('change', (_s, _k, change) => counts.apply(change));
  new Gauge({
    name: 'vipdns_catalog_networks',
    help: 'Networks in the catalog.',
    registers: [registry],
    collect() {
      this.set(counts.networks);
    },
  });
  new Gauge({
    name: 'vipdns_catalog_services',
    help: 'Services in the catalog by endpoint mode.',
    labelNames: ['endpoint_mode'],
    registers: [registry],
    collect() {
      this.set({ endpoint_mode: 'vip' }, counts.services.vip);
      this.set({ endpoint_mode: 'dnsrr' }, counts.services.dnsrr);
    },
  });
  new Gauge({
    name: 'vipdns_catalog_tasks',
    help: 'Tasks in the catalog by health (unknown: no verdict or no health check).',
    labelNames: ['health'],
    registers: [registry],
    collect() {
      for (const [health, v] of Object.entries(counts.tasks)) this.set({ health }, v);
    },
  });
  new Gauge({
    name: 'vipdns_catalog_containers',
    help: 'Standalone containers in the catalog.',
    registers: [registry],
    collect() {
      this.set(counts.containers);
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
      this.set(counts.withoutServing);
    },
  });
}
