// The domain rules of every catalog mutation, each a function of a transaction (txn.ts): it
// validates fully, then writes fresh objects. The catalog runs one per commit-queue op; a
// batch (the Docker source's plan) runs several on one transaction, all or nothing.
import { randomBytes } from 'node:crypto';
import { VipdnsError } from '../errors.js';
import { contains, formatCidr, formatIp, overlaps, parseCidr, parseIp } from '../net/ip.js';
import { type AllocOptions, allocateOn, allocatePublished, inPool6, requestOn } from './allocator.js';
import { defaultGateway } from './ipam.js';
import { lc } from './lookups.js';
import { type Container, type EndpointMode, type Health, type HealthCheckSpec, type Network, type PortRequest, type PortSpec, type Scheduler, type Service, type ServiceAttachment, type Task, allAddresses, subnetsOf } from './model.js';
import type { Txn } from './txn.js';
import { AUTO_PUBLISHED, checkAttachment, checkHealthCheck, checkList, checkName, checkPorts, checkScheduler, checkSticky, checkStrings, checkWeight } from './validate.js';

export interface NetworkRequest {
  name: string;
  /** One subnet, or two of different families (dual stack). */
  subnet: string | string[];
  /** Per subnet, matched by the subnet that holds it (default: each subnet's first address). */
  gateway?: string | string[];
  attachable?: boolean;
  ingress?: boolean;
}

/** `vip6`/`ip6`: the IPv6 address on a dual-stack network (`vip`/`ip` of either family is placed by its family too). */
export type AttachmentRequest = string | { network: string; vip?: string; vip6?: string; ip?: string; ip6?: string; aliases?: string[] };

export interface ServiceRequest {
  name: string;
  networks: AttachmentRequest[];
  endpointMode?: EndpointMode;
  aliases?: string[];
  ports?: PortRequest[];
  healthCheck?: HealthCheckSpec;
  lb?: Scheduler;
  sticky?: number;
}

export interface ServiceUpdate {
  networkAdd?: AttachmentRequest[];
  networkRm?: string[];
  endpointMode?: EndpointMode;
  aliasAdd?: string[];
  aliasRm?: string[];
  ports?: PortRequest[];
  healthCheck?: HealthCheckSpec | null;
  lb?: Scheduler;
  sticky?: number; // 0: off
}

export interface TaskRequest {
  service: string;
  ips?: string[]; // each matched to the service network whose subnet contains it
  name?: string;
  weight?: number;
  /** Its container's addresses on no network of ours (Docker's bridge, docker_gwbridge). */
  clientAddresses?: string[];
}

export interface TaskUpdate {
  weight?: number;
}

export interface ContainerRequest {
  name: string;
  networks: AttachmentRequest[]; // {network, ip?}
  aliases?: string[];
  /** Its addresses on no network of ours (Docker's bridge, docker_gwbridge). */
  clientAddresses?: string[];
}

const newId = (): string => randomBytes(6).toString('hex');
const now = (): string => new Date().toISOString();

export function createNetwork(tx: Txn, req: NetworkRequest): Network {
  const name = checkName('network', req.name);
  if (tx.find('network', name)) throw new VipdnsError('DUPLICATE_NAME', `network "${name}" already exists`);
  const texts = typeof req.subnet === 'string' ? [req.subnet] : Array.isArray(req.subnet) ? req.subnet : [];
  if (texts.length === 0 || texts.some((t) => typeof t !== 'string' || t === '')) {
    throw new VipdnsError('BAD_CIDR', `network "${name}" needs a subnet (e.g. --subnet 10.0.9.0/24, or --subnet 10.0.9.0/24 --subnet fd00:9::/64 for dual stack)`);
  }
  if (texts.length > 2) throw new VipdnsError('BAD_CIDR', `network "${name}" has ${texts.length} subnets: give one, or one IPv4 and one IPv6 (dual stack)`);
  const prefixes = texts.map((t) => parseCidr(t)).sort((a, b) => a.family - b.family);
  if (prefixes.length === 2 && prefixes[0]!.family === prefixes[1]!.family) {
    throw new VipdnsError('BAD_CIDR', `network "${name}": two IPv${prefixes[0]!.family} subnets (${texts.join(', ')}); a dual-stack network has one IPv4 and one IPv6 subnet`);
  }
  for (const other of tx.all('network')) {
    for (const theirs of subnetsOf(other)) {
      const p = prefixes.find((x) => overlaps(x, parseCidr(theirs)));
      if (p) throw new VipdnsError('SUBNET_OVERLAP', `subnet ${formatCidr(p)} overlaps network "${other.name}" (${theirs})`);
    }
  }
  if (req.ingress === true) {
    if (req.attachable === true) throw new VipdnsError('BAD_REQUEST', `network "${name}": an ingress network carries published ports only and cannot be attachable`);
    const other = tx.all('network').find((n) => n.ingress);
    if (other) throw new VipdnsError('CONFLICT', `network "${other.name}" is already the ingress network; there is at most one (remove it first to re-create it with another subnet)`);
  }
  const gateways = prefixes.map((p) => defaultGateway(p));
  const given = req.gateway === undefined ? [] : (typeof req.gateway === 'string' ? [req.gateway] : req.gateway).filter((g) => g !== '');
  const set = new Set<number>();
  for (const text of given) {
    const g = parseIp(text);
    const i = prefixes.findIndex((p) => contains(p, g));
    if (i < 0) throw new VipdnsError('IP_OUTSIDE_SUBNET', `gateway ${text} is outside subnet ${prefixes.map(formatCidr).join(' and ')}`);
    if (set.has(i)) throw new VipdnsError('BAD_REQUEST', `two gateways given for subnet ${formatCidr(prefixes[i]!)}`);
    set.add(i);
    gateways[i] = g.value;
  }
  const [p4, p6] = prefixes as [typeof prefixes[0], (typeof prefixes)[0] | undefined];
  const net: Network = {
    id: newId(),
    name,
    subnet: formatCidr(p4),
    gateway: formatIp({ family: p4.family, value: gateways[0]! }),
    attachable: req.attachable === true,
    ...(req.ingress === true ? { ingress: true } : {}),
    createdAt: now(),
    ipamCursor: (gateways[0]! - p4.base).toString(),
  };
  if (p6) {
    net.subnet6 = formatCidr(p6);
    net.gateway6 = formatIp({ family: 6, value: gateways[1]! });
    net.ipamCursor6 = (gateways[1]! - p6.base).toString();
  }
  tx.put('network', name, net);
  return net;
}

export function removeNetwork(tx: Txn, name: string): Network {
  const net = tx.network(name);
  const users = [...tx.servicesOn(net.name).map((x) => `service ${x.name}`), ...tx.containersOn(net.name).map((c) => `container ${c.name}`)];
  if (users.length > 0) {
    const shown = users.slice(0, 5).join(', ') + (users.length > 5 ? `, and ${users.length - 5} more` : '');
    throw new VipdnsError('NETWORK_IN_USE', `network "${net.name}" is in use by ${shown}; remove or detach them first`);
  }
  if (net.ingress) {
    // Published ports enter through the ingress network: it stays while any service publishes one.
    const publishers = tx.all('service').filter((x) => x.ports.some((p) => p.published !== undefined));
    if (publishers.length > 0) {
      const shown = publishers.slice(0, 5).map((x) => `"${x.name}"`).join(', ') + (publishers.length > 5 ? `, and ${publishers.length - 5} more` : '');
      throw new VipdnsError('NETWORK_IN_USE', `network "${net.name}" is the ingress network and service ${shown} publish${publishers.length === 1 ? 'es' : ''} a port; unpublish (vipdns service update NAME --publish-rm PORT) or remove them first`);
    }
  }
  tx.delete('network', net.name);
  return net;
}

/** `alloc`: how VIPs are picked (the Docker source takes them from the top, around Docker's addresses). */
export function createService(tx: Txn, req: ServiceRequest, alloc?: AllocOptions): Service {
  const name = checkName('service', req.name);
  checkPrimaryNameFree(tx, name);
  const mode = checkMode(req.endpointMode ?? 'vip');
  const aliases = checkAliases(tx, checkStrings('aliases', req.aliases), name);
  const ports = checkPorts(req.ports);
  checkPublished(tx, ports, mode, undefined);
  assignPublished(tx, ports, []);
  const healthCheck = checkHealthCheck(req.healthCheck);
  const lb = req.lb === undefined ? undefined : checkScheduler(req.lb);
  const sticky = req.sticky === undefined ? undefined : checkSticky(req.sticky, mode);
  if (!Array.isArray(req.networks) || req.networks.length === 0) {
    throw new VipdnsError('BAD_REQUEST', `service "${name}" needs at least one network (--network NET)`);
  }
  const svc: Service = {
    id: newId(),
    name,
    aliases,
    endpointMode: mode,
    attachments: planAttachments(tx, req.networks, mode, name, [], alloc),
    ports,
    fwmark: tx.nextFwmark,
    createdAt: now(),
  };
  if (healthCheck) svc.healthCheck = healthCheck;
  if (lb && lb !== 'rr') svc.lb = lb;
  if (sticky) svc.sticky = sticky;
  tx.nextFwmark += 1;
  tx.put('service', name, svc);
  return svc;
}

export function addTask(tx: Txn, req: TaskRequest): Task {
  if (typeof req.service !== 'string') throw new VipdnsError('BAD_REQUEST', `a task needs its service's name, got ${JSON.stringify(req.service)}`);
  const svc = tx.service(req.service);
  const id = newId();
  const slot = nextSlot(tx, svc.name);
  const name = req.name !== undefined && req.name !== null && req.name !== '' ? checkName('task', req.name, { dotted: true }) : `${svc.name}.${slot}.${id}`;
  if (tx.find('task', name)) throw new VipdnsError('DUPLICATE_NAME', `task "${name}" already exists`);
  const wanted = new Map<string, string[]>();
  for (const ip of checkStrings('ips', req.ips)) {
    const a = parseIp(ip);
    const att = svc.attachments.find((x) => subnetsOf(tx.network(x.network)).some((sn) => contains(parseCidr(sn), a)));
    if (!att) {
      const nets = svc.attachments.map((x) => `${x.network} (${subnetsOf(tx.network(x.network)).join(', ')})`).join(', ');
      throw new VipdnsError('IP_OUTSIDE_SUBNET', `task IP ${ip} is outside every network of service "${svc.name}": ${nets}`);
    }
    const list = wanted.get(att.network) ?? [];
    list.push(ip);
    wanted.set(att.network, list);
  }
  const addresses: Record<string, string> = {};
  const addresses6: Record<string, string> = {};
  for (const a of svc.attachments) placeAddresses(tx, tx.network(a.network), wanted.get(a.network) ?? [], 'task IP', addresses, addresses6);
  const task: Task = { id, name, service: svc.name, slot, addresses, ...(Object.keys(addresses6).length ? { addresses6 } : {}), health: 'unknown', ...(tx.host.node ? { node: tx.host.node } : {}), createdAt: now() };
  Object.assign(task, clientAddressesOf(tx, req.clientAddresses, allAddresses(task)));
  if (req.weight !== undefined && req.weight !== null) {
    const w = checkWeight(req.weight);
    if (w !== 1) task.weight = w;
  }
  tx.put('task', id, task);
  return task;
}

export function updateTask(tx: Txn, ref: string, upd: TaskUpdate): Task {
  const t = tx.task(ref);
  if (upd.weight === undefined) return t;
  const w = checkWeight(upd.weight);
  const next: Task = { ...t };
  if (w === 1) delete next.weight;
  else next.weight = w;
  if ((t.weight ?? 1) !== w) tx.put('task', t.id, next);
  return next;
}

export function removeTask(tx: Txn, ref: string): Task {
  const t = tx.task(ref);
  tx.delete('task', t.id);
  return t;
}

export function addContainer(tx: Txn, req: ContainerRequest): Container {
  const name = checkName('container', req.name);
  checkPrimaryNameFree(tx, name);
  const aliases = checkAliases(tx, checkStrings('aliases', req.aliases), name);
  if (!Array.isArray(req.networks) || req.networks.length === 0) {
    throw new VipdnsError('BAD_REQUEST', `container "${name}" needs a network (--network NET)`);
  }
  const addresses: Record<string, string> = {};
  const addresses6: Record<string, string> = {};
  const perNet: Record<string, string[]> = {};
  for (const r of req.networks) {
    const { network, addrs, aliases: netAliases } = checkAttachment(r, 'ip');
    const net = tx.network(network);
    if (!net.attachable) {
      throw new VipdnsError('NETWORK_NOT_ATTACHABLE', `network "${net.name}" is not attachable: create it with --attachable to add standalone containers`);
    }
    if (net.name in addresses) throw new VipdnsError('BAD_REQUEST', `network "${net.name}" is listed twice`);
    placeAddresses(tx, net, addrs, 'container IP', addresses, addresses6);
    const named = networkAliases(tx, net, netAliases, name).aliases;
    if (named) perNet[net.name] = named;
  }
  const c: Container = { id: newId(), name, aliases, addresses, createdAt: now() };
  if (Object.keys(addresses6).length) c.addresses6 = addresses6;
  if (Object.keys(perNet).length) c.networkAliases = perNet;
  Object.assign(c, clientAddressesOf(tx, req.clientAddresses, allAddresses(c)));
  tx.put('container', name, c);
  return c;
}

export function removeContainer(tx: Txn, name: string): Container {
  const c = tx.container(name);
  tx.delete('container', c.name);
  return c;
}

export function updateService(tx: Txn, name: string, upd: ServiceUpdate, limit?: number): Service {
  const svc = tx.service(name);
  const mode = checkMode(upd.endpointMode ?? svc.endpointMode);
  const rm = new Set(checkStrings('networkRm', upd.networkRm).map((n) => tx.network(n).name));
  for (const n of rm) {
    if (!svc.attachments.some((a) => a.network === n)) throw new VipdnsError('NOT_ATTACHED', `service "${svc.name}" is not attached to network "${n}"`);
  }
  const kept = svc.attachments.filter((a) => !rm.has(a.network));
  const adds = checkList('networkAdd', upd.networkAdd) as AttachmentRequest[];
  if (kept.length + adds.length === 0) throw new VipdnsError('BAD_REQUEST', `service "${svc.name}" must stay attached to at least one network`);
  const ports = upd.ports !== undefined ? checkPorts(upd.ports) : svc.ports;
  checkPublished(tx, ports, mode, svc.name);
  if (upd.ports !== undefined) assignPublished(tx, ports, svc.ports);
  const aliases = upd.aliasAdd || upd.aliasRm ? updatedAliases(tx, svc.aliases, checkStrings('aliasAdd', upd.aliasAdd), checkStrings('aliasRm', upd.aliasRm), svc.name) : svc.aliases;
  const healthCheck = upd.healthCheck === null ? undefined : upd.healthCheck !== undefined ? checkHealthCheck(upd.healthCheck) : svc.healthCheck;
  const lb = upd.lb !== undefined ? checkScheduler(upd.lb) : (svc.lb ?? 'rr');
  const sticky = upd.sticky !== undefined ? checkSticky(upd.sticky, mode) : svc.sticky !== undefined ? checkSticky(svc.sticky, mode) : undefined;
  const tasks = tx.tasksOf(svc.name);
      if (limit !== undefined && (adds.length + rm.size) * tasks.length + 1 > limit) {
    throw new VipdnsError(
      'BAD_REQUEST',
      `service "${svc.name}" has ${tasks.length} tasks: attaching or detaching a network rewrites every one, over the store's ${limit} objects per change; scale the service down, change its networks, then scale it up`,
    );
  }

  // VIPs: kept attachments keep theirs (vip→vip), get one (dnsrr→vip) or drop it (vip→dnsrr).
  const attachments: ServiceAttachment[] = kept.map((a) => {
    const named = a.aliases ? { aliases: a.aliases } : {};
    const net = tx.network(a.network);
    if (mode === 'dnsrr' || net.ingress) return { network: a.network, ...named };
    return a.vip ? { ...a } : { network: a.network, ...vipsFor(tx, net, [], undefined), ...named };
  });
  const added = planAttachments(tx, adds, mode, svc.name, kept.map((a) => a.network));
  attachments.push(...added);
  const next: Service = { ...svc, attachments, endpointMode: mode, ports, aliases };
  if (healthCheck) next.healthCheck = healthCheck;
  else delete next.healthCheck;
  if (lb !== 'rr') next.lb = lb;
  else delete next.lb;
  if (sticky) next.sticky = sticky;
  else delete next.sticky;
  // The service first, so its new VIPs are in use before its tasks get addresses.
  tx.put('service', svc.name, next);
  // Existing tasks get an address on each newly added network and lose removed ones.
  // Its removed addresses are freed first (a network detached and re-attached at once may hand
  // the same one back); its new ones, on distinct networks, go in one put that makes them taken
  // for the next task's allocation.
  if (added.length + rm.size > 0) {
    for (const t of tasks) {
      const remaining = { ...t.addresses };
      const remaining6 = { ...t.addresses6 };
      for (const n of rm) {
        delete remaining[n];
        delete remaining6[n];
      }
      if (rm.size > 0) tx.put('task', t.id, withAddresses(t, remaining, remaining6));
      if (added.length === 0) continue;
      const addresses = { ...remaining };
      const addresses6 = { ...remaining6 };
      for (const a of added) placeAddresses(tx, tx.network(a.network), [], 'task IP', addresses, addresses6);
      tx.put('task', t.id, withAddresses(t, addresses, addresses6));
    }
  }
  return next;
}

export function removeService(tx: Txn, name: string): Service {
  const svc = tx.service(name);
  for (const t of tx.tasksOf(svc.name)) tx.delete('task', t.id);
  tx.delete('service', svc.name);
  return svc;
}

export function setTaskHealth(tx: Txn, id: string, health: Health): void {
  const cur = tx.get('task', id);
  if (cur && cur.health !== health) tx.put('task', id, { ...cur, health });
}

// ---------- domain rules, on a transaction ----------

/**
 * Addresses that identify a DNS client as this object without being on a network of ours: each a
 * valid IP, canonical, outside every network (an address there would be another object's).
 */
function clientAddressesOf(tx: Txn, raw: unknown, own: string[]): { clientAddresses?: string[] } {
  const list = checkStrings('clientAddresses', raw);
  if (list.length === 0) return {};
  const nets = tx.all('network').flatMap((n) => subnetsOf(n).map((sn) => ({ name: n.name, prefix: parseCidr(sn) })));
  const out = new Set<string>();
  for (const text of list) {
    const a = parseIp(text);
    const inside = nets.find((n) => contains(n.prefix, a));
    if (inside) throw new VipdnsError('BAD_REQUEST', `client address ${text} is inside network "${inside.name}": give it as the object's address on that network instead`);
    const ip = formatIp(a);
    if (!own.includes(ip)) out.add(ip);
  }
  return out.size ? { clientAddresses: [...out].sort() } : {};
}

function checkMode(m: unknown): EndpointMode {
  if (m !== 'vip' && m !== 'dnsrr') throw new VipdnsError('BAD_REQUEST', `endpoint mode must be vip or dnsrr, got "${String(m)}"`);
  return m;
}

function planAttachments(tx: Txn, reqs: AttachmentRequest[], mode: EndpointMode, svcName: string, existing: string[], alloc?: AllocOptions): ServiceAttachment[] {
  const out: ServiceAttachment[] = [];
  const seen = new Set(existing);
  for (const r of reqs) {
    const { network, addrs, aliases } = checkAttachment(r, 'vip');
    const net = tx.network(network);
    if (seen.has(net.name)) throw new VipdnsError('CONFLICT', `service "${svcName}" is already attached to network "${net.name}"`);
    seen.add(net.name);
    const named = networkAliases(tx, net, aliases, svcName);
    if (mode === 'dnsrr' || net.ingress) {
      if (addrs.length) throw new VipdnsError('BAD_REQUEST', net.ingress ? `a VIP was given for network "${net.name}", the ingress network: services get no VIP on it (it carries published ports only)` : `a VIP was given for network "${net.name}" but service "${svcName}" uses endpoint mode dnsrr`);
      out.push({ network: net.name, ...named });
      continue;
    }
    out.push({ network: net.name, ...vipsFor(tx, net, addrs, alloc), ...named });
  }
  return out;
}

/**
 * The requested addresses of one object on `net` (at most one per subnet, placed by family), the rest
 * allocated: one address, or on a dual-stack network one per family.
 */
function pickAddresses(tx: Txn, net: Network, requested: string[], what: string, alloc?: AllocOptions): { ip: string; ip6?: string } {
  const pools = subnetsOf(net);
  const got: Array<string | undefined> = pools.map(() => undefined);
  for (const text of requested) {
    const ip = requestOn(tx, net.name, text, what);
    const i = inPool6(net, ip) ? 1 : 0;
    if (got[i] !== undefined) {
      throw new VipdnsError('BAD_REQUEST', `two ${what}s given for ${pools.length === 2 ? `the IPv${i === 1 ? 6 : 4} subnet of ` : ''}network "${net.name}" (${got[i]} and ${ip})`);
    }
    got[i] = ip;
  }
  const ip = got[0] ?? allocateOn(tx, net.name, alloc);
  return pools.length === 2 ? { ip, ip6: got[1] ?? allocateOn(tx, net.name, alloc, true) } : { ip };
}

function vipsFor(tx: Txn, net: Network, requested: string[], alloc: AllocOptions | undefined): { vip: string; vip6?: string } {
  const { ip, ip6 } = pickAddresses(tx, net, requested, 'VIP', alloc);
  return ip6 ? { vip: ip, vip6: ip6 } : { vip: ip };
}

/** An object's addresses on `net` written into its per-family records. */
function placeAddresses(tx: Txn, net: Network, requested: string[], what: string, addresses: Record<string, string>, addresses6: Record<string, string>): void {
  const { ip, ip6 } = pickAddresses(tx, net, requested, what);
  addresses[net.name] = ip;
  if (ip6) addresses6[net.name] = ip6;
}

/** `t` with these addresses; no empty addresses6 record. */
function withAddresses(t: Task, addresses: Record<string, string>, addresses6: Record<string, string>): Task {
  const next: Task = { ...t, addresses };
  if (Object.keys(addresses6).length) next.addresses6 = addresses6;
  else delete next.addresses6;
  return next;
}

function checkPrimaryNameFree(tx: Txn, name: string): void {
  if (tx.find('service', name)) throw new VipdnsError('DUPLICATE_NAME', `name "${name}" is already used by service "${name}"`);
  const c = tx.find('container', name);
  if (c) throw new VipdnsError('DUPLICATE_NAME', `name "${name}" is already used by container "${c.name}"`);
  const alias = tx.aliasHolder(name);
  if (alias) throw new VipdnsError('DUPLICATE_NAME', `name "${name}" is already an alias of ${alias}`);
}

/** Checked network aliases as an object's field (absent when none); nothing is answered on ingress. */
function networkAliases(tx: Txn, net: Network, raw: string[] | undefined, owner: string): { aliases?: string[] } {
  if (!raw?.length) return {};
  if (net.ingress) throw new VipdnsError('BAD_REQUEST', `network aliases on "${net.name}", the ingress network: nothing on it is answered in DNS`);
  const aliases = checkAliases(tx, raw, owner);
  return aliases.length ? { aliases } : {};
}

/** Aliases may be shared (answers merge, as Docker's network aliases do) but never shadow a name. */
function checkAliases(tx: Txn, aliases: string[], owner: string): string[] {
  if (!Array.isArray(aliases)) throw new VipdnsError('BAD_REQUEST', 'aliases must be a list');
  const out: string[] = [];
  for (const a of aliases) {
    checkName('alias', a);
    if (lc(a) === lc(owner) || out.some((x) => lc(x) === lc(a))) continue;
    if (tx.find('service', a) || tx.find('container', a)) {
      throw new VipdnsError('DUPLICATE_NAME', `alias "${a}" is already the name of a service or container`);
    }
    out.push(a);
  }
  return out;
}

function updatedAliases(tx: Txn, cur: string[], add: string[], rm: string[], owner: string): string[] {
  for (const r of rm) if (!cur.some((a) => lc(a) === lc(r))) throw new VipdnsError('NOT_FOUND', `service "${owner}" has no alias "${r}"`);
  const kept = cur.filter((a) => !rm.some((r) => lc(r) === lc(a)));
  return [...kept, ...checkAliases(tx, add, owner).filter((a) => !kept.some((k) => lc(k) === lc(a)))];
}

function checkPublished(tx: Txn, ports: PortSpec[], mode: EndpointMode, self: string | undefined): void {
  for (const p of ports) {
    if (p.published === undefined) continue;
    if (mode === 'dnsrr') {
      const which = p.published === AUTO_PUBLISHED ? `a published port for target ${p.target}` : `published port ${p.published}`;
      throw new VipdnsError('BAD_PORT', `${which}/${p.protocol} needs endpoint mode vip (the routing mesh balances over a VIP service; dnsrr has none)`);
    }
    if (p.published === AUTO_PUBLISHED) continue;
    const other = tx.publishers(p.published, p.protocol).find((x) => x.name !== self);
    if (other) throw new VipdnsError('CONFLICT', `published port ${p.published}/${p.protocol} is already used by service "${other.name}"`);
  }
}

/**
 * Gives each "auto" published port a number: the one the service already has for that target (an
 * update keeps it, as a restart does), else the first free port of the publish range.
 */
function assignPublished(tx: Txn, ports: PortSpec[], current: PortSpec[]): void {
  if (!ports.some((p) => p.published === AUTO_PUBLISHED)) return;
  const taken = { tcp: new Set<number>(), udp: new Set<number>() };
  for (const p of ports) if (p.published !== undefined && p.published !== AUTO_PUBLISHED) taken[p.protocol].add(p.published);
  for (const p of ports) {
    if (p.published !== AUTO_PUBLISHED) continue;
    const had = current.find((c) => c.target === p.target && c.protocol === p.protocol && c.published !== undefined && !taken[p.protocol].has(c.published));
    p.published = had?.published ?? allocatePublished(tx, p.protocol, taken[p.protocol]);
    taken[p.protocol].add(p.published);
  }
}

function nextSlot(tx: Txn, service: string): number {
  const used = new Set(tx.tasksOf(service).map((t) => t.slot));
  let slot = 1;
  while (used.has(slot)) slot++;
  return slot;
}

/** The mutations bound to one transaction, for a batch. */
export function bound(tx: Txn, limit: number | undefined) {
  return {
    createNetwork: (req: NetworkRequest) => createNetwork(tx, req),
    removeNetwork: (name: string) => removeNetwork(tx, name),
    createService: (req: ServiceRequest, alloc?: AllocOptions) => createService(tx, req, alloc),
    updateService: (name: string, upd: ServiceUpdate) => updateService(tx, name, upd, limit),
    removeService: (name: string) => removeService(tx, name),
    addTask: (req: TaskRequest) => addTask(tx, req),
    removeTask: (ref: string) => removeTask(tx, ref),
    updateTask: (ref: string, upd: TaskUpdate) => updateTask(tx, ref, upd),
    setTaskHealth: (id: string, health: Health) => setTaskHealth(tx, id, health),
    addContainer: (req: ContainerRequest) => addContainer(tx, req),
    removeContainer: (name: string) => removeContainer(tx, name),
    /** Runs `f`; if it throws, undoes only what `f` wrote and returns the error (one bad op need not fail a batch). */
    attempt<T>(f: () => T): T | Error {
      const sp = tx.savepoint();
      try {
        return f();
      } catch (e) {
        tx.rollback(sp);
        return e instanceof Error ? e : new Error(String(e));
      }
    },
    /** Reads as the batch sees them (its own writes included). */
    view: tx,
    /** The store's cap on objects per commit, if any: a caller splits bigger work into several batches. */
    limit,
  };
}
export type Batch = ReturnType<typeof bound>;
