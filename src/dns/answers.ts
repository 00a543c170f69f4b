// The answer index: every internal name precomputed from the catalog, so a query is a map
// lookup plus a filter by the client's networks. Rebuilt on each catalog change; pure, no I/O.
import type { CatalogState } from '../catalog/model.js';
import type { Rr, SoaData } from './encode.js';
import { servingTasks } from '../catalog/model.js';
import { type Addr, type Prefix, contains, isLoopback, parseCidr, parseIp, parseReverseName, formatIp, unmapV4 } from '../net/ip.js';

export interface TtlOptions {
  vip: number;
  dnsrr: number;
  tasks: number;
  container: number;
  ptr: number;
}

export interface IndexOptions {
  /** Internal domain suffix, e.g. "vipdns.internal"; names may carry it or not. */
  suffix: string;
  ttl: TtlOptions;
  /** Loopback clients see every network (the operator's dig). */
  loopbackSeesAll: boolean;
  /** Clients outside every network see every network too (off: they see nothing internal). */
  othersSeeAll: boolean;
}

export const DEFAULT_TTL: TtlOptions = { vip: 60, dnsrr: 5, tasks: 5, container: 60, ptr: 60 };

interface SrvEntry {
  port: number;
  target: string; // fully qualified: "<svc|task>.<net>.<suffix>"
  ip: string;
}

interface Target {
  network: string;
  v4: string[];
  v6: string[];
  srv?: SrvEntry[]; // set on "_name._proto.<svc>" entries only
  shuffle: boolean;
  ttl: number;
}

interface PtrTarget {
  network: string;
  name: string; // "<name>.<network>"
  ttl: number;
}

export type Record_ = Rr;

export type Resolution =
  /** shuffle: the order is random per answer (dnsrr, tasks.*); records are already shuffled once. */
  | { kind: 'answer'; records: Record_[]; additionals: Record_[]; shuffle: boolean }
  | { kind: 'nodata'; ttl: number }
  | { kind: 'nxdomain'; ttl: number }
  | { kind: 'external' };

const NEGATIVE_TTL = 5;

export class AnswerIndex {
  private names = new Map<string, Target[]>();
  private ptrs = new Map<string, PtrTarget[]>();
  private networkNames = new Set<string>();
  private prefixes: Array<{ name: string; prefix: Prefix }> = [];
  private suffix: string;
  private opts: IndexOptions;
  revision = -1;
  /** Bumped on every rebuild: precompiled answers and per-client caches key on it. */
  generation = 0;

  constructor(opts: IndexOptions) {
    this.opts = opts;
    this.suffix = opts.suffix.toLowerCase().replace(/^\.+|\.+$/g, '');
  }

  get size(): number {
    return this.names.size;
  }

  rebuild(state: Readonly<CatalogState>): void {
    const names = new Map<string, Target[]>();
    const ptrs = new Map<string, PtrTarget[]>();
    const ttl = this.opts.ttl;
    // PTR targets are fully qualified under our domain, so any resolver can follow them back.
    const fq = (n: string): string => (this.suffix ? `${n}.${this.suffix}` : n);
    const add = (name: string, t: Target): void => {
      const k = name.toLowerCase();
      const list = names.get(k);
      if (list) list.push(t);
      else names.set(k, [t]);
    };
    const addPtr = (ip: string, p: PtrTarget): void => {
      const list = ptrs.get(ip);
      if (list) list.push(p);
      else ptrs.set(ip, [p]);
    };
    const split = (ips: string[]): { v4: string[]; v6: string[] } => ({
      v4: ips.filter((ip) => !ip.includes(':')),
      v6: ips.filter((ip) => ip.includes(':')),
    });

    const tasksBySvc = new Map<string, CatalogState['tasks'][string][]>();
    for (const t of Object.values(state.tasks)) {
      const l = tasksBySvc.get(t.service);
      if (l) l.push(t);
      else tasksBySvc.set(t.service, [t]);
    }
    for (const svc of Object.values(state.services)) {
      const tasks = tasksBySvc.get(svc.name) ?? [];
      for (const a of svc.attachments) {
        const serving = servingTasks(tasks).map((t) => t.addresses[a.network]).filter((ip): ip is string => !!ip);
        const taskTarget: Target = { network: a.network, ...split(serving), shuffle: true, ttl: ttl.tasks };
        add(`tasks.${svc.name}`, taskTarget);
        const main: Target =
          svc.endpointMode === 'vip' && a.vip
            ? { network: a.network, ...split([a.vip]), shuffle: false, ttl: ttl.vip }
            : { network: a.network, ...split(serving), shuffle: true, ttl: ttl.dnsrr };
        add(svc.name, main);
        for (const al of svc.aliases) {
          add(al, main);
          add(`tasks.${al}`, taskTarget);
        }
        if (a.vip) addPtr(a.vip, { network: a.network, name: fq(`${svc.name}.${a.network}`), ttl: ttl.ptr });
        // SRV for named ports: the VIP's name (vip mode) or every serving task (dnsrr).
        for (const p of svc.ports) {
          if (!p.name) continue;
          const srv: SrvEntry[] =
            svc.endpointMode === 'vip' && a.vip
              ? [{ port: p.target, target: fq(`${svc.name}.${a.network}`), ip: a.vip }]
              : servingTasks(tasks)
                  .filter((t) => t.addresses[a.network])
                  .map((t) => ({ port: p.target, target: fq(`${t.name}.${a.network}`), ip: t.addresses[a.network]! }));
          const st: Target = { network: a.network, v4: [], v6: [], srv, shuffle: svc.endpointMode !== 'vip', ttl: main.ttl };
          for (const n of [svc.name, ...svc.aliases]) add(`_${p.name}._${p.protocol}.${n}`, st);
        }
        for (const t of tasks) {
          const ip = t.addresses[a.network];
          if (!ip) continue;
          add(t.name, { network: a.network, ...split([ip]), shuffle: false, ttl: ttl.tasks });
          addPtr(ip, { network: a.network, name: fq(`${t.name}.${a.network}`), ttl: ttl.ptr });
        }
      }
    }
    for (const c of Object.values(state.containers)) {
      for (const [network, ip] of Object.entries(c.addresses)) {
        const t: Target = { network, ...split([ip]), shuffle: false, ttl: ttl.container };
        add(c.name, t);
        for (const al of c.aliases) add(al, t);
        addPtr(ip, { network, name: fq(`${c.name}.${network}`), ttl: ttl.ptr });
      }
    }
    this.names = names;
    this.ptrs = ptrs;
    this.networkNames = new Set(Object.keys(state.networks).map((n) => n.toLowerCase()));
    this.prefixes = Object.values(state.networks).map((n) => ({ name: n.name, prefix: parseCidr(n.subnet) }));
    this.revision = state.revision;
    this.generation++;
  }

  /** The SOA that goes with negative answers (RFC 2308: its minimum caps negative caching). */
  soa(ttl: number): Rr | undefined {
    if (this.suffix === '') return undefined;
    const data: SoaData = { mname: `ns.${this.suffix}`, rname: `hostmaster.${this.suffix}`, serial: Math.max(0, this.revision) >>> 0, refresh: 3600, retry: 600, expire: 86400, minimum: ttl };
    return { name: this.suffix, type: 'SOA', ttl, data };
  }

  /** A stable key for what a client can see: answers are equal for equal keys. */
  scopeKey(client: Addr): string {
    const v = this.visibility(client);
    return v === 'all' ? '*' : [...v].sort().join(',');
  }

  /** The client's network for metrics: its network's name, 'loopback', 'multiple' or 'none'. */
  networkLabel(client: Addr): string {
    const a = unmapV4(client);
    if (isLoopback(a)) return 'loopback';
    const nets = this.prefixes.filter((p) => contains(p.prefix, a));
    return nets.length === 1 ? nets[0]!.name : nets.length > 1 ? 'multiple' : 'none';
  }

  /** The networks a client may see: 'all', or the names of networks whose subnet holds its address. */
  visibility(client: Addr): 'all' | Set<string> {
    const a = unmapV4(client);
    if (isLoopback(a) && this.opts.loopbackSeesAll) return 'all';
    const nets = new Set<string>();
    for (const p of this.prefixes) if (contains(p.prefix, a)) nets.add(p.name);
    if (nets.size === 0 && this.opts.othersSeeAll) return 'all';
    return nets;
  }

  /** True when the client lies inside a known network (or on loopback): such clients may recurse. */
  isKnownClient(client: Addr): boolean {
    const a = unmapV4(client);
    return isLoopback(a) || this.prefixes.some((p) => contains(p.prefix, a));
  }

  resolve(qname: string, qtype: string, client: Addr): Resolution {
    let name = qname.toLowerCase();
    if (name.endsWith('.')) name = name.slice(0, -1);
    let internal = false;
    if (this.suffix !== '') {
      if (name === this.suffix) return { kind: 'nodata', ttl: NEGATIVE_TTL };
      if (name.endsWith(`.${this.suffix}`)) {
        name = name.slice(0, -this.suffix.length - 1);
        internal = true;
      }
    }
    if (!internal && (name.endsWith('.in-addr.arpa') || name.endsWith('.ip6.arpa'))) return this.resolvePtr(name, qtype, client);

    let targets = this.names.get(name);
    let onlyNetwork: string | undefined;
    const dot = name.lastIndexOf('.');
    if (!targets && dot > 0 && this.networkNames.has(name.slice(dot + 1))) {
      onlyNetwork = name.slice(dot + 1);
      targets = this.names.get(name.slice(0, dot));
      internal = true;
    }
    if (!targets) {
      if (internal || dot < 0 || name.startsWith('tasks.') || name.startsWith('_')) return { kind: 'nxdomain', ttl: NEGATIVE_TTL };
      return { kind: 'external' };
    }
    const vis = this.visibility(client);
    const visible = targets.filter(
      (t) => (onlyNetwork === undefined || t.network.toLowerCase() === onlyNetwork) && (vis === 'all' || vis.has(t.network)),
    );
    if (visible.length === 0) return { kind: 'nxdomain', ttl: NEGATIVE_TTL };

    const wantA = qtype === 'A' || qtype === 'ANY';
    const wantAAAA = qtype === 'AAAA' || qtype === 'ANY';
    const wantSrv = qtype === 'SRV' || qtype === 'ANY';
    const records: Record_[] = [];
    const additionals: Record_[] = [];
    const seen = new Set<string>();
    let shuffle = false;
    let ttl = Infinity;
    for (const t of visible) {
      ttl = Math.min(ttl, t.ttl);
      shuffle ||= t.shuffle;
      const push = (type: 'A' | 'AAAA', ip: string): void => {
        if (seen.has(ip)) return;
        seen.add(ip);
        records.push({ type, ttl: t.ttl, data: ip });
      };
      if (wantA) for (const ip of t.v4) push('A', ip);
      if (wantAAAA) for (const ip of t.v6) push('AAAA', ip);
      if (wantSrv && t.srv) {
        for (const e of t.srv) {
          const k = `${e.port} ${e.target}`;
          if (seen.has(k)) continue;
          seen.add(k);
          records.push({ type: 'SRV', ttl: t.ttl, data: { priority: 0, weight: 10, port: e.port, target: e.target } });
          // Glue, so the client needs no second lookup.
          additionals.push({ name: e.target, type: e.ip.includes(':') ? 'AAAA' : 'A', ttl: t.ttl, data: e.ip });
        }
      }
    }
    if (records.length === 0) return { kind: 'nodata', ttl: Math.min(ttl, NEGATIVE_TTL) };
    if (shuffle) shuffleInPlace(records);
    return { kind: 'answer', records, additionals, shuffle };
  }

  private resolvePtr(name: string, qtype: string, client: Addr): Resolution {
    const addr = parseReverseName(name);
    if (!addr) {
      // A partial reverse name inside one of our subnets is ours to deny; anything else is not.
      return { kind: 'external' };
    }
    const ip = formatIp(addr);
    const inOurs = this.prefixes.some((p) => contains(p.prefix, addr));
    const list = this.ptrs.get(ip);
    if (!list) return inOurs ? { kind: 'nxdomain', ttl: NEGATIVE_TTL } : { kind: 'external' };
    const vis = this.visibility(client);
    const visible = list.filter((p) => vis === 'all' || vis.has(p.network));
    if (visible.length === 0) return { kind: 'nxdomain', ttl: NEGATIVE_TTL };
    if (qtype !== 'PTR' && qtype !== 'ANY') return { kind: 'nodata', ttl: NEGATIVE_TTL };
    return { kind: 'answer', records: visible.map((p) => ({ type: 'PTR', ttl: p.ttl, data: p.name })), additionals: [], shuffle: false };
  }
}

function shuffleInPlace<T>(a: T[]): void {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
}

