// Desired (from Docker) + catalog state + what the source owns → the catalog operations that
// converge them. Pure and deterministic; the source (docker.ts) runs the operations in order.
// The source only ever removes or changes entries it created (ownership, by name).
import { formatIp, parseCidr, parseIp, prefixSize, tryParseIp } from '../../net/ip.js';
import type { ContainerRequest, NetworkRequest, ServiceRequest, ServiceUpdate, TaskRequest } from '../catalog.js';
import type { CatalogState, Health, PortSpec } from '../model.js';
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
}

const lc = (s: string): string => s.toLowerCase();

const sameAddresses = (a: Record<string, string>, b: Record<string, string>): boolean => {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => b[k] === a[k]);
};
const sameSet = (a: string[], b: string[]): boolean => {
  const sa = new Set(a.map(lc));
  return sa.size === new Set(b.map(lc)).size && b.every((x) => sa.has(lc(x)));
};
const portKey = (ports: PortSpec[]): string =>
  JSON.stringify(ports.map((p) => [p.protocol, p.target, p.published ?? 0, p.name ?? '']).sort());

/** Drops ownership of entries that are gone from the catalog (removed by hand, or never committed). */
export function pruneOwned(owned: Owned, s: Readonly<CatalogState>): Owned {
  const names = (xs: Array<{ name: string }>): Set<string> => new Set(xs.map((x) => lc(x.name)));
  const have = {
    networks: names(Object.values(s.networks)),
    services: names(Object.values(s.services)),
    tasks: names(Object.values(s.tasks)),
    containers: names(Object.values(s.containers)),
  };
  const out = emptyOwned();
  for (const k of Object.keys(out) as Array<keyof Owned>) {
    for (const [n, id] of Object.entries(owned[k])) if (have[k].has(n)) out[k][n] = id;
  }
  return out;
}

/**
 * A VIP from the top of the subnet downwards: Docker's IPAM hands out addresses from the bottom,
 * so the two meet last. (Give Docker networks an --ip-range below the top to rule it out.)
 */
export function pickVip(subnet: string, gateway: string | undefined, used: ReadonlySet<string>): string | undefined {
  const p = parseCidr(subnet);
  const size = prefixSize(p);
  const gw = gateway ? tryParseIp(gateway)?.value : undefined;
  let off = size - 1n;
  if (size > 2n && p.family === 4) off -= 1n; // broadcast
  const limit = BigInt(used.size) + 4n;
  for (let i = 0n; i <= limit && off > 0n; i++, off--) {
    const ip = formatIp({ family: p.family, value: p.base + off });
    if (p.base + off === gw || used.has(ip)) continue;
    return ip;
  }
  return undefined;
}

export function plan(desired: Desired, state: Readonly<CatalogState>, ownedIn: Owned): Plan {
  const owned = pruneOwned(ownedIn, state);
  const warnings: string[] = [];
  const removals: Op[] = [];
  const creates: Op[] = [];
  const netByLc = new Map(Object.values(state.networks).map((n) => [lc(n.name), n]));
  const svcByLc = new Map(Object.values(state.services).map((x) => [lc(x.name), x]));
  const taskByLc = new Map(Object.values(state.tasks).map((t) => [lc(t.name), t]));
  const ctrByLc = new Map(Object.values(state.containers).map((c) => [lc(c.name), c]));

  // ---- networks that must go (owned, and gone from Docker or recreated with another subnet)
  const changedNets = new Set<string>();
  const unusable = new Set<string>(); // desired networks the source cannot use (name taken by another subnet)
  for (const [n] of Object.entries(owned.networks)) {
    const cur = netByLc.get(n)!;
    const d = desired.networks.get(n);
    if (!d || d.subnet !== cur.subnet || d.attachable !== cur.attachable || (d.gateway !== undefined && d.gateway !== cur.gateway)) changedNets.add(n);
  }
  for (const [n, d] of desired.networks) {
    const cur = netByLc.get(n);
    if (cur && !(n in owned.networks) && cur.subnet !== d.subnet) {
      warnings.push(`network "${d.name}": the catalog already has a network of that name with subnet ${cur.subnet} (Docker: ${d.subnet}); not managed by the Docker source, left alone`);
      unusable.add(n);
    }
  }
  const touchesChanged = (addrs: Record<string, string>): boolean => Object.keys(addrs).some((k) => changedNets.has(lc(k)));

  // ---- services: recreate when the mode, networks or asked-for VIPs change (VIPs must be picked by us)
  const recreateSvc = new Set<string>();
  for (const n of Object.keys(owned.services)) {
    const cur = svcByLc.get(n)!;
    const d = desired.services.get(n);
    const why = !d
      ? 'no container has it any more'
      : cur.attachments.some((a) => changedNets.has(lc(a.network)))
        ? 'a network of it changed'
        : d.endpointMode !== cur.endpointMode
          ? 'endpoint mode changed'
          : !sameSet(d.networks, cur.attachments.map((a) => a.network))
            ? 'its networks changed'
            : Object.entries(d.vips).some(([net, ip]) => cur.attachments.find((a) => lc(a.network) === lc(net))?.vip !== ip)
              ? 'its VIP label changed'
              : undefined;
    if (why) {
      recreateSvc.add(n);
      removals.push({ op: 'removeService', name: cur.name, why });
    }
  }

  // ---- tasks
  const keptTasks = new Set<string>();
  for (const n of Object.keys(owned.tasks)) {
    const cur = taskByLc.get(n)!;
    if (recreateSvc.has(lc(cur.service))) continue; // removed with its service
    const d = desired.tasks.get(n);
    const why = !d ? 'its container stopped or is gone' : lc(d.service) !== lc(cur.service) ? 'its service label changed' : !sameAddresses(d.addresses, cur.addresses) ? 'its addresses changed' : undefined;
    if (why) removals.unshift({ op: 'removeTask', name: cur.name, why });
    else keptTasks.add(n);
  }

  // ---- containers. Aliases may not be the name of a service or container (the catalog refuses it).
  const primary = new Set<string>([...svcByLc.keys(), ...ctrByLc.keys(), ...desired.services.keys(), ...desired.containers.keys()]);
  const aliasesOf = (d: { aliases: string[] }): string[] => d.aliases.filter((a) => !primary.has(lc(a)));
  const keptCtrs = new Set<string>();
  for (const n of Object.keys(owned.containers)) {
    const cur = ctrByLc.get(n)!;
    const d = desired.containers.get(n);
    const why = !d ? 'it stopped or is gone' : !sameAddresses(d.addresses, cur.addresses) || touchesChanged(cur.addresses) ? 'its addresses changed' : !sameSet(aliasesOf(d), cur.aliases) ? 'its aliases changed' : undefined;
    if (why) removals.unshift({ op: 'removeContainer', name: cur.name, why });
    else keptCtrs.add(n);
  }

  for (const n of changedNets) removals.push({ op: 'removeNetwork', name: netByLc.get(n)!.name, why: desired.networks.has(n) ? 'recreated in Docker with other settings' : 'gone from Docker' });

  // ---- creates: networks
  const available = new Map<string, { name: string; subnet: string; gateway?: string }>();
  for (const [n, d] of desired.networks) {
    if (unusable.has(n)) continue;
    const cur = netByLc.get(n);
    if (cur && !changedNets.has(n)) {
      available.set(n, cur);
      continue;
    }
    const req: NetworkRequest = { name: d.name, subnet: d.subnet, attachable: d.attachable };
    if (d.gateway) req.gateway = d.gateway;
    creates.push({ op: 'createNetwork', req, dockerId: d.dockerId });
    available.set(n, d);
  }

  // Addresses in use per network: catalog entries plus every Docker address (so a VIP never takes one).
  const used = new Map<string, Set<string>>();
  const usedOn = (net: string): Set<string> => {
    let u = used.get(lc(net));
    if (!u) {
      u = new Set<string>();
      for (const x of Object.values(state.services)) for (const a of x.attachments) if (lc(a.network) === lc(net) && a.vip) u.add(a.vip);
      for (const t of Object.values(state.tasks)) for (const [k, ip] of Object.entries(t.addresses)) if (lc(k) === lc(net)) u.add(ip);
      for (const c of Object.values(state.containers)) for (const [k, ip] of Object.entries(c.addresses)) if (lc(k) === lc(net)) u.add(ip);
      for (const t of desired.tasks.values()) for (const [k, ip] of Object.entries(t.addresses)) if (lc(k) === lc(net)) u.add(ip);
      for (const c of desired.containers.values()) for (const [k, ip] of Object.entries(c.addresses)) if (lc(k) === lc(net)) u.add(ip);
      used.set(lc(net), u);
    }
    return u;
  };

  // ---- services
  const usableSvc = new Set<string>();
  for (const [n, d] of desired.services) {
    if (d.networks.some((x) => !available.has(lc(x)))) {
      warnings.push(`service "${d.name}" skipped: network ${d.networks.filter((x) => !available.has(lc(x))).join(', ')} is not usable`);
      continue;
    }
    const cur = svcByLc.get(n);
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
      if (Object.keys(upd).length > 0) creates.push({ op: 'updateService', name: cur.name, upd });
      continue;
    }
    if (cur === undefined && n in owned.services) continue; // cannot happen after pruneOwned
    const networks = serviceNetworks(d, available, usedOn, warnings);
    if (!networks) continue;
    creates.push({ op: 'createService', req: { name: d.name, networks, endpointMode: d.endpointMode, aliases: d.aliases, ports: d.ports }, from: d.from });
    usableSvc.add(n);
  }

  // ---- tasks
  const health: Op[] = [];
  for (const [n, d] of desired.tasks) {
    if (!usableSvc.has(lc(d.service))) continue;
    const cur = taskByLc.get(n);
    if (keptTasks.has(n)) {
      if (d.health !== 'unknown' && cur && cur.health !== d.health) health.push({ op: 'setHealth', task: cur.name, health: d.health });
      continue;
    }
    if (cur && !(n in owned.tasks)) {
      if (lc(cur.service) === lc(d.service) && sameAddresses(cur.addresses, d.addresses)) creates.push({ op: 'adopt', kind: 'tasks', name: cur.name, id: d.containerId });
      else warnings.push(`container "${d.name}": a task of that name already exists in the catalog (not created by the Docker source); skipped`);
      continue;
    }
    const svc = svcByLc.get(lc(d.service));
    if (svc && !(lc(svc.name) in owned.services)) {
      const missing = svc.attachments.map((a) => a.network).filter((net) => !(net in d.addresses));
      if (missing.length > 0) {
        warnings.push(`container "${d.name}" skipped: service "${svc.name}" (made by hand) is also on ${missing.join(', ')}, where the container has no address`);
        continue;
      }
    }
    creates.push({ op: 'addTask', req: taskRequest(d, svc), containerId: d.containerId });
    if (d.health !== 'unknown') health.push({ op: 'setHealth', task: d.name, health: d.health });
  }

  // ---- containers
  for (const [n, d] of desired.containers) {
    if (keptCtrs.has(n)) continue;
    const cur = ctrByLc.get(n);
    const aliases = aliasesOf(d);
    if (cur && !(n in owned.containers)) {
      if (sameAddresses(cur.addresses, d.addresses)) creates.push({ op: 'adopt', kind: 'containers', name: cur.name, id: d.containerId });
      else warnings.push(`container "${d.name}": the catalog already has a container of that name (not created by the Docker source); skipped`);
      continue;
    }
    if (Object.keys(d.addresses).some((k) => !available.has(lc(k)))) continue;
    creates.push({ op: 'addContainer', req: { name: d.name, aliases, networks: Object.entries(d.addresses).map(([network, ip]) => ({ network, ip })) }, containerId: d.containerId });
  }

  // Removals first (tasks and containers, then services, then networks), then creations in dependency order.
  const rank: Record<Op['op'], number> = { removeTask: 0, removeContainer: 0, removeService: 1, removeNetwork: 2, adopt: 3, createNetwork: 4, createService: 5, updateService: 6, addTask: 7, addContainer: 7, setHealth: 8 };
  const ops = [...removals, ...creates, ...health].map((o, i) => [o, i] as const).sort((a, b) => rank[a[0].op] - rank[b[0].op] || a[1] - b[1]).map(([o]) => o);
  return { ops, warnings };
}

function serviceNetworks(
  d: DesiredService,
  available: Map<string, { name: string; subnet: string; gateway?: string }>,
  usedOn: (net: string) => Set<string>,
  warnings: string[],
): ServiceRequest['networks'] | undefined {
  const out: ServiceRequest['networks'] = [];
  for (const net of d.networks) {
    const n = available.get(lc(net))!;
    if (d.endpointMode === 'dnsrr') {
      out.push(n.name);
      continue;
    }
    const u = usedOn(n.name);
    const asked = d.vips[n.name];
    if (asked) {
      const a = formatIp(parseIp(asked));
      if (u.has(a)) {
        warnings.push(`service "${d.name}": VIP ${asked} asked for on "${n.name}" is in use; service skipped`);
        return undefined;
      }
      u.add(a);
      out.push({ network: n.name, vip: a });
      continue;
    }
    const vip = pickVip(n.subnet, n.gateway, u);
    if (!vip) {
      warnings.push(`service "${d.name}": no free address for a VIP on "${n.name}" (${n.subnet}); service skipped`);
      return undefined;
    }
    u.add(vip);
    out.push({ network: n.name, vip });
  }
  return out;
}

function taskRequest(d: DesiredTask, svc: { attachments: Array<{ network: string }> } | undefined): TaskRequest & { name: string } {
  // A hand-made service may be on fewer networks than the container: give only the ones it has.
  const nets = svc ? new Set(svc.attachments.map((a) => lc(a.network))) : undefined;
  const ips = Object.entries(d.addresses).filter(([k]) => !nets || nets.has(lc(k))).map(([, ip]) => ip);
  return { service: d.service, name: d.name, ips };
}

