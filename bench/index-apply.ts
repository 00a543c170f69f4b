// What one catalog change costs the DNS side at scale: AnswerIndex.apply() for a task add, a
// task remove, a health flip and a service create, against a full rebuild(); one step of the
// rolling index self-check (the longest a step holds the main thread, over a whole pass, clean
// and with corruptions to repair); a DNS worker's start (the longest the main thread stalls
// while it sends the state in parts, and the time until the worker serves); and posting one
// delta to a worker thread against posting the whole state (what workers got before).
// Usage: node dist/bench/index-apply.js [VIP_SERVICES=10000] [TASKS_PER_SERVICE=10] [DNSRR_SERVICES=300]
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import type { AppliedChange } from '../src/catalog/changes.js';
import { type CatalogState, type Service, type Task, emptyState } from '../src/catalog/model.js';
import { AnswerIndex, DEFAULT_TTL } from '../src/dns/answers.js';
import { Forwarder } from '../src/dns/forward/forwarder.js';
import { IndexSelfCheck, DEFAULT_SELFCHECK_MS, type StepReport } from '../src/dns/index-selfcheck.js';
import { udpBatchUnavailable } from '../src/dns/udp-batch.js';
import { DnsWorkers } from '../src/dns/workers.js';

const VIP = Number(process.argv[2] ?? 10_000);
const PER = Number(process.argv[3] ?? 10);
const DNSRR = Number(process.argv[4] ?? 300);

let nextIp = 2;
/** Addresses in 10.64.0.0/10, one after another. */
const ip = (): string => {
  const n = nextIp++;
  return `10.${64 + ((n >> 16) & 63)}.${(n >> 8) & 255}.${n & 255}`;
};

function service(name: string, mode: 'vip' | 'dnsrr', i: number): Service {
  return {
    id: name,
    name,
    aliases: i % 10 === 0 ? [`${name}-alias`] : [],
    endpointMode: mode,
    attachments: [mode === 'vip' ? { network: 'bench', vip: ip() } : { network: 'bench' }],
    ports: [{ name: 'http', protocol: 'tcp', target: 80 }],
    fwmark: 256 + i,
    createdAt: '2026-01-01T00:00:00.000Z',
  };
}

function task(svc: string, slot: number, id: string): Task {
  return { id, name: `${svc}.${slot}.${id}`, service: svc, slot, addresses: { bench: ip() }, health: 'healthy', createdAt: '2026-01-01T00:00:00.000Z' };
}

const s: CatalogState = emptyState();
s.networks.bench = { id: 'bench', name: 'bench', subnet: '10.64.0.0/10', gateway: '10.64.0.1', attachable: true, createdAt: '', ipamCursor: '0' };
let n = 0;
for (let i = 0; i < VIP + DNSRR; i++) {
  const name = i < VIP ? `s${i}` : `rr${i - VIP}`;
  s.services[name] = service(name, i < VIP ? 'vip' : 'dnsrr', i);
  for (let k = 0; k < PER; k++) {
    const id = `t${(n++).toString(16).padStart(8, '0')}`;
    s.tasks[id] = task(name, k + 1, id);
  }
}
s.revision = 1;

const opts = { suffix: 'vipdns.internal', ttl: DEFAULT_TTL, loopbackSeesAll: true, othersSeeAll: false };
const ms = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (x: number): string => (x < 0.1 ? `${(x * 1000).toFixed(1)} µs` : `${x.toFixed(2)} ms`);

const index = new AnswerIndex(opts);
const rebuilds: number[] = [];
for (let i = 0; i < 7; i++) {
  const t0 = process.hrtime.bigint();
  index.rebuild(s);
  rebuilds.push(ms(t0));
}
console.log(`catalog: ${VIP} vip + ${DNSRR} dnsrr services x ${PER} tasks = ${Object.keys(s.tasks).length} tasks; index: ${index.size} names, ${index.keyCount - index.size} PTR addresses`);
console.log(`rebuild(state), full:        median ${fmt(median(rebuilds))}, min ${fmt(Math.min(...rebuilds))} (of ${rebuilds.map((x) => x.toFixed(0)).join(', ')} ms)`);

let rev = 1;
/** Applies a change to the state (as the catalog would) and to the index; returns the index's time. */
function commit(puts: AppliedChange['puts'], deletes: AppliedChange['deletes']): number {
  const change: AppliedChange = { puts, deletes, revision: ++rev };
  for (const p of puts) (s[`${p.kind}s` as 'tasks'] as Record<string, unknown>)[p.id] = p.value;
  for (const d of deletes) delete (s[`${d.kind}s` as 'tasks'] as Record<string, unknown>)[d.id];
  const t0 = process.hrtime.bigint();
  index.apply(change);
  return ms(t0);
}

const ROUNDS = 1000;
const rrTasks = Object.values(s.tasks).filter((t) => t.service.startsWith('rr')).map((t) => t.id);
const add: number[] = [];
const remove: number[] = [];
const flip: number[] = [];
const flipRr: number[] = [];
const create: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
  const svc = `s${(r * 7919) % VIP}`;
  const id = `x${r}`;
  const t = task(svc, 99, id);
  add.push(commit([{ kind: 'task', id, value: t, prev: undefined }], []));
  const old = s.tasks[id]!;
  const flipped = { ...old, health: 'unhealthy' as const };
  flip.push(commit([{ kind: 'task', id, value: flipped, prev: old }], []));
  remove.push(commit([], [{ kind: 'task', id, prev: flipped }]));
  // A health flip in a dnsrr service changes its main name and SRV answers too.
  const rrTask = DNSRR > 0 ? s.tasks[rrTasks[(r * 31) % rrTasks.length]!] : undefined;
  if (rrTask) flipRr.push(commit([{ kind: 'task', id: rrTask.id, value: { ...rrTask, health: rrTask.health === 'unhealthy' ? 'healthy' : 'unhealthy' }, prev: rrTask }], []));
  const name = `new${r}`;
  create.push(commit([{ kind: 'service', id: name, value: service(name, 'vip', VIP + DNSRR + r), prev: undefined }], []));
}
console.log(`apply(), median of ${ROUNDS} each:`);
console.log(`  task add (vip service):    ${fmt(median(add))}`);
console.log(`  task remove:               ${fmt(median(remove))}`);
console.log(`  health flip (vip):         ${fmt(median(flip))}`);
console.log(`  health flip (dnsrr):       ${fmt(median(flipRr))}`);
console.log(`  service create:            ${fmt(median(create))}`);
const v0 = process.hrtime.bigint();
const check = index.verify(s);
console.log(`verify(state) after all that: ${check.mismatches} mismatches, took ${fmt(ms(v0))} (a full build and a compare)`);

// The rolling self-check at its defaults (a pass over 10 min, a step a second), its steps run
// back to back: how long each holds the main thread, and how much it checks.
/** Tasks by service, as the catalog's index keeps them (the bench's state has no catalog). */
const bySvc = new Map<string, Task[]>();
for (const t of Object.values(s.tasks)) (bySvc.get(t.service) ?? bySvc.set(t.service, []).get(t.service)!).push(t);
const catalogView = { state: s, tasksOf: (svc: string): Task[] => bySvc.get(svc) ?? [] };
let repaired = 0;
const selfcheck = new IndexSelfCheck({ index, catalog: catalogView, intervalMs: DEFAULT_SELFCHECK_MS, log: { error: () => undefined }, onRepair: (r) => void (repaired += r.owners.length) });
function checkPass(): { steps: number; times: number[]; reports: StepReport[]; total: number } {
  const times: number[] = [];
  const reports: StepReport[] = [];
  for (;;) {
    const t0 = process.hrtime.bigint();
    const r = selfcheck.step();
    times.push(ms(t0));
    reports.push(r);
    if (r.passDone) return { steps: times.length, times, reports, total: times.reduce((a, b) => a + b, 0) };
  }
}
function reportPass(what: string, p: ReturnType<typeof checkPass>): void {
  const sorted = [...p.times].sort((a, b) => a - b);
  const found = p.reports.reduce((n, r) => n + r.mismatches, 0);
  console.log(
    `self-check pass, ${what}: ${p.steps} steps, ${found} keys found wrong; a step: median ${fmt(median(p.times))}, p99 ${fmt(sorted[Math.floor(sorted.length * 0.99)]!)}, max ${fmt(sorted[sorted.length - 1]!)} (first: ${fmt(p.times[0]!)}); ` +
      `at most ${Math.max(...p.reports.map((r) => r.owners))} owners and ${Math.max(...p.reports.map((r) => r.entries))} entries a step; ${fmt(p.total)} in all`,
  );
}
reportPass('clean', checkPass());
// Corruptions the index never heard of: 50 services lose a task, 50 gain an alias.
const svcNames = Object.keys(s.services);
for (let i = 0; i < 50; i++) {
  const victim = bySvc.get(svcNames[(i * 197) % svcNames.length]!)!.pop()!;
  delete s.tasks[victim.id];
  const name = svcNames[(i * 389 + 7) % svcNames.length]!;
  s.services[name] = { ...s.services[name]!, aliases: [...s.services[name]!.aliases, `extra-${i}`] };
}
reportPass('after 100 owners were corrupted', checkPass());
const again = index.verify(s);
console.log(`  after that pass: ${repaired} owners repaired, verify() finds ${again.mismatches} mismatches`);

// A DNS worker's start: the main thread sends the state in parts; the event loop's longest
// stall meanwhile (what a query to the main thread's socket may wait), and the time to serve.
if (!udpBatchUnavailable()) {
  const h = monitorEventLoopDelay({ resolution: 1 });
  const logs = { info: () => undefined, warn: () => undefined, error: (o: unknown, m?: string) => console.error(m, o) };
  const pool = new DnsWorkers({ count: 1, host: '127.0.0.1', index: opts, state: () => s, tasksOf: catalogView.tasksOf, forwarder: new Forwarder({ upstreams: [] }), log: logs });
  h.enable();
  const t0 = process.hrtime.bigint();
  await pool.start(0);
  const took = ms(t0);
  h.disable();
  console.log(`worker start (state in parts): serving after ${fmt(took)}; main event loop delay meanwhile: max ${fmt(h.max / 1e6)}, p99 ${fmt(h.percentile(99) / 1e6)}`);
  await pool.stop();
} else console.log('worker start: skipped (no batched UDP addon)');

// A worker thread that acknowledges each message: the time postMessage() blocks the main
// thread (structured clone) and the time until the worker has it (clone + transfer + decode).
const w = new Worker('const { parentPort } = require("node:worker_threads"); parentPort.on("message", () => parentPort.postMessage(0));', { eval: true });
const ack = (): Promise<void> => new Promise((r) => w.once('message', () => r()));
async function post(msg: unknown, rounds: number): Promise<{ post: number; roundTrip: number }> {
  const p: number[] = [];
  const rt: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const got = ack();
    const t0 = process.hrtime.bigint();
    w.postMessage(msg);
    p.push(ms(t0));
    await got;
    rt.push(ms(t0));
  }
  return { post: median(p), roundTrip: median(rt) };
}
const one = s.tasks[Object.keys(s.tasks)[0]!]!;
const delta: AppliedChange = { puts: [{ kind: 'task', id: one.id, value: { ...one, health: 'unhealthy' }, prev: one }], deletes: [], revision: rev + 1 };
const d = await post({ t: 'change', change: delta, generation: 1 }, 200);
const whole = await post({ t: 'state', state: s, generation: 1 }, 5);
console.log(`worker postMessage, one delta:   ${fmt(d.post)} to post, ${fmt(d.roundTrip)} until the worker has it (${JSON.stringify(delta).length} bytes as JSON)`);
console.log(`worker postMessage, whole state: ${fmt(whole.post)} to post, ${fmt(whole.roundTrip)} until the worker has it (${(JSON.stringify(s).length / 1e6).toFixed(1)} MB as JSON)`);
await w.terminate();
