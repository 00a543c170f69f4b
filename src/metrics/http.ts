// /metrics (Prometheus text), /healthz (process alive, event loop not stalled) and
// /readyz (every readiness check passes) on their own listener, apart from the control API.
import * as http from 'node:http';
import { closeHttp, listenHttp } from '../net/http.js';
import type { Registry } from 'prom-client';

export type ReadinessCheck = () => { ok: boolean; detail: string };

export interface MetricsServerOptions {
  host: string;
  port: number;
  registry: Registry;
  readiness: Record<string, ReadinessCheck>;
}

const STALL_MS = 2000;

export class MetricsServer {
  private server?: http.Server;
  private timer?: NodeJS.Timeout;
  private lastTick = Date.now();
  private maxLag = 0;
  port = 0;

  constructor(private readonly opts: MetricsServerOptions) {}

  async start(): Promise<void> {
    // The event loop is stalled if this 100 ms timer fires late.
    this.timer = setInterval(() => {
      const now = Date.now();
      this.maxLag = Math.max(0, now - this.lastTick - 100);
      this.lastTick = now;
    }, 100);
    this.timer.unref();
    const server = http.createServer((req, res) => void this.serve(req, res));
    this.port = await listenHttp(server, this.opts.host, this.opts.port);
    this.server = server;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    const s = this.server;
    this.server = undefined;
    await closeHttp(s);
  }

  private async serve(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    try {
      await this.route(req, res);
    } catch (e) {
      // A collector or readiness check that throws costs one scrape, never the process.
      if (!res.headersSent) text(res, 500, `error: ${(e as Error).message}\n`);
      else res.destroy();
    }
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      const body = await this.opts.registry.metrics();
      res.writeHead(200, { 'content-type': this.opts.registry.contentType });
      res.end(body);
      return;
    }
    if (path === '/healthz') {
      const lag = Math.max(this.maxLag, Date.now() - this.lastTick - 100);
      const ok = lag < STALL_MS;
      text(res, ok ? 200 : 503, ok ? `ok: event loop lag ${lag} ms\n` : `stalled: event loop lag ${lag} ms\n`);
      return;
    }
    if (path === '/readyz') {
      const lines: string[] = [];
      let ok = true;
      for (const [name, check] of Object.entries(this.opts.readiness)) {
        const r = check();
        ok &&= r.ok;
        lines.push(`[${r.ok ? '+' : '-'}] ${name}: ${r.detail}`);
      }
      text(res, ok ? 200 : 503, `${lines.join('\n')}\n${ok ? 'ready' : 'not ready'}\n`);
      return;
    }
    text(res, 404, 'not found: try /metrics, /healthz or /readyz\n');
  }
}

function text(res: http.ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
  res.end(body);
}
