// The answer index: every internal name precomputed from the catalog, so a query is a map
// lookup plus a filter by the client's networks. Built whole at start-up (rebuild) and then
// kept current from catalog changes (apply) at a cost bounded by what each change touches,
// from its own mirror of the objects it derives from, so a worker thread can run it from
// deltas alone. Pure, no I/O.
import type { AppliedChange } from '../catalog/changes.js';
import type { CatalogState, Container, Network, Service, Task } from '../catalog/model.js';
import type { Rr, SoaData } from './encode.js';
import { addressesOn, allAddresses, servingTasks, subnetsOf, vipsOf } from '../catalog/model.js';
import { type Addr, type Prefix, contains, isLoopback, parseCidr, parseIp, parseReverseName, formatIp, unmapV4 } from '../net/ip.js';

export interface TtlOptions {
  vip: number;
  dnsrr: number;
  tasks: number;
  container: number;
  ptr: number;
}

export interface IndexOptions {
  /** Internal domain suffix, e.g. "vipdns.internal"; names may carry it or not. */
  suffix: string;
  ttl: TtlOptions;
  /** Loopback clients see every network (the operator's dig). */
  loopbackSeesAll: boolean;
  /** Clients outside every network see every network too (off: they see nothing internal). */
  othersSeeAll: boolean;
}

export const DEFAULT_TTL: TtlOptions = { vip: 60, dnsrr: 5, tasks: 5, container: 60, ptr: 60 };

interface SrvEntry {
  port: number;
  target: string; // fully qualified: "<svc|task>.<net>.<suffix>"
  ips: string[]; // glue: one address, or one per family (dual stack)
}

/**
 * What a key holds, as few objects as a key's usual content allows: one item alone (most keys:
 * a task's name, an address's PTR), or items of several, in unit order. Each item names the
 * unit (a service with its tasks, or a container) whose share it is, so a unit's share of a key
 * is the run of its items: found and replaced without a slice object or array per key
 * (measured at 10,000 services x 10 tasks: 91 MB for the index with them, 52 MB without).
 */
type Entry<T> = T | T[];

interface Owned {
  /** The unit whose share this item is (SERVICE_UNIT/CONTAINER_UNIT + id). */
  unit: string;
}

export interface Target extends Owned {
  network: string;
  v4: string[];
  v6: string[];
  srv?: SrvEntry[]; // set on "_name._proto.<svc>" entries only
  shuffle: boolean;
  ttl: number;
}

export interface PtrTarget extends Owned {
  network: string;
  /** The owner's own name: answered as "<name>.<network>[.<suffix>]" (kept apart: one string less per address). */
  name: string;
  ttl: number;
}

export type Record_ = Rr;

export type Resolution =
  /** shuffle: the order is random per answer (dnsrr, tasks.*); records are already shuffled once. */
  | { kind: 'answer'; records: Record_[]; additionals: Record_[]; shuffle: boolean }
  | { kind: 'nodata'; ttl: number }
  | { kind: 'nxdomain'; ttl: number }
  | { kind: 'external' };

const NEGATIVE_TTL = 5;

/** Where a name leads in the index (AnswerIndex.locate). */
export type Located =
  | { kind: 'apex' } // the domain itself
  | { kind: 'ptr'; name: string } // a reverse name
  | { kind: 'unknown'; key: string } // ours, not in the catalog: NXDOMAIN
  | { kind: 'external'; key: string } // not ours: forwarded
  | { kind: 'name'; key: string; targets: Target[]; onlyNetwork?: string };

/** A unit id of the index as the catalog object it stands for. */
export function unitObject(unit: string): { kind: 'service' | 'container'; id: string } {
  return { kind: unit[0] === SERVICE_UNIT ? 'service' : 'container', id: unit.slice(1) };
}

/** What an index update changed: index keys (see keysOf) and whether client scopes moved. */
export interface Touched {
  keys: string[];
  /** Networks were added, removed or re-addressed: every client's view may differ. */
  scopes: boolean;
}

/** The catalog as an audit reads it: the state, and one service's tasks without a scan. */
export interface CatalogView {
  state: Readonly<CatalogState>;
  tasksOf(service: string): readonly Task[];
}

/**
 * What the catalog holds for one owner of index entries (a service with its tasks, or a
 * container; see indexOwners): what auditOwner() compares with and repairOwner() adopts.
 * Plain data, so it can be posted to a DNS worker to repair its index the same way.
 */
export interface OwnerTruth {
  owner: string;
  service?: Service;
  tasks?: Task[];
  container?: Container;
  /** Keys (as keysOf() names them) the owner holds without listing them: dropped. */
  strays?: string[];
}

/** An index entry whose owner ('' for none) the catalog lacks or which it does not list. */
export interface StrayEntry {
  owner: string;
  key: string;
}

/** Every owner of index entries the catalog has: services, then containers. */
export function indexOwners(state: Readonly<CatalogState>): string[] {
  const out: string[] = [];
  for (const id of Object.keys(state.services)) out.push(SERVICE_UNIT + id);
  for (const id of Object.keys(state.containers)) out.push(CONTAINER_UNIT + id);
  return out;
}

/** The catalog's objects for one owner (indexOwners()). */
export function ownerTruth(owner: string, view: CatalogView): OwnerTruth {
  const id = owner.slice(1);
  if (owner[0] === SERVICE_UNIT) {
    const service = Object.hasOwn(view.state.services, id) ? view.state.services[id] : undefined;
    return { owner, service, tasks: service ? [...view.tasksOf(id)] : [] };
  }
  return { owner, container: Object.hasOwn(view.state.containers, id) ? view.state.containers[id] : undefined };
}

/** Owners a self-check repaired, and the networks if their scopes were wrong: what a DNS worker's index repairs too. */
export interface IndexRepair {
  owners: OwnerTruth[];
  networks?: Record<string, Network>;
}

/** A position in the index's keys for auditKeys(). */
export class KeyWalk {
  done = false;
  constructor(
    readonly structure: number,
    readonly names: Iterator<[string, Entry<Target>]>,
    readonly ptrs: Iterator<[string, Entry<PtrTarget>]>,
  ) {}
}

/** The outcome of verify(): how many keys differ from a full build, some of them, and the full build. */
export interface IndexCheck {
  mismatches: number;
  sample: string[];
  full: AnswerIndex;
}

/** Where a unit's share goes as it is computed. */
interface Sink {
  name(key: string, t: Target): void;
  ptr(ip: string, p: PtrTarget): void;
}

/** One unit's share on its own (apply, audit): compared with what the index holds, then swapped in. */
class Contribution implements Sink {
  readonly names = new Map<string, Target[]>();
  readonly ptrs = new Map<string, PtrTarget[]>();
  name(key: string, t: Target): void {
    push(this.names, key, t);
  }
  ptr(ip: string, p: PtrTarget): void {
    push(this.ptrs, ip, p);
  }
}

/**
 * A whole build (rebuild): each unit's share goes straight into the index's maps, one unit
 * after another, so a unit's run of a key is always the key's last one. Keys that several
 * units share are put in unit order at the end (a stable sort: each run keeps its order).
 */
class BulkSink implements Sink {
  private unit = '';
  private nameKeys: string[] = [];
  private ptrKeys: string[] = [];
  private readonly sharedNames = new Set<string>();
  private readonly sharedPtrs = new Set<string>();

  constructor(
    private readonly names: Map<string, Entry<Target>>,
    private readonly ptrs: Map<string, Entry<PtrTarget>>,
    private readonly unitKeys: Map<string, { names: string[]; ptrs: string[] }>,
  ) {}

  begin(unit: string): void {
    this.unit = unit;
    this.nameKeys = [];
    this.ptrKeys = [];
  }

  name(key: string, t: Target): void {
    appendItem(this.names, key, t, this.nameKeys, this.sharedNames);
  }

  ptr(ip: string, p: PtrTarget): void {
    appendItem(this.ptrs, ip, p, this.ptrKeys, this.sharedPtrs);
  }

  end(): void {
    if (this.nameKeys.length > 0 || this.ptrKeys.length > 0) this.unitKeys.set(this.unit, { names: this.nameKeys, ptrs: this.ptrKeys });
  }

  finish(): void {
    for (const k of this.sharedNames) (this.names.get(k) as Target[]).sort(byUnit);
    for (const k of this.sharedPtrs) (this.ptrs.get(k) as PtrTarget[]).sort(byUnit);
  }
}

/** Index keys of PTR entries: an address, in a namespace of its own. */
const PTR_KEY = '#';
/** What a client's view derives from: a task's or container's addresses. */
type ClientOwner = { addresses: Record<string, string>; addresses6?: Record<string, string>; clientAddresses?: string[] };
/** A journal key that says a client's own networks changed (the resolver recomputes its view). */
export const CLIENT_KEY = '@';
/**
 * A unit is a service (keyed by its record id, which is its name: tasks name their service)
 * or a container. Unit ids sort services before containers, each by name, and a service's
 * tasks go by id: a key's targets come in that order whatever order objects arrived in, so
 * an index kept by apply() and one built whole are equal, not merely equivalent.
 */
const SERVICE_UNIT = '1';
const CONTAINER_UNIT = '2';
/** The touched-keys journal resolvers read; one that falls further behind starts over. */
const JOURNAL_ENTRIES = 1024;
const JOURNAL_KEYS = 50_000;

export class AnswerIndex {
  private names = new Map<string, Entry<Target>>();
  private ptrs = new Map<string, Entry<PtrTarget>>();
  /** The keys each unit contributes to, so its old share can be found and replaced. */
  private unitKeys = new Map<string, { names: string[]; ptrs: string[] }>();
  private networkNames = new Set<string>();
  private prefixes: Array<{ name: string; subnet: string; prefix: Prefix; ingress: boolean }> = [];
  // The mirror: the catalog objects the index derives from, fed only by rebuild and apply.
  private networks = new Map<string, Network>();
  private services = new Map<string, Service>();
  // Tasks only by service: a change names a task's service in `prev`, and one map of 100,000
  // tasks by id would cost a whole build ~10%.
  private tasksBySvc = new Map<string, Map<string, Task>>();
  private containers = new Map<string, Container>();
  /**
   * Every address of a task or container on two or more networks, and every client address (its
   * container's addresses on no network of ours, e.g. docker_gwbridge) → all of its networks: a
   * client sees every network its container is on, whichever address it asks from (as in Docker).
   */
  private owners = new Map<string, string[]>();
  /** Addresses whose owner entry changed during the current apply. */
  private ownerTouched: string[] = [];
  /** Touched keys per generation (undefined: everything), oldest first. */
  private journal: Array<{ generation: number; keys: string[] | undefined }> = [];
  private journalKeys = 0;
  private suffix: string;
  /** ".<suffix>" (or ""): PTR and SRV targets are fully qualified, so any resolver can follow them back. */
  private dotSuffix: string;
  private opts: IndexOptions;
  /** Bumped when the maps are replaced whole (rebuild, replaceWith): a key walk over the old ones stops. */
  private structure = 0;
  revision = -1;
  /** Bumped on every update: resolvers compare it to learn that keys changed (touchedSince). */
  generation = 0;

  constructor(opts: IndexOptions) {
    this.opts = opts;
    this.suffix = opts.suffix.toLowerCase().replace(/^\.+|\.+$/g, '');
    this.dotSuffix = this.suffix ? `.${this.suffix}` : '';
  }

  get size(): number {
    return this.names.size;
  }

  /** Names and PTR addresses: what a key walk goes through. */
  get keyCount(): number {
    return this.names.size + this.ptrs.size;
  }

  /** Replaces everything with what `state` derives (start-up, resync). */
  rebuild(state: Readonly<CatalogState>): void {
    this.networks = mapOf(state.networks);
    this.services = mapOf(state.services);
    this.tasksBySvc = new Map();
    this.owners = new Map();
    const tasks = state.tasks;
    for (const id of Object.keys(tasks)) this.putTask(id, tasks[id]!);
    this.containers = mapOf(state.containers);
    for (const c of this.containers.values()) this.own(c);
    this.names = new Map();
    this.ptrs = new Map();
    this.unitKeys = new Map();
    // Shares go straight into the maps: no per-unit maps, no compare with a previous share.
    const sink = new BulkSink(this.names, this.ptrs, this.unitKeys);
    for (const [id, svc] of this.services) {
      const unit = SERVICE_UNIT + id;
      sink.begin(unit);
      this.serviceShare(unit, svc, this.sortedTasks(id), sink);
      sink.end();
    }
    for (const [id, c] of this.containers) {
      const unit = CONTAINER_UNIT + id;
      sink.begin(unit);
      this.containerShare(unit, c, sink);
      sink.end();
    }
    sink.finish();
    this.ownerTouched = []; // a rebuild is news for everything anyway
    this.rescope();
    this.revision = state.revision;
    this.structure++;
    this.record(undefined);
  }

  /**
   * Applies one committed change: recomputes only the units it touches (a service with its
   * tasks, a container) and the scopes when networks come, go or change subnet. Returns the
   * keys whose answers changed.
   */
  apply(change: AppliedChange): Touched {
    const dirty = new Set<string>();
    let scopes = false;
    for (const p of change.puts) {
      switch (p.kind) {
        case 'network': {
          const old = this.networks.get(p.id);
          this.networks.set(p.id, p.value);
          // A put that only moved the IPAM cursor changes nothing we derive.
          if (!old || old.subnet !== p.value.subnet || old.subnet6 !== p.value.subnet6 || old.name !== p.value.name || old.ingress !== p.value.ingress) scopes = true;
          break;
        }
        case 'service':
          this.services.set(p.id, p.value);
          dirty.add(SERVICE_UNIT + p.id);
          break;
        case 'task': {
          const old = this.dropTask(p.id, p.prev?.service);
          if (old) dirty.add(SERVICE_UNIT + old.service);
          this.putTask(p.id, p.value);
          dirty.add(SERVICE_UNIT + p.value.service);
          break;
        }
        case 'container':
          this.unown(this.containers.get(p.id));
          this.containers.set(p.id, p.value);
          this.own(p.value);
          dirty.add(CONTAINER_UNIT + p.id);
          break;
      }
    }
    for (const d of change.deletes) {
      switch (d.kind) {
        case 'network':
          if (this.networks.delete(d.id)) scopes = true;
          break;
        case 'service':
          this.services.delete(d.id);
          dirty.add(SERVICE_UNIT + d.id);
          break;
        case 'task': {
          const old = this.dropTask(d.id, d.prev.service);
          if (old) dirty.add(SERVICE_UNIT + old.service);
          break;
        }
        case 'container':
          this.unown(this.containers.get(d.id));
          this.containers.delete(d.id);
          dirty.add(CONTAINER_UNIT + d.id);
          break;
      }
    }
    const keys: string[] = [];
    for (const ip of this.ownerTouched) keys.push(CLIENT_KEY + ip);
    this.ownerTouched = [];
    for (const unit of dirty) this.install(unit, keys);
    if (scopes) this.rescope();
    this.revision = change.revision;
    this.record(scopes ? undefined : keys);
    return { keys, scopes };
  }

  /**
   * The keys touched since `generation`, or 'all' when scopes changed, the index was rebuilt,
   * or the journal no longer reaches that far back.
   */
  touchedSince(generation: number): string[] | 'all' {
    if (generation === this.generation) return [];
    const first = this.journal[0];
    if (!first || generation < first.generation - 1 || generation > this.generation) return 'all';
    const out: string[] = [];
    for (const e of this.journal) {
      if (e.generation <= generation) continue;
      if (!e.keys) return 'all';
      for (const k of e.keys) out.push(k);
    }
    return out;
  }

  /**
   * The index keys an answer to `qname` derives from: a cached answer is stale once an update
   * touches one of them. Mirrors resolve()'s reading of the name; for "<x>.<last>" it names
   * `x` too (the answer when <last> is a network), whether or not <last> is one today.
   */
  keysOf(qname: string): string[] {
    const s = this.strip(qname);
    if (!s) return [];
    if (!s.internal && (s.name.endsWith('.in-addr.arpa') || s.name.endsWith('.ip6.arpa'))) {
      const addr = parseReverseName(s.name);
      return addr ? [PTR_KEY + formatIp(addr)] : [];
    }
    const dot = s.name.lastIndexOf('.');
    return dot > 0 ? [s.name, s.name.slice(0, dot)] : [s.name];
  }

  /** Builds a full index from `state` and compares: the periodic self-check of apply(). */
  verify(state: Readonly<CatalogState>, sampleSize = 10): IndexCheck {
    const full = new AnswerIndex(this.opts);
    full.rebuild(state);
    const sample: string[] = [];
    const mismatches = this.diff(full, (k) => void (sample.length < sampleSize && sample.push(k)));
    return { mismatches, sample, full };
  }

  /** A walk over every key of the index for auditKeys(), a few at a time; it ends early if the index is rebuilt. */
  keyWalk(): KeyWalk {
    return new KeyWalk(this.structure, this.names.entries(), this.ptrs.entries());
  }

  /**
   * Compares what the index holds for one owner with what the catalog's `truth` derives for
   * it: the keys that differ (answers, or the owner's list of its keys), and whether the
   * mirror holds other objects than the catalog (compared by reference: committed objects
   * are never copied on the main thread). Costs one owner's share, like apply().
   */
  auditOwner(truth: OwnerTruth): { keys: string[]; mirror: boolean } {
    const unit = truth.owner;
    const fresh = this.share(truth);
    const keys: string[] = [];
    const held = this.unitKeys.get(unit);
    const heldNames = new Set(held?.names);
    const heldPtrs = new Set(held?.ptrs);
    for (const k of heldNames) if (!fresh.names.has(k) && hasRun(this.names.get(k), unit)) keys.push(k);
    for (const ip of heldPtrs) if (!fresh.ptrs.has(ip) && hasRun(this.ptrs.get(ip), unit)) keys.push(PTR_KEY + ip);
    for (const [k, items] of fresh.names) {
      if (!heldNames.has(k) || !sameList(runOf(this.names.get(k), unit), items, sameTarget)) keys.push(k);
    }
    for (const [ip, items] of fresh.ptrs) {
      if (!heldPtrs.has(ip) || !sameList(runOf(this.ptrs.get(ip), unit), items, samePtr)) keys.push(PTR_KEY + ip);
    }
    return { keys, mirror: !this.mirrors(truth) };
  }

  /**
   * Checks up to `max` entries (one entry: one owner's run of a key) of a walk: each must
   * belong to an owner the catalog has and that lists the key (auditOwner() checks the rest:
   * that what it lists is right). Entries of no owner at all are dropped on the spot.
   */
  auditKeys(walk: KeyWalk, max: number, state: Readonly<CatalogState>): { checked: number; strays: StrayEntry[] } {
    const strays: StrayEntry[] = [];
    let checked = 0;
    if (walk.structure !== this.structure) walk.done = true;
    while (!walk.done && checked < max) {
      let ptr = false;
      let r: IteratorResult<[string, Entry<Target | PtrTarget>]> = walk.names.next();
      if (r.done) {
        ptr = true;
        r = walk.ptrs.next();
      }
      if (r.done) {
        walk.done = true;
        break;
      }
      const [k, entry] = r.value;
      const key = ptr ? PTR_KEY + k : k;
      const units = [...new Set(listOf(entry).map((x) => x.unit))];
      checked++;
      if (units.length === 0) {
        (ptr ? this.ptrs : this.names).delete(k);
        strays.push({ owner: '', key });
        this.record([key]);
        continue;
      }
      checked += units.length - 1;
      for (const unit of units) {
        const id = unit.slice(1);
        const exists = unit[0] === SERVICE_UNIT ? Object.hasOwn(state.services, id) : Object.hasOwn(state.containers, id);
        const held = this.unitKeys.get(unit);
        if (!exists || !held || !(ptr ? held.ptrs : held.names).includes(k)) strays.push({ owner: unit, key });
      }
    }
    return { checked, strays };
  }

  /**
   * Makes one owner what the catalog says: its objects in the mirror, then its share,
   * dropping `truth.strays`.
   * Returns the keys whose answers changed; resolvers hear of them as of any update.
   */
  repairOwner(truth: OwnerTruth): string[] {
    const unit = truth.owner;
    const id = unit.slice(1);
    const touched: string[] = [];
    if (unit[0] === SERVICE_UNIT) {
      if (truth.service) this.services.set(id, truth.service);
      else this.services.delete(id);
      // A task filed under another service in the mirror shows there as an answer that
      // service should not give: its own audit repairs it.
      for (const t of this.tasksBySvc.get(id)?.values() ?? []) this.unown(t);
      this.tasksBySvc.delete(id);
      for (const t of truth.tasks ?? []) this.putTask(t.id, t);
    } else {
      this.unown(this.containers.get(id));
      if (truth.container) {
        this.containers.set(id, truth.container);
        this.own(truth.container);
      } else this.containers.delete(id);
    }
    for (const ip of this.ownerTouched) touched.push(CLIENT_KEY + ip);
    this.ownerTouched = [];
    for (const k of truth.strays ?? []) {
      const dropped = k.startsWith(PTR_KEY) ? dropRun(this.ptrs, k.slice(PTR_KEY.length), unit) : dropRun(this.names, k, unit);
      if (dropped) touched.push(k);
    }
    this.install(unit, touched);
    this.record(touched);
    return touched;
  }

  /** Compares the networks the index scopes clients by with the catalog's. */
  auditScopes(networks: Readonly<Record<string, Network>>): string[] {
    const want = new Set(Object.values(networks).flatMap((n) => subnetsOf(n).map((sn) => `${n.name} ${sn}`)));
    const have = this.scopeLines();
    const out: string[] = [];
    for (const l of new Set([...want, ...have])) if (!want.has(l) || !have.has(l)) out.push(`network ${l}`);
    return out;
  }

  /** Takes the catalog's networks (few): every client's view may change. */
  repairScopes(networks: Readonly<Record<string, Network>>): void {
    this.networks = mapOf(networks);
    this.rescope();
    this.record(undefined);
  }

  /** Repairs what a self-check repaired elsewhere (a DNS worker after the main thread's check). */
  applyRepair(repair: IndexRepair): void {
    if (repair.networks) this.repairScopes(repair.networks);
    for (const o of repair.owners) this.repairOwner(o);
  }

  /** A unit's share computed from the catalog's objects rather than the mirror. */
  private share(truth: OwnerTruth): Contribution {
    const fresh = new Contribution();
    if (truth.owner[0] === SERVICE_UNIT) {
      if (truth.service) this.serviceShare(truth.owner, truth.service, byTaskId(truth.tasks ?? []), fresh);
    } else if (truth.container) this.containerShare(truth.owner, truth.container, fresh);
    return fresh;
  }

  /** True when the mirror holds exactly the owner's objects of `truth`. */
  private mirrors(truth: OwnerTruth): boolean {
    const id = truth.owner.slice(1);
    if (truth.owner[0] !== SERVICE_UNIT) return this.containers.get(id) === truth.container;
    if (this.services.get(id) !== truth.service) return false;
    const mine = this.tasksBySvc.get(id);
    const want = truth.tasks ?? [];
    if ((mine?.size ?? 0) !== want.length) return false;
    return want.every((t) => mine!.get(t.id) === t);
  }

  /** Takes over the content of `full` (from verify; not to be used afterwards). */
  replaceWith(full: AnswerIndex): void {
    this.names = full.names;
    this.ptrs = full.ptrs;
    this.unitKeys = full.unitKeys;
    this.networkNames = full.networkNames;
    this.prefixes = full.prefixes;
    this.networks = full.networks;
    this.services = full.services;
    this.tasksBySvc = full.tasksBySvc;
    this.containers = full.containers;
    this.revision = full.revision;
    this.structure++;
    this.record(undefined);
  }

  /** True when both answer every question alike (the mirror and revision aside). */
  equals(other: AnswerIndex): boolean {
    return this.diff(other) === 0;
  }

  /** Counts the keys (and networks) whose content differs; `report` hears each one. */
  diff(other: AnswerIndex, report?: (what: string) => void): number {
    let n = 0;
    const miss = (what: string): void => {
      n++;
      report?.(what);
    };
    for (const k of new Set([...this.names.keys(), ...other.names.keys()])) {
      if (!sameList(listOf(this.names.get(k)), listOf(other.names.get(k)), sameTarget)) miss(`name ${k}`);
    }
    for (const k of new Set([...this.ptrs.keys(), ...other.ptrs.keys()])) {
      if (!sameList(listOf(this.ptrs.get(k)), listOf(other.ptrs.get(k)), samePtr)) miss(`ptr ${k}`);
    }
    const a = this.scopeLines();
    const b = other.scopeLines();
    for (const l of new Set([...a, ...b])) if (!a.has(l) || !b.has(l)) miss(`network ${l}`);
    return n;
  }

  /** A canonical, JSON-able picture of the answers: equal dumps, equal answers. */
  dump(): { names: Record<string, Target[]>; ptrs: Record<string, PtrTarget[]>; networks: string[] } {
    const names: Record<string, Target[]> = {};
    for (const k of [...this.names.keys()].sort()) names[k] = listOf(this.names.get(k));
    const ptrs: Record<string, PtrTarget[]> = {};
    for (const k of [...this.ptrs.keys()].sort()) ptrs[k] = listOf(this.ptrs.get(k));
    return { names, ptrs, networks: [...this.scopeLines()].sort() };
  }

  private scopeLines(): Set<string> {
    return new Set(this.prefixes.map((p) => `${p.name} ${p.subnet}`));
  }

  private putTask(id: string, t: Task): void {
    let m = this.tasksBySvc.get(t.service);
    if (!m) this.tasksBySvc.set(t.service, (m = new Map()));
    m.set(id, t);
    this.own(t);
  }

  /**
   * Records an object's networks under each address a client may ask from: its addresses when it
   * is on two or more networks, and its client addresses (on no network of ours) always.
   */
  private own(o: ClientOwner | undefined): void {
    this.ownership(o, true);
  }

  private unown(o: ClientOwner | undefined): void {
    this.ownership(o, false);
  }

  private ownership(o: ClientOwner | undefined, held: boolean): void {
    if (!o) return;
    const nets = Object.keys(o.addresses);
    const extra = o.clientAddresses ?? [];
    if (nets.length === 0 || (nets.length < 2 && extra.length === 0)) return; // one network: its subnet already says it
    // Both families of a dual-stack object: a client may ask from either.
    const ips = nets.length >= 2 ? [...allAddresses(o), ...extra] : extra;
    for (const ip of ips) {
      if (held) this.owners.set(ip, nets);
      else if (!this.owners.delete(ip)) continue;
      this.ownerTouched.push(ip);
    }
  }

  private dropTask(id: string, service: string | undefined): Task | undefined {
    const m = service === undefined ? undefined : this.tasksBySvc.get(service);
    const t = m?.get(id);
    if (!t) return undefined;
    m!.delete(id);
    if (m!.size === 0) this.tasksBySvc.delete(service!);
    this.unown(t);
    return t;
  }

  /** Recomputes one unit's share of the index from the mirror and swaps it in, noting keys whose answers moved. */
  private install(unit: string, touched: string[] | undefined): void {
    const fresh = new Contribution();
    const id = unit.slice(1);
    if (unit[0] === SERVICE_UNIT) {
      const svc = this.services.get(id);
      if (svc) this.serviceShare(unit, svc, this.sortedTasks(id), fresh);
    } else {
      const c = this.containers.get(id);
      if (c) this.containerShare(unit, c, fresh);
    }
    const old = this.unitKeys.get(unit);
    if (old) {
      for (const k of old.names) if (!fresh.names.has(k) && dropRun(this.names, k, unit)) touched?.push(k);
      for (const ip of old.ptrs) if (!fresh.ptrs.has(ip) && dropRun(this.ptrs, ip, unit)) touched?.push(PTR_KEY + ip);
    }
    for (const [k, items] of fresh.names) if (putRun(this.names, k, unit, items, sameTarget)) touched?.push(k);
    for (const [ip, items] of fresh.ptrs) if (putRun(this.ptrs, ip, unit, items, samePtr)) touched?.push(PTR_KEY + ip);
    if (fresh.names.size === 0 && fresh.ptrs.size === 0) this.unitKeys.delete(unit);
    else this.unitKeys.set(unit, { names: [...fresh.names.keys()], ptrs: [...fresh.ptrs.keys()] });
  }

  /** A service's tasks from the mirror, in id order: a canonical order whatever order they came in. */
  private sortedTasks(service: string): Task[] {
    const byId = this.tasksBySvc.get(service);
    if (!byId) return [];
    const ids = [...byId.keys()].sort();
    return ids.map((id) => byId.get(id)!);
  }

  /** A service's names, SRV names, VIP PTRs and its tasks' names and PTRs; `tasks` in id order. */
  private serviceShare(unit: string, svc: Service, tasks: readonly Task[], out: Sink): void {
    const ttl = this.opts.ttl;
    const dotSuffix = this.dotSuffix;
    const svcName = svc.name.toLowerCase();
    const aliases = svc.aliases.map((al) => al.toLowerCase());
    const serving = servingTasks(tasks as Task[]);
    const isVip = svc.endpointMode === 'vip';
    for (const a of svc.attachments) {
      const net = a.network;
      // The ingress network carries published ports only: nothing on it has a name (as in Docker).
      if (this.networks.get(net)?.ingress) continue;
      const ips: string[] = [];
      for (const t of serving) {
        const ip = t.addresses[net];
        if (ip) ips.push(ip);
        const ip6 = t.addresses6?.[net];
        if (ip6) ips.push(ip6);
      }
      const taskTarget = target(unit, net, ips, true, ttl.tasks);
      out.name(`tasks.${svcName}`, taskTarget);
      const vips = vipsOf(a);
      const main = isVip && vips.length ? target(unit, net, vips, false, ttl.vip) : target(unit, net, ips, true, ttl.dnsrr);
      out.name(svcName, main);
      const named = a.aliases ? [...aliases, ...a.aliases.map((al) => al.toLowerCase())] : aliases;
      for (const al of named) {
        out.name(al, main);
        out.name(`tasks.${al}`, taskTarget);
      }
      for (const vip of vips) out.ptr(vip, { unit, network: net, name: svc.name, ttl: ttl.ptr });
      // SRV for named ports: the VIP's name (vip mode) or every serving task (dnsrr).
      for (const p of svc.ports) {
        if (!p.name) continue;
        const srv: SrvEntry[] = [];
        if (isVip && vips.length) srv.push({ port: p.target, target: `${svc.name}.${net}${dotSuffix}`, ips: vips });
        else {
          for (const t of serving) {
            const own = addressesOn(t, net);
            if (own.length) srv.push({ port: p.target, target: `${t.name}.${net}${dotSuffix}`, ips: own });
          }
        }
        const st: Target = { unit, network: net, v4: EMPTY, v6: EMPTY, srv, shuffle: !isVip, ttl: main.ttl };
        const suffix = `._${p.protocol.toLowerCase()}.`;
        out.name(`_${p.name.toLowerCase()}${suffix}${svcName}`, st);
        for (const al of named) out.name(`_${p.name.toLowerCase()}${suffix}${al}`, st);
      }
      for (const t of tasks) {
        const own = addressesOn(t, net);
        if (!own.length) continue;
        out.name(t.name.toLowerCase(), target(unit, net, own, false, ttl.tasks));
        for (const ip of own) out.ptr(ip, { unit, network: net, name: t.name, ttl: ttl.ptr });
      }
    }
  }

  private containerShare(unit: string, c: Container, out: Sink): void {
    const name = c.name.toLowerCase();
    for (const network of Object.keys(c.addresses)) {
      const own = addressesOn(c, network);
      const t = target(unit, network, own, false, this.opts.ttl.container);
      out.name(name, t);
      for (const al of c.aliases) out.name(al.toLowerCase(), t);
      for (const al of c.networkAliases?.[network] ?? []) out.name(al.toLowerCase(), t);
      for (const ip of own) out.ptr(ip, { unit, network, name: c.name, ttl: this.opts.ttl.ptr });
    }
  }

  /** Networks are few: their names and prefixes are recomputed whole when one changes. */
  private rescope(): void {
    const nets = [...this.networks.values()];
    this.networkNames = new Set(nets.map((n) => n.name.toLowerCase()));
    this.prefixes = nets.flatMap((n) => subnetsOf(n).map((subnet) => ({ name: n.name, subnet, prefix: parseCidr(subnet), ingress: n.ingress === true })));
  }

  private record(keys: string[] | undefined): void {
    this.generation++;
    this.journal.push({ generation: this.generation, keys });
    this.journalKeys += keys?.length ?? 0;
    while (this.journal.length > JOURNAL_ENTRIES || (this.journalKeys > JOURNAL_KEYS && this.journal.length > 1)) {
      this.journalKeys -= this.journal.shift()!.keys?.length ?? 0;
    }
  }

  /** The name resolve() looks up: lower case, no trailing dot or suffix; undefined for the suffix itself. */
  private strip(qname: string): { name: string; internal: boolean } | undefined {
    let name = qname.toLowerCase();
    if (name.endsWith('.')) name = name.slice(0, -1);
    if (this.suffix !== '') {
      if (name === this.suffix) return undefined;
      if (name.endsWith(`.${this.suffix}`)) return { name: name.slice(0, -this.suffix.length - 1), internal: true };
    }
    return { name, internal: false };
  }

  /** The SOA serial: the catalog revision the index reflects. */
  get serial(): number {
    return Math.max(0, this.revision) >>> 0;
  }

  /** The SOA that goes with negative answers (RFC 2308: its minimum caps negative caching). */
  soa(ttl: number): Rr | undefined {
    if (this.suffix === '') return undefined;
    const data: SoaData = { mname: `ns.${this.suffix}`, rname: `hostmaster.${this.suffix}`, serial: this.serial, refresh: 3600, retry: 600, expire: 86400, minimum: ttl };
    return { name: this.suffix, type: 'SOA', ttl, data };
  }

  /** A stable key for what a client can see: answers are equal for equal keys. */
  scopeKey(client: Addr): string {
    const v = this.visibility(client);
    return v === 'all' ? '*' : [...v].sort().join(',');
  }

  /** The client's network for metrics: its network's name, 'loopback', 'multiple' or 'none'. */
  networkLabel(client: Addr): string {
    const a = unmapV4(client);
    if (isLoopback(a)) return 'loopback';
    const nets = this.prefixes.filter((p) => !p.ingress && contains(p.prefix, a));
    return nets.length === 1 ? nets[0]!.name : nets.length > 1 ? 'multiple' : 'none';
  }

  /** The networks a client may see: 'all', or the names of networks whose subnet holds its address. */
  visibility(client: Addr): 'all' | Set<string> {
    const a = unmapV4(client);
    if (isLoopback(a) && this.opts.loopbackSeesAll) return 'all';
    const nets = new Set<string>();
    // An address on the ingress network gives no view: nothing on it is answered.
    for (const p of this.prefixes) if (!p.ingress && contains(p.prefix, a)) nets.add(p.name);
    // A task or container on several networks sees all of them, from any of its addresses.
    if (this.owners.size > 0) for (const n of this.owners.get(formatIp(a)) ?? []) nets.add(n);
    if (nets.size === 0 && this.opts.othersSeeAll) return 'all';
    return nets;
  }

  /** True when the client lies inside a known network (or on loopback): such clients may recurse. */
  isKnownClient(client: Addr): boolean {
    const a = unmapV4(client);
    return isLoopback(a) || this.prefixes.some((p) => contains(p.prefix, a));
  }

  /**
   * Which index entries a name reaches, before the client's visibility filters them: what resolve()
   * answers from, and what `vipdns explain` shows. `onlyNetwork`: the name asked for one network.
   */
  locate(qname: string): Located {
    const s = this.strip(qname);
    if (!s) return { kind: 'apex' };
    const name = s.name;
    let internal = s.internal;
    if (!internal && (name.endsWith('.in-addr.arpa') || name.endsWith('.ip6.arpa'))) return { kind: 'ptr', name };
    let key = name;
    let targets = this.lookup(name);
    let onlyNetwork: string | undefined;
    const dot = name.lastIndexOf('.');
    if (!targets && dot > 0 && this.networkNames.has(name.slice(dot + 1))) {
      onlyNetwork = name.slice(dot + 1);
      key = name.slice(0, dot);
      targets = this.lookup(key);
      internal = true;
    }
    if (!targets) {
      // Ours to deny: under our domain or a network, single-label, tasks.* and _srv names.
      const ours = internal || dot < 0 || name.startsWith('tasks.') || name.startsWith('_');
      return { kind: ours ? 'unknown' : 'external', key };
    }
    return onlyNetwork === undefined ? { kind: 'name', key, targets } : { kind: 'name', key, targets, onlyNetwork };
  }

  /** PTR entries of an address (explain), whatever the client sees. */
  ptrTargets(ip: string): PtrTarget[] {
    const e = this.ptrs.get(ip);
    return e === undefined ? [] : listOf(e);
  }

  /** Whether an address lies in one of our networks' subnets (then its PTR is ours to deny). */
  inOurNetworks(addr: Addr): boolean {
    return this.prefixes.some((p) => contains(p.prefix, addr));
  }

  resolve(qname: string, qtype: string, client: Addr): Resolution {
    const loc = this.locate(qname);
    if (loc.kind === 'apex') return { kind: 'nodata', ttl: NEGATIVE_TTL };
    if (loc.kind === 'ptr') return this.resolvePtr(loc.name, qtype, client);
    if (loc.kind === 'unknown') return { kind: 'nxdomain', ttl: NEGATIVE_TTL };
    if (loc.kind === 'external') return { kind: 'external' };
    const { targets, onlyNetwork } = loc;
    const vis = this.visibility(client);
    const visible = targets.filter(
      (t) => (onlyNetwork === undefined || t.network.toLowerCase() === onlyNetwork) && (vis === 'all' || vis.has(t.network)),
    );
    if (visible.length === 0) return { kind: 'nxdomain', ttl: NEGATIVE_TTL };

    const wantA = qtype === 'A' || qtype === 'ANY';
    const wantAAAA = qtype === 'AAAA' || qtype === 'ANY';
    const wantSrv = qtype === 'SRV' || qtype === 'ANY';
    const records: Record_[] = [];
    const additionals: Record_[] = [];
    const seen = new Set<string>();
    let shuffle = false;
    let ttl = Infinity;
    for (const t of visible) {
      ttl = Math.min(ttl, t.ttl);
      shuffle ||= t.shuffle;
      const push = (type: 'A' | 'AAAA', ip: string): void => {
        if (seen.has(ip)) return;
        seen.add(ip);
        records.push({ type, ttl: t.ttl, data: ip });
      };
      if (wantA) for (const ip of t.v4) push('A', ip);
      if (wantAAAA) for (const ip of t.v6) push('AAAA', ip);
      if (wantSrv && t.srv) {
        for (const e of t.srv) {
          const k = `${e.port} ${e.target}`;
          if (seen.has(k)) continue;
          seen.add(k);
          records.push({ type: 'SRV', ttl: t.ttl, data: { priority: 0, weight: 10, port: e.port, target: e.target } });
          // Glue, so the client needs no second lookup.
          for (const ip of e.ips) additionals.push({ name: e.target, type: ip.includes(':') ? 'AAAA' : 'A', ttl: t.ttl, data: ip });
        }
      }
    }
    if (records.length === 0) return { kind: 'nodata', ttl: Math.min(ttl, NEGATIVE_TTL) };
    if (shuffle) shuffleInPlace(records);
    return { kind: 'answer', records, additionals, shuffle };
  }

  private lookup(key: string): Target[] | undefined {
    const e = this.names.get(key);
    return e === undefined ? undefined : Array.isArray(e) ? e : [e];
  }

  private resolvePtr(name: string, qtype: string, client: Addr): Resolution {
    const addr = parseReverseName(name);
    if (!addr) {
      // A partial reverse name inside one of our subnets is ours to deny; anything else is not.
      return { kind: 'external' };
    }
    const ip = formatIp(addr);
    const inOurs = this.prefixes.some((p) => contains(p.prefix, addr));
    const e = this.ptrs.get(ip);
    const list = e === undefined ? undefined : listOf(e);
    if (!list) return inOurs ? { kind: 'nxdomain', ttl: NEGATIVE_TTL } : { kind: 'external' };
    const vis = this.visibility(client);
    const visible = list.filter((p) => vis === 'all' || vis.has(p.network));
    if (visible.length === 0) return { kind: 'nxdomain', ttl: NEGATIVE_TTL };
    if (qtype !== 'PTR' && qtype !== 'ANY') return { kind: 'nodata', ttl: NEGATIVE_TTL };
    return { kind: 'answer', records: visible.map((p) => ({ type: 'PTR', ttl: p.ttl, data: `${p.name}.${p.network}${this.dotSuffix}` })), additionals: [], shuffle: false };
  }
}

function shuffleInPlace<T>(a: T[]): void {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
}

function push<T>(m: Map<string, T[]>, k: string, v: T): void {
  const l = m.get(k);
  if (l) l.push(v);
  else m.set(k, [v]);
}

/** Shared by every target without addresses of a family: never written to. */
const EMPTY: string[] = [];

/** A target for `ips`, split by family; the common single-family list is used as it is. */
function target(unit: string, network: string, ips: string[], shuffle: boolean, ttl: number): Target {
  let v6 = 0;
  for (const ip of ips) if (ip.includes(':')) v6++;
  if (v6 === 0) return { unit, network, v4: ips.length > 0 ? ips : EMPTY, v6: EMPTY, shuffle, ttl };
  if (v6 === ips.length) return { unit, network, v4: EMPTY, v6: ips, shuffle, ttl };
  return { unit, network, v4: ips.filter((ip) => !ip.includes(':')), v6: ips.filter((ip) => ip.includes(':')), shuffle, ttl };
}

function mapOf<T>(rec: Readonly<Record<string, T>>): Map<string, T> {
  const m = new Map<string, T>();
  for (const k of Object.keys(rec)) m.set(k, rec[k]!);
  return m;
}

const byUnit = (a: { unit: string }, b: { unit: string }): number => (a.unit < b.unit ? -1 : a.unit > b.unit ? 1 : 0);

/**
 * Appends `v` to a key in a whole build, where the unit building (v's) is always the key's
 * last run; a key that gets a second unit is noted in `shared` to be put in unit order.
 */
function appendItem<T extends Owned>(m: Map<string, Entry<T>>, k: string, v: T, keys: string[], shared: Set<string>): void {
  const e = m.get(k);
  if (e === undefined) {
    m.set(k, v);
    keys.push(k);
    return;
  }
  const list = Array.isArray(e) ? e : [e];
  if (list !== e) m.set(k, list);
  if (list[list.length - 1]!.unit !== v.unit) {
    keys.push(k);
    shared.add(k);
  }
  list.push(v);
}

/** A key's items as a list (a new one-item list for a lone item: not for the query path). */
function listOf<T>(e: Entry<T> | undefined): T[] {
  return e === undefined ? [] : Array.isArray(e) ? e : [e];
}

/** The compact form of a key's items: the item alone when there is one. */
function compact<T>(list: T[]): Entry<T> {
  return list.length === 1 ? list[0]! : list;
}

/** Where `unit`'s run is in `list` (kept in unit order), or where it would go: [start, end). */
function runBounds<T extends Owned>(list: T[], unit: string): [number, number] {
  let i = 0;
  while (i < list.length && list[i]!.unit < unit) i++;
  let j = i;
  while (j < list.length && list[j]!.unit === unit) j++;
  return [i, j];
}

function runOf<T extends Owned>(e: Entry<T> | undefined, unit: string): T[] {
  const list = listOf(e);
  const [i, j] = runBounds(list, unit);
  return list.slice(i, j);
}

function hasRun<T extends Owned>(e: Entry<T> | undefined, unit: string): boolean {
  return e !== undefined && (Array.isArray(e) ? e.some((x) => x.unit === unit) : e.unit === unit);
}

/**
 * Sets `unit`'s run of key `k` to `items` (all of that unit); false when it was equal already.
 * A changed key gets a new list: one a query holds is never changed under it.
 */
function putRun<T extends Owned>(m: Map<string, Entry<T>>, k: string, unit: string, items: T[], same: (a: T, b: T) => boolean): boolean {
  const e = m.get(k);
  if (e === undefined) {
    m.set(k, compact(items));
    return true;
  }
  const list = listOf(e);
  const [i, j] = runBounds(list, unit);
  if (j - i === items.length) {
    let equal = true;
    for (let x = 0; x < items.length && equal; x++) equal = same(list[i + x]!, items[x]!);
    if (equal) return false;
  }
  m.set(k, compact([...list.slice(0, i), ...items, ...list.slice(j)]));
  return true;
}

/** Drops `unit`'s run of key `k`; false when it had none. */
function dropRun<T extends Owned>(m: Map<string, Entry<T>>, k: string, unit: string): boolean {
  const e = m.get(k);
  if (e === undefined || !hasRun(e, unit)) return false;
  const rest = listOf(e).filter((x) => x.unit !== unit);
  if (rest.length === 0) m.delete(k);
  else m.set(k, compact(rest));
  return true;
}

function byTaskId(tasks: readonly Task[]): Task[] {
  return [...tasks].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

function sameList<T>(a: T[], b: T[], same: (x: T, y: T) => boolean): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!same(a[i]!, b[i]!)) return false;
  return true;
}

const sameStr = (a: string, b: string): boolean => a === b;
const sameSrv = (a: SrvEntry, b: SrvEntry): boolean => a.port === b.port && a.target === b.target && sameList(a.ips, b.ips, sameStr);

function sameTarget(a: Target, b: Target): boolean {
  return (
    a.unit === b.unit &&
    a.network === b.network &&
    a.shuffle === b.shuffle &&
    a.ttl === b.ttl &&
    sameList(a.v4, b.v4, sameStr) &&
    sameList(a.v6, b.v6, sameStr) &&
    (a.srv === b.srv || (a.srv !== undefined && b.srv !== undefined && sameList(a.srv, b.srv, sameSrv)))
  );
}

function samePtr(a: PtrTarget, b: PtrTarget): boolean {
  return a.unit === b.unit && a.network === b.network && a.name === b.name && a.ttl === b.ttl;
}
