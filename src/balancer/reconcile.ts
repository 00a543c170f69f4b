// The reconciler: keeps one dataplane driver converged on the plan of the latest catalog state.
// - start() reads the kernel and adopts what is there; nothing is written before the first update(),
//   so a restart never wipes established services while the catalog is still loading.
// - update() coalesces bursts; syncs never overlap; a change is diffed against the cached observation
//   (what we last applied), so its cost follows the change, not the table.
// - resync re-reads the kernel periodically and repairs drift; every Nth one rewrites every unit, which
//   also catches rules edited in place.
// - departed backends are drained (weight 0) for drainMs before they go.
import type { CatalogState } from '../catalog/model.js';
import { errorMessage, isVipdnsError } from '../errors.js';
import { Runner } from '../runner.js';
import { diff, isEmpty } from './diff.js';
import { drainDeadlines, withDraining } from './drain.js';
import { incrementalDiff } from './incremental.js';
import { type SharedPlans, TaskIndex, plan, replanWith, type Plan, type PlanOptions } from './plan.js';
import { type ShowUnit, showUnits, unitsOf } from './show.js';
import type { DataplaneDriver, DesiredState, Diff, Logger, ObservedState } from './types.js';

export interface BalancerOptions {
  driver: DataplaneDriver;
  logger: Logger;
  /** Re-read the kernel and repair drift this often; 0 disables. Default 60 s. */
  resyncIntervalMs?: number;
  /** Every Nth resync rewrites every unit; 0 never. Default 10. */
  fullResyncEvery?: number;
  /** Wait this long after an update for more to arrive. Default 100 ms. */
  coalesceMs?: number;
  /** Keep a departed backend for established flows this long. Default 30 s. */
  drainMs?: number;
  plan?: PlanOptions;
  /**
   * Plans shared with other reconcilers of the same plan options (sandboxes.ts): this one then keeps
   * no task index of its own, and takes the plan of a catalog state another already made.
   */
  plans?: SharedPlans;
  now?: () => number;
  /** Called after every sync attempt (metrics hook). */
  onSync?: (r: SyncReport) => void;
}

/**
 * What changed since the previous update(), from the catalog's events: services whose definition changed
 * (added, updated, removed) and tasks that were added, removed or updated. Anything missing here is picked
 * up by the next periodic resync, which re-plans everything.
 */
export interface ChangeHint {
  services?: Iterable<string>;
  tasks?: Iterable<string>;
}

export type SyncReason = 'update' | 'resync' | 'full-resync' | 'drain' | 'retry';

export interface SyncReport {
  reason: SyncReason;
  ms: number;
  ops: number;
  added: number;
  changed: number;
  removed: number;
  unchanged: number;
  base: boolean;
  error?: string;
  /** Where a failed sync failed: reading the kernel or writing it (metrics: kernel errors by operation). */
  stage?: 'observe' | 'apply';
}

export interface BalancerStatus {
  driver: string;
  running: boolean;
  adopted: boolean; // the kernel has been read since start
  lastSyncAt?: string;
  lastSyncMs?: number;
  lastError?: { at: string; message: string; code?: string };
  syncs: number;
  errors: number;
  repairs: number; // resyncs that found drift
  programmed: { services: number; published: number; backends: number; draining: number };
  warnings: string[];
}

const RETRY_MIN_MS = 500;

export class Balancer {
  private readonly driver: DataplaneDriver;
  private readonly log: Logger;
  private readonly resyncMs: number;
  private readonly fullEvery: number;
  private readonly coalesceMs: number;
  private readonly drainMs: number;
  private readonly planOpts: PlanOptions;
  private readonly plans: SharedPlans | undefined;
  private readonly now: () => number;
  private readonly onSync: ((r: SyncReport) => void) | undefined;

  private catalog: CatalogState | undefined;
  private observed: ObservedState | undefined; // kernel as read, then as we last applied it
  private applied: DesiredState | undefined; // with drain bookkeeping
  private planned: Plan | undefined; // last plan, before draining: lets unchanged units keep identity
  private dirty: Set<string> | 'all' = 'all'; // services changed since the last plan
  private index: TaskIndex | undefined; // service → tasks, for re-planning a few services
  private running = false;
  private adopted = false;
  // Serialises syncs (requests during one collapse into one follow-up, strongest reason), coalesces
  // updates, runs the periodic resyncs and retries a failed sync with back-off.
  private readonly runner: Runner<SyncReason>;
  /** Settles when the sync in flight (if any) has finished, applied or failed. */
  private syncing: Promise<void> | undefined;
  private drainTimer: NodeJS.Timeout | undefined;
  private drains = new Map<string, number>(); // service → earliest deadline of its draining backends, in applied
  private resyncCount = 0;
  private warnings: string[] = [];
  private stats = { syncs: 0, errors: 0, repairs: 0, lastSyncAt: undefined as number | undefined, lastSyncMs: undefined as number | undefined };
  private lastError: BalancerStatus['lastError'];

  constructor(o: BalancerOptions) {
    this.driver = o.driver;
    this.log = o.logger;
    this.resyncMs = o.resyncIntervalMs ?? 60_000;
    this.fullEvery = o.fullResyncEvery ?? 10;
    this.coalesceMs = o.coalesceMs ?? 100;
    this.drainMs = o.drainMs ?? 30_000;
    this.plans = o.plans;
    this.planOpts = o.plans?.opts ?? o.plan ?? {};
    this.now = o.now ?? Date.now;
    this.onSync = o.onSync;
    this.runner = new Runner<SyncReason>({
      run: (reason) => this.run(reason),
      debounceMs: this.coalesceMs,
      maxDelayMs: this.coalesceMs,
      ...(this.resyncMs > 0 ? { every: { ms: this.resyncMs, reason: () => this.nextResyncReason() } } : {}),
      backoff: { initialMs: RETRY_MIN_MS, maxMs: this.resyncMs > 0 ? this.resyncMs : 30_000 },
      retryReason: 'retry', // re-reads the kernel, which is in an unknown state after a failure
      merge: stronger,
    });
  }

  /** Reads and adopts the kernel state; syncs at once if update() already delivered a catalog. */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      this.observed = await this.driver.observe();
      this.adopted = true;
      this.log.info({ driver: this.driver.name, base: this.observed.base, units: this.observed.units.size }, 'dataplane: adopted kernel state');
    } catch (e) {
      this.fail(e, 'dataplane: cannot read kernel state; will retry');
    }
    this.runner.start();
    if (this.catalog) await this.syncNow('update');
  }

  /** Stops timers and waits for a running sync. Leaves the kernel as it is (restarts keep flows). */
  async stop(): Promise<void> {
    this.running = false;
    if (this.drainTimer) clearTimeout(this.drainTimer);
    this.drainTimer = undefined;
    await this.runner.stop();
  }

  /**
   * New catalog state; bursts within coalesceMs become one sync. With `changed`, only the services it
   * names (directly or through their tasks) are re-planned; without it (or when a network changed: pass
   * nothing) everything is.
   */
  update(state: CatalogState, changed?: ChangeHint): void {
    const prev = this.catalog;
    this.catalog = state;
    // Sharing plans: a task's services are read from the states before and after (no index of our own).
    const known = this.plans ? this.planned !== undefined && prev !== undefined : this.index !== undefined;
    if (!changed || !known) this.dirty = 'all';
    if (changed && known) {
      const dirty = this.dirty === 'all' ? undefined : this.dirty;
      for (const s of changed.services ?? []) dirty?.add(s);
      for (const id of changed.tasks ?? []) {
        if (!this.plans) for (const s of this.index!.touch(state, id)) dirty?.add(s);
        else for (const t of [prev!.tasks[id], state.tasks[id]]) if (t) dirty?.add(t.service);
      }
    }
    this.runner.request('update');
  }

  /** Sync now (after a running sync) and wait for it. */
  syncNow(reason: SyncReason = 'update'): Promise<void> {
    return this.runner.run(reason);
  }

  /** Re-read the kernel and repair drift now. */
  resync(full = false): Promise<void> {
    return this.syncNow(full ? 'full-resync' : 'resync');
  }

  /** Each programmed unit (of one service, if given) beside the kernel's view of it, for `dataplane show`. */
  async show(service?: string): Promise<ShowUnit[]> {
    // A sync in flight writes the kernel before its plan becomes the applied one: read after it.
    await this.syncing;
    const want = this.applied ? unitsOf(this.applied, service) : [];
    if (!this.driver.inspect) return showUnits(want, [], () => undefined);
    const kernel = await this.driver.inspect(want);
    const tasks = this.catalog?.tasks ?? {};
    return showUnits(want, kernel, (id) => (Object.hasOwn(tasks, id) ? tasks[id]!.health : undefined));
  }

  status(): BalancerStatus {
    const a = this.applied;
    const backends = a ? a.services.reduce((n, s) => n + s.backends.length, 0) + a.published.reduce((n, p) => n + p.backends.length, 0) : 0;
    const draining = a
      ? a.services.reduce((n, s) => n + s.backends.filter((b) => b.draining).length, 0) +
        a.published.reduce((n, p) => n + p.backends.filter((b) => b.draining).length, 0)
      : 0;
    return {
      driver: this.driver.name,
      running: this.running,
      adopted: this.adopted,
      ...(this.stats.lastSyncAt !== undefined ? { lastSyncAt: new Date(this.stats.lastSyncAt).toISOString() } : {}),
      ...(this.stats.lastSyncMs !== undefined ? { lastSyncMs: this.stats.lastSyncMs } : {}),
      ...(this.lastError ? { lastError: this.lastError } : {}),
      syncs: this.stats.syncs,
      errors: this.stats.errors,
      repairs: this.stats.repairs,
      programmed: { services: a?.services.length ?? 0, published: a?.published.length ?? 0, backends, draining },
      warnings: this.warnings,
    };
  }

  private nextResyncReason(): SyncReason {
    this.resyncCount++;
    return this.fullEvery > 0 && this.resyncCount % this.fullEvery === 0 ? 'full-resync' : 'resync';
  }

  private async run(reason: SyncReason): Promise<void> {
    if (!this.catalog) return; // never write before knowing what is wanted
    let done = (): void => undefined;
    this.syncing = new Promise<void>((r) => (done = r));
    const t0 = performance.now();
    const report: SyncReport = { reason, ms: 0, ops: 0, added: 0, changed: 0, removed: 0, unchanged: 0, base: false };
    let stage: SyncReport['stage'];
    try {
      // Resyncs re-plan everything: a cheap guard against a wrong change hint.
      const hinted = this.dirty === 'all' ? undefined : this.dirty;
      let full = !hinted || !this.planned || reason === 'resync' || reason === 'full-resync';
      if (full && !this.plans) this.index = new TaskIndex(this.catalog);
      let planned: Plan;
      if (full) planned = this.plans ? this.plans.plan(this.catalog, this.planned) : plan(this.catalog, this.planOpts, this.planned);
      else if (this.plans) ({ plan: planned, full } = this.plans.replanWith(this.catalog, this.planned!, hinted!));
      else ({ plan: planned, full } = replanWith(this.catalog, this.planOpts, this.planned!, hinted!, this.index));
      this.planned = planned;
      this.dirty = new Set();
      if (planned.warnings.join('\n') !== this.warnings.join('\n')) for (const w of planned.warnings) this.log.warn({ driver: this.driver.name }, w);
      this.warnings = planned.warnings;

      const reread = reason === 'resync' || reason === 'full-resync' || reason === 'retry' || !this.observed;
      if (reread) {
        stage = 'observe';
        this.observed = await this.driver.observe();
        this.adopted = true;
      }
      let state: DesiredState;
      let d: Diff;
      let keepDrains: () => void; // after a successful apply: the deadlines of what is now applied
      const now = this.now();
      if (!full && !reread && (reason === 'update' || reason === 'drain') && this.applied) {
        // Fast path: only the touched services' units are drained, diffed and spliced in; an expiring
        // drain touches just the services that have one due.
        const touched = reason === 'drain' ? new Set([...hinted!, ...this.dueDrains(now)]) : hinted!;
        let after: DesiredState;
        ({ state, touched: after, diff: d } = incrementalDiff(this.applied, planned, this.observed!, this.driver, touched, now, this.drainMs));
        keepDrains = () => {
          for (const s of touched) this.drains.delete(s);
          drainDeadlines(after, this.drains);
        };
      } else {
        ({ state } = withDraining(this.applied, { services: planned.services, published: planned.published }, now, this.drainMs));
        d = diff(state, this.observed!, this.driver, { force: reason === 'full-resync' });
        keepDrains = () => (this.drains = drainDeadlines(state));
      }
      Object.assign(report, { added: d.add.length, changed: d.change.length, removed: d.remove.length, unchanged: d.unchanged, base: d.base });
      if (!isEmpty(d)) {
        stage = 'apply';
        const r = await this.driver.apply(d);
        report.ops = r.ops;
        if (reason === 'resync') {
          this.stats.repairs++;
          this.log.warn({ driver: this.driver.name, added: d.add.length, changed: d.change.length, removed: d.remove.length, base: d.base }, 'dataplane: repaired drift');
        }
      }
      this.remember(d);
      this.applied = state;
      keepDrains();
      this.stats.syncs++;
      this.stats.lastSyncAt = this.now();
      this.scheduleDrain(minValue(this.drains));
    } catch (e) {
      this.observed = undefined; // the kernel is in an unknown state: read it again before the next diff
      report.error = errorMessage(e);
      if (stage) report.stage = stage;
      this.fail(e, `dataplane: ${reason} sync failed`);
      throw e; // the runner retries with back-off
    } finally {
      report.ms = performance.now() - t0;
      this.stats.lastSyncMs = report.ms;
      this.syncing = undefined;
      done();
      if (report.ops > 0 || report.error) {
        const { reason: r, ms, ops, added, changed, removed, unchanged } = report;
        this.log.info({ driver: this.driver.name, reason: r, ms: Math.round(ms), ops, added, changed, removed, unchanged }, 'dataplane: synced');
      }
      this.onSync?.(report);
    }
  }

  /** After a successful apply the kernel holds what we expect; record that instead of re-reading it. */
  private remember(d: Diff): void {
    const obs = this.observed!;
    for (const r of d.remove) obs.units.delete(r.id);
    for (const u of d.add) {
      const e = this.driver.expect(u);
      obs.units.set(e.id, e);
    }
    for (const { unit } of d.change) {
      const e = this.driver.expect(unit);
      obs.units.set(e.id, e);
    }
    obs.base = 'ok';
  }

  /** Services with a drain deadline passed: O(services draining), not O(services). */
  private dueDrains(now: number): string[] {
    const out: string[] = [];
    for (const [s, at] of this.drains) if (at <= now) out.push(s);
    return out;
  }

  private scheduleDrain(at: number | undefined): void {
    if (this.drainTimer) clearTimeout(this.drainTimer);
    this.drainTimer = undefined;
    if (at === undefined || !this.running) return;
    this.drainTimer = setTimeout(() => void this.runner.run('drain'), Math.max(0, at - this.now()) + 5);
    this.drainTimer.unref?.();
  }

  private fail(e: unknown, msg: string): void {
    this.stats.errors++;
    const code = isVipdnsError(e) ? e.code : undefined;
    this.lastError = { at: new Date(this.now()).toISOString(), message: errorMessage(e), ...(code ? { code } : {}) };
    this.log.error({ driver: this.driver.name, err: errorMessage(e), ...(code ? { code } : {}) }, msg);
  }
}

const RANK: Record<SyncReason, number> = { update: 0, drain: 0, resync: 1, retry: 1, 'full-resync': 2 };

function stronger(a: SyncReason, b: SyncReason): SyncReason {
  return RANK[b] > RANK[a] ? b : a;
}

function minValue(m: Map<string, number>): number | undefined {
  let min: number | undefined;
  for (const v of m.values()) if (min === undefined || v < min) min = v;
  return min;
}
