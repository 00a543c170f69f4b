// A Transport that plays the kernel from a capture: every datagram we send
// must equal (modulo seq/pid) one that ipvsadm sent, and is answered with the
// datagrams the kernel returned to ipvsadm, re-stamped with our seq/pid.
import type { Transport } from '../../src/balancer/netlink/channel.js';
import { type Capture, type Datagram, maskSeqPid } from './strace-fixture.js';

const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const NLM_F_ACK = 4;
const NLM_F_CAPPED = 0x100;

function splitMsgs(d: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0; off + 16 <= d.length; ) {
    const len = d.readUInt32LE(off);
    out.push(d.subarray(off, off + len));
    off += (len + 3) & ~3;
  }
  return out;
}

/** A success ack as the kernel builds it (capped: only the request header echoed). */
function ackFor(req: Buffer, pid: number): Buffer {
  const b = Buffer.alloc(36);
  b.writeUInt32LE(36, 0);
  b.writeUInt16LE(NLMSG_ERROR, 4);
  b.writeUInt16LE(NLM_F_CAPPED, 6);
  b.writeUInt32LE(req.readUInt32LE(8), 8);
  b.writeUInt32LE(pid, 12);
  req.copy(b, 20, 0, 16);
  return b;
}

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
    // A batch is several messages in one datagram: match and answer each one.
    for (const m of splitMsgs(mine)) this.answer(m);
  }

  private answer(mine: Buffer): void {
    const want = maskSeqPid(mine);
    for (const [ci, cap] of this.captures.entries()) {
      const grams = cap.datagrams;
      for (let i = 0; i < grams.length; i++) {
        const key = ci * 100000 + i;
        const g = grams[i] as Datagram;
        if (g.dir !== 'send' || this.used.has(key) || !maskSeqPid(g.bytes).equals(want)) continue;
        this.used.add(key);
        const seq = mine.readUInt32LE(8);
        let acked = false;
        for (let j = i + 1; j < grams.length && grams[j]?.dir === 'recv'; j++) {
          const r = grams[j] as Datagram;
          const t = r.bytes.readUInt16LE(4);
          if (t === NLMSG_ERROR || t === NLMSG_DONE) acked = true;
          this.queue.push(restamp(r.bytes, seq, this.portId));
        }
        // libipvs closes its socket right after a doit reply, so the kernel's
        // ack (sent for NLM_F_ACK) never made it into the capture: add it.
        if (!acked && mine.readUInt16LE(6) & NLM_F_ACK) this.queue.push(ackFor(mine, this.portId));
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
