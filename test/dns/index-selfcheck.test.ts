// The periodic self-check of the answer index: a divergence from a full build is logged,
// counted in vipdns_dns_index_selfcheck_mismatches_total and repaired; a clean run is quiet.
import test from 'ava';
import { Registry } from 'prom-client';
import { emptyState } from '../../src/catalog/model.js';
import { AnswerIndex, DEFAULT_TTL } from '../../src/dns/answers.js';
import { IndexSelfCheck } from '../../src/dns/index-selfcheck.js';
import { DnsMetrics } from '../../src/dns/metrics.js';
import { parseIp } from '../../src/net/ip.js';

test('a divergence is logged, counted, repaired and passed on; a clean check changes nothing', async (t) => {
  const s = emptyState();
  s.networks.front = { id: 'front', name: 'front', subnet: '10.0.9.0/24', gateway: '', attachable: true, createdAt: '', ipamCursor: '0' };
  s.services.web = { id: 'web', name: 'web', aliases: ['www'], endpointMode: 'vip', attachments: [{ network: 'front', vip: '10.0.9.2' }], ports: [], fwmark: 256, createdAt: '' };
  const index = new AnswerIndex({ suffix: 'vipdns.internal', ttl: DEFAULT_TTL, loopbackSeesAll: true, othersSeeAll: false });
  index.rebuild(s);
  const metrics = new DnsMetrics();
  const registry = new Registry();
  metrics.register(registry);
  const errors: unknown[] = [];
  let repairs = 0;
  const check = new IndexSelfCheck({ index, state: () => s, intervalMs: 60_000, log: { error: (o: unknown) => void errors.push(o) }, metrics, onRepair: () => repairs++ });

  const gen = index.generation;
  t.is(check.check(), 0);
  t.is(index.generation, gen, "a clean check leaves the index (and resolvers' tables) alone");
  t.is(errors.length, 0);

  // A change the index never heard of: two keys (the alias and its tasks.) go stale.
  s.services.web = { ...s.services.web!, aliases: [] };
  t.is(index.resolve('www', 'A', parseIp('127.0.0.1')).kind, 'answer');
  t.is(check.check(), 2);
  t.is(errors.length, 1);
  t.is(repairs, 1);
  t.is(index.resolve('www', 'A', parseIp('127.0.0.1')).kind, 'nxdomain', 'repaired');
  t.is(check.check(), 0);
  const text = await registry.metrics();
  t.regex(text, /^vipdns_dns_index_selfcheck_mismatches_total 2$/m);
  t.regex(text, /^vipdns_dns_index_selfchecks_total 3$/m);
});
