// Which VIPs the nftables driver must own, derived from the units it programs, never from the
// catalog: a VIP is wanted while at least one unit dispatching on it exists. One book per family:
// IPv4 VIPs are addresses on lo (../loopback-vips.ts), IPv6 VIPs proxy NDP entries (../proxy-ndp.ts).
// Pure bookkeeping; the driver reads and writes the kernel. Kept per unit and per VIP, so an apply
// costs what its diff touches, at any table size.
import type { LoAddresses } from '../loopback-vips.js';
import type { Diff, ObservedUnit, Unit } from '../types.js';
import type { NftUnitNative } from './nftables-render.js';
import { unitId } from './nftables-render.js';

/** Observed units for labelled addresses no unit needs: the diff removes them like any stray. */
export const ADDR_UNIT = 'addr|';

/** The VIP of `family` a unit id dispatches on (`vip|<vip> . <proto> . <port>`), or of a stray address unit. */
export function vipOfId(id: string, family: 4 | 6 = 4): string | undefined {
  let vip: string;
  if (id.startsWith(ADDR_UNIT)) vip = id.slice(ADDR_UNIT.length);
  else if (id.startsWith('vip|')) {
    const end = id.indexOf(' . ');
    vip = id.slice(4, end < 0 ? undefined : end);
  } else return undefined;
  return vip.includes(':') === (family === 6) ? vip : undefined;
}

function vipOfUnit(u: Unit, family: 4 | 6): string | undefined {
  return u.kind === 'vip' && u.vip.family === family ? u.vip.vip : undefined;
}

export interface LoChanges {
  add: string[];
  del: string[];
  /** Records the diff as applied and the addresses as written; call after both succeeded. */
  commit(): void;
}

export class LoopbackVipBook {
  constructor(private readonly family: 4 | 6 = 4) {}

  private readonly vipOf = new Map<string, string>(); // unit id → IPv4 VIP
  private readonly refs = new Map<string, number>(); // VIP → units dispatching on it
  private lo: LoAddresses = { ours: new Set(), others: new Set() };

  /**
   * After an observe: the units the kernel holds and what lo holds. Flags (in place) units whose VIP is
   * missing from lo, so the diff rewrites them and apply() puts the address back, and adds a stray unit
   * per labelled address no unit needs, so the diff removes it.
   */
  observed(units: Map<string, ObservedUnit>, lo: LoAddresses): void {
    this.vipOf.clear();
    this.refs.clear();
    this.lo = lo;
    for (const [id, u] of units) {
      const vip = vipOfId(id, this.family);
      if (vip === undefined) continue;
      this.ref(id, vip, 1);
      if (!lo.ours.has(vip) && !lo.others.has(vip) && u.fingerprint !== '') u.fingerprint += ' !lo';
    }
    for (const vip of lo.ours) {
      if (this.refs.has(vip)) continue;
      const id = `${ADDR_UNIT}${vip}`;
      const native: NftUnitNative = { elements: [] };
      units.set(id, { id, fingerprint: '', native });
    }
  }

  /** The address changes `d` needs, touching only the VIPs of the units it names. */
  changes(d: Diff): LoChanges {
    const delta = new Map<string, number>();
    const gone: string[] = [];
    const added: [string, string][] = [];
    const bump = (vip: string, n: number): void => void delta.set(vip, (delta.get(vip) ?? 0) + n);
    for (const r of d.remove) {
      const vip = this.vipOf.get(r.id) ?? vipOfId(r.id, this.family);
      if (vip === undefined) continue;
      bump(vip, this.vipOf.has(r.id) ? -1 : 0);
      gone.push(r.id);
    }
    for (const unit of [...d.add, ...d.change.map((c) => c.unit)]) {
      const vip = vipOfUnit(unit, this.family);
      if (vip === undefined) continue;
      const id = unitId(unit);
      bump(vip, this.vipOf.has(id) ? 0 : 1);
      added.push([id, vip]);
    }
    const add: string[] = [];
    const del: string[] = [];
    for (const [vip, n] of delta) {
      const need = (this.refs.get(vip) ?? 0) + n > 0;
      if (need && !this.lo.ours.has(vip) && !this.lo.others.has(vip)) add.push(vip);
      else if (!need && this.lo.ours.has(vip)) del.push(vip);
    }
    return {
      add,
      del,
      commit: () => {
        for (const id of gone) {
          const vip = this.vipOf.get(id);
          if (vip !== undefined) this.ref(id, vip, -1);
        }
        for (const [id, vip] of added) if (!this.vipOf.has(id)) this.ref(id, vip, 1);
        for (const v of add) this.lo.ours.add(v);
        for (const v of del) this.lo.ours.delete(v);
      },
    };
  }

  /** The VIPs the programmed units need (tests, status). */
  wanted(): string[] {
    return [...this.refs.keys()].sort();
  }

  private ref(id: string, vip: string, n: 1 | -1): void {
    const c = (this.refs.get(vip) ?? 0) + n;
    if (c > 0) this.refs.set(vip, c);
    else this.refs.delete(vip);
    if (n > 0) this.vipOf.set(id, vip);
    else this.vipOf.delete(id);
  }
}
