// Dataplane metrics: sync outcomes from the reconciler's onSync hook, programmed state read
// from status() at scrape time. Labels: driver, reason, stage, kind, state — all bounded.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Balancer, SyncReport } from './reconcile.js';

export interface DataplaneMetrics {
  onSync(r: SyncReport): void;
}

export function registerDataplaneMetrics(registry: Registry, driver: string, status: () => ReturnType<Balancer['status']> | undefined): DataplaneMetrics {
  const duration = new Histogram({
    name: 'vipdns_dataplane_sync_duration_seconds',
    help: 'One reconcile pass (plan, diff, kernel writes), by reason.',
    labelNames: ['driver', 'reason'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const syncs = new Counter({ name: 'vipdns_dataplane_syncs_total', help: 'Reconcile passes by reason.', labelNames: ['driver', 'reason'], registers: [registry] });
  const errors = new Counter({ name: 'vipdns_dataplane_sync_errors_total', help: 'Failed reconcile passes.', labelNames: ['driver'], registers: [registry] });
  const kernel = new Counter({
    name: 'vipdns_dataplane_kernel_errors_total',
    help: 'Kernel reads (observe) or writes (apply) that failed.',
    labelNames: ['driver', 'op'],
    registers: [registry],
  });
  const ops = new Counter({ name: 'vipdns_dataplane_kernel_operations_total', help: 'Kernel operations sent (nft commands, netlink messages).', labelNames: ['driver'], registers: [registry] });
  const last = new Gauge({
    name: 'vipdns_dataplane_last_sync_success_timestamp_seconds',
    help: 'Unix time of the last successful reconcile pass.',
    labelNames: ['driver'],
    registers: [registry],
  });
  new Gauge({
    name: 'vipdns_dataplane_services',
    help: 'Programmed VIP services (one per VIP, port and protocol) and published ports.',
    labelNames: ['driver', 'kind'],
    registers: [registry],
    collect() {
      const s = status();
      this.set({ driver, kind: 'vip' }, s?.programmed.services ?? 0);
      this.set({ driver, kind: 'published' }, s?.programmed.published ?? 0);
    },
  });
  new Gauge({
    name: 'vipdns_dataplane_backends',
    help: 'Programmed backends: active ones take new connections, draining ones keep established flows only.',
    labelNames: ['driver', 'state'],
    registers: [registry],
    collect() {
      const p = status()?.programmed;
      this.set({ driver, state: 'active' }, (p?.backends ?? 0) - (p?.draining ?? 0));
      this.set({ driver, state: 'draining' }, p?.draining ?? 0);
    },
  });
  // Zero-valued series exist from the start, so "no errors" reads 0 rather than nothing.
  errors.inc({ driver }, 0);
  kernel.inc({ driver, op: 'observe' }, 0);
  kernel.inc({ driver, op: 'apply' }, 0);
  return {
    onSync(r) {
      duration.observe({ driver, reason: r.reason }, r.ms / 1000);
      syncs.inc({ driver, reason: r.reason });
      ops.inc({ driver }, r.ops);
      if (r.error) {
        errors.inc({ driver });
        if (r.stage) kernel.inc({ driver, op: r.stage });
      } else {
        last.set({ driver }, Date.now() / 1000);
      }
    },
  };
}
