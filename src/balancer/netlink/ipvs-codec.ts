// Pure encode/decode of IPVS generic netlink messages (linux/ip_vs.h).
// Requests are laid out attribute-for-attribute like ipvsadm 1.31 / libipvs,
// so that the bytes match what the kernel already sees from the reference
// tool (the unit tests compare against captured traffic).
import { NetlinkProtocolError } from './errors.js';
import {
  type Family, afToFamily, familyToAf, formatAddress, mask4ToPrefix, parseAddress, prefixToMask4,
} from './addr.js';
import { encodeGenlPayload, parseGenl } from './genl.js';
import {
  AttrWriter, attrBe16, attrBe32, attrMap, attrString, attrU16, attrU32, attrUint, type NlMsg,
} from './nlmsg.js';

export const IPVS_GENL_NAME = 'IPVS';
export const IPVS_GENL_VERSION = 1;

export const IpvsCmd = {
  NEW_SERVICE: 1,
  SET_SERVICE: 2,
  DEL_SERVICE: 3,
  GET_SERVICE: 4,
  NEW_DEST: 5,
  SET_DEST: 6,
  DEL_DEST: 7,
  GET_DEST: 8,
  NEW_DAEMON: 9,
  DEL_DAEMON: 10,
  GET_DAEMON: 11,
  SET_CONFIG: 12,
  GET_CONFIG: 13,
  SET_INFO: 14,
  GET_INFO: 15,
  ZERO: 16,
  FLUSH: 17,
} as const;
export type IpvsCmdName = keyof typeof IpvsCmd;
export const ipvsCmdName = (cmd: number): string =>
  (Object.keys(IpvsCmd) as IpvsCmdName[]).find((k) => IpvsCmd[k] === cmd) ?? `CMD_${cmd}`;

const CMD_ATTR = { SERVICE: 1, DEST: 2, DAEMON: 3, TIMEOUT_TCP: 4, TIMEOUT_TCP_FIN: 5, TIMEOUT_UDP: 6 } as const;
const SVC = {
  AF: 1, PROTOCOL: 2, ADDR: 3, PORT: 4, FWMARK: 5, SCHED_NAME: 6, FLAGS: 7, TIMEOUT: 8, NETMASK: 9, STATS: 10,
  PE_NAME: 11, STATS64: 12,
} as const;
const DEST = {
  ADDR: 1, PORT: 2, FWD_METHOD: 3, WEIGHT: 4, U_THRESH: 5, L_THRESH: 6, ACTIVE_CONNS: 7, INACT_CONNS: 8,
  PERSIST_CONNS: 9, STATS: 10, ADDR_FAMILY: 11, STATS64: 12, TUN_TYPE: 13, TUN_PORT: 14, TUN_FLAGS: 15,
} as const;
const STATS = {
  CONNS: 1, INPKTS: 2, OUTPKTS: 3, INBYTES: 4, OUTBYTES: 5, CPS: 6, INPPS: 7, OUTPPS: 8, INBPS: 9, OUTBPS: 10,
} as const;
const INFO = { VERSION: 1, CONN_TAB_SIZE: 2 } as const;

/** IP_VS_SVC_F_* */
export const SvcFlag = {
  PERSISTENT: 0x0001,
  HASHED: 0x0002, // set by the kernel, ignored on input
  ONEPACKET: 0x0004,
  SCHED1: 0x0008,
  SCHED2: 0x0010,
  SCHED3: 0x0020,
} as const;

export type Protocol = 'tcp' | 'udp' | 'sctp';
const PROTO_NUM: Record<Protocol, number> = { tcp: 6, udp: 17, sctp: 132 };
function protocolName(n: number): Protocol {
  const p = (Object.keys(PROTO_NUM) as Protocol[]).find((k) => PROTO_NUM[k] === n);
  if (!p) throw new NetlinkProtocolError(`unknown IPVS service protocol ${n}`);
  return p;
}

/** IP_VS_CONN_F_* forwarding methods (low 3 bits). */
export type ForwardMethod = 'masq' | 'local' | 'tunnel' | 'dr' | 'bypass';
const FWD_NUM: Record<ForwardMethod, number> = { masq: 0, local: 1, tunnel: 2, dr: 3, bypass: 4 };
const FWD_MASK = 0x7;
function forwardName(n: number): ForwardMethod {
  const v = n & FWD_MASK;
  const f = (Object.keys(FWD_NUM) as ForwardMethod[]).find((k) => FWD_NUM[k] === v);
  if (!f) throw new NetlinkProtocolError(`unknown IPVS forwarding method ${n}`);
  return f;
}

// ---- model ----

/** A virtual service is identified either by a firewall mark or by protocol + address + port. */
export type ServiceKey = FwmarkServiceKey | AddrServiceKey;
export interface FwmarkServiceKey {
  fwmark: number;
  /** family of the destinations; default 4 */
  family?: Family;
}
export interface AddrServiceKey {
  protocol: Protocol;
  address: string;
  port: number;
}

export interface ServiceOptions {
  /** scheduler module name: 'rr', 'wrr', 'sh', 'lc', 'wlc', 'mh', ... */
  scheduler: string;
  /** client affinity; sets IP_VS_SVC_F_PERSISTENT */
  persistence?: { timeout: number; netmask?: number };
  /** extra IP_VS_SVC_F_* bits (ONEPACKET, SCHED1..3 for sh/mh options) */
  flags?: number;
  /** persistence engine, e.g. 'sip' */
  peName?: string;
}
export type ServiceSpec = ServiceKey & ServiceOptions;

export interface Stats {
  conns: number;
  inPackets: number;
  outPackets: number;
  inBytes: number;
  outBytes: number;
  cps: number;
  inPps: number;
  outPps: number;
  inBps: number;
  outBps: number;
}

export interface Service {
  key: ServiceKey;
  family: Family;
  scheduler: string;
  /** raw IP_VS_SVC_F_* including kernel-owned bits like HASHED */
  flags: number;
  persistence?: { timeout: number; netmask: number };
  /** persistence netmask as a prefix length, reported even when not persistent */
  netmask: number;
  timeout: number;
  peName?: string;
  stats?: Stats;
}

export interface DestSpec {
  address: string;
  port: number;
  forward: ForwardMethod;
  weight: number;
  upperThreshold?: number;
  lowerThreshold?: number;
}

export interface Dest extends Required<DestSpec> {
  family: Family;
  activeConns: number;
  inactiveConns: number;
  persistentConns: number;
  stats?: Stats;
}

export interface IpvsInfo {
  /** e.g. '1.2.1' */
  version: string;
  versionCode: number;
  connTableSize: number;
}

export interface IpvsTimeouts {
  tcp: number;
  tcpFin: number;
  udp: number;
}

export const isFwmarkKey = (k: ServiceKey): k is FwmarkServiceKey => 'fwmark' in k && typeof k.fwmark === 'number';

/** The key part of any service-shaped object (strips options and extra fields). */
export function serviceKeyOf(k: ServiceKey): ServiceKey {
  if (isFwmarkKey(k)) return { fwmark: k.fwmark, family: k.family ?? 4 };
  return { protocol: k.protocol, address: k.address, port: k.port };
}

export function serviceFamily(k: ServiceKey): Family {
  return isFwmarkKey(k) ? (k.family ?? 4) : parseAddress(k.address).family;
}

/** Stable text id: 'tcp:10.0.0.1:80', 'tcp:[2001:db8::1]:443', 'fwmark:256' (v6: 'fwmark6:256'). */
export function serviceId(k: ServiceKey): string {
  if (isFwmarkKey(k)) return `${(k.family ?? 4) === 6 ? 'fwmark6' : 'fwmark'}:${k.fwmark}`;
  const { family, bytes } = parseAddress(k.address);
  const a = formatAddress(family, bytes);
  return `${k.protocol}:${family === 6 ? `[${a}]` : a}:${k.port}`;
}

// ---- encoding ----

function u16(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff) throw new RangeError(`${what} must be 0..65535, got ${n}`);
  return n;
}
function u32(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`${what} must be a u32, got ${n}`);
  return n;
}

function putNetmask(w: AttrWriter, family: Family, prefix: number | undefined): void {
  // The kernel keeps IPv4 persistence masks as a be32 mask and IPv6 ones as a prefix length.
  if (family === 4) w.be32(SVC.NETMASK, prefixToMask4(prefix ?? 32));
  else {
    const p = prefix ?? 128;
    if (!Number.isInteger(p) || p < 0 || p > 128) throw new RangeError(`bad IPv6 prefix ${p}`);
    w.u32(SVC.NETMASK, p);
  }
}

function putKey(w: AttrWriter, k: ServiceKey): Family {
  if (isFwmarkKey(k)) {
    const family = k.family ?? 4;
    w.u16(SVC.AF, familyToAf(family)).u32(SVC.FWMARK, u32(k.fwmark, 'fwmark'));
    if (k.fwmark === 0) throw new RangeError('fwmark 0 is not a service');
    return family;
  }
  const { family, bytes } = parseAddress(k.address);
  const proto = PROTO_NUM[k.protocol];
  if (proto === undefined) throw new RangeError(`unknown protocol '${String(k.protocol)}'`);
  w.u16(SVC.AF, familyToAf(family)).u16(SVC.PROTOCOL, proto).put(SVC.ADDR, bytes).be16(SVC.PORT, u16(k.port, 'port'));
  return family;
}

/**
 * The IPVS_CMD_ATTR_SERVICE nest. libipvs always sends the full entry (key,
 * scheduler, flags/mask, timeout, netmask), also for commands where the kernel
 * only reads the key; doing the same keeps us byte-compatible with ipvsadm.
 */
function putService(w: AttrWriter, k: ServiceKey, o: ServiceOptions | undefined): void {
  w.begin(CMD_ATTR.SERVICE);
  const family = putKey(w, k);
  let flags = (o?.flags ?? 0) & ~SvcFlag.HASHED;
  if (o?.persistence) flags |= SvcFlag.PERSISTENT;
  w.string(SVC.SCHED_NAME, o?.scheduler ?? '');
  const fm = Buffer.alloc(8);
  fm.writeUInt32LE(flags >>> 0, 0);
  fm.writeUInt32LE(0xffffffff, 4); // mask: every bit is ours to set or clear
  w.put(SVC.FLAGS, fm);
  w.u32(SVC.TIMEOUT, u32(o?.persistence?.timeout ?? 0, 'persistence timeout'));
  putNetmask(w, family, o?.persistence?.netmask);
  if (o?.peName) w.string(SVC.PE_NAME, o.peName);
  w.end();
}

function putDest(w: AttrWriter, d: DestSpec): void {
  const { family, bytes } = parseAddress(d.address);
  const fwd = FWD_NUM[d.forward];
  if (fwd === undefined) throw new RangeError(`unknown forwarding method '${String(d.forward)}'`);
  w.begin(CMD_ATTR.DEST)
    .u16(DEST.ADDR_FAMILY, familyToAf(family))
    .put(DEST.ADDR, bytes)
    .be16(DEST.PORT, u16(d.port, 'port'))
    .u32(DEST.FWD_METHOD, fwd)
    .u32(DEST.WEIGHT, u32(d.weight, 'weight'))
    // tunnel encapsulation (ipip default); meaningful only for forward 'tunnel'
    .u8(DEST.TUN_TYPE, 0)
    .be16(DEST.TUN_PORT, 0)
    .u16(DEST.TUN_FLAGS, 0)
    .u32(DEST.U_THRESH, u32(d.upperThreshold ?? 0, 'upperThreshold'))
    .u32(DEST.L_THRESH, u32(d.lowerThreshold ?? 0, 'lowerThreshold'))
    .end();
}

const payload = (cmd: number, w?: AttrWriter): Buffer =>
  encodeGenlPayload({ cmd, version: IPVS_GENL_VERSION }, w ? w.finish() : undefined);

function splitSpec(s: ServiceSpec): [ServiceKey, ServiceOptions] {
  const opts: ServiceOptions = { scheduler: s.scheduler };
  if (s.persistence) opts.persistence = s.persistence;
  if (s.flags !== undefined) opts.flags = s.flags;
  if (s.peName !== undefined) opts.peName = s.peName;
  return [serviceKeyOf(s), opts];
}

export function encodeNewService(s: ServiceSpec): Buffer {
  const [k, o] = splitSpec(s);
  const w = new AttrWriter();
  putService(w, k, o);
  return payload(IpvsCmd.NEW_SERVICE, w);
}

/** SET_SERVICE replaces scheduler, flags, timeout and netmask as a whole. */
export function encodeSetService(s: ServiceSpec): Buffer {
  const [k, o] = splitSpec(s);
  const w = new AttrWriter();
  putService(w, k, o);
  return payload(IpvsCmd.SET_SERVICE, w);
}

export function encodeDelService(k: ServiceKey): Buffer {
  const w = new AttrWriter();
  putService(w, serviceKeyOf(k), undefined);
  return payload(IpvsCmd.DEL_SERVICE, w);
}

/** GET_SERVICE for one service (doit), or a dump of all when no key is given. */
export function encodeGetService(k?: ServiceKey): Buffer {
  if (!k) return payload(IpvsCmd.GET_SERVICE);
  const w = new AttrWriter();
  putService(w, serviceKeyOf(k), undefined);
  return payload(IpvsCmd.GET_SERVICE, w);
}

export function encodeNewDest(k: ServiceKey, d: DestSpec): Buffer {
  return encodeDestCmd(IpvsCmd.NEW_DEST, k, d);
}
export function encodeSetDest(k: ServiceKey, d: DestSpec): Buffer {
  return encodeDestCmd(IpvsCmd.SET_DEST, k, d);
}
/** The kernel identifies the destination by address + port only; the rest is ignored. */
export function encodeDelDest(k: ServiceKey, d: Pick<DestSpec, 'address' | 'port'> & Partial<DestSpec>): Buffer {
  return encodeDestCmd(IpvsCmd.DEL_DEST, k, { forward: 'dr', weight: 1, ...d });
}

function encodeDestCmd(cmd: number, k: ServiceKey, d: DestSpec): Buffer {
  const w = new AttrWriter();
  putService(w, serviceKeyOf(k), undefined);
  putDest(w, d);
  return payload(cmd, w);
}

/** GET_DEST dump: the service nest carries only the key here (as in libipvs). */
export function encodeGetDests(k: ServiceKey): Buffer {
  const w = new AttrWriter();
  w.begin(CMD_ATTR.SERVICE);
  putKey(w, serviceKeyOf(k));
  w.end();
  return payload(IpvsCmd.GET_DEST, w);
}

export const encodeGetInfo = (): Buffer => payload(IpvsCmd.GET_INFO);
export const encodeGetConfig = (): Buffer => payload(IpvsCmd.GET_CONFIG);
/** Removes every virtual service, also ones this daemon does not own. */
export const encodeFlush = (): Buffer => payload(IpvsCmd.FLUSH);

/** ZERO: clears counters of one service, or of all when no key is given. */
export function encodeZero(k?: ServiceKey): Buffer {
  if (!k) return payload(IpvsCmd.ZERO);
  const w = new AttrWriter();
  putService(w, serviceKeyOf(k), undefined);
  return payload(IpvsCmd.ZERO, w);
}

/** SET_CONFIG: a 0 leaves that timeout unchanged (kernel semantics). */
export function encodeSetConfig(t: Partial<IpvsTimeouts>): Buffer {
  const w = new AttrWriter();
  if (t.tcp !== undefined) w.u32(CMD_ATTR.TIMEOUT_TCP, u32(t.tcp, 'tcp timeout'));
  if (t.tcpFin !== undefined) w.u32(CMD_ATTR.TIMEOUT_TCP_FIN, u32(t.tcpFin, 'tcpFin timeout'));
  if (t.udp !== undefined) w.u32(CMD_ATTR.TIMEOUT_UDP, u32(t.udp, 'udp timeout'));
  return payload(IpvsCmd.SET_CONFIG, w);
}

// ---- decoding ----

function decodeStats(buf: Buffer): Stats {
  const a = attrMap(buf);
  const n = (t: number): number => {
    const v = a.get(t);
    return v ? attrUint(v) : 0;
  };
  return {
    conns: n(STATS.CONNS),
    inPackets: n(STATS.INPKTS),
    outPackets: n(STATS.OUTPKTS),
    inBytes: n(STATS.INBYTES),
    outBytes: n(STATS.OUTBYTES),
    cps: n(STATS.CPS),
    inPps: n(STATS.INPPS),
    outPps: n(STATS.OUTPPS),
    inBps: n(STATS.INBPS),
    outBps: n(STATS.OUTBPS),
  };
}

function expectCmd(msg: NlMsg, cmd: number): Map<number, Buffer> {
  const g = parseGenl(msg);
  if (g.cmd !== cmd) throw new NetlinkProtocolError(`IPVS: expected ${ipvsCmdName(cmd)}, got ${ipvsCmdName(g.cmd)}`);
  return attrMap(g.attrs);
}

function required(a: Map<number, Buffer>, t: number, what: string): Buffer {
  const v = a.get(t);
  if (!v) throw new NetlinkProtocolError(`IPVS: ${what} missing`);
  return v;
}

/** Decodes one service reply (the kernel answers GET_SERVICE with cmd NEW_SERVICE). */
export function decodeService(msg: NlMsg): Service {
  const top = expectCmd(msg, IpvsCmd.NEW_SERVICE);
  const a = attrMap(required(top, CMD_ATTR.SERVICE, 'service nest'));
  const family = afToFamily(attrU16(required(a, SVC.AF, 'service af')));
  const fw = a.get(SVC.FWMARK);
  const fwmark = fw ? attrU32(fw) : 0;
  let key: ServiceKey;
  if (fwmark !== 0) key = { fwmark, family };
  else {
    const addr = required(a, SVC.ADDR, 'service address');
    key = {
      protocol: protocolName(attrU16(required(a, SVC.PROTOCOL, 'service protocol'))),
      address: formatAddress(family, addr),
      port: attrBe16(required(a, SVC.PORT, 'service port')),
    };
  }
  const flagsBuf = a.get(SVC.FLAGS);
  const flags = flagsBuf ? attrU32(flagsBuf) : 0;
  const timeout = a.get(SVC.TIMEOUT) ? attrU32(a.get(SVC.TIMEOUT) as Buffer) : 0;
  const nm = a.get(SVC.NETMASK);
  const netmask = nm ? (family === 4 ? mask4ToPrefix(attrBe32(nm)) : attrU32(nm)) : family === 4 ? 32 : 128;
  const svc: Service = {
    key,
    family,
    scheduler: attrString(required(a, SVC.SCHED_NAME, 'scheduler')),
    flags,
    timeout,
    netmask,
  };
  if (flags & SvcFlag.PERSISTENT) svc.persistence = { timeout, netmask };
  const pe = a.get(SVC.PE_NAME);
  if (pe) svc.peName = attrString(pe);
  const st = a.get(SVC.STATS64) ?? a.get(SVC.STATS);
  if (st) svc.stats = decodeStats(st);
  return svc;
}

/** Decodes one destination reply (cmd NEW_DEST). `svcFamily` fills in for kernels without ADDR_FAMILY. */
export function decodeDest(msg: NlMsg, svcFamily: Family = 4): Dest {
  const top = expectCmd(msg, IpvsCmd.NEW_DEST);
  const a = attrMap(required(top, CMD_ATTR.DEST, 'dest nest'));
  const afb = a.get(DEST.ADDR_FAMILY);
  const family = afb ? afToFamily(attrU16(afb)) : svcFamily;
  const n = (t: number): number => {
    const v = a.get(t);
    return v ? attrU32(v) : 0;
  };
  const d: Dest = {
    family,
    address: formatAddress(family, required(a, DEST.ADDR, 'dest address')),
    port: attrBe16(required(a, DEST.PORT, 'dest port')),
    forward: forwardName(n(DEST.FWD_METHOD)),
    weight: n(DEST.WEIGHT),
    upperThreshold: n(DEST.U_THRESH),
    lowerThreshold: n(DEST.L_THRESH),
    activeConns: n(DEST.ACTIVE_CONNS),
    inactiveConns: n(DEST.INACT_CONNS),
    persistentConns: n(DEST.PERSIST_CONNS),
  };
  const st = a.get(DEST.STATS64) ?? a.get(DEST.STATS);
  if (st) d.stats = decodeStats(st);
  return d;
}

export function decodeInfo(msg: NlMsg): IpvsInfo {
  const a = expectCmd(msg, IpvsCmd.SET_INFO);
  const code = attrU32(required(a, INFO.VERSION, 'version'));
  return {
    versionCode: code,
    version: `${(code >> 16) & 0xff}.${(code >> 8) & 0xff}.${code & 0xff}`,
    connTableSize: attrU32(required(a, INFO.CONN_TAB_SIZE, 'conn table size')),
  };
}

export function decodeConfig(msg: NlMsg): IpvsTimeouts {
  const a = expectCmd(msg, IpvsCmd.SET_CONFIG);
  const n = (t: number): number => {
    const v = a.get(t);
    return v ? attrU32(v) : 0;
  };
  return { tcp: n(CMD_ATTR.TIMEOUT_TCP), tcpFin: n(CMD_ATTR.TIMEOUT_TCP_FIN), udp: n(CMD_ATTR.TIMEOUT_UDP) };
}
