// Thin wrapper over the native addon (native/netlink.c): a non-blocking
// netlink socket whose readability is signalled by a libuv poll watcher, so
// waiting for the kernel never blocks the event loop.
import { requireAddon } from '../../native.js';
import type { Transport } from './channel.js';
import { NetlinkError, errnoNumber } from './errors.js';

export const NETLINK_GENERIC = 16;
const SOL_SOCKET = 1;
const SO_RCVBUF = 8;
const SO_RCVBUFFORCE = 33;
const SOL_NETLINK = 270;
const NETLINK_EXT_ACK = 11;
const NETLINK_CAP_ACK = 10;

/** Largest datagram we accept: the kernel sizes dump skbs to at most 32 KiB. */
const RECV_MAX = 64 * 1024;

interface Addon {
  open(protocol: number): { handle: object; portId: number };
  setsockoptInt(h: object, level: number, name: number, value: number): void;
  send(h: object, data: Uint8Array): number;
  recv(h: object, max: number): Buffer | null;
  watch(h: object, cb: (status: number) => void): void;
  unwatch(h: object): void;
  close(h: object): void;
}

let addon: Addon | undefined;

/** Loads the addon on first use, so importing this module never fails on its own. */
export function loadAddon(): Addon {
  addon ??= requireAddon<Addon>('vipdns_netlink', process.env.VIPDNS_NETLINK_ADDON);
  return addon;
}

/** Why the addon cannot load (not built: no C toolchain at install), or undefined when it can. */
export function netlinkUnavailable(): Error | undefined {
  try {
    loadAddon();
    return undefined;
  } catch (e) {
    return e as Error;
  }
}

/** Turns the addon's system errors ({code, errno, syscall}) into NetlinkError. */
function wrap<T>(op: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    const err = e as { errno?: unknown; code?: unknown; syscall?: unknown };
    if (typeof err.errno === 'number') {
      throw new NetlinkError(err.errno, { op: typeof err.syscall === 'string' ? err.syscall : op, cause: e });
    }
    const byCode = typeof err.code === 'string' ? errnoNumber(err.code) : undefined;
    if (byCode !== undefined) throw new NetlinkError(byCode, { op, cause: e });
    throw e;
  }
}

export interface SocketOptions {
  /** receive buffer in bytes; SO_RCVBUFFORCE is tried first (root), then SO_RCVBUF. Default 1 MiB. */
  rcvbuf?: number;
}

export class NetlinkSocket implements Transport {
  readonly portId: number;
  private handle: object | undefined;
  private waiter: ((readable: boolean) => void) | undefined;
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly lib: Addon,
    opened: { handle: object; portId: number },
  ) {
    this.handle = opened.handle;
    this.portId = opened.portId;
  }

  static open(protocol: number = NETLINK_GENERIC, opts: SocketOptions = {}): NetlinkSocket {
    const lib = loadAddon();
    const s = new NetlinkSocket(lib, wrap('socket', () => lib.open(protocol)));
    const h = s.live();
    const rcvbuf = opts.rcvbuf ?? 1 << 20;
    try {
      lib.setsockoptInt(h, SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf);
    } catch {
      try {
        lib.setsockoptInt(h, SOL_SOCKET, SO_RCVBUF, rcvbuf); // capped by net.core.rmem_max
      } catch {
        /* keep the default; batches are bounded anyway */
      }
    }
    // Nice-to-haves on older kernels: error strings, and acks that do not echo the request.
    for (const opt of [NETLINK_EXT_ACK, NETLINK_CAP_ACK]) {
      try {
        lib.setsockoptInt(h, SOL_NETLINK, opt, 1);
      } catch {
        /* unsupported: harmless */
      }
    }
    return s;
  }

  private live(): object {
    if (!this.handle) throw new NetlinkError(9 /* EBADF */, { op: 'netlink socket closed' });
    return this.handle;
  }

  send(datagram: Uint8Array): void {
    const h = this.live();
    wrap('sendto', () => this.lib.send(h, datagram));
  }

  recv(): Buffer | null {
    const h = this.live();
    return wrap('recvmsg', () => this.lib.recv(h, RECV_MAX));
  }

  waitReadable(timeoutMs: number): Promise<boolean> {
    const h = this.live();
    if (this.waiter) return Promise.reject(new Error('NetlinkSocket.waitReadable: already waiting'));
    return new Promise<boolean>((resolve) => {
      const settle = (readable: boolean): void => {
        if (!this.waiter) return;
        this.waiter = undefined;
        clearTimeout(this.timer);
        this.timer = undefined;
        if (this.handle) this.lib.unwatch(this.handle);
        resolve(readable);
      };
      this.waiter = settle;
      this.timer = setTimeout(() => settle(false), Math.max(0, timeoutMs));
      try {
        wrap('uv_poll', () => this.lib.watch(h, () => settle(true)));
      } catch (e) {
        this.waiter = undefined;
        clearTimeout(this.timer);
        throw e;
      }
    });
  }

  close(): void {
    const h = this.handle;
    if (!h) return;
    this.waiter?.(false);
    this.handle = undefined;
    this.lib.close(h);
  }
}
