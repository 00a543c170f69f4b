// A small Docker Engine API client over node:http(s), on a unix socket, plain TCP or TCP with TLS
// client certificates: JSON requests and the /events stream, which is all the Docker source needs.
// (dockerode 5 would bring 71 packages, 22 MB, gRPC for BuildKit and native install scripts for
// SSH; see docs/docker-source.md.)
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { join } from 'node:path';
import { VipdnsError, errorMessage } from '../../errors.js';
import { JsonObjectSplitter } from './docker-stream.js';

export const DEFAULT_DOCKER_URL = 'unix:///var/run/docker.sock';
const MAX_BODY = 64 << 20;

export interface DockerEndpoint {
  socketPath?: string;
  host?: string;
  port?: number;
  /** TLS with a client certificate, as `docker --tlsverify` (the engine's `-H tcp://...:2376 --tlsverify`). */
  tls?: { ca: Buffer; cert: Buffer; key: Buffer };
  /** For logs and messages: the URL as the user would write it. */
  url: string;
}

/**
 * unix:///path, /path, tcp://host:port or http://host:port; with `tlsDir` (Docker's DOCKER_CERT_PATH
 * layout: ca.pem, cert.pem, key.pem) a TCP engine is spoken to over TLS, and https://host:port needs it.
 */
export function parseDockerUrl(text: string, tlsDir?: string): DockerEndpoint {
  const s = text.trim();
  if (/^https:\/\//.test(s) && !tlsDir) throw new VipdnsError('CONFIG', `docker: "${text}" needs --docker-tls-dir DIR (ca.pem, cert.pem and key.pem, as DOCKER_CERT_PATH holds them)`);
  if (s.startsWith('/')) return { socketPath: s, url: `unix://${s}` };
  if (s.startsWith('unix://')) {
    const p = s.slice('unix://'.length);
    if (!p.startsWith('/')) throw new VipdnsError('CONFIG', `docker: "${text}" needs an absolute socket path (unix:///var/run/docker.sock)`);
    return { socketPath: p, url: s };
  }
  const m = /^(tcp|http|https):\/\/(\[[^\]]+\]|[^:/]+)(?::(\d+))?\/?$/.exec(s);
  if (m) {
    const port = m[3] === undefined ? (tlsDir ? 2376 : 2375) : Number(m[3]);
    if (port < 1 || port > 65535) throw new VipdnsError('CONFIG', `docker: "${text}" has a bad port`);
    const host = m[2]!.replace(/^\[|\]$/g, '');
    if (!tlsDir) return { host, port, url: `tcp://${m[2]}:${port}` };
    return { host, port, url: `https://${m[2]}:${port}`, tls: readTlsDir(tlsDir) };
  }
  throw new VipdnsError('CONFIG', `docker: "${text}" is not unix:///PATH, /PATH or tcp://HOST:PORT (ssh engines are not supported; use the engine's socket, or TCP with --docker-tls-dir)`);
}

function readTlsDir(dir: string): { ca: Buffer; cert: Buffer; key: Buffer } {
  const read = (f: string): Buffer => {
    try {
      return readFileSync(join(dir, f));
    } catch (e) {
      throw new VipdnsError('CONFIG', `docker TLS: ${join(dir, f)}: ${(e as NodeJS.ErrnoException).code ?? errorMessage(e)} (the directory needs ca.pem, cert.pem and key.pem)`);
    }
  };
  return { ca: read('ca.pem'), cert: read('cert.pem'), key: read('key.pem') };
}

export interface EventStream {
  /** Resolves once the engine answered 200; rejects if it could not be opened. */
  opened: Promise<void>;
  /** Resolves when the engine ends the stream, rejects on a connection error. */
  done: Promise<void>;
  close(): void;
}

export class DockerClient {
  constructor(
    readonly endpoint: DockerEndpoint,
    private readonly timeoutMs = 10_000,
  ) {}

  /** One JSON request. Engine errors keep the engine's message; 404 becomes NOT_FOUND. */
  request<T>(method: string, path: string, body?: unknown): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = this.transport().request(
        {
          ...this.target(),
          method,
          path,
          headers: { host: this.hostHeader(), ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}) },
          timeout: this.timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_BODY) req.destroy(new VipdnsError('UNAVAILABLE', `docker: ${method} ${path}: response is over ${MAX_BODY} bytes`));
            else chunks.push(c);
          });
          res.on('error', (e) => reject(this.wrap(e, method, path)));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const status = res.statusCode ?? 0;
            if (status >= 400) {
              reject(engineError(status, method, path, text));
              return;
            }
            if (text.trim() === '') {
              resolve(undefined as T);
              return;
            }
            try {
              resolve(JSON.parse(text) as T);
            } catch {
              reject(new VipdnsError('UNAVAILABLE', `docker: ${method} ${path}: the engine answered with something that is not JSON`));
            }
          });
        },
      );
      req.on('timeout', () => req.destroy(new VipdnsError('UNAVAILABLE', `docker: ${method} ${path}: no answer from ${this.endpoint.url} in ${this.timeoutMs} ms`)));
      req.on('error', (e) => reject(this.wrap(e, method, path)));
      req.end(payload);
    });
  }

  /** Follows GET /events; `onEvent` gets each decoded event object. */
  events(filters: Record<string, string[]>, onEvent: (e: unknown) => void): EventStream {
    let req: http.ClientRequest | undefined;
    let closed = false;
    let markOpen!: () => void;
    let failOpen!: (e: Error) => void;
    const opened = new Promise<void>((res, rej) => {
      markOpen = res;
      failOpen = rej;
    });
    const done = new Promise<void>((resolve, reject) => {
      const path = `/events?filters=${encodeURIComponent(JSON.stringify(filters))}`;
      req = this.transport().request({ ...this.target(), method: 'GET', path, headers: { host: this.hostHeader() } }, (res) => {
        const status = res.statusCode ?? 0;
        if (status !== 200) {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c.slice(0, 4096)));
          res.on('end', () => {
            const e = engineError(status, 'GET', '/events', text);
            failOpen(e);
            reject(e);
          });
          return;
        }
        markOpen();
        const split = new JsonObjectSplitter();
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          for (const ev of split.push(c)) onEvent(ev);
        });
        res.on('end', () => resolve());
        res.on('error', (e) => (closed ? resolve() : reject(this.wrap(e, 'GET', '/events'))));
      });
      req.on('error', (e) => {
        if (closed) return resolve();
        const w = this.wrap(e, 'GET', '/events');
        failOpen(w);
        reject(w);
      });
      req.end();
    });
    // Callers await `opened` or `done`; keep the other from surfacing as unhandled.
    opened.catch(() => undefined);
    done.catch(() => undefined);
    return {
      opened,
      done,
      close: () => {
        closed = true;
        req?.destroy();
      },
    };
  }

  /** Over TLS the Host header is what the engine's certificate is checked against (Node takes the name from it). */
  private hostHeader(): string {
    const e = this.endpoint;
    return e.tls ? (e.host!.includes(':') ? `[${e.host}]` : e.host!) : 'docker';
  }

  private transport(): { request: typeof http.request } {
    return this.endpoint.tls ? https : http;
  }

  private target(): https.RequestOptions {
    const e = this.endpoint;
    if (e.socketPath) return { socketPath: e.socketPath };
    // The engine's certificate must be for the host we dial (its name or IP in the SAN).
    return e.tls ? { host: e.host, port: e.port, ...e.tls, servername: /^[\d.]+$|:/.test(e.host!) ? undefined : e.host } : { host: e.host, port: e.port };
  }

  private wrap(e: unknown, method: string, path: string): VipdnsError {
    if (e instanceof VipdnsError) return e;
    const code = (e as NodeJS.ErrnoException).code;
    const hint = code === 'ENOENT' || code === 'ECONNREFUSED' ? ' (is the engine running? is the socket mounted?)' : code === 'EACCES' ? ' (no permission on the socket: run as root or in the docker group)' : '';
    return new VipdnsError('UNAVAILABLE', `docker: ${method} ${path} via ${this.endpoint.url}: ${errorMessage(e)}${hint}`, { cause: e });
  }
}

function engineError(status: number, method: string, path: string, text: string): VipdnsError {
  let msg = text.trim().slice(0, 500);
  try {
    const j = JSON.parse(text) as { message?: unknown };
    if (typeof j.message === 'string') msg = j.message;
  } catch {
    /* plain text */
  }
  const code = status === 404 ? 'NOT_FOUND' : status === 409 ? 'CONFLICT' : status < 500 ? 'BAD_REQUEST' : 'UNAVAILABLE';
  return new VipdnsError(code, `docker: ${method} ${path}: engine answered ${status}: ${msg}`);
}
