// The nftables dataplane (kube-proxy's nftables mode is the model): one table of our own, `inet vipdns`,
// every change one `nft -f` transaction, incremental per unit chain. Rendering and parsing are pure
// (nftables-render.ts, nftables-observe.ts); this file only runs nft.
import type { ApplyResult, CleanupResult, DataplaneDriver, Diff, ObservedState, ObservedUnit, ProbeResult, Unit } from '../types.js';
import { toolError, toolRunner, type Runner } from './exec.js';
import { parseObserved } from './nftables-observe.js';
import { DEFAULT_NFT_OPTIONS, fingerprintOf, renderDiff, renderUnit, type NftOptions } from './nftables-render.js';
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
    const { native } = renderUnit(u, this.options);
    return { id: native.chain, fingerprint: fingerprintOf(native.ruleHash, native.elements), native };
  }

  async observe(): Promise<ObservedState> {
    const r = await this.nft(['-j', 'list', 'table', 'inet', this.options.table]);
    if (r.code !== 0) {
      if (/No such file or directory/.test(r.stderr)) return { base: 'missing', units: new Map() };
      throw toolError(`nft list table inet ${this.options.table}`, r);
    }
    return parseObserved(r.stdout, this.options);
  }

  async apply(d: Diff): Promise<ApplyResult> {
    const { text, ops } = renderDiff(d, this.options);
    if (ops === 0) return { ops: 0 };
    const r = await this.nft(['-f', '-'], text);
    if (r.code !== 0) throw toolError('nft -f (dataplane transaction)', r);
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
