// Batched UDP for the DNS server over the native addon (native/udp.c): one recvmmsg per
// readiness hands us up to 64 datagrams in one Buffer, and the replies leave in one
// sendmmsg. Node's dgram pays two syscalls and several objects per datagram instead.
// On a wildcard address every reply leaves from the address its query was sent to (the addon
// reads it from IP_PKTINFO / IPV6_PKTINFO and sends with it), as clients require.
import { requireAddon } from '../native.js';
import { formatV6Groups } from '../net/ip.js';

/** Datagrams per recvmmsg/sendmmsg (the addon's UDP_BATCH). */
export const BATCH = 64;
/**
 * Uint32 words per metadata entry: offset, length, then the peer (PEER_WORDS): family, port,
 * 4 address words, local family (0: unknown), interface index, 4 local address words, 2 spare.
 */
const W = 16;
const PEER_WORDS = W - 2;
/** Receive slots this size can never truncate a UDP datagram, so nothing changes for big queries. */
const DEFAULT_SLOT = 65535;
/** Batches drained per readiness before yielding to the rest of the event loop (TCP, timers). */
const MAX_ROUNDS = 8;
const SEND_ARENA = 256 * 1024;

interface UdpAddon {
  udpOpen(family: 4 | 6, address: string, port: number, slotBytes: number, reusePort: boolean, rcvbuf: number): { handle: object; port: number; pktinfo: boolean };
  udpRecvBatch(h: object, meta: Uint32Array): Buffer | null;
  udpSendBatch(h: object, data: Uint8Array, meta: Uint32Array, count: number): number;
  udpWatch(h: object, cb: (status: number) => void): void;
  udpClose(h: object): void;
  udpSpread(h: object, n: number): void;
}

let addon: UdpAddon | undefined;
let loadError: Error | undefined;

/** The addon, or undefined with the reason in udpBatchUnavailable() (non-Linux, not built). */
export function loadUdpAddon(): UdpAddon | undefined {
  if (addon || loadError) return addon;
  try {
    addon = requireAddon<UdpAddon>('vipdns_udp', process.env.VIPDNS_UDP_ADDON);
  } catch (e) {
    loadError = e as Error;
  }
  return addon;
}

export function udpBatchUnavailable(): Error | undefined {
  loadUdpAddon();
  return loadError;
}

/**
 * A peer as the addon encodes it: family, port, 4 address words (network byte order in memory),
 * then where its datagram arrived (local family, interface index, 4 address words, 2 spare),
 * so that a reply sent later still leaves from the address that was asked. Shorter arrays
 * (family, port and address only) are fine: the kernel then picks the source.
 */
export type Peer = Uint32Array;

/** One received batch; valid until the handler returns (the data Buffer itself is fresh per batch). */
export class RecvBatch {
  data: Buffer = Buffer.alloc(0);
  count = 0;
  truncated = 0;
  readonly meta = new Uint32Array((BATCH + 1) * W);
  private readonly bytes = new Uint8Array(this.meta.buffer);
  private lastKey = -1;
  private lastV6 = new Uint32Array(4);
  private lastText = '';

  offset(i: number): number {
    return this.meta[(i + 1) * W]!;
  }

  length(i: number): number {
    return this.meta[(i + 1) * W + 1]!;
  }

  datagram(i: number): Buffer {
    const b = (i + 1) * W;
    return this.data.subarray(this.meta[b]!, this.meta[b]! + this.meta[b + 1]!);
  }

  /** The client's address as Node's dgram would print it; the last one is reused (a client sends many). */
  address(i: number): string {
    const b = (i + 1) * W;
    const m = this.meta;
    if (m[b + 2] === 4) {
      const w = m[b + 4]!;
      if (this.lastKey === w) return this.lastText;
      const o = (b + 4) * 4;
      const t = `${this.bytes[o]}.${this.bytes[o + 1]}.${this.bytes[o + 2]}.${this.bytes[o + 3]}`;
      this.lastKey = w;
      this.lastText = t;
      return t;
    }
    const v = this.lastV6;
    if (this.lastKey === -2 && v[0] === m[b + 4] && v[1] === m[b + 5] && v[2] === m[b + 6] && v[3] === m[b + 7]) return this.lastText;
    const o = (b + 4) * 4;
    const g: number[] = [];
    for (let k = 0; k < 16; k += 2) g.push((this.bytes[o + k]! << 8) | this.bytes[o + k + 1]!);
    // Node prints v4-mapped peers of a dual-stack socket as ::ffff:a.b.c.d.
    const t = g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff ? `::ffff:${this.bytes[o + 12]}.${this.bytes[o + 13]}.${this.bytes[o + 14]}.${this.bytes[o + 15]}` : formatV6Groups(g);
    v.set(m.subarray(b + 4, b + 8));
    this.lastKey = -2;
    this.lastText = t;
    return t;
  }

  port(i: number): number {
    return this.meta[(i + 1) * W + 3]!;
  }

  /** The address datagram i was sent to; known on a wildcard socket only. Not cached: for tests and logs. */
  localAddress(i: number): string | undefined {
    const b = (i + 1) * W + 8;
    const fam = this.meta[b];
    const o = (b + 2) * 4;
    if (fam === 4) return `${this.bytes[o]}.${this.bytes[o + 1]}.${this.bytes[o + 2]}.${this.bytes[o + 3]}`;
    if (fam !== 6) return undefined;
    const g: number[] = [];
    for (let k = 0; k < 16; k += 2) g.push((this.bytes[o + k]! << 8) | this.bytes[o + k + 1]!);
    return formatV6Groups(g);
  }

  /** A copy of datagram i's peer, for a reply sent after this batch is gone. */
  peer(i: number): Peer {
    const b = (i + 1) * W;
    return this.meta.slice(b + 2, b + W);
  }
}

export interface UdpBatchOptions {
  host: string;
  family: 4 | 6;
  port: number;
  slotBytes?: number;
  /** SO_REUSEPORT: several sockets (DNS worker threads) share the address; the kernel spreads flows. */
  reusePort?: boolean;
  /** SO_RCVBUF(FORCE) bytes; 0 keeps the system default. */
  rcvbuf?: number;
  /** Called once per received batch; replies queued with reply() leave when it returns. */
  onBatch: (b: RecvBatch) => void;
  onError?: (e: Error) => void;
}

export class UdpBatchSocket {
  readonly port: number;
  /** Bound to a wildcard address: each reply leaves from the address its query was sent to. */
  readonly pktinfo: boolean;
  /** Datagrams dropped because they did not fit a receive slot. */
  truncated = 0;
  /** Replies the kernel refused or had no room for. */
  sendDropped = 0;
  private handle: object | undefined;
  private readonly a: UdpAddon;
  private readonly batch = new RecvBatch();
  /** Replies are written here (by reply() or straight by the caller, see room()) and leave with flush(). */
  readonly out = Buffer.allocUnsafe(SEND_ARENA);
  private readonly outMeta = new Uint32Array((BATCH + 1) * W);
  private outCount = 0;
  private outBytes = 0;
  private flushQueued = false;

  private constructor(
    a: UdpAddon,
    opened: { handle: object; port: number; pktinfo: boolean },
    private readonly opts: UdpBatchOptions,
  ) {
    this.a = a;
    this.handle = opened.handle;
    this.port = opened.port;
    this.pktinfo = opened.pktinfo;
    a.udpWatch(opened.handle, () => this.onReadable());
  }

  /** Binds; throws the addon's errno error (code 'EADDRINUSE', ...) or ENOADDON when it is missing. */
  static open(opts: UdpBatchOptions): UdpBatchSocket {
    const a = loadUdpAddon();
    if (!a) throw loadError ?? new Error('UDP batch addon unavailable');
    const opened = a.udpOpen(opts.family, opts.host, opts.port, opts.slotBytes ?? DEFAULT_SLOT, opts.reusePort ?? false, opts.rcvbuf ?? 0);
    return new UdpBatchSocket(a, opened, opts);
  }

  /** Throws (EADDRINUSE, ...) unless a socket WITHOUT SO_REUSEPORT could bind there: nobody holds it. */
  static probe(family: 4 | 6, host: string, port: number): void {
    const a = loadUdpAddon();
    if (!a) throw loadError ?? new Error('UDP batch addon unavailable');
    a.udpClose(a.udpOpen(family, host, port, 512, false, 0).handle);
  }

  get closed(): boolean {
    return this.handle === undefined;
  }

  /** Queues a reply to datagram i of the batch being handled. */
  reply(data: Uint8Array, b: RecvBatch, i: number): void {
    const at = (i + 1) * W + 2;
    this.enqueue(data, b.meta, at);
  }

  /**
   * Where in `out` the next reply of at most `max` bytes may be written (flushing queued
   * replies first when there is no room); then commit() it. Saves building a Buffer per reply.
   */
  room(max: number): number {
    if (this.outCount === BATCH || this.outBytes + max > SEND_ARENA) this.flush();
    return this.outBytes;
  }

  /** Queues the `len` bytes written at room()'s offset as the reply to datagram i of batch b; false: not queued. */
  commit(len: number, b: RecvBatch, i: number): boolean {
    if (!this.handle || len > 65535 || this.outBytes + len > SEND_ARENA) return false;
    this.push(len, b.meta, (i + 1) * W + 2);
    return true;
  }

  /** Queues a reply to a saved peer; sent at the end of the current microtask checkpoint. */
  send(data: Uint8Array, peer: Peer): void {
    this.enqueue(data, peer, 0);
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(() => {
        this.flushQueued = false;
        this.flush();
      });
    }
  }

  flush(): void {
    const n = this.outCount;
    if (n === 0) return;
    this.outCount = 0;
    this.outBytes = 0;
    if (!this.handle) return;
    try {
      this.sendDropped += n - this.a.udpSendBatch(this.handle, this.out, this.outMeta, n);
    } catch (e) {
      this.sendDropped += n;
      this.opts.onError?.(e as Error);
    }
  }

  /** Spreads datagrams at random over the first n sockets of this socket's SO_REUSEPORT group. */
  spread(n: number): void {
    if (this.handle) this.a.udpSpread(this.handle, n);
  }

  close(): void {
    const h = this.handle;
    if (!h) return;
    this.handle = undefined;
    this.outCount = 0;
    this.outBytes = 0;
    this.a.udpClose(h);
  }

  private enqueue(data: Uint8Array, peerWords: Uint32Array, at: number): void {
    if (!this.handle) return;
    if (data.length > 65535) {
      this.sendDropped++;
      return;
    }
    this.out.set(data, this.room(data.length));
    this.push(data.length, peerWords, at);
  }

  private push(len: number, peerWords: Uint32Array, at: number): void {
    const e = (this.outCount + 1) * W;
    const m = this.outMeta;
    m[e] = this.outBytes;
    m[e + 1] = len;
    const n = Math.min(PEER_WORDS, peerWords.length - at);
    for (let k = 0; k < n; k++) m[e + 2 + k] = peerWords[at + k]!;
    for (let k = n; k < PEER_WORDS; k++) m[e + 2 + k] = 0;
    this.outBytes += len;
    this.outCount++;
  }

  private onReadable(): void {
    const b = this.batch;
    for (let round = 0; round < MAX_ROUNDS && this.handle; round++) {
      let data: Buffer | null;
      try {
        data = this.a.udpRecvBatch(this.handle, b.meta);
      } catch (e) {
        this.opts.onError?.(e as Error);
        return;
      }
      if (data === null) return;
      b.data = data;
      b.count = b.meta[0]!;
      b.truncated = b.meta[1]!;
      this.truncated += b.truncated;
      try {
        this.opts.onBatch(b);
      } catch (e) {
        this.opts.onError?.(e as Error);
      }
      this.flush();
      // A short batch drained the queue: wait for the next readiness instead of an EAGAIN call.
      if (b.count + b.truncated < BATCH) return;
    }
  }
}
