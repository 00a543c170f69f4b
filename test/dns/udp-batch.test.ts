// The batched UDP transport (native/udp.c through src/dns/udp-batch.ts) on real sockets:
// many datagrams per batch, IPv6, truncation, sends to dead ports, close while readable,
// typed bind errors, and the DNS server on both UDP paths.
import test from 'ava';
import * as dgram from 'node:dgram';
import * as packet from 'dns-packet';
import { AnswerIndex, DEFAULT_TTL } from '../../src/dns/answers.js';
import { Resolver } from '../../src/dns/resolver.js';
import { DnsServer } from '../../src/dns/server.js';
import { type RecvBatch, UdpBatchSocket, udpBatchUnavailable } from '../../src/dns/udp-batch.js';
import { emptyState } from '../../src/catalog/model.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// The addon is built by `npm ci` on Linux; elsewhere these tests have nothing to test.
const maybe = udpBatchUnavailable() ? test.skip : test.serial;

interface Seen {
  batches: number[];
  msgs: string[];
  addrs: string[];
}

/** An echo server recording every batch. */
function echo(
  host: string,
  family: 4 | 6,
  extra: { slotBytes?: number; port?: number; reusePort?: boolean; onBatch?: (b: RecvBatch, s: UdpBatchSocket) => void } = {},
): { sock: UdpBatchSocket; seen: Seen } {
  const seen: Seen = { batches: [], msgs: [], addrs: [] };
  const sock: UdpBatchSocket = UdpBatchSocket.open({
    host,
    family,
    port: extra.port ?? 0,
    reusePort: extra.reusePort ?? false,
    ...(extra.slotBytes ? { slotBytes: extra.slotBytes } : {}),
    onBatch: (b) => {
      seen.batches.push(b.count);
      for (let i = 0; i < b.count; i++) {
        seen.msgs.push(b.datagram(i).toString());
        seen.addrs.push(b.address(i));
        sock.reply(b.datagram(i), b, i);
      }
      extra.onBatch?.(b, sock);
    },
  });
  return { sock, seen };
}

async function client(type: 'udp4' | 'udp6', host: string): Promise<dgram.Socket> {
  const c = dgram.createSocket(type);
  await new Promise<void>((r) => c.bind(0, host, () => r()));
  return c;
}

function collect(c: dgram.Socket, n: number, ms = 3000): Promise<string[]> {
  const got: string[] = [];
  return new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`got ${got.length}/${n} replies`)), ms);
    c.on('message', (m) => {
      got.push(m.toString());
      if (got.length === n) {
        clearTimeout(timer);
        res(got);
      }
    });
  });
}

maybe('many datagrams arrive in few batches, each echoed to its sender in order', async (t) => {
  const { sock, seen } = echo('127.0.0.1', 4);
  t.teardown(() => sock.close());
  const c = await client('udp4', '127.0.0.1');
  t.teardown(() => c.close());
  const replies = collect(c, 200);
  // Sent before the event loop can read: the kernel queues them and one readiness drains many.
  for (let i = 0; i < 200; i++) c.send(`q${i}`, sock.port, '127.0.0.1');
  const got = await replies;
  t.is(seen.msgs.length, 200);
  t.deepEqual(seen.msgs, Array.from({ length: 200 }, (_, i) => `q${i}`));
  t.deepEqual(got, seen.msgs);
  t.true(Math.max(...seen.batches) > 1, `batch sizes ${seen.batches.join(',')}`);
  t.true(seen.batches.every((n) => n <= 64));
  t.true(seen.addrs.every((a) => a === '127.0.0.1'));
  t.is(sock.sendDropped, 0);
});

maybe('IPv6: bind ::1, peer address text, replies', async (t) => {
  const { sock, seen } = echo('::1', 6);
  t.teardown(() => sock.close());
  const c = await client('udp6', '::1');
  t.teardown(() => c.close());
  const replies = collect(c, 3);
  for (const m of ['a', 'bb', '']) c.send(m, sock.port, '::1');
  t.deepEqual((await replies).sort(), ['', 'a', 'bb']);
  t.deepEqual(seen.addrs, ['::1', '::1', '::1']);
});

maybe('a datagram larger than its slot is detected (MSG_TRUNC) and dropped; the rest get through', async (t) => {
  const { sock, seen } = echo('127.0.0.1', 4, { slotBytes: 512 });
  t.teardown(() => sock.close());
  const c = await client('udp4', '127.0.0.1');
  t.teardown(() => c.close());
  const replies = collect(c, 2);
  c.send('x'.repeat(512), sock.port, '127.0.0.1'); // fits exactly
  c.send('y'.repeat(513), sock.port, '127.0.0.1'); // one byte too many
  c.send(Buffer.alloc(60000, 0x7a), sock.port, '127.0.0.1');
  c.send('small', sock.port, '127.0.0.1');
  const got = await replies;
  t.deepEqual(got, ['x'.repeat(512), 'small']);
  await sleep(50);
  t.is(sock.truncated, 2);
  t.is(seen.msgs.length, 2);
});

maybe('default slots take the largest UDP datagram whole', async (t) => {
  const { sock } = echo('127.0.0.1', 4);
  t.teardown(() => sock.close());
  const c = await client('udp4', '127.0.0.1');
  t.teardown(() => c.close());
  const replies = collect(c, 1);
  const big = Buffer.alloc(65507, 0x61);
  c.send(big, sock.port, '127.0.0.1');
  t.is((await replies)[0]!.length, 65507);
  t.is(sock.truncated, 0);
});

maybe('replies to a closed port do not break the receive loop', async (t) => {
  const { sock } = echo('127.0.0.1', 4);
  t.teardown(() => sock.close());
  const gone = await client('udp4', '127.0.0.1');
  const goneReplies = collect(gone, 1);
  gone.send('first', sock.port, '127.0.0.1');
  await goneReplies;
  // Take the peer from a fresh datagram, then close that client and keep sending to it.
  let peer: Uint32Array | undefined;
  const probe = UdpBatchSocket.open({ host: '127.0.0.1', family: 4, port: 0, onBatch: (b) => (peer = b.peer(0)) });
  t.teardown(() => probe.close());
  gone.send('hello', probe.port, '127.0.0.1');
  for (let i = 0; i < 50 && !peer; i++) await sleep(10);
  t.truthy(peer);
  await new Promise<void>((r) => gone.close(() => r()));
  for (let i = 0; i < 100; i++) probe.send(Buffer.from(`to-nobody-${i}`), peer!);
  await sleep(20);
  for (let i = 0; i < 100; i++) probe.send(Buffer.from(`again-${i}`), peer!);
  // Both sockets still receive, and the echo still replies.
  peer = undefined;
  const c = await client('udp4', '127.0.0.1');
  t.teardown(() => c.close());
  const replies = collect(c, 1);
  c.send('still', sock.port, '127.0.0.1');
  c.send('alive', probe.port, '127.0.0.1');
  t.deepEqual(await replies, ['still']);
  for (let i = 0; i < 50 && !peer; i++) await sleep(10);
  t.truthy(peer);
});

maybe('close inside a batch callback while more is queued: no more callbacks, no crash', async (t) => {
  let calls = 0;
  const { sock } = echo('127.0.0.1', 4, {
    onBatch: (_b, s) => {
      calls++;
      s.close();
    },
  });
  const c = await client('udp4', '127.0.0.1');
  t.teardown(() => c.close());
  for (let i = 0; i < 300; i++) c.send(`q${i}`, sock.port, '127.0.0.1');
  await sleep(100);
  t.is(calls, 1);
  t.true(sock.closed);
  sock.close(); // twice is fine
  sock.send(Buffer.from('late'), new Uint32Array(6)); // after close: dropped, no throw
  sock.flush();
  t.pass();
});

maybe('close with datagrams queued but unread: the port is released and can be bound again', async (t) => {
  const { sock, seen } = echo('127.0.0.1', 4);
  const port = sock.port;
  const c = await client('udp4', '127.0.0.1');
  t.teardown(() => c.close());
  for (let i = 0; i < 20; i++) c.send(`q${i}`, port, '127.0.0.1');
  sock.close();
  await sleep(50);
  t.is(seen.msgs.length, 0);
  const again = UdpBatchSocket.open({ host: '127.0.0.1', family: 4, port, onBatch: () => undefined });
  t.is(again.port, port);
  again.close();
});

maybe('bind errors are typed like Node system errors', (t) => {
  const { sock } = echo('127.0.0.1', 4);
  t.teardown(() => sock.close());
  const e = t.throws(() => UdpBatchSocket.open({ host: '127.0.0.1', family: 4, port: sock.port, onBatch: () => undefined })) as NodeJS.ErrnoException;
  t.is(e.code, 'EADDRINUSE');
  t.is(e.syscall, 'bind');
  t.is(typeof e.errno, 'number');
  const bad = t.throws(() => UdpBatchSocket.open({ host: 'not-an-ip', family: 4, port: 0, onBatch: () => undefined })) as NodeJS.ErrnoException;
  t.is(bad.code, 'EINVAL');
});

function resolver(): Resolver {
  const s = emptyState();
  s.networks.front = { id: 'f', name: 'front', subnet: '10.0.9.0/24', gateway: '10.0.9.1', attachable: true, createdAt: '', ipamCursor: '0' };
  s.services.web = { id: 'w', name: 'web', aliases: [], endpointMode: 'vip', attachments: [{ network: 'front', vip: '10.0.9.2' }], ports: [], fwmark: 256, createdAt: '' };
  const index = new AnswerIndex({ suffix: 'vipdns.internal', ttl: DEFAULT_TTL, loopbackSeesAll: true, othersSeeAll: false });
  index.rebuild(s);
  return new Resolver({ index });
}

for (const udpBatch of [true, false]) {
  const host = '127.0.0.1';
  (udpBatch ? maybe : test.serial)(`DnsServer answers a burst over UDP (udpBatch: ${udpBatch})`, async (t) => {
    const server = new DnsServer({ host, port: 0, resolver: resolver(), udpBatch });
    await server.start();
    t.teardown(() => server.stop());
    t.true(server.listening);
    const c = await client('udp4', host);
    t.teardown(() => c.close());
    const got = new Map<number, string>();
    const done = new Promise<void>((res, rej) => {
      const timer = setTimeout(() => rej(new Error(`${got.size}/150 answers`)), 3000);
      c.on('message', (m) => {
        const p = packet.decode(m);
        got.set(p.id ?? -1, (p.answers?.[0] as { data?: string } | undefined)?.data ?? (p as { rcode?: string }).rcode ?? '');
        if (got.size === 150) {
          clearTimeout(timer);
          res();
        }
      });
    });
    for (let i = 0; i < 150; i++) {
      c.send(packet.encode({ id: i, type: 'query', questions: [{ name: i % 2 ? 'web' : 'nope.vipdns.internal', type: 'A', class: 'IN' }] }), server.port, host);
    }
    c.send(Buffer.from([1, 2, 3]), server.port, host); // short: dropped, and the rest still answered
    await done;
    for (let i = 0; i < 150; i++) t.is(got.get(i), i % 2 ? '10.0.9.2' : 'NXDOMAIN');
  });
}

maybe('DnsServer on ::1 with the batch transport', async (t) => {
  const server = new DnsServer({ host: '::1', port: 0, resolver: resolver() });
  await server.start();
  t.teardown(() => server.stop());
  const c = await client('udp6', '::1');
  t.teardown(() => c.close());
  const answer = new Promise<packet.Packet>((res) => c.on('message', (m) => res(packet.decode(m))));
  c.send(packet.encode({ id: 7, type: 'query', questions: [{ name: 'web', type: 'A', class: 'IN' }] }), server.port, '::1');
  const p = await answer;
  t.is((p.answers?.[0] as { data: string }).data, '10.0.9.2');
});

maybe('SO_REUSEPORT sockets share a port; one flow lands on one of them until spread() scatters it', async (t) => {
  const a = echo('127.0.0.1', 4);
  t.teardown(() => a.sock.close());
  const reuse = (port: number): { sock: UdpBatchSocket; seen: Seen } => echo('127.0.0.1', 4, { port, reusePort: true });
  // `a` did not ask for SO_REUSEPORT: nobody may join it.
  t.throws(() => reuse(a.sock.port), { code: 'EADDRINUSE' });
  const first = reuse(0);
  const second = reuse(first.sock.port);
  t.teardown(() => {
    first.sock.close();
    second.sock.close();
  });
  const c = await client('udp4', '127.0.0.1');
  t.teardown(() => c.close());
  const burst = async (tag: string): Promise<void> => {
    for (let k = 0; k < 4; k++) {
      const replies = collect(c, 50);
      for (let i = 0; i < 50; i++) c.send(`${tag}${k}-${i}`, first.sock.port, '127.0.0.1');
      await replies;
      c.removeAllListeners('message');
    }
  };
  await burst('hash');
  const hashed = [first.seen.msgs.length, second.seen.msgs.length].sort((x, y) => x - y);
  t.deepEqual(hashed, [0, 200], 'the kernel hashes one flow to one socket');
  first.sock.spread(2);
  await burst('spread');
  const spread = [first.seen.msgs, second.seen.msgs].map((m) => m.filter((x) => x.startsWith('spread')).length);
  t.is(spread[0]! + spread[1]!, 200);
  t.true(spread.every((n) => n >= 40), `spread(2) scatters one flow over both sockets: ${spread.join(' / ')}`);
  t.throws(() => first.sock.spread(0), { message: /1\.\.1024/ });
});

maybe('a burst that arrives while the event loop is busy waits in the 4 MiB receive buffer instead of being dropped', async (t) => {
  const server = new DnsServer({ host: '127.0.0.1', port: 0, resolver: resolver() });
  await server.start();
  t.teardown(() => server.stop());
  // The client sends with the addon: one synchronous sendmmsg per 64, so the whole burst is in
  // the server's socket before its (same-thread) event loop can read any of it.
  const answers = new Set<number>();
  const c: UdpBatchSocket = UdpBatchSocket.open({
    host: '127.0.0.1',
    family: 4,
    port: 0,
    rcvbuf: 8 << 20,
    onBatch: (b) => {
      for (let i = 0; i < b.count; i++) {
        const p = packet.decode(b.datagram(i));
        if ((p.answers?.[0] as { data?: string } | undefined)?.data === '10.0.9.2') answers.add(p.id ?? -1);
      }
    },
  });
  t.teardown(() => c.close());
  const peer = new Uint32Array(6);
  peer[0] = 4;
  peer[1] = server.port;
  new Uint8Array(peer.buffer, 8, 4).set([127, 0, 0, 1]);
  const N = 1500; // ~1.5 MB of kernel memory queued: 7x the usual 208 KiB default
  for (let i = 0; i < N; i++) c.send(packet.encode({ id: i, type: 'query', questions: [{ name: 'web', type: 'A', class: 'IN' }] }), peer);
  c.flush();
  t.is(c.sendDropped, 0);
  const until = Date.now() + 200;
  while (Date.now() < until) {
    /* busy: nobody reads */
  }
  for (let i = 0; i < 100 && answers.size < N; i++) await sleep(20);
  t.is(answers.size, N, 'every query of the burst answered');
});

/** Sends `msg` from `c` to host:port; resolves with the reply's text and the address it came from. */
function ask(c: dgram.Socket, msg: string | Uint8Array, host: string, port: number, ms = 3000): Promise<{ text: string; from: string; raw: Buffer }> {
  return new Promise((res, rej) => {
    const timer = setTimeout(() => {
      c.off('message', on);
      rej(new Error(`no reply from ${host}`));
    }, ms);
    const on = (m: Buffer, r: dgram.RemoteInfo): void => {
      clearTimeout(timer);
      c.off('message', on);
      res({ text: m.toString(), from: r.address, raw: m });
    };
    c.on('message', on);
    c.send(msg, port, host);
  });
}

// 127.0.0.0/8 is all local on lo: 127.0.0.2 is a second address of this host, and the kernel's
// preferred source toward a client at 127.0.0.1 is 127.0.0.1. A client must get its answer from
// the address it asked.
maybe('on 0.0.0.0 each reply leaves from the address its query was sent to', async (t) => {
  const { sock, seen } = echo('0.0.0.0', 4);
  t.teardown(() => sock.close());
  t.true(sock.pktinfo);
  const locals: (string | undefined)[] = [];
  const probe = echo('0.0.0.0', 4, { onBatch: (b) => locals.push(...Array.from({ length: b.count }, (_, i) => b.localAddress(i))) });
  t.teardown(() => probe.sock.close());
  const c = await client('udp4', '127.0.0.1');
  t.teardown(() => c.close());
  for (const to of ['127.0.0.2', '127.0.0.1', '127.0.0.3']) {
    const r = await ask(c, `to ${to}`, to, sock.port);
    t.deepEqual([r.text, r.from], [`to ${to}`, to]);
    await ask(c, 'x', to, probe.sock.port);
  }
  t.deepEqual(locals, ['127.0.0.2', '127.0.0.1', '127.0.0.3'], 'the batch tells where each datagram arrived');
  t.deepEqual(seen.addrs, ['127.0.0.1', '127.0.0.1', '127.0.0.1']);
});

maybe('a reply sent later from a saved peer still leaves from the address asked', async (t) => {
  let sock: UdpBatchSocket | undefined;
  sock = UdpBatchSocket.open({
    host: '0.0.0.0',
    family: 4,
    port: 0,
    onBatch: (b) => {
      for (let i = 0; i < b.count; i++) {
        const peer = b.peer(i);
        const data = Buffer.from(b.datagram(i));
        setTimeout(() => sock!.send(data, peer), 5); // the batch is gone by then
      }
    },
  });
  t.teardown(() => sock!.close());
  const c = await client('udp4', '127.0.0.1');
  t.teardown(() => c.close());
  const r = await ask(c, 'later', '127.0.0.2', sock.port);
  t.deepEqual([r.text, r.from], ['later', '127.0.0.2']);
});

maybe('on :: (dual-stack) IPv4 and IPv6 replies leave from the address asked', async (t) => {
  const locals: (string | undefined)[] = [];
  const { sock, seen } = echo('::', 6, { onBatch: (b) => locals.push(...Array.from({ length: b.count }, (_, i) => b.localAddress(i))) });
  t.teardown(() => sock.close());
  t.true(sock.pktinfo);
  const c4 = await client('udp4', '127.0.0.1');
  t.teardown(() => c4.close());
  const r4 = await ask(c4, 'v4', '127.0.0.2', sock.port);
  t.deepEqual([r4.text, r4.from], ['v4', '127.0.0.2']);
  const c6 = await client('udp6', '::1');
  t.teardown(() => c6.close());
  const r6 = await ask(c6, 'v6', '::1', sock.port);
  t.deepEqual([r6.text, r6.from], ['v6', '::1']);
  t.deepEqual(seen.addrs, ['::ffff:127.0.0.1', '::1']);
  t.deepEqual(locals, ['127.0.0.2', '::1']);
});

maybe('a socket bound to one address asks for no destination and replies as before', async (t) => {
  const locals: (string | undefined)[] = [];
  const { sock } = echo('127.0.0.1', 4, { onBatch: (b) => locals.push(b.localAddress(0)) });
  t.teardown(() => sock.close());
  t.false(sock.pktinfo);
  const c = await client('udp4', '127.0.0.1');
  t.teardown(() => c.close());
  const r = await ask(c, 'plain', '127.0.0.1', sock.port);
  t.deepEqual([r.text, r.from], ['plain', '127.0.0.1']);
  t.deepEqual(locals, [undefined]);
});

maybe('DnsServer on 0.0.0.0: answers from the address asked, on the fast path and the general one', async (t) => {
  const server = new DnsServer({ host: '0.0.0.0', port: 0, resolver: resolver() });
  await server.start();
  t.teardown(() => server.stop());
  const c = await client('udp4', '127.0.0.1');
  t.teardown(() => c.close());
  for (const [id, name, want] of [
    [1, 'web', '10.0.9.2'], // a known name: written straight into the send arena
    [2, 'nope.vipdns.internal', 'NXDOMAIN'], // Resolver.handle
  ] as const) {
    const r = await ask(c, packet.encode({ id, type: 'query', questions: [{ name, type: 'A', class: 'IN' }] }), '127.0.0.2', server.port);
    const p = packet.decode(r.raw);
    t.is(r.from, '127.0.0.2', name);
    t.is(p.id, id);
    t.is((p.answers?.[0] as { data?: string } | undefined)?.data ?? (p as { rcode?: string }).rcode, want);
  }
});
