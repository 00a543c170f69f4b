// What a committed catalog change means for the planner: which services to re-plan. A network
// change (subnets, attachments) can touch anything, so it asks for a full re-plan.
import type { Change } from '../catalog/changes.js';
import type { ChangeHint } from './reconcile.js';

export function hintFor(change: Change | undefined): ChangeHint | undefined {
  if (!change) return undefined;
  const services = new Set<string>();
  const tasks = new Set<string>();
  for (const r of [...change.puts, ...change.deletes]) {
    if (r.kind === 'network') return undefined;
    if (r.kind === 'service') services.add(r.id);
    else if (r.kind === 'task') tasks.add(r.id);
  }
  return { services, tasks };
}
