// DNS worker threads, main side: starts `count` threads (worker.ts) that each bind one more
// UDP socket on the DNS port with SO_REUSEPORT, so UDP answering uses more than one core. The
// main thread keeps TCP, forwarding (upstream health, cache) and the catalog: it sends each
// worker the whole catalog state once, when it starts, in parts between which the main thread
// serves (each part serialized once for every worker loading), and then every committed change
// as a delta, in order; it answers their forwards and adds their metrics to its registry. A worker that dies is logged and started again; its counts
// are folded into the main thread's so counters never go backwards.
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import type { AppliedChange } from '../catalog/changes.js';
import type { CatalogState, Task } from '../catalog/model.js';
import type { Logger } from '../log.js';
import { type BackoffOptions, Runner } from '../runner.js';
import type { IndexOptions, IndexRepair } from './answers.js';
import type { DnsMetrics } from './metrics.js';
import type { Forwarder } from './resolver.js';
import { parseQuery } from './wire.js';
import type { FromWorker, LoadPart, ToWorker, WorkerInit } from './worker-protocol.js';

export interface DnsWorkersOptions {
  /** Worker threads besides the main thread's own socket. */
  count: number;
  host: string;
  index: IndexOptions;
  /** The current state, sent to a worker when it starts (and on resync), in parts. */
  state: () => Readonly<CatalogState>;
  forwarder: Forwarder;
  metrics?: DnsMetrics;
  log: Pick<Logger, 'info' | 'warn' | 'error'>;
  metricsIntervalMs?: number;
  /** A service's tasks, so a load sends them with their service (the catalog has them indexed). */
  tasksOf?: (service: string) => readonly Task[];
  /** Objects per load part (default 1000: a part costs the main thread ~1-2 ms to serialize). */
  loadPartObjects?: number;
}

interface Slot {
  id: string;
  worker: Worker | undefined; // spawned (serving or starting), until it exits
  ready: boolean;
  applied: number;
  /** Starts the slot's thread again after a back-off that grows while it keeps dying young. */
  restarter: Runner;
  readyAt: number;
}

const RESTART_BACKOFF: BackoffOptions = { initialMs: 1000, maxMs: 30_000 };
const LOAD_PART_OBJECTS = 1000;
const LOAD_KINDS = ['networks', 'services', 'tasks', 'containers'] as const;
/** A worker that served this long before it died starts its backoff from the beginning. */
const STABLE_MS = 30_000;

export class DnsWorkers {
  private readonly slots: Slot[];
  private generation = 0;
  private stopping = false;
  private waiters: Array<() => void> = [];
  private port = 0;
  private started = false; // start() succeeded: from now on a dead worker is started again

  constructor(private readonly opts: DnsWorkersOptions) {
    this.slots = Array.from({ length: opts.count }, (_, i) => {
      const id = String(i + 1);
      const s: Slot = {
        id,
        worker: undefined,
        ready: false,
        applied: -1,
        readyAt: 0,
        restarter: new Runner<void>({
          // A restart that cannot serve rejects; the runner tries again after the next delay.
          run: () => {
            const ready = this.spawn(s);
            this.load([s]);
            return ready;
          },
          backoff: RESTART_BACKOFF,
          resetOnSuccess: false, // serving is not enough: only a thread that lived STABLE_MS resets it
          onError: (e, _r, restartInMs) => this.opts.log.error({ worker: id, err: e, restartInMs }, 'dns worker restart failed'),
        }),
      };
      return s;
    });
  }

  /** Starts every worker on the main socket's port; rejects (after stopping those that started) if one cannot bind. */
  async start(port: number): Promise<void> {
    this.port = port;
    try {
      const ready = this.slots.map((s) => this.spawn(s));
      this.load(this.slots);
      await Promise.all(ready);
    } catch (e) {
      await this.stop();
      throw e;
    }
    this.started = true;
    for (const s of this.slots) s.restarter.start();
  }

  /**
   * A change was committed: send it to every worker thread, serving or starting (a starting
   * thread's queue holds it until its index, built from the state it was spawned with, is
   * up). Call it for every change, in commit order, synchronously from the catalog's event.
   */
  publish(change: AppliedChange): void {
    this.generation++;
    if (this.stopping) return;
    for (const s of this.slots) this.post(s, { t: 'change', change, generation: this.generation });
  }

  /**
   * The main thread's self-check repaired these owners: every worker's index, fed the same
   * changes, repairs them too (a few objects, where resync() would send the whole state).
   */
  repair(repair: IndexRepair): void {
    this.generation++;
    if (this.stopping) return;
    for (const s of this.slots) this.post(s, { t: 'repair', repair, generation: this.generation });
  }

  /** Sends every worker the whole state again, in parts; each serves from its index until the load is complete. */
  resync(): void {
    this.generation++;
    if (this.stopping) return;
    for (const s of this.slots) this.post(s, { t: 'load-begin' });
    this.load(this.slots);
  }

  /**
   * Resolves true once every worker thread (serving or starting) answers from the latest
   * published state; false, logged, after timeoutMs (a stuck worker must not stall the API).
   */
  settled(timeoutMs: number): Promise<boolean> {
    if (this.isSettled()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== done);
        const behind = this.slots.filter((s) => s.worker && s.applied < this.generation).map((s) => s.id);
        this.opts.log.warn({ workers: behind, waitedMs: timeoutMs }, 'dns workers did not apply a catalog change in time; they may answer from the previous one briefly');
        resolve(false);
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      this.waiters.push(done);
    });
  }

  get running(): number {
    return this.slots.filter((s) => s.ready).length;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const restarters = this.slots.map((s) => s.restarter.stop()); // no restart from now on
    await Promise.all(
      this.slots.map(async (s) => {
        const w = s.worker;
        if (!w) return;
        const exited = new Promise<void>((r) => w.once('exit', () => r()));
        // A clean stop closes the socket and sends final metrics; a stuck worker is terminated.
        this.post(s, { t: 'stop' });
        const t = setTimeout(() => void w.terminate(), 2000);
        await exited;
        clearTimeout(t);
      }),
    );
    await Promise.all(restarters);
    for (const w of this.waiters.splice(0)) w();
  }

  private isSettled(): boolean {
    return this.slots.every((s) => !s.worker || s.applied >= this.generation);
  }

  private wakeIfSettled(): void {
    if (this.isSettled()) for (const done of this.waiters.splice(0)) done();
  }

  private post(s: Slot, m: ToWorker, transfer?: ArrayBuffer[]): void {
    s.worker?.postMessage(m, transfer);
  }

  /**
   * Sends the current state to the workers now in `slots`, a part per turn of the event loop:
   * DNS on the main thread waits for one part's serialization at most, never for the whole.
   * Each part is read from the live state when it is sent, after every change published
   * before it, and changes published later follow it: a worker that stages parts and changes
   * in the order they come ends with the state as of 'loaded'.
   */
  private load(slots: Slot[]): void {
    const targets = slots.flatMap((s) => (s.worker ? [{ s, w: s.worker }] : []));
    const live = (): Worker[] => (this.stopping ? [] : targets.filter((x) => x.s.worker === x.w).map((x) => x.w));
    const run = async (): Promise<void> => {
      for (const p of loadParts(this.opts.state, this.opts.tasksOf, this.opts.loadPartObjects ?? LOAD_PART_OBJECTS)) {
        const ws = live();
        if (ws.length === 0) return;
        // JSON: the worker parses it ~3x faster than a structured clone's objects.
        const part = JSON.stringify(p);
        for (const w of ws) w.postMessage({ t: 'load', part } satisfies ToWorker);
        await nextTurn();
      }
      const revision = this.opts.state().revision;
      for (const w of live()) w.postMessage({ t: 'loaded', revision, generation: this.generation } satisfies ToWorker);
    };
    run().catch((e: unknown) => this.opts.log.error({ err: e }, 'dns workers: loading the state failed'));
  }

  private spawn(s: Slot): Promise<void> {
    const init: WorkerInit = {
      id: s.id,
      host: this.opts.host,
      port: this.port,
      index: this.opts.index,
      generation: this.generation,
      metricsIntervalMs: this.opts.metricsIntervalMs ?? 1000,
    };
    let w: Worker;
    try {
      w = new Worker(new URL('./worker.js', import.meta.url), { workerData: init, name: `vipdns-dns-${s.id}` });
    } catch (e) {
      return Promise.reject(e as Error);
    }
    s.worker = w;
    s.ready = false;
    s.applied = init.generation;
    return new Promise<void>((resolve, reject) => {
      let started = false;
      w.on('message', (m: FromWorker) => {
        switch (m.t) {
          case 'ready':
            started = true;
            s.ready = true;
            s.readyAt = Date.now();
            // Changes published while it started are queued to it already (it may have applied some).
            s.applied = Math.max(s.applied, m.generation);
            this.wakeIfSettled();
            resolve();
            break;
          case 'failed': {
            const e = Object.assign(new Error(`DNS worker ${s.id} could not serve ${this.opts.host}:${this.port}: ${m.error}`), { code: m.code });
            if (!started) reject(e);
            else this.opts.log.error({ worker: s.id, err: m.error }, 'dns worker failed');
            break;
          }
          case 'applied':
            if (s.worker === w) s.applied = Math.max(s.applied, m.generation);
            this.wakeIfSettled();
            break;
          case 'forward':
            void this.forward(s, w, m.id, m.raw, m.maxSize);
            break;
          case 'metrics':
            this.opts.metrics?.remotes.set(s.id, m.snapshot);
            break;
          case 'log':
            this.opts.log[m.level]({ worker: s.id }, m.msg);
            break;
          case 'stopped':
            break;
        }
      });
      w.on('error', (e) => {
        if (!started) reject(e);
        else this.opts.log.error({ worker: s.id, err: e }, 'dns worker crashed');
      });
      w.on('exit', (code) => {
        s.ready = false;
        s.worker = undefined;
        // Keep its counts: fold them into ours before its slot starts again from zero.
        const last = this.opts.metrics?.remotes.get(s.id);
        if (last) {
          this.opts.metrics?.absorb(last, s.id);
          this.opts.metrics?.remotes.delete(s.id);
        }
        if (!started) reject(new Error(`DNS worker ${s.id} exited (code ${code}) before serving`));
        this.wakeIfSettled();
        // One that never served was a restart: its spawn() rejected, and its restarter retries.
        if (this.stopping || !this.started || !started) return;
        if (Date.now() - s.readyAt >= STABLE_MS) s.restarter.resetBackoff();
        this.opts.log.error({ worker: s.id, code, restartInMs: s.restarter.retry() }, 'dns worker exited; starting it again');
      });
    });
  }

  /** Answers a worker's forward; only to the thread that asked (a restarted slot has new ids). */
  private async forward(s: Slot, w: Worker, id: number, raw: Uint8Array, maxSize: number): Promise<void> {
    let m: ToWorker;
    let transfer: ArrayBuffer[] | undefined;
    try {
      const q = parseQuery(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength));
      const r = await this.opts.forwarder.forward(q, maxSize);
      const reply = new Uint8Array(r.reply); // our own copy to transfer: r.reply may be a cached buffer
      m = { t: 'forwarded', id, result: { reply, rcode: r.rcode, source: r.source } };
      transfer = [reply.buffer];
    } catch (e) {
      m = { t: 'forwarded', id, error: (e as Error).message };
    }
    if (s.worker === w) w.postMessage(m, transfer);
  }
}

/**
 * The parts of a state load, each made from the live state when the loader asks for it. With
 * `tasksOf`, a service's tasks come in its part: listing every task id at once (Object.keys
 * of 100,000 tasks) alone would hold the main thread ~30 ms.
 */
function* loadParts(state: () => Readonly<CatalogState>, tasksOf: ((service: string) => readonly Task[]) | undefined, per: number): Generator<LoadPart> {
  yield { networks: { ...state().networks } };
  for (const kind of tasksOf ? (['services', 'containers'] as const) : (['services', 'tasks', 'containers'] as const)) {
    const ids = Object.keys(state()[kind]);
    let part: LoadPart = {};
    let n = 0;
    for (const id of ids) {
      const now = state()[kind] as Record<string, unknown>;
      if (!Object.hasOwn(now, id)) continue;
      ((part[kind] ??= {}) as Record<string, unknown>)[id] = now[id];
      n++;
      if (kind === 'services' && tasksOf) {
        const tasks = (part.tasks ??= {});
        for (const t of tasksOf(id)) {
          tasks[t.id] = t as Task;
          n++;
        }
      }
      if (n >= per) {
        yield part;
        part = {};
        n = 0;
      }
    }
    if (n > 0) yield part;
  }
}
