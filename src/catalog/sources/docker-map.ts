// Docker engine JSON → the catalog entries it implies ("desired" state). Pure: no I/O, no
// catalog access; the planner (docker-plan.ts) compares the result with the catalog.
import { errorMessage } from '../../errors.js';
import { contains, formatCidr, formatIp, parseCidr, tryParseIp } from '../../net/ip.js';
import type { EndpointMode, Health, PortSpec } from '../model.js';
import { checkName, checkPorts } from '../validate.js';
import { LABEL, parseBool, parseEndpointMode, parseList, parsePorts, parseVips } from './docker-labels.js';
import type { DockerContainer, DockerEndpointSettings, DockerNetwork } from './docker-types.js';

export interface DesiredNetwork {
  name: string;
  subnet: string; // canonical CIDR
  gateway?: string;
  attachable: boolean;
  dockerId: string;
}

export interface DesiredService {
  name: string;
  endpointMode: EndpointMode;
  aliases: string[];
  ports: PortSpec[];
  networks: string[]; // sorted
  vips: Record<string, string>; // network → VIP asked for by label
  from: string; // the container whose labels define it, for messages
}

export interface DesiredTask {
  name: string;
  service: string;
  containerId: string;
  addresses: Record<string, string>;
  /** The container's addresses on networks vipdns does not map (bridge, docker_gwbridge): DNS clients too. */
  clientAddresses: string[];
  health: Health;
}

export interface DesiredContainer {
  name: string;
  containerId: string;
  aliases: string[];
  addresses: Record<string, string>;
  clientAddresses: string[];
}

export interface Desired {
  networks: Map<string, DesiredNetwork>;
  services: Map<string, DesiredService>;
  tasks: Map<string, DesiredTask>;
  containers: Map<string, DesiredContainer>;
  /**
   * Every address Docker reports for a container on each network (by lower-case name), mapped
   * or not (ignored, skipped, not yet announced): a VIP must never take one of them.
   */
  held: Map<string, Set<string>>;
  /** Things skipped and why, one line each (the source logs new ones). */
  warnings: string[];
}

/** Docker's default networks have no service discovery in Docker either (legacy links only). */
const DEFAULT_NETWORKS = new Set(['bridge', 'host', 'none']);
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
    // The catalog keeps one subnet per network: IPv4 when there is one (dual-stack: its IPv6 part is left out).
    const cfg = configs.find((c) => !c.Subnet!.includes(':')) ?? configs[0];
    if (!cfg) {
      warnings.push(`network "${name}" skipped: no subnet in its IPAM config`);
      continue;
    }
    let subnet: string;
    try {
      subnet = formatCidr(parseCidr(cfg.Subnet!));
    } catch (e) {
      warnings.push(`network "${name}" skipped: ${errorMessage(e)}`);
      continue;
    }
    const d: DesiredNetwork = {
      name,
      subnet,
      // Local networks (bridge, macvlan, ipvlan) take standalone containers; swarm overlays only if attachable.
      attachable: n.Scope === 'swarm' ? n.Attachable === true : true,
      dockerId: n.Id ?? name,
    };
    const gw = cfg.Gateway ? tryParseIp(cfg.Gateway) : undefined;
    if (gw && contains(parseCidr(subnet), gw)) d.gateway = formatIp(gw);
    if (out.has(lc(name))) continue;
    out.set(lc(name), d);
  }
  return out;
}

/** The container's address on a network of the given family, canonical, or undefined. */
function addressOn(ep: DockerEndpointSettings | undefined, net: DesiredNetwork): string | undefined {
  if (!ep) return undefined;
  const v6 = net.subnet.includes(':');
  const a = tryParseIp((v6 ? ep.GlobalIPv6Address : ep.IPAddress) ?? '');
  return a && contains(parseCidr(net.subnet), a) ? formatIp(a) : undefined;
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

export function mapDocker(networkList: DockerNetwork[], containerList: DockerContainer[]): Desired {
  const warnings: string[] = [];
  const networks = mapNetworks(networkList, warnings);
  const services = new Map<string, DesiredService>();
  const tasks = new Map<string, DesiredTask>();
  const containers = new Map<string, DesiredContainer>();

  const held = new Map<string, Set<string>>();
  for (const c of containerList) {
    for (const e of endpoints(c, networks)) {
      const ip = addressOn(e.ep, e.net);
      if (!ip) continue;
      const set = held.get(lc(e.net.name)) ?? new Set<string>();
      set.add(ip);
      held.set(lc(e.net.name), set);
    }
  }

  const live = containerList.filter((c) => !parseBool(c.Labels?.[LABEL.ignore]) && containerName(c) !== '' && c.Id);
  // Sorted so that the same engine state always maps to the same catalog state.
  live.sort((a, b) => (containerName(a) < containerName(b) ? -1 : containerName(a) > containerName(b) ? 1 : 0));
  const running = (c: DockerContainer): boolean => c.State === 'running';

  // ---- services: every container (running or not) with vipdns.service keeps its service alive,
  // so a service's VIP survives its containers restarting; tasks are the running ones.
  const bySvc = new Map<string, DockerContainer[]>();
  for (const c of live) {
    const svc = c.Labels?.[LABEL.service]?.trim();
    if (!svc) continue;
    if (!validName('service', svc)) {
      warnings.push(`container "${containerName(c)}": label ${LABEL.service}="${svc}" is not a valid service name; container skipped`);
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
    const name = first.Labels![LABEL.service]!.trim();
    let svc: DesiredService;
    try {
      svc = serviceFrom(name, first, networks);
    } catch (e) {
      warnings.push(`service "${name}" skipped: container "${containerName(first)}": ${errorMessage(e)}`);
      continue;
    }
    // A service spans the networks all its containers share: a task address must be real on every one.
    const shared = basis.map((c) => new Set(endpoints(c, networks).map((e) => e.net.name)));
    svc.networks = [...shared[0]!].filter((n) => shared.every((s) => s.has(n))).sort();
    if (svc.networks.length === 0) {
      warnings.push(`service "${name}" skipped: its containers share no network vipdns knows (user-defined networks with a subnet; not the default bridge)`);
      continue;
    }
    for (const c of basis.slice(1)) {
      if (specKey(c) !== specKey(first)) warnings.push(`service "${name}": container "${containerName(c)}" has different vipdns.* labels from "${containerName(first)}"; using "${containerName(first)}"'s`);
    }
    for (const n of new Set(basis.flatMap((c) => endpoints(c, networks).map((e) => e.net.name)))) {
      if (!svc.networks.includes(n)) warnings.push(`service "${name}": network "${n}" left out: not every container of the service is on it`);
    }
    services.set(lc(name), svc);
    for (const c of up) {
      const cname = containerName(c);
      const addresses: Record<string, string> = {};
      for (const e of endpoints(c, networks)) {
        if (!svc.networks.includes(e.net.name)) continue;
        const ip = addressOn(e.ep, e.net);
        if (ip) addresses[e.net.name] = ip;
      }
      if (Object.keys(addresses).length !== svc.networks.length) {
        warnings.push(`container "${cname}" (service "${name}") skipped: no address yet on ${svc.networks.filter((n) => !addresses[n]).join(', ')}`);
        continue;
      }
      // Task names are DNS names too: the container's name when it is a valid one.
      const tname = validName('task', cname, true) ? cname : `${name}.${c.Id!.slice(0, 12)}`;
      if (tasks.has(lc(tname))) continue;
      tasks.set(lc(tname), { name: tname, service: name, containerId: c.Id!, addresses, clientAddresses: clientAddresses(c, networks), health: healthOf(c) });
    }
  }

  // ---- standalone containers: running, no service label, on attachable networks.
  for (const c of live) {
    if (!running(c) || c.Labels?.[LABEL.service]) continue;
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
    const aliases: string[] = [];
    const seen = new Set([lc(name)]);
    const addAlias = (a: string): void => {
      // Docker adds the short container ID as an alias; it only clutters listings here.
      if (c.Id!.startsWith(a) && /^[0-9a-f]{12,}$/.test(a)) return;
      if (seen.has(lc(a)) || !validName('alias', a)) return;
      seen.add(lc(a));
      aliases.push(a);
    };
    for (const e of eps) {
      if (!e.net.attachable) {
        warnings.push(`container "${raw}": network "${e.net.name}" left out: it is a swarm network that is not attachable`);
        continue;
      }
      const ip = addressOn(e.ep, e.net);
      if (!ip) continue;
      addresses[e.net.name] = ip;
      for (const a of e.ep.Aliases ?? []) addAlias(a);
    }
    for (const a of parseList(c.Labels?.[LABEL.alias])) addAlias(a);
    if (Object.keys(addresses).length === 0) continue;
    if (containers.has(lc(name))) {
      warnings.push(`container "${raw}" skipped: another container maps to the name "${name}"`);
      continue;
    }
    containers.set(lc(name), { name, containerId: c.Id!, aliases, addresses, clientAddresses: clientAddresses(c, networks) });
  }
  return { networks, services, tasks, containers, held, warnings };
}

function serviceFrom(name: string, c: DockerContainer, networks: Map<string, DesiredNetwork>): DesiredService {
  const l = c.Labels ?? {};
  const endpointMode = parseEndpointMode(l[LABEL.endpointMode]);
  const ports = checkPorts(parsePorts(l[LABEL.ports], l[LABEL.publish]));
  const aliases = parseList(l[LABEL.alias]).filter((a) => lc(a) !== lc(name));
  for (const a of aliases) checkName('alias', a);
  const vips: Record<string, string> = {};
  const asked = parseVips(l[LABEL.vip]);
  if (endpointMode === 'dnsrr' && (asked.any.length > 0 || asked.byNetwork.size > 0)) throw new Error(`${LABEL.vip} needs endpoint mode vip`);
  for (const [net, ip] of asked.byNetwork) {
    const n = networks.get(lc(net));
    if (n) vips[n.name] = ip;
  }
  for (const ip of asked.any) {
    const a = tryParseIp(ip);
    if (!a) throw new Error(`${LABEL.vip}: "${ip}" is not an IP address`);
    for (const n of networks.values()) if (contains(parseCidr(n.subnet), a)) vips[n.name] = formatIp(a);
  }
  return { name, endpointMode, aliases, ports, networks: [], vips, from: containerName(c) };
}

function specKey(c: DockerContainer): string {
  const l = c.Labels ?? {};
  return JSON.stringify([LABEL.endpointMode, LABEL.ports, LABEL.publish, LABEL.alias, LABEL.vip].map((k) => l[k] ?? ''));
}
