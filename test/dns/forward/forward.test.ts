// The forwarder's concerns without the daemon: policy order, resolv.conf defaults, cache TTL
// rules, the concurrency cap, serve-stale and the open-resolver guard.
import test from 'ava';
import * as packet from 'dns-packet';
import { DnsCache, cacheTtl } from '../../../src/dns/cache.js';
import { Forwarder } from '../../../src/dns/forward/forwarder.js';
import { Policy } from '../../../src/dns/forward/policy.js';
import { storeUpstreamReply, toClient } from '../../../src/dns/forward/reply.js';
import { dropSelf, parseResolvConf } from '../../../src/dns/forward/resolvconf.js';
import { Upstream } from '../../../src/dns/forward/upstream.js';
import { AnswerIndex, DEFAULT_TTL } from '../../../src/dns/answers.js';
import { DnsMetrics } from '../../../src/dns/metrics.js';
import { Resolver } from '../../../src/dns/resolver.js';
import { parseQuery } from '../../../src/dns/wire.js';
import { emptyState } from '../../../src/catalog/model.js';
import { startScripted } from '../../helpers/peers.js';

const query = (name: string, type: packet.RecordType = 'A', edns = false): Buffer =>
  packet.encode({
    id: 77,
    type: 'query',
    flags: packet.RECURSION_DESIRED,
    questions: [{ name, type, class: 'IN' }],
    additionals: edns ? [{ type: 'OPT', name: '.', udpPayloadSize: 4096, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }] : [],
  });

const response = (name: string, rcode: 'NOERROR' | 'NXDOMAIN', answers: packet.Answer[], authorities: packet.Answer[] = []): Buffer =>
  packet.encode({ id: 1, type: 'response', flags: packet.RECURSION_AVAILABLE | (rcode === 'NXDOMAIN' ? 3 : 0), questions: [{ name, type: 'A', class: 'IN' }], answers, authorities, additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }] });

const soa = (ttl: number, minimum: number): packet.Answer => ({ name: 'example', type: 'SOA', ttl, data: { mname: 'ns.example', rname: 'h.example', serial: 1, refresh: 1, retry: 1, expire: 1, minimum } });

test('policy: healthy upstreams first, in policy order', (t) => {
  const us = [{ healthy: false, n: 1 }, { healthy: true, n: 2 }, { healthy: true, n: 3 }];
  t.deepEqual(new Policy('sequential').order(us).map((u) => u.n), [2, 3, 1]);
  const rr = new Policy('round_robin');
  t.deepEqual(rr.order(us).map((u) => u.n), [2, 3, 1]);
  t.deepEqual(rr.order(us).map((u) => u.n), [2, 3, 1]);
  t.deepEqual(rr.order(us).map((u) => u.n), [3, 2, 1]);
  for (let i = 0; i < 20; i++) t.is(new Policy('random').order(us)[2]!.n, 1);
});

test('resolv.conf: nameservers parsed, the daemon itself dropped', (t) => {
  const ns = parseResolvConf('# c\nsearch x\nnameserver 127.0.0.11\nnameserver 10.0.0.2 # x\nnameserver fe80::1%eth0\nnameserver bogus\n');
  t.deepEqual(ns, ['127.0.0.11', '10.0.0.2', 'fe80::1']);
  t.deepEqual(dropSelf(ns, { host: '127.0.0.11', port: 53 }), { kept: ['10.0.0.2', 'fe80::1'], dropped: ['127.0.0.11'] });
  t.deepEqual(dropSelf(ns, { host: '127.0.0.11', port: 1053 }).dropped, [], 'another port is not us');
  t.deepEqual(dropSelf(['127.0.0.53'], { host: '0.0.0.0', port: 53 }).dropped, ['127.0.0.53'], 'wildcard on 53 covers loopback');
  t.throws(() => Upstream.parse('nope:53'), { message: /not ADDR\[:PORT\]/ });
  t.is(Upstream.parse('[::1]:5353').label, '[::1]:5353');
  t.is(Upstream.parse('192.0.2.1').port, 53);
});

test('cache TTL: positive by min TTL (capped), negative by SOA per RFC 2308, none without SOA', (t) => {
  const o = { maxTtl: 100, maxNegativeTtl: 50 };
  const a = (ttl: number): packet.Answer => ({ name: 'x.example', type: 'A', ttl, data: '192.0.2.1' });
  t.is(cacheTtl(storeUpstreamReply(response('x.example', 'NOERROR', [a(30), a(20)])), o), 20);
  t.is(cacheTtl(storeUpstreamReply(response('x.example', 'NOERROR', [a(3000)])), o), 100, 'capped');
  t.is(cacheTtl(storeUpstreamReply(response('x.example', 'NXDOMAIN', [], [soa(300, 15)])), o), 15, 'SOA minimum');
  t.is(cacheTtl(storeUpstreamReply(response('x.example', 'NOERROR', [], [soa(10, 15)])), o), 10, 'NODATA: SOA TTL when lower');
  t.is(cacheTtl(storeUpstreamReply(response('x.example', 'NXDOMAIN', [])), o), 0, 'no SOA, no negative caching');
});

test('a negative answer\'s SOA carries min(SOA TTL, MINIMUM), as RFC 2308 §3 says, before and after caching', (t) => {
  const s = storeUpstreamReply(response('x.example', 'NXDOMAIN', [], [soa(300, 15)]));
  const soaTtl = (b: Buffer): number => (packet.decode(b).authorities![0] as { ttl: number }).ttl;
  t.is(soaTtl(s.body), 15);
  const q = parseQuery(query('x.example'));
  t.is(soaTtl(toClient(s, q, { ageSeconds: 4, maxSize: 512, ednsSize: 1232 })), 11, 'a cache hit ages the negative TTL');
  const low = storeUpstreamReply(response('x.example', 'NOERROR', [], [soa(10, 15)]));
  t.is(soaTtl(low.body), 10, 'NODATA: the SOA TTL when lower');
  const pos = storeUpstreamReply(response('x.example', 'NOERROR', [{ name: 'x.example', type: 'A', ttl: 60, data: '192.0.2.1' }], [soa(300, 15)]));
  t.is(soaTtl(pos.body), 300, 'a positive answer keeps its authority TTLs');
});

test('cache: TTLs age, ID and case are the client, OPT only when asked, bounds hold, stale window', (t) => {
  let now = 1_000_000;
  const m = new DnsMetrics();
  const c = new DnsCache({ maxEntries: 3, maxBytes: 1 << 20, maxTtl: 3600, maxNegativeTtl: 60, serveStale: 100, prefetchHits: 2, prefetchPercent: 50 }, m, () => now);
  const stored = storeUpstreamReply(response('x.example', 'NOERROR', [{ name: 'x.example', type: 'A', ttl: 60, data: '192.0.2.1' }]));
  t.is(stored.walked.records.length, 1, 'the upstream OPT is not stored');
  c.put('k', stored);
  now += 20_000;
  const l = c.get('k')!;
  t.is(l.state, 'fresh');
  const q = parseQuery(query('X.Example'));
  const out = packet.decode(toClient(l.entry, q, { ageSeconds: l.ageSeconds, maxSize: 512, ednsSize: 1232 }));
  t.is(out.id, 77);
  t.is((out.answers?.[0] as { ttl?: number }).ttl, 40);
  t.is(out.questions?.[0]?.name, 'X.Example');
  t.is(out.additionals?.length, 0);
  const withOpt = packet.decode(toClient(l.entry, parseQuery(query('x.example', 'A', true)), { ageSeconds: 0, maxSize: 1232, ednsSize: 1232 }));
  t.is(withOpt.additionals?.[0]?.type, 'OPT');
  c.get('k');
  now += 15_000; // 25 of 60 s left, hit twice: hot and in the last 50 %
  t.true(c.wantsPrefetch(c.get('k')!));
  now += 60_000;
  t.is(c.get('k')?.state, 'stale');
  now += 100_000;
  t.is(c.get('k'), undefined, 'past the stale window: gone');
  for (const k of ['a', 'b', 'c', 'd']) c.put(k, stored);
  t.is(c.size, 3);
  t.is(m.cache.get('evictions\0'), 1);
});

function index(): AnswerIndex {
  const s = emptyState();
  s.networks.n = { id: 'n', name: 'n', subnet: '10.0.0.0/16', gateway: '10.0.0.1', attachable: false, createdAt: '', ipamCursor: '0' };
  const i = new AnswerIndex({ suffix: 'vipdns.internal', ttl: DEFAULT_TTL, loopbackSeesAll: true, othersSeeAll: false });
  i.rebuild(s);
  return i;
}

test('over the concurrent-forward cap: REFUSED at once and counted; strangers never recurse', async (t) => {
  const slow = await startScripted({ delayMs: 300, answers: (n) => [{ name: n, type: 'A', ttl: 60, data: '192.0.2.1' }] });
  t.teardown(() => slow.stop());
  const m = new DnsMetrics();
  const fwd = new Forwarder({ upstreams: [new Upstream('127.0.0.1', slow.port)], maxConcurrent: 2, metrics: m });
  t.teardown(() => fwd.close());
  const r = new Resolver({ index: index(), forwarder: fwd, metrics: m });
  const replies = await Promise.all(['a', 'b', 'c', 'd', 'e'].map((n) => Promise.resolve(r.handle(query(`${n}.example`), '127.0.0.1', 'udp')).then((b) => packet.decode(b!))));
  const rcodes = replies.map((p) => (p as { rcode?: string }).rcode);
  t.deepEqual(rcodes.filter((x) => x === 'NOERROR').length, 2);
  t.deepEqual(rcodes.filter((x) => x === 'REFUSED').length, 3);
  t.is(m.refused, 3);
  // The same question twice shares one upstream exchange (and one slot).
  const before = slow.udpQueries;
  await Promise.all([r.handle(query('same.example'), '127.0.0.1', 'udp'), r.handle(query('SAME.example'), '127.0.0.1', 'udp')]);
  t.is(slow.udpQueries - before, 1);
  const stranger = packet.decode((await r.handle(query('z.example'), '192.0.2.200', 'udp'))!) as { rcode?: string };
  t.is(stranger.rcode, 'REFUSED', 'not an open resolver');
  const inNet = packet.decode((await r.handle(query('z.example'), '10.0.3.4', 'udp'))!) as { rcode?: string };
  t.is(inNet.rcode, 'NOERROR', 'a client of a known network may recurse');
});

test('serve-stale: an expired entry answers (TTL 30) when every upstream fails', async (t) => {
  const up = await startScripted({ answers: (n) => [{ name: n, type: 'A', ttl: 1, data: '192.0.2.5' }] });
  let now = Date.now();
  const cache = new DnsCache({ maxEntries: 10, maxBytes: 1 << 20, maxTtl: 60, maxNegativeTtl: 60, serveStale: 3600, prefetchHits: 0, prefetchPercent: 10 }, undefined, () => now);
  const fwd = new Forwarder({ upstreams: [new Upstream('127.0.0.1', up.port)], cache, attemptTimeoutMs: 300, deadlineMs: 600 });
  t.teardown(() => fwd.close());
  const q = parseQuery(query('s.example'));
  const first = packet.decode((await fwd.forward(q, 512)).reply);
  t.is((first.answers?.[0] as { data?: string }).data, '192.0.2.5');
  await up.stop();
  now += 10_000;
  const res = await fwd.forward(q, 512);
  t.is(res.source, 'cache');
  const stale = packet.decode(res.reply);
  t.is((stale.answers?.[0] as { data?: string }).data, '192.0.2.5');
  t.is((stale.answers?.[0] as { ttl?: number }).ttl, 30);
});

test('no upstreams: SERVFAIL, not a crash', async (t) => {
  const fwd = new Forwarder({ upstreams: [] });
  const res = await fwd.forward(parseQuery(query('x.example')), 512);
  t.is((packet.decode(res.reply) as { rcode?: string }).rcode, 'SERVFAIL');
});

test('an upstream going unhealthy is logged once, however many forwards failed on it together', async (t) => {
  const { createSocket } = await import('node:dgram');
  const mute = createSocket('udp4'); // takes queries, never answers
  await new Promise<void>((r) => mute.bind(0, '127.0.0.1', () => r()));
  t.teardown(() => mute.close());
  const warnings: string[] = [];
  const log = { info: () => undefined, error: () => undefined, warn: (_o: object, msg?: string) => void warnings.push(msg ?? '') };
  const fwd = new Forwarder({ upstreams: [new Upstream('127.0.0.1', mute.address().port)], attemptTimeoutMs: 200, deadlineMs: 400, log });
  t.teardown(() => fwd.close());
  const results = await Promise.all(['a', 'b', 'c', 'd'].map((n) => fwd.forward(parseQuery(query(`${n}.example`)), 512)));
  t.true(results.every((r) => r.rcode === 2), 'each got SERVFAIL');
  t.deepEqual(warnings.filter((w) => w === 'upstream marked unhealthy'), ['upstream marked unhealthy']);
});
