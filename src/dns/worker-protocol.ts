// Messages between the main thread (workers.ts) and a DNS worker thread (worker.ts).
import type { AppliedChange } from '../catalog/changes.js';
import type { CatalogState } from '../catalog/model.js';
import type { IndexOptions, IndexRepair } from './answers.js';
import type { DnsMetricsSnapshot } from './metrics.js';

/** A worker's workerData: the whole state once, at spawn; deltas ('change') after it. */
export interface WorkerInit {
  id: string;
  host: string;
  port: number;
  index: IndexOptions;
  state: CatalogState;
  generation: number;
  metricsIntervalMs: number;
}

export type ToWorker =
  /** One committed catalog change, in commit order: the worker's index applies it. */
  | { t: 'change'; change: AppliedChange; generation: number }
  /** The whole state: a resync after the main thread's self-check repaired its index. */
  | { t: 'state'; state: CatalogState; generation: number }
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
