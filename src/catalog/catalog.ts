// The catalog: the one source of truth for networks, services, tasks and containers, as a
// facade over parts with one job each: the domain rules of each mutation (here), field
// validation (validate.ts), lookups over committed state plus a transaction's writes (txn.ts,
// lookups.ts), address allocation (allocator.ts, ipam.ts) and the commit queue with group
// commit (commit-queue.ts). Mutations validate fully on a transaction and go to the store as
// one change of the objects they wrote; the state readers see changes only when the store
// delivers a committed change (this daemon's own or, with a shared store, another daemon's).
// Subscribers get a 'change' event with each object's previous value; the catalog knows
// nothing of DNS or the kernel.
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { VipdnsError } from '../errors.js';
import { contains, formatCidr, formatIp, overlaps, parseCidr, parseIp } from '../net/ip.js';
import { addressOn, allocateOn, requestOn } from './allocator.js';
import { type AppliedChange, type Change, type ChangeKind, applyChange } from './changes.js';
import { CommitQueue } from './commit-queue.js';
import { defaultGateway } from './ipam.js';
import { CatalogIndex, lc } from './lookups.js';
import {
  type CatalogState,
  type Container,
  type EndpointMode,
  type Health,
  type HealthCheckSpec,
  type Network,
  type PortSpec,
  type Service,
  type ServiceAttachment,
  type Task,
} from './model.js';
import type { ReplicatedStore } from './store/store.js';
import { Txn } from './txn.js';
import { checkAttachment, checkHealthCheck, checkList, checkName, checkPorts, checkStrings } from './validate.js';

export type { ChangeKind } from './changes.js';

export interface NetworkRequest {
  name: string;
  subnet: string;
  gateway?: string;
  attachable?: boolean;
}

export type AttachmentRequest = string | { network: string; vip?: string; ip?: string };

export interface ServiceRequest {
  name: string;
  networks: AttachmentRequest[];
  endpointMode?: EndpointMode;
  aliases?: string[];
  ports?: PortSpec[];
  healthCheck?: HealthCheckSpec;
}

export interface ServiceUpdate {
  networkAdd?: AttachmentRequest[];
  networkRm?: string[];
  endpointMode?: EndpointMode;
  aliasAdd?: string[];
  aliasRm?: string[];
  ports?: PortSpec[];
  healthCheck?: HealthCheckSpec | null;
}

export interface TaskRequest {
  service: string;
  ips?: string[]; // each matched to the service network whose subnet contains it
  name?: string;
}

export interface ContainerRequest {
  name: string;
  networks: AttachmentRequest[]; // {network, ip?}
  aliases?: string[];
}

export interface CatalogEvents {
  /** After each committed change; `change` lists the objects written and deleted, with their previous values. */
  change: [state: CatalogState, kinds: Set<ChangeKind>, change: AppliedChange];
  error: [err: Error];
}

const newId = (): string => randomBytes(6).toString('hex');
const now = (): string => new Date().toISOString();

export class Catalog extends EventEmitter<CatalogEvents> {
  private readonly s: CatalogState;
  private readonly idx: CatalogIndex;
  private readonly queue: CommitQueue;
  private readonly store: ReplicatedStore;

  private constructor(store: ReplicatedStore, state: CatalogState) {
    super();
    this.store = store;
    this.s = state;
    this.idx = CatalogIndex.of(state);
    this.queue = new CommitQueue(store, () => new Txn(this.s, this.idx));
  }

  /** Opens the catalog on a store (the embedded local store, or etcd). */
  static async open(store: ReplicatedStore): Promise<Catalog> {
    let catalog: Catalog | undefined;
    const early: Array<[Change, number]> = [];
    const state = await store.open((change, revision) => {
      if (catalog) catalog.apply(change, revision);
      else early.push([change, revision]); // delivered before open() returned
    });
    catalog = new Catalog(store, state);
    for (const [change, revision] of early) catalog.apply(change, revision);
    return catalog;
  }

  /** The current state. Read-only: committed objects are replaced, never changed in place. */
  get state(): Readonly<CatalogState> {
    return this.s;
  }

  // ---------- networks ----------

  createNetwork(req: NetworkRequest): Promise<Network> {
    return this.queue.run((tx) => {
      const name = checkName('network', req.name);
      if (tx.find('network', name)) throw new VipdnsError('DUPLICATE_NAME', `network "${name}" already exists`);
      if (typeof req.subnet !== 'string' || req.subnet === '') throw new VipdnsError('BAD_CIDR', `network "${name}" needs a subnet (e.g. --subnet 10.0.9.0/24)`);
      const prefix = parseCidr(req.subnet);
      for (const other of tx.all('network')) {
        if (overlaps(prefix, parseCidr(other.subnet))) {
          throw new VipdnsError('SUBNET_OVERLAP', `subnet ${formatCidr(prefix)} overlaps network "${other.name}" (${other.subnet})`);
        }
      }
      let gateway = defaultGateway(prefix);
      if (req.gateway !== undefined && req.gateway !== '') {
        const g = parseIp(req.gateway);
        if (!contains(prefix, g)) throw new VipdnsError('IP_OUTSIDE_SUBNET', `gateway ${req.gateway} is outside subnet ${formatCidr(prefix)}`);
        gateway = g.value;
      }
      const net: Network = {
        id: newId(),
        name,
        subnet: formatCidr(prefix),
        gateway: formatIp({ family: prefix.family, value: gateway }),
        attachable: req.attachable === true,
        createdAt: now(),
        ipamCursor: (gateway - prefix.base).toString(),
      };
      tx.put('network', name, net);
      return net;
    });
  }

  removeNetwork(name: string): Promise<Network> {
    return this.queue.run((tx) => {
      const net = tx.network(name);
      const users = [...tx.servicesOn(net.name).map((x) => `service ${x.name}`), ...tx.containersOn(net.name).map((c) => `container ${c.name}`)];
      if (users.length > 0) {
        const shown = users.slice(0, 5).join(', ') + (users.length > 5 ? `, and ${users.length - 5} more` : '');
        throw new VipdnsError('NETWORK_IN_USE', `network "${net.name}" is in use by ${shown}; remove or detach them first`);
      }
      tx.delete('network', net.name);
      return net;
    });
  }

  // ---------- services ----------

  createService(req: ServiceRequest): Promise<Service> {
    return this.queue.run((tx) => {
      const name = checkName('service', req.name);
      checkPrimaryNameFree(tx, name);
      const mode = checkMode(req.endpointMode ?? 'vip');
      const aliases = checkAliases(tx, checkStrings('aliases', req.aliases), name);
      const ports = checkPorts(req.ports);
      checkPublished(tx, ports, mode, undefined);
      const healthCheck = checkHealthCheck(req.healthCheck);
      if (!Array.isArray(req.networks) || req.networks.length === 0) {
        throw new VipdnsError('BAD_REQUEST', `service "${name}" needs at least one network (--network NET)`);
      }
      const svc: Service = {
        id: newId(),
        name,
        aliases,
        endpointMode: mode,
        attachments: planAttachments(tx, req.networks, mode, name, []),
        ports,
        fwmark: tx.nextFwmark,
        createdAt: now(),
      };
      if (healthCheck) svc.healthCheck = healthCheck;
      tx.nextFwmark += 1;
      tx.put('service', name, svc);
      return svc;
    });
  }

  updateService(name: string, upd: ServiceUpdate): Promise<Service> {
    return this.queue.run((tx) => {
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
      const aliases = upd.aliasAdd || upd.aliasRm ? updatedAliases(tx, svc.aliases, checkStrings('aliasAdd', upd.aliasAdd), checkStrings('aliasRm', upd.aliasRm), svc.name) : svc.aliases;
      const healthCheck = upd.healthCheck === null ? undefined : upd.healthCheck !== undefined ? checkHealthCheck(upd.healthCheck) : svc.healthCheck;
      const tasks = tx.tasksOf(svc.name);
      const limit = this.store.maxObjectsPerCommit;
      if (limit !== undefined && (adds.length + rm.size) * tasks.length + 1 > limit) {
        throw new VipdnsError(
          'BAD_REQUEST',
          `service "${svc.name}" has ${tasks.length} tasks: attaching or detaching a network rewrites every one, over the store's ${limit} objects per change; scale the service down, change its networks, then scale it up`,
        );
      }

      // VIPs: kept attachments keep theirs (vip→vip), get one (dnsrr→vip) or drop it (vip→dnsrr).
      const attachments: ServiceAttachment[] = kept.map((a) =>
        mode === 'dnsrr' ? { network: a.network } : a.vip ? { ...a } : { network: a.network, vip: allocateOn(tx, a.network) },
      );
      const added = planAttachments(tx, adds, mode, svc.name, kept.map((a) => a.network));
      attachments.push(...added);
      const next: Service = { ...svc, attachments, endpointMode: mode, ports, aliases };
      if (healthCheck) next.healthCheck = healthCheck;
      else delete next.healthCheck;
      // The service first, so its new VIPs are in use before its tasks get addresses.
      tx.put('service', svc.name, next);
      // Existing tasks get an address on each newly added network and lose removed ones.
      if (added.length + rm.size > 0) {
        for (const t of tasks) {
          const addresses = { ...t.addresses };
          for (const n of rm) delete addresses[n];
          tx.put('task', t.id, { ...t, addresses });
          for (const a of added) {
            addresses[a.network] = allocateOn(tx, a.network);
            tx.put('task', t.id, { ...t, addresses: { ...addresses } });
          }
        }
      }
      return next;
    }, true);
  }

  async removeService(name: string): Promise<Service> {
    // A store that caps objects per commit gets the tasks removed in chunks first, each its own
    // commit; the service itself (and whatever is left) goes last.
    const limit = this.store.maxObjectsPerCommit;
    if (limit !== undefined) {
      for (;;) {
        const ids = this.tasksOf(this.service(name).name).map((t) => t.id);
        if (ids.length + 1 <= limit) break;
        await this.queue.run((tx) => {
          for (const id of ids.slice(0, limit)) tx.delete('task', id);
        }, true);
      }
    }
    return this.queue.run((tx) => {
      const svc = tx.service(name);
      for (const t of tx.tasksOf(svc.name)) tx.delete('task', t.id);
      tx.delete('service', svc.name);
      return svc;
    }, true);
  }

  // ---------- tasks ----------

  addTask(req: TaskRequest): Promise<Task> {
    return this.queue.run((tx) => {
      if (typeof req.service !== 'string') throw new VipdnsError('BAD_REQUEST', `a task needs its service's name, got ${JSON.stringify(req.service)}`);
      const svc = tx.service(req.service);
      const id = newId();
      const slot = nextSlot(tx, svc.name);
      const name = req.name !== undefined && req.name !== null && req.name !== '' ? checkName('task', req.name, { dotted: true }) : `${svc.name}.${slot}.${id}`;
      if (tx.find('task', name)) throw new VipdnsError('DUPLICATE_NAME', `task "${name}" already exists`);
      const wanted = new Map<string, string>();
      for (const ip of checkStrings('ips', req.ips)) {
        const a = parseIp(ip);
        const att = svc.attachments.find((x) => contains(parseCidr(tx.network(x.network).subnet), a));
        if (!att) {
          const nets = svc.attachments.map((x) => `${x.network} (${tx.get('network', x.network)?.subnet})`).join(', ');
          throw new VipdnsError('IP_OUTSIDE_SUBNET', `task IP ${ip} is outside every network of service "${svc.name}": ${nets}`);
        }
        if (wanted.has(att.network)) throw new VipdnsError('BAD_REQUEST', `two task IPs given for network "${att.network}"`);
        wanted.set(att.network, requestOn(tx, att.network, ip, 'task IP'));
      }
      const addresses: Record<string, string> = {};
      for (const a of svc.attachments) addresses[a.network] = wanted.get(a.network) ?? allocateOn(tx, a.network);
      const task: Task = { id, name, service: svc.name, slot, addresses, health: 'unknown', createdAt: now() };
      tx.put('task', id, task);
      return task;
    });
  }

  removeTask(ref: string): Promise<Task> {
    return this.queue.run((tx) => {
      const t = tx.task(ref);
      tx.delete('task', t.id);
      return t;
    });
  }

  /** Health changes come from the checker; a no-op when unchanged so it never churns the store. */
  async setTaskHealth(id: string, health: Health): Promise<void> {
    const t = this.view().get('task', id);
    if (!t || t.health === health) return;
    await this.queue.run((tx) => {
      const cur = tx.get('task', id);
      if (cur && cur.health !== health) tx.put('task', id, { ...cur, health });
    });
  }

  // ---------- containers ----------

  addContainer(req: ContainerRequest): Promise<Container> {
    return this.queue.run((tx) => {
      const name = checkName('container', req.name);
      checkPrimaryNameFree(tx, name);
      const aliases = checkAliases(tx, checkStrings('aliases', req.aliases), name);
      if (!Array.isArray(req.networks) || req.networks.length === 0) {
        throw new VipdnsError('BAD_REQUEST', `container "${name}" needs a network (--network NET)`);
      }
      const addresses: Record<string, string> = {};
      for (const r of req.networks) {
        const { network, addr: ip } = checkAttachment(r, 'ip');
        const net = tx.network(network);
        if (!net.attachable) {
          throw new VipdnsError('NETWORK_NOT_ATTACHABLE', `network "${net.name}" is not attachable: create it with --attachable to add standalone containers`);
        }
        if (net.name in addresses) throw new VipdnsError('BAD_REQUEST', `network "${net.name}" is listed twice`);
        addresses[net.name] = addressOn(tx, net.name, ip, 'container IP');
      }
      const c: Container = { id: newId(), name, aliases, addresses, createdAt: now() };
      tx.put('container', name, c);
      return c;
    });
  }

  removeContainer(name: string): Promise<Container> {
    return this.queue.run((tx) => {
      const c = tx.container(name);
      tx.delete('container', c.name);
      return c;
    });
  }

  /**
   * Several mutations committed as one change, all or nothing (the Docker source commits each
   * plan this way): `fn` runs the same rules as the methods above on one transaction.
   */
  batch<T>(fn: (b: Txn) => T): Promise<T> {
    return this.queue.run(fn, true);
  }

  // ---------- lookups (committed state) ----------

  /** An empty transaction: every lookup over the committed state. */
  view(): Txn {
    return new Txn(this.s, this.idx);
  }

  network(name: string): Network {
    return this.view().network(name);
  }

  service(name: string): Service {
    return this.view().service(name);
  }

  /** A task by id, unique id prefix, or name. */
  task(ref: string): Task {
    return this.view().task(ref);
  }

  tasksOf(service: string): Task[] {
    return this.view().tasksOf(service);
  }

  findNetwork(name: string): Network | undefined {
    return this.view().find('network', name);
  }

  findContainer(name: string): Container | undefined {
    return this.view().find('container', name);
  }

  servicesOn(network: string): Service[] {
    return this.view().servicesOn(network);
  }

  containersOn(network: string): Container[] {
    return this.view().containersOn(network);
  }

  async close(): Promise<void> {
    await this.queue.close();
    await this.store.close();
  }

  // ---------- internals ----------

  /** A committed change, from the store: the only way the visible state changes. */
  private apply(change: Change, revision: number): void {
    this.s.revision = Math.max(this.s.revision, revision);
    const { kinds, applied } = applyChange(this.s, change, this.s.revision);
    this.idx.apply(applied);
    if (kinds.size > 0) this.emit('change', this.s, kinds, applied);
  }
}

// ---------- domain rules, on a transaction ----------

function checkMode(m: unknown): EndpointMode {
  if (m !== 'vip' && m !== 'dnsrr') throw new VipdnsError('BAD_REQUEST', `endpoint mode must be vip or dnsrr, got "${String(m)}"`);
  return m;
}

function planAttachments(tx: Txn, reqs: AttachmentRequest[], mode: EndpointMode, svcName: string, existing: string[]): ServiceAttachment[] {
  const out: ServiceAttachment[] = [];
  const seen = new Set(existing);
  for (const r of reqs) {
    const { network, addr: vip } = checkAttachment(r, 'vip');
    const net = tx.network(network);
    if (seen.has(net.name)) throw new VipdnsError('CONFLICT', `service "${svcName}" is already attached to network "${net.name}"`);
    seen.add(net.name);
    if (mode === 'dnsrr') {
      if (vip) throw new VipdnsError('BAD_REQUEST', `a VIP was given for network "${net.name}" but service "${svcName}" uses endpoint mode dnsrr`);
      out.push({ network: net.name });
      continue;
    }
    out.push({ network: net.name, vip: addressOn(tx, net.name, vip, 'VIP') });
  }
  return out;
}

function checkPrimaryNameFree(tx: Txn, name: string): void {
  if (tx.find('service', name)) throw new VipdnsError('DUPLICATE_NAME', `name "${name}" is already used by service "${name}"`);
  const c = tx.find('container', name);
  if (c) throw new VipdnsError('DUPLICATE_NAME', `name "${name}" is already used by container "${c.name}"`);
  const alias = tx.aliasHolder(name);
  if (alias) throw new VipdnsError('DUPLICATE_NAME', `name "${name}" is already an alias of ${alias}`);
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
      throw new VipdnsError('BAD_PORT', `published port ${p.published}/${p.protocol} needs endpoint mode vip (the routing mesh balances over a VIP service; dnsrr has none)`);
    }
    const other = tx.publishers(p.published, p.protocol).find((x) => x.name !== self);
    if (other) throw new VipdnsError('CONFLICT', `published port ${p.published}/${p.protocol} is already used by service "${other.name}"`);
  }
}

function nextSlot(tx: Txn, service: string): number {
  const used = new Set(tx.tasksOf(service).map((t) => t.slot));
  let slot = 1;
  while (used.has(slot)) slot++;
  return slot;
}
