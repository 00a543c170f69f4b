// A small DNS message writer with name compression (RFC 1035 4.1.4) for the record types we
// emit: A, AAAA, PTR, SRV, SOA and OPT. dns-packet's encoder does not compress, and SRV/PTR
// answers repeat the internal domain in every record, so answers would be needlessly large.
import { isIPv4 } from 'node:net';
import { canonicalIp, parseIp } from '../net/ip.js';

export const TYPE = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33, OPT: 41, ANY: 255 } as const;
const TYPE_NAMES = new Map<number, string>(Object.entries(TYPE).map(([k, v]) => [v, k]));

export function typeName(n: number): string {
  return TYPE_NAMES.get(n) ?? `TYPE${n}`;
}

export interface SrvData {
  priority: number;
  weight: number;
  port: number;
  target: string;
}

export interface SoaData {
  mname: string;
  rname: string;
  serial: number;
  refresh: number;
  retry: number;
  expire: number;
  minimum: number;
}

/** One resource record to write; `name` undefined means "the question name" (a pointer to offset 12). */
export type Rr =
  | { name?: string; type: 'A' | 'AAAA'; ttl: number; data: string }
  | { name?: string; type: 'PTR'; ttl: number; data: string }
  | { name?: string; type: 'SRV'; ttl: number; data: SrvData }
  | { name?: string; type: 'SOA'; ttl: number; data: SoaData };

export class MessageWriter {
  buf: Buffer;
  off = 0;
  // lower-cased name suffix -> offset where it was written, for compression pointers
  private readonly names = new Map<string, number>();

  constructor(size = 4096) {
    this.buf = Buffer.allocUnsafe(size);
  }

  /** Starts a new message in the same buffer (a writer kept for many messages allocates nothing). */
  reset(): void {
    this.off = 0;
    this.names.clear();
  }

  private ensure(n: number): void {
    if (this.off + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.off + n));
    this.buf.copy(next, 0, 0, this.off);
    this.buf = next;
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.off++] = v & 0xff;
  }

  u16(v: number): void {
    this.ensure(2);
    this.buf.writeUInt16BE(v & 0xffff, this.off);
    this.off += 2;
  }

  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32BE(v >>> 0, this.off);
    this.off += 4;
  }

  bytes(b: Buffer | Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.off);
    this.off += b.length;
  }

  header(id: number, flags: number, qd: number, an: number, ns: number, ar: number): void {
    this.u16(id);
    this.u16(flags);
    this.u16(qd);
    this.u16(an);
    this.u16(ns);
    this.u16(ar);
  }

  /** Copies a question verbatim (keeps the client's case) and remembers its name for pointers. */
  rawQuestion(src: Buffer, start: number, end: number, labels: readonly string[]): void {
    const at = this.off;
    this.bytes(src.subarray(start, end));
    // Offsets come from the raw length bytes: an escaped label's text is longer than its bytes.
    let o = at;
    for (let i = 0; i < labels.length; i++) {
      const key = labels.slice(i).join('.').toLowerCase();
      if (!this.names.has(key) && o < 0x3fff) this.names.set(key, o);
      o += 1 + src[start + (o - at)]!;
    }
  }

  /** Writes a name, compressing against every name written so far (unless told not to). */
  name(text: string, compress = true): void {
    const trimmed = text.endsWith('.') ? text.slice(0, -1) : text;
    if (trimmed === '') {
      this.u8(0);
      return;
    }
    const labels = trimmed.split('.');
    for (let i = 0; i < labels.length; i++) {
      const key = labels.slice(i).join('.').toLowerCase();
      const ptr = this.names.get(key);
      if (ptr !== undefined && compress) {
        this.u16(0xc000 | ptr);
        return;
      }
      if (this.off < 0x3fff) this.names.set(key, this.off);
      const label = Buffer.from(labels[i]!, 'latin1');
      if (label.length === 0 || label.length > 63) throw new RangeError(`bad label in "${text}"`);
      this.u8(label.length);
      this.bytes(label);
    }
    this.u8(0);
  }

  /** An answer whose owner is the question name: a 2-byte pointer to offset 12. */
  rr(r: Rr): void {
    if (r.name === undefined) this.u16(0xc00c);
    else this.name(r.name);
    this.u16(TYPE[r.type]);
    this.u16(1); // IN
    this.u32(r.ttl);
    const lenAt = this.off;
    this.u16(0);
    switch (r.type) {
      case 'A':
      case 'AAAA':
        this.ip(r.data);
        break;
      case 'PTR':
        this.name(r.data);
        break;
      case 'SRV':
        this.u16(r.data.priority);
        this.u16(r.data.weight);
        this.u16(r.data.port);
        this.name(r.data.target, false); // RFC 2782: the target is never compressed
        break;
      case 'SOA':
        this.name(r.data.mname);
        this.name(r.data.rname);
        this.u32(r.data.serial);
        this.u32(r.data.refresh);
        this.u32(r.data.retry);
        this.u32(r.data.expire);
        this.u32(r.data.minimum);
        break;
    }
    this.buf.writeUInt16BE(this.off - lenAt - 2, lenAt);
  }

  /**
   * An address's bytes, parsed straight into the message: the catalog's addresses are canonical
   * text (IPv4 dotted quads are the common case). A cache of Buffers per address cost ~150 B
   * each, up to 100,000 of them, and a Buffer per miss.
   */
  ip(ip: string): void {
    if (isIPv4(ip)) {
      this.ensure(4);
      let v = 0;
      for (let i = 0; i < ip.length; i++) {
        const c = ip.charCodeAt(i);
        if (c === 0x2e) {
          this.buf[this.off++] = v;
          v = 0;
        } else v = v * 10 + (c - 0x30);
      }
      this.buf[this.off++] = v;
      return;
    }
    const v = parseIp(canonicalIp(ip)).value;
    this.ensure(16);
    for (let i = 0; i < 16; i++) this.buf[this.off++] = Number((v >> BigInt(8 * (15 - i))) & 0xffn);
  }

  /** The EDNS0 OPT pseudo-record: root owner, class = our UDP payload size. */
  opt(udpSize: number, extRcode = 0, doBit = false): void {
    this.u8(0);
    this.u16(TYPE.OPT);
    this.u16(udpSize);
    this.u8(extRcode);
    this.u8(0); // version
    this.u16(doBit ? 0x8000 : 0);
    this.u16(0);
  }

  finish(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.off));
  }
}

