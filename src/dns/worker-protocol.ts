// Messages between the main thread (workers.ts) and a DNS worker thread (worker.ts).
import type { AppliedChange } from '../catalog/changes.js';
import type { CatalogState } from '../catalog/model.js';
import type { IndexOptions, IndexRepair } from './answers.js';
import type { DnsMetricsSnapshot } from './metrics.js';

/**
 * A worker's workerData. The state follows in 'load' parts (a whole state in workerData would
 * be cloned on the main thread in one go: ~0.5 s at 100,000 tasks), then 'loaded'; deltas
 * ('change') come in between and after, in commit order.
 */
export interface WorkerInit {
  id: string;
  host: string;
  port: number;
  index: IndexOptions;
  generation: number;
  metricsIntervalMs: number;
}

/** One part of a state load, as JSON (serialized once for every worker that loads): some objects of some kinds. */
export type LoadPart = Partial<Pick<CatalogState, 'networks' | 'services' | 'tasks' | 'containers'>>;

export type ToWorker =
  /** One committed catalog change, in commit order: the worker's index applies it. */
  | { t: 'change'; change: AppliedChange; generation: number }
  /** A state load starts over (a resync); the worker keeps serving from its index meanwhile. */
  | { t: 'load-begin' }
  /** Objects of the current state (a LoadPart as JSON); later parts and changes win. */
  | { t: 'load'; part: string }
  /** The load is complete: build the index from it (and start serving, the first time). */
  | { t: 'loaded'; revision: number; generation: number }
  /** Owners the main thread's self-check repaired: the worker's index (fed the same changes) repairs them too. */
  | { t: 'repair'; repair: IndexRepair; generation: number }
  | { t: 'forwarded'; id: number; result?: { reply: Uint8Array; rcode: number; source: 'forward' | 'cache' }; error?: string }
  | { t: 'stop' };

export type FromWorker =
  | { t: 'ready'; port: number; generation: number }
  | { t: 'failed'; error: string; code?: string }
  | { t: 'applied'; generation: number }
  | { t: 'forward'; id: number; raw: Uint8Array; maxSize: number }
  | { t: 'metrics'; snapshot: DnsMetricsSnapshot }
  | { t: 'log'; level: 'error' | 'warn'; msg: string }
  | { t: 'stopped' };
