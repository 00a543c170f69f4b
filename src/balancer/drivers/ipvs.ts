// The IPVS dataplane, as Docker swarm's routing mesh does it: iptables mangle rules mark VIP and
// published-port traffic with a per-unit fwmark (ipvs-marks.ts), an IPVS fwmark service per mark and
// family spreads it over masqueraded destinations, nat POSTROUTING masquerades IPVS traffic.
//   - IPVS goes over generic netlink (../netlink), batched; iptables over one `iptables-restore
//     --noflush` per family per change; VIPs live on a dummy interface we own (ipvs-vips.ts).
//   - Order keeps traffic working mid-change: new services before the rules that feed them, rules
//     removed before their services.
//   - Owns only its chains, its VIP interface and the fwmark services its own rules reference.
// It programs the network namespace the process runs in (a netlink socket cannot be moved).
import { VipdnsError } from '../../errors.js';
import { iptables, type Iptables } from '../iptables/exec.js';
import { RestoreScript } from '../iptables/restore.js';
import { NetlinkError } from '../netlink/errors.js';
import { isFwmarkKey, type ServiceKey } from '../netlink/ipvs-codec.js';
import { IpvsClient, type IpvsOp, type OpResult } from '../netlink/ipvs.js';
import type { ApplyResult, CleanupResult, DataplaneDriver, Diff, Family, KernelUnit, Logger, ObservedState, ObservedUnit, ProbeResult, Unit } from '../types.js';
import { toolRunner, type Runner } from './exec.js';
import { destChanges, initialDests } from './ipvs-dests.js';
import { allocateMark, isOurMark } from './ipvs-marks.js';
import { IPVS_CONNMARK, observeUnits, referencedMarks, scaffold, svcKey, type BaseView, type IpvsUnitNative } from './ipvs-observe.js';
import { ForwardGuard } from './forward-guard.js';
import { CHAINS, type KernelSchedulers, PLAIN_SCHEDULERS, fingerprint, planShape, ruleArgs, serviceSpec, unitChain, unitId, unitPlan, unitProtocol, unitServiceFwmark } from './ipvs-render.js';
import { ensureSysctls, readSysctls, type SysctlState } from './ipvs-sysctl.js';
import { vipInterface, type VipInterface } from './ipvs-vips.js';
import { ProxyNdp } from '../proxy-ndp.js';
import { ipvsSchedulerAvailable, probeIpvs } from './supported.js';

/** The part of IpvsClient the driver uses (a fake in host tests). */
export type IpvsApi = Pick<IpvsClient, 'listServices' | 'getService' | 'listDests' | 'batch' | 'close'>;

export interface IpvsDriverOptions {
  /** Opens the IPVS client; default: a real generic netlink socket in our namespace. */
  openIpvs?: () => Promise<IpvsApi>;
  /** Tool runner per binary name (iptables-save/-restore, ip6tables-*, ip); default: spawn. */
  runner?: (tool: string) => Runner;
  /** Dummy interface holding the VIPs. Default `vipdns0`. */
  vipInterface?: string;
  /** Program IPv6 (ip6tables) too. Default true. */
  ipv6?: boolean;
  /** Where the sysctls are (tests). Default /proc/sys. */
  sysctlRoot?: string;
  logger?: Logger;
  /** /proc file that says IPVS is loaded (tests). */
  procFile?: string;
}

const SVC_DEL_GONE = new Set(['ESRCH', 'ENOENT']);

export class IpvsDriver implements DataplaneDriver {
  readonly name = 'ipvs' as const;
  private readonly open: () => Promise<IpvsApi>;
  private readonly ipt: Map<Family, Iptables>;
  private readonly vif: VipInterface;
  private readonly ndp: ProxyNdp | undefined;
  /** VIPs of observed units that were not in place (off vipdns0, or an on-link v6 VIP without its proxy entry). */
  private missingVips = new Set<string>();
  private readonly families: Family[];
  private readonly sysctlRoot: string;
  private readonly log: Logger | undefined;
  private readonly procFile: string | undefined;
  private ipvs: IpvsApi | undefined;
  /** Accepts our flows in FORWARD under a policy of DROP; part of the scaffolding. */
  private readonly guard: ForwardGuard;
  /** Where each unit lives, from observe() and every apply(): marks, exact rules, service families. */
  private natives = new Map<string, IpvsUnitNative>();
  private early = new Map<string, Set<string>>();
  private base = new Map<Family, BaseView>();
  private sysctls: SysctlState[] = [];
  /** sh is mh (Maglev consistent hashing, Linux 4.18+) where the kernel has it; decided before the first observe. */
  private schedulers: KernelSchedulers = PLAIN_SCHEDULERS;
  private schedulersKnown = false;

  constructor(o: IpvsDriverOptions = {}) {
    this.open = o.openIpvs ?? (() => IpvsClient.open());
    this.families = o.ipv6 === false ? [4] : [4, 6];
    const runner = o.runner ?? ((t: string) => toolRunner(t));
    this.ipt = new Map(this.families.map((f) => [f, iptables(f, { runner })]));
    this.guard = new ForwardGuard([...this.ipt.values()], IPVS_CONNMARK);
    this.vif = vipInterface(o.vipInterface ?? 'vipdns0', runner('ip'));
    // A v6 VIP on vipdns0 answers no neighbour solicitation on the clients' link: proxy NDP does (proxy-ndp.ts).
    this.ndp = this.families.includes(6) ? new ProxyNdp({ runner: runner('ip'), sysctlRunner: runner('sysctl') }) : undefined;
    this.sysctlRoot = o.sysctlRoot ?? '/proc/sys';
    this.log = o.logger;
    this.procFile = o.procFile;
  }

  private async client(): Promise<IpvsApi> {
    if (!this.ipvs) {
      try {
        this.ipvs = await this.open();
      } catch (e) {
        throw wrap(e, 'open IPVS generic netlink');
      }
    }
    return this.ipvs;
  }

  close(): void {
    this.ipvs?.close();
    this.ipvs = undefined;
  }

  async probe(): Promise<ProbeResult> {
    const p = await probeIpvs(this.procFile);
    if (!p.supported) return p;
    await this.decideSchedulers();
    try {
      await this.client();
    } catch (e) {
      return { supported: false, reason: `IPVS generic netlink unusable: ${(e as Error).message}` };
    }
    try {
      await this.ipt.get(4)!.save(['mangle']);
    } catch (e) {
      return { supported: false, reason: `iptables unusable: ${(e as Error).message.split('\n')[0]}` };
    }
    return { supported: true };
  }

  private async decideSchedulers(): Promise<void> {
    if (this.schedulersKnown) return;
    if (await ipvsSchedulerAvailable('mh')) this.schedulers = { ...PLAIN_SCHEDULERS, sh: 'mh' };
    this.schedulersKnown = true;
  }

  /** The kernel scheduler each of ours becomes here (status, tests). */
  get kernelSchedulers(): KernelSchedulers {
    return this.schedulers;
  }

  /** Each unit's IPVS services (one per family) and destinations with their connection counts, read now. */
  async inspect(units: Unit[]): Promise<KernelUnit[]> {
    const ipvs = await this.client();
    const out: KernelUnit[] = [];
    for (const u of units) {
      const id = unitId(u);
      const mark = this.natives.get(id)?.mark;
      const view: KernelUnit = { id, present: false, weights: 'exact', backends: [] };
      if (mark !== undefined) {
        const where: string[] = [];
        for (const family of this.families) {
          const key = { fwmark: mark, family };
          const svc = await ipvs.getService(key);
          if (!svc) continue;
          view.present = true;
          view.scheduler = svc.scheduler;
          if (svc.persistence) view.persistence = svc.persistence.timeout;
          where.push(`FWM 0x${mark.toString(16)}${family === 6 ? ' IPv6' : ''}`);
          for (const d of await ipvs.listDests(key)) view.backends.push({ ip: d.address, port: d.port, weight: d.weight, activeConns: d.activeConns, inactiveConns: d.inactiveConns });
        }
        view.where = where.join(', ');
      }
      out.push(view);
    }
    return out;
  }

  /** Unit id → fwmark, as last observed or applied (status, tests). */
  unitMarks(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [id, n] of this.natives) if (n.mark !== undefined) out.set(id, n.mark);
    return out;
  }

  /** The IPVS sysctls, wanted vs current, as last read or set. */
  async sysctlReport(): Promise<SysctlState[]> {
    return (this.sysctls = await readSysctls(this.sysctlRoot));
  }

  expect(u: Unit): ObservedUnit {
    const id = unitId(u);
    const plans = unitPlan(u, this.schedulers);
    const mark = this.natives.get(id)?.mark;
    const native: IpvsUnitNative = {
      id,
      mark,
      rules: mark === undefined ? [] : plans.map((p) => ({ family: p.family, chain: unitChain(u), args: ruleArgs(p.match, id, mark) })),
      services: plans.map((p) => p.family),
      ...(u.kind === 'vip' ? { vip: u.vip.vip } : {}),
    };
    return { id, fingerprint: fingerprint(plans.map(planShape)), native };
  }

  async observe(): Promise<ObservedState> {
    await this.decideSchedulers(); // expect() must name the schedulers the kernel will report
    const rules = new Map<Family, Awaited<ReturnType<Iptables['save']>>>();
    for (const [f, ipt] of this.ipt) rules.set(f, await ipt.save(['mangle', 'nat']));
    const marks = referencedMarks(rules);
    const ipvs = await this.client();
    const services = new Map<string, { service: Awaited<ReturnType<IpvsApi['listServices']>>[number]; dests: Awaited<ReturnType<IpvsApi['listDests']>> }>();
    try {
      for (const s of await ipvs.listServices()) {
        if (!isFwmarkKey(s.key) || !isOurMark(s.key.fwmark) || !marks.has(s.key.fwmark)) continue; // not ours: never touched
        services.set(svcKey(s.family, s.key.fwmark), { service: s, dests: await ipvs.listDests(s.key) });
      }
    } catch (e) {
      throw wrap(e, 'read IPVS services');
    }
    const [onVif, sysctls] = await Promise.all([this.vif.addresses(), readSysctls(this.sysctlRoot), this.ndp?.read()]);
    this.sysctls = sysctls;
    // An on-link v6 VIP without its proxy entry counts as missing: its unit is rewritten, and the entry with it.
    const localVips = onVif && this.ndp ? new Set([...onVif].filter((ip) => this.ndp!.present(ip))) : onVif;
    this.missingVips = new Set();
    const o = observeUnits({ rules, services, localVips, early: this.early, sysctlsOk: sysctls.every((s) => s.ok) }, this.families);
    for (const n of o.natives.values()) if (n.vip !== undefined && !localVips?.has(n.vip)) this.missingVips.add(n.vip);
    this.natives = o.natives;
    this.base = o.base;
    for (const id of this.early.keys()) if (!o.natives.has(id)) this.early.delete(id);
    // The FORWARD accept is part of our scaffolding: missing or edited, the next apply rewrites both.
    if (o.state.base === 'ok' && !(await this.guard.intact())) return { ...o.state, base: 'drifted' };
    return o.state;
  }

  async apply(d: Diff): Promise<ApplyResult> {
    const ipvs = await this.client();
    let ops = 0;
    const scripts = new Map<Family, RestoreScript>(this.families.map((f) => [f, new RestoreScript()]));
    const script = (f: Family): RestoreScript => {
      const s = scripts.get(f);
      if (!s) throw new VipdnsError('DATAPLANE_FAILED', 'IPv6 unit but the IPVS driver runs with ipv6 disabled');
      return s;
    };
    let vipsTouched = d.base;

    if (d.base) {
      this.sysctls = await ensureSysctls(this.sysctlRoot);
      this.log?.info({ dataplane: 'ipvs', sysctls: Object.fromEntries(this.sysctls.map((s) => [s.name, s.have])) }, 'dataplane: IPVS sysctls');
      await this.vif.ensure();
      for (const f of this.families) renderBase(script(f), this.base.get(f));
      // Before the units: a reply crossing a FORWARD policy of DROP must find its accept in place.
      ops += 1 + (await this.guard.ensure());
    }

    // Removed units: rules now (in the transaction), services after it.
    const after: IpvsOp[] = [];
    for (const r of d.remove) {
      const n = this.natives.get(r.id) ?? (r.native as IpvsUnitNative | undefined);
      if (!n) continue;
      for (const rule of n.rules) script(rule.family).delete('mangle', rule.chain, rule.args);
      if (n.mark !== undefined) for (const f of n.services) after.push({ op: 'delService', service: { fwmark: n.mark, family: f } });
      if (n.vip) vipsTouched = true;
      this.natives.delete(r.id);
      this.early.delete(r.id);
    }

    // Added and changed units: IPVS first (batched), then their rules.
    const before: IpvsOp[] = [];
    const created: ServiceKey[] = [];
    // Marks in use, built only when a unit needs a new one: changing a unit's backends (the common
    // change) must not cost a pass over every unit.
    let used: Set<number> | undefined;
    const work = [...d.add.map((unit) => ({ unit, observed: undefined as ObservedUnit | undefined })), ...d.change];
    for (const { unit, observed } of work) {
      const id = unitId(unit);
      const old = this.natives.get(id) ?? (observed?.native as IpvsUnitNative | undefined);
      let mark = old?.mark;
      if (mark === undefined || !isOurMark(mark)) {
        used ??= new Set<number>([...this.natives.values()].flatMap((n) => (n.mark === undefined ? [] : [n.mark])));
        mark = allocateMark(unitServiceFwmark(unit), used);
        used.add(mark);
      }
      const plans = unitPlan(unit, this.schedulers);
      const chain = unitChain(unit);
      const early = new Set<string>();
      // rules
      for (const p of plans) {
        const want = ruleArgs(p.match, id, mark);
        const have = (old?.rules ?? []).filter((r) => r.family === p.family);
        if (have.length === 1 && have[0]!.chain === chain && have[0]!.args.join('\0') === want.join('\0')) continue;
        for (const r of have) script(p.family).delete('mangle', r.chain, r.args);
        script(p.family).append('mangle', chain, want);
      }
      for (const r of old?.rules ?? []) if (!plans.some((p) => p.family === r.family)) script(r.family).delete('mangle', r.chain, r.args);
      // services and destinations
      for (const p of plans) {
        const key: ServiceKey = { fwmark: mark, family: p.family };
        const spec = serviceSpec(mark, p);
        const cur = old?.services.includes(p.family) ? await call(() => ipvs.getService(key), 'read IPVS service') : undefined;
        if (!cur) {
          before.push({ op: 'addService', service: spec });
          created.push(key);
          const c = initialDests(key, p);
          before.push(...c.ops);
          c.early.forEach((k) => early.add(k));
          continue;
        }
        if (cur.scheduler !== p.scheduler || (cur.persistence?.timeout ?? 0) !== p.persistence) before.push({ op: 'updateService', service: spec });
        const c = destChanges(key, p, await call(() => ipvs.listDests(key), 'read IPVS destinations'), unitProtocol(unit));
        before.push(...c.ops);
        c.early.forEach((k) => early.add(k));
      }
      for (const f of old?.services ?? []) if (!plans.some((p) => p.family === f)) after.push({ op: 'delService', service: { fwmark: mark, family: f } });
      if (early.size) this.early.set(id, early);
      else this.early.delete(id);
      // A new VIP, or one observed out of place: the VIP interface (and proxy NDP) are synced after the units.
      if (unit.kind === 'vip' && (old?.vip !== unit.vip.vip || this.missingVips.has(unit.vip.vip))) vipsTouched = true;
      this.natives.set(id, {
        id,
        mark,
        rules: plans.map((p) => ({ family: p.family, chain, args: ruleArgs(p.match, id, mark!) })),
        services: plans.map((p) => p.family),
        ...(unit.kind === 'vip' ? { vip: unit.vip.vip } : {}),
      });
    }

    try {
      ops += await this.batch(ipvs, before, true);
      for (const [f, s] of scripts) {
        ops += s.ops;
        await this.ipt.get(f)!.restore(s);
      }
    } catch (e) {
      this.natives.clear(); // unknown state: the reconciler re-observes before its next diff
      if (created.length) await ipvs.batch(created.map((service) => ({ op: 'delService' as const, service }))).catch(() => undefined);
      throw e;
    }
    ops += await this.batch(ipvs, after, false);
    if (vipsTouched) {
      const want = new Set<string>();
      for (const n of this.natives.values()) if (n.vip) want.add(n.vip);
      const had = (await this.vif.addresses()) ?? new Set<string>();
      ops += await this.vif.sync(want, had);
      // Ours are the VIPs on our interface, before and after.
      if (this.ndp) ops += await this.ndp.sync(want, new Set([...had, ...want]));
      this.missingVips.clear();
    }
    return { ops };
  }

  /** Sends ops; an add that finds the service already there (left by a failed run) becomes an update. */
  private async batch(ipvs: IpvsApi, ops: IpvsOp[], strict: boolean): Promise<number> {
    if (ops.length === 0) return 0;
    const res = await call(() => ipvs.batch(ops), 'IPVS batch');
    const retry: IpvsOp[] = [];
    const failures: NetlinkError[] = [];
    res.forEach((r: OpResult, i) => {
      if (r.ok) return;
      const op = ops[i]!;
      if (op.op === 'addService' && r.error.code === 'EEXIST') retry.push({ op: 'updateService', service: op.service });
      else if (op.op === 'addDest' && r.error.code === 'EEXIST') retry.push({ op: 'updateDest', service: op.service, dest: op.dest });
      else if ((op.op === 'delService' || op.op === 'delDest') && SVC_DEL_GONE.has(r.error.code)) return;
      else failures.push(r.error);
    });
    if (retry.length) {
      const again = await call(() => ipvs.batch(retry), 'IPVS batch');
      for (const r of again) if (!r.ok) failures.push(r.error);
    }
    if (failures.length && strict) throw wrap(failures[0], `IPVS: ${failures.length} of ${ops.length} operations failed`);
    if (failures.length) this.log?.warn({ dataplane: 'ipvs', failed: failures.length, err: failures[0]!.message }, 'dataplane: IPVS cleanup operations failed');
    return ops.length + retry.length;
  }

  /** Removes our chains, the fwmark services they reference, and the VIP interface; nothing else. */
  async cleanup(): Promise<CleanupResult> {
    let removed = false;
    const marks = new Set<number>();
    for (const [f, ipt] of this.ipt) {
      const rs = await ipt.save(['mangle', 'nat']);
      referencedMarks(new Map([[f, rs]])).forEach((m) => marks.add(m));
      const s = new RestoreScript();
      for (const [table, t] of rs) {
        const own = t.chains.filter((c) => c.startsWith('VIPDNS-'));
        for (const r of t.rules) {
          const target = r.args[r.args.indexOf('-j') + 1];
          if (!r.chain.startsWith('VIPDNS-') && target && own.includes(target)) s.delete(table, r.chain, r.args);
        }
        for (const c of own) s.flush(table, c);
        for (const c of own) s.deleteChain(table, c);
      }
      if (!s.isEmpty()) removed = true;
      await ipt.restore(s);
    }
    if (await this.guard.cleanup()) removed = true;
    const ipvs = await this.client();
    const del: IpvsOp[] = [];
    for (const s of await call(() => ipvs.listServices(), 'read IPVS services')) {
      if (isFwmarkKey(s.key) && isOurMark(s.key.fwmark) && marks.has(s.key.fwmark)) del.push({ op: 'delService', service: s.key });
    }
    if (del.length) removed = true;
    await this.batch(ipvs, del, true);
    const onVif = await this.vif.addresses();
    if (this.ndp && onVif && (await this.ndp.sync(new Set(), onVif)) > 0) removed = true;
    if (await this.vif.remove()) removed = true;
    this.natives.clear();
    this.early.clear();
    return { removed };
  }
}

/** Scaffolding: VIPDNS-MARK and VIPDNS-POSTROUTING are rewritten whole, unit chains created only if missing. */
export function renderBase(s: RestoreScript, view: BaseView | undefined): void {
  const have = view?.chains ?? new Set<string>();
  s.declare('mangle', CHAINS.mark);
  s.declare('nat', CHAINS.post);
  for (const c of [CHAINS.vips, CHAINS.published]) if (!have.has(c)) s.declare('mangle', c);
  for (const r of view?.scaffold ?? []) if (!r.chain.startsWith('VIPDNS-')) s.delete(r.table, r.chain, r.args);
  for (const x of scaffold()) {
    if (x.chain.startsWith('VIPDNS-')) s.append(x.table, x.chain, x.args);
    else s.insert(x.table, x.chain, x.args);
  }
}

function wrap(e: unknown, what: string): Error {
  if (e instanceof VipdnsError) return e;
  const code = e instanceof NetlinkError ? ` [${e.code}]` : '';
  return new VipdnsError('DATAPLANE_FAILED', `${what}${code}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
}

async function call<T>(fn: () => Promise<T>, what: string): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw wrap(e, what);
  }
}
