// Forwarded VIP traffic on hosts whose FORWARD policy is DROP (every Docker host): a packet we DNAT
// to a backend behind a bridge still crosses iptables' filter FORWARD chain, and an accept in our own
// nftables table cannot overrule a drop in another base chain. So our DNAT also sets a conntrack
// mark bit, and one iptables chain of ours, VIPDNS-FORWARD, accepts flows carrying it (both
// directions); a jump to it is the first rule of FORWARD. Docker's chains (DOCKER, DOCKER-USER,
// DOCKER-ISOLATION-*) are never touched. Pure rendering/checking here; ForwardGuard runs the tools.
import type { Iptables } from '../iptables/exec.js';
import { RestoreScript } from '../iptables/restore.js';
import type { SavedRuleset } from '../iptables/save.js';

export const FORWARD_CHAIN = 'VIPDNS-FORWARD';
const COMMENT = 'vipdns: flows it DNATs';

const hex = (n: number) => `0x${n.toString(16)}`;

/** The one rule of our chain, as iptables-save prints it back. */
export function acceptArgs(mark: number): string[] {
  return ['-m', 'connmark', '--mark', `${hex(mark)}/${hex(mark)}`, '-m', 'comment', '--comment', COMMENT, '-j', 'ACCEPT'];
}
export const JUMP_ARGS = ['-j', FORWARD_CHAIN];

/** absent-filter: nothing in FORWARD can drop (no chain, or policy ACCEPT and no rules): no guard needed. */
export type GuardState = 'ok' | 'missing' | 'drifted' | 'absent-filter';

const same = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/** ok: our chain holds exactly our rule and FORWARD's first rule jumps to it. */
export function guardState(saved: SavedRuleset, mark: number): GuardState {
  const filter = saved.get('filter');
  if (!filter || !filter.chains.includes('FORWARD')) return 'absent-filter';
  const ours = filter.rules.filter((r) => r.chain === FORWARD_CHAIN);
  const forward = filter.rules.filter((r) => r.chain === 'FORWARD');
  const jumps = forward.filter((r) => same(r.args, JUMP_ARGS)).length;
  const mine = filter.chains.includes(FORWARD_CHAIN) || jumps > 0;
  // iptables-nft lists a filter table it has not created as all ACCEPT and empty: nothing to guard,
  // and writing there would create a table (ours to leave behind).
  if (!mine && forward.length === 0 && (filter.policies?.get('FORWARD') ?? 'ACCEPT') === 'ACCEPT') return 'absent-filter';
  if (!mine) return 'missing';
  const intact = ours.length === 1 && same(ours[0]!.args, acceptArgs(mark)) && jumps === 1 && same(forward[0]!.args, JUMP_ARGS);
  return intact ? 'ok' : 'drifted';
}

/** Rewrites our chain and puts exactly one jump to it first in FORWARD. */
export function renderGuard(saved: SavedRuleset, mark: number): RestoreScript {
  const s = new RestoreScript();
  const filter = saved.get('filter');
  for (const r of filter?.rules ?? []) if (r.chain === 'FORWARD' && same(r.args, JUMP_ARGS)) s.delete('filter', 'FORWARD', JUMP_ARGS);
  s.declare('filter', FORWARD_CHAIN); // creates or empties it
  s.append('filter', FORWARD_CHAIN, acceptArgs(mark));
  s.insert('filter', 'FORWARD', JUMP_ARGS);
  return s;
}

/** Removes every jump to our chain, then the chain. */
export function renderGuardCleanup(saved: SavedRuleset): RestoreScript {
  const s = new RestoreScript();
  const filter = saved.get('filter');
  if (!filter) return s;
  for (const r of filter.rules) if (same(r.args, JUMP_ARGS)) s.delete('filter', r.chain, JUMP_ARGS);
  if (filter.chains.includes(FORWARD_CHAIN)) s.flush('filter', FORWARD_CHAIN).deleteChain('filter', FORWARD_CHAIN);
  return s;
}

/** The guard in both families' filter tables; a family whose iptables is missing is skipped. */
export class ForwardGuard {
  constructor(
    private readonly tables: Iptables[],
    private readonly mark: number,
  ) {}

  private async saved(ipt: Iptables): Promise<SavedRuleset | undefined> {
    try {
      return await ipt.save(['filter']);
    } catch (e) {
      if (/exit 127|not installed|ENOENT/.test((e as Error).message)) return undefined; // no iptables: nothing can drop
      throw e;
    }
  }

  /** True when every family with a filter table has the guard intact. */
  async intact(): Promise<boolean> {
    for (const ipt of this.tables) {
      const saved = await this.saved(ipt);
      const st = saved ? guardState(saved, this.mark) : 'absent-filter';
      if (st === 'missing' || st === 'drifted') return false;
    }
    return true;
  }

  /** (Re)writes the guard where it is not intact; returns the statements sent. */
  async ensure(): Promise<number> {
    let ops = 0;
    for (const ipt of this.tables) {
      const saved = await this.saved(ipt);
      if (!saved) continue;
      const st = guardState(saved, this.mark);
      // No FORWARD chain: nothing there can drop, and we create no iptables table of our own. If one
      // appears later (Docker starts), the periodic resync finds the guard missing and adds it.
      if (st === 'ok' || st === 'absent-filter') continue;
      const script = renderGuard(saved, this.mark);
      await ipt.restore(script);
      ops += script.ops;
    }
    return ops;
  }

  async cleanup(): Promise<boolean> {
    let removed = false;
    for (const ipt of this.tables) {
      const saved = await this.saved(ipt);
      if (!saved) continue;
      const script = renderGuardCleanup(saved);
      if (script.isEmpty()) continue;
      await ipt.restore(script);
      removed = true;
    }
    return removed;
  }
}
