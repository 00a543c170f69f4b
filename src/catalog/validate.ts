// Pure validation of user-supplied names, ports and health checks.
import { VipdnsError } from '../errors.js';
import { type EndpointMode, type HealthCheckSpec, MAX_STICKY_SECONDS, MAX_WEIGHT, type PortSpec, type Protocol, SCHEDULERS, type Scheduler } from './model.js';

// One DNS label: "<name>.<network>" and "tasks.<name>" must stay unambiguous, so no dots.
const LABEL = /^[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}$/;
// Task names are svc.slot.id by default, so they may contain dots (each part a label).
const DOTTED = /^[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}(\.[a-zA-Z0-9][a-zA-Z0-9_-]{0,62})*$/;
const RESERVED = new Set(['tasks']);

export function checkName(kind: string, name: unknown, opts: { dotted?: boolean } = {}): string {
  if (typeof name !== 'string' || name.length === 0) throw new VipdnsError('BAD_NAME', `${kind} name is required`);
  const ok = (opts.dotted ? DOTTED : LABEL).test(name) && name.length <= 253;
  if (!ok) {
    const rule = opts.dotted
      ? 'dot-separated labels of letters, digits, "-" and "_", each starting with a letter or digit and at most 63 characters'
      : 'letters, digits, "-" and "_", starting with a letter or digit, at most 63 characters, no dots';
    throw new VipdnsError('BAD_NAME', `invalid ${kind} name "${name}": use ${rule}`);
  }
  if (RESERVED.has(name.toLowerCase())) throw new VipdnsError('BAD_NAME', `"${name}" is reserved (tasks.<service> lists a service's tasks)`);
  return name;
}

/** A published port still to be picked from the publish range ("published": "auto" in the API). */
export const AUTO_PUBLISHED = 0;
export const AUTO_PUBLISHED_TEXT = 'auto';

export function checkPort(what: string, p: unknown): number {
  if (typeof p !== 'number' || !Number.isInteger(p) || p < 1 || p > 65535) {
    throw new VipdnsError('BAD_PORT', `${what} must be a port number from 1 to 65535, got ${JSON.stringify(p)}`);
  }
  return p;
}

export function checkPorts(ports: unknown): PortSpec[] {
  if (ports === undefined) return [];
  if (!Array.isArray(ports)) throw new VipdnsError('BAD_PORT', 'ports must be a list');
  const out: PortSpec[] = [];
  const seen = new Set<string>();
  for (const raw of ports as Array<Partial<PortSpec>>) {
    if (typeof raw !== 'object' || raw === null) throw new VipdnsError('BAD_PORT', `a port must be {"target": N, "protocol"?, "published"? (N or "auto"), "name"?}, got ${JSON.stringify(raw)}`);
    const protocol: Protocol = raw.protocol ?? 'tcp';
    if (protocol !== 'tcp' && protocol !== 'udp') throw new VipdnsError('BAD_PORT', `protocol must be tcp or udp, got "${String(protocol)}"`);
    const target = checkPort('target port', raw.target);
    const spec: PortSpec = { protocol, target };
    const pub = raw.published as unknown;
    // "auto" (the CLI's --publish TARGET): a port from the publish range, picked by the mutation.
    if (pub === AUTO_PUBLISHED_TEXT) spec.published = AUTO_PUBLISHED;
    else if (pub !== undefined && pub !== null) spec.published = checkPort('published port', pub);
    if (raw.name !== undefined && raw.name !== null && raw.name !== '') {
      if (typeof raw.name !== 'string' || !/^[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$/i.test(raw.name)) {
        throw new VipdnsError('BAD_PORT', `invalid port name "${String(raw.name)}": 1-15 letters, digits and "-" (it becomes the SRV label _${String(raw.name)}._${protocol})`);
      }
      spec.name = raw.name.toLowerCase();
    }
    if (spec.published !== undefined && spec.published !== AUTO_PUBLISHED) {
      const pk = `p${spec.published}/${protocol}`;
      if (seen.has(pk)) throw new VipdnsError('BAD_PORT', `published port ${spec.published}/${protocol} is listed twice`);
      seen.add(pk);
    }
    // One target may be named (SRV) and published in separate entries (--publish 8080:80
    // --port http=80): they are one port. Two plain entries for one target are a mistake.
    const key = `${target}/${protocol}`;
    const same = out.find((p) => `${p.target}/${p.protocol}` === key);
    if (!same) {
      out.push(spec);
      continue;
    }
    if (same.published === undefined && spec.published === undefined) throw new VipdnsError('BAD_PORT', `target port ${key} is listed twice`);
    if (same.name !== undefined && spec.name !== undefined && same.name !== spec.name) {
      throw new VipdnsError('BAD_PORT', `target port ${key} has two names, "${same.name}" and "${spec.name}"`);
    }
    if (spec.published === undefined) same.name ??= spec.name;
    else if (same.published === undefined) {
      same.published = spec.published;
      if (same.name === undefined && spec.name !== undefined) same.name = spec.name;
    }
    else out.push(spec); // published on two host ports
  }
  return out;
}

export function checkHealthCheck(raw: unknown): HealthCheckSpec | undefined {
  if (raw === undefined || raw === null) return undefined;
  const h = raw as Partial<HealthCheckSpec>;
  if (h.type !== 'tcp' && h.type !== 'http') throw new VipdnsError('BAD_REQUEST', 'health check type must be tcp or http');
  const num = (v: unknown, name: string, def: number, min: number, max: number): number => {
    const n = v === undefined ? def : v;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
      throw new VipdnsError('BAD_REQUEST', `health check ${name} must be an integer from ${min} to ${max}`);
    }
    return n;
  };
  const spec: HealthCheckSpec = {
    type: h.type,
    port: checkPort('health check port', h.port),
    intervalMs: num(h.intervalMs, 'intervalMs', 2000, 100, 3_600_000),
    timeoutMs: num(h.timeoutMs, 'timeoutMs', 1000, 10, 600_000),
    rise: num(h.rise, 'rise', 2, 1, 100),
    fall: num(h.fall, 'fall', 2, 1, 100),
  };
  if (spec.timeoutMs > spec.intervalMs) throw new VipdnsError('BAD_REQUEST', 'health check timeoutMs must not exceed intervalMs');
  if (h.type === 'http') {
    const path = h.path ?? '/';
    if (typeof path !== 'string' || !path.startsWith('/')) throw new VipdnsError('BAD_REQUEST', 'health check path must start with "/"');
    spec.path = path;
  }
  return spec;
}

/** "tcp:PORT" or "http:PORT/PATH" (the CLI's --health-check and the vipdns.health label) → a check to validate. */
export function parseHealthSpec(spec: string, what: string): Partial<HealthCheckSpec> {
  const m = /^(tcp|http):(\d+)(\/.*)?$/.exec(spec.trim());
  if (!m) throw new VipdnsError('BAD_REQUEST', `${what} takes tcp:PORT or http:PORT/PATH, got "${spec}"`);
  const h: Partial<HealthCheckSpec> = { type: m[1] as 'tcp' | 'http', port: Number(m[2]) };
  if (m[1] === 'http') h.path = m[3] ?? '/';
  else if (m[3]) throw new VipdnsError('BAD_REQUEST', `${what}: a tcp check has no path, got "${spec}"`);
  return h;
}

/** A list from a request body: absent is empty, anything but an array is refused. */
export function checkList(what: string, v: unknown): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new VipdnsError('BAD_REQUEST', `${what} must be a list, got ${JSON.stringify(v)}`);
  return v;
}

export function checkStrings(what: string, v: unknown): string[] {
  return checkList(what, v).map((x) => {
    if (typeof x !== 'string') throw new VipdnsError('BAD_REQUEST', `${what} must be a list of strings, got ${JSON.stringify(x)}`);
    return x;
  });
}

/** "net" or {network: "net", vip?/ip?: "addr"}, as the API and the CLI send them. */
export function checkAttachment(x: unknown, addrKey: 'vip' | 'ip'): { network: string; addrs: string[]; aliases?: string[] } {
  if (typeof x === 'string') return { network: x, addrs: [] };
  const o = x as Record<string, unknown> | null;
  if (typeof o !== 'object' || o === null || typeof o.network !== 'string') {
    throw new VipdnsError('BAD_REQUEST', `a network must be a name or {"network": NAME, "${addrKey}": ADDRESS, "${addrKey}6": IPV6 ADDRESS, "aliases": [NAME]}, got ${JSON.stringify(x)}`);
  }
  const out: { network: string; addrs: string[]; aliases?: string[] } = { network: o.network, addrs: [] };
  // `vip6`/`ip6`: the IPv6 address on a dual-stack network; each is placed by its family either way.
  for (const key of [addrKey, `${addrKey}6`]) {
    const addr = o[key];
    if (addr !== undefined && addr !== null && addr !== '' && typeof addr !== 'string') {
      throw new VipdnsError('BAD_REQUEST', `"${key}" of network "${o.network}" must be an address string, got ${JSON.stringify(addr)}`);
    }
    if (typeof addr === 'string' && addr !== '') out.addrs.push(addr);
  }
  // Network aliases (Docker's --network-alias): names answered only to clients on that network.
  const aliases = checkStrings(`aliases of network "${o.network}"`, o.aliases ?? undefined);
  if (aliases.length > 0) out.aliases = aliases;
  return out;
}

/** Own-property lookup: a record indexed by a user-chosen name must not find "constructor". */
export function own<T>(rec: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(rec, key) ? rec[key] : undefined;
}

export function checkScheduler(v: unknown): Scheduler {
  if (typeof v !== 'string' || !(SCHEDULERS as readonly string[]).includes(v)) {
    throw new VipdnsError('BAD_REQUEST', `unknown scheduler ${JSON.stringify(v)}: use ${SCHEDULERS.join(', ')} (rr: round robin, wrr: weighted round robin, lc: least connections, sh: source hash)`);
  }
  return v as Scheduler;
}

/** Seconds of client affinity; 0 turns it off (returned as undefined). */
export function checkSticky(v: unknown, mode: EndpointMode): number | undefined {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > MAX_STICKY_SECONDS) {
    throw new VipdnsError('BAD_REQUEST', `sticky must be whole seconds from 0 (off) to ${MAX_STICKY_SECONDS}, got ${JSON.stringify(v)}`);
  }
  if (v > 0 && mode === 'dnsrr') throw new VipdnsError('BAD_REQUEST', 'sticky sessions need endpoint mode vip: with dnsrr clients connect to task addresses directly and nothing balances them');
  return v > 0 ? v : undefined;
}

export function checkWeight(v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > MAX_WEIGHT) {
    throw new VipdnsError('BAD_REQUEST', `weight must be a whole number from 0 (drain: no new connections) to ${MAX_WEIGHT}, got ${JSON.stringify(v)}`);
  }
  return v;
}
