// The hosts of a shared store that have tasks on a network: docker network inspect's Peers.
import type { NodeInfo } from './store/store.js';
/** Hosts with tasks on a network (docker network inspect's Peers): each with how many. */
export function peersOf(network: string, nodes: NodeInfo[], tasks: Readonly<Record<string, { addresses: Record<string, string> }>>): Array<{ node: string; address?: string; tasks: number }> {
  const out: Array<{ node: string; address?: string; tasks: number }> = [];
  for (const n of nodes) {
    let count = 0;
    for (const id of n.tasks) if (Object.hasOwn(tasks, id) && network in tasks[id]!.addresses) count++;
    if (count > 0) out.push({ node: n.name, ...(n.address ? { address: n.address } : {}), tasks: count });
  }
  return out;
}
