// Without the native addon the DNS server says so once and serves UDP through node:dgram; on a
// wildcard address with one socket per local address, so replies leave from the address asked.
// (Its own file: ava runs each file in a fresh process, and the addon load is cached.)
import test, { type ExecutionContext } from 'ava';
import * as dgram from 'node:dgram';
import type { NetworkInterfaceInfo } from 'node:os';
import * as packet from 'dns-packet';

/** A DnsServer over an empty catalog with the UDP addon made unloadable: node:dgram serves. */
async function fallbackServer(host: string) {
  process.env.VIPDNS_UDP_ADDON = '/nonexistent/vipdns_udp.node';
  const { DnsServer } = await import('../../src/dns/server.js');
  const { Resolver } = await import('../../src/dns/resolver.js');
  const { AnswerIndex, DEFAULT_TTL } = await import('../../src/dns/answers.js');
  const { emptyState } = await import('../../src/catalog/model.js');
  const index = new AnswerIndex({ suffix: 'vipdns.internal', ttl: DEFAULT_TTL, loopbackSeesAll: true, othersSeeAll: false });
  index.rebuild(emptyState());
  const notices: string[] = [];
  const server = new DnsServer({ host, port: 0, resolver: new Resolver({ index }), onNotice: (m) => notices.push(m) });
  await server.start();
  return { server, notices };
}

test('missing addon: one notice, node:dgram answers', async (t) => {
  const { server, notices } = await fallbackServer('127.0.0.1');
  t.teardown(() => server.stop());
  t.is(notices.length, 1);
  t.regex(notices[0]!, /batched UDP unavailable.*node:dgram/);
  const c = dgram.createSocket('udp4');
  t.teardown(() => c.close());
  const reply = new Promise<packet.Packet>((res) => c.on('message', (m) => res(packet.decode(m))));
  c.send(packet.encode({ id: 5, type: 'query', questions: [{ name: 'nope.vipdns.internal', type: 'A', class: 'IN' }] }), server.port, '127.0.0.1');
  t.is((await reply).id, 5);
});

// Without the addon a wildcard address is served by one node:dgram socket per local address
// (src/dns/udp-per-address.ts). The host's address list is given by the test: 127.0.0.0/8 is
// all local on lo, so 127.0.0.2 and 127.0.0.3 stand for a second and third address.
const lo = (...addrs: string[]) => (): NodeJS.Dict<NetworkInterfaceInfo[]> => ({
  lo: addrs.map((address) => ({ address, family: address.includes(':') ? 'IPv6' : 'IPv4', netmask: '', mac: '00:00:00:00:00:00', internal: true, cidr: null }) as NetworkInterfaceInfo),
});

async function echoPerAddress(list: () => NodeJS.Dict<NetworkInterfaceInfo[]>, port = 0) {
  const { PerAddressUdp } = await import('../../src/dns/udp-per-address.js');
  const errors: Error[] = [];
  const u = new PerAddressUdp({
    host: '0.0.0.0',
    family: 4,
    port,
    recvBufferSize: 1 << 16,
    rescanMs: 3_600_000, // the test calls rescan() itself
    interfaces: list,
    onMessage: (s, msg, r) => s.send(msg, r.port, r.address),
    onError: (e) => errors.push(e),
  });
  await u.start();
  return { u, errors };
}

function ask(c: dgram.Socket, host: string, port: number, ms = 2000): Promise<string> {
  return new Promise((res, rej) => {
    const timer = setTimeout(() => (c.off('message', on), rej(new Error(`no reply from ${host}`))), ms);
    const on = (_m: Buffer, r: dgram.RemoteInfo): void => {
      clearTimeout(timer);
      c.off('message', on);
      res(r.address);
    };
    c.on('message', on);
    c.send('q', port, host);
  });
}

async function udp4Client(t: ExecutionContext): Promise<dgram.Socket> {
  const c = dgram.createSocket('udp4');
  await new Promise<void>((r) => c.bind(0, '127.0.0.1', () => r()));
  t.teardown(() => c.close());
  return c;
}

test('localAddresses: IPv4 for 0.0.0.0; IPv4 and IPv6 for ::, link-local with its interface', async (t) => {
  const { localAddresses } = await import('../../src/dns/udp-per-address.js');
  const info = (address: string, family: 'IPv4' | 'IPv6') => ({ address, family, netmask: '', mac: '', internal: false, cidr: null }) as NetworkInterfaceInfo;
  const ifaces = {
    lo: [info('127.0.0.1', 'IPv4'), info('::1', 'IPv6')],
    eth0: [info('10.1.0.1', 'IPv4'), info('10.0.9.1', 'IPv4'), info('fd00:9::1', 'IPv6'), info('fe80::1', 'IPv6')],
    br0: [info('10.0.9.1', 'IPv4')], // the same address twice: one socket
  };
  t.deepEqual(localAddresses(4, ifaces), ['10.0.9.1', '10.1.0.1', '127.0.0.1']);
  t.deepEqual(localAddresses(6, ifaces), ['10.0.9.1', '10.1.0.1', '127.0.0.1', '::1', 'fd00:9::1', 'fe80::1%eth0']);
});

test.serial('per-address sockets: each address answers from itself; a re-scan serves new addresses and drops gone ones', async (t) => {
  let list = lo('127.0.0.1', '127.0.0.2');
  const { u, errors } = await echoPerAddress(() => list());
  t.teardown(() => u.close());
  t.deepEqual(u.addresses, ['127.0.0.1', '127.0.0.2']);
  const c = await udp4Client(t);
  t.is(await ask(c, '127.0.0.2', u.port), '127.0.0.2');
  t.is(await ask(c, '127.0.0.1', u.port), '127.0.0.1');
  await t.throwsAsync(ask(c, '127.0.0.3', u.port, 300), { message: /no reply/ }, 'not a local address yet: nobody listens there');

  list = lo('127.0.0.2', '127.0.0.3');
  await u.rescan();
  t.deepEqual(u.addresses, ['127.0.0.2', '127.0.0.3']);
  t.is(await ask(c, '127.0.0.3', u.port), '127.0.0.3');
  t.is(await ask(c, '127.0.0.2', u.port), '127.0.0.2');
  // 127.0.0.1's socket is closed: its port is free again.
  const again = dgram.createSocket('udp4');
  await new Promise<void>((res, rej) => (again.once('error', rej), again.bind(u.port, '127.0.0.1', () => res())));
  again.close();
  t.deepEqual(errors, []);
});

test.serial('per-address sockets: an address someone else holds fails the start, which leaves nothing bound', async (t) => {
  const holder = dgram.createSocket('udp4');
  await new Promise<void>((r) => holder.bind(0, '127.0.0.2', () => r()));
  t.teardown(() => holder.close());
  const port = holder.address().port;
  const e = await t.throwsAsync(echoPerAddress(lo('127.0.0.1', '127.0.0.2'), port));
  t.is((e as NodeJS.ErrnoException).code, 'EADDRINUSE');
  t.regex(e!.message, /127\.0\.0\.2/, 'the error names the address');
  const free = dgram.createSocket('udp4');
  await new Promise<void>((res, rej) => (free.once('error', rej), free.bind(port, '127.0.0.1', () => res())));
  free.close();
});

test.serial('per-address sockets: an address taken after the start is reported once, the others keep answering', async (t) => {
  let list = lo('127.0.0.1');
  const { u, errors } = await echoPerAddress(() => list());
  t.teardown(() => u.close());
  const holder = dgram.createSocket('udp4');
  await new Promise<void>((r) => holder.bind(u.port, '127.0.0.3', () => r()));
  t.teardown(() => holder.close());
  list = lo('127.0.0.1', '127.0.0.3');
  await u.rescan();
  await u.rescan();
  t.is(errors.length, 1);
  t.regex(errors[0]!.message, /127\.0\.0\.3.*EADDRINUSE/);
  t.deepEqual(u.addresses, ['127.0.0.1']);
  const c = await udp4Client(t);
  t.is(await ask(c, '127.0.0.1', u.port), '127.0.0.1');
});

test.serial('DnsServer on 0.0.0.0 without the addon: says how it serves UDP, answers from the address asked', async (t) => {
  const { server, notices } = await fallbackServer('0.0.0.0');
  t.teardown(() => server.stop());
  t.true(notices.some((n) => /0\.0\.0\.0 without the addon: one socket per local address .*re-read every 5 s/.test(n)), notices.join('\n'));
  const c = await udp4Client(t);
  const from = await new Promise<{ id: number | undefined; from: string }>((res) => {
    c.once('message', (m, r) => res({ id: packet.decode(m).id, from: r.address }));
    c.send(packet.encode({ id: 9, type: 'query', questions: [{ name: 'nope.vipdns.internal', type: 'A', class: 'IN' }] }), server.port, '127.0.0.1');
  });
  t.deepEqual(from, { id: 9, from: '127.0.0.1' });
});
