// The hinted fast path of a sync, pure: only the units of the services a change touched are drained,
// diffed and spliced into the applied state, so one endpoint change costs the same at 10 or 10,000
// services (plain array filters and a merge stay O(n), with a tiny constant).
import { diff, units, type UnitCodec } from './diff.js';
import { withDraining } from './drain.js';
import { spliceByKey } from './plan.js';
import type { DesiredState, Diff, ObservedState, ObservedUnit } from './types.js';

export interface Incremental {
  state: DesiredState; // the full desired state after the change (applied + the touched units)
  touched: DesiredState; // the touched services' units in it
  diff: Diff;
}

function pick(d: DesiredState, services: Set<string>): DesiredState {
  return { services: d.services.filter((x) => services.has(x.service)), published: d.published.filter((x) => services.has(x.service)) };
}

export function incrementalDiff(
  applied: DesiredState,
  planned: DesiredState,
  observed: ObservedState,
  codec: UnitCodec,
  touched: Set<string>,
  now: number,
  drainMs: number,
): Incremental {
  const before = pick(applied, touched);
  const { state: after } = withDraining(before, pick(planned, touched), now, drainMs);
  // Only the units these services owned before or own now are compared.
  const seen = new Map<string, ObservedUnit>();
  for (const u of [...units(before), ...units(after)]) {
    const id = codec.expect(u).id;
    const o = observed.units.get(id);
    if (o) seen.set(id, o);
  }
  const d = diff(after, { base: observed.base, units: seen }, codec);
  const state = {
    services: spliceByKey(applied.services, touched, after.services),
    published: spliceByKey(applied.published, touched, after.published),
  };
  return { state, touched: after, diff: d };
}
