// The nftables dataplane (kube-proxy's nftables mode is the model): one table of our own, `inet vipdns`,
// every change one `nft -f` transaction, incremental per unit (its elements; its own chain when its
// slot count changes). Rendering and parsing are pure (nftables-render.ts, nftables-observe.ts);
// this file only runs nft and ip.
// DNAT happens in this host, so it must own its VIPs (clients on a VIP's subnet ARP or solicit for
// it): the driver keeps exactly the IPv4 VIPs of the units it programs on lo, labelled `lo:vipdns`,
// and a proxy NDP entry for each on-link IPv6 VIP (nftables-vips.ts, ../proxy-ndp.ts), written in
// the same apply as the units, read back and repaired with them.
import { LoopbackVips } from '../loopback-vips.js';
import { ProxyNdp, classify } from '../proxy-ndp.js';
import type { ApplyResult, CleanupResult, DataplaneDriver, Diff, KernelUnit, ObservedState, ObservedUnit, ProbeResult, Unit } from '../types.js';
import { toolError, toolRunner, type Runner } from './exec.js';
import { parseObserved } from './nftables-observe.js';
import { DEFAULT_NFT_OPTIONS, NFT_LIMITS, classMap, classOf, fingerprintOf, renderDiff, unitElements, unitId, type NftOptions, type NftUnitNative } from './nftables-render.js';
import { LoopbackVipBook, vipOfId } from './nftables-vips.js';
import { ForwardGuard } from './forward-guard.js';
import { iptables } from '../iptables/exec.js';
import { probeNftables } from './supported.js';

export interface NftablesDriverOptions extends Partial<NftOptions> {
  /** Run nft inside this named network namespace (`ip netns exec`). */
  netns?: string;
  /** Injected for tests; defaults to spawning nft. */
  runner?: Runner;
  /**
   * Runs `ip` for the VIP addresses on lo; defaults to spawning ip (in `netns`). When `runner` is
   * injected without it, lo is left alone: the caller's nft may program a namespace we cannot see.
   */
  ipRunner?: Runner;
  /** Runs iptables-save/-restore for the FORWARD accept (per tool name); like ipRunner, off when only `runner` is injected. */
  iptablesRunner?: (tool: string) => Runner;
  /**
   * What units render to, shared by drivers of the same options that program the same (shared) plans:
   * the sandboxes of one host render each unit once, not once per container.
   */
  expectCache?: WeakMap<object, ObservedUnit>;
}

export class NftablesDriver implements DataplaneDriver {
  readonly name = 'nftables' as const;
  readonly limits = NFT_LIMITS;
  readonly options: NftOptions;
  private readonly nft: Runner;
  /** Class chains known intact: from the last observe, plus those our own transactions created, less those they deleted. */
  private knownClasses = new Set<string>();
  private knownMaps = new Set<string>();
  private readonly expected: WeakMap<object, ObservedUnit>;
  private readonly lo: LoopbackVips | undefined;
  private readonly vips = new LoopbackVipBook();
  private readonly ndp: ProxyNdp | undefined;
  private readonly vips6 = new LoopbackVipBook(6);
  private readonly guard: ForwardGuard | undefined;

  constructor(opts: NftablesDriverOptions = {}) {
    this.options = {
      table: opts.table ?? DEFAULT_NFT_OPTIONS.table,
      masqueradeMark: opts.masqueradeMark ?? DEFAULT_NFT_OPTIONS.masqueradeMark,
    };
    this.expected = opts.expectCache ?? new WeakMap();
    this.nft = opts.runner ?? toolRunner('nft', opts.netns);
    const ipt = opts.iptablesRunner ?? (opts.runner ? undefined : (tool: string) => toolRunner(tool, opts.netns));
    this.guard = ipt && this.options.masqueradeMark ? new ForwardGuard([iptables(4, { runner: ipt }), iptables(6, { runner: ipt })], this.options.masqueradeMark) : undefined;
    this.lo = opts.ipRunner || !opts.runner ? new LoopbackVips({ ...(opts.netns ? { netns: opts.netns } : {}), ...(opts.ipRunner ? { runner: opts.ipRunner } : {}) }) : undefined;
    // IPv6 VIPs by proxy NDP: like lo, only where the driver runs ip itself (not in tests that inject nft only).
    this.ndp = !opts.runner ? new ProxyNdp(opts.netns ? { netns: opts.netns } : {}) : undefined;
  }

  /** The IPv4 VIPs the programmed units need on lo, as last observed or applied. */
  loopbackVips(): string[] {
    return this.vips.wanted();
  }

  probe(): Promise<ProbeResult> {
    return probeNftables(this.nft);
  }

  expect(u: Unit): ObservedUnit {
    // Memoised per unit object: the planner keeps identity for unchanged units, so a sync renders only
    // what changed. Safe because units are never mutated once planned.
    const obj = u.kind === 'vip' ? u.vip : u.published;
    const hit = this.expected.get(obj);
    if (hit) return hit;
    const elements = unitElements(u, this.options.masqueradeMark);
    const native: NftUnitNative = { elements };
    const e = { id: unitId(u), fingerprint: fingerprintOf(elements), native };
    this.expected.set(obj, e);
    return e;
  }

  async observe(): Promise<ObservedState> {
    const [r, lo, ndp] = await Promise.all([this.nft(['-j', 'list', 'table', 'inet', this.options.table]), this.lo?.read(), this.ndp?.read()]);
    let state: ObservedState;
    if (r.code !== 0) {
      if (!/No such file or directory/.test(r.stderr)) throw toolError(`nft list table inet ${this.options.table}`, r);
      this.knownClasses = new Set();
      this.knownMaps = new Set();
      state = { base: 'missing', units: new Map() };
    } else {
      const { base, units, knownClasses, knownMaps } = parseObserved(r.stdout, this.options);
      this.knownClasses = knownClasses;
      this.knownMaps = knownMaps;
      state = { base, units };
    }
    if (lo) this.vips.observed(state.units, lo);
    if (ndp) this.vips6.observed(state.units, classify(ndp, [...state.units.keys()].map((id) => vipOfId(id, 6)).filter((v): v is string => v !== undefined)));
    // The FORWARD accept is part of our scaffolding: missing or edited, the next apply rewrites both.
    if (state.base === 'ok' && this.guard && !(await this.guard.intact())) state = { ...state, base: 'drifted' };
    return state;
  }

  /** One nft transaction, then one `ip -batch` for the VIP addresses the diff adds or frees. */
  async apply(d: Diff): Promise<ApplyResult> {
    const { text, ops, classes, deleted } = renderDiff(d, this.options, { knownClasses: this.knownClasses, knownMaps: this.knownMaps });
    const lo = this.lo ? this.vips.changes(d) : undefined;
    const ndp = this.ndp ? this.vips6.changes(d) : undefined;
    // Before the units: a flow DNATed under a FORWARD policy of DROP must find its accept in place.
    const guarded = d.base && this.guard ? await this.guard.ensure() : 0;
    if (ops > 0) {
      const r = await this.nft(['-f', '-'], text);
      if (r.code !== 0) throw toolError('nft -f (dataplane transaction)', r);
      for (const c of deleted) this.knownClasses.delete(c);
      for (const c of classes) {
        this.knownClasses.add(c);
        const k = classOf(c);
        if (k) this.knownMaps.add(classMap(k));
      }
    }
    // After the units: a VIP answers ARP only once its traffic is DNATed. A failure here fails the
    // sync, and the reconciler re-observes both before retrying.
    const written = lo ? await this.lo!.write(lo.add, lo.del) : 0;
    lo?.commit();
    const proxied = ndp ? await this.ndp!.write(ndp.add, ndp.del) : 0;
    ndp?.commit();
    return { ops: ops + written + proxied + guarded };
  }

  /** The units' elements as the kernel lists them: dispatch verdict, and slots per backend. */
  async inspect(units: Unit[]): Promise<KernelUnit[]> {
    const r = await this.nft(['-j', 'list', 'table', 'inet', this.options.table]);
    if (r.code !== 0 && !/No such file or directory/.test(r.stderr)) throw toolError(`nft list table inet ${this.options.table}`, r);
    const observed = r.code === 0 ? parseObserved(r.stdout, this.options).units : new Map<string, ObservedUnit>();
    return units.map((u) => kernelView(unitId(u), observed.get(unitId(u))?.native as NftUnitNative | undefined));
  }

  /** Deletes our table, which holds everything we made, and our labelled addresses on lo; nothing else. */
  async cleanup(): Promise<CleanupResult> {
    const t = this.options.table;
    let removed = false;
    try {
      const tables = await this.nft(['list', 'tables']);
      if (tables.code !== 0) throw toolError('nft list tables', tables);
      if (tables.stdout.split('\n').some((l) => l.trim() === `table inet ${t}`)) {
        // Proxy NDP entries carry no label: ours are those for the IPv6 VIPs our table dispatches on.
        if (this.ndp) {
          const listed = await this.nft(['-j', 'list', 'table', 'inet', t]);
          const units = listed.code === 0 ? parseObserved(listed.stdout, this.options).units : new Map<string, ObservedUnit>();
          const vips6 = [...new Set([...units.keys()].map((id) => vipOfId(id, 6)).filter((v): v is string => v !== undefined))];
          if (vips6.length && (await this.ndp.cleanup(vips6))) removed = true;
        }
        const r = await this.nft(['delete', 'table', 'inet', t]);
        if (r.code !== 0) throw toolError(`nft delete table inet ${t}`, r);
        removed = true;
      }
    } finally {
      // The addresses and the FORWARD accept go even when nft failed (or is missing): they are ours either way.
      if (this.lo && (await this.lo.cleanup())) removed = true;
      if (this.guard && (await this.guard.cleanup())) removed = true;
      this.vips.observed(new Map(), { ours: new Set(), others: new Set() });
      this.vips6.observed(new Map(), { ours: new Set(), others: new Set() });
    }
    return { removed };
  }
}

/** One unit's elements as `dataplane show` lists them. */
function kernelView(id: string, n: NftUnitNative | undefined): KernelUnit {
  if (!n || n.elements.length === 0) return { id, present: false, weights: 'slots', backends: [] };
  const gotos = n.elements.filter((e) => e.value.startsWith('goto ')).map((e) => e.value);
  const slots = new Map<string, number>();
  for (const e of n.elements) if (!e.value.startsWith('goto ')) slots.set(e.value, (slots.get(e.value) ?? 0) + 1);
  const backends = [...slots].map(([v, weight]) => {
    const [ip, port] = v.split(' . ');
    return { ip: ip!, port: Number(port), weight };
  });
  const picks = new Set(
    gotos.map((g) => {
      if (g === 'goto c-none') return 'none (no backend: the host answers)';
      // rr/wrr units have a chain of their own (-u…) and so their own counter.
      const by = /-h\d+(-s\d+)?$/.test(g) ? 'jhash of the client address' : /-u[0-9a-f]+$/.test(g) ? 'numgen round robin per service port' : 'numgen round robin';
      const sticky = /-s(\d+)$/.exec(g);
      return sticky ? `${by}, sticky ${sticky[1]} s per client address` : by;
    }),
  );
  return { id, present: true, scheduler: [...picks].join(', '), where: gotos.join(', '), weights: 'slots', backends };
}
