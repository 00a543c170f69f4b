// One DNS request in, one response out: precheck, parse, answer internal names from
// precompiled wire answers (only ID, flags and the question's spelling patched per query;
// dnsrr answers permute their precompiled record blocks), hand other names to the forwarder
// for known clients, and turn every failure into a DNS error rather than an exception.
import { type Addr, tryParseIp } from '../net/ip.js';
import { AnswerTable, type Cell, type Compiled, questionHash } from './answer-table.js';
import { type AnswerIndex, CLIENT_KEY, type Resolution } from './answers.js';
import { MessageWriter, type Rr, typeName } from './encode.js';
import type { ForwardResult } from './forward/forwarder.js';
import type { AnswerSource, DnsMetrics } from './metrics.js';
import { CD, FLAG_AA, FLAG_RA, ParseError, QR, type Query, RCODE, RD, buildResponse, headerError, parseQuery, precheck, truncatedResponse, udpLimit } from './wire.js';

/** The tail of the many answers with no authority or additional records: one buffer for all. */
const NO_TAIL = Buffer.alloc(0);

export type Transport = 'udp' | 'tcp';

export interface Forwarder {
  /** Resolves a name outside the internal domain into a reply ready for this client. */
  forward(q: Query, maxSize: number): ForwardResult | Promise<ForwardResult>;
}

export interface ResolverOptions {
  index: AnswerIndex;
  forwarder?: Forwarder;
  /** The EDNS payload size we advertise and the largest UDP reply we send (1232: no IP fragmentation). */
  ednsSize?: number;
  metrics?: DnsMetrics;
}

interface ClientInfo {
  addr: Addr;
  known: boolean;
  network: string; // metrics label: its network's name, 'loopback', 'multiple' or 'none'
  /** Clients with equal ids see equal answers and share the metrics label: the answer table's key. */
  scopeId: number;
}

const MAX_COMPILED = 100_000;
const MAX_CLIENTS = 10_000;

export class Resolver {
  private readonly index: AnswerIndex;
  private readonly ednsSize: number;
  forwarder: Forwarder | undefined;
  metrics: DnsMetrics | undefined;
  private readonly table = new AnswerTable(MAX_COMPILED);
  private readonly scratch = new MessageWriter(512);
  private clients = new Map<string, ClientInfo>();
  private scopeIds = new Map<string, number>();
  private generation = -1;
  private internalAnswers: Cell | undefined;

  constructor(opts: ResolverOptions) {
    this.index = opts.index;
    this.forwarder = opts.forwarder;
    this.ednsSize = opts.ednsSize ?? 1232;
    this.metrics = opts.metrics;
  }

  /** The largest UDP reply answerUdp may write. */
  get maxUdpReply(): number {
    return Math.max(512, this.ednsSize);
  }

  /** Returns the reply, a promise of it (forwarded names), or undefined to stay silent. */
  handle(buf: Buffer, client: Addr | string, transport: Transport): Buffer | Promise<Buffer | undefined> | undefined {
    const m = this.metrics;
    const start = m ? process.hrtime.bigint() : 0n;
    const pre = precheck(buf);
    if (pre.action === 'drop') {
      m?.malformed.inc(pre.reason);
      return undefined;
    }
    if (pre.action === 'reply') {
      m?.malformed.inc(pre.reason);
      return this.done(headerError(buf, pre.rcode), pre.rcode, transport, start);
    }
    let q: Query;
    try {
      q = parseQuery(buf);
    } catch (e) {
      m?.malformed.inc(e instanceof ParseError ? 'parse' : 'other');
      return this.done(headerError(buf, RCODE.FORMERR), RCODE.FORMERR, transport, start);
    }
    this.checkGeneration();
    const info = this.client(client);
    if (!info) return undefined;
    m?.request(transport, q.type, info.network);
    const maxSize = transport === 'tcp' ? 65535 : udpLimit(q, this.ednsSize);
    const ra = this.forwarder ? FLAG_RA : 0;
    if (q.edns && q.edns.version > 0) {
      return this.done(buildResponse(q, { rcode: RCODE.BADVERS, flags: ra, answers: [], maxSize, ednsSize: this.ednsSize }), RCODE.BADVERS, transport, start);
    }
    if (q.qclass !== 1 && q.qclass !== 255) {
      return this.done(buildResponse(q, { rcode: RCODE.REFUSED, flags: ra, answers: [], maxSize, ednsSize: this.ednsSize }), RCODE.REFUSED, transport, start);
    }

    const nameEnd = q.qEnd - 4;
    let c = this.table.get(buf, 12, nameEnd, q.qtype, info.scopeId, questionHash(buf, 12, nameEnd, q.qtype, info.scopeId));
    if (!c) {
      const res: Resolution = this.index.resolve(q.name, q.type, info.addr);
      if (res.kind !== 'external') {
        c = this.compile(q, res);
        // Shuffled records that name each other (SRV + glue) cannot be permuted as blocks: compile per query.
        if (!(res.kind === 'answer' && res.shuffle && !c.shuffle)) this.table.set(buf, 12, nameEnd, q.qtype, info.scopeId, c, this.index.keysOf(q.name));
      }
    }
    if (c) {
      m?.answer('internal');
      return this.done(this.emit(c, q, maxSize, FLAG_AA | ra), c.rcode, transport, start);
    }

    // Only clients of our own networks may recurse: vipdns is not an open resolver.
    if (!this.forwarder || !info.known) {
      return this.done(buildResponse(q, { rcode: RCODE.REFUSED, flags: ra, answers: [], maxSize, ednsSize: this.ednsSize }), RCODE.REFUSED, transport, start);
    }
    let r: ForwardResult | Promise<ForwardResult>;
    try {
      r = this.forwarder.forward(q, maxSize);
    } catch {
      return this.done(buildResponse(q, { rcode: RCODE.SERVFAIL, flags: ra, answers: [], maxSize, ednsSize: this.ednsSize }), RCODE.SERVFAIL, transport, start);
    }
    if (!(r instanceof Promise)) return this.done(r.reply, r.rcode, transport, start, r.source);
    return r.then(
      (res) => this.done(res.reply, res.rcode, transport, start, res.source),
      () => this.done(buildResponse(q, { rcode: RCODE.SERVFAIL, flags: ra, answers: [], maxSize, ednsSize: this.ednsSize }), RCODE.SERVFAIL, transport, start, 'forward'),
    );
  }

  /**
   * Answers depend on the index: drop those of the keys it touched since we last looked.
   * When scopes moved (or we fell behind its journal), clients' views and metric cells may
   * differ too: drop everything.
   */
  private checkGeneration(): void {
    const g = this.index.generation;
    if (this.generation === g) return;
    const touched = this.index.touchedSince(this.generation);
    this.generation = g;
    if (touched === 'all') {
      this.table.clear();
      this.clients = new Map();
      this.scopeIds = new Map();
    } else {
      for (const k of touched) {
        // A client's own networks changed (a container joined a second network): views are recomputed.
        if (k.startsWith(CLIENT_KEY)) this.clients = new Map();
        else this.table.drop(k);
      }
    }
  }

  private client(client: Addr | string): ClientInfo | undefined {
    const k = typeof client === 'string' ? client : `${client.family}/${client.value}`;
    let info = this.clients.get(k);
    if (info) return info;
    const addr = typeof client === 'string' ? tryParseIp(client) : client;
    if (!addr) return undefined;
    const network = this.index.networkLabel(addr);
    const sk = `${this.index.scopeKey(addr)}\0${network}`;
    let scopeId = this.scopeIds.get(sk);
    if (scopeId === undefined) this.scopeIds.set(sk, (scopeId = this.scopeIds.size));
    info = { addr, known: this.index.isKnownClient(addr), network, scopeId };
    if (this.clients.size >= MAX_CLIENTS) this.clients.clear();
    this.clients.set(k, info);
    return info;
  }

  /**
   * The UDP fast path: a plain query (one question of class IN, at most an EDNS0 OPT) for a
   * name already in the answer table is answered straight into `out` at `at`: no strings,
   * no objects. Returns the reply's length, or -1 when the general path (handle) must run:
   * anything unusual, a table miss, a reply that needs TC. The client's address is as in handle.
   */
  answerUdp(d: Uint8Array, off: number, len: number, client: string, out: Buffer, at: number): number {
    if (len < 17) return -1;
    const end = off + len;
    const reqFlags = (d[off + 2]! << 8) | d[off + 3]!;
    // QR or an opcode other than QUERY; counts other than 1/0/0/0-or-1.
    if (reqFlags & 0xf800 || d[off + 4] !== 0 || d[off + 5] !== 1 || (d[off + 6]! | d[off + 7]! | d[off + 8]! | d[off + 9]! | d[off + 10]!) !== 0) return -1;
    const ar = d[off + 11]!;
    if (ar > 1) return -1;
    let p = off + 12;
    let nameLen = 1;
    for (;;) {
      if (p >= end) return -1;
      const l = d[p]!;
      if (l === 0) break;
      if (l > 63) return -1;
      nameLen += l + 1;
      if (nameLen > 255) return -1;
      p += l + 1;
    }
    const nameEnd = p + 1;
    const qEnd = nameEnd + 4;
    if (qEnd > end || d[nameEnd + 2] !== 0 || d[nameEnd + 3] !== 1) return -1; // class IN only
    const qtype = (d[nameEnd]! << 8) | d[nameEnd + 1]!;
    let maxSize = 512;
    if (ar === 1) {
      // Only an OPT of the root, version 0, whose data fits the packet.
      if (qEnd + 11 > end || d[qEnd] !== 0 || d[qEnd + 1] !== 0 || d[qEnd + 2] !== 41 || d[qEnd + 6] !== 0) return -1;
      if (qEnd + 11 + ((d[qEnd + 9]! << 8) | d[qEnd + 10]!) > end) return -1;
      maxSize = Math.max(512, Math.min((d[qEnd + 3]! << 8) | d[qEnd + 4]!, this.ednsSize));
    }
    this.checkGeneration();
    const info = this.client(client);
    if (!info) return -1;
    const c = this.table.get(d, off + 12, nameEnd, qtype, info.scopeId, questionHash(d, off + 12, nameEnd, qtype, info.scopeId));
    if (!c) return -1;
    const qLen = qEnd - off;
    const size = qLen + c.blocksLen + c.tail.length + (ar === 1 ? 11 : 0);
    if (size > maxSize) return -1;
    const flags = QR | (reqFlags & (RD | CD)) | FLAG_AA | (this.forwarder ? FLAG_RA : 0) | c.rcode;
    out[at] = d[off]!;
    out[at + 1] = d[off + 1]!;
    out[at + 2] = flags >>> 8;
    out[at + 3] = flags & 0xff;
    out[at + 4] = 0;
    out[at + 5] = 1;
    out.writeUInt16BE(c.an, at + 6);
    out.writeUInt16BE(c.ns, at + 8);
    out.writeUInt16BE(c.ar + ar, at + 10);
    out.set(d.subarray(off + 12, qEnd), at + 12);
    const o = this.writeRecords(c, out, at + qLen);
    if (ar === 1) this.writeOpt(out, o);
    const m = this.metrics;
    if (m) {
      (c.udpRequests ??= m.requestCell('udp', typeName(qtype), info.network)).n++;
      (c.responses ??= m.responseCell(c.rcode)).n++;
      (this.internalAnswers ??= m.answerCell('internal')).n++;
    }
    return size;
  }

  private compile(q: Query, res: Exclude<Resolution, { kind: 'external' }>): Compiled {
    const answers: Rr[] = res.kind === 'answer' ? res.records : [];
    const soa = res.kind === 'answer' ? undefined : this.index.soa(res.ttl);
    const auth: Rr[] = soa ? [soa] : [];
    const add: Rr[] = res.kind === 'answer' ? res.additionals : [];
    // One scratch writer for every compile: a new one per answer came from Buffer's shared
    // pool, and each cached answer's blocks (copied from the same pool) kept its 8 KB slab of
    // dead scratch alive (~500 B per cached answer).
    const w = this.scratch;
    w.reset();
    w.header(0, 0, 1, 0, 0, 0);
    w.rawQuestion(q.raw, 12, q.qEnd, q.labels);
    const blocks: Buffer[] = [];
    let selfContained = true;
    for (const r of answers) {
      const at = w.off;
      w.rr(r);
      blocks.push(Buffer.from(w.buf.subarray(at, w.off)));
      if (r.name !== undefined || (r.type !== 'A' && r.type !== 'AAAA')) selfContained = false;
    }
    const tailAt = w.off;
    for (const r of auth) w.rr(r);
    // The SOA ends with serial, refresh, retry, expire, minimum (4 bytes each).
    const serialAt = soa ? w.off - 20 - tailAt : -1;
    for (const r of add) w.rr(r);
    return {
      rcode: res.kind === 'nxdomain' ? RCODE.NXDOMAIN : RCODE.NOERROR,
      blocks,
      blocksLen: tailAt - q.qEnd,
      tail: w.off > tailAt ? Buffer.from(w.buf.subarray(tailAt, w.off)) : NO_TAIL,
      an: answers.length,
      ns: auth.length,
      ar: add.length,
      shuffle: res.kind === 'answer' && res.shuffle && selfContained && blocks.length > 1,
      serialAt,
    };
  }

  private emit(c: Compiled, q: Query, maxSize: number, extraFlags: number): Buffer {
    const flags = QR | (q.flags & (RD | CD)) | extraFlags | c.rcode;
    const bodyLen = q.qEnd + c.blocksLen + c.tail.length;
    const size = bodyLen + (q.edns ? 11 : 0);
    if (size > maxSize) return truncatedResponse(q, flags, this.ednsSize);
    const out = Buffer.allocUnsafe(size);
    out.writeUInt16BE(q.id, 0);
    out.writeUInt16BE(flags, 2);
    out.writeUInt16BE(1, 4);
    out.writeUInt16BE(c.an, 6);
    out.writeUInt16BE(c.ns, 8);
    out.writeUInt16BE(c.ar + (q.edns ? 1 : 0), 10);
    q.raw.copy(out, 12, 12, q.qEnd);
    const o = this.writeRecords(c, out, q.qEnd);
    if (q.edns) this.writeOpt(out, o);
    return out;
  }

  /** Writes the answer blocks (permuted when the answer shuffles) and the tail; returns the end. */
  private writeRecords(c: Compiled, out: Buffer, at: number): number {
    let o = at;
    const n = c.blocks.length;
    if (c.shuffle) {
      const idx = new Array<number>(n);
      for (let i = 0; i < n; i++) idx[i] = i;
      for (let i = n - 1; i > 0; i--) {
        const j = Math.floor(Math.random() * (i + 1));
        const t = idx[i]!;
        idx[i] = idx[j]!;
        idx[j] = t;
      }
      for (let i = 0; i < n; i++) o += c.blocks[idx[i]!]!.copy(out, o);
    } else for (let i = 0; i < n; i++) o += c.blocks[i]!.copy(out, o);
    // A kept negative answer outlives revisions that did not touch its name: current serial.
    if (c.serialAt >= 0) {
      c.tail.copy(out, o);
      out.writeUInt32BE(this.index.serial, o + c.serialAt);
      return o + c.tail.length;
    }
    return o + c.tail.copy(out, o);
  }

  /** Our OPT record (11 bytes): root owner, our payload size, no extended rcode or flags. */
  private writeOpt(out: Buffer, o: number): void {
    out[o] = 0;
    out.writeUInt16BE(41, o + 1);
    out.writeUInt16BE(this.ednsSize, o + 3);
    out.writeUInt32BE(0, o + 5);
    out.writeUInt16BE(0, o + 9);
  }

  private done(reply: Buffer, rcode: number, transport: Transport, start: bigint, source?: AnswerSource): Buffer {
    const m = this.metrics;
    if (m) {
      if (source) m.answer(source);
      m.response(rcode, transport, Number(process.hrtime.bigint() - start) / 1e9);
    }
    return reply;
  }
}
