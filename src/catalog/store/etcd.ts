// The etcd store: the catalog under a key prefix, shared by every daemon of a cluster.
// Layout and transaction plan: ./etcd-keys.ts. Here: the client, the watch that mirrors the
// prefix (and resumes from the last delivered revision after any break), the lease that holds
// this daemon's tasks, and the compare-and-swap commit.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { ConstantBackoff, ExponentialBackoff, type IBackoff, handleWhen, noop, retry } from 'cockatiel';
import { Etcd3, type IRequestOp, type IWatchResponse, type Lease, type Watcher, isRecoverableError } from 'etcd3';
import { VipdnsError, errorMessage } from '../../errors.js';
import type { Change, Meta } from '../changes.js';
import { type CatalogState, FWMARK_BASE } from '../model.js';
import { withRetries } from '../../runner.js';
import {
  BATCH,
  type BatchValue,
  type KeyEvent,
  META,
  NODES,
  type RawKv,
  type TxnCompare,
  type TxnOp,
  batchEvents,
  changeFromEvents,
  chunksOf,
  decodeBatch,
  decodeMeta,
  decodeState,
  fitsOneTxn,
  parseKey,
  planTxn,
  stagedPlan,
} from './etcd-keys.js';
import { type ChangeListener, type NodeInfo, type ReplicatedStore, StoreConflict } from './store.js';

export interface EtcdStoreOptions {
  hosts: string[]; // http://host:port or https://host:port
  prefix: string; // normalized, ends with '/'
  nodeName: string;
  /** This host's address as other hosts reach it, for `vipdns node ls`. */
  address?: string;
  leaseTtlSeconds: number;
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  auth?: { username: string; password: string };
  callTimeoutMs?: number;
  log?: StoreLog;
}

export interface StoreLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

const silent: StoreLog = { info: () => undefined, warn: () => undefined, error: () => undefined };
const PAGE = 1000;
const CATCH_UP_TIMEOUT_MS = 5_000;
const ACK_TIMEOUT_MS = 30_000;
/** A staged change still pending after this long: its writer is gone, and any daemon finishes it. */
const TAKEOVER_MS = 3_000;

/** A staged change as this daemon mirrors it: the key events of its materialization are not news. */
interface PendingBatch {
  rev: number;
  value: BatchValue;
  /** key → the value the batch puts there, or null for a delete. */
  expected: Map<string, string | null>;
  timer: NodeJS.Timeout;
}

interface Waiter {
  ready: () => boolean;
  resolve: () => void;
}

export class EtcdStore implements ReplicatedStore {
  readonly location: string;
  // A change over one transaction is staged in one key (etcd-keys.ts), bounded by etcd's request
  // size: ~4,000 tasks. Bigger work (removing a service of more tasks) is split by the catalog.
  readonly maxObjectsPerCommit = 4_000;
  private readonly client: Etcd3;
  private readonly prefix: string;
  private readonly log: StoreLog;
  private listener: ChangeListener = () => undefined;
  /** Mod revision of every key under the prefix, as last delivered: the compare values. */
  private readonly modRevs = new Map<string, number>();
  private meta: Meta = { nextFwmark: FWMARK_BASE };
  private applied = 0;
  private waiters: Waiter[] = [];
  private watcher: Watcher | undefined;
  private watching = false;
  private lease: Lease | undefined;
  private leaseId: Promise<string> | undefined;
  private closed = false;
  private resyncing: Promise<void> | undefined;
  /**
   * Deadline of one write. With several members it is short: a proposal a follower forwarded to a
   * leader that died is lost, and waits for etcd's own 7 s timeout; retried on another member after
   * 2 s instead, it lands after the election (a retry of one that did land is recognized by its id).
   */
  private readonly writeDeadlineMs: number;
  private batch: PendingBatch | undefined;

  constructor(private readonly opts: EtcdStoreOptions) {
    this.prefix = opts.prefix;
    this.log = opts.log ?? silent;
    this.location = `etcd ${opts.hosts.join(',')} prefix ${opts.prefix}`;
    const timeout = opts.callTimeoutMs ?? 5_000;
    this.writeDeadlineMs = opts.hosts.length > 1 ? Math.min(timeout, 2_000) : timeout;
    this.client = new Etcd3({
      hosts: opts.hosts,
      ...(opts.tls?.ca ? { credentials: { rootCertificate: opts.tls.ca, privateKey: opts.tls.key, certChain: opts.tls.cert } } : {}),
      ...(opts.auth ? { auth: opts.auth } : {}),
      // Unary calls fail after a deadline so a change made while etcd is away is refused, not hung.
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeout }),
      dialTimeout: timeout,
      faultHandling: {
        // No circuit breaker: it would keep refusing for seconds after etcd is back.
        host: () => noop,
        // Try the next endpoint once per other host; a commit retried after it landed is
        // recognized by its id in meta (see commit()).
        global: opts.hosts.length > 1 ? retry(handleWhen(isRecoverableError), { maxAttempts: opts.hosts.length - 1, backoff: new ConstantBackoff(50) }) : noop,
        // etcd3 calls .next() on this itself (as on its own default), despite its typing.
        watchBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 1_000 }) as unknown as IBackoff<unknown>,
      },
    });
  }

  /** The watch is connected (for readiness). */
  get live(): boolean {
    return this.watching && !this.closed;
  }

  async open(listener: ChangeListener): Promise<CatalogState> {
    this.listener = listener;
    const { kvs, revision } = await this.readAll();
    const state = decodeState(this.prefix, kvs, revision);
    for (const kv of kvs) this.modRevs.set(kv.key, kv.modRevision);
    const staged = kvs.find((kv) => parseKey(this.prefix, kv.key).type === 'batch');
    if (staged) this.track(staged.modRevision, decodeBatch(staged.key, staged.value));
    this.meta = { nextFwmark: state.nextFwmark };
    this.applied = revision;
    const leaseId = await this.ensureLease();
    this.startWatch();
    await this.adoptTasks(kvs, leaseId);
    return state;
  }

  /**
   * A restarted daemon gets a new lease; the tasks its previous run registered still hang on the
   * old one (alive until its TTL runs out). Move them to the new lease, so a quick restart does not
   * expire this host's tasks from every answer. Each move is guarded by the key's mod revision,
   * so a task another daemon changed meanwhile is left alone.
   */
  private async adoptTasks(kvs: RawKv[], leaseId: string): Promise<void> {
    const node = kvs.find((kv) => kv.key === `${this.prefix}${NODES}${this.opts.nodeName}`);
    let previous: string | undefined;
    try {
      previous = node ? String((JSON.parse(node.value) as { lease?: string }).lease ?? '') : undefined;
    } catch {
      previous = undefined;
    }
    if (!previous || previous === leaseId || previous === '0') return;
    const mine = kvs.filter((kv) => kv.lease === previous && kv.key.startsWith(`${this.prefix}tasks/`));
    let moved = 0;
    for (const kv of mine) {
      try {
        const r = await this.client
          .if(kv.key, 'Mod', '==', kv.modRevision)
          .then(this.client.put(kv.key).value(kv.value).lease(leaseId))
          .commit();
        if (r.succeeded) moved++;
      } catch (e) {
        this.log.warn({ err: errorMessage(e), key: kv.key }, 'cannot move a task to the new etcd lease');
      }
    }
    if (mine.length > 0) this.log.info({ node: this.opts.nodeName, moved, of: mine.length, from: previous, to: leaseId }, 'adopted tasks of this node\'s previous run onto its new lease');
  }

  async commit(change: Change): Promise<number> {
    try {
      return await this.commitOnce(change);
    } catch (e) {
      // Our lease ran out between keepalives (a stalled host): take a new one and try once more.
      if (!(e instanceof VipdnsError && /lease not found/i.test(e.message))) throw e;
      this.log.warn({ node: this.opts.nodeName }, 'etcd lease expired under us; granting a new lease');
      this.lease?.release();
      this.lease = undefined;
      this.leaseId = undefined;
      return this.commitOnce(change);
    }
  }

  private async commitOnce(change: Change): Promise<number> {
    if (this.closed) throw new VipdnsError('UNAVAILABLE', 'the etcd store is closed');
    const commitId = randomBytes(8).toString('hex');
    const plan = planTxn(this.prefix, change, this.meta, (k) => this.modRevs.get(k) ?? 0, commitId);
    if (plan.compares.length === 0) return this.applied;
    const leaseId = plan.ops.some((o) => o.type === 'put' && o.lease === 'own') ? await this.ensureLease() : undefined;
    if (!fitsOneTxn(plan)) return this.commitStaged(plan, commitId, leaseId);
    // Nothing commits while a staged change is being materialized (it would be overwritten).
    const compares = [...plan.compares, { key: this.prefix + BATCH, modRevision: 0 }];
    const res = await this.again(() => this.txn(compares, plan.ops, () => leaseId, 'the change was not made'));
    if (res.succeeded) {
      const rev = Number(res.header.revision);
      await this.waitFor(() => this.applied >= rev, ACK_TIMEOUT_MS);
      return rev;
    }
    return this.conflict(compares, res, commitId);
  }

  /**
   * The same transaction once more on a cluster when a member did not answer in time (a leader
   * election): if the first landed, the retry's compares fail and conflict() finds our commit id.
   */
  private again<T>(fn: () => Promise<T>): Promise<T> {
    if (this.opts.hosts.length < 2) return fn();
    return withRetries(fn, { attempts: 4, backoff: { initialMs: 100, maxMs: 1_000 }, retryable: (e) => !this.closed && e instanceof VipdnsError && e.code === 'UNAVAILABLE' });
  }

  /** A change too big for one transaction: one key every reader applies at once, then written out. */
  private async commitStaged(plan: ReturnType<typeof planTxn>, commitId: string, leaseId: string | undefined): Promise<number> {
    const staged = stagedPlan(this.prefix, plan, commitId, leaseId);
    const res = await this.again(() => this.txn(staged.head.compares, staged.head.ops, () => undefined, 'the change was not made'));
    // Not succeeded: a conflict (thrown), or an earlier attempt of this head that landed (its revision).
    const rev = res.succeeded ? Number(res.header.revision) : await this.conflict(staged.head.compares, res, commitId);
    const done = await this.materialize(rev, staged.batch);
    await this.waitFor(() => this.applied >= Math.max(rev, done), ACK_TIMEOUT_MS);
    return rev;
  }

  /**
   * Writes a staged change out under its object keys, chunk by chunk, each guarded by the batch
   * key's revision, then deletes the batch key. Returns the revision of that deletion (0 when
   * another daemon finished first). A task the batch puts whose lease has expired meanwhile (its
   * writer, or its host, died) goes on a fresh lease revoked at the end: readers, who applied the
   * batch, see it leave as it would have.
   */
  private async materialize(batchRev: number, batch: BatchValue): Promise<number> {
    const batchKey = this.prefix + BATCH;
    const guard: TxnCompare[] = [{ key: batchKey, modRevision: batchRev }];
    let orphans: Lease | undefined;
    const orphaned = new Set<string>();
    const attempt = <T>(fn: () => Promise<T>): Promise<T> =>
      withRetries(fn, { attempts: 5, backoff: { initialMs: 50, maxMs: 1_000 }, retryable: (e) => !this.closed && !(e instanceof VipdnsError && e.code === 'BAD_REQUEST') });
    try {
      for (const chunk of chunksOf(batch.ops)) {
        const ok = await attempt(async () => {
          const orphanLease = orphans ? String(await orphans.grant()) : undefined;
          // An orphaned put goes on the fresh lease (as 'own'), whatever the batch said.
          const ops = chunk.map((o): TxnOp => (o.type === 'put' && orphaned.has(o.key) ? { ...o, lease: 'own' } : o));
          try {
            return (await this.txn(guard, ops, (o) => (orphaned.has(o.key) ? orphanLease : batch.lease), 'a staged change was not written out')).succeeded;
          } catch (e) {
            if (!(e instanceof VipdnsError && /lease not found|key not found/i.test(e.message))) throw e;
            orphans ??= this.client.lease(this.opts.leaseTtlSeconds, { autoKeepAlive: false });
            const leaseGone = /lease not found/i.test(e.message);
            for (const o of chunk) {
              if (o.type !== 'put' || orphaned.has(o.key)) continue;
              if (o.lease === 'own' && leaseGone) orphaned.add(o.key);
              if (o.lease === 'keep' && !(await this.client.get(o.key).exists())) orphaned.add(o.key);
            }
            throw e; // retried with those puts on the fresh lease
          }
        });
        if (!ok) return 0; // finished (or replaced) by another daemon
      }
      const res = await attempt(() => this.txn(guard, [{ type: 'delete', key: batchKey }], () => undefined, 'a staged change was not closed'));
      return res.succeeded ? Number(res.header.revision) : 0;
    } finally {
      await orphans?.revoke().catch(() => undefined);
    }
  }

  /** One guarded transaction; `leaseOf` gives the lease of each 'own' put. */
  private async txn(compares: TxnCompare[], ops: TxnOp[], leaseOf: (o: TxnOp) => string | undefined, what: string) {
    const [first, ...rest] = compares;
    const txn = this.client.if(first!.key, 'Mod', '==', first!.modRevision).options({ deadline: Date.now() + this.writeDeadlineMs });
    for (const c of rest) txn.and(c.key, 'Mod', '==', c.modRevision);
    const req: IRequestOp[] = ops.map((o) =>
      o.type === 'delete'
        ? { request_delete_range: { key: Buffer.from(o.key) } }
        : {
            request_put: {
              key: Buffer.from(o.key),
              value: Buffer.from(o.value),
              ...(o.lease === 'own' ? { lease: leaseOf(o) } : o.lease === 'keep' ? { ignore_lease: true } : {}),
            },
          },
    );
    // On failure, read back what we compared: it tells what beat us, and how far to catch up.
    txn.then(...req).else(...compares.map((c): IRequestOp => ({ request_range: { key: Buffer.from(c.key) } })));
    try {
      return await txn.commit();
    } catch (e) {
      throw storeError(e, this.opts.hosts, what);
    }
  }

  /** A commit whose compares failed: landed earlier (a retried call), or a conflict to catch up with. */
  private async conflict(compares: TxnCompare[], res: Awaited<ReturnType<EtcdStore['txn']>>, commitId: string): Promise<number> {
    const current = compares.map((c, i) => ({ compare: c, kv: res.responses[i]?.response_range?.kvs?.[0] }));
    const metaRead = current.find((x) => x.compare.key === this.prefix + META)?.kv;
    if (metaRead && decodeMeta(this.prefix + META, metaRead.value.toString()).commit === commitId) {
      // An earlier attempt of this very call landed (the client retried on another endpoint).
      const rev = Number(metaRead.mod_revision);
      await this.waitFor(() => this.applied >= rev, ACK_TIMEOUT_MS);
      return rev;
    }
    let target = 0;
    const gone: Array<[string, number]> = [];
    for (const { compare, kv } of current) {
      if (kv) target = Math.max(target, Number(kv.mod_revision));
      else if (compare.modRevision !== 0) gone.push([compare.key, compare.modRevision]);
    }
    // A staged change in the way: retry once it is written out (or taken over).
    const staged = current.some(({ compare, kv }) => compare.key === this.prefix + BATCH && kv !== undefined);
    const changed = current.filter(({ compare, kv }) => Number(kv?.mod_revision ?? 0) !== compare.modRevision).map(({ compare }) => compare.key.slice(this.prefix.length));
    const caughtUp = this.waitFor(
      () => this.applied >= target && gone.every(([k, r]) => (this.modRevs.get(k) ?? 0) !== r) && !(staged && this.batch),
      staged ? TAKEOVER_MS + CATCH_UP_TIMEOUT_MS : CATCH_UP_TIMEOUT_MS,
    );
    throw new StoreConflict(`etcd: ${changed.join(', ') || 'the catalog'} changed since it was read`, caughtUp);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.untrack();
    for (const w of this.waiters) w.resolve();
    this.waiters = [];
    // The lease is released, not revoked: this daemon's tasks expire after the TTL, as they
    // would after a crash, so a restart or a stop never differs from what peers must handle.
    // One last keepalive first, so a restart has the whole TTL to adopt them (the last periodic
    // one may be up to a third of the TTL old; under load a restart took longer than the rest).
    await this.lease?.keepaliveOnce({ deadline: Date.now() + 1000 }).catch(() => undefined);
    this.lease?.release();
    await this.watcher?.cancel().catch(() => undefined);
    this.client.close();
  }

  // ---------- reading and watching ----------

  async sync(): Promise<void> {
    let res;
    try {
      // The newest write under our prefix: once the watch has delivered it, so has everything before.
      res = await this.client.kv.range({ key: Buffer.from(this.prefix), range_end: prefixEnd(this.prefix), limit: 1, sort_order: 'Descend', sort_target: 'Mod', keys_only: true });
    } catch (e) {
      throw storeError(e, this.opts.hosts, `cannot read ${this.prefix}`);
    }
    const target = Number(res.kvs[0]?.mod_revision ?? 0);
    await this.waitFor(() => this.applied >= target, CATCH_UP_TIMEOUT_MS);
  }

  private async readAll(): Promise<{ kvs: RawKv[]; revision: number }> {
    const end = prefixEnd(this.prefix);
    const kvs: RawKv[] = [];
    let from = Buffer.from(this.prefix);
    let revision: number | undefined;
    for (;;) {
      let res;
      try {
        res = await this.client.kv.range({ key: from, range_end: end, limit: PAGE, ...(revision ? { revision } : {}) });
      } catch (e) {
        throw storeError(e, this.opts.hosts, `cannot read ${this.prefix}`);
      }
      revision ??= Number(res.header.revision);
      for (const kv of res.kvs) kvs.push({ key: kv.key.toString(), value: kv.value.toString(), modRevision: Number(kv.mod_revision), lease: String(kv.lease) });
      if (!res.more || res.kvs.length === 0) return { kvs, revision };
      from = Buffer.concat([res.kvs[res.kvs.length - 1]!.key, Buffer.from([0])]);
    }
  }

  private startWatch(): void {
    if (this.closed) return;
    const w = this.client.watch().prefix(this.prefix).startRevision(String(this.applied + 1)).watcher();
    this.watcher = w;
    w.on('connected', () => {
      if (!this.watching) this.log.info({ revision: this.applied }, 'etcd watch connected');
      this.watching = true;
    });
    w.on('data', (res: IWatchResponse) => this.onWatch(res));
    w.on('disconnected', (err: Error) => {
      if (this.watching) this.log.warn({ err: errorMessage(err), revision: this.applied }, 'etcd watch lost; resuming from the last revision when etcd is back');
      this.watching = false;
      // etcd3 would resume after the revision in the last response header, which can be past
      // events it never delivered (a catch-up cut short); resume after the last one we applied.
      (w as unknown as { request: { start_revision?: string } }).request.start_revision = String(this.applied + 1);
    });
    w.on('error', (err: Error) => {
      // The watch was cancelled by etcd (e.g. our revision was compacted): read everything anew.
      this.log.warn({ err: errorMessage(err) }, 'etcd watch cancelled; resynchronizing');
      this.watching = false;
      void this.resync();
    });
  }

  private onWatch(res: IWatchResponse): void {
    const byRev = new Map<number, KeyEvent[]>();
    for (const ev of res.events ?? []) {
      const rev = Number(ev.kv.mod_revision);
      if (rev <= this.applied) continue; // already delivered before a reconnect
      const key = ev.kv.key.toString();
      const list = byRev.get(rev) ?? [];
      list.push(ev.type === 'Put' ? { type: 'put', key, value: ev.kv.value.toString() } : { type: 'delete', key });
      byRev.set(rev, list);
    }
    for (const [rev, events] of [...byRev].sort((a, b) => a[0] - b[0])) this.deliver(rev, events);
    this.wake();
  }

  private deliver(rev: number, events: KeyEvent[]): void {
    for (const ev of events) {
      if (ev.type === 'put') this.modRevs.set(ev.key, rev);
      else this.modRevs.delete(ev.key);
    }
    this.applied = Math.max(this.applied, rev);
    let change: Change;
    try {
      change = changeFromEvents(this.prefix, this.unstage(rev, events));
    } catch (e) {
      this.log.error({ err: errorMessage(e), revision: rev }, 'skipping an undecodable etcd change');
      return;
    }
    if (change.meta) this.meta = change.meta;
    if (change.puts.length + change.deletes.length > 0 || change.meta) this.listener(change, rev);
  }

  /**
   * The events of a revision as catalog news: a staged change's key becomes the change it holds;
   * the writes that materialize it are dropped (readers applied them with the batch).
   */
  private unstage(rev: number, events: KeyEvent[]): KeyEvent[] {
    const staged = events.find((ev) => parseKey(this.prefix, ev.key).type === 'batch');
    let out = events;
    if (staged) {
      out = events.filter((ev) => ev !== staged);
      if (staged.type === 'put') {
        const value = decodeBatch(staged.key, staged.value);
        this.track(rev, value);
        out = [...out, ...batchEvents(value)];
        return out; // the revision that wrote the batch holds nothing to materialize yet
      }
      this.untrack();
    }
    const b = this.batch;
    if (!b) return out;
    return out.filter((ev) => {
      const want = b.expected.get(ev.key);
      return want === undefined || (ev.type === 'put' ? ev.value !== want : want !== null);
    });
  }

  /** Remembers a pending staged change, and finishes it if its writer has not after TAKEOVER_MS. */
  private track(rev: number, value: BatchValue): void {
    this.untrack();
    const expected = new Map<string, string | null>(value.ops.map((o) => [o.key, o.type === 'put' ? o.value : null]));
    const timer = setTimeout(() => {
      if (this.closed || this.batch?.rev !== rev) return;
      this.log.warn({ revision: rev, objects: value.ops.length }, 'a staged etcd change was left unfinished by its writer; finishing it');
      this.materialize(rev, value).catch((e) => this.log.warn({ err: errorMessage(e), revision: rev }, 'cannot finish a staged etcd change; another daemon will'));
    }, TAKEOVER_MS);
    timer.unref();
    this.batch = { rev, value, expected, timer };
  }

  /** Forgets the pending staged change (written out, or the store closes) and its takeover timer. */
  private untrack(): void {
    if (this.batch) clearTimeout(this.batch.timer);
    this.batch = undefined;
  }

  /** Reads the whole prefix and delivers the difference from the mirror as one change. */
  private resync(): Promise<void> {
    this.resyncing ??= (async () => {
      try {
        await this.watcher?.cancel().catch(() => undefined);
        for (;;) {
          if (this.closed) return;
          try {
            const { kvs, revision } = await this.readAll();
            const events: KeyEvent[] = [];
            const present = new Set<string>();
            for (const kv of kvs) {
              present.add(kv.key);
              if (this.modRevs.get(kv.key) !== kv.modRevision) events.push({ type: 'put', key: kv.key, value: kv.value });
            }
            for (const key of this.modRevs.keys()) if (!present.has(key)) events.push({ type: 'delete', key });
            for (const kv of kvs) this.modRevs.set(kv.key, kv.modRevision);
            if (revision > this.applied) this.deliver(revision, events);
            this.log.info({ revision, changed: events.length }, 'etcd resynchronized');
            break;
          } catch (e) {
            this.log.warn({ err: errorMessage(e) }, 'etcd resync failed; retrying');
            await new Promise((r) => setTimeout(r, 1_000));
          }
        }
        this.startWatch();
        this.wake();
      } finally {
        this.resyncing = undefined;
      }
    })();
    return this.resyncing;
  }

  private waitFor(ready: () => boolean, timeoutMs: number): Promise<void> {
    if (ready() || this.closed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const w: Waiter = { ready, resolve };
      this.waiters.push(w);
      // A delivery that never comes (a watch stuck on a broken connection) is healed by a resync.
      const t = setTimeout(() => {
        if (!this.waiters.includes(w)) return;
        this.log.warn({ revision: this.applied }, 'etcd watch did not deliver in time; resynchronizing');
        void this.resync().then(() => this.wake());
      }, timeoutMs);
      t.unref();
    });
  }

  private wake(): void {
    const still: Waiter[] = [];
    for (const w of this.waiters) (w.ready() || this.closed ? w.resolve : () => still.push(w))();
    this.waiters = still;
  }

  // ---------- the lease ----------

  /** This daemon's lease (granting one if there is none), which holds its tasks and node record. */
  private async ensureLease(): Promise<string> {
    if (!this.leaseId) {
      const lease = this.client.lease(this.opts.leaseTtlSeconds);
      const id = lease.grant();
      this.lease = lease;
      this.leaseId = id;
      lease.on('lost', (err) => {
        if (this.closed || this.lease !== lease) return;
        this.log.warn({ err: errorMessage(err), node: this.opts.nodeName }, 'etcd lease lost: this node\'s tasks have expired; granting a new lease');
        this.lease = undefined;
        this.leaseId = undefined;
        setTimeout(() => void this.ensureLease().catch(() => undefined), 1_000).unref();
      });
      id.then(
        (leaseId) => void this.registerNode(leaseId),
        () => {
          if (this.leaseId === id) this.leaseId = undefined;
        },
      );
    }
    try {
      return await this.leaseId;
    } catch (e) {
      throw storeError(e, this.opts.hosts, 'no etcd lease could be granted');
    }
  }

  /** Every registered node (on its live lease), with its lease's age and the tasks on it. */
  async nodes(): Promise<NodeInfo[]> {
    const read = async (sub: string, keysOnly: boolean) => {
      const p = `${this.prefix}${sub}`;
      const res = await this.client.kv.range({ key: Buffer.from(p), range_end: prefixEnd(p), keys_only: keysOnly });
      return res.kvs.map((kv) => ({ key: kv.key.toString().slice(p.length), value: kv.value.toString(), lease: String(kv.lease) }));
    };
    let nodes, tasks;
    try {
      [nodes, tasks] = await Promise.all([read(NODES, false), read('tasks/', true)]);
    } catch (e) {
      throw storeError(e, this.opts.hosts, 'cannot read the nodes');
    }
    const byLease = new Map<string, string[]>();
    for (const t of tasks) {
      let l = byLease.get(t.lease);
      if (!l) byLease.set(t.lease, (l = []));
      l.push(t.key);
    }
    const out: NodeInfo[] = [];
    for (const n of nodes) {
      let rec: { host?: string; address?: string; pid?: number; since?: string } = {};
      try {
        rec = JSON.parse(n.value) as typeof rec;
      } catch {
        /* a record of another version: name and lease still say enough */
      }
      const info: NodeInfo = { name: n.key, tasks: byLease.get(n.lease) ?? [], self: n.key === this.opts.nodeName };
      if (rec.host) info.host = rec.host;
      if (rec.address) info.address = rec.address;
      if (rec.pid) info.pid = rec.pid;
      if (rec.since) info.since = rec.since;
      try {
        const ttl = await this.client.leaseClient.leaseTimeToLive({ ID: n.lease });
        const left = Number(ttl.TTL);
        const granted = Number(ttl.grantedTTL);
        if (left >= 0 && granted > 0) Object.assign(info, { ttl: granted, heartbeatAgo: granted - left });
      } catch {
        /* the lease just expired: the node is on its way out */
      }
      out.push(info);
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  private async registerNode(leaseId: string): Promise<void> {
    const value = JSON.stringify({ name: this.opts.nodeName, host: hostname(), ...(this.opts.address ? { address: this.opts.address } : {}), pid: process.pid, lease: leaseId, since: new Date().toISOString() });
    try {
      await this.client.put(`${this.prefix}${NODES}${this.opts.nodeName}`).value(value).lease(leaseId);
      this.log.info({ node: this.opts.nodeName, lease: leaseId, ttl: this.opts.leaseTtlSeconds }, 'etcd lease granted; node registered');
    } catch (e) {
      this.log.warn({ err: errorMessage(e) }, 'cannot register this node in etcd');
    }
  }
}

/** The first key after every key that starts with `prefix`. */
function prefixEnd(prefix: string): Buffer {
  const b = Buffer.from(prefix);
  b[b.length - 1] = b[b.length - 1]! + 1; // prefixes end with '/', never 0xff
  return b;
}

function storeError(e: unknown, hosts: string[], what: string): VipdnsError {
  if (e instanceof VipdnsError) return e;
  const msg = errorMessage(e);
  const name = e instanceof Error ? e.constructor.name : '';
  if (/Unavailable|DeadlineExceeded|BrokenCircuit|ClientClosed|Cancelled/.test(name) || /UNAVAILABLE|ECONNREFUSED|deadline|No connection/i.test(msg)) {
    return new VipdnsError('UNAVAILABLE', `etcd (${hosts.join(',')}) is unavailable: ${msg}; ${what}`, { cause: e });
  }
  return new VipdnsError('STORE_FAILED', `etcd (${hosts.join(',')}): ${msg}; ${what}`, { cause: e });
}

