// The CLI's side of the control API.
import { VipdnsError } from '../errors.js';

export const DEFAULT_API = 'http://127.0.0.1:9053';

export class ApiClient {
  private readonly base: string;

  /** `base`: http(s)://HOST:PORT, or a bare HOST:PORT (taken as http). */
  constructor(base: string) {
    const url = /^[a-z][a-z0-9+.-]*:\/\//i.test(base) ? base : `http://${base}`;
    let parsed: URL | undefined;
    try {
      parsed = new URL(url);
    } catch {
      parsed = undefined;
    }
    if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') || parsed.hostname === '') {
      throw new VipdnsError('BAD_REQUEST', `--api takes the daemon's API address as http://HOST:PORT (or HOST:PORT), got "${base}"`);
    }
    this.base = url;
  }

  async call<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(new URL(path, this.base), {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(30_000),
      });
    } catch (e) {
      const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
      throw new VipdnsError('UNAVAILABLE', `cannot reach the vipdns daemon at ${this.base} (${cause}); is \`vipdns serve\` running, or is --api right?`);
    }
    const text = await res.text();
    let data: unknown;
    try {
      data = text === '' ? null : JSON.parse(text);
    } catch {
      throw new VipdnsError('INTERNAL', `the daemon at ${this.base} answered ${res.status} with a body that is not JSON`);
    }
    if (!res.ok) {
      const err = (data as { error?: { code?: string; message?: string } } | null)?.error;
      throw new VipdnsError((err?.code as never) ?? 'INTERNAL', err?.message ?? `HTTP ${res.status}`);
    }
    return data as T;
  }
}
