// Scale bench (issue 12, "every write costs what it changes"): the real daemon
// (`vipdns serve --dataplane none`) at a small and a big catalog, side by side in one table with
// the issue's target beside each figure. Run on demand, not in CI:
//   npm run bench:scale                               # small 10 × 10, big 10,000 × 10
//   npm run bench:scale -- --services 200             # big = 200 × 10 (today's code: ~minutes)
//   npm run bench:scale -- --phases migrate --services 10000
// Options: --services N (big), --small N, --tasks T (per service), --samples N (sequential
// add/remove), --clients N (32), --burst-writes N (10,000), --qps N (5,000), --dns-seconds S (10),
// --dns-writes N (100/s), --etcd-services N (1,000; the etcd part is loaded through the API),
// --etcd-writes N (100), --phase-timeout S (300), --load-timeout S (3,600),
// --load api|file (file: write catalog.json directly instead of loading through the API),
// --phases load,seq,dns,burst,restart,migrate,etcd (all by default; load always runs when needed).
// Everything it starts (daemons, etcd) is killed and every temp dir removed, even on failure.
import { cpus, loadavg } from 'node:os';
import { readdirSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { type CallResult, Failures, call, loadThroughApi, pool } from './scale/api.js';
import { generateCatalog, serviceName, writeCatalogFile } from './scale/catalog.js';
import type { DnsLoadInput, DnsLoadResult } from './scale/dns-load.js';
import { type Daemon, type DaemonPorts, Resources, freePorts, rssBytes, scrapeStallMs, spawnDaemon, startEtcd, stopDaemon, waitReady } from './scale/procs.js';
import { fmtCount, fmtMB, fmtMs, fmtRate, fmtSec, summarize } from './scale/stats.js';
import { untilAnswered } from './scale/answered.js';

// ---------- options ----------

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? def) : def;
}
const num = (name: string, def: number): number => {
  const v = Number(arg(name, String(def)));
  if (!Number.isFinite(v) || v < 0) throw new Error(`--${name} must be a number`);
  return v;
};
const BIG = num('services', 10_000);
const SMALL = num('small', 10);
const TASKS = num('tasks', 10);
const SAMPLES = num('samples', 200);
const CLIENTS = num('clients', 32);
const BURST_WRITES = num('burst-writes', 10_000);
const QPS = num('qps', 5000);
const DNS_SECONDS = num('dns-seconds', 10);
const DNS_WRITES = num('dns-writes', 100);
const ETCD_SERVICES = num('etcd-services', 1000);
const ETCD_WRITES = num('etcd-writes', 100);
const PHASE_MS = num('phase-timeout', 300) * 1000;
const LOAD_MS = num('load-timeout', 3600) * 1000;
const LOAD = arg('load', 'api');
const ALL_PHASES = ['load', 'seq', 'dns', 'burst', 'restart', 'migrate', 'etcd'];
const PHASES = new Set(arg('phases', ALL_PHASES.join(',')).split(','));
for (const p of PHASES) if (!ALL_PHASES.includes(p)) throw new Error(`unknown phase ${p}: use ${ALL_PHASES.join(',')}`);
if (LOAD !== 'api' && LOAD !== 'file') throw new Error('--load is api or file');
const LOST_AFTER_MS = 1000;

// ---------- the table ----------

type Size = 'small' | 'big';
type Cell = { value?: number; text: string };

interface Figure {
  key: string;
  label: string;
  /** target for the big size (issue 12), as text, and its check */
  target?: string;
  ok?: (big: number, small: number | undefined) => boolean;
  /** show big/small */
  ratio?: boolean;
}

const FIGURES: Figure[] = [
  { key: 'load.time', label: 'load through API, 32 clients: time' },
  { key: 'load.rate', label: 'load through API: writes/s' },
  { key: 'load.fail', label: 'load through API: failed writes', target: '0', ok: (b) => b === 0 },
  { key: 'rss.idle', label: 'RSS idle after load', ratio: true },
  { key: 'add.p50', label: 'task add, sequential: p50', target: '<= 5 ms, <= 1.5x small', ok: (b, s) => b <= 5 && (s === undefined || b <= 1.5 * s), ratio: true },
  { key: 'add.p99', label: 'task add, sequential: p99', target: '<= 25 ms', ok: (b) => b <= 25, ratio: true },
  { key: 'rm.p50', label: 'task remove, sequential: p50', target: '<= 5 ms, <= 1.5x small', ok: (b, s) => b <= 5 && (s === undefined || b <= 1.5 * s), ratio: true },
  { key: 'rm.p99', label: 'task remove, sequential: p99', target: '<= 25 ms', ok: (b) => b <= 25, ratio: true },
  { key: 'seq.stall', label: 'max event-loop stall, sequential', ratio: true },
  { key: 'dns.idle.p99', label: 'DNS idle: p99', ratio: true },
  { key: 'dns.p50', label: 'DNS while writing: p50', ratio: true },
  { key: 'dns.p99', label: 'DNS while writing: p99', target: '<= 2 ms', ok: (b) => b <= 2, ratio: true },
  { key: 'dns.max', label: 'DNS while writing: max', target: '<= 10 ms', ok: (b) => b <= 10, ratio: true },
  { key: 'dns.lost', label: 'DNS while writing: unanswered (1 s)', target: '0', ok: (b) => b === 0 },
  { key: 'dns.qps', label: 'DNS while writing: queries/s sent' },
  { key: 'dns.writes', label: 'DNS while writing: writes/s done' },
  { key: 'dns.stall', label: 'max event-loop stall, DNS phase', ratio: true },
  { key: 'burst', label: 'task add+remove, 32 clients: writes/s', target: '>= 2,000/s', ok: (b) => b >= 2000, ratio: true },
  { key: 'burst.fail', label: '32 clients: failed writes', target: '0', ok: (b) => b === 0 },
  { key: 'burst.stall', label: 'max event-loop stall, 32 clients', ratio: true },
  { key: 'rss.after', label: 'RSS after the 32-client writes', target: '<= 300 MB', ok: (b) => b <= 300e6, ratio: true },
  { key: 'restart', label: 'restart: start to /readyz 200', target: '<= 2 s', ok: (b) => b <= 2000, ratio: true },
  { key: 'migrate', label: 'catalog.json of today: start to /readyz', target: '<= 2 s (report)', ok: (b) => b <= 2000, ratio: true },
  { key: 'migrate.kept', label: 'catalog.json of today: objects kept', target: 'all', ok: (b) => b === 1 },
  { key: 'etcd.load', label: 'etcd: load through API: writes/s' },
  { key: 'etcd.p50', label: 'etcd: write on A seen on B (DNS): p50', ratio: true },
  { key: 'etcd.p99', label: 'etcd: write on A seen on B (DNS): p99', target: '<= 100 ms', ok: (b) => b <= 100, ratio: true },
  { key: 'etcd.lost', label: 'etcd: writes not seen on B in 5 s', target: '0', ok: (b) => b === 0 },
];

const cells: Record<Size, Map<string, Cell>> = { small: new Map(), big: new Map() };
const notes: string[] = [];
const put = (size: Size, key: string, value: number | undefined, text: string): void => void cells[size].set(key, { value, text });
const note = (size: Size | 'all', text: string): void => {
  notes.push(`[${size}] ${text}`);
  progress(size, text);
};
function progress(size: Size | 'all', text: string): void {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} [${size}] ${text}\n`);
}

function printTable(sizes: Record<Size, number>): void {
  const head = ['figure', `small ${sizes.small}x${TASKS}`, `big ${sizes.big}x${TASKS}`, 'big/small', 'target (big)', 'check'];
  const rows: string[][] = [];
  for (const f of FIGURES) {
    const s = cells.small.get(f.key);
    const b = cells.big.get(f.key);
    if (!s && !b) continue;
    let ratio = '';
    if (f.ratio && s?.value !== undefined && b?.value !== undefined && s.value > 0) ratio = `${(b.value / s.value).toFixed(1)}x`;
    let check = '';
    if (f.ok && b?.value !== undefined) check = f.ok(b.value, s?.value) ? 'ok' : 'MISS';
    rows.push([f.label, s?.text ?? '-', b?.text ?? '-', ratio, f.target ?? '', check]);
  }
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((c, i) => (i === 0 || i >= 4 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  const out = [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)];
  process.stdout.write(`\n${out.join('\n')}\n`);
}

// ---------- phases ----------

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const randomService = (n: number): string => serviceName(Math.floor(Math.random() * n));
const deadline = (ms: number): number => performance.now() + ms;

async function stallPhase<T>(d: Daemon, size: Size, key: string, fn: () => Promise<T>): Promise<T> {
  await scrapeStallMs(d).catch(() => undefined); // starts the window
  const r = await fn();
  const stall = await scrapeStallMs(d).catch(() => undefined);
  put(size, key, stall, stall === undefined ? 'n/a' : fmtMs(stall));
  return r;
}

async function addTask(api: string, services: number, timeoutMs: number, name?: string): Promise<CallResult> {
  return call(api, 'POST', '/v1/tasks', { service: randomService(services), ...(name ? { name } : {}) }, timeoutMs);
}

async function sequential(d: Daemon, size: Size, services: number): Promise<void> {
  const adds: number[] = [];
  const rms: number[] = [];
  const failures = new Failures();
  const end = deadline(PHASE_MS);
  await stallPhase(d, size, 'seq.stall', async () => {
    while (adds.length < SAMPLES && performance.now() < end) {
      const a = await addTask(d.api, services, PHASE_MS);
      if (!a.ok) {
        failures.add(a);
        continue;
      }
      adds.push(a.ms);
      const r = await call(d.api, 'DELETE', `/v1/tasks/${(a.body as { id: string }).id}`, undefined, PHASE_MS);
      if (r.ok) rms.push(r.ms);
      else failures.add(r);
    }
  });
  const a = summarize(adds);
  const r = summarize(rms);
  put(size, 'add.p50', a.p50, fmtMs(a.p50));
  put(size, 'add.p99', a.p99, fmtMs(a.p99));
  put(size, 'rm.p50', r.p50, fmtMs(r.p50));
  put(size, 'rm.p99', r.p99, fmtMs(r.p99));
  if (a.n < SAMPLES) note(size, `sequential: ${a.n} of ${SAMPLES} add/remove pairs within the ${PHASE_MS / 1000} s phase bound`);
  if (failures.total) note(size, `sequential: failures ${failures}`);
  progress(size, `sequential: add p50 ${fmtMs(a.p50)} p99 ${fmtMs(a.p99)}, remove p50 ${fmtMs(r.p50)} p99 ${fmtMs(r.p99)} (n=${a.n})`);
}

/** Runs the DNS load in a worker thread; `onStart` when its first query goes out. */
function dnsLoad(input: DnsLoadInput, onStart?: () => void): Promise<DnsLoadResult> {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL('./scale/dns-load.js', import.meta.url), { workerData: { dnsLoad: input } });
    const timer = setTimeout(() => void w.terminate().then(() => reject(new Error('DNS load did not finish'))), (input.seconds + 30) * 1000);
    w.on('message', (m: DnsLoadResult | { error: string } | 'started') => {
      if (m === 'started') return onStart?.();
      clearTimeout(timer);
      void w.terminate();
      if ('error' in m) reject(new Error(m.error));
      else resolve(m);
    });
    w.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

async function dnsPhase(d: Daemon, size: Size, services: number): Promise<void> {
  const names = Array.from({ length: services }, (_, i) => serviceName(i));
  const base = { host: '127.0.0.1', port: d.dnsPort, names, qps: QPS, lostAfterMs: LOST_AFTER_MS };
  const idle = await dnsLoad({ ...base, seconds: Math.min(3, DNS_SECONDS) });
  const idleSum = summarize(idle.latencies);
  put(size, 'dns.idle.p99', idleSum.p99, fmtMs(idleSum.p99));
  if (idle.lost || idle.bad) note(size, `DNS idle: ${idle.lost} unanswered, ${idle.bad} answers without a record or not NOERROR`);

  // Writes at DNS_WRITES/s, open loop (a slow write does not slow the pace), alternately adding
  // a task and removing the oldest added, so the catalog keeps its size.
  const added: string[] = [];
  const failures = new Failures();
  const end = deadline(PHASE_MS + DNS_SECONDS * 1000);
  let done = 0;
  let inFlight = 0;
  let skipped = 0;
  let writerStart = 0;
  let lastDone = 0;
  // For as long as the queries go out.
  const writer = async (): Promise<void> => {
    const t0 = performance.now();
    writerStart = t0;
    const end = t0 + DNS_SECONDS * 1000;
    for (let k = 0; ; k++) {
      const due = t0 + (k * 1000) / DNS_WRITES;
      if (due >= end) break;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      if (inFlight >= 64) {
        skipped++;
        continue;
      }
      inFlight++;
      const id = k % 2 === 1 ? added.shift() : undefined;
      const p = id ? call(d.api, 'DELETE', `/v1/tasks/${id}`, undefined, PHASE_MS) : addTask(d.api, services, PHASE_MS);
      void p.then((r) => {
        inFlight--;
        lastDone = performance.now();
        if (r.ok) {
          done++;
          if (!id) added.push((r.body as { id: string }).id);
        } else failures.add(r);
      });
    }
  };
  const result = await stallPhase(d, size, 'dns.stall', async () => {
    let w: Promise<void> = Promise.resolve();
    const r = await dnsLoad({ ...base, seconds: DNS_SECONDS }, () => void (w = writer()));
    await w;
    // The writes still in flight finish (within the phase bound) and count.
    while (inFlight > 0 && performance.now() < end) await sleep(20);
    return r;
  });
  const wrote = done / (Math.max(DNS_SECONDS * 1000, lastDone - writerStart) / 1000);
  // Back to the loaded size, as far as the phase bound allows.
  await pool(CLIENTS, end, () => {
    const id = added.shift();
    return id ? async () => void (await call(d.api, 'DELETE', `/v1/tasks/${id}`, undefined, Math.max(1000, end - performance.now()))) : undefined;
  });
  if (added.length) note(size, `DNS phase: ${added.length} added tasks left in the catalog (phase bound)`);
  const s = summarize(result.latencies);
  put(size, 'dns.p50', s.p50, fmtMs(s.p50));
  put(size, 'dns.p99', s.p99, fmtMs(s.p99));
  put(size, 'dns.max', s.max, fmtMs(s.max));
  put(size, 'dns.lost', result.lost, `${fmtCount(result.lost)} of ${fmtCount(result.sent)}`);
  put(size, 'dns.qps', result.sent / DNS_SECONDS, fmtRate(result.sent / DNS_SECONDS));
  put(size, 'dns.writes', wrote, fmtRate(wrote));
  if (result.bad) note(size, `DNS while writing: ${result.bad} answers without a record or not NOERROR`);
  if (failures.total) note(size, `DNS phase writes: ${failures.total} failed (${failures})`);
  if (skipped) note(size, `DNS phase writes: ${skipped} not started (64 already in flight)`);
  progress(size, `DNS: p50 ${fmtMs(s.p50)} p99 ${fmtMs(s.p99)} max ${fmtMs(s.max)}, ${result.lost} unanswered of ${result.sent}; writes ${fmtRate(wrote)}`);
}

/** 32 clients, each adding a task and removing it again, so the catalog keeps its size. */
async function burst(d: Daemon, size: Size, services: number): Promise<void> {
  const failures = new Failures();
  let started = 0;
  let writes = 0;
  let ms = 0;
  await stallPhase(d, size, 'burst.stall', async () => {
    const t0 = performance.now();
    await pool(CLIENTS, deadline(PHASE_MS), () => {
      if (started >= BURST_WRITES) return undefined;
      started += 2;
      return async () => {
        const a = await addTask(d.api, services, PHASE_MS);
        if (!a.ok) return failures.add(a);
        writes++;
        const r = await call(d.api, 'DELETE', `/v1/tasks/${(a.body as { id: string }).id}`, undefined, PHASE_MS);
        if (r.ok) writes++;
        else failures.add(r);
      };
    });
    ms = performance.now() - t0;
  });
  const rate = writes / (ms / 1000);
  put(size, 'burst', rate, fmtRate(rate));
  put(size, 'burst.fail', failures.total, String(failures.total));
  if (writes + failures.total < BURST_WRITES) note(size, `32 clients: ${writes} of ${BURST_WRITES} writes within the ${PHASE_MS / 1000} s phase bound`);
  if (failures.total) note(size, `32 clients: failures ${failures}`);
  progress(size, `32 clients: ${writes} writes at ${fmtRate(rate)}, ${failures.total} failed`);
  await sleep(2000);
  const rss = rssBytes(d.pid);
  put(size, 'rss.after', rss, fmtMB(rss));
}

async function restart(d: Daemon, ports: DaemonPorts, res: Resources, size: Size): Promise<Daemon> {
  await stopDaemon(d);
  const again = spawnDaemon(res, d.dataDir, ports);
  const ms = await waitReady(again, LOAD_MS);
  put(size, 'restart', ms, fmtSec(ms));
  progress(size, `restart to /readyz: ${fmtSec(ms)}`);
  return again;
}

/** Starts a daemon on a catalog.json written in today's format; times /readyz; checks nothing is lost. */
async function migrate(res: Resources, size: Size, services: number): Promise<void> {
  const dir = res.dir('vipdns-bench-migrate-');
  const state = generateCatalog(services, TASKS);
  writeCatalogFile(dir, state);
  const d = spawnDaemon(res, dir, await freePorts());
  try {
    const ms = await waitReady(d, LOAD_MS);
    put(size, 'migrate', ms, fmtSec(ms));
    // GET /v1/tasks, not /v1/services: today the latter counts each service's tasks by a scan.
    const tasks = await call(d.api, 'GET', '/v1/tasks', undefined, PHASE_MS);
    if (!tasks.ok || !Array.isArray(tasks.body)) throw new Error(`GET /v1/tasks after the start: ${tasks.failure ?? 'not a list'} after ${fmtSec(tasks.ms)}`);
    const list = tasks.body as Array<{ service: string }>;
    const gotS = new Set(list.map((t) => t.service)).size;
    const gotT = list.length;
    const wantT = Object.keys(state.tasks).length;
    const kept = gotS === services && gotT === wantT;
    put(size, 'migrate.kept', kept ? 1 : 0, `${fmtCount(gotS)}+${fmtCount(gotT)}`);
    note(size, `migration: ${fmtSec(ms)} to /readyz; services with tasks ${gotS}/${services}, tasks ${gotT}/${wantT}; data dir after start: ${readdirSync(dir).join(' ')}`);
  } finally {
    await stopDaemon(d);
  }
}

async function etcdPhase(res: Resources, size: Size, services: number): Promise<void> {
  const etcd = await startEtcd(res);
  const store = ['--store', etcd.url];
  const a = spawnDaemon(res, res.dir('vipdns-bench-etcd-a-'), await freePorts(), [...store, '--node-name', 'bench-a']);
  const b = spawnDaemon(res, res.dir('vipdns-bench-etcd-b-'), await freePorts(), [...store, '--node-name', 'bench-b']);
  try {
    await waitReady(a, PHASE_MS);
    await waitReady(b, PHASE_MS);
    const load = await loadThroughApi(a.api, services, TASKS, CLIENTS, deadline(LOAD_MS));
    const rate = load.writes / (load.ms / 1000);
    put(size, 'etcd.load', rate, fmtRate(rate));
    progress(size, `etcd: loaded ${load.writes}/${load.wanted} writes in ${fmtSec(load.ms)}`);
    if (load.failures.total) note(size, `etcd load failures: ${load.failures}`);
    if (load.writes < load.wanted) throw new Error(`etcd: only ${load.writes} of ${load.wanted} load writes within the bound`);
    const seen: number[] = [];
    let lost = 0;
    const failures = new Failures();
    const end = deadline(PHASE_MS);
    for (let i = 0; i < ETCD_WRITES && performance.now() < end; i++) {
      const name = `bench-e${i}-${Math.random().toString(36).slice(2, 8)}`;
      const r = await addTask(a.api, services, PHASE_MS, name);
      if (!r.ok) {
        failures.add(r);
        continue;
      }
      // From A's acknowledgement to B's first answer.
      const ms = await untilAnswered(b.dnsPort, name, 5000);
      if (ms === undefined) lost++;
      else seen.push(ms);
      await call(a.api, 'DELETE', `/v1/tasks/${(r.body as { id: string }).id}`, undefined, PHASE_MS);
    }
    const s = summarize(seen);
    put(size, 'etcd.p50', s.p50, fmtMs(s.p50));
    put(size, 'etcd.p99', s.p99, fmtMs(s.p99));
    put(size, 'etcd.lost', lost, String(lost));
    if (failures.total) note(size, `etcd writes on A: failures ${failures}`);
    progress(size, `etcd: A to B p50 ${fmtMs(s.p50)} p99 ${fmtMs(s.p99)}, ${lost} not seen (n=${s.n})`);
  } finally {
    await Promise.all([stopDaemon(a), stopDaemon(b)]);
    etcd.proc.kill('SIGKILL');
  }
}

// ---------- one size ----------

async function runSize(res: Resources, size: Size, services: number): Promise<void> {
  const needDaemon = ['load', 'seq', 'dns', 'burst', 'restart'].some((p) => PHASES.has(p));
  if (needDaemon) {
    const dir = res.dir(`vipdns-bench-${size}-`);
    const ports = await freePorts();
    if (LOAD === 'file') writeCatalogFile(dir, generateCatalog(services, TASKS));
    let d = spawnDaemon(res, dir, ports);
    try {
      await waitReady(d, LOAD_MS);
      if (LOAD === 'api') {
        progress(size, `loading ${services} services x ${TASKS} tasks through the API, ${CLIENTS} clients`);
        const load = await loadThroughApi(d.api, services, TASKS, CLIENTS, deadline(LOAD_MS));
        const rate = load.writes / (load.ms / 1000);
        put(size, 'load.time', load.ms, fmtSec(load.ms));
        put(size, 'load.rate', rate, fmtRate(rate));
        put(size, 'load.fail', load.failures.total, String(load.failures.total));
        if (load.failures.total) note(size, `load failures: ${load.failures}`);
        progress(size, `loaded ${load.writes}/${load.wanted} writes in ${fmtSec(load.ms)} (${fmtRate(rate)})`);
        if (load.writes < load.wanted) throw new Error(`only ${load.writes} of ${load.wanted} load writes within --load-timeout`);
      } else note(size, 'catalog preloaded as catalog.json (--load file), not through the API');
      await sleep(2000);
      const rss = rssBytes(d.pid);
      put(size, 'rss.idle', rss, fmtMB(rss));
      const phase = async (name: string, fn: () => Promise<void>): Promise<void> => {
        if (!PHASES.has(name)) return;
        try {
          await fn();
        } catch (e) {
          note(size, `${name}: ${(e as Error).message}`);
          if (d.proc.exitCode !== null || d.proc.signalCode !== null) throw new Error(`the daemon died during ${name}:\n${d.logs.join('').slice(-2000)}`);
        }
      };
      await phase('seq', () => sequential(d, size, services));
      await phase('dns', () => dnsPhase(d, size, services));
      await phase('burst', () => burst(d, size, services));
      await phase('restart', async () => void (d = await restart(d, ports, res, size)));
    } catch (e) {
      note(size, `stopped: ${(e as Error).message}`);
    } finally {
      await stopDaemon(d);
    }
  }
  if (PHASES.has('migrate')) await migrate(res, size, services).catch((e: Error) => note(size, `migration: ${e.message}`));
  if (PHASES.has('etcd')) await etcdPhase(res, size, size === 'big' ? Math.min(services, ETCD_SERVICES) : services).catch((e: Error) => note(size, `etcd: ${e.message}`));
}

async function main(): Promise<void> {
  const res = new Resources();
  const started = new Date();
  const head = [
    `vipdns scale bench (issue 12)  ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC  node ${process.version}  ${cpus().length} CPUs  load avg ${loadavg()[0]!.toFixed(1)} at start`,
    `daemon: vipdns serve --dataplane none, embedded LMDB store (etcd rows: --store etcd://, two daemons)  load: ${LOAD === 'api' ? `through the API, ${CLIENTS} clients` : 'catalog.json written directly'}`,
    `sizes: small ${SMALL} x ${TASKS}, big ${BIG} x ${TASKS} (issue 12 targets are for 10,000 x 10)  etcd rows: small ${SMALL} x ${TASKS}, big ${Math.min(BIG, ETCD_SERVICES)} x ${TASKS}`,
    `sequential: ${SAMPLES} add+remove pairs  32 clients: ${BURST_WRITES} writes (each client adds a task, then removes it)  DNS: ${QPS} QPS for ${DNS_SECONDS} s, UDP, random service names, while ${DNS_WRITES} writes/s; unanswered after ${LOST_AFTER_MS / 1000} s = lost`,
    `phases: ${[...PHASES].join(',')}  each bounded by ${PHASE_MS / 1000} s (load by ${LOAD_MS / 1000} s)`,
  ];
  process.stderr.write(`${head.join('\n')}\n`);
  try {
    await runSize(res, 'small', SMALL);
    await runSize(res, 'big', BIG);
  } finally {
    await res.cleanup();
  }
  process.stdout.write(`${head.join('\n')}\n`);
  printTable({ small: SMALL, big: BIG });
  process.stdout.write(`\ntook ${((Date.now() - started.getTime()) / 60_000).toFixed(1)} min; check: big vs the issue's target ("ok"/"MISS"); stalls: vipdns_event_loop_delay_max_seconds over the phase\n`);
  if (notes.length) process.stdout.write(`\nnotes:\n${notes.map((n) => `  ${n}`).join('\n')}\n`);
}

await main();
