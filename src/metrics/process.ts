// Process metrics: prom-client's default collectors, minus the three gauges it names with a
// counter's "_total" suffix (promtool's lint rejects them). Their per-type twins
// nodejs_active_handles / _requests / _resources stay, and sum to the same numbers. Plus the
// longest event-loop stall between scrapes (event-loop.ts).
import { type Registry, collectDefaultMetrics } from 'prom-client';
import { registerEventLoopMetrics } from './event-loop.js';

const MISNAMED = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

export function registerProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  for (const name of MISNAMED) registry.removeSingleMetric(name);
  registerEventLoopMetrics(registry);
}
