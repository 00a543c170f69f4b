// The planner: catalog → desired dataplane state. Pure, deterministic (sorted output), no I/O, so every
// driver programs the same thing and the whole policy is unit-tested without root.
import type { CatalogState, Service, Task } from '../catalog/model.js';
import { addressesOn, servingTasks, vipsOf } from '../catalog/model.js';
import { formatIp, tryParseIp } from '../net/ip.js';
import type { Backend, DesiredState, Family, PublishedPort, Scheduler, VirtualService } from './types.js';

export interface PlanOptions {
  /** Program published ports (routing mesh). Default true. */
  published?: boolean;
  /** Only VIPs on these networks (a container's own namespace reaches only its networks' VIPs). */
  networks?: ReadonlySet<string>;
}

export interface Plan extends DesiredState {
  /** Things the planner skipped, one line each (e.g. a published port claimed twice). */
  warnings: string[];
}

// Parsing addresses dominates a large plan; the same task addresses come back every time.
const canon = new Map<string, { ip: string; family: Family } | null>();

function canonical(ip: string): { ip: string; family: Family } | undefined {
  let c = canon.get(ip);
  if (c === undefined) {
    const a = tryParseIp(ip);
    c = a ? { ip: formatIp(a), family: a.family } : null;
    if (canon.size > 1_000_000) canon.clear();
    canon.set(ip, c);
  }
  return c ?? undefined;
}

function sameBackends(a: Backend[], b: Backend[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.ip !== y.ip || x.port !== y.port || x.weight !== y.weight || x.task !== y.task || x.draining !== y.draining) return false;
  }
  return true;
}

function sameVip(a: VirtualService, b: VirtualService): boolean {
  return a.vip === b.vip && a.fwmark === b.fwmark && a.scheduler === b.scheduler && a.persistence === b.persistence && sameBackends(a.backends, b.backends);
}

function samePublished(a: PublishedPort, b: PublishedPort): boolean {
  return a.service === b.service && a.fwmark === b.fwmark && a.targetPort === b.targetPort && a.scheduler === b.scheduler && a.persistence === b.persistence && sameBackends(a.backends, b.backends);
}

function byIpPort(a: Backend, b: Backend): number {
  return a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : a.port - b.port;
}

function byKey<T extends { key: string }>(a: T, b: T): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/** Target ports per protocol, deduplicated: two published ports may share one target. */
function vipPorts(svc: Service): { protocol: 'tcp' | 'udp'; port: number }[] {
  const seen = new Set<string>();
  const out: { protocol: 'tcp' | 'udp'; port: number }[] = [];
  for (const p of svc.ports) {
    const k = `${p.protocol}/${p.target}`;
    if (seen.has(k)) continue;
    seen.add(k);
    out.push({ protocol: p.protocol, port: p.target });
  }
  return out;
}

interface ServicePlan {
  vips: VirtualService[];
  published: PublishedPort[]; // candidates: the caller resolves ports claimed twice
}

/**
 * Each service's tasks that take traffic: unhealthy ones leave the dataplane (the reconciler drains
 * them) unless every task is unhealthy, when all stay (fail open, as DNS answers do: servingTasks).
 */
function groupTasks(state: CatalogState, only?: Set<string>): Map<string, Task[]> {
  const bySvc = new Map<string, Task[]>();
  // for…in, not Object.values: no 100k-element array per re-plan.
  for (const id in state.tasks) {
    const t = state.tasks[id]!;
    if (only && !only.has(t.service)) continue;
    let list = bySvc.get(t.service);
    if (!list) bySvc.set(t.service, (list = []));
    list.push(t);
  }
  for (const [svc, list] of bySvc) bySvc.set(svc, servingTasks(list));
  return bySvc;
}

/**
 * service → task ids, kept current from change hints, so a re-plan of a few services does not scan
 * every task. Built by one scan; `touch` records tasks that were added, removed or moved.
 */
export class TaskIndex {
  private readonly bySvc = new Map<string, Set<string>>();
  private readonly svcOf = new Map<string, string>();

  constructor(state: CatalogState) {
    for (const id in state.tasks) this.put(id, state.tasks[id]!.service);
  }

  private put(id: string, svc: string): void {
    let set = this.bySvc.get(svc);
    if (!set) this.bySvc.set(svc, (set = new Set()));
    set.add(id);
    this.svcOf.set(id, svc);
  }

  /** Updates one task from the state; returns the services it affects (old and new). */
  touch(state: CatalogState, id: string): string[] {
    const old = this.svcOf.get(id);
    const t = state.tasks[id];
    if (old !== undefined) {
      this.bySvc.get(old)?.delete(id);
      this.svcOf.delete(id);
    }
    if (t) this.put(id, t.service);
    return [...new Set([old, t?.service].filter((x): x is string => x !== undefined))];
  }

  serving(state: CatalogState, services: Set<string>): Map<string, Task[]> {
    const out = new Map<string, Task[]>();
    for (const svc of services) {
      const list: Task[] = [];
      for (const id of this.bySvc.get(svc) ?? []) {
        const t = state.tasks[id];
        if (t && t.service === svc) list.push(t);
      }
      out.set(svc, servingTasks(list));
    }
    return out;
  }
}

/** `sorted` without the units of `changed` services, plus `fresh`, by key: a merge, no re-sort. */
export function spliceByKey<T extends { key: string; service: string }>(sorted: T[], changed: Set<string>, fresh: T[]): T[] {
  fresh = [...fresh].sort(byKey);
  const out: T[] = [];
  let j = 0;
  for (const x of sorted) {
    if (changed.has(x.service)) continue;
    while (j < fresh.length && fresh[j]!.key < x.key) out.push(fresh[j++]!);
    out.push(x);
  }
  while (j < fresh.length) out.push(fresh[j++]!);
  return out;
}

/** The service's scheduler and affinity, the same on each of its units. */
function balancing(svc: Service): { scheduler: Scheduler; persistence?: number } {
  return svc.sticky ? { scheduler: svc.lb ?? 'rr', persistence: svc.sticky } : { scheduler: svc.lb ?? 'rr' };
}

/** One VIP's units, a port each, balancing over the tasks' addresses of the VIP's family. */
function vipUnits(svc: Service, network: string, text: string, keySuffix: string, tasks: Task[], ports: ReturnType<typeof vipPorts>): VirtualService[] {
  const vip = canonical(text);
  if (!vip) return [];
  const members: { task: string; ip: string; weight: number }[] = [];
  for (const t of tasks) {
    for (const a of addressesOn(t, network)) {
      const c = canonical(a);
      if (c && c.family === vip.family) members.push({ task: t.id, ip: c.ip, weight: t.weight ?? 1 });
    }
  }
  return ports.map((p) => {
    const backends = members.map((m) => ({ task: m.task, ip: m.ip, port: p.port, weight: m.weight, draining: false }));
    backends.sort(byIpPort);
    return {
      key: `${network}/${svc.name}/${p.protocol}/${p.port}${keySuffix}`,
      service: svc.name,
      network,
      fwmark: svc.fwmark,
      family: vip.family,
      vip: vip.ip,
      protocol: p.protocol,
      port: p.port,
      ...balancing(svc),
      backends,
    };
  });
}

function planService(state: CatalogState, svc: Service, tasks: Task[], opts: PlanOptions): ServicePlan {
  const out: ServicePlan = { vips: [], published: [] };
  if (svc.endpointMode !== 'vip') return out; // dnsrr has no VIP and no routing mesh
  const ports = vipPorts(svc);
  for (const att of svc.attachments) {
    if (!state.networks[att.network] || (opts.networks && !opts.networks.has(att.network))) continue;
    // A VIP per family on a dual-stack network; the second (IPv6) is a unit of its own key.
    for (const text of vipsOf(att)) out.vips.push(...vipUnits(svc, att.network, text, text === att.vip6 && att.vip ? '/6' : '', tasks, ports));
  }
  if (opts.published === false) return out;
  const seen = new Set<string>();
  for (const p of svc.ports) {
    if (p.published === undefined) continue;
    const key = `${p.protocol}/${p.published}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.published.push({ key, service: svc.name, fwmark: svc.fwmark, protocol: p.protocol, port: p.published, targetPort: p.target, ...balancing(svc), backends: publishedBackends(state, svc, tasks, p.target) });
  }
  return out;
}

/** The unit with `key` in an array sorted by key: a binary search, so a re-plan of a few services looks up a few. */
export function findByKey<T extends { key: string }>(sorted: readonly T[], key: string): T | undefined {
  let lo = 0;
  let hi = sorted.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const k = sorted[mid]!.key;
    if (k === key) return sorted[mid];
    if (k < key) lo = mid + 1;
    else hi = mid - 1;
  }
  return undefined;
}

/** Unchanged units keep the object of the previous plan. */
function keepIdentity(services: VirtualService[], pubs: PublishedPort[], previous: DesiredState | undefined): void {
  if (!previous) return;
  for (let i = 0; i < services.length; i++) {
    const old = findByKey(previous.services, services[i]!.key);
    if (old && sameVip(old, services[i]!)) services[i] = old;
  }
  for (let i = 0; i < pubs.length; i++) {
    const old = findByKey(previous.published, pubs[i]!.key);
    if (old && samePublished(old, pubs[i]!)) pubs[i] = old;
  }
}

/**
 * `previous` (the last plan) lets unchanged units keep their object identity, so consumers can memoise
 * per unit (drivers cache what they render) and a change costs what it touches, not the catalog.
 */
export function plan(state: CatalogState, opts: PlanOptions = {}, previous?: DesiredState): Plan {
  const warnings: string[] = [];
  const tasksBySvc = groupTasks(state);
  const services: VirtualService[] = [];
  const published = new Map<string, PublishedPort>();
  for (const name of Object.keys(state.services).sort()) {
    const sp = planService(state, state.services[name]!, tasksBySvc.get(name) ?? [], opts);
    services.push(...sp.vips);
    for (const p of sp.published) {
      const other = published.get(p.key);
      if (other) warnings.push(`published port ${p.key} of service ${name} is already published by ${other.service}; skipped`);
      else published.set(p.key, p);
    }
  }
  services.sort(byKey);
  const pubs = [...published.values()].sort(byKey);
  keepIdentity(services, pubs, previous);
  return { services, published: pubs, warnings };
}

/**
 * Re-plans only the named services (changed, added or removed, with their tasks) on top of `previous`.
 * Same result as plan(); falls back to it whenever published ports are contested, where the outcome
 * depends on services outside the set.
 */
export function replan(state: CatalogState, opts: PlanOptions, previous: Plan, changed: Set<string>, index?: TaskIndex): Plan {
  return replanWith(state, opts, previous, changed, index).plan;
}

/**
 * replan(), saying whether it had to plan everything: then services outside `changed` may have changed
 * too (a published port changing hands), and the caller must diff everything.
 */
export function replanWith(state: CatalogState, opts: PlanOptions, previous: Plan, changed: Set<string>, index?: TaskIndex): { plan: Plan; full: boolean } {
  const full = (): { plan: Plan; full: boolean } => ({ plan: plan(state, opts, previous), full: true });
  if (previous.warnings.length > 0) return full();
  const tasksBySvc = index ? index.serving(state, changed) : groupTasks(state, changed);
  const vips: VirtualService[] = [];
  const pubs: PublishedPort[] = [];
  const taken = new Set<string>(); // published keys the changed services claim
  for (const name of [...changed].sort()) {
    const svc = state.services[name];
    if (!svc) continue; // removed
    const sp = planService(state, svc, tasksBySvc.get(name) ?? [], opts);
    vips.push(...sp.vips);
    for (const p of sp.published) {
      const owner = findByKey(previous.published, p.key)?.service;
      // Contested (by another changed service, or by one outside the set): the outcome depends on others.
      if (taken.has(p.key) || (owner !== undefined && !changed.has(owner))) return full();
      taken.add(p.key);
      pubs.push(p);
    }
  }
  // Identity only needs checking for the re-planned units (a key names one service's unit, so a unit
  // found under it in the previous plan was this service's); the rest are the previous objects.
  keepIdentity(vips, pubs, previous);
  return { plan: { services: spliceByKey(previous.services, changed, vips), published: spliceByKey(previous.published, changed, pubs), warnings: [] }, full: false };
}
/**
 * One address per task and family: its address on the ingress network when the service is on it
 * (published ports enter through ingress, as in Docker's routing mesh), else the first attached
 * network (in attachment order) that has one.
 */
function publishedBackends(state: CatalogState, svc: Service, tasks: Task[], port: number): Backend[] {
  const out: Backend[] = [];
  const seen = new Set<string>();
  const ingress = svc.attachments.filter((a) => state.networks[a.network]?.ingress);
  const order = ingress.length === 0 ? svc.attachments : [...ingress, ...svc.attachments.filter((a) => !ingress.includes(a))];
  for (const t of tasks) {
    const families = new Set<Family>();
    for (const att of order) {
      for (const a of addressesOn(t, att.network)) {
        const c = canonical(a);
        if (!c || families.has(c.family) || seen.has(c.ip)) continue;
        families.add(c.family);
        seen.add(c.ip);
        out.push({ task: t.id, ip: c.ip, port, weight: t.weight ?? 1, draining: false });
      }
    }
  }
  return out.sort(byIpPort);
}

/**
 * One plan per catalog state for several reconcilers with the same options (the sandboxes of one
 * host): computed by the first that asks, handed to the rest, with one task index between them. A
 * plan's content depends only on the state (`previous` only lends unchanged units their identity),
 * so any caller may take it; sharing its unit objects lets drivers share what they render.
 */
export class SharedPlans {
  private readonly memo = new WeakMap<Readonly<CatalogState>, { plan: Plan; full: boolean }>();
  private index: TaskIndex | undefined;
  private indexed: Readonly<CatalogState> | undefined;

  constructor(readonly opts: PlanOptions) {}

  /** The catalog moved to `state`; `changed` (when given) names the tasks it touched. Once for all sharers. */
  update(state: Readonly<CatalogState>, changedTasks?: Iterable<string>): void {
    if (!changedTasks || !this.index) this.index = undefined;
    else for (const id of changedTasks) this.index.touch(state as CatalogState, id);
    this.indexed = this.index ? state : undefined;
  }

  plan(state: CatalogState, previous: DesiredState | undefined): Plan {
    const hit = this.memo.get(state);
    if (hit) return hit.plan;
    const p = plan(state, this.opts, previous);
    this.memo.set(state, { plan: p, full: true });
    return p;
  }

  replanWith(state: CatalogState, previous: Plan, changed: Set<string>): { plan: Plan; full: boolean } {
    const hit = this.memo.get(state);
    if (hit) return hit;
    if (!this.index || this.indexed !== state) {
      this.index = new TaskIndex(state);
      this.indexed = state;
    }
    const r = replanWith(state, this.opts, previous, changed, this.index);
    this.memo.set(state, r);
    return r;
  }
}
