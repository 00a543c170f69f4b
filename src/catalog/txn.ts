// A transaction over the committed catalog: reads see the committed state plus this
// transaction's own writes, writes go to an overlay and never touch committed objects (which
// consumers may hold), and the overlay becomes the store's Change. Nothing is cloned: the cost of
// a transaction is what it reads and writes. Savepoints let one op of a group commit fail without
// leaving half its writes behind. Committed reads use an empty transaction, so every lookup is
// written once.
import { VipdnsError } from '../errors.js';
import type { Change, ObjectKind, ObjectPut, ObjectTypes } from './changes.js';
import { COLLECTION, emptyChange, sameButHealth } from './changes.js';
import { type AnyObject, CatalogIndex, type OwnerKey, addressesOf, aliasesOf, lc } from './lookups.js';
import type { CatalogState, Container, Network, Protocol, Service, Task } from './model.js';
import { own } from './validate.js';

interface Write {
  kind: ObjectKind;
  id: string;
  value: AnyObject | null; // null: deleted
}

interface Undo {
  key: string;
  had: Write | undefined; // the overlay entry this write replaced
  before: AnyObject | undefined; // the visible object before (for the address counts)
  after: AnyObject | undefined;
}

/** What allocation needs of the addresses in use on a network. */
export interface AddressSet {
  has(ip: string): boolean;
  readonly size: number;
}

const wkey = (kind: ObjectKind, id: string): string => `${kind}:${id}`;

/** Facts about the host, read only when an allocation needs them. */
export interface HostFacts {
  /** Addresses on the host's interfaces: automatic VIP and task addresses skip them. */
  addresses?: () => ReadonlySet<string>;
  /** Ports something on the host listens on: automatic published ports skip them. */
  listening?: (protocol: Protocol) => ReadonlySet<number>;
  /** Where automatic published ports come from (default 30000-32767). */
  publishRange?: { lo: number; hi: number };
  /** This host's node name, recorded on the tasks it registers. */
  node?: string;
}

export class Txn {
  private readonly writes = new Map<string, Write>();
  /** Ids written here, per kind: whole-kind scans visit these, not every write. */
  private readonly writtenIds = new Map<ObjectKind, Set<string>>();
  /**
   * The versions written here, indexed like the committed ones: a lookup visits the committed index's
   * hits plus this one's, so a batch of 100,000 writes (a Docker pass) costs O(writes), not O(writes²).
   */
  private readonly pending = new CatalogIndex();
  private readonly newNames = new Map<string, string>(); // kind:lcname -> id, for objects created here
  private readonly addrDelta = new Map<string, Map<string, number>>(); // network -> ip -> +added / -removed
  private readonly addrSize = new Map<string, number>(); // network -> sum of its deltas
  private undo: Undo[] = [];
  private fwmark: number | undefined;

  constructor(
    private readonly base: Readonly<CatalogState>,
    private readonly idx: CatalogIndex,
    /** What automatic allocation must know of the host (its addresses, its listening ports). */
    readonly host: HostFacts = {},
  ) {}

  get size(): number {
    return this.writes.size;
  }

  // ---------- objects ----------

  get<K extends ObjectKind>(kind: K, id: string): ObjectTypes[K] | undefined {
    const w = this.writes.get(wkey(kind, id));
    if (w) return (w.value ?? undefined) as ObjectTypes[K] | undefined;
    return own(this.base[COLLECTION[kind]] as Record<string, ObjectTypes[K]>, id);
  }

  /** Writes `value` as the object's new version: always a fresh object, never a committed one changed in place. */
  put<K extends ObjectKind>(kind: K, id: string, value: ObjectTypes[K]): void {
    this.write(kind, id, value);
  }

  delete(kind: ObjectKind, id: string): void {
    if (this.get(kind, id) !== undefined) this.write(kind, id, null);
  }

  private write(kind: ObjectKind, id: string, value: AnyObject | null): void {
    const key = wkey(kind, id);
    const before = this.get(kind, id);
    const had = this.writes.get(key);
    this.undo.push({ key, had, before, after: value ?? undefined });
    this.setWrite(key, had, { kind, id, value });
    this.count(kind, before, -1);
    this.count(kind, value ?? undefined, +1);
    if (value && !before) this.newNames.set(`${kind}:${lc(value.name)}`, id);
  }

  /** Replaces the write at `key` (`cur`, the one there now) with `next` (none: forgotten), keeping the overlay's indexes. */
  private setWrite(key: string, cur: Write | undefined, next: Write | undefined): void {
    if (cur?.value) this.pending.remove(cur.kind, cur.id, cur.value);
    if (!next) {
      this.writes.delete(key);
      if (cur) this.writtenIds.get(cur.kind)?.delete(cur.id);
      return;
    }
    this.writes.set(key, next);
    if (next.value) this.pending.add(next.kind, next.id, next.value);
    let ids = this.writtenIds.get(next.kind);
    if (!ids) this.writtenIds.set(next.kind, (ids = new Set()));
    ids.add(next.id);
  }

  private count(kind: ObjectKind, o: AnyObject | undefined, by: number): void {
    if (!o) return;
    for (const [net, ip] of addressesOf(kind, o)) {
      let m = this.addrDelta.get(net);
      if (!m) this.addrDelta.set(net, (m = new Map()));
      m.set(ip, (m.get(ip) ?? 0) + by);
      this.addrSize.set(net, (this.addrSize.get(net) ?? 0) + by);
    }
  }

  get nextFwmark(): number {
    return this.fwmark ?? this.base.nextFwmark;
  }

  set nextFwmark(v: number) {
    this.fwmark = v;
  }

  // ---------- savepoints ----------

  savepoint(): { undo: number; fwmark: number | undefined } {
    return { undo: this.undo.length, fwmark: this.fwmark };
  }

  rollback(sp: { undo: number; fwmark: number | undefined }): void {
    while (this.undo.length > sp.undo) {
      const u = this.undo.pop()!;
      this.setWrite(u.key, this.writes.get(u.key), u.had);
      const kind = u.key.slice(0, u.key.indexOf(':')) as ObjectKind;
      this.count(kind, u.after, -1);
      this.count(kind, u.before, +1);
      if (u.after && !u.before) this.newNames.delete(`${kind}:${lc(u.after.name)}`);
    }
    this.fwmark = sp.fwmark;
  }

  // ---------- lookups (committed + overlay) ----------

  /** By exact id (names for networks, services, containers), else by name ignoring case. */
  find<K extends ObjectKind>(kind: K, name: string): ObjectTypes[K] | undefined {
    const exact = this.get(kind, name);
    if (exact && (kind !== 'task' || lc(exact.name) === lc(name))) return exact;
    const id = this.newNames.get(`${kind}:${lc(name)}`) ?? this.idx.idByName(kind, name);
    if (id === undefined) return undefined;
    const o = this.get(kind, id);
    return o && lc(o.name) === lc(name) ? o : undefined;
  }

  network(name: string): Network {
    const n = this.find('network', name);
    if (!n) throw new VipdnsError('NOT_FOUND', `no network "${name}"`);
    return n;
  }

  service(name: string): Service {
    const s = this.find('service', name);
    if (!s) throw new VipdnsError('NOT_FOUND', `no service "${name}"`);
    return s;
  }

  /** A task by id, name, or unique id prefix (3+ characters). */
  task(ref: string): Task {
    const direct = this.get('task', ref) ?? this.find('task', ref);
    if (direct) return direct;
    // Prefixes are typed by people, rarely: a scan is fine here.
    const byPrefix = ref.length >= 3 ? this.allIds('task').filter((id) => id.startsWith(ref)) : [];
    if (byPrefix.length === 1) return this.get('task', byPrefix[0]!)!;
    if (byPrefix.length > 1) throw new VipdnsError('BAD_REQUEST', `task id prefix "${ref}" is ambiguous (${byPrefix.length} tasks)`);
    throw new VipdnsError('NOT_FOUND', `no task "${ref}"`);
  }

  container(name: string): Container {
    const c = this.find('container', name);
    if (!c) throw new VipdnsError('NOT_FOUND', `no container "${name}"`);
    return c;
  }

  tasksOf(service: string): Task[] {
    return this.visible('task', this.idx.taskIds(service), this.pending.taskIds(service), (t) => t.service === service);
  }

  /** Services attached to a network (vip or dnsrr). */
  servicesOn(network: string): Service[] {
    return this.visible('service', this.idx.servicesOn(network), this.pending.servicesOn(network), (s) => s.attachments.some((a) => a.network === network));
  }

  containersOn(network: string): Container[] {
    return this.visible('container', this.idx.containersOn(network), this.pending.containersOn(network), (c) => Object.hasOwn(c.addresses, network));
  }

  publishers(port: number, protocol: string): Service[] {
    return this.visible('service', this.idx.publishers(port, protocol), this.pending.publishers(port, protocol), (s) => s.ports.some((p) => p.published === port && p.protocol === protocol));
  }

  /** `service "x"` or `container "y"` holding `alias` (ignoring case), if any. */
  aliasHolder(alias: string): string | undefined {
    const a = lc(alias);
    const has = (kind: ObjectKind, o: AnyObject): boolean => aliasesOf(kind, o).some((x) => lc(x) === a);
    for (const key of [...this.idx.aliasHolders(alias), ...this.pending.aliasHolders(alias)]) {
      const [kind, id] = splitOwner(key);
      const o = this.get(kind, id);
      if (o && has(kind, o)) return `${kind} "${o.name}"`;
    }
    return undefined;
  }

  /** The addresses in use on a network, as this transaction sees them. */
  addresses(network: string): AddressSet {
    const base = this.idx.addresses(network);
    const delta = this.addrDelta.get(network);
    const size = base.size + (this.addrSize.get(network) ?? 0);
    if (!delta) return { has: (ip) => base.has(ip), size };
    return {
      has: (ip) => {
        const d = delta.get(ip) ?? 0;
        return base.has(ip) ? d >= 0 : d > 0;
      },
      size,
    };
  }

  /** Ids of every object of a kind (committed and new), for the rare whole-kind scan. */
  allIds(kind: ObjectKind): string[] {
    const ids = new Set(Object.keys(this.base[COLLECTION[kind]]));
    for (const id of this.writtenIds.get(kind) ?? []) {
      if (this.get(kind, id)) ids.add(id);
      else ids.delete(id);
    }
    return [...ids];
  }

  all<K extends ObjectKind>(kind: K): Array<ObjectTypes[K]> {
    if (this.writes.size === 0) return Object.values(this.base[COLLECTION[kind]]) as Array<ObjectTypes[K]>;
    return this.allIds(kind).map((id) => this.get(kind, id)!);
  }

  /** The objects the committed index and the overlay's index point at, as this transaction sees them. */
  private visible<K extends ObjectKind>(kind: K, committed: Iterable<string>, written: Iterable<string>, keep: (o: ObjectTypes[K]) => boolean): Array<ObjectTypes[K]> {
    const out: Array<ObjectTypes[K]> = [];
    const seen = new Set<string>();
    for (const ids of [committed, written]) {
      for (const id of ids) {
        if (seen.has(id)) continue;
        seen.add(id);
        const o = this.get(kind, id);
        if (o && keep(o)) out.push(o);
      }
    }
    return out;
  }

  // ---------- the change ----------

  /** The overlay as a store change: puts and deletes against the committed state. */
  change(): Change {
    const change = emptyChange();
    let healthOnly = true;
    for (const w of this.writes.values()) {
      const committed = own(this.base[COLLECTION[w.kind]] as Record<string, AnyObject>, w.id);
      if (w.value === null) {
        if (committed === undefined) continue; // created and deleted here
        change.deletes.push({ kind: w.kind, id: w.id });
        healthOnly = false;
      } else {
        change.puts.push({ kind: w.kind, id: w.id, value: w.value } as ObjectPut);
        if (w.kind !== 'task' || committed === undefined || !sameButHealth(committed as Task, w.value as Task)) healthOnly = false;
      }
    }
    if (this.fwmark !== undefined && this.fwmark !== this.base.nextFwmark) {
      change.meta = { nextFwmark: this.fwmark };
      healthOnly = false;
    }
    change.serial = !healthOnly;
    return change;
  }
}

function splitOwner(key: OwnerKey): [ObjectKind, string] {
  const i = key.indexOf(':');
  return [key.slice(0, i) as ObjectKind, key.slice(i + 1)];
}

