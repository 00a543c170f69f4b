import test from 'ava';
import {
  AttrWriter, NLA_F_NESTED, NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_MULTI, attrMap, attrString,
  attrU16, attrU32, attrUint, encodeNlMsg, parseAttrs, parseDoneErrno, parseErrorPayload, parseNlMsgs,
} from '../../src/balancer/netlink/nlmsg.js';
import { NetlinkError, NetlinkProtocolError, errnoName } from '../../src/balancer/netlink/errors.js';

test('attributes are padded to 4 bytes and nests carry NLA_F_NESTED and the total length', (t) => {
  const buf = new AttrWriter()
    .string(6, 'rr')
    .nest(1, (w) => w.u16(1, 2).u32(5, 256))
    .finish();
  // "rr\0" = 3 bytes -> nla_len 7, padded to 8
  t.deepEqual([...buf.subarray(0, 8)], [7, 0, 6, 0, 0x72, 0x72, 0, 0]);
  const attrs = parseAttrs(buf);
  t.is(attrs.length, 2);
  t.is(attrs[1]?.type, 1);
  t.true(attrs[1]?.nested);
  t.is(buf.readUInt16LE(10) & NLA_F_NESTED, NLA_F_NESTED);
  t.is(buf.readUInt16LE(8), 4 + 8 + 8);
  const inner = attrMap(attrs[1]!.value);
  t.is(attrU16(inner.get(1)!), 2);
  t.is(attrU32(inner.get(5)!), 256);
  t.is(attrString(attrs[0]!.value), 'rr');
});

test('AttrWriter grows past its initial buffer and rejects unbalanced nests', (t) => {
  const w = new AttrWriter();
  for (let i = 0; i < 200; i++) w.u32(1, i);
  t.is(w.finish().length, 200 * 8);
  t.throws(() => new AttrWriter().begin(1).finish());
  t.throws(() => new AttrWriter().end());
});

test('a datagram with several messages splits at aligned boundaries', (t) => {
  const a = encodeNlMsg({ type: 0x20, flags: NLM_F_MULTI, seq: 7, pid: 9 }, Buffer.from([1, 2, 3, 4, 5]));
  const b = encodeNlMsg({ type: NLMSG_DONE, flags: NLM_F_MULTI, seq: 7, pid: 9 }, Buffer.alloc(4));
  t.is(a.length, 24); // 21 rounded up
  t.is(a.readUInt32LE(0), 21);
  const msgs = parseNlMsgs(Buffer.concat([a, b]));
  t.is(msgs.length, 2);
  t.deepEqual([...msgs[0]!.payload], [1, 2, 3, 4, 5]);
  t.is(msgs[1]!.type, NLMSG_DONE);
  t.is(parseDoneErrno(msgs[1]!), 0);
});

test('truncated messages and attributes are protocol errors, not garbage', (t) => {
  const m = encodeNlMsg({ type: 1, flags: 0, seq: 1, pid: 1 }, Buffer.alloc(8));
  m.writeUInt32LE(200, 0);
  t.throws(() => parseNlMsgs(m), { instanceOf: NetlinkProtocolError });
  t.throws(() => parseAttrs(Buffer.from([40, 0, 1, 0, 0, 0, 0, 0])), { instanceOf: NetlinkProtocolError });
  t.throws(() => attrU32(Buffer.alloc(2)), { instanceOf: NetlinkProtocolError });
});

test('NLMSG_ERROR: errno, echoed header, and extended-ack message when NLM_F_ACK_TLVS', (t) => {
  const req = encodeNlMsg({ type: 0x20, flags: 5, seq: 11, pid: 22 }, Buffer.alloc(8));
  const tlv = new AttrWriter().string(1, 'Unknown scheduler').finish();
  const body = Buffer.alloc(4 + 16);
  body.writeInt32LE(-2, 0);
  req.copy(body, 4, 0, 16); // capped: only the header is echoed
  const msg = parseNlMsgs(
    encodeNlMsg({ type: NLMSG_ERROR, flags: NLM_F_CAPPED | NLM_F_ACK_TLVS, seq: 11, pid: 22 }, Buffer.concat([body, tlv])),
  )[0]!;
  const e = parseErrorPayload(msg);
  t.is(e.errno, 2);
  t.is(e.request.seq, 11);
  t.is(e.request.type, 0x20);
  t.is(e.kernelMessage, 'Unknown scheduler');
});

test('NetlinkError carries errno and its symbolic code', (t) => {
  const e = new NetlinkError(17, { op: 'IPVS NEW_SERVICE tcp:10.0.0.1:80' });
  t.is(e.code, 'EEXIST');
  t.is(e.errno, 17);
  t.is(e.message, 'IPVS NEW_SERVICE tcp:10.0.0.1:80: EEXIST');
  t.is(errnoName(3), 'ESRCH');
  t.is(errnoName(99999), 'ERRNO_99999');
});

test('counters decode as u32 or u64 by attribute length', (t) => {
  const b8 = Buffer.alloc(8);
  b8.writeBigUInt64LE(5_000_000_000n);
  t.is(attrUint(b8), 5_000_000_000);
  t.is(attrUint(Buffer.from([1, 0, 0, 0])), 1);
});
