// The container labels the Docker source reads, and their parsers. Pure; see docs/docker-source.md.
import { VipdnsError } from '../../errors.js';
import type { EndpointMode, HealthCheckSpec, PortSpec, Protocol } from '../model.js';
import { checkHealthCheck, parseHealthSpec } from '../validate.js';

export const LABEL = {
  service: 'vipdns.service',
  endpointMode: 'vipdns.endpoint-mode',
  ports: 'vipdns.ports',
  publish: 'vipdns.publish',
  alias: 'vipdns.alias',
  vip: 'vipdns.vip',
  ignore: 'vipdns.ignore',
  health: 'vipdns.health',
} as const;

/** Labels the engine puts on the containers of swarm tasks. */
export const SWARM = {
  service: 'com.docker.swarm.service.name',
  serviceId: 'com.docker.swarm.service.id',
  taskId: 'com.docker.swarm.task.id',
} as const;

/** "a, b,,c" → ["a", "b", "c"]. */
export function parseList(v: string | undefined): string[] {
  return (v ?? '').split(',').map((x) => x.trim()).filter(Boolean);
}

export function parseBool(v: string | undefined): boolean {
  return v !== undefined && ['1', 'true', 'yes', 'on'].includes(v.trim().toLowerCase());
}

export function parseEndpointMode(v: string | undefined): EndpointMode {
  const m = (v ?? 'vip').trim().toLowerCase();
  if (m !== 'vip' && m !== 'dnsrr') throw new VipdnsError('BAD_REQUEST', `label ${LABEL.endpointMode}="${v}": use vip or dnsrr`);
  return m;
}

function portNumber(text: string, spec: string, label: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > 65535) throw new VipdnsError('BAD_PORT', `label ${label}: "${spec}" needs ports from 1 to 65535`);
  return Number(text);
}

function splitProto(spec: string, label: string): [string, Protocol] {
  const i = spec.indexOf('/');
  if (i < 0) return [spec, 'tcp'];
  const p = spec.slice(i + 1).toLowerCase();
  if (p !== 'tcp' && p !== 'udp') throw new VipdnsError('BAD_PORT', `label ${label}: "${spec}": protocol must be tcp or udp`);
  return [spec.slice(0, i), p];
}

/**
 * vipdns.ports="http=80,dns=53/udp,9000" and vipdns.publish="8080:80,5353:53/udp" → port specs.
 * A published port whose target is also named in vipdns.ports becomes one spec with both.
 */
export function parsePorts(ports: string | undefined, publish: string | undefined): PortSpec[] {
  const out: PortSpec[] = [];
  for (const item of parseList(ports)) {
    const eq = item.indexOf('=');
    const name = eq > 0 ? item.slice(0, eq).trim() : undefined;
    const [t, protocol] = splitProto(eq > 0 ? item.slice(eq + 1).trim() : item, LABEL.ports);
    const spec: PortSpec = { protocol, target: portNumber(t, item, LABEL.ports) };
    if (name) spec.name = name.toLowerCase();
    out.push(spec);
  }
  for (const item of parseList(publish)) {
    const [pt, protocol] = splitProto(item, LABEL.publish);
    const parts = pt.split(':');
    if (parts.length !== 2) throw new VipdnsError('BAD_PORT', `label ${LABEL.publish}: "${item}" is not PUBLISHED:TARGET[/udp] (e.g. 8080:80)`);
    const published = portNumber(parts[0]!, item, LABEL.publish);
    const target = portNumber(parts[1]!, item, LABEL.publish);
    const same = out.find((p) => p.target === target && p.protocol === protocol);
    if (same && same.published === undefined) same.published = published;
    else out.push({ protocol, target, published });
  }
  return out;
}

/** vipdns.vip="10.0.9.250" (every network whose subnet holds it) or "front=10.0.9.250,back=10.1.0.250". */
export function parseVips(v: string | undefined): { any: string[]; byNetwork: Map<string, string> } {
  const any: string[] = [];
  const byNetwork = new Map<string, string>();
  for (const item of parseList(v)) {
    const eq = item.indexOf('=');
    if (eq > 0) byNetwork.set(item.slice(0, eq).trim(), item.slice(eq + 1).trim());
    else any.push(item);
  }
  return { any, byNetwork };
}

/** vipdns.health="http:80/healthz" or "tcp:5432" → an active check with the default timing. */
export function parseHealth(v: string | undefined): HealthCheckSpec | undefined {
  if (v === undefined || v.trim() === '') return undefined;
  return checkHealthCheck(parseHealthSpec(v, `label ${LABEL.health}`));
}
