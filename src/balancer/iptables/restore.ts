// An `iptables-restore --noflush` transaction, built up table by table. Pure. With --noflush the tables
// stay as they are except for what the script says; declaring an existing user chain (`:CHAIN - [0:0]`)
// flushes it, so callers declare only chains they rewrite whole or that do not exist yet.

type Line = string;

export class RestoreScript {
  private readonly tables = new Map<string, { decl: Line[]; body: Line[] }>();
  private count = 0;

  private table(t: string): { decl: Line[]; body: Line[] } {
    let s = this.tables.get(t);
    if (!s) this.tables.set(t, (s = { decl: [], body: [] }));
    return s;
  }

  /** Creates the chain, or empties it if it exists. */
  declare(table: string, chain: string): this {
    this.table(table).decl.push(`:${chain} - [0:0]`);
    this.count++;
    return this;
  }

  append(table: string, chain: string, args: readonly string[]): this {
    return this.rule(table, '-A', chain, args);
  }

  /** Inserts at the top of the chain (position 1). */
  insert(table: string, chain: string, args: readonly string[]): this {
    return this.rule(table, '-I', chain, args);
  }

  /** Deletes the first rule equal to `args`; the whole transaction fails if there is none. */
  delete(table: string, chain: string, args: readonly string[]): this {
    return this.rule(table, '-D', chain, args);
  }

  /** Removes a user chain; it must be empty and unreferenced by then. */
  deleteChain(table: string, chain: string): this {
    this.table(table).body.push(`-X ${chain}`);
    this.count++;
    return this;
  }

  flush(table: string, chain: string): this {
    this.table(table).body.push(`-F ${chain}`);
    this.count++;
    return this;
  }

  private rule(table: string, op: string, chain: string, args: readonly string[]): this {
    this.table(table).body.push(`${op} ${chain} ${args.map(quoteArg).join(' ')}`);
    this.count++;
    return this;
  }

  /** Number of statements (declarations and rule operations). */
  get ops(): number {
    return this.count;
  }

  isEmpty(): boolean {
    return this.count === 0;
  }

  /** Tables in a fixed order (mangle before nat) so equal scripts render equally. */
  render(): string {
    const names = [...this.tables.keys()].sort();
    let out = '';
    for (const t of names) {
      const s = this.tables.get(t)!;
      if (s.decl.length === 0 && s.body.length === 0) continue;
      out += `*${t}\n${s.decl.map((l) => `${l}\n`).join('')}${s.body.map((l) => `${l}\n`).join('')}COMMIT\n`;
    }
    return out;
  }
}

/** Quotes an argument the way iptables-restore tokenizes it (double quotes, backslash escapes). */
export function quoteArg(a: string): string {
  if (a !== '' && /^[A-Za-z0-9_.:/!+=,@%^-]+$/.test(a)) return a;
  return `"${a.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}
