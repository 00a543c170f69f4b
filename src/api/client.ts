// The CLI's side of the control API: a unix socket (the daemon's default, api.sock under its data
// dir) or http(s)://HOST:PORT, with an optional bearer token.
import * as http from 'node:http';
import * as https from 'node:https';
import { join } from 'node:path';
import { API_SOCKET, DEFAULT_DATA_DIR } from '../config.js';
import { VipdnsError } from '../errors.js';

/** Where the CLI looks without --api or VIPDNS_API: the default daemon's socket, from this directory. */
export const DEFAULT_API = `unix://${join(DEFAULT_DATA_DIR, API_SOCKET)}`;

type Target = { socketPath: string; label: string } | { url: URL; label: string };

export class ApiClient {
  private readonly target: Target;

  /** `base`: unix:///PATH, http(s)://HOST:PORT, or a bare HOST:PORT (taken as http). */
  constructor(
    base: string,
    private readonly token?: string,
    /** Client certificate, key and the CA of the server's certificate, for an https API. */
    private readonly tls?: { cert: Buffer; key: Buffer; ca: Buffer },
  ) {
    if (/^unix:/i.test(base)) {
      const path = base.replace(/^unix:(\/\/)?/i, '');
      if (path === '') throw new VipdnsError('BAD_REQUEST', `--api "${base}" names no socket path (unix:///PATH)`);
      this.target = { socketPath: path, label: `unix://${path}` };
      return;
    }
    const text = /^[a-z][a-z0-9+.-]*:\/\//i.test(base) ? base : `http://${base}`;
    let url: URL | undefined;
    try {
      url = new URL(text);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '') {
      throw new VipdnsError('BAD_REQUEST', `--api takes the daemon's API as unix:///PATH, http://HOST:PORT or HOST:PORT, got "${base}"`);
    }
    this.target = { url, label: text };
  }

  async call<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string> = {};
    if (payload !== undefined) headers['content-type'] = 'application/json';
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    let res: { status: number; text: string };
    try {
      res = await this.request(method, path, headers, payload);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
      throw new VipdnsError('UNAVAILABLE', `cannot reach the vipdns daemon at ${this.target.label} (${code}); is \`vipdns serve\` running, or is --api right?`);
    }
    let data: unknown;
    try {
      data = res.text === '' ? null : JSON.parse(res.text);
    } catch {
      throw new VipdnsError('INTERNAL', `the daemon at ${this.target.label} answered ${res.status} with a body that is not JSON`);
    }
    if (res.status < 200 || res.status > 299) {
      const err = (data as { error?: { code?: string; message?: string } } | null)?.error;
      throw new VipdnsError((err?.code as never) ?? 'INTERNAL', err?.message ?? `HTTP ${res.status}`);
    }
    return data as T;
  }

  private request(method: string, path: string, headers: Record<string, string>, payload: string | undefined): Promise<{ status: number; text: string }> {
    const t = this.target;
    const opts: http.RequestOptions =
      'socketPath' in t ? { socketPath: t.socketPath, path, method, headers } : { host: t.url.hostname.replace(/^\[|\]$/g, ''), port: t.url.port || undefined, path, method, headers };
    const secure = 'url' in t && t.url.protocol === 'https:';
    const lib = secure ? https : http;
    const tlsOpts = secure && this.tls ? { cert: this.tls.cert, key: this.tls.key, ca: this.tls.ca } : {};
    return new Promise((resolve, reject) => {
      const req = lib.request({ ...opts, ...tlsOpts, timeout: 30_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
      req.on('error', reject);
      req.end(payload);
    });
  }
}
