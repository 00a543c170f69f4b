// Structured logs on stdout (pino): one JSON object per line for machines, or, for a person at a
// terminal, one readable line per event: time, level, message, then the fields as key=value.
// The pretty form is a small formatter over pino's own JSON lines, not pino-pretty: no extra
// dependency, no transport thread, and the JSON a machine reads is exactly what it was.
import { type Logger, destination, pino } from 'pino';

export type { Logger };

export type LogFormat = 'pretty' | 'json';

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const COLORS: Record<number, string> = { 10: '90', 20: '90', 40: '33', 50: '31', 60: '31' }; // grey, yellow, red
const SKIP = new Set(['level', 'time', 'msg', 'svc']);

/** The pretty format's default: pretty when a person is reading stdout, JSON when a program is. */
export function defaultLogFormat(stream: { isTTY?: boolean } = process.stdout): LogFormat {
  return stream.isTTY ? 'pretty' : 'json';
}

export function createLogger(level: string, format: LogFormat = 'json'): Logger {
  const opts = { level, base: { svc: 'vipdns' }, timestamp: pino.stdTimeFunctions.isoTime };
  if (format === 'json') return pino(opts);
  // Synchronous like pino's default stdout, so the last lines before process.exit() are not lost.
  const out = destination({ dest: 1, sync: true });
  const color = process.stdout.isTTY === true && !process.env.NO_COLOR;
  return pino(opts, { write: (line: string) => out.write(prettyLine(line, color)) });
}

/** One pino JSON line as `HH:MM:SS.mmm LEVEL message key=value ...` (local time). Pure. */
export function prettyLine(json: string, color = false): string {
  let r: Record<string, unknown>;
  try {
    r = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`;
  }
  const lvl = typeof r.level === 'number' ? r.level : 30;
  const label = (LEVELS[lvl] ?? String(r.level)).padEnd(5);
  const level = color && COLORS[lvl] ? `\x1b[${COLORS[lvl]}m${label}\x1b[0m` : label;
  const fields = Object.entries(r)
    .filter(([k, v]) => !SKIP.has(k) && v !== undefined)
    .map(([k, v]) => `${k}=${fieldValue(v)}`);
  const msg = typeof r.msg === 'string' ? r.msg.replace(/\n/g, '\\n') : '';
  return `${[clock(r.time), level, msg, ...fields].filter((p) => p !== '').join(' ')}\n`;
}

function clock(time: unknown): string {
  const d = new Date(typeof time === 'string' || typeof time === 'number' ? time : Date.now());
  if (Number.isNaN(d.getTime())) return String(time);
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

function fieldValue(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  if (typeof v !== 'object' || v === null) return String(v);
  // A serialized error (pino's err serializer): its message; the stack stays in the JSON format.
  const e = v as { message?: unknown; stack?: unknown };
  if (typeof e.message === 'string' && typeof e.stack === 'string') return JSON.stringify(e.message);
  if (Array.isArray(v) && v.every((x) => typeof x === 'string' && /^[^\s",=]+$/.test(x))) return v.length ? v.join(',') : '[]';
  return JSON.stringify(v);
}
