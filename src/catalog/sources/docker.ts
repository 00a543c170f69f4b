// The Docker engine source: lists the engine's networks and containers, converges the catalog
// to them (docker-map.ts → docker-plan.ts → docker-apply.ts, one catalog batch per pass), then
// follows /events and converges again after each burst of changes. Level-triggered: every pass
// recomputes from a full listing, so a lost event or an engine restart only delays convergence.
// Reconnects with exponential backoff.
import { existsSync } from 'node:fs';
import { Counter, Gauge, type Registry } from 'prom-client';
import { VipdnsError, errorMessage } from '../../errors.js';
import type { Logger } from '../../log.js';
import { Runner } from '../../runner.js';
import type { Catalog } from '../catalog.js';
import { DockerClient, type EventStream, parseDockerUrl } from './docker-api.js';
import { type Outcome, opName, record, runOps } from './docker-apply.js';
import { type Desired, type SwarmExtras, mapDocker } from './docker-map.js';
import { loadOwned, saveOwned } from './docker-owned.js';
import { type Owned, type Plan, plan, pruneOwned } from './docker-plan.js';
import { SWARM } from './docker-labels.js';
import type { DockerContainer, DockerEvent, DockerNetwork, DockerService, DockerTask } from './docker-types.js';

export interface DockerSourceOptions {
  url: string;
  /** TLS client files (ca.pem, cert.pem, key.pem) for a TCP engine. */
  tlsDir?: string;
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
  /**
   * After each pass: the running containers on swarm overlays, with their network namespace, whose
   * VIP traffic only a dataplane inside them can balance (balancer/sandboxes.ts).
   */
  onSandboxes?: (list: ContainerNamespace[]) => Promise<void> | void;
}

/** A running container on a swarm overlay: its ID, its network namespace (a path) and its overlay networks. */
export interface ContainerNamespace {
  id: string;
  netns: string;
  networks: string[];
}

/** Swarm's gateway bridge: containers on overlays reach the host through it. */
const GWBRIDGE = 'docker_gwbridge';

/** Events that can change what the catalog should hold; the rest (exec, attach, top...) are noise. */
const CONTAINER_ACTIONS = new Set(['create', 'start', 'restart', 'die', 'died', 'stop', 'kill', 'destroy', 'remove', 'rename', 'pause', 'unpause', 'update', 'connect', 'disconnect']);
const NETWORK_ACTIONS = new Set(['create', 'destroy', 'remove', 'connect', 'disconnect', 'update']);
/** Swarm service events (managers only): a new mode, VIP or network alias shows in GET /services. */
const SERVICE_ACTIONS = new Set(['create', 'update', 'remove']);

export function isRelevant(e: DockerEvent): boolean {
  // The engine is trusted to be an engine, not to send well-formed JSON: check the shape.
  if (typeof e !== 'object' || e === null) return false;
  const raw = typeof e.Action === 'string' ? e.Action : typeof e.status === 'string' ? e.status : '';
  const action = raw.split(':')[0]!.trim();
  if (e.Type === 'container') return CONTAINER_ACTIONS.has(action) || action === 'health_status';
  if (e.Type === 'network') return NETWORK_ACTIONS.has(action);
  if (e.Type === 'service') return SERVICE_ACTIONS.has(action);
  return false;
}

/** The event stream ended without an error: the engine is restarting, or went away. */
class StreamEnded extends Error {}

export class DockerSource {
  private readonly client: DockerClient;
  private readonly o: Required<Omit<DockerSourceOptions, 'registry' | 'tlsDir' | 'onSandboxes'>> & Pick<DockerSourceOptions, 'registry' | 'tlsDir' | 'onSandboxes'>;
  /** Container ID → its init process, for its namespace path (inspected once per container). */
  private pids = new Map<string, number>();
  private owned: Owned | undefined;
  private stopped = true;
  private stream: EventStream | undefined;
  /** Passes: one at a time, debounced after events, also every resyncMs. */
  private readonly passRunner: Runner;
  /** The event stream: (re)connected with back-off whenever it breaks. */
  private readonly streamRunner: Runner;
  private connected = false;
  private synced = false;
  private lastError = '';
  private lastWarnings = new Set<string>();
  private readonly m: { events: Counter; passes: Counter; ops: Counter; connected: Gauge } | undefined;
  /** Passes completed; tests wait on it. */
  passes = 0;

  constructor(opts: DockerSourceOptions) {
    this.o = { debounceMs: 150, maxDelayMs: 1000, resyncMs: 60_000, backoffMinMs: 500, backoffMaxMs: 30_000, registry: undefined, tlsDir: undefined, ...opts };
    this.client = new DockerClient(parseDockerUrl(opts.url, opts.tlsDir));
    const r = opts.registry;
    this.m = r && {
      events: new Counter({ name: 'vipdns_docker_events_total', help: 'Docker engine events received that can change the catalog', registers: [r] }),
      passes: new Counter({ name: 'vipdns_docker_sync_total', help: 'Docker source reconcile passes by result', labelNames: ['result'], registers: [r] }),
      ops: new Counter({ name: 'vipdns_docker_changes_total', help: 'Catalog changes made by the Docker source by operation and result', labelNames: ['op', 'result'], registers: [r] }),
      connected: new Gauge({ name: 'vipdns_docker_connected', help: '1 while the Docker event stream is open', registers: [r] }),
    };
    const backoff = { initialMs: this.o.backoffMinMs, maxMs: this.o.backoffMaxMs };
    this.passRunner = new Runner<void>({
      run: () => this.pass(),
      debounceMs: this.o.debounceMs,
      maxDelayMs: this.o.maxDelayMs,
      every: { ms: this.o.resyncMs, reason: () => undefined },
      backoff,
      onError: (e, _r, retryMs) => this.o.log.error({ err: errorMessage(e), retryMs }, 'docker source pass failed'),
    });
    this.streamRunner = new Runner<void>({
      run: () => this.follow(),
      backoff,
      onError: (e, _r, retryMs) => {
        if (this.stopped) return;
        if (e instanceof StreamEnded) this.o.log.warn({ docker: this.url, retryMs }, 'docker event stream ended (engine restarting?)');
        else this.o.log.warn({ docker: this.url, err: this.lastError, retryMs }, 'docker engine unreachable');
      },
    });
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
    this.passRunner.start();
    this.streamRunner.start();
    void this.streamRunner.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stream?.close();
    await Promise.all([this.streamRunner.stop(), this.passRunner.stop()]);
  }

  /** Runs one pass now (after any running one); resolves when it is done. */
  syncNow(): Promise<void> {
    return this.passRunner.run();
  }

  /**
   * One connection: open the event stream, converge, follow events until the stream ends. Always
   * ends in a throw unless stopped, so the runner reconnects after its back-off delay.
   */
  private async follow(): Promise<void> {
    const stream = this.client.events({ type: ['container', 'network', 'service'] }, (e) => {
      if (!isRelevant(e as DockerEvent)) return;
      this.m?.events.inc();
      this.passRunner.request();
    });
    this.stream = stream;
    try {
      // Open the stream before listing, so nothing that happens during the listing is missed.
      await stream.opened;
      this.connected = true;
      this.m?.connected.set(1);
      this.o.log.info({ docker: this.url }, 'docker event stream open');
      await this.syncNow();
      this.streamRunner.resetBackoff();
      await stream.done;
    } catch (e) {
      this.lastError = errorMessage(e);
      throw e;
    } finally {
      stream.close();
      this.connected = false;
      this.m?.connected.set(0);
    }
    if (!this.stopped) throw new StreamEnded();
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
    const swarm = await this.swarmExtras(networks, containers);
    if (swarm === undefined || this.stopped) return;
    const cat = this.o.catalog;
    let desired: ReturnType<typeof mapDocker>;
    let p: Plan;
    // Indexed lookups over the committed catalog: the pass costs what Docker holds, not what the catalog holds.
    const view = cat.view();
    try {
      desired = mapDocker(networks, containers, swarm);
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
    if (this.o.onSandboxes) await this.o.onSandboxes(await this.sandboxes(desired.sandboxes));
    this.synced = true;
    this.passes++;
    this.m?.passes.inc({ result: failed > 0 ? 'partial' : 'ok' });
  }

  /** The namespace of each container that needs a dataplane of its own; one not inspectable now is left for the next pass. */
  private async sandboxes(list: Desired['sandboxes']): Promise<ContainerNamespace[]> {
    const out: ContainerNamespace[] = [];
    const live = new Set(list.map((s) => s.containerId));
    for (const id of this.pids.keys()) if (!live.has(id)) this.pids.delete(id);
    for (const s of list) {
      let pid = this.pids.get(s.containerId);
      // A container restarted between two passes has a new init process.
      if (pid !== undefined && !existsSync(`/proc/${pid}/ns/net`)) pid = undefined;
      if (pid === undefined) {
        try {
          const info = await this.client.request<{ State?: { Pid?: number } }>('GET', `/containers/${encodeURIComponent(s.containerId)}/json`);
          if (typeof info?.State?.Pid === 'number' && info.State.Pid > 0) this.pids.set(s.containerId, (pid = info.State.Pid));
        } catch (e) {
          this.o.log.debug?.({ container: s.containerId.slice(0, 12), err: errorMessage(e) }, 'docker: cannot inspect container; its namespace waits for the next pass');
        }
      }
      if (pid !== undefined) out.push({ id: s.containerId, netns: `/proc/${pid}/ns/net`, networks: s.networks });
    }
    return out;
  }

  /**
   * On a swarm node: GET /services when a container belongs to a swarm service (their modes and VIPs;
   * none when this node is not a manager: the engine answers 503, and the mapping says what it cannot
   * know), and GET /networks/docker_gwbridge (the containers' gateway addresses). Undefined when the
   * engine could not be asked (the pass is counted as unreachable and retried).
   */
  private async swarmExtras(networks: DockerNetwork[], containers: DockerContainer[]): Promise<SwarmExtras | undefined> {
    const out: SwarmExtras = {};
    try {
      if (containers.some((c) => typeof c?.Labels?.[SWARM.service] === 'string')) {
        const [services, tasks] = await Promise.all([
          this.optional<DockerService[] | undefined>('/services', undefined),
          this.optional<DockerTask[] | undefined>(`/tasks?filters=${encodeURIComponent(JSON.stringify({ 'desired-state': ['running'] }))}`, undefined),
        ]);
        if (Array.isArray(services)) out.services = services;
        if (Array.isArray(tasks)) out.runningTasks = new Set(tasks.filter((x) => x?.DesiredState === 'running' && typeof x.ID === 'string').map((x) => x.ID!));
      }
      if (networks.some((n) => n?.Name === GWBRIDGE)) {
        const gw = await this.optional<DockerNetwork | undefined>(`/networks/${GWBRIDGE}`, undefined);
        out.gateways = new Map();
        for (const [id, ep] of Object.entries(gw?.Containers ?? {})) {
          const ips = [ep?.IPv4Address, ep?.IPv6Address].filter((x): x is string => typeof x === 'string' && x !== '').map((x) => x.split('/')[0]!);
          if (ips.length) out.gateways.set(id, ips);
        }
      }
      return out;
    } catch (e) {
      this.lastError = errorMessage(e);
      this.m?.passes.inc({ result: 'unreachable' });
      this.o.log.warn({ err: this.lastError }, 'docker listing of swarm services or gateways failed; will retry');
      return undefined;
    }
  }

  /** A GET whose refusal by the engine (not a manager, gone) means "nothing"; unreachable still throws. */
  private async optional<T>(path: string, none: T): Promise<T> {
    try {
      return await this.client.request<T>('GET', path);
    } catch (e) {
      if (e instanceof VipdnsError && (e.code !== 'UNAVAILABLE' || /not a swarm manager/i.test(e.message))) return none;
      throw e;
    }
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
