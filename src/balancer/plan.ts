// The planner: catalog → desired dataplane state. Pure, deterministic (sorted output), no I/O, so every
// driver programs the same thing and the whole policy is unit-tested without root.
import type { CatalogState, Service, Task } from '../catalog/model.js';
import { isTaskServing } from '../catalog/model.js';
import { formatIp, tryParseIp } from '../net/ip.js';
import type { Backend, DesiredState, Family, PublishedPort, VirtualService } from './types.js';

export interface PlanOptions {
  /** Program published ports (routing mesh). Default true. */
  published?: boolean;
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
  return a.vip === b.vip && a.fwmark === b.fwmark && a.scheduler === b.scheduler && sameBackends(a.backends, b.backends);
}

function samePublished(a: PublishedPort, b: PublishedPort): boolean {
  return a.service === b.service && a.fwmark === b.fwmark && a.targetPort === b.targetPort && sameBackends(a.backends, b.backends);
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

/**
 * `previous` (the last plan) lets unchanged units keep their object identity, so consumers can memoise
 * per unit (drivers cache what they render) and a change costs what it touches, not the catalog.
 */
export function plan(state: CatalogState, opts: PlanOptions = {}, previous?: DesiredState): Plan {
  const warnings: string[] = [];
  const tasksBySvc = new Map<string, Task[]>();
  for (const t of Object.values(state.tasks)) {
    if (!isTaskServing(t)) continue; // unhealthy tasks leave the dataplane (the reconciler drains them)
    let list = tasksBySvc.get(t.service);
    if (!list) tasksBySvc.set(t.service, (list = []));
    list.push(t);
  }

  const services: VirtualService[] = [];
  const published = new Map<string, PublishedPort>();
  const names = Object.keys(state.services).sort();
  for (const name of names) {
    const svc = state.services[name]!;
    if (svc.endpointMode !== 'vip') continue; // dnsrr has no VIP and no routing mesh
    const tasks = tasksBySvc.get(svc.name) ?? [];
    const ports = vipPorts(svc);

    for (const att of svc.attachments) {
      if (!att.vip || !state.networks[att.network]) continue;
      const vip = canonical(att.vip);
      if (!vip) continue;
      const members: { task: string; ip: string }[] = [];
      for (const t of tasks) {
        const a = t.addresses[att.network];
        const c = a === undefined ? undefined : canonical(a);
        if (c && c.family === vip.family) members.push({ task: t.id, ip: c.ip });
      }
      for (const p of ports) {
        const backends = members.map((m) => ({ task: m.task, ip: m.ip, port: p.port, weight: 1, draining: false }));
        backends.sort(byIpPort);
        services.push({
          key: `${att.network}/${svc.name}/${p.protocol}/${p.port}`,
          service: svc.name,
          network: att.network,
          fwmark: svc.fwmark,
          family: vip.family,
          vip: vip.ip,
          protocol: p.protocol,
          port: p.port,
          scheduler: 'rr',
          backends,
        });
      }
    }

    if (opts.published === false) continue;
    for (const p of svc.ports) {
      if (p.published === undefined) continue;
      const key = `${p.protocol}/${p.published}`;
      const other = published.get(key);
      if (other) {
        if (other.service !== svc.name) warnings.push(`published port ${key} of service ${svc.name} is already published by ${other.service}; skipped`);
        continue;
      }
      published.set(key, {
        key,
        service: svc.name,
        fwmark: svc.fwmark,
        protocol: p.protocol,
        port: p.published,
        targetPort: p.target,
        backends: publishedBackends(svc, tasks, p.target),
      });
    }
  }
  services.sort(byKey);
  const pubs = [...published.values()].sort(byKey);
  if (previous) {
    const pv = new Map(previous.services.map((x) => [x.key, x]));
    const pp = new Map(previous.published.map((x) => [x.key, x]));
    for (let i = 0; i < services.length; i++) {
      const old = pv.get(services[i]!.key);
      if (old && sameVip(old, services[i]!)) services[i] = old;
    }
    for (let i = 0; i < pubs.length; i++) {
      const old = pp.get(pubs[i]!.key);
      if (old && samePublished(old, pubs[i]!)) pubs[i] = old;
    }
  }
  return { services, published: pubs, warnings };
}

/** One address per task and family: the first attached network (in attachment order) that has one. */
function publishedBackends(svc: Service, tasks: Task[], port: number): Backend[] {
  const out: Backend[] = [];
  const seen = new Set<string>();
  for (const t of tasks) {
    const families = new Set<Family>();
    for (const att of svc.attachments) {
      const a = t.addresses[att.network];
      const c = a === undefined ? undefined : canonical(a);
      if (!c || families.has(c.family) || seen.has(c.ip)) continue;
      families.add(c.family);
      seen.add(c.ip);
      out.push({ task: t.id, ip: c.ip, port, weight: 1, draining: false });
    }
  }
  return out.sort(byIpPort);
}
