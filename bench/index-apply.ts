// What one catalog change costs the DNS side at scale: AnswerIndex.apply() for a task add, a
// task remove, a health flip and a service create, against a full rebuild(); and posting one
// delta to a DNS worker thread against posting the whole state (what workers got before).
// Usage: node dist/bench/index-apply.js [VIP_SERVICES=10000] [TASKS_PER_SERVICE=10] [DNSRR_SERVICES=300]
import { Worker } from 'node:worker_threads';
import type { AppliedChange } from '../src/catalog/changes.js';
import { type CatalogState, type Service, type Task, emptyState } from '../src/catalog/model.js';
import { AnswerIndex, DEFAULT_TTL } from '../src/dns/answers.js';

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
for (let i = 0; i < 5; i++) {
  const t0 = process.hrtime.bigint();
  index.rebuild(s);
  rebuilds.push(ms(t0));
}
console.log(`catalog: ${VIP} vip + ${DNSRR} dnsrr services x ${PER} tasks = ${Object.keys(s.tasks).length} tasks; index: ${index.size} names`);
console.log(`rebuild(state), full:        median ${fmt(median(rebuilds))} (of ${rebuilds.map((x) => x.toFixed(1)).join(', ')} ms)`);

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
