// iptables-save / iptables-restore for one address family, through the shared tool runner. The only I/O
// of the rule writer; everything it sends is rendered by restore.ts and everything it reads is parsed by
// save.ts.
import { VipdnsError } from '../../errors.js';
import { toolError, toolRunner, type Runner } from '../drivers/exec.js';
import type { Family } from '../types.js';
import { parseSave, type SavedRuleset } from './save.js';
import type { RestoreScript } from './restore.js';

export interface Iptables {
  readonly family: Family;
  /** The given tables as iptables-save prints them (a table nobody created comes back empty). */
  save(tables: readonly string[]): Promise<SavedRuleset>;
  /** One `--noflush` transaction: all of it applies, or none of it. */
  restore(script: RestoreScript): Promise<void>;
}

export interface IptablesOptions {
  /** Injected runner per tool name (tests); defaults to spawning the binaries. */
  runner?: (tool: string) => Runner;
}

export function iptables(family: Family, o: IptablesOptions = {}): Iptables {
  const p = family === 6 ? 'ip6tables' : 'iptables';
  const save = (o.runner ?? toolRunner)(`${p}-save`);
  const restore = (o.runner ?? toolRunner)(`${p}-restore`);
  return {
    family,
    async save(tables) {
      const out = new Map() as SavedRuleset;
      // One exec per table: a bare iptables-save would also dump the (possibly huge) filter table.
      for (const t of tables) {
        const r = await save(['-t', t]);
        if (r.code !== 0) throw toolError(`${p}-save -t ${t}`, r);
        for (const [name, table] of parseSave(r.stdout)) out.set(name, table);
        if (!out.has(t)) out.set(t, { chains: [], rules: [] });
      }
      return out;
    },
    async restore(script) {
      if (script.isEmpty()) return;
      const r = await restore(['--noflush', '-w', '5'], script.render());
      if (r.code === 127) throw new VipdnsError('DATAPLANE_UNSUPPORTED', `${p}-restore is not installed`);
      if (r.code !== 0) throw toolError(`${p}-restore --noflush (dataplane transaction)`, r);
    },
  };
}
