// IPVS driver: destination changes of one fwmark service, including draining. Pure.
//   live backend        → add, or update weight/forwarding when it differs
//   draining backend    → weight 0 while it has connections; deleted at once when it has none, or when
//                         the service is UDP (a datagram "connection" never ends on its own; with
//                         expire_nodest_conn=1 its next packet is rescheduled instead of blackholed)
//   not wanted at all   → deleted (the drain deadline passed, or the unit never drained)
import type { Dest, DestSpec, ServiceKey } from '../netlink/ipvs-codec.js';
import type { IpvsOp } from '../netlink/ipvs.js';
import type { Protocol } from '../types.js';
import { destKey, type FamilyPlan } from './ipvs-render.js';

export interface DestChanges {
  ops: IpvsOp[];
  /** Draining destinations that are (now) absent from the kernel: remembered so observe agrees with the plan. */
  early: Set<string>;
}

export function destChanges(service: ServiceKey, plan: Pick<FamilyPlan, 'dests' | 'draining'>, kernel: readonly Dest[], protocol: Protocol): DestChanges {
  const ops: IpvsOp[] = [];
  const early = new Set<string>();
  const wanted = new Map<string, DestSpec>(plan.dests.map((d) => [destKey(d.address, d.port), d]));
  const seen = new Set<string>();
  for (const kd of kernel) {
    const k = destKey(kd.address, kd.port);
    seen.add(k);
    const w = wanted.get(k);
    const key = { address: kd.address, port: kd.port };
    if (!w) {
      ops.push({ op: 'delDest', service, dest: key });
    } else if (plan.draining.has(k)) {
      if (protocol === 'udp' || kd.activeConns + kd.inactiveConns === 0) {
        ops.push({ op: 'delDest', service, dest: key });
        early.add(k);
      } else if (kd.weight !== 0 || kd.forward !== 'masq') {
        ops.push({ op: 'updateDest', service, dest: { ...w, weight: 0 } });
      }
    } else if (kd.weight !== w.weight || kd.forward !== w.forward) {
      ops.push({ op: 'updateDest', service, dest: w });
    }
  }
  for (const [k, w] of wanted) {
    if (seen.has(k)) continue;
    if (plan.draining.has(k)) early.add(k); // already gone: nothing to drain
    else ops.push({ op: 'addDest', service, dest: w });
  }
  return { ops, early };
}

/** Destinations of a new service: live ones only (a draining backend of a unit we never programmed has no flows). */
export function initialDests(service: ServiceKey, plan: Pick<FamilyPlan, 'dests' | 'draining'>): DestChanges {
  const ops: IpvsOp[] = [];
  const early = new Set<string>();
  for (const d of plan.dests) {
    const k = destKey(d.address, d.port);
    if (plan.draining.has(k)) early.add(k);
    else ops.push({ op: 'addDest', service, dest: d });
  }
  return { ops, early };
}
