// Desired (from Docker) + catalog lookups + what the source owns → the catalog operations that
// converge them. Pure and deterministic; the source (docker.ts, docker-apply.ts) runs the
// operations in order as one batch. The source only ever removes or changes entries it created
// (ownership, by name). The plan reads the catalog only through indexed lookups, so a pass costs
// what Docker holds, not what the catalog holds. VIPs are not picked here: the catalog's
// allocator picks them at commit, from the top of the subnet, skipping every address Docker holds.
import { contains, formatIp, parseCidr, parseIp } from '../../net/ip.js';
import type { ContainerRequest, NetworkRequest, ServiceRequest, ServiceUpdate, TaskRequest } from '../catalog.js';
import type { ObjectKind, ObjectTypes } from '../changes.js';
import { type Health, type PortSpec, pool6, subnetsOf } from '../model.js';
import type { Desired, DesiredService, DesiredTask } from './docker-map.js';

/** What the source created, by catalog name (lower case) → Docker ID. Persisted beside the store. */
export interface Owned {
  networks: Record<string, string>;
  services: Record<string, string>;
  tasks: Record<string, string>;
  containers: Record<string, string>;
}

export const emptyOwned = (): Owned => ({ networks: {}, services: {}, tasks: {}, containers: {} });

export type Op =
  | { op: 'removeTask'; name: string; why: string }
  | { op: 'removeContainer'; name: string; why: string }
  | { op: 'removeService'; name: string; why: string }
  | { op: 'removeNetwork'; name: string; why: string }
  | { op: 'createNetwork'; req: NetworkRequest; dockerId: string }
  | { op: 'createService'; req: ServiceRequest; from: string }
  | { op: 'updateService'; name: string; upd: ServiceUpdate }
  | { op: 'addTask'; req: TaskRequest & { name: string }; containerId: string }
  | { op: 'addContainer'; req: ContainerRequest; containerId: string }
  | { op: 'setHealth'; task: string; health: Health }
  | { op: 'adopt'; kind: keyof Owned; name: string; id: string };

export interface Plan {
  ops: Op[];
  warnings: string[];
  /** Per lower-case pool (network name, or pool6(name)): addresses a VIP picked at commit must skip (Docker's, and VIPs asked for). */
  held: Map<string, Set<string>>;
}

const lc = (s: string): string => s.toLowerCase();

const sameRecord = (a: Record<string, string>, b: Record<string, string>): boolean => {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => b[k] === a[k]);
};
type Addressed = { addresses: Record<string, string>; addresses6?: Record<string, string> };
/** Both families: a dual-stack object's IPv6 addresses are part of what must match. */
const sameAddresses = (a: Addressed, b: Addressed): boolean => sameRecord(a.addresses, b.addresses) && sameRecord(a.addresses6 ?? {}, b.addresses6 ?? {});
const sameSet = (a: string[], b: string[]): boolean => {
  const sa = new Set(a.map(lc));
  return sa.size === new Set(b.map(lc)).size && b.every((x) => sa.has(lc(x)));
};
const portKey = (ports: PortSpec[]): string =>
  JSON.stringify(ports.map((p) => [p.protocol, p.target, p.published ?? 0, p.name ?? '']).sort());
/** Network aliases, compared per network ignoring order and case. */
const sameNetworkAliases = (a: Record<string, string[]>, b: Record<string, string[] | undefined>): boolean => {
  const nets = new Set([...Object.keys(a), ...Object.keys(b)].map(lc));
  const get = (r: Record<string, string[] | undefined>, n: string): string[] => Object.entries(r).find(([k]) => lc(k) === n)?.[1] ?? [];
  return [...nets].every((n) => sameSet(get(a, n), get(b, n)));
};

/** The catalog lookups a plan needs; a transaction (catalog.view()) has them, indexed. */
export interface CatalogReader {
  /** By name, ignoring case. */
  find<K extends ObjectKind>(kind: K, name: string): ObjectTypes[K] | undefined;
  /** The addresses in use in a pool (a network, or pool6(network)). */
  addresses(network: string): { has(ip: string): boolean };
  /** Every object of a kind (networks are few). */
  all<K extends ObjectKind>(kind: K): Array<ObjectTypes[K]>;
}

const KIND: Record<keyof Owned, ObjectKind> = { networks: 'network', services: 'service', tasks: 'task', containers: 'container' };

/** Drops ownership of entries that are gone from the catalog (removed by hand, or never committed). O(owned). */
export function pruneOwned(owned: Owned, view: CatalogReader): Owned {
  const out = emptyOwned();
  for (const k of Object.keys(out) as Array<keyof Owned>) {
    for (const [n, id] of Object.entries(owned[k])) if (view.find(KIND[k], n)) out[k][n] = id;
  }
  return out;
}

export function plan(desired: Desired, view: CatalogReader, ownedIn: Owned): Plan {
  const owned = pruneOwned(ownedIn, view);
  const warnings: string[] = [];
  const removals: Op[] = [];
  const creates: Op[] = [];
  const network = (n: string) => view.find('network', n);
  const service = (n: string) => view.find('service', n);
  const task = (n: string) => view.find('task', n);
  const ctr = (n: string) => view.find('container', n);
  // Client addresses inside a network of ours (the catalog's, or one this plan creates) would be refused.
  const ours = [...view.all('network'), ...desired.networks.values()].flatMap((n) => subnetsOf(n).map((sn) => parseCidr(sn)));
  const clientOf = (ips: string[]): string[] => ips.filter((ip) => !ours.some((p) => contains(p, parseIp(ip))));
  const sameClients = (d: { clientAddresses: string[] }, cur: { clientAddresses?: string[] }): boolean => sameSet(clientOf(d.clientAddresses), cur.clientAddresses ?? []);
  // Addresses this plan frees (per lower-case pool): a VIP asked for may reuse one in the same batch.
  const freed = new Map<string, Set<string>>();
  const free = (pool: string, ip: string | undefined): void => {
    if (!ip) return;
    const set = freed.get(lc(pool)) ?? new Set<string>();
    set.add(ip);
    freed.set(lc(pool), set);
  };
  const freeAll = (o: Addressed): void => {
    for (const [net, ip] of Object.entries(o.addresses)) free(net, ip);
    for (const [net, ip] of Object.entries(o.addresses6 ?? {})) free(pool6(net), ip);
  };

  // ---- networks that must go (owned, and gone from Docker or recreated with another subnet)
  const changedNets = new Set<string>();
  const unusable = new Set<string>(); // desired networks the source cannot use (name taken by another subnet)
  for (const [n] of Object.entries(owned.networks)) {
    const cur = network(n)!;
    const d = desired.networks.get(n);
    if (
      !d ||
      d.subnet !== cur.subnet ||
      d.subnet6 !== cur.subnet6 ||
      d.attachable !== cur.attachable ||
      d.ingress !== (cur.ingress === true) ||
      (d.gateway !== undefined && d.gateway !== cur.gateway) ||
      (d.gateway6 !== undefined && d.gateway6 !== cur.gateway6)
    )
      changedNets.add(n);
  }
  for (const [n, d] of desired.networks) {
    const cur = network(n);
    if (cur && !(n in owned.networks) && (cur.subnet !== d.subnet || cur.subnet6 !== d.subnet6)) {
      warnings.push(`network "${d.name}": the catalog already has a network of that name with subnet ${subnetsOf(cur).join(', ')} (Docker: ${subnetsOf(d).join(', ')}); not managed by the Docker source, left alone`);
      unusable.add(n);
    }
  }
  const touchesChanged = (addrs: Record<string, string>): boolean => Object.keys(addrs).some((k) => changedNets.has(lc(k)));

  // Aliases may not be the name of a service or container (the catalog refuses it).
  const isPrimary = (a: string): boolean => desired.services.has(lc(a)) || desired.containers.has(lc(a)) || !!service(a) || !!ctr(a);
  const aliasesOf = (d: { aliases: string[] }): string[] => d.aliases.filter((a) => !isPrimary(a));
  const networkAliasesOf = (d: { networkAliases: Record<string, string[]> }): Record<string, string[]> =>
    Object.fromEntries(Object.entries(d.networkAliases).map(([net, list]) => [net, list.filter((a) => !isPrimary(a))]).filter(([, list]) => list!.length > 0));
  // ---- services: recreate when the mode, networks or asked-for VIPs change
  const recreateSvc = new Set<string>();
  for (const n of Object.keys(owned.services)) {
    const cur = service(n)!;
    const d = desired.services.get(n);
    const why = !d
      ? 'no container has it any more'
      : cur.attachments.some((a) => changedNets.has(lc(a.network)))
        ? 'a network of it changed'
        : d.endpointMode !== cur.endpointMode
          ? 'endpoint mode changed'
          : !sameSet(d.networks, cur.attachments.map((a) => a.network))
            ? 'its networks changed'
            : Object.entries(d.vips).some(([net, ip]) => cur.attachments.find((a) => lc(a.network) === lc(net))?.vip !== ip) ||
                Object.entries(d.vips6).some(([net, ip]) => cur.attachments.find((a) => lc(a.network) === lc(net))?.vip6 !== ip)
              ? 'its VIP label changed'
              : !sameNetworkAliases(networkAliasesOf(d), Object.fromEntries(cur.attachments.map((a) => [a.network, a.aliases])))
                ? 'its network aliases changed'
                : undefined;
    if (why) {
      recreateSvc.add(n);
      removals.push({ op: 'removeService', name: cur.name, why });
      for (const a of cur.attachments) {
        free(a.network, a.vip);
        free(pool6(a.network), a.vip6);
      }
    }
  }

  // ---- tasks
  const keptTasks = new Set<string>();
  for (const n of Object.keys(owned.tasks)) {
    const cur = task(n)!;
    if (recreateSvc.has(lc(cur.service))) continue; // removed with its service
    const d = desired.tasks.get(n);
    const why = !d ? 'its container stopped or is gone' : lc(d.service) !== lc(cur.service) ? 'its service label changed' : !sameAddresses(d, cur) || !sameClients(d, cur) ? 'its addresses changed' : undefined;
    if (why) {
      removals.unshift({ op: 'removeTask', name: cur.name, why });
      freeAll(cur);
    } else keptTasks.add(n);
  }

  // ---- containers
  const keptCtrs = new Set<string>();
  for (const n of Object.keys(owned.containers)) {
    const cur = ctr(n)!;
    const d = desired.containers.get(n);
    const why = !d
      ? 'it stopped or is gone'
      : !sameAddresses(d, cur) || touchesChanged(cur.addresses) || !sameClients(d, cur)
        ? 'its addresses changed'
        : !sameSet(aliasesOf(d), cur.aliases) || !sameNetworkAliases(networkAliasesOf(d), cur.networkAliases ?? {})
          ? 'its aliases changed'
          : undefined;
    if (why) {
      removals.unshift({ op: 'removeContainer', name: cur.name, why });
      freeAll(cur);
    } else keptCtrs.add(n);
  }

  for (const n of changedNets) removals.push({ op: 'removeNetwork', name: network(n)!.name, why: desired.networks.has(n) ? 'recreated in Docker with other settings' : 'gone from Docker' });

  // ---- creates: networks
  const available = new Map<string, { name: string; subnet: string; gateway?: string }>();
  for (const [n, d] of desired.networks) {
    if (unusable.has(n)) continue;
    const cur = network(n);
    if (cur && !changedNets.has(n)) {
      available.set(n, cur);
      continue;
    }
    const req: NetworkRequest = { name: d.name, subnet: d.subnet6 ? [d.subnet, d.subnet6] : d.subnet, attachable: d.attachable, ...(d.ingress ? { ingress: true } : {}) };
    const gateways = [d.gateway, d.gateway6].filter((g): g is string => !!g);
    if (gateways.length) req.gateway = gateways.length === 1 ? gateways[0] : gateways;
    creates.push({ op: 'createNetwork', req, dockerId: d.dockerId });
    available.set(n, d);
  }

  // What automatic VIP picks must skip, per network: every address Docker holds, and every VIP a
  // label asks for (so a picked VIP never takes one another service is about to ask for).
  const held = new Map([...desired.held].map(([net, ips]) => [net, new Set(ips)]));
  for (const d of desired.services.values()) {
    for (const [pool, ip] of [...Object.entries(d.vips), ...Object.entries(d.vips6).map(([net, ip]) => [pool6(net), ip] as const)]) {
      if (!held.has(lc(pool))) held.set(lc(pool), new Set());
      held.get(lc(pool))!.add(canonical(ip));
    }
  }
  // An asked VIP is taken if the catalog holds it (and this plan does not free it), a Docker
  // container holds it, or another service of this plan asked for it first.
  const claimed = new Set<string>();
  const vipTaken = (net: string, ip: string): boolean =>
    (view.addresses(net).has(ip) && !freed.get(lc(net))?.has(ip)) || !!desired.held.get(lc(net))?.has(ip) || claimed.has(`${lc(net)} ${ip}`);
  const claim = (net: string, ip: string): void => void claimed.add(`${lc(net)} ${ip}`);

  // ---- services
  const usableSvc = new Set<string>();
  for (const [n, d] of desired.services) {
    if (d.networks.some((x) => !available.has(lc(x)))) {
      warnings.push(`service "${d.name}" skipped: network ${d.networks.filter((x) => !available.has(lc(x))).join(', ')} is not usable`);
      continue;
    }
    const cur = service(n);
    if (cur && !(n in owned.services)) {
      // Made by hand (e.g. with a fixed VIP): the source only adds the tasks, on the networks it has.
      usableSvc.add(n);
      continue;
    }
    if (cur && !recreateSvc.has(n)) {
      usableSvc.add(n);
      const upd: ServiceUpdate = {};
      if (!sameSet(d.aliases, cur.aliases)) {
        upd.aliasAdd = d.aliases.filter((a) => !cur.aliases.some((x) => lc(x) === lc(a)));
        upd.aliasRm = cur.aliases.filter((a) => !d.aliases.some((x) => lc(x) === lc(a)));
      }
      if (portKey(d.ports) !== portKey(cur.ports)) upd.ports = d.ports;
      if (JSON.stringify(d.healthCheck ?? null) !== JSON.stringify(cur.healthCheck ?? null)) upd.healthCheck = d.healthCheck ?? null;
      if (Object.keys(upd).length > 0) creates.push({ op: 'updateService', name: cur.name, upd });
      continue;
    }
    if (cur === undefined && n in owned.services) continue; // cannot happen after pruneOwned
    const networks = serviceNetworks({ ...d, networkAliases: networkAliasesOf(d) }, available, vipTaken, claim, warnings);
    if (!networks) continue;
    creates.push({ op: 'createService', req: { name: d.name, networks, endpointMode: d.endpointMode, aliases: d.aliases, ports: d.ports, ...(d.healthCheck ? { healthCheck: d.healthCheck } : {}) }, from: d.from });
    usableSvc.add(n);
  }

  // ---- tasks
  const health: Op[] = [];
  for (const [n, d] of desired.tasks) {
    if (!usableSvc.has(lc(d.service))) continue;
    const cur = task(n);
    if (keptTasks.has(n)) {
      if (d.health !== 'unknown' && cur && cur.health !== d.health) health.push({ op: 'setHealth', task: cur.name, health: d.health });
      continue;
    }
    if (cur && !(n in owned.tasks)) {
      if (lc(cur.service) === lc(d.service) && sameAddresses(cur, d)) creates.push({ op: 'adopt', kind: 'tasks', name: cur.name, id: d.containerId });
      else warnings.push(`container "${d.name}": a task of that name already exists in the catalog (not created by the Docker source); skipped`);
      continue;
    }
    const svc = service(d.service);
    if (svc && !(lc(svc.name) in owned.services)) {
      const missing = svc.attachments.map((a) => a.network).filter((net) => !(net in d.addresses));
      if (missing.length > 0) {
        warnings.push(`container "${d.name}" skipped: service "${svc.name}" (made by hand) is also on ${missing.join(', ')}, where the container has no address`);
        continue;
      }
    }
    creates.push({ op: 'addTask', req: taskRequest(d, svc, clientOf(d.clientAddresses)), containerId: d.containerId });
    if (d.health !== 'unknown') health.push({ op: 'setHealth', task: d.name, health: d.health });
  }

  // ---- containers
  for (const [n, d] of desired.containers) {
    if (keptCtrs.has(n)) continue;
    const cur = ctr(n);
    const aliases = aliasesOf(d);
    if (cur && !(n in owned.containers)) {
      if (sameAddresses(cur, d)) creates.push({ op: 'adopt', kind: 'containers', name: cur.name, id: d.containerId });
      else warnings.push(`container "${d.name}": the catalog already has a container of that name (not created by the Docker source); skipped`);
      continue;
    }
    if (Object.keys(d.addresses).some((k) => !available.has(lc(k)))) continue;
    const clients = clientOf(d.clientAddresses);
    const named = networkAliasesOf(d);
    const networks = Object.entries(d.addresses).map(([network, ip]) => ({ network, ip, ...(d.addresses6[network] ? { ip6: d.addresses6[network] } : {}), ...(named[network] ? { aliases: named[network] } : {}) }));
    creates.push({ op: 'addContainer', req: { name: d.name, aliases, networks, ...(clients.length ? { clientAddresses: clients } : {}) }, containerId: d.containerId });
  }

  // Removals first (tasks and containers, then services, then networks), then creations in dependency order.
  const rank: Record<Op['op'], number> = { removeTask: 0, removeContainer: 0, removeService: 1, removeNetwork: 2, adopt: 3, createNetwork: 4, createService: 5, updateService: 6, addTask: 7, addContainer: 7, setHealth: 8 };
  const ops = [...removals, ...creates, ...health].map((o, i) => [o, i] as const).sort((a, b) => rank[a[0].op] - rank[b[0].op] || a[1] - b[1]).map(([o]) => o);
  return { ops, warnings, held };
}

const canonical = (ip: string): string => {
  try {
    return formatIp(parseIp(ip));
  } catch {
    return ip;
  }
};

/** A service's attachments: VIPs asked for by label are checked here; the rest are picked at commit. */
function serviceNetworks(
  d: DesiredService,
  available: Map<string, { name: string; subnet: string; gateway?: string }>,
  taken: (net: string, ip: string) => boolean,
  claim: (net: string, ip: string) => void,
  warnings: string[],
): ServiceRequest['networks'] | undefined {
  const out: ServiceRequest['networks'] = [];
  for (const net of d.networks) {
    const n = available.get(lc(net))!;
    const aliases = d.networkAliases[n.name];
    const named = aliases?.length ? { aliases } : {};
    const asked: Record<string, string> = {};
    if (d.endpointMode === 'vip') {
      // Each VIP asked for in its own pool: the network's, or a dual-stack network's IPv6 one.
      for (const [key, pool, ip] of [['vip', n.name, d.vips[n.name]], ['vip6', pool6(n.name), d.vips6[n.name]]] as const) {
        if (!ip) continue;
        const a = formatIp(parseIp(ip));
        if (taken(pool, a)) {
          warnings.push(`service "${d.name}": VIP ${ip} asked for on "${n.name}" is in use; service skipped`);
          return undefined;
        }
        claim(pool, a);
        asked[key] = a;
      }
    }
    if (Object.keys(asked).length === 0) {
      out.push(aliases?.length ? { network: n.name, ...named } : n.name);
      continue;
    }
    out.push({ network: n.name, ...asked, ...named });
  }
  return out;
}

function taskRequest(d: DesiredTask, svc: { attachments: Array<{ network: string }> } | undefined, clients: string[]): TaskRequest & { name: string } {
  // A hand-made service may be on fewer networks than the container: give only the ones it has.
  const nets = svc ? new Set(svc.attachments.map((a) => lc(a.network))) : undefined;
  const on = (k: string): boolean => !nets || nets.has(lc(k));
  const ips = [...Object.entries(d.addresses), ...Object.entries(d.addresses6)].filter(([k]) => on(k)).map(([, ip]) => ip);
  return { service: d.service, name: d.name, ips, ...(clients.length ? { clientAddresses: clients } : {}) };
}

