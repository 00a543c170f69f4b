import test from 'ava';
import * as packet from 'dns-packet';
import { AnswerIndex, DEFAULT_TTL } from '../../src/dns/answers.js';
import { Resolver } from '../../src/dns/resolver.js';
import { precheck } from '../../src/dns/wire.js';
import { emptyState } from '../../src/catalog/model.js';
import { parseIp } from '../../src/net/ip.js';

const LO = parseIp('127.0.0.1');

function resolver(): Resolver {
  const s = emptyState();
  s.networks.n = { id: 'n', name: 'n', subnet: '10.0.0.0/16', gateway: '10.0.0.1', attachable: false, createdAt: '', ipamCursor: '0' };
  s.services.big = { id: 'b', name: 'big', aliases: [], endpointMode: 'dnsrr', attachments: [{ network: 'n' }], ports: [], fwmark: 256, createdAt: '' };
  for (let i = 0; i < 50; i++) s.tasks[`t${i}`] = { id: `t${i}`, name: `big.${i}`, service: 'big', slot: i, addresses: { n: `10.0.1.${i + 1}` }, health: 'unknown', createdAt: '' };
  const index = new AnswerIndex({ suffix: 'vipdns.internal', ttl: DEFAULT_TTL, loopbackSeesAll: true, othersSeeAll: false });
  index.rebuild(s);
  return new Resolver({ index });
}

const query = (name: string, type: packet.RecordType = 'A', edns?: number): Buffer =>
  packet.encode({
    id: 4242,
    type: 'query',
    flags: packet.RECURSION_DESIRED,
    questions: [{ name, type, class: 'IN' }],
    additionals: edns ? [{ type: 'OPT', name: '.', udpPayloadSize: edns, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }] : [],
  });

test('hostile headers are rejected before decoding', (t) => {
  const h = Buffer.alloc(12);
  t.is(precheck(Buffer.alloc(5)).action, 'drop');
  h.writeUInt16BE(0x8000, 2);
  t.is(precheck(h).action, 'drop', 'responses are never answered');
  h.writeUInt16BE(0x2800, 2); // opcode UPDATE
  t.deepEqual(precheck(h), { action: 'reply', rcode: 4, reason: 'opcode' });
  h.writeUInt16BE(0, 2);
  h.writeUInt16BE(65535, 4);
  t.deepEqual(precheck(h), { action: 'reply', rcode: 1, reason: 'counts' });
});

test('garbage gets FORMERR or silence, never an exception', (t) => {
  const r = resolver();
  for (let i = 0; i < 20000; i++) {
    const len = Math.floor(Math.random() * 64);
    const buf = Buffer.alloc(len);
    for (let j = 0; j < len; j++) buf[j] = Math.floor(Math.random() * 256);
    if (len >= 6) buf.writeUInt16BE(1, 4); // often pass the count check to reach the decoder
    if (len >= 3) buf[2] = buf[2]! & 0x07;
    const out = r.handle(buf, LO, 'udp');
    t.false(out instanceof Promise);
    if (out) t.true((out as Buffer).length >= 12);
  }
  // A pointer loop in the question name.
  const loop = Buffer.from([0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1]);
  const out = r.handle(loop, LO, 'udp') as Buffer;
  t.is(out.readUInt16BE(2) & 0xf, 1, 'FORMERR');
  t.is(out.readUInt16BE(0), 1, 'same id');
});

test('answers keep the query case, truncate over 512 bytes without EDNS, fit with EDNS', (t) => {
  const r = resolver();
  const small = packet.decode(r.handle(query('BiG.n'), LO, 'udp') as Buffer);
  t.true(small.flag_tc);
  t.is(small.answers?.length, 0);
  const viaTcp = packet.decode(r.handle(query('BiG.n'), LO, 'tcp') as Buffer);
  t.is(viaTcp.answers?.length, 50);
  t.is(viaTcp.answers?.[0]?.name, 'BiG.n');
  t.true(viaTcp.flag_aa);
  const edns = packet.decode(r.handle(query('big', 'A', 4096), LO, 'udp') as Buffer);
  t.false(edns.flag_tc);
  t.is(edns.answers?.length, 50, "50 A records fit in our 1232-byte EDNS cap");
  t.is(edns.additionals?.find((a) => a.type === 'OPT')?.type, 'OPT', 'OPT echoed');
  const ext = packet.decode(r.handle(query('example.com'), LO, 'udp') as Buffer);
  t.is((ext as { rcode?: string }).rcode, 'REFUSED');
});
