// Pure netlink framing: nlmsghdr, attributes (TLVs) and NLMSG_ERROR/DONE payloads.
// Layouts per linux/netlink.h; all integers are host order (little-endian on
// every platform we run on) except where an attribute says network order.
import { NetlinkError, NetlinkProtocolError } from './errors.js';

export const NLMSG_HDRLEN = 16;
export const NLA_HDRLEN = 4;

export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLMSG_OVERRUN = 4;

export const NLM_F_REQUEST = 0x01;
export const NLM_F_MULTI = 0x02;
export const NLM_F_ACK = 0x04;
export const NLM_F_ECHO = 0x08;
export const NLM_F_DUMP_INTR = 0x10;
export const NLM_F_ROOT = 0x100;
export const NLM_F_MATCH = 0x200;
export const NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH;
// flags on NLMSG_ERROR replies
export const NLM_F_CAPPED = 0x100;
export const NLM_F_ACK_TLVS = 0x200;

export const NLA_F_NESTED = 0x8000;
export const NLA_F_NET_BYTEORDER = 0x4000;
export const NLA_TYPE_MASK = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xffff;

export const NLMSGERR_ATTR_MSG = 1;

export const align4 = (n: number): number => (n + 3) & ~3;

export interface NlMsgHeader {
  type: number;
  flags: number;
  seq: number;
  pid: number;
}

export interface NlMsg extends NlMsgHeader {
  /** bytes after the 16-byte header, up to nlmsg_len (a view, not a copy) */
  payload: Buffer;
}

/** Frames one message: header + payload, padded to 4 bytes. */
export function encodeNlMsg(h: NlMsgHeader, payload: Uint8Array): Buffer {
  const len = NLMSG_HDRLEN + payload.length;
  const buf = Buffer.alloc(align4(len));
  buf.writeUInt32LE(len, 0);
  buf.writeUInt16LE(h.type, 4);
  buf.writeUInt16LE(h.flags, 6);
  buf.writeUInt32LE(h.seq >>> 0, 8);
  buf.writeUInt32LE(h.pid >>> 0, 12);
  buf.set(payload, NLMSG_HDRLEN);
  return buf;
}

/** Splits one received datagram into its messages (a datagram may carry many). */
export function parseNlMsgs(buf: Buffer): NlMsg[] {
  const out: NlMsg[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > buf.length) {
      throw new NetlinkProtocolError(`bad nlmsg_len ${len} at offset ${off} of ${buf.length}`);
    }
    out.push({
      type: buf.readUInt16LE(off + 4),
      flags: buf.readUInt16LE(off + 6),
      seq: buf.readUInt32LE(off + 8),
      pid: buf.readUInt32LE(off + 12),
      payload: buf.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += align4(len);
  }
  return out;
}

// ---- attributes ----

export interface Attr {
  /** type without the NESTED / NET_BYTEORDER flag bits */
  type: number;
  nested: boolean;
  value: Buffer;
}

/** Parses a run of TLVs. Unknown types are kept: the caller decides what matters. */
export function parseAttrs(buf: Buffer): Attr[] {
  const out: Attr[] = [];
  let off = 0;
  while (off + NLA_HDRLEN <= buf.length) {
    const len = buf.readUInt16LE(off);
    const rawType = buf.readUInt16LE(off + 2);
    if (len < NLA_HDRLEN || off + len > buf.length) {
      throw new NetlinkProtocolError(`bad nla_len ${len} at offset ${off} of ${buf.length}`);
    }
    out.push({
      type: rawType & NLA_TYPE_MASK,
      nested: (rawType & NLA_F_NESTED) !== 0,
      value: buf.subarray(off + NLA_HDRLEN, off + len),
    });
    off += align4(len);
  }
  return out;
}

/** Last-wins map of attributes by type: the usual way to read a flat attribute set. */
export function attrMap(buf: Buffer): Map<number, Buffer> {
  const m = new Map<number, Buffer>();
  for (const a of parseAttrs(buf)) m.set(a.type, a.value);
  return m;
}

function need(v: Buffer, n: number, what: string): void {
  if (v.length < n) throw new NetlinkProtocolError(`${what}: attribute has ${v.length} bytes, need ${n}`);
}
export const attrU8 = (v: Buffer): number => (need(v, 1, 'u8'), v.readUInt8(0));
export const attrU16 = (v: Buffer): number => (need(v, 2, 'u16'), v.readUInt16LE(0));
export const attrU32 = (v: Buffer): number => (need(v, 4, 'u32'), v.readUInt32LE(0));
export const attrBe16 = (v: Buffer): number => (need(v, 2, 'be16'), v.readUInt16BE(0));
export const attrBe32 = (v: Buffer): number => (need(v, 4, 'be32'), v.readUInt32BE(0));
/** u64 as a JS number; counters above 2^53 lose precision, which metrics tolerate. */
export const attrU64 = (v: Buffer): number => (need(v, 8, 'u64'), Number(v.readBigUInt64LE(0)));
/** A counter the kernel sends as u32 or u64 depending on the attribute set. */
export const attrUint = (v: Buffer): number => (v.length >= 8 ? attrU64(v) : attrU32(v));
export function attrString(v: Buffer): string {
  const nul = v.indexOf(0);
  return v.toString('utf8', 0, nul < 0 ? v.length : nul);
}

/**
 * Builds a TLV run. Nesting is a stack: begin() reserves a header that end()
 * patches with the final length, so callers never pre-compute sizes.
 */
export class AttrWriter {
  private buf = Buffer.alloc(256);
  private len = 0;
  private readonly open: number[] = [];

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }

  /** Appends one attribute; the value is zero-padded to 4 bytes. */
  put(type: number, value: Uint8Array): this {
    const len = NLA_HDRLEN + value.length;
    this.reserve(align4(len));
    this.buf.writeUInt16LE(len, this.len);
    this.buf.writeUInt16LE(type, this.len + 2);
    this.buf.set(value, this.len + NLA_HDRLEN);
    this.buf.fill(0, this.len + len, this.len + align4(len));
    this.len += align4(len);
    return this;
  }

  u8(type: number, v: number): this {
    return this.put(type, Uint8Array.of(v & 0xff));
  }
  u16(type: number, v: number): this {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(v, 0);
    return this.put(type, b);
  }
  be16(type: number, v: number): this {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(v, 0);
    return this.put(type, b);
  }
  u32(type: number, v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0, 0);
    return this.put(type, b);
  }
  be32(type: number, v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v >>> 0, 0);
    return this.put(type, b);
  }
  /** NUL-terminated string, as the kernel's NLA_NUL_STRING / NLA_STRING policies expect. */
  string(type: number, s: string): this {
    return this.put(type, Buffer.from(`${s}\0`, 'utf8'));
  }

  /** Opens a nested attribute (NLA_F_NESTED set, as the kernel prefers). */
  begin(type: number): this {
    this.reserve(NLA_HDRLEN);
    this.open.push(this.len);
    this.buf.writeUInt16LE(type | NLA_F_NESTED, this.len + 2);
    this.len += NLA_HDRLEN;
    return this;
  }

  end(): this {
    const start = this.open.pop();
    if (start === undefined) throw new Error('AttrWriter.end() without begin()');
    this.buf.writeUInt16LE(this.len - start, start);
    return this;
  }

  nest(type: number, fill: (w: this) => void): this {
    this.begin(type);
    fill(this);
    return this.end();
  }

  finish(): Buffer {
    if (this.open.length) throw new Error('AttrWriter.finish() with an unclosed nest');
    return this.buf.subarray(0, this.len);
  }
}

// ---- NLMSG_ERROR / NLMSG_DONE ----

export interface ErrorPayload {
  /** 0 for an ack, else a positive errno */
  errno: number;
  /** header of the request this answers */
  request: NlMsgHeader;
  /** NLMSGERR_ATTR_MSG when the kernel attached extended-ack TLVs */
  kernelMessage?: string;
}

/** Decodes struct nlmsgerr (+ extended-ack TLVs when NLM_F_ACK_TLVS is set). */
export function parseErrorPayload(msg: NlMsg): ErrorPayload {
  const p = msg.payload;
  if (p.length < 4 + NLMSG_HDRLEN) throw new NetlinkProtocolError(`short NLMSG_ERROR (${p.length} bytes)`);
  const err = p.readInt32LE(0);
  const origLen = p.readUInt32LE(4);
  const request: NlMsgHeader = {
    type: p.readUInt16LE(8),
    flags: p.readUInt16LE(10),
    seq: p.readUInt32LE(12),
    pid: p.readUInt32LE(16),
  };
  const out: ErrorPayload = { errno: err === 0 ? 0 : -err, request };
  if (msg.flags & NLM_F_ACK_TLVS) {
    // The echoed request is cut to its header when the reply is CAPPED.
    const echoed = msg.flags & NLM_F_CAPPED ? NLMSG_HDRLEN : origLen;
    const tlvStart = 4 + align4(echoed);
    if (tlvStart < p.length) {
      const m = attrMap(p.subarray(tlvStart)).get(NLMSGERR_ATTR_MSG);
      if (m) out.kernelMessage = attrString(m);
    }
  }
  return out;
}

/** NLMSG_DONE carries an int: 0, or a negative errno if the dump failed midway. */
export function parseDoneErrno(msg: NlMsg): number {
  return msg.payload.length >= 4 ? 0 - msg.payload.readInt32LE(0) || 0 : 0;
}

export function errorFromPayload(e: ErrorPayload, op: string): NetlinkError {
  return new NetlinkError(e.errno, e.kernelMessage === undefined ? { op } : { op, kernelMessage: e.kernelMessage });
}
