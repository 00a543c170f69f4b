// DNS worker threads, main side: starts `count` threads (worker.ts) that each bind one more
// UDP socket on the DNS port with SO_REUSEPORT, so UDP answering uses more than one core. The
// main thread keeps TCP, forwarding (upstream health, cache) and the catalog: it sends each
// worker the whole catalog state once, when it starts, and then every committed change as a
// delta, in order; it answers their forwards and adds their metrics to its registry. A worker that dies is logged and started again; its counts
// are folded into the main thread's so counters never go backwards.
import { Worker } from 'node:worker_threads';
import type { AppliedChange } from '../catalog/changes.js';
import type { CatalogState } from '../catalog/model.js';
import type { Logger } from '../log.js';
import { type BackoffOptions, Runner } from '../runner.js';
import type { IndexOptions } from './answers.js';
import type { DnsMetrics } from './metrics.js';
import type { Forwarder } from './resolver.js';
import { parseQuery } from './wire.js';
import type { FromWorker, ToWorker, WorkerInit } from './worker-protocol.js';

export interface DnsWorkersOptions {
  /** Worker threads besides the main thread's own socket. */
  count: number;
  host: string;
  index: IndexOptions;
  /** The current state, sent whole to a worker when it starts (and on resync). */
  state: () => CatalogState;
  forwarder: Forwarder;
  metrics?: DnsMetrics;
  log: Pick<Logger, 'info' | 'warn' | 'error'>;
  metricsIntervalMs?: number;
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
          run: () => this.spawn(s),
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
      await Promise.all(this.slots.map((s) => this.spawn(s)));
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

  /** Sends every worker the whole state (the main thread's index was repaired from it). */
  resync(): void {
    this.generation++;
    if (this.stopping) return;
    const state = this.opts.state();
    for (const s of this.slots) this.post(s, { t: 'state', state, generation: this.generation });
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

  private spawn(s: Slot): Promise<void> {
    const init: WorkerInit = {
      id: s.id,
      host: this.opts.host,
      port: this.port,
      index: this.opts.index,
      state: this.opts.state(),
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
