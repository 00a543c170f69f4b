// Health-check metrics. Labels carry the service name (bounded by the catalog), never a task or IP.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { CheckerHooks } from './checker.js';

/** How many tasks this host probes: on a shared store, the ones it registered (not every host's). */
export function registerProbedTasks(registry: Registry, probed: () => number): void {
  new Gauge({
    name: 'vipdns_health_probed_tasks',
    help: 'Tasks this host health-checks (on a shared store: the tasks it registered).',
    registers: [registry],
    collect() {
      this.set(probed());
    },
  });
}

export function healthMetricsHooks(registry: Registry, log?: { info: (o: object, m: string) => void }): CheckerHooks {
  const probes = new Counter({
    name: 'vipdns_health_checks_total',
    help: 'Health-check probes by service and result.',
    labelNames: ['service', 'result'],
    registers: [registry],
  });
  const transitions = new Counter({
    name: 'vipdns_health_transitions_total',
    help: 'Task health changes by service and new state.',
    labelNames: ['service', 'to'],
    registers: [registry],
  });
  return {
    onProbe: (result, service) => probes.inc({ service, result }),
    onTransition: (task, from, to, detail) => {
      transitions.inc({ service: task.service, to });
      log?.info({ task: task.name, service: task.service, from, to, detail }, 'task health changed');
    },
  };
}
