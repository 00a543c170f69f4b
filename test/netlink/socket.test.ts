// The native addon against the host kernel's generic netlink (no root, no IPVS needed).
import test from 'ava';
import { existsSync } from 'node:fs';
import { NetlinkSocket } from '../../src/balancer/netlink/netlink-socket.js';
import { NetlinkChannel } from '../../src/balancer/netlink/channel.js';
import { NetlinkError } from '../../src/balancer/netlink/errors.js';
import { IpvsClient, resolveFamily } from '../../src/balancer/netlink/ipvs.js';

test('opens a NETLINK_GENERIC socket and resolves nlctrl itself', async (t) => {
  const sock = NetlinkSocket.open();
  t.true(sock.portId > 0);
  const ch = new NetlinkChannel(sock);
  const fam = await resolveFamily(ch, 'nlctrl');
  t.is(fam.id, 0x10);
  t.is(fam.name, 'nlctrl');
  ch.close();
});

test('an unknown family is a typed ENOENT', async (t) => {
  const ch = new NetlinkChannel(NetlinkSocket.open());
  const e = await t.throwsAsync(resolveFamily(ch, 'nosuchfamily'));
  t.true(e instanceof NetlinkError);
  t.is((e as NetlinkError).code, 'ENOENT');
  ch.close();
});

test('IpvsClient.open() fails with ENOENT where the kernel has no IPVS', async (t) => {
  if (existsSync('/proc/net/ip_vs')) return t.pass('this kernel has IPVS; covered by test/vm');
  const e = await t.throwsAsync(IpvsClient.open());
  t.is((e as NetlinkError).code, 'ENOENT');
});

test('waiting for a reply that never comes times out without blocking the event loop', async (t) => {
  const sock = NetlinkSocket.open();
  // A blocking wait would resolve before any timer could fire; no tick counting, so load cannot flake it.
  let fired = false;
  setTimeout(() => (fired = true), 1);
  const readable = await sock.waitReadable(100);
  t.false(readable);
  t.true(fired, 'a timer fired while the socket was being waited on');
  t.is(sock.recv(), null);
  sock.close();
});

test('the readable watcher fires (a reply arriving while we wait) without killing the process', async (t) => {
  const sock = NetlinkSocket.open();
  t.teardown(() => sock.close());
  const { encodeGetFamilyPayload } = await import('../../src/balancer/netlink/genl.js');
  const { encodeNlMsg } = await import('../../src/balancer/netlink/nlmsg.js');
  // Wait first, then send: the reply lands while the uv poll is armed, so the native callback runs.
  const waiting = sock.waitReadable(2000);
  sock.send(encodeNlMsg({ type: 0x10, flags: 0x1 | 0x4, seq: 1, pid: 0 }, encodeGetFamilyPayload('nlctrl')));
  t.true(await waiting, 'woken by the reply, not the timeout');
  t.truthy(sock.recv());
});

test('a batch of 500 requests goes out in few datagrams and all are answered', async (t) => {
  const sock = NetlinkSocket.open();
  const ch = new NetlinkChannel(sock, { maxBatch: 100 });
  const { encodeGetFamilyPayload } = await import('../../src/balancer/netlink/genl.js');
  const req = { type: 0x10, payload: encodeGetFamilyPayload('nlctrl'), op: 'nlctrl GETFAMILY' };
  const res = await ch.batch(Array.from({ length: 500 }, () => req));
  t.is(res.length, 500);
  t.true(res.every((r) => r.ok && r.messages.length === 1));
  ch.close();
});

test('use after close is EBADF; close is idempotent', (t) => {
  const sock = NetlinkSocket.open();
  sock.close();
  sock.close();
  const e = t.throws(() => sock.send(Buffer.alloc(16)));
  t.is((e as NetlinkError).code, 'EBADF');
});
