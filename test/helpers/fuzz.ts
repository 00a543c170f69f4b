// Hostile DNS packets, reproducible from a seed: random bytes, truncations, bit flips of valid
// queries, absurd header counts, compression-pointer loops, oversize labels and names, bad OPT
// records. Shared by the CI fuzz test and bench/dns-fuzz (the full million).
import * as net from 'node:net';
import * as packet from 'dns-packet';

export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 1;
  }
  next(): number {
    // xorshift32: fast and good enough to pick mutations
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
  int(n: number): number {
    return this.next() % n;
  }
}

const NAMES = ['web', 'tasks.web', 'api.front', '_http._tcp.web', 'web.front.vipdns.internal', 'x.example', '2.9.0.10.in-addr.arpa', 'nope', 'a.b.c.d.e.f'];
const TYPES = ['A', 'AAAA', 'SRV', 'PTR', 'ANY', 'TXT', 'MX'] as packet.RecordType[];

function validQuery(r: Rng): Buffer {
  return packet.encode({
    id: r.int(65536),
    type: 'query',
    flags: packet.RECURSION_DESIRED,
    questions: [{ name: NAMES[r.int(NAMES.length)]!, type: TYPES[r.int(TYPES.length)]!, class: 'IN' }],
    additionals: r.int(2) ? [{ type: 'OPT', name: '.', udpPayloadSize: r.int(65536), extendedRcode: 0, ednsVersion: r.int(4) === 0 ? 1 : 0, flags: 0, flag_do: false, options: [] }] : [],
  });
}

const SEEDS_CACHE: Buffer[] = [];

/** One hostile packet; `kind` cycles through the mutation families. */
export function hostilePacket(r: Rng): Buffer {
  if (SEEDS_CACHE.length < 256) SEEDS_CACHE.push(validQuery(r));
  const base = SEEDS_CACHE[r.int(SEEDS_CACHE.length)]!;
  const header = (qd: number, an: number, ns: number, ar: number, flags = 0): Buffer => {
    const h = Buffer.alloc(12);
    h.writeUInt16BE(r.int(65536), 0);
    h.writeUInt16BE(flags, 2);
    h.writeUInt16BE(qd, 4);
    h.writeUInt16BE(an, 6);
    h.writeUInt16BE(ns, 8);
    h.writeUInt16BE(ar, 10);
    return h;
  };
  switch (r.int(10)) {
    case 0: {
      const b = Buffer.allocUnsafe(r.int(600));
      for (let i = 0; i < b.length; i++) b[i] = r.int(256);
      return b;
    }
    case 1:
      return base.subarray(0, r.int(base.length + 1));
    case 2: {
      const b = Buffer.from(base);
      for (let n = 1 + r.int(4); n > 0; n--) {
        const at = r.int(b.length);
        b[at] = b[at]! ^ (1 << r.int(8));
      }
      return b;
    }
    case 3: {
      const b = Buffer.from(base);
      b.writeUInt16BE(r.int(2) ? 65535 : r.int(65536), 4 + 2 * r.int(4));
      return b;
    }
    case 4:
      // A pointer loop in the question (to itself, or two pointers at each other).
      return Buffer.concat([header(1, 0, 0, 0), r.int(2) ? Buffer.from([0xc0, 12, 0, 1, 0, 1]) : Buffer.from([0xc0, 14, 0xc0, 12, 0, 1, 0, 1])]);
    case 5: {
      // Oversize labels (64-255: the reserved 01/10 label types too) and names over 255 bytes.
      const parts: number[] = [];
      if (r.int(2)) {
        const len = 64 + r.int(192);
        parts.push(len, ...Array.from({ length: Math.min(len, 300) }, () => 0x61));
      } else for (let i = 0; i < 6; i++) parts.push(63, ...Array.from({ length: 63 }, () => 0x62));
      return Buffer.concat([header(1, 0, 0, 0), Buffer.from(parts), Buffer.from([0, 0, 1, 0, 1])]);
    }
    case 6: {
      // A valid question, then an additional record with a looping name or a lying rdlength.
      const q = base.subarray(0, base.readUInt16BE(10) ? base.length - 11 : base.length);
      const b = Buffer.from(q);
      b.writeUInt16BE(1, 10);
      const tail = r.int(2) ? Buffer.from([0xc0, b.length, 0, 41, 16, 0, 0, 0, 0, 0, 0xff, 0xff]) : Buffer.from([0, 0, 41, 2, 0, 0, 0, 0, 0, 0xff, 0xff, 1]);
      return Buffer.concat([b, tail]);
    }
    case 7: {
      // Responses, other opcodes, every flag bit.
      const b = Buffer.from(base);
      b.writeUInt16BE(r.int(65536), 2);
      return b;
    }
    case 8:
      // Huge counts with no data behind them.
      return header(r.int(3), 65535, 65535, 65535, 0);
    default: {
      // Valid query with random trailing garbage.
      const extra = Buffer.allocUnsafe(r.int(64));
      for (let i = 0; i < extra.length; i++) extra[i] = r.int(256);
      return Buffer.concat([base, extra]);
    }
  }
}

/**
 * Opens `conns` TCP connections to a DNS server one after another; each writes `frames`
 * length-prefixed hostile packets, the last claiming 65,535 bytes it never sends, and is
 * closed `holdMs` later.
 */
export async function garbageTcpStreams(port: number, r: Rng, conns: number, frames: number, holdMs: number): Promise<void> {
  for (let c = 0; c < conns; c++) {
    await new Promise<void>((res) => {
      const s = net.connect(port, '127.0.0.1', () => {
        for (let k = 0; k < frames; k++) {
          const p = hostilePacket(r);
          const len = Buffer.alloc(2);
          len.writeUInt16BE(k === frames - 1 ? 65535 : p.length);
          s.write(Buffer.concat([len, p]));
        }
        setTimeout(() => s.destroy(), holdMs);
      });
      s.on('error', () => undefined);
      s.on('close', () => res());
    });
  }
}
