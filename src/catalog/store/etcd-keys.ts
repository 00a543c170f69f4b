// The etcd key layout and transaction plan: pure, no client.
//
//   <prefix>meta                  {"nextFwmark":…,"commit":…}  rewritten by every serial change
//   <prefix>networks/<name>       Network JSON
//   <prefix>services/<name>       Service JSON
//   <prefix>tasks/<id>            Task JSON, attached to the registering daemon's lease
//   <prefix>containers/<name>     Container JSON
//   <prefix>nodes/<node-name>     live daemons (on their lease); not part of the catalog
//   <prefix>batch                 a staged change too big for one transaction (see stagedPlan)
//
// A change commits as one transaction that compares the mod revision of every key it writes
// or deletes with the one this daemon last saw (0: absent), and, if serial, of the meta key
// too: every serial change rewrites meta, so two changes computed from the same catalog can
// never both commit, while health updates (which only compare their own task) never collide
// with anything but a write to the same task.
import { VipdnsError } from '../../errors.js';
import { type Change, type Meta, type ObjectKind, type ObjectPut, type ObjectRef, COLLECTION, OBJECT_KINDS } from '../changes.js';
import { type CatalogState, FWMARK_BASE, emptyState } from '../model.js';

export const DEFAULT_PREFIX = '/vipdns/v1/';
export const META = 'meta';
export const NODES = 'nodes/';
export const BATCH = 'batch';
/** etcd's default --max-txn-ops is 128 (compares and ops are each capped): leave room. */
export const MAX_TXN_OPS = 120;
/** etcd's default --max-request-bytes is 1.5 MiB: a staged change's one key must fit under it. */
export const MAX_BATCH_BYTES = 1_400_000;

export function normalizePrefix(p: string): string {
  const withSlashes = `/${p}/`.replace(/\/{2,}/g, '/');
  return withSlashes;
}

export function objectKey(prefix: string, kind: ObjectKind, id: string): string {
  return `${prefix}${COLLECTION[kind]}/${id}`;
}

export type ParsedKey = { type: 'object'; kind: ObjectKind; id: string } | { type: 'meta' } | { type: 'batch' } | { type: 'node'; name: string } | { type: 'other' };

export function parseKey(prefix: string, key: string): ParsedKey {
  if (!key.startsWith(prefix)) return { type: 'other' };
  const rest = key.slice(prefix.length);
  if (rest === META) return { type: 'meta' };
  if (rest === BATCH) return { type: 'batch' };
  if (rest.startsWith(NODES)) return { type: 'node', name: rest.slice(NODES.length) };
  const slash = rest.indexOf('/');
  if (slash > 0) {
    const coll = rest.slice(0, slash);
    const id = rest.slice(slash + 1);
    const kind = OBJECT_KINDS.find((k) => COLLECTION[k] === coll);
    if (kind && id !== '' && !id.includes('/')) return { type: 'object', kind, id };
  }
  return { type: 'other' };
}

export interface MetaValue extends Meta {
  /** Id of the transaction that last wrote meta: tells a retried commit that it had landed. */
  commit?: string;
}

function parseJson(key: string, value: string): unknown {
  try {
    return JSON.parse(value);
  } catch (e) {
    throw new VipdnsError('STORE_FAILED', `etcd key ${key} does not hold JSON (${(e as Error).message}); is another program using this prefix?`);
  }
}

export function decodeMeta(key: string, value: string): MetaValue {
  const m = parseJson(key, value) as Partial<MetaValue>;
  const nextFwmark = typeof m.nextFwmark === 'number' ? m.nextFwmark : FWMARK_BASE;
  return m.commit === undefined ? { nextFwmark } : { nextFwmark, commit: String(m.commit) };
}

export interface RawKv {
  key: string;
  value: string;
  modRevision: number;
  lease?: string; // '0' or absent: none
}

/**
 * Builds a state from a consistent read of the prefix. A pending staged change is laid over the
 * keys: readers see all of it from the revision that wrote it, however far it is materialized.
 */
export function decodeState(prefix: string, kvs: RawKv[], revision: number): CatalogState {
  const s = emptyState();
  s.revision = revision;
  let batch: BatchValue | undefined;
  for (const kv of kvs) {
    const k = parseKey(prefix, kv.key);
    if (k.type === 'meta') s.nextFwmark = decodeMeta(kv.key, kv.value).nextFwmark;
    else if (k.type === 'object') (s[COLLECTION[k.kind]] as Record<string, unknown>)[k.id] = parseJson(kv.key, kv.value);
    else if (k.type === 'batch') batch = decodeBatch(kv.key, kv.value);
  }
  if (batch) {
    for (const ev of batchEvents(batch)) {
      const k = parseKey(prefix, ev.key);
      if (k.type !== 'object') continue;
      const coll = s[COLLECTION[k.kind]] as Record<string, unknown>;
      if (ev.type === 'put') coll[k.id] = parseJson(ev.key, ev.value);
      else delete coll[k.id];
    }
  }
  return s;
}

// ---- staged changes ----
//
// A change over MAX_TXN_OPS keys cannot be one transaction. It commits as one: the whole change
// goes into the single `batch` key (with meta, compared as any serial change is), and every reader
// applies it at that revision. Then chunks of at most MAX_TXN_OPS writes, each guarded by the batch
// key's revision, put the same values under the object keys (readers skip these: they equal what
// the batch said), and a last transaction deletes the batch key. Every other commit requires the
// batch key to be absent, so nothing is written between a batch and its materialization. Any
// daemon finishes a batch its writer left (chunks are idempotent).

export interface BatchValue {
  id: string;
  /** The writer's lease: new tasks of the change go on it. */
  lease?: string;
  ops: TxnOp[];
}

export function decodeBatch(key: string, value: string): BatchValue {
  const b = parseJson(key, value) as Partial<BatchValue>;
  if (typeof b.id !== 'string' || !Array.isArray(b.ops)) throw new VipdnsError('STORE_FAILED', `etcd key ${key} is not a staged change`);
  return b as BatchValue;
}

/** The key events a batch stands for (object keys only, as a reader applies them). */
export function batchEvents(b: BatchValue): KeyEvent[] {
  return b.ops.map((o) => (o.type === 'put' ? { type: 'put', key: o.key, value: o.value } : { type: 'delete', key: o.key }));
}

export interface StagedPlan {
  /** One transaction: the batch key (which must not exist), meta, and the compares that fit. */
  head: TxnPlan;
  /** Then each of chunksOf(batch.ops) as a transaction guarded by the batch key's revision, then its deletion. */
  batch: BatchValue;
}

/** How a staged change is written out: chunks that each fit one transaction. */
export function chunksOf(ops: TxnOp[]): TxnOp[][] {
  const out: TxnOp[][] = [];
  for (let i = 0; i < ops.length; i += MAX_TXN_OPS) out.push(ops.slice(i, i + MAX_TXN_OPS));
  return out;
}

/** Whether `plan` fits one transaction. */
export function fitsOneTxn(plan: TxnPlan): boolean {
  return plan.ops.length <= MAX_TXN_OPS && plan.compares.length + 1 <= MAX_TXN_OPS;
}

/**
 * A plan too big for one transaction, staged. The head compares meta (every serial change writes
 * it: no other serial change can slip in) and as many of the other keys as fit; health-only
 * writes between the read and the head can be overwritten, and their checker writes them again.
 */
export function stagedPlan(prefix: string, plan: TxnPlan, commitId: string, lease: string | undefined): StagedPlan {
  const metaKey = `${prefix}${META}`;
  const batchKey = `${prefix}${BATCH}`;
  const metaOp = plan.ops.find((o) => o.key === metaKey);
  const objectOps = plan.ops.filter((o) => o.key !== metaKey);
  const batch: BatchValue = { id: commitId, ...(lease ? { lease } : {}), ops: objectOps };
  const value = JSON.stringify(batch);
  if (value.length > MAX_BATCH_BYTES) {
    throw new VipdnsError('BAD_REQUEST', `this change writes ${objectOps.length} objects (${(value.length / 1e6).toFixed(1)} MB), more than one etcd request carries (${(MAX_BATCH_BYTES / 1e6).toFixed(1)} MB); make it in smaller steps`);
  }
  const meta = plan.compares.filter((c) => c.key === metaKey);
  const others = plan.compares.filter((c) => c.key !== metaKey);
  const compares = [{ key: batchKey, modRevision: 0 }, ...meta, ...others.slice(0, MAX_TXN_OPS - 1 - meta.length)];
  const ops: TxnOp[] = [{ type: 'put', key: batchKey, value, lease: 'none' }, ...(metaOp ? [metaOp] : [])];
  return { head: { compares, ops }, batch };
}

/** One watch event, as the store decodes it into catalog terms. */
export type KeyEvent = { type: 'put'; key: string; value: string } | { type: 'delete'; key: string };

/** The catalog change carried by a revision's events (keys outside the catalog are skipped). */
export function changeFromEvents(prefix: string, events: KeyEvent[]): Change {
  const change: Change = { puts: [], deletes: [], serial: true };
  for (const ev of events) {
    const k = parseKey(prefix, ev.key);
    if (k.type === 'meta' && ev.type === 'put') change.meta = { nextFwmark: decodeMeta(ev.key, ev.value).nextFwmark };
    if (k.type !== 'object') continue;
    if (ev.type === 'put') change.puts.push({ kind: k.kind, id: k.id, value: parseJson(ev.key, ev.value) } as ObjectPut);
    else change.deletes.push({ kind: k.kind, id: k.id });
  }
  return change;
}

export interface TxnCompare {
  key: string;
  modRevision: number; // 0: the key must not exist
}

export type TxnOp =
  | { type: 'put'; key: string; value: string; lease: 'own' | 'keep' | 'none' }
  | { type: 'delete'; key: string };

export interface TxnPlan {
  compares: TxnCompare[];
  ops: TxnOp[];
}

/**
 * The transaction for `change`. `seen(key)` is the mod revision this daemon last saw for the
 * key (0 if absent). New tasks go on this daemon's lease; rewritten tasks keep theirs.
 */
export function planTxn(prefix: string, change: Change, meta: Meta, seen: (key: string) => number, commitId: string): TxnPlan {
  const compares: TxnCompare[] = [];
  const ops: TxnOp[] = [];
  const ref = (r: ObjectRef | ObjectPut): string => objectKey(prefix, r.kind, r.id);
  for (const p of change.puts) {
    const key = ref(p);
    const rev = seen(key);
    compares.push({ key, modRevision: rev });
    const lease = p.kind !== 'task' ? 'none' : rev === 0 ? 'own' : 'keep';
    ops.push({ type: 'put', key, value: JSON.stringify(p.value), lease });
  }
  for (const d of change.deletes) {
    const key = ref(d);
    compares.push({ key, modRevision: seen(key) });
    ops.push({ type: 'delete', key });
  }
  if (change.serial || change.meta) {
    const key = `${prefix}${META}`;
    compares.push({ key, modRevision: seen(key) });
    const value: MetaValue = { nextFwmark: (change.meta ?? meta).nextFwmark, commit: commitId };
    ops.push({ type: 'put', key, value: JSON.stringify(value), lease: 'none' });
  }
  return { compares, ops };
}
