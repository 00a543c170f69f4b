// `vipdns explain NAME --from IP`: why a name does (not) resolve for one client. The records come
// from the resolver itself, run on a real query from that address, so explain cannot disagree
// with dig; the rest reads the same index entries the resolver answered from (AnswerIndex.locate)
// and says which catalog objects they are, which the client cannot see and why, and task health.
import * as packet from 'dns-packet';
import type { CatalogState, Service, Task } from '../catalog/model.js';
import { aliasesOf } from '../catalog/lookups.js';
import { servingTasks, subnetsOf } from '../catalog/model.js';
import { VipdnsError } from '../errors.js';
import { contains, formatIp, parseCidr, parseReverseName, tryParseIp } from '../net/ip.js';
import { type AnswerIndex, type Target, unitObject } from './answers.js';
import type { Resolver } from './resolver.js';

export const EXPLAIN_TYPES = ['A', 'AAAA', 'SRV', 'PTR', 'ANY', 'TXT', 'MX'] as const;

export interface ExplainRequest {
  name: string;
  from: string;
  type?: string;
  /** With a port (and protocol): the kernel path of a connection to each VIP answered. */
  port?: number;
  protocol?: 'tcp' | 'udp';
}

export interface ExplainRecord {
  name: string;
  type: string;
  ttl: number;
  data: string;
}

export interface ExplainMatch {
  /** e.g. "service web", "task web.1.3f2a… of service web", "container db". */
  object: string;
  /** What the name is of it: vip service, dnsrr service, tasks, alias, task, container, srv, ptr. */
  as: string;
  network: string;
  addresses: string[];
  ttl: number;
  visible: boolean;
  /** Why the client does not get it. */
  hidden?: string;
  health?: { tasks: number; serving: number; unhealthy: number; failOpen: boolean; note: string };
}

export interface Explanation {
  name: string;
  type: string;
  from: string;
  client: { sees: 'all' | string[]; why: string };
  /** internal: answered from the catalog; forwarded: not a name of ours; refused: not allowed to recurse. */
  route: 'internal' | 'forwarded' | 'none';
  matches: ExplainMatch[];
  notes: string[];
  answer: { rcode: string; answers: ExplainRecord[]; additionals: ExplainRecord[]; authorities: ExplainRecord[] };
  /** With --port: each answered VIP's unit as the kernel holds it (dataplane show's rows). */
  kernel?: unknown[];
}

export interface ExplainContext {
  index: AnswerIndex;
  /** A resolver on the same index and forwarder as the DNS server (its own caches, no metrics). */
  resolver: Resolver;
  state: Readonly<CatalogState>;
  tasksOf(service: string): readonly Task[];
  loopbackSeesAll: boolean;
  othersSeeAll: boolean;
  /** The dataplane's units for these VIP addresses ("10.0.9.2:80/tcp"), read from the kernel. */
  dataplane?: (addresses: string[]) => Promise<unknown[]>;
}

export async function explain(ctx: ExplainContext, req: ExplainRequest): Promise<Explanation> {
  const type = (req.type ?? 'A').toUpperCase();
  if (!(EXPLAIN_TYPES as readonly string[]).includes(type)) throw new VipdnsError('BAD_REQUEST', `--type must be one of ${EXPLAIN_TYPES.join(', ')}, got "${req.type}"`);
  const from = tryParseIp(req.from ?? '');
  if (!from) throw new VipdnsError('BAD_IP', `--from needs the client's IP address, got "${req.from ?? ''}"`);
  const name = String(req.name ?? '').replace(/\.$/, '');
  if (name === '' || name.length > 253) throw new VipdnsError('BAD_NAME', `explain needs a DNS name, got "${req.name ?? ''}"`);
  const fromText = formatIp(from);

  const vis = ctx.index.visibility(from);
  const client = clientView(ctx, fromText, vis);
  const seen = (network: string): boolean => vis === 'all' || vis.has(network);
  const matches: ExplainMatch[] = [];
  const notes: string[] = [];
  let route: Explanation['route'] = 'internal';

  const loc = ctx.index.locate(name);
  if (loc.kind === 'name') {
    for (const t of loc.targets) {
      const m = describe(ctx, loc.key, t);
      const other = loc.onlyNetwork !== undefined && t.network.toLowerCase() !== loc.onlyNetwork;
      m.visible = !other && seen(t.network);
      if (other) m.hidden = `the name asks for network ${loc.onlyNetwork}`;
      else if (!m.visible) m.hidden = `the client is not on network ${t.network}`;
      matches.push(m);
    }
    if (!matches.some((m) => m.visible)) notes.push('no match is visible to this client: NXDOMAIN, as if the name did not exist');
  } else if (loc.kind === 'ptr') {
    const addr = parseReverseName(loc.name);
    if (!addr) {
      route = 'forwarded';
      notes.push('a reverse name that is not one address: not ours, forwarded');
    } else {
      const ip = formatIp(addr);
      for (const p of ctx.index.ptrTargets(ip)) {
        const o = objectName(ctx, p.unit, p.name);
        const visible = seen(p.network);
        matches.push({ object: o, as: 'ptr', network: p.network, addresses: [ip], ttl: p.ttl, visible, ...(visible ? {} : { hidden: `the client is not on network ${p.network}` }) });
      }
      if (matches.length === 0) {
        if (ctx.index.inOurNetworks(addr)) notes.push(`${ip} is inside a network of ours but nothing holds it: NXDOMAIN`);
        else {
          route = 'forwarded';
          notes.push(`${ip} is outside every network of ours: forwarded`);
        }
      }
    }
  } else if (loc.kind === 'unknown') {
    route = 'none';
    const onIngress = ingressOnly(ctx, loc.key);
    if (onIngress) notes.push(onIngress);
    notes.push(`"${loc.key}" is a name of ours (single label, under the domain or a network, tasks.* or _srv) that no service, alias, task or container has: NXDOMAIN`);
  } else if (loc.kind === 'external') {
    route = 'forwarded';
    notes.push(ctx.index.isKnownClient(from) ? 'not a name of ours: forwarded to the upstreams' : 'not a name of ours, and the client is outside every network and not loopback: REFUSED (vipdns is not an open resolver)');
  } else {
    notes.push('the domain itself: NOERROR without records');
  }

  const answer = await ask(ctx.resolver, name, type, fromText);
  const out: Explanation = { name, type, from: fromText, client, route, matches, notes, answer };
  if (req.port !== undefined) {
    if (!Number.isInteger(req.port) || req.port < 1 || req.port > 65535) throw new VipdnsError('BAD_PORT', `--port must be a port from 1 to 65535, got ${String(req.port)}`);
    const proto = req.protocol ?? 'tcp';
    const vips = matches.filter((m) => m.visible && m.as.endsWith('vip service')).flatMap((m) => m.addresses);
    const addrs = [...new Set(vips)].map((ip) => `${ip.includes(':') ? `[${ip}]` : ip}:${req.port}/${proto}`);
    if (addrs.length === 0) notes.push('--port: no VIP in the answer (dnsrr and task names go to tasks directly, without the dataplane)');
    else if (!ctx.dataplane) notes.push('--port: this daemon runs no dataplane (--dataplane none): nothing balances connections to the VIP');
    else {
      out.kernel = await ctx.dataplane(addrs);
      if (out.kernel.length === 0) notes.push(`--port: no dataplane unit for ${addrs.join(', ')}: the service does not list port ${req.port}/${proto}`);
    }
  }
  return out;
}

function clientView(ctx: ExplainContext, from: string, vis: 'all' | Set<string>): Explanation['client'] {
  const addr = tryParseIp(from)!;
  const all = Object.values(ctx.state.networks).filter((n) => subnetsOf(n).some((sn) => contains(parseCidr(sn), addr)));
  const ingress = all.find((n) => n.ingress);
  const nets = all.filter((n) => !n.ingress);
  const onIngress = ingress ? `; ${ingress.name} (${ingress.subnet}) is the ingress network, which gives no view` : '';
  if (vis === 'all') {
    const why = nets.length === 0 && !ctx.index.isKnownClient(addr) ? 'outside every network, and othersSeeAll shows such clients every network' : 'loopback: sees every network (loopbackSeesAll)';
    return { sees: 'all', why };
  }
  // A task or container on several networks sees all of them, whichever address it asks from.
  const also = [...vis].filter((n) => !nets.some((x) => x.name === n)).sort();
  const owner = also.length ? `; the task or container with this address is also on ${also.join(', ')}, and sees it` : '';
  if (nets.length === 0 && also.length === 0) return { sees: [], why: `outside every network: sees no internal names (othersSeeAll is off)${onIngress}` };
  return { sees: [...vis].sort(), why: `${nets.length ? `inside ${nets.map((n) => `${n.name} (${subnetsOf(n).join(', ')})`).join(', ')}` : 'outside every subnet'}${owner}${onIngress}` };
}

/** A service named `key` whose only networks are the ingress network: why it has no answer. */
function ingressOnly(ctx: ExplainContext, key: string): string | undefined {
  const name = key.startsWith('tasks.') ? key.slice(6) : key;
  const svc = Object.values(ctx.state.services).find((s) => s.name.toLowerCase() === name || aliasesOf('service', s).some((a) => a.toLowerCase() === name));
  if (!svc || !svc.attachments.every((a) => ctx.state.networks[a.network]?.ingress)) return undefined;
  return `service ${svc.name} is attached to the ingress network only: the ingress network carries published ports, and nothing on it is answered`;
}

function objectName(ctx: ExplainContext, unit: string, ownName: string): string {
  const u = unitObject(unit);
  if (u.kind === 'container') return `container ${u.id}`;
  return ownName.toLowerCase() === u.id.toLowerCase() ? `service ${u.id}` : `task ${ownName} of service ${u.id}`;
}

function describe(ctx: ExplainContext, key: string, t: Target): ExplainMatch {
  const u = unitObject(t.unit);
  const addresses = [...t.v4, ...t.v6, ...(t.srv ?? []).map((e) => `${e.target}:${e.port}`)];
  const base = { network: t.network, addresses, ttl: t.ttl, visible: true };
  if (u.kind === 'container') {
    const c = ctx.state.containers[u.id];
    const alias = c && c.name.toLowerCase() !== key ? 'alias' : 'container';
    return { object: `container ${u.id}`, as: alias, ...base };
  }
  const svc = ctx.state.services[u.id];
  if (!svc) return { object: `service ${u.id}`, as: 'service', ...base };
  const lname = svc.name.toLowerCase();
  let as: string;
  let object = `service ${svc.name}`;
  if (key === lname) as = `${svc.endpointMode} service`;
  else if (key === `tasks.${lname}`) as = 'tasks';
  else if (key.startsWith('_')) as = 'srv';
  else if (aliasesOf('service', svc).some((a) => a.toLowerCase() === key)) as = `alias (${svc.endpointMode})`;
  else if (key.startsWith('tasks.')) as = 'tasks (of an alias)';
  else {
    as = 'task';
    const task = ctx.tasksOf(svc.name).find((x) => x.name.toLowerCase() === key);
    object = `task ${task?.name ?? key} of service ${svc.name}`;
  }
  const m: ExplainMatch = { object, as, ...base };
  const h = health(ctx, svc, as);
  if (h) m.health = h;
  return m;
}

function health(ctx: ExplainContext, svc: Service, as: string): ExplainMatch['health'] {
  if (as === 'task') return undefined;
  const tasks = ctx.tasksOf(svc.name);
  const unhealthy = tasks.filter((t) => t.health === 'unhealthy').length;
  const serving = servingTasks([...tasks]);
  const failOpen = tasks.length > 0 && unhealthy === tasks.length;
  const listsTasks = as === 'tasks' || as.startsWith('tasks') || as === 'srv' || svc.endpointMode === 'dnsrr';
  const note = !listsTasks
    ? 'a VIP answer does not depend on task health (the balancer does)'
    : failOpen
      ? 'every task is unhealthy: the answer fails open to all of them'
      : unhealthy > 0
        ? `${unhealthy} unhealthy task(s) left out of the answer`
        : 'every task is answered';
  return { tasks: tasks.length, serving: failOpen ? tasks.length : serving.length, unhealthy, failOpen, note };
}

/** The resolver's own answer to a TCP query (no truncation) from `from`. */
async function ask(resolver: Resolver, name: string, type: string, from: string): Promise<Explanation['answer']> {
  const q = packet.encode({ type: 'query', id: 1, flags: packet.RECURSION_DESIRED, questions: [{ name, type: type as packet.RecordType, class: 'IN' }] });
  const r = await resolver.handle(q, from, 'tcp');
  if (!r) return { rcode: 'NO ANSWER (the query was dropped)', answers: [], additionals: [], authorities: [] };
  const d = packet.decode(r);
  const rec = (a: packet.Answer): ExplainRecord => ({ name: a.name, type: a.type, ttl: (a as { ttl?: number }).ttl ?? 0, data: dataText(a) });
  return {
    rcode: (d as { rcode?: string }).rcode ?? 'NOERROR',
    answers: (d.answers ?? []).map(rec),
    additionals: (d.additionals ?? []).filter((a) => a.type !== 'OPT').map(rec),
    authorities: (d.authorities ?? []).map(rec),
  };
}

function dataText(a: packet.Answer): string {
  const d = (a as { data?: unknown }).data;
  if (typeof d === 'string') return d;
  if (a.type === 'SRV') {
    const s = d as { priority: number; weight: number; port: number; target: string };
    return `${s.priority} ${s.weight} ${s.port} ${s.target}`;
  }
  if (a.type === 'SOA') {
    const s = d as { mname: string; rname: string; serial: number; refresh: number; retry: number; expire: number; minimum: number };
    return `${s.mname} ${s.rname} ${s.serial} ${s.refresh} ${s.retry} ${s.expire} ${s.minimum}`;
  }
  return Buffer.isBuffer(d) ? d.toString('hex') : JSON.stringify(d);
}
