// Connection draining, pure: a backend that leaves the plan stays with weight 0 (never chosen for new
// connections, kept for established ones) until its deadline, then goes. The reconciler owns the clock.
import type { Backend, DesiredState } from './types.js';

export interface Drained {
  state: DesiredState;
  /** Earliest drain deadline still pending (epoch ms), so the caller can sync again then. */
  nextExpiry: number | undefined;
}

const bkey = (b: Backend) => `${b.ip}|${b.port}`;

function carry(prev: Backend[] | undefined, next: Backend[], now: number, drainMs: number, expiry: { at?: number }): Backend[] {
  if (!prev || prev.length === 0) return next;
  const present = new Set(next.map(bkey));
  let out: Backend[] | undefined;
  for (const b of prev) {
    if (present.has(bkey(b))) continue;
    const until = b.drainUntil ?? now + drainMs;
    if (until <= now) continue;
    (out ??= [...next]).push({ ...b, weight: 0, draining: true, drainUntil: until });
    if (expiry.at === undefined || until < expiry.at) expiry.at = until;
  }
  if (!out) return next;
  return out.sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : a.port - b.port));
}

/** `next` with departed backends of `prev` kept as draining. Units that vanished entirely are not kept. */
export function withDraining(prev: DesiredState | undefined, next: DesiredState, now: number, drainMs: number): Drained {
  const expiry: { at?: number } = {};
  if (!prev || drainMs <= 0) return { state: next, nextExpiry: undefined };
  const pv = new Map(prev.services.map((s) => [s.key, s.backends]));
  const pp = new Map(prev.published.map((p) => [p.key, p.backends]));
  const state: DesiredState = {
    services: next.services.map((s) => {
      const b = carry(pv.get(s.key), s.backends, now, drainMs, expiry);
      return b === s.backends ? s : { ...s, backends: b };
    }),
    published: next.published.map((p) => {
      const b = carry(pp.get(p.key), p.backends, now, drainMs, expiry);
      return b === p.backends ? p : { ...p, backends: b };
    }),
  };
  return { state, nextExpiry: expiry.at };
}

/**
 * Service → earliest drain deadline among its draining backends, for the units given: lets the
 * reconciler expire drains by re-diffing only the services that have one due.
 */
export function drainDeadlines(d: DesiredState, into = new Map<string, number>()): Map<string, number> {
  for (const u of [...d.services, ...d.published]) {
    for (const b of u.backends) {
      if (!b.draining || b.drainUntil === undefined) continue;
      const at = into.get(u.service);
      if (at === undefined || b.drainUntil < at) into.set(u.service, b.drainUntil);
    }
  }
  return into;
}
