// Precompiled internal answers keyed by the question's wire bytes. A lookup hashes the name
// (ASCII case folded, as DNS compares names) and the type straight from the packet and then
// compares bytes, so a query that hits builds no strings and no objects. The resolver fills
// the table on a miss; each entry remembers the answer index keys it derives from, so an
// index update drops only the entries of the keys it touched.

/** A counter cell: the metric bumps `n`, the registry reads it at scrape time. */
export interface Cell {
  n: number;
}

/** An internal answer in wire form, minus header and question. */
export interface Compiled {
  rcode: number;
  blocks: Buffer[]; // one per answer record, each self-contained when `shuffle`
  blocksLen: number;
  tail: Buffer; // authority + additional records
  an: number;
  ns: number;
  ar: number;
  shuffle: boolean;
  /** Offset in `tail` of the SOA serial (the catalog revision, patched in per reply), or -1. */
  serialAt: number;
  /** Metric cells of this (name, type, client scope), filled on first use by the fast path. */
  udpRequests?: Cell;
  responses?: Cell;
}

interface Slot {
  /**
   * The lower-cased wire name, then the two type bytes, one char per byte: a string costs a
   * tenth of a Uint8Array with its own ArrayBuffer (measured: an entry 2.7 KB -> 1.3 KB with
   * the dependency sets below; a table of 10,000 names was 27 MB).
   */
  key: string;
  scope: number;
  value: Compiled;
  next: Slot | undefined;
  hash: number;
  deps: string[]; // answer index keys the value derives from
}

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** Folds one byte of a wire name to lower case (label length bytes are < 0x41 and pass unchanged). */
export function foldByte(c: number): number {
  return c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
}

/** Hash of a question: the wire name buf[start, nameEnd) case-folded, the type, and the client scope. */
export function questionHash(buf: Uint8Array, start: number, nameEnd: number, qtype: number, scope: number): number {
  let h = FNV_OFFSET;
  for (let i = start; i < nameEnd; i++) h = Math.imul(h ^ foldByte(buf[i]!), FNV_PRIME);
  h = Math.imul(h ^ (qtype >>> 8), FNV_PRIME);
  h = Math.imul(h ^ (qtype & 0xff), FNV_PRIME);
  return Math.imul(h ^ scope, FNV_PRIME) >>> 0;
}

export class AnswerTable {
  private readonly buckets = new Map<number, Slot>();
  // An index key's entries: the entry alone (most keys: one name, one type, one scope), or a set.
  private readonly byDep = new Map<string, Slot | Set<Slot>>();
  private count = 0;

  /** At `max` entries the table starts over rather than grow without bound. */
  constructor(private readonly max: number) {}

  get size(): number {
    return this.count;
  }

  /** The answer for the question whose wire name is buf[start, nameEnd), `h` from questionHash. */
  get(buf: Uint8Array, start: number, nameEnd: number, qtype: number, scope: number, h: number): Compiled | undefined {
    const n = nameEnd - start;
    for (let s = this.buckets.get(h); s; s = s.next) {
      const k = s.key;
      if (s.scope !== scope || k.length !== n + 2 || k.charCodeAt(n) !== qtype >>> 8 || k.charCodeAt(n + 1) !== (qtype & 0xff)) continue;
      let i = 0;
      while (i < n && k.charCodeAt(i) === foldByte(buf[start + i]!)) i++;
      if (i === n) return s.value;
    }
    return undefined;
  }

  /** Stores an answer derived from the index keys `deps` (dropped when drop() names one of them). */
  set(buf: Uint8Array, start: number, nameEnd: number, qtype: number, scope: number, value: Compiled, deps: string[]): void {
    if (this.count >= this.max) this.clear();
    const h = questionHash(buf, start, nameEnd, qtype, scope);
    const n = nameEnd - start;
    const codes = new Array<number>(n + 2);
    for (let i = 0; i < n; i++) codes[i] = foldByte(buf[start + i]!);
    codes[n] = qtype >>> 8;
    codes[n + 1] = qtype & 0xff;
    const key = String.fromCharCode(...codes);
    // Replace an equal key rather than chain a twin behind it.
    for (let s = this.buckets.get(h); s; s = s.next) {
      if (s.scope === scope && s.key === key) {
        s.value = value;
        for (const d of deps) if (!s.deps.includes(d)) this.link(s, d);
        return;
      }
    }
    const slot: Slot = { key, scope, value, next: this.buckets.get(h), hash: h, deps: [] };
    this.buckets.set(h, slot);
    for (const d of deps) this.link(slot, d);
    this.count++;
  }

  /** Drops every entry derived from index key `dep`; returns how many. */
  drop(dep: string): number {
    const slots = this.byDep.get(dep);
    if (!slots) return 0;
    if (!(slots instanceof Set)) return this.unlink(slots) ? 1 : 0;
    let n = 0;
    for (const s of [...slots]) n += this.unlink(s) ? 1 : 0;
    return n;
  }

  clear(): void {
    this.buckets.clear();
    this.byDep.clear();
    this.count = 0;
  }

  private link(s: Slot, dep: string): void {
    s.deps.push(dep);
    const held = this.byDep.get(dep);
    if (!held) this.byDep.set(dep, s);
    else if (held instanceof Set) held.add(s);
    else if (held !== s) this.byDep.set(dep, new Set([held, s]));
  }

  private unlink(slot: Slot): boolean {
    let prev: Slot | undefined;
    let s = this.buckets.get(slot.hash);
    while (s && s !== slot) {
      prev = s;
      s = s.next;
    }
    if (!s) return false;
    if (prev) prev.next = s.next;
    else if (s.next) this.buckets.set(slot.hash, s.next);
    else this.buckets.delete(slot.hash);
    this.count--;
    for (const d of slot.deps) {
      const held = this.byDep.get(d);
      if (held === slot) this.byDep.delete(d);
      else if (held instanceof Set) {
        held.delete(slot);
        if (held.size === 1) this.byDep.set(d, held.values().next().value!);
      }
    }
    return true;
  }
}
