// The nftables dataplane (kube-proxy's nftables mode is the model): one table of our own, `inet vipdns`,
// every change one `nft -f` transaction, incremental per unit chain. Rendering and parsing are pure
// (nftables-render.ts, nftables-observe.ts); this file only runs nft.
import type { ApplyResult, CleanupResult, DataplaneDriver, Diff, ObservedState, ObservedUnit, ProbeResult, Unit } from '../types.js';
import { toolError, toolRunner, type Runner } from './exec.js';
import { parseObserved } from './nftables-observe.js';
import { DEFAULT_NFT_OPTIONS, fingerprintOf, renderDiff, unitElements, unitId, type NftOptions, type NftUnitNative } from './nftables-render.js';
import { probeNftables } from './supported.js';

export interface NftablesDriverOptions extends Partial<NftOptions> {
  /** Run nft inside this named network namespace (`ip netns exec`). */
  netns?: string;
  /** Injected for tests; defaults to spawning nft. */
  runner?: Runner;
}

export class NftablesDriver implements DataplaneDriver {
  readonly name = 'nftables' as const;
  readonly options: NftOptions;
  private readonly nft: Runner;
  /** Class chains known intact: from the last observe, plus those our own transactions created. */
  private knownClasses = new Set<string>();
  private knownMaps = new Set<string>();
  private readonly expected = new WeakMap<object, ObservedUnit>();

  constructor(opts: NftablesDriverOptions = {}) {
    this.options = {
      table: opts.table ?? DEFAULT_NFT_OPTIONS.table,
      masqueradeMark: opts.masqueradeMark ?? DEFAULT_NFT_OPTIONS.masqueradeMark,
    };
    this.nft = opts.runner ?? toolRunner('nft', opts.netns);
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
    const elements = unitElements(u);
    const native: NftUnitNative = { elements };
    const e = { id: unitId(u), fingerprint: fingerprintOf(elements), native };
    this.expected.set(obj, e);
    return e;
  }

  async observe(): Promise<ObservedState> {
    const r = await this.nft(['-j', 'list', 'table', 'inet', this.options.table]);
    if (r.code !== 0) {
      if (/No such file or directory/.test(r.stderr)) {
        this.knownClasses = new Set();
        this.knownMaps = new Set();
        return { base: 'missing', units: new Map() };
      }
      throw toolError(`nft list table inet ${this.options.table}`, r);
    }
    const { base, units, knownClasses, knownMaps } = parseObserved(r.stdout, this.options);
    this.knownClasses = knownClasses;
    this.knownMaps = knownMaps;
    return { base, units };
  }

  async apply(d: Diff): Promise<ApplyResult> {
    const { text, ops, classes } = renderDiff(d, this.options, { knownClasses: this.knownClasses, knownMaps: this.knownMaps });
    if (ops === 0) return { ops: 0 };
    const r = await this.nft(['-f', '-'], text);
    if (r.code !== 0) throw toolError('nft -f (dataplane transaction)', r);
    for (const c of classes) {
      this.knownClasses.add(c);
      this.knownMaps.add(`t-${c.slice(2)}`);
    }
    return { ops };
  }

  /** Deletes our table, which holds everything we made; nothing outside it is ever touched. */
  async cleanup(): Promise<CleanupResult> {
    const t = this.options.table;
    const tables = await this.nft(['list', 'tables']);
    if (tables.code !== 0) throw toolError('nft list tables', tables);
    if (!tables.stdout.split('\n').some((l) => l.trim() === `table inet ${t}`)) return { removed: false };
    const r = await this.nft(['delete', 'table', 'inet', t]);
    if (r.code !== 0) throw toolError(`nft delete table inet ${t}`, r);
    return { removed: true };
  }
}
