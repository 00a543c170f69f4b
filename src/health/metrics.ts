// Health-check metrics. Labels carry the service name (bounded by the catalog), never a task or IP.
import { Counter, type Registry } from 'prom-client';
import type { CheckerHooks } from './checker.js';

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
