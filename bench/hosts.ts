// Many hosts bench (issue 15): a real 3-member etcd cluster on loopback, 20 daemons (DNS only, each
// with its own data dir and ports) sharing a catalog of 10,000 services. Prints, beside the same
// figures with 2 daemons measured in the same run (the peer):
//   - a write on one daemon answered by every daemon (ms from the write's start to the last answer);
//   - etcd CPU time and bytes etcd sent (to watchers, mostly) per write; daemon RSS; a joining
//     daemon's start-up to /readyz;
//   - the etcd leader killed during a write burst from every daemon: the longest pause between
//     acknowledgements, and acknowledged writes missing afterwards from any daemon.
// Run on demand, not in CI:  npm run bench:hosts [-- --daemons 20 --services 10000 --writes 100]
// Everything it starts is killed and every temp dir removed, even on failure.
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { startEtcdCluster } from '../test/helpers/etcd.js';
import { untilAnswered } from './scale/answered.js';
import { Failures, call, loadThroughApi } from './scale/api.js';
import { NETWORK, serviceName } from './scale/catalog.js';
import { type Daemon, Resources, freePorts, rssBytes, spawnDaemon, stopDaemon, waitReady } from './scale/procs.js';
import { fmtCount, fmtMB, fmtMs, fmtSec, summarize } from './scale/stats.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = Number(i >= 0 ? process.argv[i + 1] : def);
  if (!Number.isFinite(v) || v < 0) throw new Error(`--${name} must be a number`);
  return v;
}
const DAEMONS = arg('daemons', 20);
const PEER = 2;
const SERVICES = arg('services', 10_000);
const WRITES = arg('writes', 100);
const CLIENTS = arg('clients', 32);
const BURST_MS = arg('burst-seconds', 8) * 1000;
const ANSWER_TIMEOUT_MS = 10_000;
const TICK_MS = 1000 / 100; // /proc/PID/stat counts CPU time in clock ticks of 10 ms

const log = (msg: string): void => console.log(`${new Date().toISOString().slice(11, 19)} ${msg}`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** CPU time (user + system) of these processes, in ms. */
function cpuMs(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(f[11]) + Number(f[12]); // utime, stime (fields 14 and 15)
  }
  return ticks * TICK_MS;
}

/** Bytes etcd sent to its gRPC clients (watch events, mostly), over every member. */
async function etcdSentBytes(endpoints: string[]): Promise<number> {
  let sum = 0;
  for (const e of endpoints) {
    try {
      const text = await (await fetch(`${e}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
      for (const m of text.matchAll(/^etcd_network_client_grpc_sent_bytes_total (\S+)$/gm)) sum += Number(m[1]);
    } catch {
      /* a killed member */
    }
  }
  return sum;
}

interface Fanout {
  p50: number;
  p99: number;
  max: number;
  unanswered: number;
  failed: number;
  cpuPerWrite: number;
  bytesPerWrite: number;
}

/** `n` writes, each on the next daemon in turn; each timed until every daemon answers its name. */
async function fanout(ds: Daemon[], n: number, pids: () => number[], endpoints: string[]): Promise<Fanout> {
  const times: number[] = [];
  let unanswered = 0;
  const failures = new Failures();
  const cpu0 = cpuMs(pids());
  const bytes0 = await etcdSentBytes(endpoints);
  for (let i = 0; i < n; i++) {
    const name = `hw-${ds.length}-${i}-${Math.random().toString(36).slice(2, 8)}`;
    const t0 = performance.now();
    const r = await call(ds[i % ds.length]!.api, 'POST', '/v1/tasks', { service: serviceName(i % SERVICES), name });
    if (!r.ok) {
      failures.add(r);
      continue;
    }
    const seen = await Promise.all(ds.map((d) => untilAnswered(d.dnsPort, name, ANSWER_TIMEOUT_MS)));
    if (seen.some((x) => x === undefined)) unanswered++;
    else times.push(performance.now() - t0);
  }
  const cpu = cpuMs(pids()) - cpu0;
  const bytes = (await etcdSentBytes(endpoints)) - bytes0;
  const s = summarize(times);
  return { p50: s.p50, p99: s.p99, max: s.max, unanswered, failed: failures.total, cpuPerWrite: cpu / n, bytesPerWrite: bytes / n };
}

interface Kill {
  pauseMs: number;
  acked: number;
  refused: number;
  lost: number;
}

/** A writer per daemon adds tasks; the leader is killed a third in; every ack is then looked for everywhere. */
async function leaderKill(ds: Daemon[], cluster: Awaited<ReturnType<typeof startEtcdCluster>>): Promise<Kill> {
  const r = await call(ds[0]!.api, 'POST', '/v1/services', { name: 'burst', networks: [NETWORK], endpointMode: 'dnsrr' });
  if (!r.ok) throw new Error(`cannot create the burst service: ${r.failure}`);
  const acked: Array<{ id: string; at: number }> = [];
  let refused = 0;
  let stop = false;
  const writers = ds.map(async (d) => {
    while (!stop) {
      const w = await call(d.api, 'POST', '/v1/tasks', { service: 'burst' }, 30_000);
      if (w.ok) acked.push({ id: (w.body as { id: string }).id, at: performance.now() });
      else {
        refused++;
        await sleep(50);
      }
    }
  });
  await sleep(BURST_MS / 3);
  const leader = await cluster.leader();
  const killedAt = performance.now();
  await cluster.kill(leader);
  log(`leader m${leader} killed after ${acked.length} acknowledged writes`);
  await sleep((BURST_MS * 2) / 3);
  stop = true;
  await Promise.all(writers);
  const times = acked.map((a) => a.at).filter((at) => at >= killedAt - 500).sort((a, b) => a - b);
  let pauseMs = times.length === 0 ? Infinity : 0;
  for (let i = 1; i < times.length; i++) pauseMs = Math.max(pauseMs, times[i]! - times[i - 1]!);
  const want = acked.map((a) => a.id);
  let lost = 0;
  for (const d of ds) {
    let missing = want.length;
    for (let n = 0; n < 100 && missing > 0; n++) {
      const list = await call(d.api, 'GET', '/v1/tasks?service=burst', undefined, 30_000);
      const have = new Set(list.ok ? (list.body as Array<{ id: string }>).map((x) => x.id) : []);
      missing = want.filter((id) => !have.has(id)).length;
      if (missing > 0) await sleep(100);
    }
    lost = Math.max(lost, missing);
  }
  return { pauseMs, acked: acked.length, refused, lost };
}

async function main(): Promise<void> {
  const res = new Resources();
  const started = performance.now();
  log(`${cpus().length} CPUs, load ${loadavg().map((x) => x.toFixed(2)).join(' ')}; ${DAEMONS} daemons (peer: ${PEER}), ${fmtCount(SERVICES)} services, ${WRITES} writes`);
  const cluster = await startEtcdCluster(3, (p) => res.track(p));
  const ds: Daemon[] = [];
  try {
    const start = async (i: number): Promise<number> => {
      const d = spawnDaemon(res, res.dir(`vipdns-bench-hosts-${i}-`), await freePorts(), ['--store', cluster.url, '--node-name', `host-${i}`]);
      ds.push(d);
      return waitReady(d, 120_000);
    };
    for (let i = 0; i < PEER; i++) await start(i);
    const load = await loadThroughApi(ds[0]!.api, SERVICES, 0, CLIENTS, performance.now() + 3_600_000);
    log(`loaded ${fmtCount(load.writes)} of ${fmtCount(load.wanted)} writes in ${fmtSec(load.ms)}${load.failures.total ? `; failures ${load.failures}` : ''}`);

    const small = await fanout(ds.slice(0, PEER), WRITES, cluster.pids, cluster.endpoints);
    log(`${PEER} daemons: write → answered by all p50 ${fmtMs(small.p50)} p99 ${fmtMs(small.p99)}`);
    const rssSmall = ds.map((d) => rssBytes(d.pid));

    const joins: number[] = [];
    for (let i = PEER; i < DAEMONS; i++) joins.push(await start(i));
    log(`${DAEMONS - PEER} more daemons joined; start-up to /readyz p50 ${fmtMs(summarize(joins).p50)}`);
    const big = await fanout(ds, WRITES, cluster.pids, cluster.endpoints);
    log(`${DAEMONS} daemons: write → answered by all p50 ${fmtMs(big.p50)} p99 ${fmtMs(big.p99)}`);
    const rssBig = ds.map((d) => rssBytes(d.pid));

    const kill = await leaderKill(ds, cluster);
    log(`leader kill: longest pause ${fmtMs(kill.pauseMs)}, ${kill.acked} acknowledged, ${kill.refused} refused, ${kill.lost} lost`);

    const avg = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
    const rows: Array<[string, string, string, string, string, string]> = [
      ['figure', `${PEER} daemons`, `${DAEMONS} daemons`, 'ratio', 'target', 'check'],
      ['write → answered by all: p50', fmtMs(small.p50), fmtMs(big.p50), ratio(big.p50, small.p50), '', ''],
      ['write → answered by all: p99', fmtMs(small.p99), fmtMs(big.p99), ratio(big.p99, small.p99), '<= 200 ms', big.p99 <= 200 ? 'ok' : 'MISS'],
      ['write → answered by all: max', fmtMs(small.max), fmtMs(big.max), ratio(big.max, small.max), '', ''],
      ['writes not answered everywhere / failed', `${small.unanswered} / ${small.failed}`, `${big.unanswered} / ${big.failed}`, '', '0', big.unanswered + big.failed === 0 ? 'ok' : 'MISS'],
      ['etcd CPU per write (3 members)', fmtMs(small.cpuPerWrite), fmtMs(big.cpuPerWrite), ratio(big.cpuPerWrite, small.cpuPerWrite), '', ''],
      ['bytes etcd sent per write', fmtCount(Math.round(small.bytesPerWrite)), fmtCount(Math.round(big.bytesPerWrite)), ratio(big.bytesPerWrite, small.bytesPerWrite), '', ''],
      ['daemon RSS: mean', fmtMB(avg(rssSmall)), fmtMB(avg(rssBig)), ratio(avg(rssBig), avg(rssSmall)), '', ''],
      ['daemon RSS: max', fmtMB(Math.max(...rssSmall)), fmtMB(Math.max(...rssBig)), '', '', ''],
      ['joining daemon: start → /readyz p50 / max', '', `${fmtMs(summarize(joins).p50)} / ${fmtMs(summarize(joins).max)}`, '', '', ''],
      ['leader killed: longest pause between acks', '', fmtMs(kill.pauseMs), '', '<= 5 s', kill.pauseMs <= 5000 ? 'ok' : 'MISS'],
      ['leader killed: acknowledged / refused', '', `${fmtCount(kill.acked)} / ${fmtCount(kill.refused)}`, '', '', ''],
      ['leader killed: acknowledged writes lost', '', String(kill.lost), '', '0', kill.lost === 0 ? 'ok' : 'MISS'],
    ];
    const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
    console.log('');
    for (const [i, r] of rows.entries()) {
      console.log(r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  '));
      if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
    }
    console.log(`\ntook ${fmtSec(performance.now() - started)}; "answered by all": from the write's start until every daemon's DNS answers its name`);
  } finally {
    await Promise.all(ds.map((d) => stopDaemon(d, 5_000)));
    await cluster.destroy();
    await res.cleanup();
  }
}

function ratio(a: number, b: number): string {
  return Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(1)}x` : '';
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
