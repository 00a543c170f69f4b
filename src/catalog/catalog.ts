// The catalog: the one source of truth for networks, services, tasks and containers.
// Mutations validate fully before they change anything and are computed on a copy of the
// state; the resulting change (objects written and deleted) goes to the store, and the state
// that readers see changes only when the store delivers a committed change — this daemon's
// own or, with a shared store, another daemon's. Mutations queued while a commit is in flight
// go out together in the next one (group commit). When another writer got there first, the
// batch is recomputed on the caught-up state and retried. Subscribers get a 'change' event
// after each delivered change; the catalog knows nothing of DNS or the kernel.
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { VipdnsError } from '../errors.js';
import { type Prefix, contains, formatCidr, formatIp, overlaps, parseCidr, parseIp } from '../net/ip.js';
import { type AppliedChange, type Change, type ChangeKind, applyChange, diffStates, isEmptyChange } from './changes.js';
import { type Pool, allocate, checkRequested, defaultGateway } from './ipam.js';
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
import { snapshotLog } from './store/snapshot.js';
import { type ReplicatedStore, type Store, StoreConflict, isReplicated } from './store/store.js';
import { checkAttachment, checkHealthCheck, checkList, checkName, checkPorts, checkStrings, own } from './validate.js';

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
const lc = (s: string): string => s.toLowerCase();

interface Op {
  fn: (s: CatalogState) => unknown;
  /** Committed on its own: it may touch many objects. */
  alone?: boolean;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  /** Already retried after a store sync (a NOT_FOUND is then final). */
  synced?: boolean;
}

// Group commit stays under etcd's default 128 operations per transaction.
const MAX_BATCH_OPS = 32;
const MAX_ATTEMPTS = 40;

export class Catalog extends EventEmitter<CatalogEvents> {
  private s: CatalogState;
  private queue: Op[] = [];
  private draining = false;
  private closed = false;
  private readonly store: ReplicatedStore;

  private constructor(store: ReplicatedStore, state: CatalogState) {
    super();
    this.store = store;
    this.s = state;
  }

  /** Opens the catalog on a store: a whole-state store (file) or a replicated one (etcd). */
  static async open(store: Store | ReplicatedStore): Promise<Catalog> {
    const replicated = isReplicated(store) ? store : snapshotLog(store);
    let catalog: Catalog | undefined;
    const early: Array<[Change, number]> = [];
    const state = await replicated.open((change, revision) => {
      if (catalog) catalog.apply(change, revision);
      else early.push([change, revision]); // delivered before open() returned
    });
    catalog = new Catalog(replicated, state);
    for (const [change, revision] of early) catalog.apply(change, revision);
    return catalog;
  }

  /** The current state. Treat as read-only; it changes in place with each mutation. */
  get state(): Readonly<CatalogState> {
    return this.s;
  }

  // ---------- networks ----------

  createNetwork(req: NetworkRequest): Promise<Network> {
    return this.mutate('network', (s) => {
      const name = checkName('network', req.name);
      if (this.findNetwork(name)) throw new VipdnsError('DUPLICATE_NAME', `network "${name}" already exists`);
      if (typeof req.subnet !== 'string' || req.subnet === '') throw new VipdnsError('BAD_CIDR', `network "${name}" needs a subnet (e.g. --subnet 10.0.9.0/24)`);
      const prefix = parseCidr(req.subnet);
      for (const other of Object.values(s.networks)) {
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
      s.networks[name] = net;
      return net;
    });
  }

  removeNetwork(name: string): Promise<Network> {
    return this.mutate('network', (s) => {
      const net = this.network(name);
      const services = Object.values(s.services).filter((x) => x.attachments.some((a) => a.network === net.name));
      const containers = Object.values(s.containers).filter((c) => net.name in c.addresses);
      if (services.length + containers.length > 0) {
        const users = [...services.map((x) => `service ${x.name}`), ...containers.map((c) => `container ${c.name}`)];
        const shown = users.slice(0, 5).join(', ') + (users.length > 5 ? `, and ${users.length - 5} more` : '');
        throw new VipdnsError('NETWORK_IN_USE', `network "${net.name}" is in use by ${shown}; remove or detach them first`);
      }
      delete s.networks[net.name];
      return net;
    });
  }

  // ---------- services ----------

  createService(req: ServiceRequest): Promise<Service> {
    return this.mutate('service', (s) => {
      const name = checkName('service', req.name);
      this.checkPrimaryNameFree(name);
      const mode = checkMode(req.endpointMode ?? 'vip');
      const aliases = this.checkAliases(checkStrings('aliases', req.aliases), name);
      const ports = checkPorts(req.ports);
      this.checkPublished(ports, mode, undefined);
      const healthCheck = checkHealthCheck(req.healthCheck);
      if (!Array.isArray(req.networks) || req.networks.length === 0) {
        throw new VipdnsError('BAD_REQUEST', `service "${name}" needs at least one network (--network NET)`);
      }
      const attachments = this.planAttachments(req.networks, mode, name, []);
      const svc: Service = {
        id: newId(),
        name,
        aliases,
        endpointMode: mode,
        attachments: attachments.map((a) => a.attachment),
        ports,
        fwmark: s.nextFwmark,
        createdAt: now(),
      };
      if (healthCheck) svc.healthCheck = healthCheck;
      for (const a of attachments) this.commitCursor(a.network, a.cursor);
      s.nextFwmark += 1;
      s.services[name] = svc;
      return svc;
    });
  }

  updateService(name: string, upd: ServiceUpdate): Promise<Service> {
    return this.mutate('service', () => {
      const svc = this.service(name);
      const mode = checkMode(upd.endpointMode ?? svc.endpointMode);
      const rm = new Set(checkStrings('networkRm', upd.networkRm).map((n) => this.network(n).name));
      for (const n of rm) {
        if (!svc.attachments.some((a) => a.network === n)) throw new VipdnsError('NOT_ATTACHED', `service "${svc.name}" is not attached to network "${n}"`);
      }
      const kept = svc.attachments.filter((a) => !rm.has(a.network));
      const adds = checkList('networkAdd', upd.networkAdd) as AttachmentRequest[];
      if (kept.length + adds.length === 0) throw new VipdnsError('BAD_REQUEST', `service "${svc.name}" must stay attached to at least one network`);
      const ports = upd.ports !== undefined ? checkPorts(upd.ports) : svc.ports;
      this.checkPublished(ports, mode, svc.name);
      const aliases = upd.aliasAdd || upd.aliasRm ? this.updatedAliases(svc.aliases, checkStrings('aliasAdd', upd.aliasAdd), checkStrings('aliasRm', upd.aliasRm), svc.name) : svc.aliases;
      const healthCheck = upd.healthCheck === null ? undefined : upd.healthCheck !== undefined ? checkHealthCheck(upd.healthCheck) : svc.healthCheck;

      // VIPs: kept attachments keep theirs (vip→vip), get one (dnsrr→vip) or drop it (vip→dnsrr).
      const vipsInUse = new Map<string, Set<string>>();
      const newAttachments: ServiceAttachment[] = [];
      const cursors: Array<[string, bigint]> = [];
      for (const a of kept) {
        if (mode === 'dnsrr') {
          newAttachments.push({ network: a.network });
        } else if (a.vip) {
          newAttachments.push({ ...a });
        } else {
          const used = this.usedOn(a.network, vipsInUse);
          const got = allocate(this.pool(a.network), used, this.cursor(a.network, cursors));
          used.add(got.ip);
          cursors.push([a.network, got.cursor]);
          newAttachments.push({ network: a.network, vip: got.ip });
        }
      }
      const added = this.planAttachments(adds, mode, svc.name, svc.attachments.filter((a) => !rm.has(a.network)).map((a) => a.network), vipsInUse, cursors);
      for (const a of added) newAttachments.push(a.attachment);

      // Existing tasks get an address on each newly added network and lose removed ones.
      const tasks = this.tasksOf(svc.name);
      const limit = this.store.maxObjectsPerCommit;
      if (limit !== undefined && (added.length + rm.size) * tasks.length + 1 > limit) {
        throw new VipdnsError(
          'BAD_REQUEST',
          `service "${svc.name}" has ${tasks.length} tasks: attaching or detaching a network rewrites every one, over the store's ${limit} objects per change; scale the service down, change its networks, then scale it up`,
        );
      }
      const taskAdds: Array<[Task, string, string]> = [];
      for (const a of added) {
        const used = this.usedOn(a.attachment.network, vipsInUse);
        for (const t of tasks) {
          const got = allocate(this.pool(a.attachment.network), used, this.cursor(a.attachment.network, cursors));
          used.add(got.ip);
          cursors.push([a.attachment.network, got.cursor]);
          taskAdds.push([t, a.attachment.network, got.ip]);
        }
      }
      // All checks passed: apply.
      for (const [net, c] of cursors) this.commitCursor(net, c);
      for (const t of tasks) for (const n of rm) delete t.addresses[n];
      for (const [t, net, ip] of taskAdds) t.addresses[net] = ip;
      svc.attachments = newAttachments;
      svc.endpointMode = mode;
      svc.ports = ports;
      svc.aliases = aliases;
      if (healthCheck) svc.healthCheck = healthCheck;
      else delete svc.healthCheck;
      return svc;
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
        await this.mutate(
          'task',
          (s) => {
            for (const id of ids.slice(0, limit)) delete s.tasks[id];
          },
          true,
        );
      }
    }
    return this.mutate(
      'service',
      (s) => {
        const svc = this.service(name);
        for (const t of this.tasksOf(svc.name)) delete s.tasks[t.id];
        delete s.services[svc.name];
        return svc;
      },
      true,
    );
  }

  // ---------- tasks ----------

  addTask(req: TaskRequest): Promise<Task> {
    return this.mutate('task', (s) => {
      if (typeof req.service !== 'string') throw new VipdnsError('BAD_REQUEST', `a task needs its service's name, got ${JSON.stringify(req.service)}`);
      const svc = this.service(req.service);
      const id = newId();
      const slot = this.nextSlot(svc.name);
      const name = req.name !== undefined && req.name !== null && req.name !== '' ? checkName('task', req.name, { dotted: true }) : `${svc.name}.${slot}.${id}`;
      if (Object.values(s.tasks).some((t) => lc(t.name) === lc(name))) throw new VipdnsError('DUPLICATE_NAME', `task "${name}" already exists`);
      const wanted = new Map<string, string>();
      for (const ip of checkStrings('ips', req.ips)) {
        const a = parseIp(ip);
        const att = svc.attachments.find((x) => contains(this.prefix(x.network), a));
        if (!att) {
          const nets = svc.attachments.map((x) => `${x.network} (${this.networks[x.network]?.subnet})`).join(', ');
          throw new VipdnsError('IP_OUTSIDE_SUBNET', `task IP ${ip} is outside every network of service "${svc.name}": ${nets}`);
        }
        if (wanted.has(att.network)) throw new VipdnsError('BAD_REQUEST', `two task IPs given for network "${att.network}"`);
        wanted.set(att.network, checkRequested(this.pool(att.network), ip, this.usedOn(att.network), 'task IP'));
      }
      const addresses: Record<string, string> = {};
      const cursors: Array<[string, bigint]> = [];
      for (const a of svc.attachments) {
        const ip = wanted.get(a.network);
        if (ip) {
          addresses[a.network] = ip;
        } else {
          const got = allocate(this.pool(a.network), this.usedOn(a.network), this.cursor(a.network, cursors));
          addresses[a.network] = got.ip;
          cursors.push([a.network, got.cursor]);
        }
      }
      for (const [net, c] of cursors) this.commitCursor(net, c);
      const task: Task = { id, name, service: svc.name, slot, addresses, health: 'unknown', createdAt: now() };
      s.tasks[id] = task;
      return task;
    });
  }

  removeTask(ref: string): Promise<Task> {
    return this.mutate('task', (s) => {
      const t = this.task(ref);
      delete s.tasks[t.id];
      return t;
    });
  }

  /** Health changes come from the checker; a no-op when unchanged so it never churns the store. */
  async setTaskHealth(id: string, health: Health): Promise<void> {
    const t = own(this.s.tasks, id);
    if (!t || t.health === health) return;
    await this.mutate('health', () => {
      const cur = own(this.s.tasks, id);
      if (cur) cur.health = health;
    });
  }

  // ---------- containers ----------

  addContainer(req: ContainerRequest): Promise<Container> {
    return this.mutate('container', (s) => {
      const name = checkName('container', req.name);
      this.checkPrimaryNameFree(name);
      const aliases = this.checkAliases(checkStrings('aliases', req.aliases), name);
      if (!Array.isArray(req.networks) || req.networks.length === 0) {
        throw new VipdnsError('BAD_REQUEST', `container "${name}" needs a network (--network NET)`);
      }
      const addresses: Record<string, string> = {};
      const cursors: Array<[string, bigint]> = [];
      for (const r of req.networks) {
        const { network, addr: ip } = checkAttachment(r, 'ip');
        const net = this.network(network);
        if (!net.attachable) {
          throw new VipdnsError('NETWORK_NOT_ATTACHABLE', `network "${net.name}" is not attachable: create it with --attachable to add standalone containers`);
        }
        if (net.name in addresses) throw new VipdnsError('BAD_REQUEST', `network "${net.name}" is listed twice`);
        if (ip !== undefined && ip !== '') {
          addresses[net.name] = checkRequested(this.pool(net.name), ip, this.usedOn(net.name), 'container IP');
        } else {
          const got = allocate(this.pool(net.name), this.usedOn(net.name), this.cursor(net.name, cursors));
          addresses[net.name] = got.ip;
          cursors.push([net.name, got.cursor]);
        }
      }
      for (const [net, c] of cursors) this.commitCursor(net, c);
      const c: Container = { id: newId(), name, aliases, addresses, createdAt: now() };
      s.containers[name] = c;
      return c;
    });
  }

  removeContainer(name: string): Promise<Container> {
    return this.mutate('container', (s) => {
      const c = this.findContainer(name);
      if (!c) throw new VipdnsError('NOT_FOUND', `no container "${name}"`);
      delete s.containers[c.name];
      return c;
    });
  }

  // ---------- lookups (throwing) ----------

  network(name: string): Network {
    const n = this.findNetwork(name);
    if (!n) throw new VipdnsError('NOT_FOUND', `no network "${name}"`);
    return n;
  }

  service(name: string): Service {
    const svc = own(this.s.services, name) ?? Object.values(this.s.services).find((x) => lc(x.name) === lc(name));
    if (!svc) throw new VipdnsError('NOT_FOUND', `no service "${name}"`);
    return svc;
  }

  /** A task by id, unique id prefix, or name. */
  task(ref: string): Task {
    const direct = own(this.s.tasks, ref);
    if (direct) return direct;
    const all = Object.values(this.s.tasks);
    const byName = all.find((t) => lc(t.name) === lc(ref));
    if (byName) return byName;
    const byPrefix = ref.length >= 3 ? all.filter((t) => t.id.startsWith(ref)) : [];
    if (byPrefix.length === 1) return byPrefix[0]!;
    if (byPrefix.length > 1) throw new VipdnsError('BAD_REQUEST', `task id prefix "${ref}" is ambiguous (${byPrefix.length} tasks)`);
    throw new VipdnsError('NOT_FOUND', `no task "${ref}"`);
  }

  tasksOf(service: string): Task[] {
    return Object.values(this.s.tasks).filter((t) => t.service === service);
  }

  findNetwork(name: string): Network | undefined {
    return own(this.s.networks, name) ?? Object.values(this.s.networks).find((n) => lc(n.name) === lc(name));
  }

  findContainer(name: string): Container | undefined {
    return own(this.s.containers, name) ?? Object.values(this.s.containers).find((c) => lc(c.name) === lc(name));
  }

  async close(): Promise<void> {
    this.closed = true;
    while (this.draining || this.queue.length > 0) await new Promise((r) => setTimeout(r, 5));
    await this.store.close();
  }

  // ---------- internals ----------

  private get networks(): Record<string, Network> {
    return this.s.networks;
  }

  /** A committed change, from the store: the only way the visible state changes. */
  private apply(change: Change, revision: number): void {
    this.s.revision = Math.max(this.s.revision, revision);
    const { kinds, applied } = applyChange(this.s, change, this.s.revision);
    if (kinds.size > 0) this.emit('change', this.s, kinds, applied);
  }

  private mutate<T>(_kind: ChangeKind, fn: (s: CatalogState) => T, alone = false): Promise<T> {
    if (this.closed) return Promise.reject(new VipdnsError('UNAVAILABLE', 'the catalog is closing'));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, resolve: resolve as (v: unknown) => void, reject, alone });
      void this.drain();
    });
  }

  private async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      while (this.queue.length > 0) {
        // Ops that may touch many objects go alone; the rest group-commit up to MAX_BATCH_OPS.
        let n = 0;
        while (n < this.queue.length && n < MAX_BATCH_OPS && !this.queue[n]!.alone) n++;
        await this.commitBatch(this.queue.splice(0, Math.max(1, n)));
      }
    } finally {
      this.draining = false;
    }
  }

  /**
   * Runs each op on a copy of the state (an op that throws changed nothing and is rejected
   * alone), commits what the rest changed as one change, and resolves them once the store
   * has delivered it. On a conflict, the ops are recomputed on the caught-up state.
   */
  private async commitBatch(batch: Op[]): Promise<void> {
    const stale: Op[] = [];
    await this.commitOps(batch, stale);
    if (stale.length === 0) return;
    // Something named by these ops was missing here; another daemon may have just created it.
    // Catch up with the shared store, then run them once more.
    try {
      await this.store.sync?.();
    } catch {
      /* the retry reports the original NOT_FOUND */
    }
    for (const op of stale) op.synced = true;
    this.queue.unshift(...stale);
  }

  private async commitOps(batch: Op[], stale: Op[]): Promise<void> {
    let live = batch;
    for (let attempt = 1; ; attempt++) {
      const base = this.s;
      const work = structuredClone(base) as CatalogState;
      const results = new Map<Op, unknown>();
      this.s = work; // the lookups the ops use read this.s; swapped back before any await
      try {
        for (const op of live) {
          try {
            results.set(op, op.fn(work));
          } catch (e) {
            if (!op.synced && this.store.sync && e instanceof VipdnsError && e.code === 'NOT_FOUND') stale.push(op);
            else op.reject(e as Error);
          }
        }
      } finally {
        this.s = base;
      }
      live = live.filter((op) => results.has(op));
      if (live.length === 0) return;
      const change = diffStates(base, work);
      if (isEmptyChange(change)) {
        for (const op of live) op.resolve(results.get(op));
        return;
      }
      try {
        await this.store.commit(change, work);
        for (const op of live) op.resolve(results.get(op));
        return;
      } catch (err) {
        if (err instanceof StoreConflict && attempt < MAX_ATTEMPTS && !this.closed) {
          await err.caughtUp;
          // Jittered, growing pause so two daemons racing for the same state take turns.
          await new Promise((r) => setTimeout(r, Math.random() * Math.min(2 ** attempt, 100)));
          continue;
        }
        const e =
          err instanceof StoreConflict
            ? new VipdnsError('CONFLICT', `gave up after ${attempt} attempts: other daemons kept changing the catalog first`)
            : err instanceof VipdnsError
              ? err
              : new VipdnsError('STORE_FAILED', (err as Error).message, { cause: err });
        for (const op of live) op.reject(e);
        return;
      }
    }
  }

  private prefix(network: string): Prefix {
    return parseCidr(this.network(network).subnet);
  }

  private pool(network: string): Pool {
    const net = this.network(network);
    return { name: net.name, prefix: parseCidr(net.subnet), gateway: parseIp(net.gateway).value };
  }

  /** Addresses in use on a network: VIPs, task and container IPs. `extra` carries uncommitted picks. */
  private usedOn(network: string, extra?: Map<string, Set<string>>): Set<string> {
    const cached = extra?.get(network);
    if (cached) return cached;
    const used = new Set<string>();
    for (const svc of Object.values(this.s.services)) for (const a of svc.attachments) if (a.network === network && a.vip) used.add(a.vip);
    for (const t of Object.values(this.s.tasks)) {
      const ip = t.addresses[network];
      if (ip) used.add(ip);
    }
    for (const c of Object.values(this.s.containers)) {
      const ip = c.addresses[network];
      if (ip) used.add(ip);
    }
    extra?.set(network, used);
    return used;
  }

  private cursor(network: string, pending: Array<[string, bigint]>): bigint {
    for (let i = pending.length - 1; i >= 0; i--) if (pending[i]![0] === network) return pending[i]![1];
    return BigInt(this.network(network).ipamCursor);
  }

  private commitCursor(network: string, cursor: bigint): void {
    this.network(network).ipamCursor = cursor.toString();
  }

  private planAttachments(
    reqs: AttachmentRequest[],
    mode: EndpointMode,
    svcName: string,
    existing: string[],
    vipsInUse = new Map<string, Set<string>>(),
    cursors: Array<[string, bigint]> = [],
  ): Array<{ attachment: ServiceAttachment; network: string; cursor: bigint }> {
    const out: Array<{ attachment: ServiceAttachment; network: string; cursor: bigint }> = [];
    const seen = new Set(existing);
    for (const r of reqs) {
      const { network, addr: vip } = checkAttachment(r, 'vip');
      const net = this.network(network);
      if (seen.has(net.name)) throw new VipdnsError('CONFLICT', `service "${svcName}" is already attached to network "${net.name}"`);
      seen.add(net.name);
      if (mode === 'dnsrr') {
        if (vip) throw new VipdnsError('BAD_REQUEST', `a VIP was given for network "${net.name}" but service "${svcName}" uses endpoint mode dnsrr`);
        out.push({ attachment: { network: net.name }, network: net.name, cursor: this.cursor(net.name, cursors) });
        continue;
      }
      const used = this.usedOn(net.name, vipsInUse);
      let ip: string;
      let cursor = this.cursor(net.name, cursors);
      if (vip) {
        ip = checkRequested(this.pool(net.name), vip, used, 'VIP');
      } else {
        const got = allocate(this.pool(net.name), used, cursor);
        ip = got.ip;
        cursor = got.cursor;
        cursors.push([net.name, cursor]);
      }
      used.add(ip);
      out.push({ attachment: { network: net.name, vip: ip }, network: net.name, cursor });
    }
    return out;
  }

  private checkPrimaryNameFree(name: string): void {
    const n = lc(name);
    if (Object.values(this.s.services).some((x) => lc(x.name) === n)) throw new VipdnsError('DUPLICATE_NAME', `name "${name}" is already used by service "${name}"`);
    const c = Object.values(this.s.containers).find((x) => lc(x.name) === n);
    if (c) throw new VipdnsError('DUPLICATE_NAME', `name "${name}" is already used by container "${c.name}"`);
    const alias = this.aliasOwner(n);
    if (alias) throw new VipdnsError('DUPLICATE_NAME', `name "${name}" is already an alias of ${alias}`);
  }

  private aliasOwner(n: string): string | undefined {
    for (const x of Object.values(this.s.services)) if (x.aliases.some((a) => lc(a) === n)) return `service "${x.name}"`;
    for (const x of Object.values(this.s.containers)) if (x.aliases.some((a) => lc(a) === n)) return `container "${x.name}"`;
    return undefined;
  }

  /** Aliases may be shared (answers merge, as Docker's network aliases do) but never shadow a name. */
  private checkAliases(aliases: string[], owner: string): string[] {
    if (!Array.isArray(aliases)) throw new VipdnsError('BAD_REQUEST', 'aliases must be a list');
    const out: string[] = [];
    for (const a of aliases) {
      checkName('alias', a);
      if (lc(a) === lc(owner) || out.some((x) => lc(x) === lc(a))) continue;
      if (Object.values(this.s.services).some((x) => lc(x.name) === lc(a)) || Object.values(this.s.containers).some((x) => lc(x.name) === lc(a))) {
        throw new VipdnsError('DUPLICATE_NAME', `alias "${a}" is already the name of a service or container`);
      }
      out.push(a);
    }
    return out;
  }

  private updatedAliases(cur: string[], add: string[], rm: string[], owner: string): string[] {
    for (const r of rm) if (!cur.some((a) => lc(a) === lc(r))) throw new VipdnsError('NOT_FOUND', `service "${owner}" has no alias "${r}"`);
    const kept = cur.filter((a) => !rm.some((r) => lc(r) === lc(a)));
    return [...kept, ...this.checkAliases(add, owner).filter((a) => !kept.some((k) => lc(k) === lc(a)))];
  }

  private checkPublished(ports: PortSpec[], mode: EndpointMode, self: string | undefined): void {
    for (const p of ports) {
      if (p.published === undefined) continue;
      if (mode === 'dnsrr') {
        throw new VipdnsError('BAD_PORT', `published port ${p.published}/${p.protocol} needs endpoint mode vip (the routing mesh balances over a VIP service; dnsrr has none)`);
      }
      for (const other of Object.values(this.s.services)) {
        if (other.name === self) continue;
        if (other.ports.some((q) => q.published === p.published && q.protocol === p.protocol)) {
          throw new VipdnsError('CONFLICT', `published port ${p.published}/${p.protocol} is already used by service "${other.name}"`);
        }
      }
    }
  }

  private nextSlot(service: string): number {
    const used = new Set(this.tasksOf(service).map((t) => t.slot));
    let slot = 1;
    while (used.has(slot)) slot++;
    return slot;
  }
}

function checkMode(m: unknown): EndpointMode {
  if (m !== 'vip' && m !== 'dnsrr') throw new VipdnsError('BAD_REQUEST', `endpoint mode must be vip or dnsrr, got "${String(m)}"`);
  return m;
}

