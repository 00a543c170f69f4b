// UDP on a wildcard address without the native addon. node:dgram can neither learn the address
// a datagram was sent to nor choose a reply's source, so a wildcard socket answers from the
// kernel's preferred source toward the client, which a client that asked another address of a
// multi-homed host drops. Instead, like dnsmasq's bind-interfaces, bind one socket per local
// address (its replies leave from it), and re-scan the addresses every few seconds so that one
// added later (a Docker network's bridge) is served without a restart.
import * as dgram from 'node:dgram';
import { type NetworkInterfaceInfo, networkInterfaces } from 'node:os';

/**
 * How often the local addresses are re-read. One getifaddrs() per scan costs microseconds; a
 * new address waits at most this long (its clients' first query may time out and be retried).
 */
export const RESCAN_MS = 5000;

export type Interfaces = NodeJS.Dict<NetworkInterfaceInfo[]>;

/**
 * The addresses a wildcard listen address covers, as bind() takes them: IPv4 ones for 0.0.0.0,
 * IPv4 and IPv6 for :: (a dual-stack socket serves both). Link-local IPv6 ones carry their
 * interface (fe80::1%eth0): they are only unique with it.
 */
export function localAddresses(family: 4 | 6, ifaces: Interfaces): string[] {
  const out = new Set<string>();
  for (const [name, infos] of Object.entries(ifaces)) {
    for (const i of infos ?? []) {
      if (i.family === 'IPv4') out.add(i.address);
      else if (family === 6 && i.family === 'IPv6') out.add(i.address.toLowerCase().startsWith('fe80:') ? `${i.address}%${name}` : i.address);
    }
  }
  return [...out].sort();
}

export interface PerAddressOptions {
  /** The wildcard: 0.0.0.0 or ::. */
  host: string;
  family: 4 | 6;
  /** 0: the first socket picks a free port, the others take the same. */
  port: number;
  recvBufferSize: number;
  onMessage: (sock: dgram.Socket, msg: Buffer, rinfo: dgram.RemoteInfo) => void;
  onError?: (e: Error) => void;
  rescanMs?: number;
  /** The host's addresses; os.networkInterfaces by default (tests give their own). */
  interfaces?: () => Interfaces;
}

export class PerAddressUdp {
  port = 0;
  private readonly socks = new Map<string, dgram.Socket>();
  /** Addresses whose bind failed with something other than "not (yet) usable": said once each. */
  private readonly reported = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private closed = false;
  /** No local address at all (not even loopback): the wildcard itself, as before, not re-scanned. */
  private wildcardOnly = false;

  constructor(private readonly opts: PerAddressOptions) {}

  /** The addresses served now. */
  get addresses(): string[] {
    return [...this.socks.keys()].sort();
  }

  /** Binds every local address; throws (and binds nothing) when one is taken (EADDRINUSE, ...). */
  async start(): Promise<void> {
    const addrs = localAddresses(this.opts.family, (this.opts.interfaces ?? networkInterfaces)());
    let port = this.opts.port;
    try {
      for (const a of addrs) {
        const s = await this.bindOne(a, port).catch((e: NodeJS.ErrnoException) => {
          // Tentative (IPv6 duplicate address detection) or just removed: the next scan retries.
          if (e.code === 'EADDRNOTAVAIL') return undefined;
          throw e;
        });
        if (s && port === 0) port = s.address().port;
      }
      if (this.socks.size === 0) {
        this.wildcardOnly = true;
        await this.bindOne(this.opts.host, port);
      }
    } catch (e) {
      this.closeAll();
      throw e;
    }
    this.port = this.socks.values().next().value!.address().port;
    if (!this.wildcardOnly) {
      this.timer = setInterval(() => void this.rescan(), this.opts.rescanMs ?? RESCAN_MS);
      this.timer.unref();
    }
  }

  /** Binds addresses that appeared, closes those that went. Concurrent calls share one scan. */
  rescan(): Promise<void> {
    if (this.closed || this.wildcardOnly) return Promise.resolve();
    this.scanning ??= this.scan().finally(() => (this.scanning = undefined));
    return this.scanning;
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    this.closeAll();
  }

  private async scan(): Promise<void> {
    let now: string[];
    try {
      now = localAddresses(this.opts.family, (this.opts.interfaces ?? networkInterfaces)());
    } catch (e) {
      this.opts.onError?.(e as Error);
      return;
    }
    const want = new Set(now);
    for (const a of this.reported) if (!want.has(a)) this.reported.delete(a); // say it again if it comes back
    for (const [a, s] of this.socks) {
      if (want.has(a)) continue;
      this.socks.delete(a);
      s.close();
    }
    for (const a of now) {
      if (this.socks.has(a) || this.closed) continue;
      try {
        await this.bindOne(a, this.port);
        this.reported.delete(a);
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        if (err.code === 'EADDRNOTAVAIL' || this.reported.has(a)) continue;
        this.reported.add(a);
        this.opts.onError?.(Object.assign(new Error(`DNS over UDP on new address ${a}: ${err.message}`), { code: err.code }));
      }
    }
  }

  private async bindOne(address: string, port: number): Promise<dgram.Socket> {
    const s = dgram.createSocket({ type: address.includes(':') ? 'udp6' : 'udp4', recvBufferSize: this.opts.recvBufferSize });
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind(port, address, () => {
        s.off('error', reject);
        resolve();
      });
    }).catch((e: unknown) => {
      try {
        s.close();
      } catch {
        // never bound: nothing to close
      }
      throw e;
    });
    if (this.closed) {
      s.close();
      return s;
    }
    s.on('message', (msg, rinfo) => this.opts.onMessage(s, msg, rinfo));
    s.on('error', (e) => this.opts.onError?.(e));
    this.socks.set(address, s);
    return s;
  }

  private closeAll(): void {
    for (const s of this.socks.values()) s.close();
    this.socks.clear();
  }
}
