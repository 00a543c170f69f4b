// Typed errors for the netlink stack. Kernel replies carry a negative errno;
// callers branch on `code` ('EEXIST', 'ESRCH', ...) rather than on messages.
import { constants } from 'node:os';

const errnoNames = new Map<number, string>();
for (const [name, num] of Object.entries(constants.errno)) {
  // Several names can share a number (EAGAIN/EWOULDBLOCK); keep the first, canonical one.
  if (!errnoNames.has(num)) errnoNames.set(num, name);
}

/** 'ENOENT' for 2, 'ERRNO_<n>' for numbers this platform does not name. */
export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? `ERRNO_${errno}`;
}

export function errnoNumber(code: string): number | undefined {
  return (constants.errno as Record<string, number>)[code];
}

export interface NetlinkErrorDetails {
  /** the operation that failed, e.g. 'IPVS NEW_SERVICE' or 'sendto' */
  op?: string;
  /** the kernel's extended-ack message (NLMSGERR_ATTR_MSG), when present */
  kernelMessage?: string;
  cause?: unknown;
}

/** An errno reported by the kernel (NLMSG_ERROR / NLMSG_DONE) or by a socket call. */
export class NetlinkError extends Error {
  override readonly name = 'NetlinkError';
  /** positive errno, e.g. 17 */
  readonly errno: number;
  /** symbolic errno, e.g. 'EEXIST' */
  readonly code: string;
  readonly op: string | undefined;
  readonly kernelMessage: string | undefined;

  constructor(errno: number, details: NetlinkErrorDetails = {}) {
    const code = errnoName(errno);
    const where = details.op ? `${details.op}: ` : '';
    const extra = details.kernelMessage ? ` (${details.kernelMessage})` : '';
    super(`${where}${code}${extra}`, details.cause === undefined ? undefined : { cause: details.cause });
    this.errno = errno;
    this.code = code;
    this.op = details.op;
    this.kernelMessage = details.kernelMessage;
  }
}

/** A reply that does not parse: a kernel/protocol mismatch or a bug, never retried. */
export class NetlinkProtocolError extends Error {
  override readonly name = 'NetlinkProtocolError';
  readonly code = 'EPROTO';
}

/** No complete reply within the deadline (the socket stays usable; late replies are dropped). */
export class NetlinkTimeoutError extends NetlinkError {
  constructor(op: string, timeoutMs: number) {
    super(errnoNumber('ETIMEDOUT') ?? 110, { op, kernelMessage: `no reply within ${timeoutMs} ms` });
  }
}
