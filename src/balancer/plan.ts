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

function canonical(ip: string): { ip: string; family: Family } | undefined {
  const a = tryParseIp(ip);
  return a ? { ip: formatIp(a), family: a.family } : undefined;
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

export function plan(state: CatalogState, opts: PlanOptions = {}): Plan {
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
  return { services, published: [...published.values()].sort(byKey), warnings };
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
