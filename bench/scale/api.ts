// The control API as the bench drives it: node:http with a keep-alive agent (fetch cost the
// client a whole core at 1,500 writes/s on a 2-core machine, so the bench measured its own
// client; http.request costs about a third of that), every call timed, every failure counted by
// kind (HTTP status and error code, or the network error's code).
import { Agent, request } from 'node:http';
import { NETWORK, SUBNET, serviceName } from './catalog.js';

export interface CallResult {
  ok: boolean;
  ms: number;
  body: unknown;
  /** "409 DUPLICATE_NAME", "ECONNRESET", "TimeoutError", ... when not ok */
  failure?: string;
}

const agent = new Agent({ keepAlive: true, maxSockets: 256 });

export function call(base: string, method: string, path: string, body?: unknown, timeoutMs = 60_000): Promise<CallResult> {
  const t0 = performance.now();
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve) => {
    const fail = (failure: string): void => resolve({ ok: false, ms: performance.now() - t0, body: null, failure });
    const req = request(new URL(path, base), {
      method,
      agent,
      timeout: timeoutMs,
      headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TimeoutError' })));
    req.on('error', (e: NodeJS.ErrnoException) => fail(e.code ?? e.name));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (e: NodeJS.ErrnoException) => fail(e.code ?? e.name));
      res.on('end', () => {
        const ms = performance.now() - t0;
        const text = Buffer.concat(chunks).toString('utf8');
        let data: unknown = null;
        try {
          data = text ? (JSON.parse(text) as unknown) : null;
        } catch {
          return fail(`${res.statusCode} not JSON`);
        }
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) resolve({ ok: true, ms, body: data });
        else resolve({ ok: false, ms, body: data, failure: `${status} ${(data as { error?: { code?: string } } | null)?.error?.code ?? ''}`.trim() });
      });
    });
    req.end(payload);
  });
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
