// Structured logs: one JSON object per line on stdout (pino).
import { type Logger, pino } from 'pino';

export type { Logger };

export function createLogger(level: string): Logger {
  return pino({ level, base: { svc: 'vipdns' }, timestamp: pino.stdTimeFunctions.isoTime });
}
