// One upstream resolver: a connected UDP socket shared by all queries to it (random IDs,
// replies matched by ID and question), TCP for retries after truncation, and the failure count
// the health logic reads. Connected UDP means an ICMP "port unreachable" surfaces as an error
// at once, so a dead upstream on this host fails fast instead of timing out.
import * as dgram from 'node:dgram';
import { randomInt } from 'node:crypto';
import * as net from 'node:net';
import { endpointText, parseUpstream } from './address.js';
import { sameQuestion, walkMessage } from '../wire.js';

export class UpstreamError extends Error {
  constructor(
    readonly code: 'UPSTREAM_TIMEOUT' | 'UPSTREAM_UNREACHABLE' | 'UPSTREAM_BAD_REPLY' | 'UPSTREAM_CLOSED',
    message: string,
  ) {
    super(message);
    this.name = 'UpstreamError';
  }
}

interface Pending {
  query: Buffer;
  qEnd: number;
  resolve: (b: Buffer) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export interface UpstreamOptions {
  /** Consecutive failures after which the upstream counts as unhealthy. */
  maxFails: number;
}

export class Upstream {
  readonly label: string;
  fails = 0;
  private sock?: dgram.Socket;
  private connected = false;
  private connecting?: Promise<void>;
  private readonly pending = new Map<number, Pending>();
  private closed = false;

  constructor(
    readonly host: string,
    readonly port: number,
    private readonly opts: UpstreamOptions = { maxFails: 2 },
  ) {
    this.label = endpointText({ host, port });
  }

  static parse(text: string, opts?: UpstreamOptions): Upstream {
    const { host, port } = parseUpstream(text);
    return new Upstream(host, port, opts);
  }

  get healthy(): boolean {
    return this.fails < this.opts.maxFails;
  }

  success(): void {
    this.fails = 0;
  }

  failure(): void {
    this.fails++;
  }

  get inflight(): number {
    return this.pending.size;
  }

  private socket(): dgram.Socket {
    if (this.sock) return this.sock;
    const s = dgram.createSocket({ type: net.isIPv6(this.host) ? 'udp6' : 'udp4' });
    s.on('message', (msg) => this.onMessage(msg));
    s.on('error', (e: NodeJS.ErrnoException) => {
      // ECONNREFUSED on a connected socket: nobody listens there. Fail everything in flight.
      const err = new UpstreamError('UPSTREAM_UNREACHABLE', `${this.label}: ${e.code ?? e.message}`);
      for (const [id, p] of this.pending) {
        clearTimeout(p.timer);
        this.pending.delete(id);
        p.reject(err);
      }
    });
    this.connecting = new Promise<void>((res, rej) =>
      s.connect(this.port, this.host, (err?: Error) => {
        if (err) {
          // No route yet (network not up): forget this socket so the next query tries afresh.
          if (this.sock === s) {
            this.sock = undefined;
            this.connecting = undefined;
          }
          s.close();
          rej(err);
          return;
        }
        this.connected = true;
        res();
      }),
    );
    this.connecting.catch(() => undefined); // each waiting query handles the rejection itself
    s.unref();
    this.sock = s;
    return s;
  }

  private onMessage(msg: Buffer): void {
    if (msg.length < 12 || (msg[2]! & 0x80) === 0) return;
    const p = this.pending.get(msg.readUInt16BE(0));
    if (!p) return; // late or spoofed
    let qEnd: number;
    try {
      qEnd = walkMessage(msg).qEnd;
    } catch {
      return; // malformed: let the timeout (or another reply) decide
    }
    if (!sameQuestion(msg, qEnd, p.query, p.qEnd)) return;
    clearTimeout(p.timer);
    this.pending.delete(msg.readUInt16BE(0));
    p.resolve(msg);
  }

  /** Sends a query (its ID is replaced) over UDP; resolves with the raw reply. */
  udp(query: Buffer, qEnd: number, timeoutMs: number): Promise<Buffer> {
    if (this.closed) return Promise.reject(new UpstreamError('UPSTREAM_CLOSED', `${this.label}: closed`));
    const sock = this.socket();
    let id = randomInt(0, 65536);
    for (let i = 0; this.pending.has(id) && i < 16; i++) id = randomInt(0, 65536);
    if (this.pending.has(id)) return Promise.reject(new UpstreamError('UPSTREAM_UNREACHABLE', `${this.label}: no free query ID`));
    const q = Buffer.from(query);
    q.writeUInt16BE(id, 0);
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new UpstreamError('UPSTREAM_TIMEOUT', `${this.label}: no reply in ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { query: q, qEnd, resolve, reject, timer });
      const fail = (err: Error): void => {
        const p = this.pending.get(id);
        if (!p) return;
        clearTimeout(p.timer);
        this.pending.delete(id);
        reject(new UpstreamError('UPSTREAM_UNREACHABLE', `${this.label}: ${err.message}`));
      };
      const send = (): void => {
        if (this.sock !== sock) return fail(new Error('closed'));
        try {
          sock.send(q, (err) => err && fail(err));
        } catch (e) {
          fail(e as Error);
        }
      };
      // A connected socket's send() takes no address, and is only valid once connect() is done.
      if (this.connected) send();
      else this.connecting!.then(send, fail);
    });
  }

  /** One query over a fresh TCP connection (RFC 7766 framing). */
  tcp(query: Buffer, qEnd: number, timeoutMs: number): Promise<Buffer> {
    if (this.closed) return Promise.reject(new UpstreamError('UPSTREAM_CLOSED', `${this.label}: closed`));
    return new Promise<Buffer>((resolve, reject) => {
      const id = randomInt(0, 65536);
      const q = Buffer.alloc(query.length + 2);
      q.writeUInt16BE(query.length, 0);
      query.copy(q, 2);
      q.writeUInt16BE(id, 2);
      const s = net.connect({ host: this.host, port: this.port });
      let buf = Buffer.alloc(0);
      let done = false;
      const finish = (e: Error | undefined, b?: Buffer): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        s.destroy();
        if (e) reject(e);
        else resolve(b!);
      };
      const timer = setTimeout(() => finish(new UpstreamError('UPSTREAM_TIMEOUT', `${this.label}: no TCP reply in ${timeoutMs} ms`)), timeoutMs);
      s.on('connect', () => s.write(q));
      s.on('error', (e) => finish(new UpstreamError('UPSTREAM_UNREACHABLE', `${this.label} (tcp): ${e.message}`)));
      s.on('close', () => finish(new UpstreamError('UPSTREAM_CLOSED', `${this.label}: TCP connection closed before a reply`)));
      s.on('data', (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        if (buf.length < 2) return;
        const n = buf.readUInt16BE(0);
        if (buf.length < 2 + n) return;
        const msg = buf.subarray(2, 2 + n);
        try {
          const w = walkMessage(msg);
          if (w.id !== id || !sameQuestion(msg, w.qEnd, q.subarray(2), qEnd)) throw new Error('reply does not match the query');
        } catch (e) {
          finish(new UpstreamError('UPSTREAM_BAD_REPLY', `${this.label} (tcp): ${(e as Error).message}`));
          return;
        }
        finish(undefined, Buffer.from(msg));
      });
    });
  }

  close(): void {
    this.closed = true;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new UpstreamError('UPSTREAM_CLOSED', `${this.label}: closed`));
    }
    this.pending.clear();
    this.sock?.close();
    this.sock = undefined;
    this.connected = false;
  }
}
