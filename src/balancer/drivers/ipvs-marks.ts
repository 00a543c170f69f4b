// The IPVS driver's fwmark range, and the ownership rule built on it. Pure.
//
// IPVS fwmark services carry no comment, so ownership is decided by the mark itself plus our own rules:
//   mark = 0x40000000 | catalogFwmark << 8 | slot      (bits 31..30 = 01, 22 bits service, 8 bits slot)
// The catalog gives every service one fwmark (0x100 upward, never reused); a service has one IPVS
// service per VIP:port/protocol per network and per published port, so each of those units gets a slot.
// We touch an IPVS service only if its mark is in this range AND one of our iptables rules (comment
// `vipdns:<unit>`) sets that mark; addr:port services and every other fwmark are never read for writing.
import { VipdnsError } from '../../errors.js';

export const MARK_TAG = 0x40000000;
export const MARK_MASK = 0xc0000000;
export const SLOT_BITS = 8;
export const SLOTS = 1 << SLOT_BITS;
/** Largest catalog fwmark that fits the 22 service bits. */
export const MAX_SERVICE_FWMARK = (1 << (30 - SLOT_BITS)) - 1;

export function isOurMark(mark: number): boolean {
  return ((mark & MARK_MASK) >>> 0) === MARK_TAG;
}

export function makeMark(serviceFwmark: number, slot: number): number {
  if (!Number.isInteger(serviceFwmark) || serviceFwmark < 1 || serviceFwmark > MAX_SERVICE_FWMARK) {
    throw new VipdnsError('DATAPLANE_FAILED', `service fwmark ${serviceFwmark} is outside the IPVS driver's range 1..${MAX_SERVICE_FWMARK}`);
  }
  return (MARK_TAG | (serviceFwmark << SLOT_BITS) | slot) >>> 0;
}

export function serviceOfMark(mark: number): number {
  return (mark & ~MARK_MASK) >>> SLOT_BITS;
}

/** Lowest free slot of the service; `used` holds every mark currently assigned. */
export function allocateMark(serviceFwmark: number, used: ReadonlySet<number>): number {
  for (let slot = 0; slot < SLOTS; slot++) {
    const m = makeMark(serviceFwmark, slot);
    if (!used.has(m)) return m;
  }
  throw new VipdnsError('DATAPLANE_FAILED', `service fwmark ${serviceFwmark} has more than ${SLOTS} VIP ports/published ports`);
}

export const hexMark = (m: number): string => `0x${m.toString(16)}`;
