// Catalog changes as data: which objects a mutation wrote or deleted. Pure functions: the diff
// between two states, and applying a change to a state. Stores commit changes; the catalog
// applies the ones the store delivers.
import type { CatalogState, Container, Network, Service, Task } from './model.js';

export type ChangeKind = 'network' | 'service' | 'task' | 'container' | 'health' | 'revert';

export interface ObjectTypes {
  network: Network;
  service: Service;
  task: Task;
  container: Container;
}
export type ObjectKind = keyof ObjectTypes;
export const OBJECT_KINDS: readonly ObjectKind[] = ['network', 'service', 'task', 'container'];

/** Where each kind lives in the state; ids are the record keys (names, or task ids). */
export const COLLECTION = { network: 'networks', service: 'services', task: 'tasks', container: 'containers' } as const;

export type ObjectPut = { [K in ObjectKind]: { kind: K; id: string; value: ObjectTypes[K] } }[ObjectKind];

export interface ObjectRef {
  kind: ObjectKind;
  id: string;
}

/** State that is not an object: counters. */
export interface Meta {
  nextFwmark: number;
}

export interface Change {
  puts: ObjectPut[];
  deletes: ObjectRef[];
  /** Set when the counters changed (and always, from a store, when it carries them). */
  meta?: Meta;
  /**
   * True unless the change only rewrites the health of existing tasks. A serial change was
   * validated against the whole catalog (names, addresses, references), so a store must
   * order it after every other serial change; health updates depend on nothing but their task.
   */
  serial: boolean;
}

export function emptyChange(): Change {
  return { puts: [], deletes: [], serial: false };
}

export function isEmptyChange(c: Change): boolean {
  return c.puts.length === 0 && c.deletes.length === 0 && c.meta === undefined;
}

function records(s: CatalogState, kind: ObjectKind): Record<string, ObjectTypes[ObjectKind]> {
  return s[COLLECTION[kind]] as Record<string, ObjectTypes[ObjectKind]>;
}

/** The change that turns `before` into `after`. */
export function diffStates(before: Readonly<CatalogState>, after: Readonly<CatalogState>): Change {
  const change = emptyChange();
  let healthOnly = true;
  for (const kind of OBJECT_KINDS) {
    const a = records(before, kind);
    const b = records(after, kind);
    for (const [id, value] of Object.entries(b)) {
      const old = a[id];
      if (old !== undefined && JSON.stringify(old) === JSON.stringify(value)) continue;
      change.puts.push({ kind, id, value } as ObjectPut);
      if (kind !== 'task' || old === undefined || !sameButHealth(old as Task, value as Task)) healthOnly = false;
    }
    for (const id of Object.keys(a)) {
      if (!(id in b)) {
        change.deletes.push({ kind, id });
        healthOnly = false;
      }
    }
  }
  if (before.nextFwmark !== after.nextFwmark) {
    change.meta = { nextFwmark: after.nextFwmark };
    healthOnly = false;
  }
  change.serial = !healthOnly;
  return change;
}

/** The two versions of a task differ in nothing but health (a checker's write, not a serial change). */
export function sameButHealth(a: Task, b: Task): boolean {
  return JSON.stringify({ ...a, health: null }) === JSON.stringify({ ...b, health: null });
}

/** A put as applied: `prev` is the object it replaced (undefined for a new object). */
export type AppliedPut = { [K in ObjectKind]: { kind: K; id: string; value: ObjectTypes[K]; prev: ObjectTypes[K] | undefined } }[ObjectKind];
/** A delete as applied: `prev` is the object it removed. */
export type AppliedDelete = { [K in ObjectKind]: { kind: K; id: string; prev: ObjectTypes[K] } }[ObjectKind];

/**
 * A committed change as every consumer sees it (kube-proxy's change tracker, as data): what
 * each touched object was and is now, so a consumer updates only what those objects feed.
 * Objects are never mutated once committed: `prev` and `value` stay valid to hold on to.
 * Deletes of objects that did not exist are left out.
 */
export interface AppliedChange {
  puts: AppliedPut[];
  deletes: AppliedDelete[];
  meta?: Meta;
  revision: number;
}

/**
 * Applies `change` in place; returns the kinds of what changed (for 'change' subscribers) and
 * the change with each object's previous value.
 */
export function applyChange(s: CatalogState, change: Change, revision = s.revision): { kinds: Set<ChangeKind>; applied: AppliedChange } {
  const kinds = new Set<ChangeKind>();
  const applied: AppliedChange = { puts: [], deletes: [], revision };
  for (const p of change.puts) {
    const recs = records(s, p.kind);
    const old = Object.hasOwn(recs, p.id) ? recs[p.id] : undefined;
    kinds.add(p.kind === 'task' && old !== undefined && sameButHealth(old as Task, p.value as Task) ? 'health' : p.kind);
    recs[p.id] = p.value;
    applied.puts.push({ ...p, prev: old } as AppliedPut);
  }
  for (const d of change.deletes) {
    const recs = records(s, d.kind);
    if (Object.hasOwn(recs, d.id)) {
      applied.deletes.push({ kind: d.kind, id: d.id, prev: recs[d.id] } as AppliedDelete);
      delete recs[d.id];
      kinds.add(d.kind);
    }
  }
  if (change.meta) {
    s.nextFwmark = change.meta.nextFwmark;
    applied.meta = change.meta;
  }
  return { kinds, applied };
}
