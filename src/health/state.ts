// Rise/fall hysteresis for one task: pure, so flapping rules are unit-tested without sockets.
import type { Health } from '../catalog/model.js';

export interface Counters {
  health: Health;
  successes: number; // consecutive
  failures: number; // consecutive
}

export function initialCounters(health: Health): Counters {
  return { health, successes: 0, failures: 0 };
}

/** Folds one probe result in; the health changes only after `rise` successes or `fall` failures in a row. */
export function step(c: Counters, ok: boolean, rise: number, fall: number): Counters {
  const successes = ok ? c.successes + 1 : 0;
  const failures = ok ? 0 : c.failures + 1;
  let health = c.health;
  if (ok && successes >= rise) health = 'healthy';
  if (!ok && failures >= fall) health = 'unhealthy';
  return { health, successes, failures };
}
