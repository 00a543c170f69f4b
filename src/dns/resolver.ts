// One DNS request in, one response out: precheck, decode, answer from the index, hand
// other names to the forwarder (when there is one), and turn every failure into a DNS
// error rather than an exception.
import type * as packet from 'dns-packet';
import type { Addr } from '../net/ip.js';
import type { AnswerIndex, Resolution } from './answers.js';
import { FLAG_AA, FLAG_RA, type Query, RCODE, type Rcode, buildResponse, headerError, parseQuery, precheck, udpLimit } from './wire.js';

export type Transport = 'udp' | 'tcp';

export interface Forwarder {
  /** Resolves a name outside the internal domain; the reply's ID and question are the client's. */
  forward(q: Query, transport: Transport): Promise<Buffer>;
}

export interface QueryObservation {
  transport: Transport;
  qtype: string;
  rcode: number;
  source: 'internal' | 'forward' | 'refused' | 'malformed';
  seconds: number;
}

export interface ResolverOptions {
  index: AnswerIndex;
  forwarder?: Forwarder;
  /** The EDNS payload size we advertise and the largest UDP reply we send (1232: no IP fragmentation). */
  ednsSize?: number;
  onQuery?: (o: QueryObservation) => void;
}

export class Resolver {
  private readonly index: AnswerIndex;
  private readonly ednsSize: number;
  forwarder: Forwarder | undefined;
  onQuery: ((o: QueryObservation) => void) | undefined;

  constructor(opts: ResolverOptions) {
    this.index = opts.index;
    this.forwarder = opts.forwarder;
    this.ednsSize = opts.ednsSize ?? 1232;
    this.onQuery = opts.onQuery;
  }

  /** Returns the reply, a promise of it (forwarded names), or undefined to stay silent. */
  handle(buf: Buffer, client: Addr, transport: Transport): Buffer | Promise<Buffer | undefined> | undefined {
    const start = process.hrtime.bigint();
    const pre = precheck(buf);
    if (pre.action === 'drop') {
      this.observe(transport, 'NONE', RCODE.FORMERR, 'malformed', start);
      return undefined;
    }
    if (pre.action === 'reply') {
      this.observe(transport, 'NONE', pre.rcode, 'malformed', start);
      return headerError(buf, pre.rcode);
    }
    let q: Query;
    try {
      q = parseQuery(buf);
    } catch {
      this.observe(transport, 'NONE', RCODE.FORMERR, 'malformed', start);
      return headerError(buf, RCODE.FORMERR);
    }
    const maxSize = transport === 'tcp' ? 65535 : udpLimit(q, this.ednsSize);
    if (q.class !== 'IN' && q.class !== 'ANY') return this.reply(q, RCODE.REFUSED, 0, [], maxSize, transport, 'refused', start);

    const res: Resolution = this.index.resolve(q.name, q.type, client);
    switch (res.kind) {
      case 'answer': {
        const answers = res.records.map((r) => ({ name: q.name, type: r.type, class: 'IN', ttl: r.ttl, data: r.data }) as packet.Answer);
        return this.reply(q, RCODE.NOERROR, FLAG_AA, answers, maxSize, transport, 'internal', start);
      }
      case 'nodata':
        return this.reply(q, RCODE.NOERROR, FLAG_AA, [], maxSize, transport, 'internal', start);
      case 'nxdomain':
        return this.reply(q, RCODE.NXDOMAIN, FLAG_AA, [], maxSize, transport, 'internal', start);
      case 'external': {
        // Only clients of our own networks may recurse: vipdns is not an open resolver.
        if (!this.forwarder || !this.index.isKnownClient(client)) {
          return this.reply(q, RCODE.REFUSED, 0, [], maxSize, transport, 'refused', start);
        }
        return this.forwarder.forward(q, transport).then(
          (reply) => {
            this.observe(transport, q.type, reply.length >= 4 ? reply.readUInt16BE(2) & 0xf : RCODE.SERVFAIL, 'forward', start);
            return reply;
          },
          () => this.reply(q, RCODE.SERVFAIL, FLAG_RA, [], maxSize, transport, 'forward', start),
        );
      }
    }
  }

  private reply(
    q: Query,
    rcode: Rcode,
    flags: number,
    answers: packet.Answer[],
    maxSize: number,
    transport: Transport,
    source: QueryObservation['source'],
    start: bigint,
  ): Buffer {
    const ra = this.forwarder ? FLAG_RA : 0;
    const buf = buildResponse(q, { rcode, flags: flags | ra, answers, maxSize, ednsSize: this.ednsSize });
    this.observe(transport, q.type, rcode, source, start);
    return buf;
  }

  private observe(transport: Transport, qtype: string, rcode: number, source: QueryObservation['source'], start: bigint): void {
    if (!this.onQuery) return;
    this.onQuery({ transport, qtype, rcode, source, seconds: Number(process.hrtime.bigint() - start) / 1e9 });
  }
}
