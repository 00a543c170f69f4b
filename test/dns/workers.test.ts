// DNS worker threads' lifecycle, driven directly (no daemon): a worker that dies is started
// again even when its first restart cannot bind, a forward answered after its worker died
// never reaches the replacement (which numbers its forwards from 1 again), a worker kept
// current by deltas answers as the catalog says, also when changes come in the middle of the
// state it loads in parts, and it repairs owners as the main thread's self-check tells it.
import test from 'ava';
import * as dgram from 'node:dgram';
import type { Worker } from 'node:worker_threads';
import * as packet from 'dns-packet';
import { applyChange, diffStates } from '../../src/catalog/changes.js';
import { type Task, emptyState } from '../../src/catalog/model.js';
import { DEFAULT_TTL, indexOwners, ownerTruth } from '../../src/dns/answers.js';
import { Forwarder } from '../../src/dns/forward/forwarder.js';
import { Upstream } from '../../src/dns/forward/upstream.js';
import { DnsMetrics } from '../../src/dns/metrics.js';
import { DnsWorkers } from '../../src/dns/workers.js';
import { udpBatchUnavailable } from '../../src/dns/udp-batch.js';
import { freePort, startScripted } from '../helpers/peers.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
// Workers need the batch addon, which `npm ci` builds on Linux.
const maybe = udpBatchUnavailable() ? test.skip : test.serial;

const index = { suffix: 'vipdns.internal', ttl: DEFAULT_TTL, loopbackSeesAll: true, othersSeeAll: false };
function state() {
  const s = emptyState();
  s.networks.front = { id: 'f', name: 'front', subnet: '10.0.9.0/24', gateway: '10.0.9.1', attachable: true, createdAt: '', ipamCursor: '0' };
  s.services.web = { id: 'w', name: 'web', aliases: [], endpointMode: 'vip', attachments: [{ network: 'front', vip: '10.0.9.2' }], ports: [], fwmark: 256, createdAt: '' };
  return s;
}

function logger(): { lines: string[]; info: (o: object, m?: string) => void; warn: (o: object, m?: string) => void; error: (o: object, m?: string) => void } {
  const lines: string[] = [];
  const put = (o: object, m?: string): void => void lines.push(`${m ?? ''} ${JSON.stringify(o, (_k, v: unknown) => (v instanceof Error ? v.message : v))}`);
  return { lines, info: put, warn: put, error: put };
}

/** The one worker thread of a one-worker pool (tests kill it to play a crash). */
const workerOf = (w: DnsWorkers): Worker | undefined => (w as unknown as { slots: Array<{ worker?: Worker }> }).slots[0]!.worker;

async function until(what: string, cond: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** One query from its own socket; `got` fills with whatever comes back until close(). */
async function ask(port: number, name: string, id: number): Promise<{ got: packet.Packet[]; close: () => void }> {
  const c = dgram.createSocket('udp4');
  const got: packet.Packet[] = [];
  c.on('message', (m) => got.push(packet.decode(m)));
  await new Promise<void>((r) => c.bind(0, '127.0.0.1', () => r()));
  c.send(packet.encode({ id, type: 'query', flags: packet.RECURSION_DESIRED, questions: [{ name, type: 'A', class: 'IN' }] }), port, '127.0.0.1');
  return { got, close: () => c.close() };
}

maybe('a dead worker is started again, also after a restart that could not bind', async (t) => {
  const port = await freePort();
  const log = logger();
  const metrics = new DnsMetrics();
  const pool = new DnsWorkers({ count: 1, host: '127.0.0.1', index, state, forwarder: new Forwarder({ upstreams: [] }), metrics, log, metricsIntervalMs: 100 });
  await pool.start(port);
  t.teardown(() => pool.stop());
  t.is(pool.running, 1);
  await workerOf(pool)!.terminate(); // a crash; its socket closes with it
  // Someone takes the port (no SO_REUSEPORT) before the first restart (after 1 s) and lets it go.
  const squatter = dgram.createSocket('udp4');
  await new Promise<void>((r) => squatter.bind(port, '127.0.0.1', () => r()));
  await until('a failed restart', () => log.lines.some((l) => l.includes('EADDRINUSE')));
  t.is(pool.running, 0);
  await new Promise<void>((r) => squatter.close(() => r()));
  await until('the next restart', () => pool.running === 1);
  const reply = await ask(port, 'web', 7);
  t.teardown(reply.close);
  await until('an answer', () => reply.got.length > 0, 3000);
  t.is((reply.got[0]!.answers?.[0] as { data: string }).data, '10.0.9.2');
});

maybe("an upstream answer that arrives after its worker died is not handed to the worker's replacement", async (t) => {
  // Every upstream answer takes 2.5 s: the first query's answer lands after the restart.
  const up = await startScripted({ delayMs: 2500, answers: (name) => [{ name, type: 'A', ttl: 60, data: name.startsWith('a.') ? '192.0.2.1' : '192.0.2.2' }] });
  t.teardown(() => up.stop());
  const forwarder = new Forwarder({ upstreams: [Upstream.parse(`127.0.0.1:${up.port}`)], attemptTimeoutMs: 6000, deadlineMs: 8000, hedgeMs: 6000 });
  const port = await freePort();
  const pool = new DnsWorkers({ count: 1, host: '127.0.0.1', index, state, forwarder, log: logger(), metricsIntervalMs: 100 });
  await pool.start(port);
  t.teardown(() => pool.stop());
  const a = await ask(port, 'a.example', 111); // forward #1 of the first worker
  t.teardown(a.close);
  await until('the forward to reach the upstream', () => up.udpQueries === 1, 3000);
  await workerOf(pool)!.terminate();
  await until('the restart', () => pool.running === 1);
  const b = await ask(port, 'b.example', 222); // forward #1 of the new worker
  t.teardown(b.close);
  await until("b's answer", () => b.got.length > 0, 8000);
  await sleep(300); // anything else that might arrive
  t.is(b.got.length, 1, 'exactly one reply');
  t.is(b.got[0]!.id, 222);
  t.is(b.got[0]!.questions?.[0]?.name, 'b.example');
  t.is((b.got[0]!.answers?.[0] as { data: string }).data, '192.0.2.2');
  t.is(a.got.length, 0, "the first client's worker died with its query: no reply (it retries)");
});

/** A catalog stand-in: edits go through diffStates/applyChange and out as deltas, as the catalog's do. */
function liveCatalog(pool: () => DnsWorkers | undefined) {
  const s = state();
  return {
    state: () => s,
    edit(fn: (next: ReturnType<typeof state>) => void): void {
      const next = structuredClone(s);
      fn(next);
      const { applied } = applyChange(s, diffStates(s, next), s.revision + 1);
      s.revision++;
      pool()?.publish(applied);
    },
  };
}

async function answersOf(port: number, name: string, id: number): Promise<string[]> {
  const q = await ask(port, name, id);
  try {
    await until(`an answer for ${name}`, () => q.got.length > 0, 3000);
  } finally {
    q.close();
  }
  const p = q.got[0]! as packet.Packet & { rcode?: string };
  return p.rcode === 'NOERROR' ? (p.answers ?? []).map((a) => String((a as { data: unknown }).data)).sort() : [p.rcode ?? '?'];
}

maybe('a worker answers from its start state plus deltas: adds, health flips and removes, also ones sent while it started', async (t) => {
  const port = await freePort();
  let pool: DnsWorkers | undefined;
  const cat = liveCatalog(() => pool);
  pool = new DnsWorkers({ count: 1, host: '127.0.0.1', index, state: cat.state, forwarder: new Forwarder({ upstreams: [] }), log: logger(), metricsIntervalMs: 100 });
  const started = pool.start(port);
  t.teardown(() => pool!.stop());
  // Deltas published while the thread starts wait in its queue, after the state it got.
  cat.edit((s) => (s.services.api = { id: 'a', name: 'api', aliases: ['rpc'], endpointMode: 'dnsrr', attachments: [{ network: 'front' }], ports: [], fwmark: 257, createdAt: '' }));
  for (let i = 1; i <= 3; i++) cat.edit((s) => (s.tasks[`a${i}`] = { id: `a${i}`, name: `api.${i}`, service: 'api', slot: i, addresses: { front: `10.0.9.${10 + i}` }, health: 'unknown', createdAt: '' }));
  await started;
  t.true(await pool.settled(5000));
  t.deepEqual(await answersOf(port, 'rpc', 1), ['10.0.9.11', '10.0.9.12', '10.0.9.13']);

  cat.edit((s) => (s.tasks.a2!.health = 'unhealthy'));
  cat.edit((s) => delete s.tasks.a3);
  cat.edit((s) => (s.containers.db = { id: 'd', name: 'db', aliases: [], addresses: { front: '10.0.9.100' }, createdAt: '' }));
  t.true(await pool.settled(5000));
  t.deepEqual(await answersOf(port, 'api', 2), ['10.0.9.11']);
  t.deepEqual(await answersOf(port, 'api.3.vipdns.internal', 3), ['NXDOMAIN'], "a removed task's name");
  t.deepEqual(await answersOf(port, 'db.front', 4), ['10.0.9.100']);

  cat.edit((s) => {
    delete s.services.web;
    delete s.containers.db;
  });
  cat.edit((s) => (s.networks.front!.ipamCursor = '9')); // an allocation: changes no answer
  t.true(await pool.settled(5000));
  t.deepEqual(await answersOf(port, 'web', 5), ['NXDOMAIN']);
  t.deepEqual(await answersOf(port, 'db', 6), ['NXDOMAIN']);
  t.deepEqual(await answersOf(port, 'api', 7), ['10.0.9.11']);

  // A restarted thread starts from the whole state, then takes deltas again.
  await workerOf(pool)!.terminate();
  await until('the restart', () => pool!.running === 1);
  cat.edit((s) => delete s.tasks.a1);
  t.true(await pool.settled(5000));
  t.deepEqual(await answersOf(port, 'api', 8), ['10.0.9.12'], 'fails open to the unhealthy task');
  t.deepEqual(await answersOf(port, 'api.1.vipdns.internal', 9), ['NXDOMAIN']);

  // A resync (after the main thread repaired its index) sends the whole state.
  cat.state().containers.cache = { id: 'c', name: 'cache', aliases: [], addresses: { front: '10.0.9.50' }, createdAt: '' };
  pool.resync();
  t.true(await pool.settled(5000));
  t.deepEqual(await answersOf(port, 'cache', 10), ['10.0.9.50']);
});

for (const byService of [false, true]) {
maybe(`a worker loading the state in parts${byService ? ' (tasks with their service)' : ''}, with changes in between, ends as the catalog; a repair reaches it`, async (t) => {
  const port = await freePort();
  let pool: DnsWorkers | undefined;
  const cat = liveCatalog(() => pool);
  cat.edit((s) => {
    for (let i = 0; i < 30; i++) s.services[`svc${i}`] = { id: `svc${i}`, name: `svc${i}`, aliases: [], endpointMode: 'vip', attachments: [{ network: 'front', vip: `10.0.9.${100 + i}` }], ports: [], fwmark: 300 + i, createdAt: '' };
    for (let i = 0; i < 30; i++) s.tasks[`k${i}`] = { id: `k${i}`, name: `svc${i}.1.k${i}`, service: `svc${i}`, slot: 1, addresses: { front: `10.0.9.${140 + i}` }, health: 'healthy', createdAt: '' };
  });
  // One object a part: the load takes ~65 turns of the event loop, and edits land between them.
  const tasksOf = (svc: string): Task[] => Object.values(cat.state().tasks).filter((x) => x.service === svc);
  pool = new DnsWorkers({ count: 1, host: '127.0.0.1', index, state: cat.state, ...(byService ? { tasksOf } : {}), forwarder: new Forwarder({ upstreams: [] }), log: logger(), metricsIntervalMs: 100, loadPartObjects: 1 });
  const started = pool.start(port);
  t.teardown(() => pool!.stop());
  // The loader and this loop take turns, a part and an edit: parts go out as networks (1),
  // services (31: turns 1-31), tasks (30: turns 32-61; or each with its service), containers; edits touch objects whose
  // part went out some turns before (the worker must apply them over it) and add containers.
  const edits = (async () => {
    for (let turn = 0; turn < 75; turn++) {
      await new Promise((r) => setImmediate(r));
      cat.edit((s) => {
        const svc = turn - 10; // sent around turn svc + 2
        if (svc >= 0 && svc < 30 && svc % 3 === 0) delete s.services[`svc${svc}`];
        const k = turn - 42; // sent around turn k + 32
        if (k >= 0 && k < 30 && k % 3 === 1) s.tasks[`k${k}`] = { ...s.tasks[`k${k}`]!, addresses: { front: `10.0.9.${200 + k}` } };
        if (k >= 0 && k < 30 && k % 3 === 2) delete s.tasks[`k${k}`];
        if (turn % 10 === 0) s.containers[`late${turn}`] = { id: `late${turn}`, name: `late${turn}`, aliases: [], addresses: { front: `10.0.9.${240 + turn / 10}` }, createdAt: '' };
      });
    }
  })();
  await Promise.all([started, edits]);
  t.true(await pool.settled(5000));
  t.deepEqual(await answersOf(port, 'svc0', 1), ['NXDOMAIN']);
  t.deepEqual(await answersOf(port, 'svc27', 2), ['NXDOMAIN']);
  t.deepEqual(await answersOf(port, 'svc28', 3), ['10.0.9.128']);
  t.deepEqual(await answersOf(port, 'tasks.svc1', 4), ['10.0.9.201']);
  t.deepEqual(await answersOf(port, 'tasks.svc28', 5), ['10.0.9.228']);
  t.deepEqual(await answersOf(port, 'svc29.1.k29.vipdns.internal', 9), ['NXDOMAIN']);
  t.deepEqual(await answersOf(port, 'svc5.1.k5.vipdns.internal', 10), ['NXDOMAIN']);
  t.deepEqual(await answersOf(port, 'late0', 6), ['10.0.9.240']);
  t.deepEqual(await answersOf(port, 'late70', 12), ['10.0.9.247']);

  // The catalog changed without a delta (as if apply() had missed it): a repair of that owner fixes it.
  cat.state().services.svc2 = { ...cat.state().services.svc2!, aliases: ['second'] };
  t.deepEqual(await answersOf(port, 'second', 7), ['NXDOMAIN']);
  const view = { state: cat.state(), tasksOf };
  pool.repair({ owners: indexOwners(cat.state()).filter((o) => o.slice(1) === 'svc2').map((o) => ownerTruth(o, view)) });
  t.true(await pool.settled(5000));
  t.deepEqual(await answersOf(port, 'second', 8), ['10.0.9.102']);
});
}
