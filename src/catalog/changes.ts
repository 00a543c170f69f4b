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
      if (kind !== 'task' || old === undefined || !sameBut(old as Task, value as Task, 'health')) healthOnly = false;
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

function sameBut(a: Task, b: Task, field: keyof Task): boolean {
  return JSON.stringify({ ...a, [field]: null }) === JSON.stringify({ ...b, [field]: null });
}

/** Applies `change` in place and returns the kinds of what changed (for 'change' subscribers). */
export function applyChange(s: CatalogState, change: Change): Set<ChangeKind> {
  const kinds = new Set<ChangeKind>();
  for (const p of change.puts) {
    const recs = records(s, p.kind);
    const old = recs[p.id];
    kinds.add(p.kind === 'task' && old !== undefined && sameBut(old as Task, p.value as Task, 'health') ? 'health' : p.kind);
    recs[p.id] = p.value;
  }
  for (const d of change.deletes) {
    const recs = records(s, d.kind);
    if (d.id in recs) {
      delete recs[d.id];
      kinds.add(d.kind);
    }
  }
  if (change.meta) s.nextFwmark = change.meta.nextFwmark;
  return kinds;
}
