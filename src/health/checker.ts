// Active health checks: probes the tasks this host owns (all of them on a host of its own; on a
// shared store the ones it registered) of every service that declares a check, and writes the
// verdicts back to the catalog (from where DNS and the balancer of every host follow).
// A catalog change costs what it touches: only its tasks, and all tasks of a service whose
// check or attachments changed, are looked at again; the whole catalog is scanned at start only.
import type { AppliedChange, ChangeKind } from '../catalog/changes.js';
import type { CatalogState, HealthCheckSpec, Task } from '../catalog/model.js';
import { type ProbeResult, probe } from './probe.js';
import { type Counters, initialCounters, step } from './state.js';

export interface CheckerHooks {
  onProbe?: (result: 'success' | 'failure', service: string) => void;
  onTransition?: (task: Task, from: string, to: string, detail: string) => void;
}

/** The part of the catalog the checker uses (a fake in tests). */
export interface HealthCatalog {
  readonly state: Readonly<CatalogState>;
  tasksOf(service: string): Task[];
  setTaskHealth(id: string, health: Task['health']): Promise<void>;
  on(event: 'change', fn: ChangeListener): unknown;
  off(event: 'change', fn: ChangeListener): unknown;
}
type ChangeListener = (state: CatalogState, kinds: Set<ChangeKind>, change: AppliedChange) => void;

/** What a task is probed at; tracked probes restart when it changes. */
export interface ProbeTarget {
  service: string;
  ip: string;
  spec: HealthCheckSpec;
}

interface Tracked extends ProbeTarget {
  taskId: string;
  specKey: string;
  counters: Counters;
  timer: NodeJS.Timeout;
  inFlight: boolean;
  /** Sequence number of the start: tells a restarted probe from one left running (tests). */
  started: number;
}

/** Where `task` should be probed in `state`, if anywhere. Pure. */
export function probeTarget(state: Readonly<CatalogState>, task: Task): ProbeTarget | undefined {
  const svc = Object.hasOwn(state.services, task.service) ? state.services[task.service] : undefined;
  const spec = svc?.healthCheck;
  if (!svc || !spec) return undefined;
  // Probe on the service's first network that gives the task an address.
  const ip = svc.attachments.map((a) => task.addresses[a.network]).find((x): x is string => !!x);
  return ip ? { service: task.service, ip, spec } : undefined;
}

/** The tasks whose probe target a change may move. Pure apart from `tasksOf`. */
export function touchedTasks(change: AppliedChange, tasksOf: (service: string) => Iterable<string>): Set<string> {
  const ids = new Set<string>();
  const services = new Set<string>();
  for (const p of change.puts) {
    if (p.kind === 'task') ids.add(p.id);
    else if (p.kind === 'service') {
      const a = p.prev;
      const b = p.value;
      if (!a || JSON.stringify(a.healthCheck) !== JSON.stringify(b.healthCheck) || JSON.stringify(a.attachments) !== JSON.stringify(b.attachments)) services.add(p.id);
    }
    // Networks and containers feed no probe target.
  }
  for (const d of change.deletes) {
    if (d.kind === 'task') ids.add(d.id);
    else if (d.kind === 'service') services.add(d.id);
  }
  for (const s of services) for (const id of tasksOf(s)) ids.add(id);
  return ids;
}

export class HealthChecker {
  private readonly tracked = new Map<string, Tracked>();
  private stopped = false;
  private starts = 0;
  private readonly onChange: ChangeListener = (s, _kinds, change) => (change ? this.apply(s, change) : this.sync(s));

  constructor(
    private readonly catalog: HealthCatalog,
    private readonly hooks: CheckerHooks = {},
    private readonly probeFn: (ip: string, spec: HealthCheckSpec) => Promise<ProbeResult> = probe,
    /** Which tasks this host probes (default: all). A host that cannot reach a task of another never flaps it. */
    private readonly owns: (task: Task) => boolean = () => true,
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

  /** task id → where it is probed, and which start of its probe is running. */
  targets(): Map<string, ProbeTarget & { started: number }> {
    const out = new Map<string, ProbeTarget & { started: number }>();
    for (const [id, t] of this.tracked) out.set(id, { service: t.service, ip: t.ip, spec: t.spec, started: t.started });
    return out;
  }

  /** Full sync: every task of the catalog (at start, or from an emitter that gives no change). */
  private sync(state: Readonly<CatalogState>): void {
    if (this.stopped) return;
    const ids = new Set(this.tracked.keys());
    // Only tasks of services with a check can need a probe: with none (the usual start), no pass
    // over every task (100,000 of them: ~60 ms of start-up).
    const checked = new Set<string>();
    for (const name in state.services) if (state.services[name]!.healthCheck) checked.add(name);
    if (checked.size > 0) for (const id in state.tasks) if (checked.has(state.tasks[id]!.service)) ids.add(id);
    for (const id of ids) this.reconcile(state, id);
  }

  /** Incremental sync: only the tasks the change can move. */
  private apply(state: Readonly<CatalogState>, change: AppliedChange): void {
    if (this.stopped) return;
    // A tracked task's service is its current one (moving it is a task put), so tasksOf() finds every
    // tracked task of a changed or removed service.
    const ids = touchedTasks(change, (svc) => this.catalog.tasksOf(svc).map((t) => t.id));
    for (const id of ids) this.reconcile(state, id);
  }

  /** Starts, keeps, restarts or stops the probe of one task. */
  private reconcile(state: Readonly<CatalogState>, id: string): void {
    const task = Object.hasOwn(state.tasks, id) ? state.tasks[id] : undefined;
    const want = task && this.owns(task) ? probeTarget(state, task) : undefined;
    const cur = this.tracked.get(id);
    if (cur && want && want.ip === cur.ip && want.service === cur.service && JSON.stringify(want.spec) === cur.specKey) return;
    if (cur) {
      clearInterval(cur.timer);
      this.tracked.delete(id);
    }
    if (task && want) this.track(task, want);
  }

  private track(task: Task, w: ProbeTarget): void {
    const tr: Tracked = {
      taskId: task.id,
      service: w.service,
      ip: w.ip,
      spec: w.spec,
      specKey: JSON.stringify(w.spec),
      counters: initialCounters(task.health),
      inFlight: false,
      started: ++this.starts,
      timer: setInterval(() => void this.run(tr), w.spec.intervalMs),
    };
    tr.timer.unref();
    this.tracked.set(task.id, tr);
    void this.run(tr); // first verdict without waiting a whole interval
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
