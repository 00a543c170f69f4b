// The control API: JSON over HTTP (fastify) on a unix socket by default, TCP with a bearer token,
// or TLS with client certificates. Every request is checked against its route's JSON schema
// (schemas.ts) before its handler runs, and the same schemas make the OpenAPI document at
// /v1/openapi.json. Every error is { "error": { "code", "message" } } with a matching HTTP status.
import { createHash, timingSafeEqual } from 'node:crypto';
import { chmod, unlink } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { type Socket, connect } from 'node:net';
import swagger from '@fastify/swagger';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { ApiEndpoint } from '../config.js';
import type { Catalog } from '../catalog/catalog.js';
import { VipdnsError, isVipdnsError } from '../errors.js';
import type { DriverLimits } from '../balancer/types.js';
import { VERSION } from '../version.js';
import { SCHEMAS } from './schemas.js';

type Query = Record<string, string | undefined>;
type Handler = (req: { params: Record<string, string>; query: Query; body: unknown }) => Promise<unknown> | unknown;

/** What the OpenAPI document says of a route, and the schemas its request is checked against. */
export interface RouteSpec {
  summary?: string;
  body?: object;
  query?: object;
}

interface Route {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  path: string;
  handler: Handler;
  spec: RouteSpec;
}

const MAX_BODY = 1 << 20;

export interface ApiTls {
  cert: Buffer;
  key: Buffer;
  /** CA of the client certificates: every client must present one it signed. */
  ca: Buffer;
}

export interface ApiServerOptions {
  listen: ApiEndpoint;
  catalog: Catalog;
  /** When set, every request must carry `Authorization: Bearer <token>`; others get 401 and change nothing. */
  token?: string;
  /** TLS, with client certificates required. */
  tls?: ApiTls;
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
  private app?: FastifyInstance;
  private readonly opts: ApiServerOptions;
  port = 0;

  constructor(opts: ApiServerOptions) {
    this.opts = opts;
    this.register(opts.catalog);
  }

  /** Adds a route (before start); `path` segments starting with ":" are parameters. */
  route(method: Route['method'], path: string, handler: Handler, spec: RouteSpec = {}): void {
    this.routes.push({ method, path, handler, spec });
  }

  async start(): Promise<void> {
    const o = this.opts;
    const app = Fastify({
      logger: false,
      bodyLimit: MAX_BODY,
      forceCloseConnections: true,
      // A path that is not valid percent-encoding, and the like, before any route: our error shape too.
      frameworkErrors: (e: FastifyError, req: FastifyRequest, reply: FastifyReply) =>
        this.fail(e.code === 'FST_ERR_BAD_URL' ? new VipdnsError('BAD_REQUEST', `the path ${req.url} is not valid percent-encoding`) : e, reply),
      ...(o.keepAliveTimeoutMs !== undefined ? { keepAliveTimeout: o.keepAliveTimeoutMs } : {}),
      ...(o.tls ? { https: { cert: o.tls.cert, key: o.tls.key, ca: o.tls.ca, requestCert: true, rejectUnauthorized: true } } : {}),
      // Types as sent: "80" is not a port, and unknown fields are refused rather than dropped.
      ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false } },
    }) as unknown as FastifyInstance;
    // Node destroys an idle keep-alive socket when its timer fires. After an event-loop stall
    // longer than that timer (a slow commit), timers run before the poll phase has read the
    // requests that arrived meanwhile: the socket is destroyed with a request unread and the
    // client gets ECONNRESET instead of a queued answer. With a 'timeout' listener the server
    // leaves the decision to us: close only once the loop has read what had already arrived.
    app.server.on('timeout', (socket: Socket) => closeIfStillIdle(socket));
    // Any body is JSON (curl -d sends form encoding by default); an empty one is {}.
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', { parseAs: 'string', bodyLimit: MAX_BODY }, (_req, text, done) => {
      const t = String(text);
      if (t.trim() === '') return done(null, {});
      try {
        done(null, JSON.parse(t));
      } catch {
        done(new VipdnsError('BAD_REQUEST', 'request body is not valid JSON'), undefined);
      }
    });
    app.addHook('onRequest', async (req, reply) => {
      if (this.authorized(req.raw)) return;
      o.onUnauthorized?.();
      await reply
        .code(401)
        .header('www-authenticate', 'Bearer')
        .send({ error: { code: 'UNAUTHORIZED', message: 'this API needs a bearer token: give the CLI --api-token-file FILE or VIPDNS_API_TOKEN' } });
    });
    app.setErrorHandler((e: FastifyError, _req, reply) => this.fail(e, reply));
    app.setNotFoundHandler((req, reply) => this.fail(new VipdnsError('NOT_FOUND', `no such endpoint: ${req.method} ${req.url.split('?')[0]}`), reply));
    await app.register(swagger, {
      openapi: {
        openapi: '3.0.3',
        info: { title: 'vipdns control API', version: VERSION, description: 'Service discovery DNS and virtual-IP load balancer: the catalog and what the daemon made of it.' },
        components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      },
    });
    app.get('/v1/openapi.json', { schema: { summary: 'this document (OpenAPI 3)' } }, async () => app.swagger());
    for (const r of this.routes) {
      const schema: Record<string, unknown> = { ...(r.spec.summary ? { summary: r.spec.summary } : {}) };
      if (r.spec.body) schema.body = r.spec.body;
      if (r.spec.query) schema.querystring = r.spec.query;
      app.route({
        method: r.method,
        url: r.path,
        schema,
        handler: async (req: FastifyRequest, reply: FastifyReply) => {
          const result = await r.handler({ params: req.params as Record<string, string>, query: req.query as Query, body: req.body });
          if (r.method !== 'GET' && o.afterWrite) await o.afterWrite();
          return reply.code(r.method === 'POST' ? 201 : 200).type('application/json').send(JSON.stringify(result ?? null));
        },
      });
    }
    await app.ready();
    const l = o.listen;
    if (l.kind === 'tcp') {
      await app.listen({ host: l.host, port: l.port });
      const addr = app.server.address();
      this.port = typeof addr === 'object' && addr ? addr.port : l.port;
    } else {
      await removeStaleSocket(l.path);
      await app.listen({ path: l.path });
      // Owner and group: give the operators' group access with chgrp; others cannot connect.
      await chmod(l.path, 0o660);
    }
    this.app = app;
  }

  async stop(): Promise<void> {
    const app = this.app;
    this.app = undefined;
    await app?.close();
    if (app && this.opts.listen.kind === 'unix') await unlink(this.opts.listen.path).catch(() => undefined);
  }

  /** Where clients reach it, as the CLI's --api takes it. */
  get url(): string {
    const l = this.opts.listen;
    const scheme = this.opts.tls ? 'https' : 'http';
    return l.kind === 'unix' ? `unix://${l.path}` : `${scheme}://${l.host.includes(':') ? `[${l.host}]` : l.host}:${this.port}`;
  }

  private authorized(req: IncomingMessage): boolean {
    const want = this.opts.token;
    if (want === undefined) return true;
    const got = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1]?.trim() ?? '';
    // Digests of equal length, compared in constant time: the comparison says nothing of the token.
    return timingSafeEqual(digest(got), digest(want));
  }

  /** Every error as { error: { code, message } }: ours with their status, fastify's request errors as 400. */
  private fail(e: unknown, reply: FastifyReply): FastifyReply {
    let err: VipdnsError;
    if (isVipdnsError(e)) err = e;
    else {
      const f = e as FastifyError;
      const status = f.statusCode ?? 500;
      if (f.validation) err = new VipdnsError('BAD_REQUEST', `invalid request: ${validationText(f)}`);
      else if (f.code === 'FST_ERR_CTP_BODY_TOO_LARGE') err = new VipdnsError('BAD_REQUEST', `request body is over ${MAX_BODY} bytes`);
      else if (status >= 400 && status < 500) err = new VipdnsError('BAD_REQUEST', f.message);
      else {
        this.opts.onError?.(f);
        err = new VipdnsError('INTERNAL', f.message);
      }
    }
    return reply.code(err.httpStatus).type('application/json').send(JSON.stringify({ error: { code: err.code, message: err.message } }));
  }

  private register(c: Catalog): void {
    this.route('GET', '/v1/info', () => ({ revision: c.state.revision, ...(this.opts.info?.() as object | undefined) }));

    this.route('GET', '/v1/networks', () => Object.values(c.state.networks).map((n) => publicNetwork(n)));
    this.route('POST', '/v1/networks', async ({ body }) => publicNetwork(await c.createNetwork(body as never)), { summary: 'create a network', body: SCHEMAS.createNetwork });
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
    this.route('POST', '/v1/services', async ({ body }) => c.createService(this.supported(body) as never), { summary: 'create a service', body: SCHEMAS.createService });
    this.route('GET', '/v1/services/:name', ({ params }) => {
      const svc = c.service(params.name!);
      return { ...svc, tasks: c.tasksOf(svc.name) };
    });
    this.route('PATCH', '/v1/services/:name', async ({ params, body }) => c.updateService(params.name!, this.supported(body) as never), { summary: 'change a service', body: SCHEMAS.updateService });
    this.route('DELETE', '/v1/services/:name', async ({ params }) => c.removeService(params.name!));

    this.route(
      'GET',
      '/v1/tasks',
      ({ query }) => {
        const svc = query.service;
        if (svc) return c.tasksOf(c.service(svc).name);
        return Object.values(c.state.tasks);
      },
      { summary: 'list tasks, of one service or all', query: SCHEMAS.serviceQuery },
    );
    this.route('POST', '/v1/tasks', async ({ body }) => c.addTask(body as never), { summary: 'add a task', body: SCHEMAS.addTask });
    this.route('GET', '/v1/tasks/:ref', ({ params }) => c.task(params.ref!));
    this.route('PATCH', '/v1/tasks/:ref', async ({ params, body }) => c.updateTask(params.ref!, body as never), { summary: 'change a task (its weight)', body: SCHEMAS.updateTask });
    this.route('DELETE', '/v1/tasks/:ref', async ({ params }) => c.removeTask(params.ref!));

    this.route(
      'GET',
      '/v1/explain',
      ({ query }) => {
        if (!this.opts.explain) throw new VipdnsError('UNAVAILABLE', 'explain is not available in this daemon');
        const m = query.port === undefined ? undefined : /^(\d{1,5})(?:\/(tcp|udp))?$/i.exec(query.port);
        return this.opts.explain({
          name: query.name ?? '',
          from: query.from ?? '',
          ...(query.type ? { type: query.type } : {}),
          ...(m ? { port: Number(m[1]), protocol: (m[2]?.toLowerCase() ?? 'tcp') as 'tcp' | 'udp' } : {}),
        });
      },
      { summary: 'why a name does (not) resolve for a client, with the exact answer', query: SCHEMAS.explainQuery },
    );

    this.route('GET', '/v1/containers', () => Object.values(c.state.containers));
    this.route('POST', '/v1/containers', async ({ body }) => c.addContainer(body as never), { summary: 'add a standalone container', body: SCHEMAS.addContainer });
    this.route('GET', '/v1/containers/:name', ({ params }) => {
      const x = c.findContainer(params.name!);
      if (!x) throw new VipdnsError('NOT_FOUND', `no container "${params.name}"`);
      return x;
    });
    this.route('DELETE', '/v1/containers/:name', async ({ params }) => c.removeContainer(params.name!));
  }

  /** Refuses a scheduler or stickiness the dataplane cannot program, naming why (nothing is written). */
  private supported(raw: unknown): Record<string, unknown> {
    const body = raw as Record<string, unknown>;
    const l = this.opts.limits;
    const why = typeof body.lb === 'string' ? l?.schedulers?.[body.lb as keyof NonNullable<DriverLimits['schedulers']>] : undefined;
    if (why) throw new VipdnsError('DATAPLANE_UNSUPPORTED', `lb ${String(body.lb)}: ${why}`);
    if (l?.sticky && typeof body.sticky === 'number' && body.sticky > 0) throw new VipdnsError('DATAPLANE_UNSUPPORTED', `sticky ${body.sticky}: ${l.sticky}`);
    return body;
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

/** The first schema error, as "body/ports/0/target must be integer" (anyOf's summary line dropped). */
function validationText(f: FastifyError): string {
  const errs = f.validation ?? [];
  const first = errs.find((e) => e.keyword !== 'anyOf') ?? errs[0];
  if (!first) return f.message;
  const where = `${f.validationContext ?? 'body'}${first.instancePath}`;
  const unknown = (first.params as { additionalProperty?: string } | undefined)?.additionalProperty;
  if (first.keyword === 'additionalProperties' && unknown) return `${where} has an unknown field "${unknown}"`;
  const alts = errs.some((e) => e.keyword === 'anyOf') ? ' (or another of its allowed forms)' : '';
  return `${where} ${first.message ?? 'is invalid'}${alts}`;
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
