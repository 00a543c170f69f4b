// Percentiles and number formatting for the table.
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function sorted(xs: Iterable<number>): Float64Array {
  return Float64Array.from(xs).sort();
}

export interface Summary {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

export function summarize(xs: Iterable<number>): Summary {
  const s = sorted(xs);
  return { n: s.length, p50: percentile(s, 50), p99: percentile(s, 99), max: s.length ? s[s.length - 1]! : NaN };
}

export function fmtMs(ms: number | undefined): string {
  if (ms === undefined || Number.isNaN(ms)) return '-';
  if (ms >= 10_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms >= 100) return `${ms.toFixed(0)} ms`;
  if (ms >= 10) return `${ms.toFixed(1)} ms`;
  return `${ms.toFixed(2)} ms`;
}

export function fmtSec(ms: number | undefined): string {
  return ms === undefined || Number.isNaN(ms) ? '-' : `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

export function fmtRate(perSec: number | undefined, unit = '/s'): string {
  if (perSec === undefined || Number.isNaN(perSec)) return '-';
  return `${perSec >= 100 ? Math.round(perSec).toLocaleString('en-US') : perSec.toFixed(1)}${unit}`;
}

export function fmtMB(bytes: number | undefined): string {
  return bytes === undefined ? '-' : `${(bytes / 1e6).toFixed(0)} MB`;
}

export function fmtCount(n: number | undefined): string {
  return n === undefined ? '-' : n.toLocaleString('en-US');
}
