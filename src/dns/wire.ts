// DNS wire format at the trust boundary. Client packets are checked by hand (header counts
// first: DESIGN.md, "DNS wire format"), then a bounded hand parser reads the one question and
// the optional OPT record; it also keeps the question's raw bytes so replies preserve the case.
import { MessageWriter, type Rr, TYPE, typeName } from './encode.js';

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5, BADVERS: 16 } as const;
export type Rcode = (typeof RCODE)[keyof typeof RCODE];

export const QR = 0x8000;
export const RD = 0x0100;
export const CD = 0x0010;
export const FLAG_AA = 0x0400;
export const FLAG_TC = 0x0200;
export const FLAG_RA = 0x0080;

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
  name: string; // as the client spelled it (case preserved), no trailing dot; "." for the root
  lname: string; // lower-cased name: the key for lookups and the cache
  labels: string[];
  qtype: number;
  type: string; // 'A', 'AAAA', ... or 'TYPEn'
  qclass: number;
  class: string; // 'IN', 'ANY' or 'CLASSn'
  qEnd: number; // offset just past the question, which starts at 12
  edns?: { udpSize: number; version: number; do: boolean };
  raw: Buffer;
}

export class ParseError extends Error {
  readonly code = 'DNS_FORMERR';
}

const CLASS_NAMES: Record<number, string> = { 1: 'IN', 3: 'CH', 255: 'ANY' };

/**
 * Parses a prechecked query with a bounded hand parser: one question (no compression pointers:
 * nothing precedes it to point at), then at most one additional record, which must be OPT to
 * count. Throws ParseError on malformed input. Work is linear in the packet, never in the counts.
 */
export function parseQuery(buf: Buffer): Query {
  let o = 12;
  const labels: string[] = [];
  let nameLen = 1;
  for (;;) {
    if (o >= buf.length) throw new ParseError('question name runs past the packet');
    const len = buf[o]!;
    if (len === 0) {
      o++;
      break;
    }
    if (len > 63) throw new ParseError('compressed or oversize label in the question');
    nameLen += len + 1;
    if (nameLen > 255) throw new ParseError('name longer than 255 bytes');
    if (o + 1 + len > buf.length) throw new ParseError('label runs past the packet');
    labels.push(labelText(buf, o + 1, len));
    o += 1 + len;
  }
  if (o + 4 > buf.length) throw new ParseError('question type/class missing');
  const qtype = buf.readUInt16BE(o);
  const qclass = buf.readUInt16BE(o + 2);
  o += 4;
  const name = labels.length === 0 ? '.' : labels.join('.');
  const q: Query = {
    id: buf.readUInt16BE(0),
    flags: buf.readUInt16BE(2),
    name,
    lname: name.toLowerCase(),
    labels,
    qtype,
    type: typeName(qtype),
    qclass,
    class: CLASS_NAMES[qclass] ?? `CLASS${qclass}`,
    qEnd: o,
    raw: buf,
  };
  if (buf.readUInt16BE(10) === 1) {
    // The additional record: skip its owner name (bounded), then read the fixed part.
    let p = o;
    for (let hops = 0; ; hops++) {
      if (p >= buf.length || hops > 128) throw new ParseError('additional record name malformed');
      const len = buf[p]!;
      if (len === 0) {
        p++;
        break;
      }
      if ((len & 0xc0) === 0xc0) {
        p += 2;
        break;
      }
      if (len > 63) throw new ParseError('bad label type');
      p += 1 + len;
    }
    if (p + 10 > buf.length) throw new ParseError('additional record truncated');
    const type = buf.readUInt16BE(p);
    const rdlen = buf.readUInt16BE(p + 8);
    if (p + 10 + rdlen > buf.length) throw new ParseError('additional record data truncated');
    if (type === TYPE.OPT) {
      if (buf[o] !== 0) throw new ParseError('OPT owner must be the root');
      q.edns = { udpSize: buf.readUInt16BE(p + 2), version: buf[p + 5]!, do: (buf.readUInt16BE(p + 6) & 0x8000) !== 0 };
    }
  }
  return q;
}

function labelText(buf: Buffer, start: number, len: number): string {
  let plain = true;
  for (let i = start; i < start + len; i++) {
    const c = buf[i]!;
    if (c <= 0x20 || c >= 0x7f || c === 0x2e || c === 0x5c) {
      plain = false;
      break;
    }
  }
  if (plain) return buf.toString('latin1', start, start + len);
  // Escape like presentation format so "a.b" as one label never equals two labels.
  let s = '';
  for (let i = start; i < start + len; i++) {
    const c = buf[i]!;
    if (c <= 0x20 || c >= 0x7f) s += `\\${String(c).padStart(3, '0')}`;
    else if (c === 0x2e || c === 0x5c) s += `\\${String.fromCharCode(c)}`;
    else s += String.fromCharCode(c);
  }
  return s;
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
  rcode: number; // up to 12 bits: the upper 8 go into OPT (e.g. BADVERS = 16)
  flags: number; // extra header flags: AA, RA
  answers: Rr[];
  authorities?: Rr[];
  additionals?: Rr[];
  /** Largest message the transport may carry (512 plain UDP, the EDNS size, 65535 on TCP). */
  maxSize: number;
  ednsSize: number; // the payload size we advertise
}

/** A reply with the client's ID, flags and question (its spelling kept), compressed. */
export function buildResponse(q: Query, r: ResponseParts): Buffer {
  const flags = QR | (q.flags & (RD | CD)) | r.flags | (r.rcode & 0xf);
  const auth = r.authorities ?? [];
  const add = r.additionals ?? [];
  const w = new MessageWriter(512);
  w.header(q.id, flags, 1, r.answers.length, auth.length, add.length + (q.edns ? 1 : 0));
  w.rawQuestion(q.raw, 12, q.qEnd, q.labels);
  for (const rr of r.answers) w.rr(rr);
  for (const rr of auth) w.rr(rr);
  for (const rr of add) w.rr(rr);
  if (q.edns) w.opt(r.ednsSize, r.rcode >> 4);
  if (w.off <= r.maxSize) return w.finish();
  // Too big for the transport: say so with TC and let the client retry over TCP.
  return truncatedResponse(q, flags | FLAG_TC, r.ednsSize, r.rcode >> 4);
}

export function truncatedResponse(q: Query, flags: number, ednsSize: number, extRcode = 0): Buffer {
  const w = new MessageWriter(q.qEnd + 16);
  w.header(q.id, flags | FLAG_TC, 1, 0, 0, q.edns ? 1 : 0);
  w.rawQuestion(q.raw, 12, q.qEnd, q.labels);
  if (q.edns) w.opt(ednsSize, extRcode);
  return w.finish();
}

/** The largest reply a UDP client accepts: 512 without EDNS, else its size within [512, our cap]. */
export function udpLimit(q: Query, cap: number): number {
  if (!q.edns) return 512;
  return Math.max(512, Math.min(q.edns.udpSize, cap));
}

export interface WalkedRecord {
  section: 0 | 1 | 2; // answer, authority, additional
  type: number;
  start: number; // first byte of the owner name
  ttlOffset: number;
  ttl: number;
  rdStart: number;
  end: number; // one past the record
}

export interface Walked {
  id: number;
  flags: number;
  rcode: number; // header rcode only (4 bits)
  qEnd: number;
  records: WalkedRecord[];
}

/** Skips a (possibly compressed) name; bounded by the packet, never follows pointers. */
function skipName(buf: Buffer, o: number): number {
  for (;;) {
    if (o >= buf.length) throw new ParseError('name runs past the packet');
    const len = buf[o]!;
    if (len === 0) return o + 1;
    if ((len & 0xc0) === 0xc0) {
      if (o + 2 > buf.length) throw new ParseError('pointer runs past the packet');
      return o + 2;
    }
    if (len > 63) throw new ParseError('bad label type');
    o += 1 + len;
  }
}

/**
 * Walks a response (an upstream's) to find each record's TTL and bounds, for the cache: one pass,
 * linear in the packet. Counts beyond the data are a parse error, not an allocation.
 */
export function walkMessage(buf: Buffer): Walked {
  if (buf.length < 12) throw new ParseError('short message');
  const qd = buf.readUInt16BE(4);
  if (qd !== 1) throw new ParseError('expected one question');
  const counts = [buf.readUInt16BE(6), buf.readUInt16BE(8), buf.readUInt16BE(10)] as const;
  let o = skipName(buf, 12) + 4;
  if (o > buf.length) throw new ParseError('question truncated');
  const qEnd = o;
  const records: WalkedRecord[] = [];
  for (let section = 0 as 0 | 1 | 2; section < 3; section++) {
    for (let i = 0; i < counts[section]; i++) {
      const start = o;
      o = skipName(buf, o);
      if (o + 10 > buf.length) throw new ParseError('record truncated');
      const type = buf.readUInt16BE(o);
      const ttl = buf.readUInt32BE(o + 4);
      const rdlen = buf.readUInt16BE(o + 8);
      const rdStart = o + 10;
      if (rdStart + rdlen > buf.length) throw new ParseError('record data truncated');
      records.push({ section, type, start, ttlOffset: o + 4, ttl, rdStart, end: rdStart + rdlen });
      o = rdStart + rdlen;
    }
    if (section === 2) break;
  }
  return { id: buf.readUInt16BE(0), flags: buf.readUInt16BE(2), rcode: buf.readUInt16BE(2) & 0xf, qEnd, records };
}

/** True when two questions (both at offset 12) are the same name (ASCII case-insensitive), type and class. */
export function sameQuestion(a: Buffer, aEnd: number, b: Buffer, bEnd: number): boolean {
  if (aEnd !== bEnd || aEnd > a.length || bEnd > b.length) return false;
  const nameEnd = aEnd - 4;
  for (let i = 12; i < nameEnd; i++) {
    let x = a[i]!;
    let y = b[i]!;
    if (x >= 0x41 && x <= 0x5a) x |= 0x20;
    if (y >= 0x41 && y <= 0x5a) y |= 0x20;
    if (x !== y) return false;
  }
  return a.readUInt32BE(nameEnd) === b.readUInt32BE(nameEnd);
}
