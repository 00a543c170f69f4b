// Generic netlink: the 4-byte genlmsghdr, and nlctrl (the controller family
// with the fixed id 0x10) that maps family names like "IPVS" to their ids.
import { NetlinkProtocolError } from './errors.js';
import {
  AttrWriter, NLM_F_ACK, NLM_F_REQUEST, attrMap, attrString, attrU16, attrU32, encodeNlMsg, parseAttrs,
  type NlMsg,
} from './nlmsg.js';

export const GENL_HDRLEN = 4;
export const GENL_ID_CTRL = 0x10;

export const CTRL_CMD_NEWFAMILY = 1;
export const CTRL_CMD_GETFAMILY = 3;
export const CTRL_ATTR_FAMILY_ID = 1;
export const CTRL_ATTR_FAMILY_NAME = 2;
export const CTRL_ATTR_VERSION = 3;
export const CTRL_ATTR_HDRSIZE = 4;
export const CTRL_ATTR_MAXATTR = 5;
export const CTRL_ATTR_OPS = 6;
export const CTRL_ATTR_MCAST_GROUPS = 7;
export const CTRL_ATTR_OP_ID = 1;
export const CTRL_ATTR_OP_FLAGS = 2;
export const CTRL_ATTR_MCAST_GRP_NAME = 1;
export const CTRL_ATTR_MCAST_GRP_ID = 2;

export interface GenlHeader {
  cmd: number;
  version: number;
}

/** genlmsghdr + attributes: the payload of a generic netlink message. */
export function encodeGenlPayload(h: GenlHeader, attrs: Uint8Array = new Uint8Array(0)): Buffer {
  const buf = Buffer.alloc(GENL_HDRLEN + attrs.length);
  buf.writeUInt8(h.cmd, 0);
  buf.writeUInt8(h.version, 1);
  // bytes 2-3: reserved, zero
  buf.set(attrs, GENL_HDRLEN);
  return buf;
}

export interface GenlMsg extends GenlHeader {
  attrs: Buffer;
}

export function parseGenl(msg: NlMsg): GenlMsg {
  if (msg.payload.length < GENL_HDRLEN) {
    throw new NetlinkProtocolError(`generic netlink message too short (${msg.payload.length} bytes)`);
  }
  return { cmd: msg.payload.readUInt8(0), version: msg.payload.readUInt8(1), attrs: msg.payload.subarray(GENL_HDRLEN) };
}

/** CTRL_CMD_GETFAMILY by name; version 1 and REQUEST|ACK, exactly as libnl sends it. */
export function encodeGetFamilyPayload(name: string): Buffer {
  return encodeGenlPayload(
    { cmd: CTRL_CMD_GETFAMILY, version: 1 },
    new AttrWriter().string(CTRL_ATTR_FAMILY_NAME, name).finish(),
  );
}

export function encodeGetFamily(name: string, seq: number, pid: number): Buffer {
  return encodeNlMsg({ type: GENL_ID_CTRL, flags: NLM_F_REQUEST | NLM_F_ACK, seq, pid }, encodeGetFamilyPayload(name));
}

export interface GenlFamily {
  id: number;
  name: string;
  version: number;
  hdrSize: number;
  maxAttr: number;
  ops: { id: number; flags: number }[];
  mcastGroups: { name: string; id: number }[];
}

export function decodeFamily(msg: NlMsg): GenlFamily {
  const g = parseGenl(msg);
  if (g.cmd !== CTRL_CMD_NEWFAMILY) throw new NetlinkProtocolError(`nlctrl: unexpected cmd ${g.cmd}`);
  const a = attrMap(g.attrs);
  const id = a.get(CTRL_ATTR_FAMILY_ID);
  const name = a.get(CTRL_ATTR_FAMILY_NAME);
  if (!id || !name) throw new NetlinkProtocolError('nlctrl: reply without family id/name');
  const u32 = (t: number): number => {
    const v = a.get(t);
    return v ? attrU32(v) : 0;
  };
  const ops = parseAttrs(a.get(CTRL_ATTR_OPS) ?? Buffer.alloc(0)).map((op) => {
    const m = attrMap(op.value);
    const idv = m.get(CTRL_ATTR_OP_ID);
    const fl = m.get(CTRL_ATTR_OP_FLAGS);
    return { id: idv ? attrU32(idv) : 0, flags: fl ? attrU32(fl) : 0 };
  });
  const mcastGroups = parseAttrs(a.get(CTRL_ATTR_MCAST_GROUPS) ?? Buffer.alloc(0)).map((grp) => {
    const m = attrMap(grp.value);
    const n = m.get(CTRL_ATTR_MCAST_GRP_NAME);
    const i = m.get(CTRL_ATTR_MCAST_GRP_ID);
    return { name: n ? attrString(n) : '', id: i ? attrU32(i) : 0 };
  });
  return {
    id: attrU16(id),
    name: attrString(name),
    version: u32(CTRL_ATTR_VERSION),
    hdrSize: u32(CTRL_ATTR_HDRSIZE),
    maxAttr: u32(CTRL_ATTR_MAXATTR),
    ops,
    mcastGroups,
  };
}
