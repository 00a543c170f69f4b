// What a committed catalog change means for the planner: which services to re-plan. A network
// whose subnet changed (or that appeared or went) can touch anything, so it asks for a full
// re-plan; a network put that only moved its IPAM cursor (every allocation does) touches nothing.
import type { AppliedChange } from '../catalog/changes.js';
import type { ChangeHint } from './reconcile.js';

export function hintFor(change: AppliedChange | undefined): ChangeHint | undefined {
  if (!change) return undefined;
  const services = new Set<string>();
  const tasks = new Set<string>();
  for (const r of change.puts) {
    if (r.kind === 'network') {
      if (r.prev === undefined || r.prev.subnet !== r.value.subnet || r.prev.subnet6 !== r.value.subnet6 || r.prev.name !== r.value.name) return undefined;
    } else if (r.kind === 'service') services.add(r.id);
    else if (r.kind === 'task') tasks.add(r.id);
  }
  for (const r of change.deletes) {
    if (r.kind === 'network') return undefined;
    if (r.kind === 'service') services.add(r.id);
    else if (r.kind === 'task') tasks.add(r.id);
  }
  return { services, tasks };
}
