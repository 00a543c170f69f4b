// Dataplane sync benchmark (root): in a throwaway network namespace, programs N services × B backends
// with the nftables driver, then measures one endpoint change, at every size in the same run.
// Goals (issue): full sync of 10,000 × 10 ≤ 2 s; one change at 10,000 / at 10 ≤ 1.5.
//   npm run bench:dataplane [-- --sizes 10,10000 --backends 10 --repeat 15]
// Wall times on a shared machine include waiting for a CPU, so nft's own CPU time (user+sys) is
// reported beside them.
import { execFileSync, spawn } from 'node:child_process';
import { diff } from '../src/balancer/diff.js';
import { resolveTool, type Runner } from '../src/balancer/drivers/exec.js';
import { NftablesDriver } from '../src/balancer/drivers/nftables.js';
import { plan } from '../src/balancer/plan.js';
import { Balancer } from '../src/balancer/reconcile.js';
import type { DesiredState, ObservedState } from '../src/balancer/types.js';
import type { CatalogState } from '../src/catalog/model.js';
import { emptyState } from '../src/catalog/model.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? def) : def;
}
const SIZES = arg('sizes', '10,10000').split(',').map(Number);
const BACKENDS = Number(arg('backends', '10'));
const REPEAT = Number(arg('repeat', '15'));

const ip = (n: number) => `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;

/** N services on one /8: VIPs from 10.200.0.0, backends from 10.0.0.2 upwards. */
function catalog(n: number): CatalogState {
  const s = emptyState();
  s.networks['n'] = { id: 'n', name: 'n', subnet: '10.0.0.0/8', gateway: '10.0.0.1', attachable: true, createdAt: '', ipamCursor: '0' };
  let next = 2;
  for (let i = 0; i < n; i++) {
    const name = `svc${i}`;
    s.services[name] = { id: name, name, aliases: [], endpointMode: 'vip', attachments: [{ network: 'n', vip: ip((200 << 16) + i) }], ports: [{ protocol: 'tcp', target: 80 }], fwmark: 0x100 + i, createdAt: '' };
    for (let j = 0; j < BACKENDS; j++) {
      const id = `${name}.${j}`;
      s.tasks[id] = { id, name: id, service: name, slot: j, addresses: { n: ip(next++) }, health: 'healthy', createdAt: '' };
    }
  }
  return s;
}

/** Runs nft in the namespace and remembers its CPU time (user+sys, from bash's `times`, 1 ms resolution). */
function timedRunner(ns: string, cpu: { last: number }): Runner {
  const script = '"$@"; rc=$?; echo __cpu >&2; times >&2; exit $rc'; // times: shell line, then children
  const sec = (x: string) => {
    const m = /(\d+)m([\d.]+)s/.exec(x);
    return m ? Number(m[1]) * 60 + Number(m[2]) : NaN;
  };
  return (args, input) =>
    new Promise((resolve) => {
      const c = spawn('ip', ['netns', 'exec', ns, 'bash', '-c', script, 'bash', resolveTool('nft'), ...args]);
      const out: Buffer[] = [];
      let err = '';
      c.stdout.on('data', (b: Buffer) => out.push(b));
      c.stderr.on('data', (b: Buffer) => (err += b.toString()));
      c.on('close', (code) => {
        const m = /__cpu\n\S+ \S+\n(\S+) (\S+)\s*$/.exec(err);
        cpu.last = m ? (sec(m[1]!) + sec(m[2]!)) * 1000 : NaN;
        resolve({ code: code ?? 1, stdout: Buffer.concat(out).toString(), stderr: err.replace(/__cpu\n[\s\S]*$/, '') });
      });
      c.stdin.end(input ?? '');
    });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const since = (t0: number) => performance.now() - t0;
const quiet = { info() {}, warn() {}, error() {} };

interface Row {
  size: number;
  fullWall: number;
  fullCpu: number;
  txnKiB: number;
  observeWall: number;
  chgWall: number; // diff + nft transaction, driver level
  chgCpu: number; // nft's CPU for that transaction
  e2eWall: number; // Balancer: re-plan of the changed service + drain + diff + transaction
  e2eFullWall: number; // the same with a full re-plan (no change hint)
  e2eJsCpu: number; // CPU of this process for the hinted change
}

async function measure(size: number): Promise<Row> {
  const ns = `vipdns-bench-${process.pid}-${size}`;
  execFileSync('ip', ['netns', 'add', ns]);
  try {
    const cpu = { last: 0 };
    const driver = new NftablesDriver({ runner: timedRunner(ns, cpu) });
    const state = catalog(size);
    const desired: DesiredState = plan(state);
    const empty: ObservedState = { base: 'missing', units: new Map() };

    // Full sync from nothing, as on first start.
    let t0 = performance.now();
    const full = diff(desired, empty, driver);
    const { ops } = await driver.apply(full);
    const fullWall = since(t0);
    const fullCpu = cpu.last;
    const { renderDiff } = await import('../src/balancer/drivers/nftables-render.js');
    const txnKiB = Buffer.byteLength(renderDiff(full, driver.options, { knownClasses: new Set(), knownMaps: new Set() }).text) / 1024;
    void ops;

    t0 = performance.now();
    const observed = await driver.observe();
    const observeWall = since(t0);

    // One endpoint replaced in one service, driver level: diff against the cached observation + nft.
    const wall: number[] = [];
    const cpus: number[] = [];
    let cur = desired;
    for (let r = 0; r < REPEAT; r++) {
      const i = r % cur.services.length;
      const svc = cur.services[i]!;
      const backends = [{ ...svc.backends[0]!, ip: ip((250 << 16) + r) }, ...svc.backends.slice(1)];
      const services = [...cur.services];
      services[i] = { ...svc, backends };
      const next: DesiredState = { ...cur, services };
      t0 = performance.now();
      const d = diff(next, observed, driver);
      await driver.apply(d);
      wall.push(since(t0));
      cpus.push(cpu.last);
      for (const c of d.change) observed.units.set(c.observed.id, driver.expect(c.unit));
      cur = next;
    }

    // The same through the Balancer: catalog update → plan → drain → diff → transaction.
    const balancer = new Balancer({ driver, logger: quiet, resyncIntervalMs: 0, drainMs: 0, coalesceMs: 0 });
    balancer.update(state);
    await balancer.start();
    const e2e: number[] = [];
    const e2eFull: number[] = [];
    const jsCpu: number[] = []; // our own process: re-plan, drain, diff, render, spawn
    for (let r = 0; r < REPEAT; r++) {
      const name = `svc${r % size}`;
      state.tasks[`${name}.1`]!.addresses['n'] = ip((251 << 16) + r);
      t0 = performance.now();
      const c0 = process.cpuUsage();
      balancer.update({ ...state, revision: 2 * r + 1 }, { tasks: [`${name}.1`] }); // the catalog names what changed
      await balancer.syncNow();
      e2e.push(since(t0));
      const cu = process.cpuUsage(c0);
      jsCpu.push((cu.user + cu.system) / 1000);
      state.tasks[`${name}.2`]!.addresses['n'] = ip((252 << 16) + r);
      t0 = performance.now();
      balancer.update({ ...state, revision: 2 * r + 2 }); // no hint: full re-plan
      await balancer.syncNow();
      e2eFull.push(since(t0));
    }
    await balancer.stop();
    if (balancer.status().errors) throw new Error(`balancer errors: ${JSON.stringify(balancer.status().lastError)}`);
    await driver.cleanup();
    return { size, fullWall, fullCpu, txnKiB, observeWall, chgWall: median(wall), chgCpu: median(cpus), e2eWall: median(e2e), e2eFullWall: median(e2eFull), e2eJsCpu: median(jsCpu) };
  } finally {
    execFileSync('ip', ['netns', 'del', ns]);
  }
}

if (process.getuid?.() !== 0) {
  console.error('bench:dataplane needs root (it creates a network namespace)');
  process.exit(1);
}
const rows: Row[] = [];
for (const n of SIZES) rows.push(await measure(n));

const f = (x: number) => x.toFixed(1);
console.log(`\nnftables dataplane: ${BACKENDS} backends per service; one-change figures are medians of ${REPEAT}\n`);
console.log('| services | full sync wall ms | full sync nft CPU ms | full txn KiB | observe wall ms | 1 change: diff+nft wall ms | 1 change: nft CPU ms | 1 change via Balancer, hinted ms | of which vipdns CPU ms | 1 change via Balancer, full re-plan ms |');
console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const r of rows) console.log(`| ${r.size} | ${f(r.fullWall)} | ${f(r.fullCpu)} | ${f(r.txnKiB)} | ${f(r.observeWall)} | ${f(r.chgWall)} | ${f(r.chgCpu)} | ${f(r.e2eWall)} | ${f(r.e2eJsCpu)} | ${f(r.e2eFullWall)} |`);
if (rows.length >= 2) {
  const a = rows[0]!;
  const b = rows[rows.length - 1]!;
  console.log(`\none change, ${b.size} vs ${a.size}: wall ratio ${(b.chgWall / a.chgWall).toFixed(2)}, nft CPU ratio ${(b.chgCpu / Math.max(a.chgCpu, 1)).toFixed(2)}, via Balancer (hinted) ratio ${(b.e2eWall / a.e2eWall).toFixed(2)} (goal ≤ 1.5); full re-plan ratio ${(b.e2eFullWall / a.e2eFullWall).toFixed(2)}`);
  console.log(`full sync of ${b.size} × ${BACKENDS}: ${b.fullWall.toFixed(0)} ms wall, ${b.fullCpu.toFixed(0)} ms nft CPU (goal ≤ 2000)`);
}
console.log(`load average during the run: ${(await import('node:os')).loadavg().map((x) => x.toFixed(1)).join(' ')} on ${(await import('node:os')).cpus().length} CPUs`);
