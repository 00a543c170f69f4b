// Turning an upstream's reply into the client's: the upstream's OPT record is dropped when the
// reply is stored (it describes the upstream hop, not ours); the client's ID, RD bit and question
// spelling are patched in, TTLs are aged, our OPT is appended when the client sent one, and a
// reply over the client's limit becomes an empty one with TC set.
import { ParseError, type Query, RD, type Walked, truncatedResponse, walkMessage } from '../wire.js';
import { TYPE } from '../encode.js';

export interface StoredReply {
  body: Buffer; // the upstream reply without OPT, question as the upstream echoed it
  qEnd: number;
  ttlOffsets: number[];
  rcode: number;
  walked: Walked;
}

export function storeUpstreamReply(wire: Buffer): StoredReply {
  const walked = walkMessage(wire);
  const opt = walked.records.filter((r) => r.type === TYPE.OPT && r.section === 2);
  let body = wire;
  let records = walked.records;
  if (opt.length > 0) {
    if (opt.length > 1) throw new ParseError('more than one OPT');
    const o = opt[0]!;
    // Records after the OPT shift left; pointers only point backwards, so they stay valid unless
    // they point into the moved part, which no sane server does: accept that edge.
    body = Buffer.concat([wire.subarray(0, o.start), wire.subarray(o.end)]);
    body.writeUInt16BE(body.readUInt16BE(10) - 1, 10);
    const shift = o.end - o.start;
    records = walked.records.filter((r) => r !== o).map((r) => (r.start > o.start ? { ...r, start: r.start - shift, ttlOffset: r.ttlOffset - shift, rdStart: r.rdStart - shift, end: r.end - shift } : r));
  } else {
    body = Buffer.from(wire);
  }
  records = negativeSoaTtl(body, walked.rcode, records);
  return { body, qEnd: walked.qEnd, ttlOffsets: records.map((r) => r.ttlOffset), rcode: walked.rcode, walked: { ...walked, records } };
}

const RCODE_NXDOMAIN = 3;

/**
 * RFC 2308 §3: in a negative answer (NXDOMAIN, or NOERROR without answers) the SOA's TTL is
 * min(its TTL, its MINIMUM field), so a client sees — and a cache hit ages — the negative TTL,
 * not the zone's SOA TTL.
 */
function negativeSoaTtl(body: Buffer, rcode: number, records: Walked['records']): Walked['records'] {
  if (rcode !== RCODE_NXDOMAIN && (rcode !== 0 || records.some((r) => r.section === 0))) return records;
  return records.map((r) => {
    if (r.section !== 1 || r.type !== TYPE.SOA || r.end - 4 < r.rdStart) return r;
    const ttl = Math.min(r.ttl, body.readUInt32BE(r.end - 4));
    if (ttl === r.ttl) return r;
    body.writeUInt32BE(ttl, r.ttlOffset);
    return { ...r, ttl };
  });
}

export interface ClientReplyOptions {
  ageSeconds: number; // subtract from every TTL (cache hits)
  fixedTtl?: number; // serve-stale: every TTL set to this
  maxSize: number;
  ednsSize: number;
}

export function toClient(s: StoredReply, q: Query, o: ClientReplyOptions): Buffer {
  const size = s.body.length + (q.edns ? 11 : 0);
  const flags = (s.body.readUInt16BE(2) & ~RD) | (q.flags & RD);
  if (size > o.maxSize) return truncatedResponse(q, flags, o.ednsSize);
  const out = Buffer.allocUnsafe(size);
  s.body.copy(out);
  out.writeUInt16BE(q.id, 0);
  out.writeUInt16BE(flags, 2);
  // Same question modulo case (checked on receipt): the client's spelling goes back.
  if (q.qEnd === s.qEnd) q.raw.copy(out, 12, 12, q.qEnd);
  const age = Math.floor(o.ageSeconds);
  if (age > 0 || o.fixedTtl !== undefined) {
    for (const off of s.ttlOffsets) {
      const ttl = o.fixedTtl ?? Math.max(0, out.readUInt32BE(off) - age);
      out.writeUInt32BE(ttl, off);
    }
  }
  if (q.edns) {
    out.writeUInt16BE(out.readUInt16BE(10) + 1, 10);
    let p = s.body.length;
    out[p++] = 0;
    out.writeUInt16BE(TYPE.OPT, p);
    out.writeUInt16BE(o.ednsSize, p + 2);
    out.writeUInt32BE(0, p + 4);
    out.writeUInt16BE(0, p + 8);
  }
  return out;
}
