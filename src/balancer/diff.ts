// Desired vs observed, by unit: pure. Drivers supply the unit identity and fingerprint, so the same diff
// serves nftables (chains) and IPVS (virtual services).
import type { DataplaneDriver, DesiredState, Diff, ObservedState, Unit } from './types.js';

export function units(desired: DesiredState): Unit[] {
  const out: Unit[] = [];
  for (const vip of desired.services) out.push({ kind: 'vip', vip });
  for (const published of desired.published) out.push({ kind: 'published', published });
  return out;
}

export type UnitCodec = Pick<DataplaneDriver, 'expect'>;

/** `force` rewrites every unit and the scaffolding: the periodic full resync that catches rules edited in place. */
export function diff(desired: DesiredState, observed: ObservedState, codec: UnitCodec, opts: { force?: boolean } = {}): Diff {
  const force = opts.force === true;
  const out: Diff = { base: force || observed.base !== 'ok', add: [], change: [], remove: [], unchanged: 0 };
  const wanted = new Set<string>();
  for (const unit of units(desired)) {
    const want = codec.expect(unit);
    wanted.add(want.id);
    const seen = observed.units.get(want.id);
    if (!seen) out.add.push(unit);
    else if (force || seen.fingerprint === '' || seen.fingerprint !== want.fingerprint) out.change.push({ unit, observed: seen });
    else out.unchanged++;
  }
  for (const [id, seen] of observed.units) if (!wanted.has(id)) out.remove.push(seen);
  return out;
}

export function isEmpty(d: Diff): boolean {
  return !d.base && d.add.length === 0 && d.change.length === 0 && d.remove.length === 0;
}
