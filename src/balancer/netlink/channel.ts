// Request/reply engine over a netlink socket: sequence numbers, acks, dumps,
// batching and deadlines. It only sees a Transport, so tests drive it with a
// scripted fake and no kernel.
import { NetlinkError, NetlinkProtocolError, NetlinkTimeoutError } from './errors.js';
import {
  NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
  encodeNlMsg, errorFromPayload, parseDoneErrno, parseErrorPayload, parseNlMsgs, type NlMsg,
} from './nlmsg.js';

/** The I/O a channel needs; netlink-socket.ts implements it over the addon. */
export interface Transport {
  /** our netlink port id (nl_pid), stamped into requests like libnl does */
  readonly portId: number;
  send(datagram: Uint8Array): void;
  /** one queued datagram, or null when nothing is queued (never blocks) */
  recv(): Buffer | null;
  /** resolves true when readable, false when timeoutMs passed first */
  waitReadable(timeoutMs: number): Promise<boolean>;
  close(): void;
}

export interface Request {
  /** netlink message type (the genl family id for generic netlink) */
  type: number;
  payload: Uint8Array;
  /** a dump returns many messages and ends with NLMSG_DONE */
  dump?: boolean;
  /** used in error messages, e.g. 'IPVS NEW_SERVICE' */
  op: string;
}

export type Outcome = { ok: true; messages: NlMsg[] } | { ok: false; error: NetlinkError };

export interface ChannelOptions {
  /** deadline for all replies of one send, default 5000 ms */
  timeoutMs?: number;
  /**
   * Requests written per datagram before reading replies. Every ack occupies
   * socket receive buffer (an skb each), so unbounded batches would make the
   * kernel drop acks with ENOBUFS; 64 stays far below the default rcvbuf.
   */
  maxBatch?: number;
  /** first sequence number (tests pin it) */
  seq?: number;
}

interface Pending {
  req: Request;
  messages: NlMsg[];
  done: boolean;
  error?: NetlinkError;
  interrupted: boolean;
}

export class NetlinkChannel {
  private seq: number;
  private readonly timeoutMs: number;
  private readonly maxBatch: number;
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly transport: Transport,
    opts: ChannelOptions = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.maxBatch = Math.max(1, opts.maxBatch ?? 64);
    this.seq = opts.seq ?? (Math.floor(Date.now() / 1000) >>> 0);
  }

  /** One request; resolves with its data messages (none for a plain ack), throws NetlinkError. */
  async request(req: Request): Promise<NlMsg[]> {
    const [out] = await this.batch([req]);
    if (!out) throw new NetlinkProtocolError('no outcome');
    if (!out.ok) throw out.error;
    return out.messages;
  }

  /**
   * Many requests, written maxBatch to a datagram and answered in order. One
   * failure does not stop the others (the kernel processes each message of a
   * datagram independently), so results are settled per request.
   */
  batch(reqs: readonly Request[]): Promise<Outcome[]> {
    // Exchanges are serialized: replies are matched by sequence number, but a
    // single reader loop keeps dumps and deadlines simple.
    const run = this.tail.then(() => this.exchange(reqs));
    this.tail = run.catch(() => undefined);
    return run;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.transport.close();
  }

  private nextSeq(): number {
    this.seq = (this.seq + 1) >>> 0;
    if (this.seq === 0) this.seq = 1;
    return this.seq;
  }

  private async exchange(reqs: readonly Request[]): Promise<Outcome[]> {
    if (this.closed) throw new NetlinkError(9 /* EBADF */, { op: 'netlink channel closed' });
    const outcomes: Outcome[] = [];
    for (let i = 0; i < reqs.length; i += this.maxBatch) {
      outcomes.push(...(await this.exchangeChunk(reqs.slice(i, i + this.maxBatch))));
    }
    return outcomes;
  }

  private async exchangeChunk(reqs: readonly Request[]): Promise<Outcome[]> {
    const bySeq = new Map<number, Pending>();
    const order: Pending[] = [];
    const frames: Buffer[] = [];
    for (const req of reqs) {
      const seq = this.nextSeq();
      const p: Pending = { req, messages: [], done: false, interrupted: false };
      bySeq.set(seq, p);
      order.push(p);
      // ACK on everything: a successful doit without ACK would give no completion signal.
      const flags = NLM_F_REQUEST | NLM_F_ACK | (req.dump ? NLM_F_DUMP : 0);
      frames.push(encodeNlMsg({ type: req.type, flags, seq, pid: this.transport.portId }, req.payload));
    }
    this.transport.send(frames.length === 1 ? (frames[0] as Buffer) : Buffer.concat(frames));

    let open = order.length;
    const deadline = Date.now() + this.timeoutMs;
    while (open > 0) {
      const dgram = this.transport.recv();
      if (dgram === null) {
        const left = deadline - Date.now();
        if (left <= 0 || !(await this.transport.waitReadable(left))) {
          for (const p of order) if (!p.done) this.finish(p, new NetlinkTimeoutError(p.req.op, this.timeoutMs));
          break;
        }
        continue;
      }
      for (const msg of parseNlMsgs(dgram)) {
        const p = bySeq.get(msg.seq);
        if (!p || p.done) continue; // a late reply to an exchange that already timed out
        if (this.absorb(p, msg)) open--;
      }
    }
    return order.map((p) => (p.error ? { ok: false, error: p.error } : { ok: true, messages: p.messages }));
  }

  /** Feeds one message to its request; true when that request is now complete. */
  private absorb(p: Pending, msg: NlMsg): boolean {
    switch (msg.type) {
      case NLMSG_NOOP:
      case NLMSG_OVERRUN:
        return false;
      case NLMSG_ERROR: {
        const e = parseErrorPayload(msg);
        this.finish(p, e.errno === 0 ? undefined : errorFromPayload(e, p.req.op));
        return true;
      }
      case NLMSG_DONE: {
        const errno = parseDoneErrno(msg);
        if (errno !== 0) this.finish(p, new NetlinkError(errno, { op: p.req.op }));
        else if (p.interrupted) {
          // The table changed while the kernel walked it: the dump may be inconsistent.
          this.finish(p, new NetlinkError(4 /* EINTR */, { op: p.req.op, kernelMessage: 'dump interrupted' }));
        } else this.finish(p, undefined);
        // A dump sent with NLM_F_ACK gets no separate ack: DONE completes it.
        return true;
      }
      default:
        if (msg.flags & NLM_F_DUMP_INTR) p.interrupted = true;
        p.messages.push(msg);
        return false;
    }
  }

  private finish(p: Pending, error: NetlinkError | undefined): void {
    p.done = true;
    if (error) p.error = error;
  }
}
