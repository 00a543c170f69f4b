// Catalog sizes for metrics, kept from each applied change, so a scrape costs nothing however
// large the catalog is (counting 100,000 tasks at every scrape stalled the event loop for
// hundreds of milliseconds). `of(state)` counts from scratch: the tests hold the two equal.
import type { AppliedChange } from './changes.js';
import type { CatalogState, EndpointMode, Health, Task } from './model.js';
import { isTaskServing } from './model.js';

export class CatalogCounts {
  networks = 0;
  containers = 0;
  readonly services: Record<EndpointMode, number> = { vip: 0, dnsrr: 0 };
  readonly tasks: Record<Health, number> = { unknown: 0, healthy: 0, unhealthy: 0 };
  private readonly perService = new Map<string, { total: number; serving: number }>();
  /** Services that have tasks, none of them serving. */
  withoutServing = 0;

  static of(state: Readonly<CatalogState>): CatalogCounts {
    const c = new CatalogCounts();
    c.networks = Object.keys(state.networks).length;
    c.containers = Object.keys(state.containers).length;
    // for-in, not Object.values: on a record of 100,000 entries values() takes ~55 ms, for-in ~20 ms.
    const { services, tasks } = state;
    for (const id in services) c.services[services[id]!.endpointMode]++;
    for (const id in tasks) c.task(tasks[id]!, 1);
    return c;
  }

  apply(change: AppliedChange): void {
    for (const p of change.puts) this.object(p.kind, p.prev, -1), this.object(p.kind, p.value, 1);
    for (const d of change.deletes) this.object(d.kind, d.prev, -1);
  }

  private object(kind: string, o: unknown, by: number): void {
    if (o === undefined) return;
    if (kind === 'network') this.networks += by;
    else if (kind === 'container') this.containers += by;
    else if (kind === 'service') this.services[(o as { endpointMode: EndpointMode }).endpointMode] += by;
    else if (kind === 'task') this.task(o as Task, by);
  }

  private task(t: Task, by: number): void {
    this.tasks[t.health] += by;
    const e = this.perService.get(t.service) ?? { total: 0, serving: 0 };
    const before = e.total > 0 && e.serving === 0;
    e.total += by;
    if (isTaskServing(t)) e.serving += by;
    const after = e.total > 0 && e.serving === 0;
    this.withoutServing += Number(after) - Number(before);
    if (e.total === 0) this.perService.delete(t.service);
    else this.perService.set(t.service, e);
  }
}
