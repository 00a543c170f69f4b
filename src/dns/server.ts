// UDP and TCP listeners on one address and port. TCP follows RFC 7766: length-prefixed
// messages, several per connection (pipelined, answered as they complete), an idle
// timeout and a cap on connections so a slow client cannot hold the server.
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { parseIp } from '../net/ip.js';
import type { Resolver } from './resolver.js';

export interface DnsServerOptions {
  host: string;
  port: number; // 0: pick a free port (UDP and TCP get the same one)
  resolver: Resolver;
  tcpIdleMs?: number;
  maxTcpConnections?: number;
  maxTcpInflightPerConnection?: number;
  onError?: (e: Error) => void;
}

export class DnsServer {
  private udp?: dgram.Socket;
  private tcp?: net.Server;
  private readonly conns = new Set<net.Socket>();
  private readonly opts: Required<Omit<DnsServerOptions, 'onError'>> & Pick<DnsServerOptions, 'onError'>;
  port = 0;
  tcpRejected = 0;

  constructor(opts: DnsServerOptions) {
    this.opts = { tcpIdleMs: 10_000, maxTcpConnections: 1000, maxTcpInflightPerConnection: 64, ...opts };
  }

  get listening(): boolean {
    return this.udp !== undefined && this.tcp?.listening === true;
  }

  async start(): Promise<void> {
    // With port 0, UDP picks a free port that TCP may find taken (another socket's ephemeral
    // port): pick again rather than fail.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.bind();
        return;
      } catch (e) {
        if (this.opts.port !== 0 || (e as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 10) throw e;
      }
    }
  }

  private async bind(): Promise<void> {
    const family = parseIp(this.opts.host).family;
    const udp = dgram.createSocket({ type: family === 6 ? 'udp6' : 'udp4' });
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(this.opts.port, this.opts.host, () => {
        udp.off('error', reject);
        resolve();
      });
    });
    const port = udp.address().port;
    const tcp = net.createServer({ noDelay: true }, (s) => this.onConnection(s));
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen({ host: this.opts.host, port }, () => {
        tcp.off('error', reject);
        resolve();
      });
    }).catch((e: unknown) => {
      udp.close();
      throw e;
    });
    udp.on('message', (msg, rinfo) => this.onDatagram(udp, msg, rinfo));
    udp.on('error', (e) => this.opts.onError?.(e));
    tcp.on('error', (e) => this.opts.onError?.(e));
    this.udp = udp;
    this.tcp = tcp;
    this.port = port;
  }

  async stop(): Promise<void> {
    for (const c of this.conns) c.destroy();
    await Promise.all([
      new Promise<void>((r) => (this.udp ? this.udp.close(() => r()) : r())),
      new Promise<void>((r) => (this.tcp ? this.tcp.close(() => r()) : r())),
    ]);
    this.udp = undefined;
    this.tcp = undefined;
  }

  private onDatagram(sock: dgram.Socket, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const client = rinfo.address;
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
    let buffered: Buffer = Buffer.alloc(0);
    let inflight = 0;
    const write = (reply: Buffer | undefined): void => {
      inflight--;
      if (!reply || s.destroyed) return;
      const len = Buffer.alloc(2);
      len.writeUInt16BE(reply.length);
      s.write(Buffer.concat([len, reply]));
      if (paused && inflight < this.opts.maxTcpInflightPerConnection) {
        paused = false;
        s.resume();
      }
    };
    let paused = false;
    s.on('data', (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2) {
        const n = buffered.readUInt16BE(0);
        if (buffered.length < 2 + n) break;
        const msg = buffered.subarray(2, 2 + n);
        buffered = buffered.subarray(2 + n);
        inflight++;
        try {
          const r = this.opts.resolver.handle(Buffer.from(msg), client, 'tcp');
          if (r instanceof Promise) r.then(write, () => write(undefined));
          else write(r);
        } catch (e) {
          this.opts.onError?.(e as Error);
          write(undefined);
        }
      }
      // Back-pressure: stop reading from a client that has too many queries in flight.
      if (inflight >= this.opts.maxTcpInflightPerConnection && !paused) {
        paused = true;
        s.pause();
      }
    });
  }
}
