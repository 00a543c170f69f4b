// The rolling self-check of the answer index: each step compares a bounded number of owners
// (services with their tasks, containers) and index entries with the catalog; a divergence
// is logged, counted in vipdns_dns_index_selfcheck_mismatches_total and repaired, here and
// (through onRepair) in a DNS worker's index; a clean pass is quiet and changes nothing.
import test from 'ava';
import { Registry } from 'prom-client';
import type { AppliedChange } from '../../src/catalog/changes.js';
import { type CatalogState, type Task, emptyState } from '../../src/catalog/model.js';
import { AnswerIndex, type CatalogView, DEFAULT_TTL, type IndexOptions, type IndexRepair } from '../../src/dns/answers.js';
import { IndexSelfCheck, type StepReport } from '../../src/dns/index-selfcheck.js';
import { DnsMetrics } from '../../src/dns/metrics.js';
import { parseIp } from '../../src/net/ip.js';

const OPTS: IndexOptions = { suffix: 'vipdns.internal', ttl: DEFAULT_TTL, loopbackSeesAll: true, othersSeeAll: false };
const LOOPBACK = parseIp('127.0.0.1');

/** The catalog as the check reads it: `s` as it is now, tasks by a scan (the catalog indexes them). */
function view(s: CatalogState): CatalogView {
  return { state: s, tasksOf: (svc: string): Task[] => Object.values(s.tasks).filter((t) => t.service === svc) };
}

function full(s: CatalogState): AnswerIndex {
  const i = new AnswerIndex(OPTS);
  i.rebuild(s);
  return i;
}

function errorLog(): { errors: Array<Record<string, unknown>>; error: (o: Record<string, unknown>) => void } {
  const errors: Array<Record<string, unknown>> = [];
  return { errors, error: (o) => void errors.push(o) };
}

test('a divergence is logged, counted, repaired and passed on; a clean check changes nothing', async (t) => {
  const s = emptyState();
  s.networks.front = { id: 'front', name: 'front', subnet: '10.0.9.0/24', gateway: '', attachable: true, createdAt: '', ipamCursor: '0' };
  s.services.web = { id: 'web', name: 'web', aliases: ['www'], endpointMode: 'vip', attachments: [{ network: 'front', vip: '10.0.9.2' }], ports: [], fwmark: 256, createdAt: '' };
  const index = full(s);
  const metrics = new DnsMetrics();
  const registry = new Registry();
  metrics.register(registry);
  const log = errorLog();
  const repairs: IndexRepair[] = [];
  const check = new IndexSelfCheck({ index, catalog: view(s), intervalMs: 60_000, log, metrics, onRepair: (r) => repairs.push(r) });

  const gen = index.generation;
  t.is(check.check(), 0);
  t.is(index.generation, gen, "a clean check leaves the index (and resolvers' tables) alone");
  t.is(log.errors.length, 0);

  // A change the index never heard of: two keys (the alias and its tasks.) go stale.
  s.services.web = { ...s.services.web!, aliases: [] };
  t.is(index.resolve('www', 'A', LOOPBACK).kind, 'answer');
  t.is(check.check(), 2);
  t.is(log.errors.length, 1);
  t.deepEqual((log.errors[0]!.sample as string[]).sort(), ['tasks.www', 'www']);
  t.is(repairs.length, 1);
  t.deepEqual(repairs[0]!.owners.map((o) => o.service), [s.services.web]);
  t.is(index.resolve('www', 'A', LOOPBACK).kind, 'nxdomain', 'repaired');
  const moved = index.touchedSince(gen);
  t.true(moved !== 'all' && moved.includes('www') && moved.includes('tasks.www'), 'resolvers learn which keys moved');
  t.is(check.check(), 0);
  const text = await registry.metrics();
  t.regex(text, /^vipdns_dns_index_selfcheck_mismatches_total 2$/m);
  t.regex(text, /^vipdns_dns_index_selfchecks_total 3$/m);
});

/** 40 services x 3 tasks (some with a shared alias) and 10 containers on two networks. */
function bigState(): CatalogState {
  const s = emptyState();
  s.networks.a = { id: 'a', name: 'a', subnet: '10.1.0.0/16', gateway: '', attachable: true, createdAt: '', ipamCursor: '0' };
  s.networks.b = { id: 'b', name: 'b', subnet: '10.2.0.0/16', gateway: '', attachable: true, createdAt: '', ipamCursor: '0' };
  let ip = 2;
  const next = (net: 'a' | 'b'): string => `10.${net === 'a' ? 1 : 2}.${ip >> 8}.${ip++ & 255}`;
  for (let i = 0; i < 40; i++) {
    const name = `s${i}`;
    const mode = i % 4 === 0 ? 'dnsrr' : 'vip';
    s.services[name] = {
      id: name,
      name,
      aliases: i % 5 === 0 ? ['shared'] : [],
      endpointMode: mode,
      attachments: [mode === 'vip' ? { network: 'a', vip: next('a') } : { network: 'a' }, ...(i % 3 === 0 ? [{ network: 'b', vip: next('b') }] : [])],
      ports: i % 2 === 0 ? [{ name: 'http', protocol: 'tcp', target: 80 }] : [],
      fwmark: 256 + i,
      createdAt: '',
    };
    for (let k = 1; k <= 3; k++) {
      const id = `t${i}x${k}`;
      s.tasks[id] = { id, name: `${name}.${k}.${id}`, service: name, slot: k, addresses: { a: next('a'), ...(i % 3 === 0 ? { b: next('b') } : {}) }, health: k === 3 ? 'unhealthy' : 'healthy', createdAt: '' };
    }
  }
  for (let i = 0; i < 10; i++) s.containers[`c${i}`] = { id: `c${i}`, name: `c${i}`, aliases: i < 2 ? ['shared'] : [], addresses: { b: next('b') }, createdAt: '' };
  s.revision = 1;
  return s;
}

/**
 * Corrupts `index` in every way the check must catch: catalog changes it never heard of (a
 * task gone, a service's alias gone, a network re-addressed), changes the catalog never made
 * (a task of an existing service, a container that does not exist), and an entry its owner
 * does not list (only a bug inside the index could make one: written through its internals).
 */
function corrupt(s: CatalogState, indexes: AnswerIndex[]): void {
  delete s.tasks.t7x1;
  s.services.s10 = { ...s.services.s10!, aliases: [] };
  s.networks.b = { ...s.networks.b!, subnet: '10.3.0.0/16' };
  const phantom: AppliedChange = {
    puts: [
      { kind: 'task', id: 'ghost', value: { id: 'ghost', name: 's3.9.ghost', service: 's3', slot: 9, addresses: { a: '10.1.99.1' }, health: 'healthy', createdAt: '' }, prev: undefined },
      { kind: 'container', id: 'phantom', value: { id: 'phantom', name: 'phantom', aliases: ['shared'], addresses: { a: '10.1.99.2' }, createdAt: '' }, prev: undefined },
    ],
    deletes: [],
    revision: s.revision,
  };
  for (const index of indexes) {
    index.apply(phantom);
    // A key holds one item or a list of items, each naming its owner (unit).
    const names = (index as unknown as { names: Map<string, { unit: string } | Array<{ unit: string }>> }).names;
    names.set('unlisted', names.get('s20')!);
  }
}

/** Steps until a pass ends; every step's report. */
function pass(check: IndexSelfCheck): StepReport[] {
  const steps: StepReport[] = [];
  for (let i = 0; i < 10_000; i++) {
    const r = check.step();
    steps.push(r);
    if (r.passDone) return steps;
  }
  throw new Error('the pass never ended');
}

test('a rolling pass finds and repairs every corruption, a bounded number of owners and entries per step, here and in a worker', (t) => {
  const s = bigState();
  const index = full(s);
  const worker = full(s); // a DNS worker's index: fed the same changes, repaired from onRepair
  const log = errorLog();
  const metrics = new DnsMetrics();
  const check = new IndexSelfCheck({ index, catalog: view(s), intervalMs: 10_000, stepMs: 1000, log, metrics, onRepair: (r) => worker.applyRepair(r) });
  const clean = pass(check);
  t.true(clean.every((r) => r.mismatches === 0));
  t.is(log.errors.length, 0);

  corrupt(s, [index, worker]);
  t.false(index.equals(full(s)));
  t.is(index.resolve('s3.9.ghost.vipdns.internal', 'A', LOOPBACK).kind, 'answer');
  t.is(index.resolve('unlisted', 'A', LOOPBACK).kind, 'answer');
  const steps = pass(check);
  // 10 steps a pass (10 s / 1 s): 50 owners -> 5 a step; the entries walk a little ahead.
  const entryCap = Math.ceil(Math.ceil(index.keyCount * 1.25) / 10) + 8; // an entry's key may have a few owners
  t.true(steps.length >= 10 && steps.length <= 11, `${steps.length} steps`);
  t.true(steps.every((r) => r.owners <= 5), JSON.stringify(steps.map((r) => r.owners)));
  t.true(steps.every((r) => r.entries <= entryCap), JSON.stringify(steps.map((r) => r.entries)));
  t.is(steps.reduce((n, r) => n + r.owners, 0), 50, 'every owner once');

  t.true(index.equals(full(s)), 'repaired within one pass');
  t.true(worker.equals(full(s)), 'the worker repaired the same owners');
  t.is(index.resolve('s3.9.ghost.vipdns.internal', 'A', LOOPBACK).kind, 'nxdomain');
  t.not(index.resolve('unlisted', 'A', LOOPBACK).kind, 'answer');
  const found = steps.reduce((n, r) => n + r.mismatches, 0);
  t.true(found >= 8, `${found} keys found wrong`);
  t.is(metrics.indexSelfcheck.mismatches, found);
  t.is(metrics.indexSelfcheck.runs, 2);
  t.true(log.errors.length >= 1);

  t.true(pass(check).every((r) => r.mismatches === 0), 'the next pass is clean');
});

test('a step never checks more than the caps, however short the interval; a corruption after its owner was passed is found by the next pass', (t) => {
  const s = bigState();
  const index = full(s);
  const check = new IndexSelfCheck({ index, catalog: view(s), intervalMs: 1000, stepMs: 1000, maxOwnersPerStep: 7, maxEntriesPerStep: 20, log: errorLog() });
  const first: StepReport[] = [];
  for (let i = 0; i < 3; i++) first.push(check.step());
  // s0 (the first owner) is behind this pass now.
  s.services.s0 = { ...s.services.s0!, aliases: [] };
  const rest = pass(check);
  const steps = [...first, ...rest];
  t.true(steps.every((r) => r.owners <= 7 && r.entries <= 20 + 7), JSON.stringify(steps));
  t.true(steps.length >= Math.ceil(index.keyCount / 27), `${steps.length} steps for ${index.keyCount} keys`);
  t.true(rest.every((r) => r.mismatches === 0), 'not seen in the pass that had passed it');
  t.false(index.equals(full(s)));
  const next = pass(check);
  t.true(next.some((r) => r.mismatches > 0));
  t.true(index.equals(full(s)), 'repaired by the next pass');
});
