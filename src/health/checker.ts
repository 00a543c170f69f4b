// Active health checks: probes every task of every service that declares a check, and
// writes the verdicts back to the catalog (from where DNS and the balancer follow).
import type { Catalog } from '../catalog/catalog.js';
import type { CatalogState, HealthCheckSpec, Task } from '../catalog/model.js';
import { type ProbeResult, probe } from './probe.js';
import { type Counters, initialCounters, step } from './state.js';

export interface CheckerHooks {
  onProbe?: (result: 'success' | 'failure', service: string) => void;
  onTransition?: (task: Task, from: string, to: string, detail: string) => void;
}

interface Tracked {
  taskId: string;
  service: string;
  ip: string;
  spec: HealthCheckSpec;
  specKey: string;
  counters: Counters;
  timer: NodeJS.Timeout;
  inFlight: boolean;
}

export class HealthChecker {
  private readonly tracked = new Map<string, Tracked>();
  private stopped = false;
  private readonly onChange = (s: CatalogState): void => this.sync(s);

  constructor(
    private readonly catalog: Catalog,
    private readonly hooks: CheckerHooks = {},
    private readonly probeFn: (ip: string, spec: HealthCheckSpec) => Promise<ProbeResult> = probe,
  ) {}

  start(): void {
    this.catalog.on('change', this.onChange);
    this.sync(this.catalog.state);
  }

  stop(): void {
    this.stopped = true;
    this.catalog.off('change', this.onChange);
    for (const t of this.tracked.values()) clearInterval(t.timer);
    this.tracked.clear();
  }

  get size(): number {
    return this.tracked.size;
  }

  /** Starts probes for new checked tasks, stops them for tasks or checks that went away. */
  private sync(state: Readonly<CatalogState>): void {
    if (this.stopped) return;
    const want = new Map<string, { task: Task; spec: HealthCheckSpec; ip: string }>();
    for (const task of Object.values(state.tasks)) {
      const svc = state.services[task.service];
      const spec = svc?.healthCheck;
      if (!svc || !spec) continue;
      // Probe on the service's first network that gives the task an address.
      const ip = svc.attachments.map((a) => task.addresses[a.network]).find((x): x is string => !!x);
      if (ip) want.set(task.id, { task, spec, ip });
    }
    for (const [id, t] of this.tracked) {
      const w = want.get(id);
      if (!w || JSON.stringify(w.spec) !== t.specKey || w.ip !== t.ip) {
        clearInterval(t.timer);
        this.tracked.delete(id);
      }
    }
    for (const [id, w] of want) {
      if (this.tracked.has(id)) continue;
      const tr: Tracked = {
        taskId: id,
        service: w.task.service,
        ip: w.ip,
        spec: w.spec,
        specKey: JSON.stringify(w.spec),
        counters: initialCounters(w.task.health),
        inFlight: false,
        timer: setInterval(() => void this.run(tr), w.spec.intervalMs),
      };
      tr.timer.unref();
      this.tracked.set(id, tr);
      void this.run(tr); // first verdict without waiting a whole interval
    }
  }

  private async run(tr: Tracked): Promise<void> {
    if (tr.inFlight) return; // a slow probe must not pile up behind itself
    tr.inFlight = true;
    try {
      const r = await this.probeFn(tr.ip, tr.spec);
      if (this.tracked.get(tr.taskId) !== tr) return; // removed meanwhile
      this.hooks.onProbe?.(r.ok ? 'success' : 'failure', tr.service);
      const before = tr.counters.health;
      tr.counters = step(tr.counters, r.ok, tr.spec.rise, tr.spec.fall);
      const task = Object.hasOwn(this.catalog.state.tasks, tr.taskId) ? this.catalog.state.tasks[tr.taskId] : undefined;
      if (tr.counters.health !== before && task) this.hooks.onTransition?.(task, before, tr.counters.health, r.detail);
      // Compare with the catalog, not only with our last verdict: a write that failed (store
      // unavailable) is retried on the next probe instead of being lost.
      if (task && task.health !== tr.counters.health && tr.counters.health !== 'unknown') {
        await this.catalog.setTaskHealth(tr.taskId, tr.counters.health).catch(() => undefined);
      }
    } finally {
      tr.inFlight = false;
    }
  }
}
