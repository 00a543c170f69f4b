// One probe of one task: TCP connect or HTTP GET, bounded by a timeout. I/O only.
import * as http from 'node:http';
import * as net from 'node:net';
import type { HealthCheckSpec } from '../catalog/model.js';

export interface ProbeResult {
  ok: boolean;
  detail: string;
}

export function probe(ip: string, spec: HealthCheckSpec): Promise<ProbeResult> {
  return spec.type === 'tcp' ? probeTcp(ip, spec.port, spec.timeoutMs) : probeHttp(ip, spec.port, spec.path ?? '/', spec.timeoutMs);
}

function probeTcp(host: string, port: number, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (r: ProbeResult): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done({ ok: false, detail: `tcp connect timed out after ${timeoutMs} ms` }), timeoutMs);
    s.once('connect', () => done({ ok: true, detail: 'tcp connect ok' }));
    s.once('error', (e: NodeJS.ErrnoException) => done({ ok: false, detail: `tcp connect: ${e.code ?? e.message}` }));
  });
}

function probeHttp(host: string, port: number, path: string, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (r: ProbeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve(r);
    };
    const req = http.get({ host, port, path, agent: false, headers: { 'user-agent': 'vipdns-health/1' } }, (res) => {
      const code = res.statusCode ?? 0;
      res.resume();
      done(code >= 200 && code < 400 ? { ok: true, detail: `http ${code}` } : { ok: false, detail: `http ${code}` });
    });
    const timer = setTimeout(() => done({ ok: false, detail: `http timed out after ${timeoutMs} ms` }), timeoutMs);
    req.once('error', (e: NodeJS.ErrnoException) => done({ ok: false, detail: `http: ${e.code ?? e.message}` }));
  });
}
