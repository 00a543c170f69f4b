// `vipdns dataplane show`: what each unit should be (the applied plan, with draining backends and
// task health) beside what the kernel holds now (the driver's inspect()), with every difference
// between the two named. Pure: the balancer gathers the inputs.
import { units } from './diff.js';
import type { Backend, DesiredState, KernelUnit, Unit } from './types.js';

export interface ShowBackend {
  task?: string;
  ip: string;
  port: number;
  /** active, draining (weight 0 until its flows end), or kernel-only (not in the plan). */
  state: 'active' | 'draining' | 'kernel-only';
  weight?: number; // planned
  health?: string;
  kernel?: { weight: number; activeConns?: number; inactiveConns?: number };
}

export interface ShowUnit {
  id: string;
  kind: 'vip' | 'published';
  service: string;
  network?: string;
  /** "10.0.9.2:80/tcp", or "*:8080/tcp" for a published port. */
  address: string;
  scheduler: string;
  sticky?: number;
  kernel: { present: boolean; scheduler?: string; persistence?: number; where?: string };
  backends: ShowBackend[];
  /** Plan and kernel disagree: one line each (empty when they agree). */
  differences: string[];
}

const key = (ip: string, port: number): string => `${ip}|${port}`;

/** The units of one service (or all), in plan order. */
export function unitsOf(state: DesiredState, service?: string): Unit[] {
  const all = units(state);
  return service === undefined ? all : all.filter((u) => (u.kind === 'vip' ? u.vip.service : u.published.service) === service);
}

export function showUnits(want: Unit[], kernel: KernelUnit[], health: (task: string) => string | undefined): ShowUnit[] {
  return want.map((u, i) => {
    const k = kernel[i];
    const exactWeights = k?.weights === 'exact';
    const s = u.kind === 'vip' ? u.vip : u.published;
    const planned: Backend[] = s.backends;
    const out: ShowUnit = {
      id: k?.id ?? '',
      kind: u.kind,
      service: s.service,
      ...(u.kind === 'vip' ? { network: u.vip.network } : {}),
      address: u.kind === 'vip' ? `${u.vip.vip.includes(':') ? `[${u.vip.vip}]` : u.vip.vip}:${u.vip.port}/${u.vip.protocol}` : `*:${u.published.port}/${u.published.protocol}`,
      scheduler: s.scheduler,
      ...(s.persistence ? { sticky: s.persistence } : {}),
      kernel: { present: k?.present ?? false, ...(k?.scheduler ? { scheduler: k.scheduler } : {}), ...(k?.persistence ? { persistence: k.persistence } : {}), ...(k?.where ? { where: k.where } : {}) },
      backends: [],
      differences: [],
    };
    const inKernel = new Map((k?.backends ?? []).map((b) => [key(b.ip, b.port), b]));
    if (!out.kernel.present && planned.some((b) => !b.draining && b.weight > 0)) out.differences.push('not in the kernel');
    for (const b of planned) {
      const kb = inKernel.get(key(b.ip, b.port));
      inKernel.delete(key(b.ip, b.port));
      const h = health(b.task);
      const row: ShowBackend = { task: b.task, ip: b.ip, port: b.port, state: b.draining ? 'draining' : 'active', weight: b.draining ? 0 : b.weight, ...(h ? { health: h } : {}) };
      if (kb) row.kernel = { weight: kb.weight, ...(kb.activeConns !== undefined ? { activeConns: kb.activeConns, inactiveConns: kb.inactiveConns ?? 0 } : {}) };
      const wantIn = !b.draining && b.weight > 0;
      if (out.kernel.present) {
        // nftables keeps no draining or weight-0 backend in its map; IPVS keeps them at weight 0.
        if (wantIn && !kb) out.differences.push(`${b.ip}:${b.port} is planned but missing in the kernel`);
        else if (kb && exactWeights && kb.weight !== row.weight) out.differences.push(`${b.ip}:${b.port} has weight ${kb.weight} in the kernel, ${row.weight} planned`);
        else if (kb && !exactWeights && !wantIn) out.differences.push(`${b.ip}:${b.port} still takes new connections in the kernel`);
      }
      out.backends.push(row);
    }
    for (const kb of inKernel.values()) {
      out.backends.push({ ip: kb.ip, port: kb.port, state: 'kernel-only', kernel: { weight: kb.weight, ...(kb.activeConns !== undefined ? { activeConns: kb.activeConns, inactiveConns: kb.inactiveConns ?? 0 } : {}) } });
      out.differences.push(`${kb.ip}:${kb.port} is in the kernel but not planned`);
    }
    return out;
  });
}
