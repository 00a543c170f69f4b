// Runs a plan's operations (docker-plan.ts) on one catalog batch, each op alone behind a
// savepoint so one bad op does not fail the rest, and records what the source then owns. Pure
// apart from the transaction: the source (docker.ts) commits the batch and records only what
// committed. A store that caps objects per commit gets the plan in several batches, in order.
import { VipdnsError } from '../../errors.js';
import type { AllocOptions } from '../allocator.js';
import type { Batch } from '../mutations.js';
import type { Op, Owned } from './docker-plan.js';

export interface Outcome {
  op: Op;
  /** 'more': a service too big for one commit lost some of its tasks here; the op runs again in the next batch. */
  result: 'ok' | 'more' | Error;
  /** Tasks (lower-case names) that went with a removed service. */
  tasks?: string[];
}

const lc = (s: string): string => s.toLowerCase();

/** Already gone is done: a removal of something missing succeeds. */
function gone(f: () => unknown): void {
  try {
    f();
  } catch (e) {
    if (!(e instanceof VipdnsError && e.code === 'NOT_FOUND')) throw e;
  }
}

/**
 * Runs `ops` in order on `b` until the next one would take the batch over the store's cap
 * (at least one runs); returns an outcome per op run, so the caller resumes after them.
 * `held`: per lower-case network, the addresses Docker holds, which a VIP must not take.
 */
export function runOps(b: Batch, ops: readonly Op[], held: ReadonlyMap<string, ReadonlySet<string>>): Outcome[] {
  const tx = b.view;
  const alloc: AllocOptions = { from: 'top', exclude: (net) => held.get(lc(net)) };
  const out: Outcome[] = [];
  for (const op of ops) {
    if (b.limit !== undefined && op.op === 'removeService') {
      const svc = tx.find('service', op.name);
      const tasks = svc ? tx.tasksOf(svc.name) : [];
      if (tx.size + tasks.length + 1 > b.limit) {
        if (out.length > 0) break; // gets a batch of its own
        // Bigger than any commit: its tasks go in chunks (as catalog.removeService does), the service last.
        const chunk = tasks.slice(0, b.limit);
        for (const t of chunk) tx.delete('task', t.id);
        out.push({ op, result: 'more', tasks: chunk.map((t) => lc(t.name)) });
        break;
      }
    }
    const sp = tx.savepoint();
    const r = b.attempt(() => runOp(b, op, alloc));
    if (b.limit !== undefined && out.length > 0 && tx.size > b.limit) {
      tx.rollback(sp); // does not fit: first of the next batch
      break;
    }
    if (r instanceof Error) out.push({ op, result: r });
    else out.push({ op, result: 'ok', ...(r ? { tasks: r } : {}) });
  }
  return out;
}

/** One op on the batch; a removed service returns the names of the tasks that went with it. */
function runOp(b: Batch, op: Op, alloc: AllocOptions): string[] | undefined {
  const v = b.view;
  switch (op.op) {
    case 'removeTask':
      gone(() => b.removeTask(op.name));
      return undefined;
    case 'removeContainer':
      gone(() => b.removeContainer(op.name));
      return undefined;
    case 'removeService': {
      const svc = v.find('service', op.name);
      if (!svc) return [];
      const tasks = v.tasksOf(svc.name).map((t) => lc(t.name));
      b.removeService(svc.name);
      return tasks;
    }
    case 'removeNetwork':
      gone(() => b.removeNetwork(op.name));
      return undefined;
    case 'createNetwork':
      b.createNetwork(op.req);
      return undefined;
    case 'createService':
      // VIPs from the top of the subnet, around every address Docker holds (its IPAM counts up from the bottom).
      b.createService(op.req, alloc);
      return undefined;
    case 'updateService':
      b.updateService(op.name, op.upd);
      return undefined;
    case 'addTask':
      b.addTask(op.req);
      return undefined;
    case 'addContainer':
      b.addContainer(op.req);
      return undefined;
    case 'setHealth': {
      const t = v.find('task', op.task);
      if (t) b.setTaskHealth(t.id, op.health);
      return undefined;
    }
    case 'adopt':
      return undefined;
  }
}

/** Records in `own` what committed ops created and removed (call only once their batch committed). */
export function record(own: Owned, outcomes: readonly Outcome[]): void {
  for (const { op, result, tasks } of outcomes) {
    for (const t of tasks ?? []) delete own.tasks[t];
    if (result !== 'ok') continue;
    switch (op.op) {
      case 'removeTask':
        delete own.tasks[lc(op.name)];
        break;
      case 'removeContainer':
        delete own.containers[lc(op.name)];
        break;
      case 'removeService':
        delete own.services[lc(op.name)];
        break;
      case 'removeNetwork':
        delete own.networks[lc(op.name)];
        break;
      case 'createNetwork':
        own.networks[lc(op.req.name)] = op.dockerId;
        break;
      case 'createService':
        own.services[lc(op.req.name)] = op.from;
        break;
      case 'addTask':
        own.tasks[lc(op.req.name)] = op.containerId;
        break;
      case 'addContainer':
        own.containers[lc(op.req.name)] = op.containerId;
        break;
      case 'adopt':
        own[op.kind][lc(op.name)] = op.id;
        break;
      case 'updateService':
      case 'setHealth':
        break;
    }
  }
}

/** The name an op is about, for logs. */
export function opName(op: Op): string {
  switch (op.op) {
    case 'createNetwork':
    case 'createService':
    case 'addContainer':
    case 'addTask':
      return op.req.name;
    case 'setHealth':
      return op.task;
    default:
      return op.name;
  }
}
