// The control API as the bench drives it: fetch (keep-alive), every call timed, every failure
// counted by kind (HTTP status and error code, or the network error's code).
import { NETWORK, SUBNET, serviceName } from './catalog.js';

export interface CallResult {
  ok: boolean;
  ms: number;
  body: unknown;
  /** "409 DUPLICATE_NAME", "ECONNRESET", "TimeoutError", ... when not ok */
  failure?: string;
}

export async function call(base: string, method: string, path: string, body?: unknown, timeoutMs = 60_000): Promise<CallResult> {
  const t0 = performance.now();
  try {
    const res = await fetch(new URL(path, base), {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    const ms = performance.now() - t0;
    const data = text ? (JSON.parse(text) as unknown) : null;
    if (res.ok) return { ok: true, ms, body: data };
    return { ok: false, ms, body: data, failure: `${res.status} ${(data as { error?: { code?: string } } | null)?.error?.code ?? ''}`.trim() };
  } catch (e) {
    const cause = (e as { cause?: { code?: string; name?: string } }).cause;
    return { ok: false, ms: performance.now() - t0, body: null, failure: cause?.code ?? cause?.name ?? (e as Error).name };
  }
}

/** Failures by kind. */
export class Failures {
  readonly byKind = new Map<string, number>();
  total = 0;

  add(r: CallResult): void {
    if (r.ok) return;
    this.total++;
    this.byKind.set(r.failure!, (this.byKind.get(r.failure!) ?? 0) + 1);
  }

  toString(): string {
    return [...this.byKind].map(([k, n]) => `${n} × ${k}`).join(', ');
  }
}

/**
 * Runs jobs from `next` on `concurrency` workers until it returns undefined or `deadline`
 * (performance.now() ms) passes; resolves when every started job has finished.
 */
export async function pool(concurrency: number, deadline: number, next: () => (() => Promise<void>) | undefined): Promise<void> {
  const worker = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const job = next();
      if (!job) return;
      await job();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

export interface LoadResult {
  ms: number;
  writes: number;
  wanted: number;
  failures: Failures;
}

/** Network, then services, then their tasks, through the API with `concurrency` clients. */
export async function loadThroughApi(api: string, services: number, tasksPer: number, concurrency: number, deadline: number): Promise<LoadResult> {
  const failures = new Failures();
  const t0 = performance.now();
  let writes = 0;
  const done = (r: CallResult): void => {
    if (r.ok) writes++;
    else failures.add(r);
  };
  done(await call(api, 'POST', '/v1/networks', { name: NETWORK, subnet: SUBNET }));
  let i = 0;
  await pool(concurrency, deadline, () => {
    if (i >= services) return undefined;
    const name = serviceName(i++);
    return async () => done(await call(api, 'POST', '/v1/services', { name, networks: [NETWORK], ports: [{ name: 'http', protocol: 'tcp', target: 80 }] }));
  });
  let j = 0;
  await pool(concurrency, deadline, () => {
    if (j >= services * tasksPer) return undefined;
    const service = serviceName(j++ % services);
    return async () => done(await call(api, 'POST', '/v1/tasks', { service }));
  });
  return { ms: performance.now() - t0, writes, wanted: 1 + services + services * tasksPer, failures };
}
