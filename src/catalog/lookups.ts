// Indexes over the committed catalog, so no lookup a write needs scans the whole state: names
// (case-insensitive), alias owners, tasks by service, addresses in use per network, services per
// network and published ports. Maintained from each applied change (O(change)); rebuilt only at
// open. Pure, no I/O; Txn (txn.ts) reads through it.
import type { AppliedChange, ObjectKind, ObjectTypes } from './changes.js';
import { COLLECTION, OBJECT_KINDS } from './changes.js';
import { type CatalogState, pool6 } from './model.js';

export type AnyObject = ObjectTypes[ObjectKind];
/** `kind:id`: which object holds an address or an alias. */
export type OwnerKey = string;
export const ownerKey = (kind: ObjectKind, id: string): OwnerKey => `${kind}:${id}`;
export const lc = (s: string): string => s.toLowerCase();

/**
 * The (pool, address) pairs an object holds: a service's VIPs, a task's or container's IPs. A pool
 * is a network's name, or pool6(name) for the IPv6 subnet of a dual-stack network.
 */
export function addressesOf(kind: ObjectKind, o: AnyObject): Array<[string, string]> {
  if (kind === 'service') {
    const out: Array<[string, string]> = [];
    for (const a of (o as ObjectTypes['service']).attachments) {
      if (a.vip) out.push([a.network, a.vip]);
      if (a.vip6) out.push([pool6(a.network), a.vip6]);
    }
    return out;
  }
  if (kind === 'task' || kind === 'container') {
    const t = o as ObjectTypes['task'];
    const out = Object.entries(t.addresses);
    if (t.addresses6) for (const [n, ip] of Object.entries(t.addresses6)) out.push([pool6(n), ip]);
    return out;
  }
  return [];
}

/** Aliases of a service or container: its own and its network aliases (one name may be both). */
export function aliasesOf(kind: ObjectKind, o: AnyObject): string[] {
  if (kind === 'service') {
    const s = o as ObjectTypes['service'];
    const perNet = s.attachments.flatMap((a) => a.aliases ?? []);
    return perNet.length ? [...s.aliases, ...perNet] : s.aliases;
  }
  if (kind === 'container') {
    const c = o as ObjectTypes['container'];
    return c.networkAliases ? [...c.aliases, ...Object.values(c.networkAliases).flat()] : c.aliases;
  }
  return [];
}

function addTo<K, V>(m: Map<K, Set<V>>, k: K, v: V): void {
  const s = m.get(k);
  if (s) s.add(v);
  else m.set(k, new Set([v]));
}

function removeFrom<K, V>(m: Map<K, Set<V>>, k: K, v: V): void {
  const s = m.get(k);
  if (!s) return;
  s.delete(v);
  if (s.size === 0) m.delete(k);
}

const portKey = (port: number, protocol: string): string => `${port}/${protocol}`;

export class CatalogIndex {
  private names = new Map<ObjectKind, Map<string, string>>(OBJECT_KINDS.map((k) => [k, new Map()]));
  private aliases = new Map<string, Set<OwnerKey>>();
  private tasks = new Map<string, Set<string>>(); // service -> task ids
  // network -> address -> the object holding it: a reference, not a "kind:id" key, which at
  // 100,000 tasks would be 100,000 strings of their own (~6 MB).
  private addrs = new Map<string, Map<string, AnyObject>>();
  private attached = new Map<string, Set<string>>(); // network -> services attached (vip or dnsrr)
  private containers = new Map<string, Set<string>>(); // network -> containers with an address on it
  private published = new Map<string, Set<string>>(); // "port/proto" -> services publishing it

  // Objects of the opening state not indexed yet: building the index of 100,000 tasks takes
  // ~0.4 s, so open() hands it out at once and builds in steps (step()), finishing at once
  // (ready()) when a lookup needs it first. Changes applied meanwhile stay correct: a step
  // indexes each object as it is in the state then, and indexing twice changes nothing.
  private pending: { state: Readonly<CatalogState>; queue: Array<[ObjectKind, string[]]> } | undefined;

  static of(state: Readonly<CatalogState>): CatalogIndex {
    const idx = CatalogIndex.building(state);
    idx.ready();
    return idx;
  }

  /** An index of `state` to be built by step() or ready(). */
  static building(state: Readonly<CatalogState>): CatalogIndex {
    const idx = new CatalogIndex();
    idx.pending = { state, queue: OBJECT_KINDS.map((k) => [k, Object.keys(state[COLLECTION[k]])]) };
    return idx;
  }

  /** Indexes up to `n` more objects of the opening state; true once the index is complete. */
  step(n: number): boolean {
    const p = this.pending;
    if (!p) return true;
    while (n > 0 && p.queue.length > 0) {
      const [kind, ids] = p.queue[0]!;
      const rec = p.state[COLLECTION[kind]] as Record<string, AnyObject>;
      while (n > 0 && ids.length > 0) {
        const id = ids.pop()!;
        const o = Object.hasOwn(rec, id) ? rec[id] : undefined;
        if (o) this.add(kind, id, o);
        n--;
      }
      if (ids.length === 0) p.queue.shift();
    }
    if (p.queue.length > 0) return false;
    this.pending = undefined;
    return true;
  }

  /** Completes the index now (lookups call this; a no-op once built). */
  ready(): this {
    if (this.pending) this.step(Infinity);
    return this;
  }

  apply(change: AppliedChange): void {
    for (const p of change.puts) {
      if (p.prev !== undefined) this.remove(p.kind, p.id, p.prev);
      this.add(p.kind, p.id, p.value);
    }
    for (const d of change.deletes) this.remove(d.kind, d.id, d.prev);
  }

  /** The id of the object of `kind` whose name is `name`, ignoring case. */
  idByName(kind: ObjectKind, name: string): string | undefined {
    return this.names.get(kind)!.get(lc(name));
  }

  aliasHolders(alias: string): ReadonlySet<OwnerKey> {
    return this.aliases.get(lc(alias)) ?? EMPTY;
  }

  taskIds(service: string): ReadonlySet<string> {
    return this.tasks.get(service) ?? EMPTY;
  }

  /** Addresses in use in a pool (a network, or pool6(network)): VIPs, task and container IPs, and who holds each. */
  addresses(network: string): ReadonlyMap<string, AnyObject> {
    return this.addrs.get(network) ?? EMPTY_MAP;
  }

  servicesOn(network: string): ReadonlySet<string> {
    return this.attached.get(network) ?? EMPTY;
  }

  containersOn(network: string): ReadonlySet<string> {
    return this.containers.get(network) ?? EMPTY;
  }

  publishers(port: number, protocol: string): ReadonlySet<string> {
    return this.published.get(portKey(port, protocol)) ?? EMPTY;
  }

  /** Every index as sorted data, to compare two indexes (tests). */
  dump(): unknown {
    const sets = <K>(m: Map<K, ReadonlySet<string>>) => [...m].map(([k, v]) => [k, [...v].sort()]).sort((a, b) => String(a[0]).localeCompare(String(b[0])));
    return {
      names: [...this.names].map(([k, m]) => [k, [...m].sort()]),
      aliases: sets(this.aliases),
      tasks: sets(this.tasks),
      addrs: [...this.addrs].map(([net, m]) => [net, [...m].map(([ip, o]) => `${ip} ${o.name}`).sort()]).sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
      attached: sets(this.attached),
      containers: sets(this.containers),
      published: sets(this.published),
    };
  }

  /** Indexes one object version (a transaction's overlay index keeps its own writes this way). */
  add(kind: ObjectKind, id: string, o: AnyObject): void {
    this.names.get(kind)!.set(lc(o.name), id);
    const owner = ownerKey(kind, id);
    for (const a of aliasesOf(kind, o)) addTo(this.aliases, lc(a), owner);
    for (const [net, ip] of addressesOf(kind, o)) {
      let m = this.addrs.get(net);
      if (!m) this.addrs.set(net, (m = new Map()));
      m.set(ip, o);
    }
    if (kind === 'task') addTo(this.tasks, (o as ObjectTypes['task']).service, id);
    else if (kind === 'container') for (const net of Object.keys((o as ObjectTypes['container']).addresses)) addTo(this.containers, net, id);
    else if (kind === 'service') {
      const svc = o as ObjectTypes['service'];
      for (const a of svc.attachments) addTo(this.attached, a.network, id);
      for (const p of svc.ports) if (p.published !== undefined) addTo(this.published, portKey(p.published, p.protocol), id);
    }
  }

  /** Forgets one object version indexed by add(). */
  remove(kind: ObjectKind, id: string, o: AnyObject): void {
    const names = this.names.get(kind)!;
    if (names.get(lc(o.name)) === id) names.delete(lc(o.name));
    const owner = ownerKey(kind, id);
    for (const a of aliasesOf(kind, o)) removeFrom(this.aliases, lc(a), owner);
    for (const [net, ip] of addressesOf(kind, o)) {
      const m = this.addrs.get(net);
      // The holder only if it is still this object: a change may hand the address on.
      if (m?.get(ip) === o) {
        m.delete(ip);
        if (m.size === 0) this.addrs.delete(net);
      }
    }
    if (kind === 'task') removeFrom(this.tasks, (o as ObjectTypes['task']).service, id);
    else if (kind === 'container') for (const net of Object.keys((o as ObjectTypes['container']).addresses)) removeFrom(this.containers, net, id);
    else if (kind === 'service') {
      const svc = o as ObjectTypes['service'];
      for (const a of svc.attachments) removeFrom(this.attached, a.network, id);
      for (const p of svc.ports) if (p.published !== undefined) removeFrom(this.published, portKey(p.published, p.protocol), id);
    }
  }
}

const EMPTY: ReadonlySet<never> = new Set();
const EMPTY_MAP: ReadonlyMap<string, AnyObject> = new Map<string, AnyObject>();
