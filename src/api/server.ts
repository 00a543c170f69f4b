// The control API: JSON over HTTP on loopback. The CLI is its client. Every error is
// { "error": { "code", "message" } } with a matching HTTP status.
import { createHash, timingSafeEqual } from 'node:crypto';
import { chmod, unlink } from 'node:fs/promises';
import * as http from 'node:http';
import { type Socket, connect } from 'node:net';
import { closeHttp, listenHttp } from '../net/http.js';
import type { ApiEndpoint } from '../config.js';
import type { Catalog } from '../catalog/catalog.js';
import { VipdnsError, isVipdnsError } from '../errors.js';
import type { DriverLimits } from '../balancer/types.js';

type Handler = (req: { params: Record<string, string>; query: URLSearchParams; body: unknown }) => Promise<unknown> | unknown;

interface Route {
  method: string;
  parts: string[];
  handler: Handler;
}

const MAX_BODY = 1 << 20;

export interface ApiServerOptions {
  listen: ApiEndpoint;
  catalog: Catalog;
  /** When set, every request must carry `Authorization: Bearer <token>`; others get 401 and change nothing. */
  token?: string;
  /** Counts requests refused for a missing or wrong token. */
  onUnauthorized?: () => void;
  /** Daemon status for GET /v1/info (listeners, dataplane, versions). */
  info?: () => unknown;
  onError?: (e: Error) => void;
  /** Awaited after a successful write before answering, so a client that got its answer reads
   * its write everywhere (DNS worker threads included). */
  afterWrite?: () => Promise<unknown>;
  /** How long an idle keep-alive connection stays open (Node's default, 5 s, unless given). */
  keepAliveTimeoutMs?: number;
  /** What the running dataplane cannot program: a service asking for it is refused with the reason. */
  limits?: DriverLimits;
  /** `vipdns explain`: the DNS side, computed by the daemon's own resolver. */
  explain?: (req: { name: string; from: string; type?: string; port?: number; protocol?: 'tcp' | 'udp' }) => Promise<unknown>;
}

export class ApiServer {
  private readonly routes: Route[] = [];
  private server?: http.Server;
  private readonly opts: ApiServerOptions;
  port = 0;

  constructor(opts: ApiServerOptions) {
    this.opts = opts;
    this.register(opts.catalog);
  }

  /** Adds a route; `path` segments starting with ":" are parameters. */
  route(method: string, path: string, handler: Handler): void {
    this.routes.push({ method, parts: path.split('/').filter(Boolean), handler });
  }

  async start(): Promise<void> {
    const server = http.createServer((req, res) => void this.serve(req, res));
    if (this.opts.keepAliveTimeoutMs !== undefined) server.keepAliveTimeout = this.opts.keepAliveTimeoutMs;
    // Node destroys an idle keep-alive socket when its timer fires. After an event-loop stall
    // longer than that timer (a slow commit), timers run before the poll phase has read the
    // requests that arrived meanwhile: the socket is destroyed with a request unread and the
    // client gets ECONNRESET instead of a queued answer. With a 'timeout' listener the server
    // leaves the decision to us: close only once the loop has read what had already arrived.
    server.on('timeout', (socket: Socket) => closeIfStillIdle(socket));
    const l = this.opts.listen;
    if (l.kind === 'tcp') {
      this.port = await listenHttp(server, l.host, l.port);
    } else {
      await removeStaleSocket(l.path);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(l.path, () => (server.off('error', reject), resolve()));
      });
      // Owner and group: give the operators' group access with chgrp; others cannot connect.
      await chmod(l.path, 0o660);
    }
    this.server = server;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    await closeHttp(s);
    if (s && this.opts.listen.kind === 'unix') await unlink(this.opts.listen.path).catch(() => undefined);
  }

  /** Where clients reach it, as the CLI's --api takes it. */
  get url(): string {
    const l = this.opts.listen;
    return l.kind === 'unix' ? `unix://${l.path}` : `http://${l.host.includes(':') ? `[${l.host}]` : l.host}:${this.port}`;
  }

  private authorized(req: http.IncomingMessage): boolean {
    const want = this.opts.token;
    if (want === undefined) return true;
    const got = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1]?.trim() ?? '';
    // Digests of equal length, compared in constant time: the comparison says nothing of the token.
    return timingSafeEqual(digest(got), digest(want));
  }

  private register(c: Catalog): void {
    this.route('GET', '/v1/info', () => ({ revision: c.state.revision, ...(this.opts.info?.() as object | undefined) }));

    this.route('GET', '/v1/networks', () => Object.values(c.state.networks).map((n) => publicNetwork(n)));
    this.route('POST', '/v1/networks', async ({ body }) => publicNetwork(await c.createNetwork(obj(body) as never)));
    this.route('GET', '/v1/networks/:name', ({ params }) => {
      const n = c.network(params.name!);
      return {
        ...publicNetwork(n),
        services: Object.values(c.state.services).filter((x) => x.attachments.some((a) => a.network === n.name)).map((x) => x.name),
        containers: Object.values(c.state.containers).filter((x) => n.name in x.addresses).map((x) => x.name),
      };
    });
    this.route('DELETE', '/v1/networks/:name', async ({ params }) => publicNetwork(await c.removeNetwork(params.name!)));

    this.route('GET', '/v1/services', () => Object.values(c.state.services).map((x) => ({ ...x, replicas: c.tasksOf(x.name).length })));
    this.route('POST', '/v1/services', async ({ body }) => c.createService(this.supported(obj(body)) as never));
    this.route('GET', '/v1/services/:name', ({ params }) => {
      const svc = c.service(params.name!);
      return { ...svc, tasks: c.tasksOf(svc.name) };
    });
    this.route('PATCH', '/v1/services/:name', async ({ params, body }) => c.updateService(params.name!, this.supported(obj(body)) as never));
    this.route('DELETE', '/v1/services/:name', async ({ params }) => c.removeService(params.name!));

    this.route('GET', '/v1/tasks', ({ query }) => {
      const svc = query.get('service');
      if (svc) return c.tasksOf(c.service(svc).name);
      return Object.values(c.state.tasks);
    });
    this.route('POST', '/v1/tasks', async ({ body }) => c.addTask(obj(body) as never));
    this.route('GET', '/v1/tasks/:ref', ({ params }) => c.task(params.ref!));
    this.route('PATCH', '/v1/tasks/:ref', async ({ params, body }) => c.updateTask(params.ref!, obj(body) as never));
    this.route('DELETE', '/v1/tasks/:ref', async ({ params }) => c.removeTask(params.ref!));

    this.route('GET', '/v1/explain', ({ query }) => {
      if (!this.opts.explain) throw new VipdnsError('UNAVAILABLE', 'explain is not available in this daemon');
      const type = query.get('type');
      const port = query.get('port');
      const m = port === null ? undefined : /^(\d{1,5})(?:\/(tcp|udp))?$/i.exec(port);
      if (port !== null && !m) throw new VipdnsError('BAD_PORT', `--port takes PORT[/tcp|udp], got "${port}"`);
      return this.opts.explain({
        name: query.get('name') ?? '',
        from: query.get('from') ?? '',
        ...(type ? { type } : {}),
        ...(m ? { port: Number(m[1]), protocol: (m[2]?.toLowerCase() ?? 'tcp') as 'tcp' | 'udp' } : {}),
      });
    });

    this.route('GET', '/v1/containers', () => Object.values(c.state.containers));
    this.route('POST', '/v1/containers', async ({ body }) => c.addContainer(obj(body) as never));
    this.route('GET', '/v1/containers/:name', ({ params }) => {
      const x = c.findContainer(params.name!);
      if (!x) throw new VipdnsError('NOT_FOUND', `no container "${params.name}"`);
      return x;
    });
    this.route('DELETE', '/v1/containers/:name', async ({ params }) => c.removeContainer(params.name!));
  }

  /** Refuses a scheduler or stickiness the dataplane cannot program, naming why (nothing is written). */
  private supported(body: Record<string, unknown>): Record<string, unknown> {
    const l = this.opts.limits;
    const why = typeof body.lb === 'string' ? l?.schedulers?.[body.lb as keyof NonNullable<DriverLimits['schedulers']>] : undefined;
    if (why) throw new VipdnsError('DATAPLANE_UNSUPPORTED', `lb ${String(body.lb)}: ${why}`);
    if (l?.sticky && typeof body.sticky === 'number' && body.sticky > 0) throw new VipdnsError('DATAPLANE_UNSUPPORTED', `sticky ${body.sticky}: ${l.sticky}`);
    return body;
  }

  private async serve(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    try {
      if (!this.authorized(req)) {
        this.opts.onUnauthorized?.();
        req.resume();
        send(res, 401, { error: { code: 'UNAUTHORIZED', message: 'this API needs a bearer token: give the CLI --api-token-file FILE or VIPDNS_API_TOKEN' } }, { 'www-authenticate': 'Bearer' });
        return;
      }
      const url = new URL(req.url ?? '/', 'http://localhost');
      let segs: string[];
      try {
        segs = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
      } catch {
        throw new VipdnsError('BAD_REQUEST', `the path ${url.pathname} is not valid percent-encoding`);
      }
      let pathMatched = false;
      for (const r of this.routes) {
        const params = match(r.parts, segs);
        if (!params) continue;
        pathMatched = true;
        if (r.method !== req.method) continue;
        const body = req.method === 'POST' || req.method === 'PATCH' ? await readJson(req) : undefined;
        const result = await r.handler({ params, query: url.searchParams, body });
        if (req.method !== 'GET' && this.opts.afterWrite) await this.opts.afterWrite();
        send(res, req.method === 'POST' ? 201 : 200, result);
        return;
      }
      if (pathMatched) throw new VipdnsError('BAD_REQUEST', `method ${req.method} is not allowed on ${url.pathname}`);
      throw new VipdnsError('NOT_FOUND', `no such endpoint: ${req.method} ${url.pathname}`);
    } catch (e) {
      if (isVipdnsError(e)) {
        send(res, e.httpStatus, { error: { code: e.code, message: e.message } });
      } else {
        this.opts.onError?.(e as Error);
        send(res, 500, { error: { code: 'INTERNAL', message: (e as Error).message } });
      }
    }
  }
}

function closeIfStillIdle(socket: Socket): void {
  const read = socket.bytesRead;
  // setImmediate runs after this loop iteration's poll phase, which reads pending requests.
  setImmediate(() => {
    if (socket.bytesRead === read && !socket.destroyed) socket.destroy();
  });
}

function publicNetwork(n: import('../catalog/model.js').Network): Omit<typeof n, 'ipamCursor'> {
  const { ipamCursor: _cursor, ...rest } = n;
  return rest;
}

function obj(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new VipdnsError('BAD_REQUEST', 'request body must be a JSON object');
  return body as Record<string, unknown>;
}

function match(parts: string[], segs: string[]): Record<string, string> | undefined {
  if (parts.length !== segs.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    if (p.startsWith(':')) params[p.slice(1)] = segs[i]!;
    else if (p !== segs[i]) return undefined;
  }
  return params;
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new VipdnsError('BAD_REQUEST', `request body is over ${MAX_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new VipdnsError('BAD_REQUEST', 'request body is not valid JSON');
  }
}

function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body ?? null);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/**
 * A socket file left by a daemon that died is removed; one a live daemon answers on is not
 * (listening would fail with EADDRINUSE, which names the path).
 */
async function removeStaleSocket(path: string): Promise<void> {
  const live = await new Promise<boolean>((resolve) => {
    const c = connect(path);
    c.once('connect', () => (c.destroy(), resolve(true)));
    c.once('error', () => resolve(false));
  });
  if (!live) await unlink(path).catch(() => undefined);
}
