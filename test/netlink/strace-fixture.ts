// Reads the strace captures in fixtures/ (see fixtures/README.md): the exact
// datagrams ipvsadm sent and the kernel returned, in order.
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Datagram {
  dir: 'send' | 'recv';
  bytes: Buffer;
}

export interface Capture {
  file: string;
  command: string;
  exit: number;
  /** ipvsadm's stdout/stderr lines */
  out: string[];
  datagrams: Datagram[];
}

// dist/test/netlink -> test/netlink/fixtures (the .strace files are not compiled)
const here = dirname(fileURLToPath(import.meta.url));
export const FIXTURES = join(here, '..', '..', '..', 'test', 'netlink', 'fixtures');

export function parseStrace(text: string, file = '<text>'): Capture {
  const cap: Capture = { file, command: '', exit: -1, out: [], datagrams: [] };
  let cur: Datagram | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('# command: ')) cap.command = line.slice(11);
    else if (line.startsWith('# exit: ')) cap.exit = Number(line.slice(8));
    else if (line.startsWith('# out: ')) cap.out.push(line.slice(7).trimEnd());
    else if (/^(sendmsg|recvmsg)\(/.test(line)) {
      cur = undefined;
      // MSG_PEEK reads are libnl sizing the buffer: the same bytes come again.
      if (line.includes('MSG_PEEK') || /\) = -1 /.test(line)) continue;
      cur = { dir: line.startsWith('send') ? 'send' : 'recv', bytes: Buffer.alloc(0) };
      cap.datagrams.push(cur);
    } else if (cur && line.startsWith(' | ')) {
      // " | 00010  03 01 00 00 ...  |ascii|" : hex columns sit between offset and ascii
      const hex = line.slice(10, 58).trim().split(/\s+/).filter(Boolean);
      cur.bytes = Buffer.concat([cur.bytes, Buffer.from(hex.join(''), 'hex')]);
    }
  }
  return cap;
}

export function loadCapture(name: string): Capture {
  const file = readdirSync(FIXTURES).find((f) => f.includes(name) && f.endsWith('.strace'));
  if (!file) throw new Error(`no fixture matching ${name}`);
  return parseStrace(readFileSync(join(FIXTURES, file), 'utf8'), file);
}

export const allCaptures = (): Capture[] =>
  readdirSync(FIXTURES)
    .filter((f) => f.endsWith('.strace'))
    .sort()
    .map((f) => parseStrace(readFileSync(join(FIXTURES, f), 'utf8'), f));

/** Copies a datagram with seq/pid of every message zeroed: they differ per run. */
export function maskSeqPid(d: Buffer): Buffer {
  const b = Buffer.from(d);
  let off = 0;
  while (off + 16 <= b.length) {
    const len = b.readUInt32LE(off);
    if (len < 16) break;
    b.writeUInt32LE(0, off + 8);
    b.writeUInt32LE(0, off + 12);
    // NLMSG_ERROR echoes the request header: mask that too
    if (b.readUInt16LE(off + 4) === 2 && len >= 36) {
      b.writeUInt32LE(0, off + 28);
      b.writeUInt32LE(0, off + 32);
    }
    off += (len + 3) & ~3;
  }
  return b;
}

/** The genl command byte of a request datagram of the given family type, or -1. */
export function genlCmd(d: Buffer, familyId: number): number {
  return d.length >= 20 && d.readUInt16LE(4) === familyId ? (d[16] ?? -1) : -1;
}

/** The first datagram sent for family `familyId` with genl command `cmd`, and what the kernel answered. */
export function exchangeFor(cap: Capture, familyId: number, cmd: number): { request: Buffer; replies: Buffer[] } {
  const i = cap.datagrams.findIndex((d) => d.dir === 'send' && genlCmd(d.bytes, familyId) === cmd);
  if (i < 0) throw new Error(`${cap.file}: no request with cmd ${cmd}`);
  const replies: Buffer[] = [];
  for (let j = i + 1; j < cap.datagrams.length && cap.datagrams[j]?.dir === 'recv'; j++) {
    replies.push((cap.datagrams[j] as Datagram).bytes);
  }
  return { request: (cap.datagrams[i] as Datagram).bytes, replies };
}
