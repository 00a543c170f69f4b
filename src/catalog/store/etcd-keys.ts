// The etcd key layout and transaction plan: pure, no client.
//
//   <prefix>meta                  {"nextFwmark":…,"commit":…}  rewritten by every serial change
//   <prefix>networks/<name>       Network JSON
//   <prefix>services/<name>       Service JSON
//   <prefix>tasks/<id>            Task JSON, attached to the registering daemon's lease
//   <prefix>containers/<name>     Container JSON
//   <prefix>nodes/<node-name>     live daemons (on their lease); not part of the catalog
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

export function normalizePrefix(p: string): string {
  const withSlashes = `/${p}/`.replace(/\/{2,}/g, '/');
  return withSlashes;
}

export function objectKey(prefix: string, kind: ObjectKind, id: string): string {
  return `${prefix}${COLLECTION[kind]}/${id}`;
}

export type ParsedKey = { type: 'object'; kind: ObjectKind; id: string } | { type: 'meta' } | { type: 'node'; name: string } | { type: 'other' };

export function parseKey(prefix: string, key: string): ParsedKey {
  if (!key.startsWith(prefix)) return { type: 'other' };
  const rest = key.slice(prefix.length);
  if (rest === META) return { type: 'meta' };
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

/** Builds a state (and the mod revision of each key) from a consistent read of the prefix. */
export function decodeState(prefix: string, kvs: RawKv[], revision: number): CatalogState {
  const s = emptyState();
  s.revision = revision;
  for (const kv of kvs) {
    const k = parseKey(prefix, kv.key);
    if (k.type === 'meta') s.nextFwmark = decodeMeta(kv.key, kv.value).nextFwmark;
    else if (k.type === 'object') (s[COLLECTION[k.kind]] as Record<string, unknown>)[k.id] = parseJson(kv.key, kv.value);
  }
  return s;
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
