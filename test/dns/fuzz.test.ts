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
import { Rng, hostilePacket } from '../helpers/fuzz.js';

const IN_PROCESS = Number(process.env.VIPDNS_FUZZ_IN_PROCESS ?? 900_000);
const OVER_UDP = Number(process.env.VIPDNS_FUZZ_UDP ?? 100_000);

function resolver(): Resolver {
  const s = emptyState();
  s.networks.front = { id: 'f', name: 'front', subnet: '10.0.9.0/24', gateway: '10.0.9.1', attachable: true, createdAt: '', ipamCursor: '0' };
  s.services.web = { id: 'w', name: 'web', aliases: [], endpointMode: 'vip', attachments: [{ network: 'front', vip: '10.0.9.2' }], ports: [{ name: 'http', protocol: 'tcp', target: 80 }], fwmark: 256, createdAt: '' };
  s.services.api = { id: 'a', name: 'api', aliases: [], endpointMode: 'dnsrr', attachments: [{ network: 'front' }], ports: [{ name: 'grpc', protocol: 'tcp', target: 9 }], fwmark: 257, createdAt: '' };
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
  for (let c = 0; c < 50; c++) {
    await new Promise<void>((res) => {
      const s = net.connect(server.port, '127.0.0.1', () => {
        for (let k = 0; k < 20; k++) {
          const p = hostilePacket(rng);
          const len = Buffer.alloc(2);
          len.writeUInt16BE(k === 19 ? 65535 : p.length);
          s.write(Buffer.concat([len, p]));
        }
        setTimeout(() => s.destroy(), 20);
      });
      s.on('error', () => undefined);
      s.on('close', () => res());
    });
  }
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
