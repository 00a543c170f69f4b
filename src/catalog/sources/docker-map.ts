// Docker engine JSON → the catalog entries it implies ("desired" state). Pure: no I/O, no
// catalog access; the planner (docker-plan.ts) compares the result with the catalog.
import { errorMessage } from '../../errors.js';
import { contains, formatCidr, formatIp, parseCidr, tryParseIp } from '../../net/ip.js';
import { type EndpointMode, type Health, type HealthCheckSpec, type PortSpec, type Protocol, pool6 } from '../model.js';
import { checkName, checkPorts } from '../validate.js';
import { LABEL, SWARM, parseBool, parseEndpointMode, parseHealth, parseList, parsePorts, parseVips } from './docker-labels.js';
import type { DockerContainer, DockerEndpointSettings, DockerNetwork, DockerService } from './docker-types.js';

export interface DesiredNetwork {
  name: string;
  subnet: string; // canonical CIDR: the IPv4 subnet of a dual-stack network
  gateway?: string;
  /** A dual-stack network's IPv6 subnet (and its gateway). */
  subnet6?: string;
  gateway6?: string;
  attachable: boolean;
  /** Swarm's routing-mesh network: nothing on it is answered (vipdns's ingress network). */
  ingress: boolean;
  /** A swarm overlay: its traffic stays in the overlay's own namespace and never crosses the host's. */
  swarm: boolean;
  dockerId: string;
}

export interface DesiredService {
  name: string;
  endpointMode: EndpointMode;
  aliases: string[];
  ports: PortSpec[];
  networks: string[]; // sorted
  vips: Record<string, string>; // network → VIP asked for by label, or the swarm service's own
  /** Network → IPv6 VIP, on dual-stack networks. */
  vips6: Record<string, string>;
  /** Network → aliases answered only there (a swarm service's `--network name=N,alias=A`). */
  networkAliases: Record<string, string[]>;
  healthCheck?: HealthCheckSpec;
  from: string; // the container whose labels define it, for messages
}

export interface DesiredTask {
  name: string;
  service: string;
  containerId: string;
  addresses: Record<string, string>;
  /** Its IPv6 addresses on dual-stack networks. */
  addresses6: Record<string, string>;
  /** The container's addresses on networks vipdns does not map (bridge, docker_gwbridge): DNS clients too. */
  clientAddresses: string[];
  health: Health;
}

export interface DesiredContainer {
  name: string;
  containerId: string;
  /** vipdns.alias: answered on every network of the container. */
  aliases: string[];
  /** Docker's network aliases: answered only on their network. */
  networkAliases: Record<string, string[]>;
  addresses: Record<string, string>;
  addresses6: Record<string, string>;
  clientAddresses: string[];
}

export interface Desired {
  networks: Map<string, DesiredNetwork>;
  services: Map<string, DesiredService>;
  tasks: Map<string, DesiredTask>;
  containers: Map<string, DesiredContainer>;
  /**
   * Every address Docker reports for a container on each network (by lower-case pool: the network's
   * name, or pool6(name) for a dual-stack network's IPv6 subnet), mapped or not (ignored, skipped,
   * not yet announced): a VIP must never take one of them.
   */
  held: Map<string, Set<string>>;
  /** Running containers on swarm overlays (not ingress): their VIP traffic never reaches the host's rules. */
  sandboxes: Array<{ containerId: string; networks: string[] }>;
  /** Things skipped and why, one line each (the source logs new ones). */
  warnings: string[];
}

/**
 * Docker's default networks have no service discovery in Docker either (legacy links only); swarm's
 * docker_gwbridge only carries containers' traffic to and from the host (their client addresses).
 */
const DEFAULT_NETWORKS = new Set(['bridge', 'host', 'none', 'docker_gwbridge']);
const NO_IP_DRIVERS = new Set(['host', 'null', 'none']);

const lc = (s: string): string => s.toLowerCase();

function validName(kind: string, name: string, dotted = false): boolean {
  try {
    checkName(kind, name, { dotted });
    return true;
  } catch {
    return false;
  }
}

export function containerName(c: DockerContainer): string {
  const n = (c.Names ?? [])[0] ?? '';
  return n.replace(/^\//, '');
}

/** Docker health ("Up 2 minutes (healthy)") → task health; "starting" and none are unknown. */
export function healthOf(c: DockerContainer): Health {
  const s = c.Status ?? '';
  if (/\(unhealthy\)/.test(s)) return 'unhealthy';
  if (/\(healthy\)/.test(s)) return 'healthy';
  return 'unknown';
}

export function mapNetworks(list: DockerNetwork[], warnings: string[]): Map<string, DesiredNetwork> {
  const out = new Map<string, DesiredNetwork>();
  for (const n of list) {
    const name = n.Name ?? '';
    if (DEFAULT_NETWORKS.has(name) || NO_IP_DRIVERS.has(n.Driver ?? '') || parseBool(n.Labels?.[LABEL.ignore])) continue;
    if (!validName('network', name)) {
      warnings.push(`network "${name}" skipped: its name is not one DNS label (letters, digits, "-", "_")`);
      continue;
    }
    const configs = (n.IPAM?.Config ?? []).filter((c) => typeof c.Subnet === 'string' && c.Subnet !== '');
    // Dual stack: the first IPv4 subnet and the first IPv6 one; a network of one family keeps its first.
    const v4 = configs.find((c) => !c.Subnet!.includes(':'));
    const v6 = configs.find((c) => c.Subnet!.includes(':'));
    const cfg = v4 ?? v6;
    if (!cfg) {
      warnings.push(`network "${name}" skipped: no subnet in its IPAM config`);
      continue;
    }
    if (configs.length > (v4 && v6 ? 2 : 1)) warnings.push(`network "${name}": only its first IPv4 and first IPv6 subnet are used (it has ${configs.length})`);
    let subnet: string;
    let subnet6: string | undefined;
    try {
      subnet = formatCidr(parseCidr(cfg.Subnet!));
      if (v4 && v6) subnet6 = formatCidr(parseCidr(v6.Subnet!));
    } catch (e) {
      warnings.push(`network "${name}" skipped: ${errorMessage(e)}`);
      continue;
    }
    const ingress = n.Ingress === true;
    const d: DesiredNetwork = {
      name,
      subnet,
      // Local networks (bridge, macvlan, ipvlan) take standalone containers; swarm overlays only if attachable.
      attachable: !ingress && (n.Scope === 'swarm' ? n.Attachable === true : true),
      ingress,
      swarm: n.Scope === 'swarm',
      dockerId: n.Id ?? name,
    };
    const gw = cfg.Gateway ? tryParseIp(cfg.Gateway) : undefined;
    if (gw && contains(parseCidr(subnet), gw)) d.gateway = formatIp(gw);
    if (subnet6) {
      d.subnet6 = subnet6;
      const gw6 = v6!.Gateway ? tryParseIp(v6!.Gateway) : undefined;
      if (gw6 && contains(parseCidr(subnet6), gw6)) d.gateway6 = formatIp(gw6);
    }
    if (out.has(lc(name))) continue;
    out.set(lc(name), d);
  }
  return out;
}

// A pass looks at every container's address on every network: parse each subnet once.
const prefixes = new Map<string, ReturnType<typeof parseCidr>>();
function prefixOf(subnet: string): ReturnType<typeof parseCidr> {
  let p = prefixes.get(subnet);
  if (!p) {
    if (prefixes.size > 10_000) prefixes.clear();
    prefixes.set(subnet, (p = parseCidr(subnet)));
  }
  return p;
}

/** The container's address on a network of the given family, canonical, or undefined. */
function addressOn(ep: DockerEndpointSettings | undefined, net: DesiredNetwork): string | undefined {
  if (!ep) return undefined;
  const v6 = net.subnet.includes(':');
  const a = tryParseIp((v6 ? ep.GlobalIPv6Address : ep.IPAddress) ?? '');
  return a && contains(prefixOf(net.subnet), a) ? formatIp(a) : undefined;
}

/** The container's IPv6 address on a dual-stack network, canonical, or undefined (and on other networks). */
function addressOn6(ep: DockerEndpointSettings | undefined, net: DesiredNetwork): string | undefined {
  if (!ep || !net.subnet6) return undefined;
  const a = tryParseIp(ep.GlobalIPv6Address ?? '');
  return a && contains(prefixOf(net.subnet6), a) ? formatIp(a) : undefined;
}

/**
 * The container's addresses on a network: its address, and on a dual-stack network its IPv6 one,
 * which must be there too (an address of one family only is not complete yet).
 */
function addressesOn(ep: DockerEndpointSettings, net: DesiredNetwork): { ip: string; ip6?: string } | undefined {
  const ip = addressOn(ep, net);
  if (!ip) return undefined;
  if (!net.subnet6) return { ip };
  const ip6 = addressOn6(ep, net);
  return ip6 ? { ip, ip6 } : undefined;
}

interface Endpoint {
  net: DesiredNetwork;
  ep: DockerEndpointSettings;
}

/**
 * A container's addresses on networks not mapped (the default bridge, swarm's docker_gwbridge, any
 * network without a subnet of ours): a query from one comes from this container, which is how a
 * swarm container reaches a host-side resolver. The plan leaves out any inside a subnet of ours.
 */
function clientAddresses(c: DockerContainer, nets: Map<string, DesiredNetwork>): string[] {
  const out = new Set<string>();
  for (const [name, ep] of Object.entries(c.NetworkSettings?.Networks ?? {})) {
    if (nets.has(lc(name))) continue;
    for (const raw of [ep.IPAddress, ep.GlobalIPv6Address]) {
      const a = raw ? tryParseIp(raw) : undefined;
      if (a) out.add(formatIp(a));
    }
  }
  return [...out].sort();
}

function endpoints(c: DockerContainer, nets: Map<string, DesiredNetwork>): Endpoint[] {
  const out: Endpoint[] = [];
  for (const [name, ep] of Object.entries(c.NetworkSettings?.Networks ?? {})) {
    const net = nets.get(lc(name));
    if (net) out.push({ net, ep });
  }
  return out;
}

/** The service a container is a task of: vipdns.service, else its swarm service. */
const serviceLabel = (c: DockerContainer): string | undefined => (c.Labels?.[LABEL.service] ?? c.Labels?.[SWARM.service])?.trim() || undefined;

/** What a swarm engine says beyond the network and container listings. */
export interface SwarmExtras {
  /** GET /services on a manager (empty elsewhere): each swarm service's endpoint mode, VIPs and network aliases. */
  services?: DockerService[];
  /**
   * Container ID → its docker_gwbridge addresses (GET /networks/docker_gwbridge): a container on an
   * overlay reaches the host through them, and its listing leaves that endpoint out.
   */
  gateways?: Map<string, string[]>;
  /**
   * On a manager, the IDs of the swarm tasks whose desired state is running (GET /tasks): a task being
   * shut down (its service removed or scaled down) leaves the answers at once, as it leaves Docker's,
   * not when its container finally exits. Undefined where unknown.
   */
  runningTasks?: Set<string>;
}

export function mapDocker(networkList: DockerNetwork[], containerList: DockerContainer[], swarm: SwarmExtras = {}): Desired {
  const warnings: string[] = [];
  const networks = mapNetworks(networkList, warnings);
  const swarmById = new Map<string, DockerService>();
  for (const s of swarm.services ?? []) if (typeof s?.ID === 'string') swarmById.set(s.ID, s);
  const gateways = swarm.gateways ?? new Map<string, string[]>();
  const clientsOf = (c: DockerContainer): string[] => {
    const own = clientAddresses(c, networks);
    const gw = gateways.get(c.Id ?? '') ?? [];
    return gw.length ? [...new Set([...own, ...gw])].sort() : own;
  };
  const services = new Map<string, DesiredService>();
  const tasks = new Map<string, DesiredTask>();
  const containers = new Map<string, DesiredContainer>();

  const held = new Map<string, Set<string>>();
  const hold = (pool: string, ip: string | undefined): void => {
    if (!ip) return;
    const set = held.get(lc(pool)) ?? new Set<string>();
    set.add(ip);
    held.set(lc(pool), set);
  };
  for (const c of containerList) {
    for (const e of endpoints(c, networks)) {
      hold(e.net.name, addressOn(e.ep, e.net));
      hold(pool6(e.net.name), addressOn6(e.ep, e.net));
    }
  }

  const leaving = (c: DockerContainer): boolean => {
    const task = c.Labels?.[SWARM.taskId];
    return swarm.runningTasks !== undefined && task !== undefined && !swarm.runningTasks.has(task);
  };
  const live = containerList.filter((c) => !parseBool(c.Labels?.[LABEL.ignore]) && containerName(c) !== '' && c.Id && !leaving(c));
  // Sorted so that the same engine state always maps to the same catalog state.
  const nameOf = new Map(live.map((c) => [c, containerName(c)]));
  live.sort((a, b) => (nameOf.get(a)! < nameOf.get(b)! ? -1 : nameOf.get(a)! > nameOf.get(b)! ? 1 : 0));
  const running = (c: DockerContainer): boolean => c.State === 'running';

  // ---- services: every container (running or not) with vipdns.service keeps its service alive,
  // so a service's VIP survives its containers restarting; tasks are the running ones.
  const bySvc = new Map<string, DockerContainer[]>();
  for (const c of live) {
    const svc = serviceLabel(c);
    if (!svc) continue;
    if (!validName('service', svc)) {
      warnings.push(`container "${containerName(c)}": label ${c.Labels?.[LABEL.service] ? LABEL.service : SWARM.service}="${svc}" is not a valid service name; container skipped`);
      continue;
    }
    const list = bySvc.get(lc(svc)) ?? [];
    list.push(c);
    bySvc.set(lc(svc), list);
  }
  for (const members of bySvc.values()) {
    const up = members.filter(running);
    const basis = up.length > 0 ? up : members;
    const first = basis[0]!;
    const name = serviceLabel(first)!;
    const swarmId = first.Labels?.[LABEL.service] ? undefined : first.Labels?.[SWARM.serviceId];
    let svc: DesiredService;
    try {
      if (swarmId === undefined) svc = serviceFrom(name, first, networks);
      else {
        const spec = swarmById.get(swarmId);
        if (!spec) warnings.push(`swarm service "${name}": its endpoint mode and VIPs are not known here (GET /services needs a swarm manager); answered in vip mode with VIPs of vipdns's own`);
        svc = swarmServiceFrom(name, spec, first, networks);
      }
    } catch (e) {
      warnings.push(`service "${name}" skipped: container "${containerName(first)}": ${errorMessage(e)}`);
      continue;
    }
    // A service spans the networks all its containers share: a task address must be real on every one.
    // Not the ingress network: published ports of the engine's own services are its routing mesh's.
    const shared = basis.map((c) => new Set(endpoints(c, networks).filter((e) => !e.net.ingress).map((e) => e.net.name)));
    svc.networks = [...shared[0]!].filter((n) => shared.every((s) => s.has(n))).sort();
    if (svc.networks.length === 0) {
      warnings.push(`service "${name}" skipped: its containers share no network vipdns knows (user-defined networks with a subnet; not the default bridge)`);
      continue;
    }
    for (const c of basis.slice(1)) {
      if (specKey(c) !== specKey(first)) warnings.push(`service "${name}": container "${containerName(c)}" has different vipdns.* labels from "${containerName(first)}"; using "${containerName(first)}"'s`);
    }
    for (const n of new Set(basis.flatMap((c) => endpoints(c, networks).filter((e) => !e.net.ingress).map((e) => e.net.name)))) {
      if (!svc.networks.includes(n)) warnings.push(`service "${name}": network "${n}" left out: not every container of the service is on it`);
    }
    services.set(lc(name), svc);
    for (const c of up) {
      const cname = containerName(c);
      const addresses: Record<string, string> = {};
      const addresses6: Record<string, string> = {};
      for (const e of endpoints(c, networks)) {
        if (!svc.networks.includes(e.net.name)) continue;
        const got = addressesOn(e.ep, e.net);
        if (!got) continue;
        addresses[e.net.name] = got.ip;
        if (got.ip6) addresses6[e.net.name] = got.ip6;
      }
      if (Object.keys(addresses).length !== svc.networks.length) {
        warnings.push(`container "${cname}" (service "${name}") skipped: no address yet on ${svc.networks.filter((n) => !addresses[n]).join(', ')}`);
        continue;
      }
      // Task names are DNS names too: the container's name when it is a valid one.
      const tname = validName('task', cname, true) ? cname : `${name}.${c.Id!.slice(0, 12)}`;
      if (tasks.has(lc(tname))) continue;
      tasks.set(lc(tname), { name: tname, service: name, containerId: c.Id!, addresses, addresses6, clientAddresses: clientsOf(c), health: healthOf(c) });
    }
  }

  // ---- standalone containers: running, no service label, on attachable networks.
  for (const c of live) {
    if (!running(c) || serviceLabel(c)) continue;
    const raw = containerName(c);
    const name = raw.replace(/\./g, '-');
    const eps = endpoints(c, networks);
    if (eps.length === 0) continue; // default bridge only, host network, ...: nothing to announce
    if (!validName('container', name)) {
      warnings.push(`container "${raw}" skipped: its name is not a DNS label`);
      continue;
    }
    if (services.has(lc(name))) {
      warnings.push(`container "${raw}" skipped: service "${services.get(lc(name))!.name}" has that name`);
      continue;
    }
    const addresses: Record<string, string> = {};
    const addresses6: Record<string, string> = {};
    const aliases = parseList(c.Labels?.[LABEL.alias]).filter((a, i, all) => lc(a) !== lc(name) && validName('alias', a) && all.findIndex((x) => lc(x) === lc(a)) === i);
    const networkAliases: Record<string, string[]> = {};
    for (const e of eps) {
      if (!e.net.attachable) {
        if (!e.net.ingress) warnings.push(`container "${raw}": network "${e.net.name}" left out: it is a swarm network that is not attachable`);
        continue;
      }
      const got = addressesOn(e.ep, e.net);
      if (!got) continue;
      addresses[e.net.name] = got.ip;
      if (got.ip6) addresses6[e.net.name] = got.ip6;
      // Docker adds the short container ID as an alias; it only clutters listings here.
      const own = (e.ep.Aliases ?? []).filter((a, i, all) => !(c.Id!.startsWith(a) && /^[0-9a-f]{12,}$/.test(a)) && lc(a) !== lc(name) && !aliases.some((x) => lc(x) === lc(a)) && validName('alias', a) && all.findIndex((x) => lc(x) === lc(a)) === i);
      if (own.length > 0) networkAliases[e.net.name] = own;
    }
    if (Object.keys(addresses).length === 0) continue;
    if (containers.has(lc(name))) {
      warnings.push(`container "${raw}" skipped: another container maps to the name "${name}"`);
      continue;
    }
    containers.set(lc(name), { name, containerId: c.Id!, aliases, networkAliases, addresses, addresses6, clientAddresses: clientsOf(c) });
  }
  const sandboxes: Desired['sandboxes'] = [];
  for (const c of live) {
    if (!running(c)) continue;
    const nets = endpoints(c, networks).filter((e) => e.net.swarm && !e.net.ingress && addressOn(e.ep, e.net)).map((e) => e.net.name);
    if (nets.length > 0) sandboxes.push({ containerId: c.Id!, networks: [...new Set(nets)].sort() });
  }
  return { networks, services, tasks, containers, held, sandboxes, warnings };
}

function serviceFrom(name: string, c: DockerContainer, networks: Map<string, DesiredNetwork>): DesiredService {
  const l = c.Labels ?? {};
  const endpointMode = parseEndpointMode(l[LABEL.endpointMode]);
  const ports = checkPorts(parsePorts(l[LABEL.ports], l[LABEL.publish]));
  const aliases = parseList(l[LABEL.alias]).filter((a) => lc(a) !== lc(name));
  for (const a of aliases) checkName('alias', a);
  const vips: Record<string, string> = {};
  const vips6: Record<string, string> = {};
  const asked = parseVips(l[LABEL.vip]);
  if (endpointMode === 'dnsrr' && (asked.any.length > 0 || asked.byNetwork.size > 0)) throw new Error(`${LABEL.vip} needs endpoint mode vip`);
  // On a dual-stack network an IPv6 VIP asked for is its second VIP.
  const place = (n: DesiredNetwork, ip: string): void => {
    if (n.subnet6 && ip.includes(':')) vips6[n.name] = ip;
    else vips[n.name] = ip;
  };
  for (const [net, ip] of asked.byNetwork) {
    const n = networks.get(lc(net));
    if (n) place(n, ip);
  }
  for (const ip of asked.any) {
    const a = tryParseIp(ip);
    if (!a) throw new Error(`${LABEL.vip}: "${ip}" is not an IP address`);
    for (const n of networks.values()) {
      if (contains(prefixOf(n.subnet), a)) vips[n.name] = formatIp(a);
      else if (n.subnet6 && contains(prefixOf(n.subnet6), a)) vips6[n.name] = formatIp(a);
    }
  }
  const healthCheck = parseHealth(l[LABEL.health]);
  return { name, endpointMode, aliases, ports, networks: [], vips, vips6, networkAliases: {}, ...(healthCheck ? { healthCheck } : {}), from: containerName(c) };
}

/**
 * A swarm service: its mode, VIPs and network aliases from the engine's service object (when this
 * node is a manager); target ports from its endpoint (published ports stay with the engine's routing
 * mesh) and vipdns.ports; vipdns.alias, vipdns.ports and vipdns.health from the service's labels or
 * its containers'.
 */
function swarmServiceFrom(name: string, spec: DockerService | undefined, c: DockerContainer, networks: Map<string, DesiredNetwork>): DesiredService {
  const labels = { ...(c.Labels ?? {}), ...(spec?.Spec?.Labels ?? {}) };
  const endpointMode = parseEndpointMode(spec?.Spec?.EndpointSpec?.Mode ?? 'vip');
  const byId = new Map([...networks.values()].map((n) => [n.dockerId, n]));
  const netOf = (ref: string | undefined): DesiredNetwork | undefined => (ref ? byId.get(ref) ?? networks.get(lc(ref)) : undefined);
  const vips: Record<string, string> = {};
  const vips6: Record<string, string> = {};
  if (endpointMode === 'vip') {
    for (const v of spec?.Endpoint?.VirtualIPs ?? []) {
      const n = netOf(v.NetworkID);
      const ip = tryParseIp((v.Addr ?? '').split('/')[0]!);
      if (!n || n.ingress || !ip) continue;
      if (contains(prefixOf(n.subnet), ip)) vips[n.name] = formatIp(ip);
      else if (n.subnet6 && contains(prefixOf(n.subnet6), ip)) vips6[n.name] = formatIp(ip);
    }
  }
  const networkAliases: Record<string, string[]> = {};
  for (const sn of spec?.Spec?.TaskTemplate?.Networks ?? spec?.Spec?.Networks ?? []) {
    const n = netOf(sn.Target);
    const list = (sn.Aliases ?? []).filter((a) => lc(a) !== lc(name) && validName('alias', a));
    if (n && !n.ingress && list.length > 0) networkAliases[n.name] = list;
  }
  // A swarm service names no ports unless it publishes some: vipdns.ports names the rest (Docker's
  // IPVS balances every port of a VIP; vipdns balances the ports it knows).
  const ports: PortSpec[] = parsePorts(labels[LABEL.ports], undefined);
  for (const p of spec?.Endpoint?.Ports ?? []) {
    const protocol = (p.Protocol ?? 'tcp').toLowerCase() as Protocol;
    if ((protocol !== 'tcp' && protocol !== 'udp') || typeof p.TargetPort !== 'number') continue;
    if (!ports.some((x) => x.target === p.TargetPort && x.protocol === protocol)) ports.push({ protocol, target: p.TargetPort });
  }
  const aliases = parseList(labels[LABEL.alias]).filter((a) => lc(a) !== lc(name));
  for (const a of aliases) checkName('alias', a);
  const healthCheck = parseHealth(labels[LABEL.health]);
  return { name, endpointMode, aliases, ports: checkPorts(ports), networks: [], vips, vips6, networkAliases, ...(healthCheck ? { healthCheck } : {}), from: containerName(c) };
}

function specKey(c: DockerContainer): string {
  const l = c.Labels ?? {};
  return JSON.stringify([LABEL.endpointMode, LABEL.ports, LABEL.publish, LABEL.alias, LABEL.vip, LABEL.health].map((k) => l[k] ?? ''));
}
