// The Docker engine source: lists the engine's networks and containers, converges the catalog
// to them (docker-map.ts → docker-plan.ts → docker-apply.ts, one catalog batch per pass), then
// follows /events and converges again after each burst of changes. Level-triggered: every pass
// recomputes from a full listing, so a lost event or an engine restart only delays convergence.
// Reconnects with exponential backoff.
import { Counter, Gauge, type Registry } from 'prom-client';
import { VipdnsError, errorMessage } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { Catalog } from '../catalog.js';
import { DockerClient, type EventStream, parseDockerUrl } from './docker-api.js';
import { type Outcome, opName, record, runOps } from './docker-apply.js';
import { mapDocker } from './docker-map.js';
import { loadOwned, saveOwned } from './docker-owned.js';
import { type Owned, type Plan, plan, pruneOwned } from './docker-plan.js';
import type { DockerContainer, DockerEvent, DockerNetwork } from './docker-types.js';

export interface DockerSourceOptions {
  url: string;
  catalog: Catalog;
  /** Where the source records what it created (docker-source.json in the data dir). */
  ownedFile: string;
  log: Logger;
  registry?: Registry;
  /** Quiet time after an event before a pass, so a burst (compose up) costs one pass. */
  debounceMs?: number;
  /** Upper bound on that wait while events keep coming. */
  maxDelayMs?: number;
  /** Full pass even without events, as a safety net. */
  resyncMs?: number;
  backoffMinMs?: number;
  backoffMaxMs?: number;
}

/** Events that can change what the catalog should hold; the rest (exec, attach, top...) are noise. */
const CONTAINER_ACTIONS = new Set(['create', 'start', 'restart', 'die', 'died', 'stop', 'kill', 'destroy', 'remove', 'rename', 'pause', 'unpause', 'update', 'connect', 'disconnect']);
const NETWORK_ACTIONS = new Set(['create', 'destroy', 'remove', 'connect', 'disconnect', 'update']);

export function isRelevant(e: DockerEvent): boolean {
  // The engine is trusted to be an engine, not to send well-formed JSON: check the shape.
  if (typeof e !== 'object' || e === null) return false;
  const raw = typeof e.Action === 'string' ? e.Action : typeof e.status === 'string' ? e.status : '';
  const action = raw.split(':')[0]!.trim();
  if (e.Type === 'container') return CONTAINER_ACTIONS.has(action) || action === 'health_status';
  if (e.Type === 'network') return NETWORK_ACTIONS.has(action);
  return false;
}

export class DockerSource {
  private readonly client: DockerClient;
  private readonly o: Required<Omit<DockerSourceOptions, 'registry'>> & Pick<DockerSourceOptions, 'registry'>;
  private owned: Owned | undefined;
  private stopped = true;
  private stream: EventStream | undefined;
  private loop: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private firstEventAt = 0;
  private resync: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  private syncing: Promise<void> | undefined;
  private again = false;
  private connected = false;
  private synced = false;
  private lastError = '';
  private lastWarnings = new Set<string>();
  private readonly m: { events: Counter; passes: Counter; ops: Counter; connected: Gauge } | undefined;
  /** Passes completed; tests wait on it. */
  passes = 0;

  constructor(opts: DockerSourceOptions) {
    this.o = { debounceMs: 150, maxDelayMs: 1000, resyncMs: 60_000, backoffMinMs: 500, backoffMaxMs: 30_000, registry: undefined, ...opts };
    this.client = new DockerClient(parseDockerUrl(opts.url));
    const r = opts.registry;
    this.m = r && {
      events: new Counter({ name: 'vipdns_docker_events_total', help: 'Docker engine events received that can change the catalog', registers: [r] }),
      passes: new Counter({ name: 'vipdns_docker_sync_total', help: 'Docker source reconcile passes by result', labelNames: ['result'], registers: [r] }),
      ops: new Counter({ name: 'vipdns_docker_changes_total', help: 'Catalog changes made by the Docker source by operation and result', labelNames: ['op', 'result'], registers: [r] }),
      connected: new Gauge({ name: 'vipdns_docker_connected', help: '1 while the Docker event stream is open', registers: [r] }),
    };
  }

  get url(): string {
    return this.client.endpoint.url;
  }

  /** Readiness: ready once a pass has completed and the event stream is open. */
  status(): { ok: boolean; detail: string } {
    if (this.synced && this.connected) return { ok: true, detail: `following ${this.url}, ${this.passes} passes` };
    if (this.synced) return { ok: false, detail: `lost ${this.url}, reconnecting: ${this.lastError}` };
    return { ok: false, detail: `connecting to ${this.url}${this.lastError ? `: ${this.lastError}` : ''}` };
  }

  async start(): Promise<void> {
    this.owned = await loadOwned(this.o.ownedFile);
    this.stopped = false;
    this.loop = this.run();
    this.resync = setInterval(() => this.requestSync(), this.o.resyncMs);
    this.resync.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.resync);
    this.stream?.close();
    this.wake?.();
    await this.loop;
    await this.syncing;
  }

  /** Runs one pass now (after any running one); resolves when it is done. */
  async syncNow(): Promise<void> {
    if (this.syncing) {
      this.again = true;
      await this.syncing;
      if (this.syncing) await this.syncing;
      return;
    }
    this.syncing = this.passLoop();
    await this.syncing;
  }

  private requestSync(): void {
    if (this.stopped) return;
    const now = Date.now();
    if (this.timer === undefined) this.firstEventAt = now;
    clearTimeout(this.timer);
    // Debounce, but never wait longer than maxDelayMs after the first event of a burst.
    const wait = Math.min(this.o.debounceMs, Math.max(0, this.firstEventAt + this.o.maxDelayMs - now));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.syncNow().catch((e: unknown) => this.o.log.error({ err: errorMessage(e) }, 'docker source pass failed'));
    }, wait);
  }

  private async passLoop(): Promise<void> {
    try {
      do {
        this.again = false;
        await this.pass();
      } while (this.again && !this.stopped);
    } finally {
      this.syncing = undefined;
    }
  }

  private async run(): Promise<void> {
    let backoff = this.o.backoffMinMs;
    while (!this.stopped) {
      const stream = this.client.events({ type: ['container', 'network'] }, (e) => {
        if (!isRelevant(e as DockerEvent)) return;
        this.m?.events.inc();
        this.requestSync();
      });
      this.stream = stream;
      try {
        // Open the stream before listing, so nothing that happens during the listing is missed.
        await stream.opened;
        this.connected = true;
        this.m?.connected.set(1);
        this.o.log.info({ docker: this.url }, 'docker event stream open');
        await this.syncNow();
        backoff = this.o.backoffMinMs;
        await stream.done;
        if (!this.stopped) this.o.log.warn({ docker: this.url }, 'docker event stream ended (engine restarting?)');
      } catch (e) {
        this.lastError = errorMessage(e);
        if (!this.stopped) this.o.log.warn({ docker: this.url, err: this.lastError, retryMs: backoff }, 'docker engine unreachable');
      } finally {
        stream.close();
        this.connected = false;
        this.m?.connected.set(0);
      }
      if (this.stopped) break;
      await new Promise<void>((r) => {
        const t = setTimeout(r, backoff);
        this.wake = () => {
          clearTimeout(t);
          r();
        };
      });
      this.wake = undefined;
      backoff = Math.min(backoff * 2, this.o.backoffMaxMs);
    }
  }

  /** One level-triggered pass: list, map, plan, apply, persist ownership. */
  private async pass(): Promise<void> {
    if (!this.owned) return;
    let networks: DockerNetwork[];
    let containers: DockerContainer[];
    try {
      [networks, containers] = await Promise.all([
        this.client.request<DockerNetwork[]>('GET', '/networks'),
        this.client.request<DockerContainer[]>('GET', '/containers/json?all=true'),
      ]);
    } catch (e) {
      this.lastError = errorMessage(e);
      this.m?.passes.inc({ result: 'unreachable' });
      this.o.log.warn({ err: this.lastError }, 'docker listing failed; will retry');
      return;
    }
    if (this.stopped) return;
    if (!Array.isArray(networks) || !Array.isArray(containers)) {
      this.lastError = 'the engine answered /networks or /containers/json with something that is not a list';
      this.m?.passes.inc({ result: 'unreachable' });
      this.o.log.warn({ err: this.lastError }, 'docker listing failed; will retry');
      return;
    }
    const cat = this.o.catalog;
    let desired: ReturnType<typeof mapDocker>;
    let p: Plan;
    // Indexed lookups over the committed catalog: the pass costs what Docker holds, not what the catalog holds.
    const view = cat.view();
    try {
      desired = mapDocker(networks, containers);
      p = plan(desired, view, this.owned);
    } catch (e) {
      // A listing of the wrong shape (fields of the wrong type) must cost one pass, not the daemon.
      this.lastError = `cannot map the engine's listing: ${errorMessage(e)}`;
      this.m?.passes.inc({ result: 'error' });
      this.o.log.warn({ err: this.lastError }, 'docker listing not understood; will retry');
      return;
    }
    this.owned = pruneOwned(this.owned, view);
    const before = JSON.stringify(this.owned);
    const failed = await this.applyPlan(p);
    // Log each skipped thing once, not on every pass.
    const warnings = new Set([...desired.warnings, ...p.warnings]);
    for (const w of warnings) if (!this.lastWarnings.has(w)) this.o.log.warn({ docker: this.url }, w);
    this.lastWarnings = warnings;
    if (JSON.stringify(this.owned) !== before) {
      try {
        await saveOwned(this.o.ownedFile, this.owned);
      } catch (e) {
        this.o.log.error({ err: errorMessage(e), file: this.o.ownedFile }, 'docker source could not save what it owns');
      }
    }
    this.synced = true;
    this.passes++;
    this.m?.passes.inc({ result: failed > 0 ? 'partial' : 'ok' });
  }

  /**
   * Commits the plan as one catalog batch (several, in order, when the store caps objects per
   * commit); each op alone may fail. Ownership records only what committed. Returns the ops that failed.
   */
  private async applyPlan(p: Plan): Promise<number> {
    const cat = this.o.catalog;
    let failed = 0;
    let next = 0;
    while (next < p.ops.length && !this.stopped) {
      const rest = p.ops.slice(next);
      let ran = 0;
      let outcomes: Outcome[];
      try {
        outcomes = await cat.batch((b) => {
          const out = runOps(b, rest, p.held);
          ran = out.length;
          return out;
        });
      } catch (e) {
        // The commit failed: none of these ops happened. The next pass tries again.
        const ops = rest.slice(0, Math.max(ran, 1));
        const code = e instanceof VipdnsError ? e.code : 'INTERNAL';
        for (const op of ops) this.m?.ops.inc({ op: op.op, result: 'error' });
        this.o.log.warn({ ops: ops.length, code, err: errorMessage(e) }, 'docker source could not change the catalog');
        return failed + ops.length;
      }
      record(this.owned!, outcomes);
      for (const { op, result } of outcomes) {
        if (result === 'more') continue;
        if (result === 'ok') {
          this.m?.ops.inc({ op: op.op, result: 'ok' });
          if (op.op !== 'setHealth' && op.op !== 'adopt') this.o.log.info({ op: op.op, name: opName(op), ...('why' in op ? { why: op.why } : {}) }, 'docker source changed the catalog');
          continue;
        }
        failed++;
        this.m?.ops.inc({ op: op.op, result: 'error' });
        const code = result instanceof VipdnsError ? result.code : 'INTERNAL';
        this.o.log.warn({ op: op.op, name: opName(op), code, err: errorMessage(result) }, 'docker source could not change the catalog');
      }
      next += outcomes.filter((o) => o.result !== 'more').length;
    }
    return failed;
  }
}
