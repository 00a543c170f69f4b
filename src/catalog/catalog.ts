// The catalog: the one source of truth for networks, services, tasks and containers, as a
// facade over parts with one job each: the domain rules of each mutation (here), field
// validation (validate.ts), lookups over committed state plus a transaction's writes (txn.ts,
// lookups.ts), address allocation (allocator.ts, ipam.ts) and the commit queue with group
// commit (commit-queue.ts). Mutations validate fully on a transaction and go to the store as
// one change of the objects they wrote; the state readers see changes only when the store
// delivers a committed change (this daemon's own or, with a shared store, another daemon's).
// Subscribers get a 'change' event with each object's previous value; the catalog knows
// nothing of DNS or the kernel.
import { EventEmitter } from 'node:events';
import { type AppliedChange, type Change, type ChangeKind, applyChange } from './changes.js';
import { CommitQueue } from './commit-queue.js';
import { CatalogIndex } from './lookups.js';
import * as m from './mutations.js';
import type { ContainerRequest, NetworkRequest, ServiceRequest, ServiceUpdate, TaskRequest, TaskUpdate } from './mutations.js';
import type { CatalogState, Container, Health, Network, Service, Task } from './model.js';
import type { ReplicatedStore } from './store/store.js';
import { type HostFacts, Txn } from './txn.js';

export interface CatalogOptions {
  /** What automatic allocation must skip on this host (the daemon passes its interfaces and sockets). */
  host?: HostFacts;
}

export type { ChangeKind } from './changes.js';
export type { AttachmentRequest, ContainerRequest, NetworkRequest, ServiceRequest, ServiceUpdate, TaskRequest } from './mutations.js';

export interface CatalogEvents {
  /** After each committed change; `change` lists the objects written and deleted, with their previous values. */
  change: [state: CatalogState, kinds: Set<ChangeKind>, change: AppliedChange];
  error: [err: Error];
}


export class Catalog extends EventEmitter<CatalogEvents> {
  private readonly s: CatalogState;
  private readonly idx: CatalogIndex;
  private readonly queue: CommitQueue;
  private readonly store: ReplicatedStore;

  private constructor(store: ReplicatedStore, state: CatalogState, opts: CatalogOptions) {
    super();
    this.store = store;
    this.s = state;
    this.idx = CatalogIndex.building(state);
    this.queue = new CommitQueue(store, () => new Txn(this.s, this.idx.ready(), opts.host));
    // Build the lookups in steps between other work (DNS starts meanwhile); the first lookup
    // or write before they are done finishes them at once.
    const build = (): void => {
      if (!this.idx.step(5000)) setImmediate(build);
    };
    setImmediate(build);
  }

  /** Opens the catalog on a store (the embedded local store, or etcd). */
  static async open(store: ReplicatedStore, opts: CatalogOptions = {}): Promise<Catalog> {
    let catalog: Catalog | undefined;
    const early: Array<[Change, number]> = [];
    const state = await store.open((change, revision) => {
      if (catalog) catalog.apply(change, revision);
      else early.push([change, revision]); // delivered before open() returned
    });
    catalog = new Catalog(store, state, opts);
    for (const [change, revision] of early) catalog.apply(change, revision);
    return catalog;
  }

  /** The current state. Read-only: committed objects are replaced, never changed in place. */
  get state(): Readonly<CatalogState> {
    return this.s;
  }

  // ---------- networks ----------

  createNetwork(req: NetworkRequest): Promise<Network> {
    return this.queue.run((tx) => m.createNetwork(tx, req));
  }

  removeNetwork(name: string): Promise<Network> {
    return this.queue.run((tx) => m.removeNetwork(tx, name));
  }

  // ---------- services ----------

  createService(req: ServiceRequest): Promise<Service> {
    return this.queue.run((tx) => m.createService(tx, req));
  }

  updateService(name: string, upd: ServiceUpdate): Promise<Service> {
    return this.queue.run((tx) => m.updateService(tx, name, upd, this.store.maxObjectsPerCommit), true);
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
    return this.queue.run((tx) => m.removeService(tx, name), true);
  }

  // ---------- tasks ----------

  addTask(req: TaskRequest): Promise<Task> {
    return this.queue.run((tx) => m.addTask(tx, req));
  }

  removeTask(ref: string): Promise<Task> {
    return this.queue.run((tx) => m.removeTask(tx, ref));
  }

  updateTask(ref: string, upd: TaskUpdate): Promise<Task> {
    return this.queue.run((tx) => m.updateTask(tx, ref, upd));
  }

  /** Health changes come from the checker; a no-op when unchanged so it never churns the store. */
  async setTaskHealth(id: string, health: Health): Promise<void> {
    const t = this.view().get('task', id);
    if (!t || t.health === health) return;
    await this.queue.run((tx) => m.setTaskHealth(tx, id, health));
  }

  // ---------- containers ----------

  addContainer(req: ContainerRequest): Promise<Container> {
    return this.queue.run((tx) => m.addContainer(tx, req));
  }

  removeContainer(name: string): Promise<Container> {
    return this.queue.run((tx) => m.removeContainer(tx, name));
  }

  /**
   * Several mutations committed as one change, all or nothing (the Docker source commits each
   * plan this way): `fn` runs the same rules as the methods above on one transaction.
   */
  batch<T>(fn: (b: m.Batch) => T): Promise<T> {
    return this.queue.run((tx) => fn(m.bound(tx, this.store.maxObjectsPerCommit)), true);
  }

  // ---------- lookups (committed state) ----------

  /** An empty transaction: every lookup over the committed state. */
  view(): Txn {
    return new Txn(this.s, this.idx.ready());
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
