// DNS wire format at the trust boundary. Client packets are checked by hand before
// dns-packet decodes them: dns-packet allocates arrays sized by the header counts, so a
// hostile header must be rejected first (DESIGN.md, "DNS wire format").
import * as packet from 'dns-packet';

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
export type Rcode = (typeof RCODE)[keyof typeof RCODE];

const QR = 0x8000;
const RD = 0x0100;
const CD = 0x0010;
export const FLAG_AA = packet.AUTHORITATIVE_ANSWER;
export const FLAG_TC = packet.TRUNCATED_RESPONSE;
export const FLAG_RA = packet.RECURSION_AVAILABLE;

/** What to do with a packet before decoding it. */
export type Precheck = { action: 'decode' } | { action: 'drop'; reason: string } | { action: 'reply'; rcode: Rcode; reason: string };

export function precheck(buf: Buffer): Precheck {
  if (buf.length < 12) return { action: 'drop', reason: 'short' };
  const flags = buf.readUInt16BE(2);
  // Never answer a response: two servers bouncing errors at each other is an amplifier.
  if (flags & QR) return { action: 'drop', reason: 'response' };
  const opcode = (flags >> 11) & 0xf;
  if (opcode !== 0) return { action: 'reply', rcode: RCODE.NOTIMP, reason: 'opcode' };
  const qd = buf.readUInt16BE(4);
  const an = buf.readUInt16BE(6);
  const ns = buf.readUInt16BE(8);
  const ar = buf.readUInt16BE(10);
  if (qd !== 1 || an !== 0 || ns !== 0 || ar > 1) return { action: 'reply', rcode: RCODE.FORMERR, reason: 'counts' };
  if (buf.length > 65535) return { action: 'drop', reason: 'oversize' };
  return { action: 'decode' };
}

export interface Query {
  id: number;
  flags: number; // raw header flags of the request
  name: string; // as the client spelled it (case preserved)
  type: string; // 'A', 'AAAA', ... or 'UNKNOWN_n'
  class: string;
  edns?: { udpSize: number; version: number; do: boolean };
  raw: Buffer;
}

/** Decodes a prechecked query; throws on malformed input. */
export function parseQuery(buf: Buffer): Query {
  const p = packet.decode(buf);
  const q = p.questions?.[0];
  if (!q) throw new Error('no question');
  const query: Query = { id: p.id ?? 0, flags: buf.readUInt16BE(2), name: q.name, type: q.type, class: q.class ?? 'IN', raw: buf };
  const opt = p.additionals?.find((a) => a.type === 'OPT') as packet.OptAnswer | undefined;
  if (opt) {
    const flags = opt.flags ?? 0;
    query.edns = { udpSize: opt.udpPayloadSize ?? 512, version: opt.ednsVersion ?? 0, do: (flags & packet.DNSSEC_OK) !== 0 };
  }
  return query;
}

/** A header-only error reply to a request that could not be decoded (question omitted). */
export function headerError(buf: Buffer, rcode: Rcode): Buffer {
  const out = Buffer.alloc(12);
  buf.copy(out, 0, 0, 2);
  const reqFlags = buf.readUInt16BE(2);
  out.writeUInt16BE(QR | (reqFlags & (0x7800 | RD | CD)) | rcode, 2);
  return out;
}

export interface ResponseParts {
  rcode: Rcode;
  flags: number; // extra header flags: AA, RA
  answers: packet.Answer[];
  authorities?: packet.Answer[];
  additionals?: packet.Answer[];
  /** Largest message the transport may carry (512 plain UDP, the EDNS size, 65535 on TCP). */
  maxSize: number;
  ednsSize: number; // the payload size we advertise
}

export function buildResponse(q: Query, r: ResponseParts): Buffer {
  const flags = (q.flags & (RD | CD)) | r.flags | r.rcode;
  const additionals: packet.Answer[] = [...(r.additionals ?? [])];
  if (q.edns) {
    const opt: packet.OptAnswer = { type: 'OPT', name: '.', udpPayloadSize: r.ednsSize, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] };
    additionals.push(opt);
  }
  const msg: packet.Packet = {
    id: q.id,
    type: 'response',
    flags,
    questions: [{ name: q.name, type: q.type as packet.RecordType, class: q.class as packet.RecordClass }],
    answers: r.answers,
    authorities: r.authorities ?? [],
    additionals,
  };
  const buf = packet.encode(msg);
  if (buf.length <= r.maxSize) return buf;
  // Too big for the transport: say so with TC and let the client retry over TCP.
  msg.flags = flags | FLAG_TC;
  msg.answers = [];
  msg.authorities = [];
  msg.additionals = additionals.filter((a) => a.type === 'OPT');
  return packet.encode(msg);
}

/** The largest reply a UDP client accepts: 512 without EDNS, else its size within [512, our cap]. */
export function udpLimit(q: Query, cap: number): number {
  if (!q.edns) return 512;
  return Math.max(512, Math.min(q.edns.udpSize, cap));
}
