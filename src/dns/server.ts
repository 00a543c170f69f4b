// UDP and TCP listeners on one address and port. TCP follows RFC 7766: length-prefixed
// messages, several per connection (pipelined, answered as they complete), an idle
// timeout and a cap on connections so a slow client cannot hold the server.
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { parseIp } from '../net/ip.js';
import type { Resolver } from './resolver.js';
import { type RecvBatch, UdpBatchSocket, udpBatchUnavailable } from './udp-batch.js';
import { PerAddressUdp, RESCAN_MS } from './udp-per-address.js';

/** Unsent answer bytes on one TCP connection above which we stop reading its queries. */
export const TCP_HIGH_WATER = 256 * 1024;
/** UDP receive buffer: a burst (many containers starting, a GC pause) waits here rather than
 * being dropped at Linux's 208 KiB default (about 250 small queries). Bounded kernel memory. */
export const UDP_RECEIVE_BUFFER = 4 << 20;

export interface DnsServerOptions {
  host: string;
  port: number; // 0: pick a free port (UDP and TCP get the same one)
  resolver: Resolver;
  tcpIdleMs?: number;
  maxTcpConnections?: number;
  maxTcpInflightPerConnection?: number;
  /** UDP through the native recvmmsg/sendmmsg addon; default: on when it loads, else node:dgram. */
  udpBatch?: boolean;
  /** SO_REUSEPORT on the UDP socket (needs the addon): DNS worker threads bind the same port. */
  reusePort?: boolean;
  /** Serve UDP only (a DNS worker thread: TCP stays with the main thread). */
  udpOnly?: boolean;
  /** SO_RCVBUF bytes for UDP (root may exceed net.core.rmem_max); default UDP_RECEIVE_BUFFER. */
  udpReceiveBuffer?: number;
  /** Without the addon, on a wildcard host: how often local addresses are re-read (ms). */
  udpRescanMs?: number;
  onError?: (e: Error) => void;
  /** One line when the batched UDP transport is wanted but unavailable. */
  onNotice?: (msg: string) => void;
}

export class DnsServer {
  private udp?: dgram.Socket | UdpBatchSocket | PerAddressUdp;
  private tcp?: net.Server;
  private readonly conns = new Set<net.Socket>();
  private readonly opts: Required<Omit<DnsServerOptions, 'onError' | 'onNotice' | 'udpBatch' | 'reusePort' | 'udpOnly' | 'udpReceiveBuffer' | 'udpRescanMs'>> &
    Pick<DnsServerOptions, 'onError' | 'onNotice' | 'udpBatch' | 'reusePort' | 'udpOnly' | 'udpReceiveBuffer' | 'udpRescanMs'>;
  port = 0;
  tcpRejected = 0;

  constructor(opts: DnsServerOptions) {
    this.opts = { tcpIdleMs: 10_000, maxTcpConnections: 1000, maxTcpInflightPerConnection: 64, ...opts };
  }

  get listening(): boolean {
    return this.udp !== undefined && (this.opts.udpOnly === true || this.tcp?.listening === true);
  }

  async start(): Promise<void> {
    // With port 0, UDP picks a free port that TCP may find taken (another socket's ephemeral
    // port): pick again rather than fail.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.bind();
        return;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (this.opts.port !== 0 || code !== 'EADDRINUSE' || attempt >= 10) throw this.bindError(e);
      }
    }
  }

  /** A bind failure that names the DNS address (the system error alone does not). */
  private bindError(e: unknown): Error {
    const err = e as NodeJS.ErrnoException;
    const where = `${this.opts.host.includes(':') ? `[${this.opts.host}]` : this.opts.host}:${this.opts.port}`;
    if (typeof err?.message !== 'string' || err.message.includes(where)) return err;
    const hint = err.code === 'EADDRINUSE' ? ' (another DNS server, or another vipdns, holds it: pick another --dns-listen)' : '';
    return Object.assign(new Error(`DNS address ${where}: ${err.message}${hint}`, { cause: err }), { code: err.code });
  }

  /** Whether UDP goes through the batch addon: asked for (or not refused) and loadable. */
  private useBatch(): boolean {
    if (this.opts.udpBatch === false) return false;
    const why = udpBatchUnavailable();
    if (!why) return true;
    this.opts.onNotice?.(`batched UDP unavailable (${why.message.split('\n')[0]}); using node:dgram`);
    this.opts.udpBatch = false; // say it once
    return false;
  }

  private async bind(): Promise<void> {
    const { family, value } = parseIp(this.opts.host);
    if (this.useBatch()) return this.bindBatch(family);
    if (this.opts.reusePort) throw new Error('a shared (SO_REUSEPORT) DNS socket needs the batched UDP addon');
    if (value === 0n) return this.bindPerAddress(family);
    const udp = dgram.createSocket({ type: family === 6 ? 'udp6' : 'udp4', recvBufferSize: this.opts.udpReceiveBuffer ?? UDP_RECEIVE_BUFFER });
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(this.opts.port, this.opts.host, () => {
        udp.off('error', reject);
        resolve();
      });
    });
    const port = udp.address().port;
    const tcp = await this.listenTcp(port).catch((e: unknown) => {
      udp.close();
      throw e;
    });
    udp.on('message', (msg, rinfo) => this.onDatagram(udp, msg, rinfo));
    udp.on('error', (e) => this.opts.onError?.(e));
    this.udp = udp;
    this.tcp = tcp;
    this.port = port;
  }

  /** node:dgram on a wildcard host: one socket per local address (see udp-per-address.ts). */
  private async bindPerAddress(family: 4 | 6): Promise<void> {
    const udp = new PerAddressUdp({
      host: this.opts.host.trim(),
      family,
      port: this.opts.port,
      recvBufferSize: this.opts.udpReceiveBuffer ?? UDP_RECEIVE_BUFFER,
      rescanMs: this.opts.udpRescanMs ?? RESCAN_MS,
      onMessage: (s, msg, rinfo) => this.onDatagram(s, msg, rinfo),
      onError: (e) => this.opts.onError?.(e),
    });
    await udp.start();
    const tcp = this.opts.udpOnly
      ? undefined
      : await this.listenTcp(udp.port).catch((e: unknown) => {
          udp.close();
          throw e;
        });
    const n = udp.addresses.length;
    this.opts.onNotice?.(
      `UDP on ${this.opts.host} without the addon: one socket per local address so replies leave from the address asked (${n} now), addresses re-read every ${(this.opts.udpRescanMs ?? RESCAN_MS) / 1000} s`,
    );
    this.udp = udp;
    this.tcp = tcp;
    this.port = udp.port;
  }

  private async bindBatch(family: 4 | 6): Promise<void> {
    // A SO_REUSEPORT bind succeeds next to any other SO_REUSEPORT socket of this user on that
    // port (another daemon's, or one the kernel's ephemeral pick lands on) and would split its
    // traffic. So take TCP first, then check that a plain UDP bind would succeed (nobody holds
    // the port), and only then join with SO_REUSEPORT.
    let tcpFirst: net.Server | undefined;
    if (this.opts.reusePort === true && !this.opts.udpOnly) {
      tcpFirst = await this.listenTcp(this.opts.port);
      try {
        UdpBatchSocket.probe(family, this.opts.host.trim(), (tcpFirst.address() as net.AddressInfo).port);
      } catch (e) {
        tcpFirst.close();
        throw e;
      }
    }
    const port = tcpFirst ? (tcpFirst.address() as net.AddressInfo).port : this.opts.port;
    let udp: UdpBatchSocket;
    try {
      udp = UdpBatchSocket.open({
        host: this.opts.host.trim(),
        family,
        port,
        reusePort: this.opts.reusePort ?? false,
        rcvbuf: this.opts.udpReceiveBuffer ?? UDP_RECEIVE_BUFFER,
        onBatch: (b) => this.onBatch(udp, b),
        onError: (e) => this.opts.onError?.(e),
      });
    } catch (e) {
      tcpFirst?.close();
      throw e;
    }
    const tcp =
      tcpFirst ??
      (this.opts.udpOnly
        ? undefined
        : await this.listenTcp(udp.port).catch((e: unknown) => {
            udp.close();
            throw e;
          }));
    this.udp = udp;
    this.tcp = tcp;
    this.port = udp.port;
  }

  private async listenTcp(port: number): Promise<net.Server> {
    const tcp = net.createServer({ noDelay: true }, (s) => this.onConnection(s));
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen({ host: this.opts.host, port }, () => {
        tcp.off('error', reject);
        resolve();
      });
    });
    tcp.on('error', (e) => this.opts.onError?.(e));
    return tcp;
  }

  /** With reusePort: spread datagrams at random over the port's first n sockets (see native/udp.c). */
  spreadUdp(n: number): void {
    if (this.udp instanceof UdpBatchSocket) this.udp.spread(n);
  }

  async stop(): Promise<void> {
    for (const c of this.conns) c.destroy();
    await Promise.all([
      new Promise<void>((r) => {
        const u = this.udp;
        if (u instanceof UdpBatchSocket || u instanceof PerAddressUdp) {
          u.close();
          r();
        } else if (u) u.close(() => r());
        else r();
      }),
      new Promise<void>((r) => (this.tcp ? this.tcp.close(() => r()) : r())),
    ]);
    this.udp = undefined;
    this.tcp = undefined;
  }

  private onDatagram(sock: dgram.Socket, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    // A link-local peer comes as fe80::1%eth0; the resolver scopes by address alone.
    const pct = rinfo.address.indexOf('%');
    const client = pct < 0 ? rinfo.address : rinfo.address.slice(0, pct);
    const send = (reply: Buffer | undefined): void => {
      if (reply) sock.send(reply, rinfo.port, rinfo.address);
    };
    try {
      const r = this.opts.resolver.handle(msg, client, 'udp');
      if (r instanceof Promise) r.then(send, (e: unknown) => this.opts.onError?.(e as Error));
      else send(r);
    } catch (e) {
      // A bug must cost one answer, never the server.
      this.opts.onError?.(e as Error);
    }
  }

  /**
   * Same contract as onDatagram, per datagram of a batch: sync replies leave together when it
   * returns. Plain queries for known internal names are written straight into the send arena
   * (Resolver.answerUdp); their duration is the batch's, observed once.
   */
  private onBatch(sock: UdpBatchSocket, b: RecvBatch): void {
    const resolver = this.opts.resolver;
    const m = resolver.metrics;
    const start = m ? process.hrtime.bigint() : 0n;
    const room = resolver.maxUdpReply;
    let fast = 0;
    for (let i = 0; i < b.count; i++) {
      try {
        const client = b.address(i);
        const n = resolver.answerUdp(b.data, b.offset(i), b.length(i), client, sock.out, sock.room(room));
        if (n > 0) {
          if (sock.commit(n, b, i)) fast++;
          continue;
        }
        const r = resolver.handle(b.datagram(i), client, 'udp');
        if (r instanceof Promise) {
          const peer = b.peer(i);
          r.then(
            (reply) => {
              if (reply) sock.send(reply, peer);
            },
            (e: unknown) => this.opts.onError?.(e as Error),
          );
        } else if (r) sock.reply(r, b, i);
      } catch (e) {
        // A bug must cost one answer, never the server.
        this.opts.onError?.(e as Error);
      }
    }
    if (m && fast > 0) {
      sock.flush();
      m.batchAnswered('udp', Number(process.hrtime.bigint() - start) / 1e9, fast);
    }
  }

  private onConnection(s: net.Socket): void {
    if (this.conns.size >= this.opts.maxTcpConnections) {
      this.tcpRejected++;
      s.destroy();
      return;
    }
    const client = s.remoteAddress;
    if (!client) {
      s.destroy();
      return;
    }
    this.conns.add(s);
    s.setTimeout(this.opts.tcpIdleMs, () => s.destroy());
    s.on('close', () => this.conns.delete(s));
    s.on('error', () => s.destroy());
    // Back-pressure both ways: stop reading while too many queries are in flight or while the
    // client is not reading its answers (unsent bytes over TCP_HIGH_WATER), so one connection
    // can hold at most about one read chunk plus TCP_HIGH_WATER of memory.
    let buffered: Buffer = Buffer.alloc(0);
    let inflight = 0;
    let pumping = false;
    const max = this.opts.maxTcpInflightPerConnection;
    const congested = (): boolean => inflight >= max || s.writableLength >= TCP_HIGH_WATER;
    const fullMessageBuffered = (): boolean => buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0);
    const done = (reply: Buffer | undefined): void => {
      inflight--;
      if (reply && !s.destroyed) {
        const framed = Buffer.allocUnsafe(reply.length + 2);
        framed.writeUInt16BE(reply.length, 0);
        reply.copy(framed, 2);
        s.write(framed);
      }
      if (!pumping) pump();
    };
    const pump = (): void => {
      pumping = true;
      try {
        while (!s.destroyed && fullMessageBuffered() && !congested()) {
          const n = buffered.readUInt16BE(0);
          const msg = Buffer.from(buffered.subarray(2, 2 + n));
          buffered = buffered.subarray(2 + n);
          inflight++;
          try {
            const r = this.opts.resolver.handle(msg, client, 'tcp');
            if (r instanceof Promise) r.then(done, () => done(undefined));
            else done(r);
          } catch (e) {
            this.opts.onError?.(e as Error);
            done(undefined);
          }
        }
      } finally {
        pumping = false;
      }
      if (s.destroyed) return;
      const readMore = !congested() && !fullMessageBuffered();
      if (readMore && s.isPaused()) s.resume();
      else if (!readMore && !s.isPaused()) s.pause();
    };
    s.on('drain', pump);
    s.on('data', (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      pump();
    });
  }
}
