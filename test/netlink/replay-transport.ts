// A Transport that plays the kernel from a capture: every datagram we send
// must equal (modulo seq/pid) one that ipvsadm sent, and is answered with the
// datagrams the kernel returned to ipvsadm, re-stamped with our seq/pid.
import type { Transport } from '../../src/balancer/netlink/channel.js';
import { type Capture, type Datagram, maskSeqPid } from './strace-fixture.js';

export class ReplayTransport implements Transport {
  readonly portId = 4242;
  readonly sent: Buffer[] = [];
  private readonly queue: Buffer[] = [];
  private readonly used = new Set<number>();
  closed = false;

  constructor(private readonly captures: Capture[]) {}

  send(d: Uint8Array): void {
    const mine = Buffer.from(d);
    this.sent.push(mine);
    const want = maskSeqPid(mine);
    for (const [ci, cap] of this.captures.entries()) {
      const grams = cap.datagrams;
      for (let i = 0; i < grams.length; i++) {
        const key = ci * 100000 + i;
        const g = grams[i] as Datagram;
        if (g.dir !== 'send' || this.used.has(key) || !maskSeqPid(g.bytes).equals(want)) continue;
        this.used.add(key);
        const seq = mine.readUInt32LE(8);
        for (let j = i + 1; j < grams.length && grams[j]?.dir === 'recv'; j++) {
          this.queue.push(restamp((grams[j] as Datagram).bytes, seq, this.portId));
        }
        return;
      }
    }
    throw new Error(`ReplayTransport: no captured request matches ${mine.toString('hex')}`);
  }

  recv(): Buffer | null {
    return this.queue.shift() ?? null;
  }

  waitReadable(): Promise<boolean> {
    return Promise.resolve(this.queue.length > 0);
  }

  close(): void {
    this.closed = true;
  }
}

/** Rewrites seq/pid of each message (and of an echoed request header) to ours. */
function restamp(d: Buffer, seq: number, pid: number): Buffer {
  const b = Buffer.from(d);
  let off = 0;
  while (off + 16 <= b.length) {
    const len = b.readUInt32LE(off);
    if (len < 16) break;
    b.writeUInt32LE(seq, off + 8);
    b.writeUInt32LE(pid, off + 12);
    if (b.readUInt16LE(off + 4) === 2 && len >= 36) {
      b.writeUInt32LE(seq, off + 28);
      b.writeUInt32LE(pid, off + 32);
    }
    off += (len + 3) & ~3;
  }
  return b;
}
