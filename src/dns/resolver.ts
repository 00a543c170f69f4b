// One DNS request in, one response out: precheck, parse, answer internal names from
// precompiled wire answers (only ID, flags and the question's spelling patched per query;
// dnsrr answers permute their precompiled record blocks), hand other names to the forwarder
// for known clients, and turn every failure into a DNS error rather than an exception.
import { type Addr, tryParseIp } from '../net/ip.js';
import type { AnswerIndex, Resolution } from './answers.js';
import { MessageWriter, type Rr } from './encode.js';
import type { ForwardResult } from './forward/forwarder.js';
import type { AnswerSource, DnsMetrics } from './metrics.js';
import { CD, FLAG_AA, FLAG_RA, ParseError, QR, type Query, RCODE, RD, buildResponse, headerError, parseQuery, precheck, truncatedResponse, udpLimit } from './wire.js';

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
  scope: string;
  known: boolean;
  network: string; // metrics label: its network's name, 'loopback', 'multiple' or 'none'
}

/** An internal answer in wire form, minus header and question. */
interface Compiled {
  rcode: number;
  blocks: Buffer[]; // one per answer record, each self-contained when `shuffle`
  blocksLen: number;
  tail: Buffer; // authority + additional records
  an: number;
  ns: number;
  ar: number;
  shuffle: boolean;
}

const MAX_COMPILED = 100_000;
const MAX_CLIENTS = 10_000;

export class Resolver {
  private readonly index: AnswerIndex;
  private readonly ednsSize: number;
  forwarder: Forwarder | undefined;
  metrics: DnsMetrics | undefined;
  private compiled = new Map<string, Compiled>();
  private clients = new Map<string, ClientInfo>();
  private generation = -1;

  constructor(opts: ResolverOptions) {
    this.index = opts.index;
    this.forwarder = opts.forwarder;
    this.ednsSize = opts.ednsSize ?? 1232;
    this.metrics = opts.metrics;
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
    if (this.generation !== this.index.generation) {
      this.generation = this.index.generation;
      this.compiled = new Map();
      this.clients = new Map();
    }
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

    const ck = `${q.lname}\0${q.qtype}\0${info.scope}`;
    let c = this.compiled.get(ck);
    if (!c) {
      const res: Resolution = this.index.resolve(q.name, q.type, info.addr);
      if (res.kind !== 'external') {
        c = this.compile(q, res);
        // Shuffled records that name each other (SRV + glue) cannot be permuted as blocks: compile per query.
        if (!(res.kind === 'answer' && res.shuffle && !c.shuffle)) {
          if (this.compiled.size >= MAX_COMPILED) this.compiled.clear();
          this.compiled.set(ck, c);
        }
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

  private client(client: Addr | string): ClientInfo | undefined {
    const k = typeof client === 'string' ? client : `${client.family}/${client.value}`;
    let info = this.clients.get(k);
    if (info) return info;
    const addr = typeof client === 'string' ? tryParseIp(client) : client;
    if (!addr) return undefined;
    info = { addr, scope: this.index.scopeKey(addr), known: this.index.isKnownClient(addr), network: this.index.networkLabel(addr) };
    if (this.clients.size >= MAX_CLIENTS) this.clients.clear();
    this.clients.set(k, info);
    return info;
  }

  private compile(q: Query, res: Exclude<Resolution, { kind: 'external' }>): Compiled {
    const answers: Rr[] = res.kind === 'answer' ? res.records : [];
    const soa = res.kind === 'answer' ? undefined : this.index.soa(res.ttl);
    const auth: Rr[] = soa ? [soa] : [];
    const add: Rr[] = res.kind === 'answer' ? res.additionals : [];
    const w = new MessageWriter(512);
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
    for (const r of add) w.rr(r);
    return {
      rcode: res.kind === 'nxdomain' ? RCODE.NXDOMAIN : RCODE.NOERROR,
      blocks,
      blocksLen: tailAt - q.qEnd,
      tail: Buffer.from(w.buf.subarray(tailAt, w.off)),
      an: answers.length,
      ns: auth.length,
      ar: add.length,
      shuffle: res.kind === 'answer' && res.shuffle && selfContained && blocks.length > 1,
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
    let o = q.qEnd;
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
    o += c.tail.copy(out, o);
    if (q.edns) {
      out[o] = 0;
      out.writeUInt16BE(41, o + 1);
      out.writeUInt16BE(this.ednsSize, o + 3);
      out.writeUInt32BE(0, o + 5);
      out.writeUInt16BE(0, o + 9);
    }
    return out;
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
