// Fuzzing the request path: hundreds of thousands of hostile packets through the resolver,
// then more over real UDP and TCP sockets to a running server; afterwards it must still
// answer a valid query correctly. (The full 1,000,000 over UDP: bench/dns-fuzz.ts.)
import test from 'ava';
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import * as packet from 'dns-packet';
import { AnswerIndex, DEFAULT_TTL } from '../../src/dns/answers.js';
import { Forwarder } from '../../src/dns/forward/forwarder.js';
import { DnsMetrics } from '../../src/dns/metrics.js';
import { Resolver } from '../../src/dns/resolver.js';
import { DnsServer } from '../../src/dns/server.js';
import { emptyState } from '../../src/catalog/model.js';
import { Rng, garbageTcpStreams, hostilePacket } from '../helpers/fuzz.js';

const IN_PROCESS = Number(process.env.VIPDNS_FUZZ_IN_PROCESS ?? 900_000);
const OVER_UDP = Number(process.env.VIPDNS_FUZZ_UDP ?? 100_000);

function resolver(): Resolver {
  const s = emptyState();
  s.networks.front = { id: 'f', name: 'front', subnet: '10.0.9.0/24', gateway: '10.0.9.1', attachable: true, createdAt: '', ipamCursor: '0' };
  s.services.web = { id: 'w', name: 'web', aliases: [], endpointMode: 'vip', attachments: [{ network: 'front', vip: '10.0.9.2' }], ports: [{ name: 'http', protocol: 'tcp', target: 80 }], fwmark: 256, createdAt: '' };
  s.services.api = { id: 'a', name: 'api', aliases: [], endpointMode: 'dnsrr', attachments: [{ network: 'front' }], ports: [{ name: 'grpc', protocol: 'tcp', target: 9 }], fwmark: 257, createdAt: '' };
  // 40 tasks: answers over 512 bytes, so size limits and TC are exercised.
  s.services.big = { id: 'b', name: 'big', aliases: [], endpointMode: 'dnsrr', attachments: [{ network: 'front' }], ports: [], fwmark: 258, createdAt: '' };
  for (let i = 0; i < 40; i++) s.tasks[`b${i}`] = { id: `b${i}`, name: `big.${i}`, service: 'big', slot: i, addresses: { front: `10.0.9.${100 + i}` }, health: 'unknown', createdAt: '' };
  for (let i = 0; i < 5; i++) s.tasks[`t${i}`] = { id: `t${i}`, name: `api.${i}`, service: 'api', slot: i, addresses: { front: `10.0.9.${10 + i}` }, health: 'unknown', createdAt: '' };
  const index = new AnswerIndex({ suffix: 'vipdns.internal', ttl: DEFAULT_TTL, loopbackSeesAll: true, othersSeeAll: false });
  index.rebuild(s);
  return new Resolver({ index, forwarder: new Forwarder({ upstreams: [] }), metrics: new DnsMetrics() });
}

const valid = (id: number, name = 'WeB'): Buffer => packet.encode({ id, type: 'query', flags: packet.RECURSION_DESIRED, questions: [{ name, type: 'A', class: 'IN' }] });

test(`${IN_PROCESS} hostile packets through the resolver: no exception, every reply well-formed`, async (t) => {
  const r = resolver();
  const rng = new Rng(0xd15ea5e);
  let replies = 0;
  let bad = 0;
  for (let i = 0; i < IN_PROCESS; i++) {
    const pkt = hostilePacket(rng);
    let out = r.handle(pkt, i % 2 ? '127.0.0.1' : '10.0.9.77', i % 3 ? 'udp' : 'tcp');
    if (out instanceof Promise) out = await out;
    if (!out) continue;
    replies++;
    if (out.length < 12 || (out[2]! & 0x80) === 0 || out.readUInt16BE(0) !== pkt.readUInt16BE(0)) bad++;
    else if (i % 97 === 0) packet.decode(out); // our encoder's output decodes
  }
  t.is(bad, 0);
  t.true(replies > IN_PROCESS / 4, `${replies} replies`);
  const ok = packet.decode(r.handle(valid(9), '127.0.0.1', 'udp') as Buffer);
  t.is((ok.answers?.[0] as { data: string }).data, '10.0.9.2');
  t.is(ok.answers?.[0]?.name, 'WeB');
});

const FAST_PATH = Number(process.env.VIPDNS_FUZZ_FAST_PATH ?? 200_000);

/** A valid query in random letter case, sometimes with EDNS (any size, version 0) or an odd class. */
function casedQuery(rng: Rng): Buffer {
  const names = ['web', 'tasks.web', 'api', 'big', 'tasks.BIG', 'tasks.api', 'web.front', '_http._tcp.web', '_grpc._tcp.api', 'web.front.vipdns.internal', 'nope', 'x.example', '2.9.0.10.in-addr.arpa', '12.9.0.10.in-addr.arpa'];
  let name = names[rng.int(names.length)]!;
  name = [...name].map((c) => (rng.int(2) ? c.toUpperCase() : c)).join('');
  const types = ['A', 'AAAA', 'SRV', 'PTR', 'ANY', 'TXT', 'SOA'] as packet.RecordType[];
  const edns = rng.int(3);
  return packet.encode({
    id: rng.int(65536),
    type: 'query',
    flags: rng.int(2) ? packet.RECURSION_DESIRED : packet.CHECKING_DISABLED,
    questions: [{ name, type: types[rng.int(types.length)]!, class: rng.int(20) ? 'IN' : 'ANY' }],
    additionals: edns ? [{ type: 'OPT', name: '.', udpPayloadSize: rng.int(3) ? 1232 : rng.int(65536), extendedRcode: 0, ednsVersion: rng.int(10) ? 0 : 1, flags: 0, flag_do: rng.int(2) === 1, options: [] }] : [],
  });
}

test(`UDP fast path: ${FAST_PATH} packets answered byte for byte as the general path would, or declined`, async (t) => {
  // Two resolvers fed the same packets: `fast` tries answerUdp first (as the server does), `general`
  // only ever runs handle(). Shuffles draw from the same seeded sequence for both.
  const fast = resolver();
  const general = resolver();
  const rng = new Rng(0xfa57fa57);
  const realRandom = Math.random;
  let seed = 1;
  Math.random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  t.teardown(() => (Math.random = realRandom));
  const arena = Buffer.alloc(8192);
  const clients = ['127.0.0.1', '10.0.9.77', '192.0.2.1', '::1'];
  let hits = 0;
  let mismatches = 0;
  let first = '';
  for (let i = 0; i < FAST_PATH; i++) {
    const pkt = i % 3 === 0 ? hostilePacket(rng) : casedQuery(rng);
    // The datagram sits at an offset in a larger buffer with garbage around it, as in a batch.
    const pre = rng.int(40);
    const data = Buffer.alloc(pre + pkt.length + 40, 0xa5);
    pkt.copy(data, pre);
    const at = rng.int(64);
    const client = clients[i % clients.length]!;
    seed = i + 1;
    const n = fast.answerUdp(data, pre, pkt.length, client, arena, at);
    let got: Buffer | undefined;
    if (n > 0) {
      hits++;
      got = Buffer.from(arena.subarray(at, at + n));
    } else {
      seed = i + 1;
      const r = fast.handle(Buffer.from(pkt), client, 'udp');
      got = r instanceof Promise ? await r : r;
    }
    seed = i + 1;
    const r = general.handle(Buffer.from(pkt), client, 'udp');
    const want = r instanceof Promise ? await r : r;
    if ((got === undefined) !== (want === undefined) || (got && want && !got.equals(want))) {
      mismatches++;
      first ||= `packet ${pkt.toString('hex')} from ${client}: fast=${n} got ${got?.toString('hex')} want ${want?.toString('hex')}`;
    }
  }
  t.is(mismatches, 0, first);
  t.true(hits > FAST_PATH / 3, `${hits} fast answers`);
  // The metrics agree too (durations aside: the fast path observes per batch).
  const tallies = (r: Resolver): unknown => {
    const m = r.metrics!;
    const dump = (x: { cells: Map<string, { n: number }> }): Record<string, number> => Object.fromEntries([...x.cells].filter(([, c]) => c.n > 0).map(([k, c]) => [k, c.n]));
    return { requests: dump(m.requests), responses: dump(m.responses), answers: dump(m.answers), malformed: dump(m.malformed) };
  };
  t.deepEqual(tallies(fast), tallies(general));
});

test(`${OVER_UDP} hostile datagrams and garbage TCP streams to a live server, then a valid answer`, async (t) => {
  const server = new DnsServer({ host: '127.0.0.1', port: 0, resolver: resolver(), tcpIdleMs: 2000 });
  await server.start();
  t.teardown(() => server.stop());
  const sock = dgram.createSocket('udp4');
  t.teardown(() => sock.close());
  await new Promise<void>((res) => sock.bind(0, '127.0.0.1', () => res()));
  let received = 0;
  sock.on('message', () => received++);
  const rng = new Rng(0xbadc0de);
  // Paced in batches so the kernel's receive buffer, not the server, is what drops packets.
  for (let i = 0; i < OVER_UDP; i += 500) {
    for (let j = 0; j < 500; j++) sock.send(hostilePacket(rng), server.port, '127.0.0.1');
    await new Promise((r) => setImmediate(r));
  }
  // TCP: garbage frames, lying lengths, half frames, then a close.
  await garbageTcpStreams(server.port, rng, 50, 20, 20);
  const answer = await new Promise<packet.Packet>((res, rej) => {
    const c = dgram.createSocket('udp4');
    const timer = setTimeout(() => rej(new Error('no answer after fuzzing')), 3000);
    c.on('message', (m) => {
      const p = packet.decode(m);
      if (p.id !== 4321) return;
      clearTimeout(timer);
      c.close();
      res(p);
    });
    c.send(valid(4321, 'tasks.API'), server.port, '127.0.0.1');
  });
  t.is(answer.answers?.length, 5);
  t.is(answer.answers?.[0]?.name, 'tasks.API');
  t.true(received > 0);
  // Over TCP too.
  const tcpAnswer = await new Promise<packet.Packet>((res, rej) => {
    const s = net.connect(server.port, '127.0.0.1', () => {
      const q = valid(77);
      const len = Buffer.alloc(2);
      len.writeUInt16BE(q.length);
      s.write(Buffer.concat([len, q]));
    });
    let buf = Buffer.alloc(0);
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        s.destroy();
        res(packet.decode(buf.subarray(2)));
      }
    });
    s.on('error', rej);
  });
  t.is((tcpAnswer.answers?.[0] as { data: string }).data, '10.0.9.2');
});
