// The answer index: every internal name precomputed from the catalog, so a query is a map
// lookup plus a filter by the client's networks. Built whole at start-up (rebuild) and then
// kept current from catalog changes (apply) at a cost bounded by what each change touches,
// from its own mirror of the objects it derives from, so a worker thread can run it from
// deltas alone. Pure, no I/O.
import type { AppliedChange } from '../catalog/changes.js';
import type { CatalogState, Container, Network, Service, Task } from '../catalog/model.js';
import type { Rr, SoaData } from './encode.js';
import { servingTasks } from '../catalog/model.js';
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
  ip: string;
}

export interface Target {
  network: string;
  v4: string[];
  v6: string[];
  srv?: SrvEntry[]; // set on "_name._proto.<svc>" entries only
  shuffle: boolean;
  ttl: number;
}

export interface PtrTarget {
  network: string;
  name: string; // "<name>.<network>"
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

/** What an index update changed: index keys (see keysOf) and whether client scopes moved. */
export interface Touched {
  keys: string[];
  /** Networks were added, removed or re-addressed: every client's view may differ. */
  scopes: boolean;
}

/** The outcome of verify(): how many keys differ from a full build, some of them, and the full build. */
export interface IndexCheck {
  mismatches: number;
  sample: string[];
  full: AnswerIndex;
}

/** One unit's share of a key: a unit is one service (with its tasks) or one container. */
interface Slice<T> {
  unit: string;
  items: T[];
}

interface Contribution {
  names: Map<string, Target[]>;
  ptrs: Map<string, PtrTarget[]>;
}

/** Index keys of PTR entries: an address, in a namespace of its own. */
const PTR_KEY = '#';
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
  private names = new Map<string, Slice<Target>[]>();
  private ptrs = new Map<string, Slice<PtrTarget>[]>();
  /** The keys each unit contributes to, so its old share can be found and replaced. */
  private unitKeys = new Map<string, { names: string[]; ptrs: string[] }>();
  private networkNames = new Set<string>();
  private prefixes: Array<{ name: string; subnet: string; prefix: Prefix }> = [];
  // The mirror: the catalog objects the index derives from, fed only by rebuild and apply.
  private networks = new Map<string, Network>();
  private services = new Map<string, Service>();
  private tasks = new Map<string, Task>();
  private tasksBySvc = new Map<string, Map<string, Task>>();
  private containers = new Map<string, Container>();
  /** Touched keys per generation (undefined: everything), oldest first. */
  private journal: Array<{ generation: number; keys: string[] | undefined }> = [];
  private journalKeys = 0;
  private suffix: string;
  private opts: IndexOptions;
  revision = -1;
  /** Bumped on every update: resolvers compare it to learn that keys changed (touchedSince). */
  generation = 0;

  constructor(opts: IndexOptions) {
    this.opts = opts;
    this.suffix = opts.suffix.toLowerCase().replace(/^\.+|\.+$/g, '');
  }

  get size(): number {
    return this.names.size;
  }

  /** Replaces everything with what `state` derives (start-up, resync). */
  rebuild(state: Readonly<CatalogState>): void {
    this.networks = new Map(Object.entries(state.networks));
    this.services = new Map(Object.entries(state.services));
    this.tasks = new Map();
    this.tasksBySvc = new Map();
    for (const [id, t] of Object.entries(state.tasks)) this.putTask(id, t);
    this.containers = new Map(Object.entries(state.containers));
    this.names = new Map();
    this.ptrs = new Map();
    this.unitKeys = new Map();
    for (const id of this.services.keys()) this.install(SERVICE_UNIT + id, undefined);
    for (const id of this.containers.keys()) this.install(CONTAINER_UNIT + id, undefined);
    this.rescope();
    this.revision = state.revision;
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
          if (!old || old.subnet !== p.value.subnet || old.name !== p.value.name) scopes = true;
          break;
        }
        case 'service':
          this.services.set(p.id, p.value);
          dirty.add(SERVICE_UNIT + p.id);
          break;
        case 'task': {
          const old = this.dropTask(p.id);
          if (old) dirty.add(SERVICE_UNIT + old.service);
          this.putTask(p.id, p.value);
          dirty.add(SERVICE_UNIT + p.value.service);
          break;
        }
        case 'container':
          this.containers.set(p.id, p.value);
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
          const old = this.dropTask(d.id);
          if (old) dirty.add(SERVICE_UNIT + old.service);
          break;
        }
        case 'container':
          this.containers.delete(d.id);
          dirty.add(CONTAINER_UNIT + d.id);
          break;
      }
    }
    const keys: string[] = [];
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

  /** Takes over the content of `full` (from verify; not to be used afterwards). */
  replaceWith(full: AnswerIndex): void {
    this.names = full.names;
    this.ptrs = full.ptrs;
    this.unitKeys = full.unitKeys;
    this.networkNames = full.networkNames;
    this.prefixes = full.prefixes;
    this.networks = full.networks;
    this.services = full.services;
    this.tasks = full.tasks;
    this.tasksBySvc = full.tasksBySvc;
    this.containers = full.containers;
    this.revision = full.revision;
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
      if (!sameList(flat(this.names.get(k)), flat(other.names.get(k)), sameTarget)) miss(`name ${k}`);
    }
    for (const k of new Set([...this.ptrs.keys(), ...other.ptrs.keys()])) {
      if (!sameList(flat(this.ptrs.get(k)), flat(other.ptrs.get(k)), samePtr)) miss(`ptr ${k}`);
    }
    const a = this.scopeLines();
    const b = other.scopeLines();
    for (const l of new Set([...a, ...b])) if (!a.has(l) || !b.has(l)) miss(`network ${l}`);
    return n;
  }

  /** A canonical, JSON-able picture of the answers: equal dumps, equal answers. */
  dump(): { names: Record<string, Target[]>; ptrs: Record<string, PtrTarget[]>; networks: string[] } {
    const names: Record<string, Target[]> = {};
    for (const k of [...this.names.keys()].sort()) names[k] = flat(this.names.get(k));
    const ptrs: Record<string, PtrTarget[]> = {};
    for (const k of [...this.ptrs.keys()].sort()) ptrs[k] = flat(this.ptrs.get(k));
    return { names, ptrs, networks: [...this.scopeLines()].sort() };
  }

  private scopeLines(): Set<string> {
    return new Set(this.prefixes.map((p) => `${p.name} ${p.subnet}`));
  }

  private putTask(id: string, t: Task): void {
    this.tasks.set(id, t);
    let m = this.tasksBySvc.get(t.service);
    if (!m) this.tasksBySvc.set(t.service, (m = new Map()));
    m.set(id, t);
  }

  private dropTask(id: string): Task | undefined {
    const t = this.tasks.get(id);
    if (!t) return undefined;
    this.tasks.delete(id);
    const m = this.tasksBySvc.get(t.service);
    m?.delete(id);
    if (m?.size === 0) this.tasksBySvc.delete(t.service);
    return t;
  }

  /** Recomputes one unit's share of the index and swaps it in, noting keys whose answers moved. */
  private install(unit: string, touched: string[] | undefined): void {
    const fresh: Contribution = { names: new Map(), ptrs: new Map() };
    const id = unit.slice(1);
    if (unit[0] === SERVICE_UNIT) {
      const svc = this.services.get(id);
      if (svc) this.serviceShare(svc, fresh);
    } else {
      const c = this.containers.get(id);
      if (c) this.containerShare(c, fresh);
    }
    const old = this.unitKeys.get(unit);
    if (old) {
      for (const k of old.names) if (!fresh.names.has(k) && dropSlice(this.names, k, unit)) touched?.push(k);
      for (const ip of old.ptrs) if (!fresh.ptrs.has(ip) && dropSlice(this.ptrs, ip, unit)) touched?.push(PTR_KEY + ip);
    }
    for (const [k, items] of fresh.names) if (putSlice(this.names, k, unit, items, sameTarget)) touched?.push(k);
    for (const [ip, items] of fresh.ptrs) if (putSlice(this.ptrs, ip, unit, items, samePtr)) touched?.push(PTR_KEY + ip);
    if (fresh.names.size === 0 && fresh.ptrs.size === 0) this.unitKeys.delete(unit);
    else this.unitKeys.set(unit, { names: [...fresh.names.keys()], ptrs: [...fresh.ptrs.keys()] });
  }

  // PTR targets are fully qualified under our domain, so any resolver can follow them back.
  private fq(n: string): string {
    return this.suffix ? `${n}.${this.suffix}` : n;
  }

  /** A service's names, SRV names, VIP PTRs and its tasks' names and PTRs. */
  private serviceShare(svc: Service, out: Contribution): void {
    const ttl = this.opts.ttl;
    const add = (name: string, t: Target): void => push(out.names, name.toLowerCase(), t);
    const addPtr = (ip: string, p: PtrTarget): void => push(out.ptrs, ip, p);
    // Tasks in id order: a canonical order that does not depend on the order they came in.
    const byId = this.tasksBySvc.get(svc.name);
    const tasks = byId ? [...byId.keys()].sort().map((id) => byId.get(id)!) : [];
    const serving = servingTasks(tasks);
    for (const a of svc.attachments) {
      const ips = serving.map((t) => t.addresses[a.network]).filter((ip): ip is string => !!ip);
      const taskTarget: Target = { network: a.network, ...split(ips), shuffle: true, ttl: ttl.tasks };
      add(`tasks.${svc.name}`, taskTarget);
      const main: Target =
        svc.endpointMode === 'vip' && a.vip
          ? { network: a.network, ...split([a.vip]), shuffle: false, ttl: ttl.vip }
          : { network: a.network, ...split(ips), shuffle: true, ttl: ttl.dnsrr };
      add(svc.name, main);
      for (const al of svc.aliases) {
        add(al, main);
        add(`tasks.${al}`, taskTarget);
      }
      if (a.vip) addPtr(a.vip, { network: a.network, name: this.fq(`${svc.name}.${a.network}`), ttl: ttl.ptr });
      // SRV for named ports: the VIP's name (vip mode) or every serving task (dnsrr).
      for (const p of svc.ports) {
        if (!p.name) continue;
        const srv: SrvEntry[] =
          svc.endpointMode === 'vip' && a.vip
            ? [{ port: p.target, target: this.fq(`${svc.name}.${a.network}`), ip: a.vip }]
            : serving.filter((t) => t.addresses[a.network]).map((t) => ({ port: p.target, target: this.fq(`${t.name}.${a.network}`), ip: t.addresses[a.network]! }));
        const st: Target = { network: a.network, v4: [], v6: [], srv, shuffle: svc.endpointMode !== 'vip', ttl: main.ttl };
        for (const n of [svc.name, ...svc.aliases]) add(`_${p.name}._${p.protocol}.${n}`, st);
      }
      for (const t of tasks) {
        const ip = t.addresses[a.network];
        if (!ip) continue;
        add(t.name, { network: a.network, ...split([ip]), shuffle: false, ttl: ttl.tasks });
        addPtr(ip, { network: a.network, name: this.fq(`${t.name}.${a.network}`), ttl: ttl.ptr });
      }
    }
  }

  private containerShare(c: Container, out: Contribution): void {
    for (const [network, ip] of Object.entries(c.addresses)) {
      const t: Target = { network, ...split([ip]), shuffle: false, ttl: this.opts.ttl.container };
      push(out.names, c.name.toLowerCase(), t);
      for (const al of c.aliases) push(out.names, al.toLowerCase(), t);
      push(out.ptrs, ip, { network, name: this.fq(`${c.name}.${network}`), ttl: this.opts.ttl.ptr });
    }
  }

  /** Networks are few: their names and prefixes are recomputed whole when one changes. */
  private rescope(): void {
    const nets = [...this.networks.values()];
    this.networkNames = new Set(nets.map((n) => n.name.toLowerCase()));
    this.prefixes = nets.map((n) => ({ name: n.name, subnet: n.subnet, prefix: parseCidr(n.subnet) }));
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
    const nets = this.prefixes.filter((p) => contains(p.prefix, a));
    return nets.length === 1 ? nets[0]!.name : nets.length > 1 ? 'multiple' : 'none';
  }

  /** The networks a client may see: 'all', or the names of networks whose subnet holds its address. */
  visibility(client: Addr): 'all' | Set<string> {
    const a = unmapV4(client);
    if (isLoopback(a) && this.opts.loopbackSeesAll) return 'all';
    const nets = new Set<string>();
    for (const p of this.prefixes) if (contains(p.prefix, a)) nets.add(p.name);
    if (nets.size === 0 && this.opts.othersSeeAll) return 'all';
    return nets;
  }

  /** True when the client lies inside a known network (or on loopback): such clients may recurse. */
  isKnownClient(client: Addr): boolean {
    const a = unmapV4(client);
    return isLoopback(a) || this.prefixes.some((p) => contains(p.prefix, a));
  }

  resolve(qname: string, qtype: string, client: Addr): Resolution {
    const s = this.strip(qname);
    if (!s) return { kind: 'nodata', ttl: NEGATIVE_TTL };
    const name = s.name;
    let internal = s.internal;
    if (!internal && (name.endsWith('.in-addr.arpa') || name.endsWith('.ip6.arpa'))) return this.resolvePtr(name, qtype, client);

    let targets = this.lookup(name);
    let onlyNetwork: string | undefined;
    const dot = name.lastIndexOf('.');
    if (!targets && dot > 0 && this.networkNames.has(name.slice(dot + 1))) {
      onlyNetwork = name.slice(dot + 1);
      targets = this.lookup(name.slice(0, dot));
      internal = true;
    }
    if (!targets) {
      if (internal || dot < 0 || name.startsWith('tasks.') || name.startsWith('_')) return { kind: 'nxdomain', ttl: NEGATIVE_TTL };
      return { kind: 'external' };
    }
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
          additionals.push({ name: e.target, type: e.ip.includes(':') ? 'AAAA' : 'A', ttl: t.ttl, data: e.ip });
        }
      }
    }
    if (records.length === 0) return { kind: 'nodata', ttl: Math.min(ttl, NEGATIVE_TTL) };
    if (shuffle) shuffleInPlace(records);
    return { kind: 'answer', records, additionals, shuffle };
  }

  private lookup(key: string): Target[] | undefined {
    const slices = this.names.get(key);
    return slices && (slices.length === 1 ? slices[0]!.items : flat(slices));
  }

  private resolvePtr(name: string, qtype: string, client: Addr): Resolution {
    const addr = parseReverseName(name);
    if (!addr) {
      // A partial reverse name inside one of our subnets is ours to deny; anything else is not.
      return { kind: 'external' };
    }
    const ip = formatIp(addr);
    const inOurs = this.prefixes.some((p) => contains(p.prefix, addr));
    const slices = this.ptrs.get(ip);
    const list = slices && flat(slices);
    if (!list) return inOurs ? { kind: 'nxdomain', ttl: NEGATIVE_TTL } : { kind: 'external' };
    const vis = this.visibility(client);
    const visible = list.filter((p) => vis === 'all' || vis.has(p.network));
    if (visible.length === 0) return { kind: 'nxdomain', ttl: NEGATIVE_TTL };
    if (qtype !== 'PTR' && qtype !== 'ANY') return { kind: 'nodata', ttl: NEGATIVE_TTL };
    return { kind: 'answer', records: visible.map((p) => ({ type: 'PTR', ttl: p.ttl, data: p.name })), additionals: [], shuffle: false };
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

function split(ips: string[]): { v4: string[]; v6: string[] } {
  return { v4: ips.filter((ip) => !ip.includes(':')), v6: ips.filter((ip) => ip.includes(':')) };
}

function flat<T>(slices: Slice<T>[] | undefined): T[] {
  if (!slices) return [];
  return slices.length === 1 ? slices[0]!.items : slices.flatMap((s) => s.items);
}

/** Sets `unit`'s slice of key `k` (slices kept in unit order); false when it was equal already. */
function putSlice<T>(m: Map<string, Slice<T>[]>, k: string, unit: string, items: T[], same: (a: T, b: T) => boolean): boolean {
  const slices = m.get(k);
  if (!slices) {
    m.set(k, [{ unit, items }]);
    return true;
  }
  let i = 0;
  while (i < slices.length && slices[i]!.unit < unit) i++;
  const cur = slices[i];
  if (cur?.unit === unit) {
    if (sameList(cur.items, items, same)) return false;
    slices[i] = { unit, items };
  } else slices.splice(i, 0, { unit, items });
  return true;
}

function dropSlice<T>(m: Map<string, Slice<T>[]>, k: string, unit: string): boolean {
  const slices = m.get(k);
  const i = slices ? slices.findIndex((s) => s.unit === unit) : -1;
  if (i < 0) return false;
  if (slices!.length === 1) m.delete(k);
  else slices!.splice(i, 1);
  return true;
}

function sameList<T>(a: T[], b: T[], same: (x: T, y: T) => boolean): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!same(a[i]!, b[i]!)) return false;
  return true;
}

const sameStr = (a: string, b: string): boolean => a === b;
const sameSrv = (a: SrvEntry, b: SrvEntry): boolean => a.port === b.port && a.target === b.target && a.ip === b.ip;

function sameTarget(a: Target, b: Target): boolean {
  return (
    a.network === b.network &&
    a.shuffle === b.shuffle &&
    a.ttl === b.ttl &&
    sameList(a.v4, b.v4, sameStr) &&
    sameList(a.v6, b.v6, sameStr) &&
    (a.srv === b.srv || (a.srv !== undefined && b.srv !== undefined && sameList(a.srv, b.srv, sameSrv)))
  );
}

function samePtr(a: PtrTarget, b: PtrTarget): boolean {
  return a.network === b.network && a.name === b.name && a.ttl === b.ttl;
}
