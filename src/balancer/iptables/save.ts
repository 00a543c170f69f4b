// `iptables-save` output → tables, chains and rules. Pure. Rules keep their arguments exactly as
// iptables-save printed them (its canonical order), so a rule read here can be deleted with `-D` verbatim.

export interface SavedRule {
  table: string;
  chain: string;
  /** Arguments after `-A CHAIN`, unquoted (a comment with spaces is one argument). */
  args: string[];
}

export interface SavedTable {
  /** Every chain declared in the table (built-in and user), in order. */
  chains: string[];
  /** Built-in chains' policies (ACCEPT, DROP), as declared. */
  policies?: Map<string, string>;
  rules: SavedRule[];
}

export type SavedRuleset = Map<string, SavedTable>;

/**
 * Splits one rule line like iptables-save quotes it: double quotes group, backslash escapes the next
 * character inside them (`--comment "a \"b\""`).
 */
export function splitArgs(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === '\\' && i + 1 < line.length) cur += line[++i];
      else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') {
      quoted = true;
      inWord = true;
    } else if (c === ' ' || c === '\t') {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) out.push(cur);
  return out;
}

/** Parses a whole dump; lines of unknown shape are ignored (comments, counters, COMMIT). */
export function parseSave(text: string): SavedRuleset {
  const tables: SavedRuleset = new Map();
  let cur: SavedTable | undefined;
  let name = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*')) {
      name = line.slice(1);
      cur = tables.get(name) ?? { chains: [], rules: [] };
      tables.set(name, cur);
    } else if (!cur || line === '' || line.startsWith('#')) {
      continue;
    } else if (line.startsWith(':')) {
      const [chain, policy] = line.slice(1).split(' ');
      if (chain) cur.chains.push(chain);
      if (chain && policy && policy !== '-') (cur.policies ??= new Map()).set(chain, policy);
    } else if (line.startsWith('-A ')) {
      const args = splitArgs(line);
      const chain = args[1];
      if (chain) cur.rules.push({ table: name, chain, args: args.slice(2) });
    }
  }
  return tables;
}

/** The value after the first occurrence of `flag` (e.g. `--comment`), if any. */
export function argValue(args: readonly string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}
