// vipdns_build_info{version,node}: 1, so dashboards and alerts can tell versions apart (the
// Prometheus convention for build metadata).
import { Gauge, type Registry } from 'prom-client';
import { VERSION } from '../version.js';

export function registerBuildInfo(registry: Registry): void {
  const g = new Gauge({ name: 'vipdns_build_info', help: 'vipdns version (always 1)', labelNames: ['version', 'nodejs'], registers: [registry] });
  g.set({ version: VERSION, nodejs: process.versions.node }, 1);
}
