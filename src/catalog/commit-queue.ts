// The catalog's write path: mutations queue up; while one commit is in flight the next ones
// wait and then go out together as one store commit (group commit). Each op runs on a
// transaction over the committed state (txn.ts) behind a savepoint, so an op that throws
// changed nothing and is rejected alone. When another writer got there first (a shared store),
// the batch is recomputed on the caught-up state and retried.
import { VipdnsError } from '../errors.js';
import { type BackoffOptions, withRetries } from '../runner.js';
import { isEmptyChange } from './changes.js';
import { type ReplicatedStore, StoreConflict } from './store/store.js';
import type { Txn } from './txn.js';

interface Op {
  fn: (tx: Txn) => unknown;
  /** Committed on its own: it may touch many objects. */
  alone: boolean;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  /** Already retried after a store sync (a NOT_FOUND is then final). */
  synced?: boolean;
}

// Group commit stays under etcd's default 128 operations per transaction.
const MAX_BATCH_OPS = 32;
const MAX_ATTEMPTS = 40;
// Jittered over [0, d), d growing from 2 ms to 100 ms, so two daemons racing for the same state take turns.
const CONFLICT_BACKOFF: BackoffOptions = { initialMs: 2, maxMs: 100, jitter: 'full' };

export class CommitQueue {
  private queue: Op[] = [];
  private draining = false;
  private idle: Array<() => void> = [];
  private closed = false;

  constructor(
    private readonly store: ReplicatedStore,
    /** A fresh transaction over the committed state. */
    private readonly begin: () => Txn,
  ) {}

  run<T>(fn: (tx: Txn) => T, alone = false): Promise<T> {
    if (this.closed) return Promise.reject(new VipdnsError('UNAVAILABLE', 'the catalog is closing'));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, resolve: resolve as (v: unknown) => void, reject, alone });
      void this.drain();
    });
  }

  /** Refuses new writes and waits for the queued ones. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.draining) await new Promise<void>((r) => this.idle.push(r));
  }

  private async drain(): Promise<void> {
    // The flag changes synchronously on both ends, so an op queued as the loop ends is never stranded.
    if (this.draining) return;
    this.draining = true;
    try {
      while (this.queue.length > 0) {
        // Ops that may touch many objects go alone; the rest group-commit up to MAX_BATCH_OPS.
        let n = 0;
        while (n < this.queue.length && n < MAX_BATCH_OPS && !this.queue[n]!.alone) n++;
        await this.commitBatch(this.queue.splice(0, Math.max(1, n)));
      }
    } finally {
      this.draining = false;
      for (const r of this.idle.splice(0)) r();
    }
  }

  private async commitBatch(batch: Op[]): Promise<void> {
    const stale: Op[] = [];
    await this.commitOps(batch, stale);
    if (stale.length === 0) return;
    // Something named by these ops was missing here; another daemon may have just created it.
    // Catch up with the shared store, then run them once more.
    try {
      await this.store.sync?.();
    } catch {
      /* the retry reports the original NOT_FOUND */
    }
    for (const op of stale) op.synced = true;
    this.queue.unshift(...stale);
  }

  private async commitOps(batch: Op[], stale: Op[]): Promise<void> {
    let live = batch;
    let attempts = 0;
    try {
      await withRetries(
        async (attempt) => {
          attempts = attempt;
          const tx = this.begin();
          const results = new Map<Op, unknown>();
          for (const op of live) {
            const sp = tx.savepoint();
            try {
              results.set(op, op.fn(tx));
            } catch (e) {
              tx.rollback(sp);
              if (!op.synced && this.store.sync && e instanceof VipdnsError && e.code === 'NOT_FOUND') stale.push(op);
              else op.reject(e as Error);
            }
          }
          live = live.filter((op) => results.has(op));
          if (live.length === 0) return;
          const change = tx.change();
          if (!isEmptyChange(change)) await this.store.commit(change);
          for (const op of live) op.resolve(results.get(op));
        },
        {
          attempts: MAX_ATTEMPTS,
          backoff: CONFLICT_BACKOFF,
          // Another writer got there first: recompute on the caught-up state.
          retryable: (err) => err instanceof StoreConflict && !this.closed,
          beforeRetry: (err) => (err as StoreConflict).caughtUp,
        },
      );
    } catch (err) {
      const e =
        err instanceof StoreConflict
          ? new VipdnsError('CONFLICT', `gave up after ${attempts} attempts: other daemons kept changing the catalog first`)
          : err instanceof VipdnsError
            ? err
            : new VipdnsError('STORE_FAILED', (err as Error).message, { cause: err });
      for (const op of live) op.reject(e);
    }
  }
}
