// Dataplane sync benchmark (root): in a throwaway network namespace, programs N services × 10 backends
// with the nftables driver, then measures one endpoint change at N = 10 and N = 10,000.
// Goals (issue): full sync of 10,000 × 10 ≤ 2 s; one-change time at 10,000 / at 10 ≤ 1.5.
//   npm run bench:dataplane [-- --sizes 10,10000 --backends 10 --repeat 15]
import { execFileSync } from 'node:child_process';
import { diff } from '../src/balancer/diff.js';
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

/** N services on one /8: VIPs from 10.200.0.0, backends from 10.0.0.1 upwards. */
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

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ms = (t0: number) => performance.now() - t0;
const quiet = { info() {}, warn() {}, error() {} };

interface Row {
  size: number;
  fullSync: number;
  fullText: number; // bytes of the full transaction
  observe: number;
  changeDriver: number; // diff + render + nft -f for one changed endpoint
  changeE2E: number; // Balancer: plan + drain + diff + apply
  planDiff: number; // the userspace part of changeE2E
}

async function measure(size: number): Promise<Row> {
  const ns = `vipdns-bench-${process.pid}-${size}`;
  execFileSync('ip', ['netns', 'add', ns]);
  try {
    const driver = new NftablesDriver({ netns: ns });
    const state = catalog(size);
    const desired: DesiredState = plan(state);
    const empty: ObservedState = { base: 'missing', units: new Map() };

    // Full sync from nothing.
    let t0 = performance.now();
    const full = diff(desired, empty, driver);
    const { ops } = await driver.apply(full);
    const fullSync = ms(t0);
    const { renderDiff } = await import('../src/balancer/drivers/nftables-render.js');
    const fullText = Buffer.byteLength(renderDiff(full, driver.options, { knownClasses: new Set(), knownMaps: new Set() }).text);
    void ops;

    t0 = performance.now();
    const observed = await driver.observe();
    const observe = ms(t0);

    // One endpoint change, driver level: against the cached observation, as the reconciler does.
    const drv: number[] = [];
    let cur = desired;
    for (let r = 0; r < REPEAT; r++) {
      const svc = cur.services[0]!;
      const changed: DesiredState = { ...cur, services: [{ ...svc, backends: [...svc.backends.slice(1), { ...svc.backends[0]!, ip: ip((250 << 16) + r) }] }, ...cur.services.slice(1)] };
      t0 = performance.now();
      const d = diff(changed, observed, driver);
      await driver.apply(d);
      drv.push(ms(t0));
      for (const c of d.change) observed.units.set(c.observed.id, driver.expect(c.unit));
      cur = changed;
    }

    // One endpoint change, end to end through the Balancer (adopts the table first).
    const balancer = new Balancer({ driver, logger: quiet, resyncIntervalMs: 0, drainMs: 0, coalesceMs: 0 });
    balancer.update(state);
    await balancer.start();
    const e2e: number[] = [];
    const pd: number[] = [];
    const task = state.tasks['svc0.0']!;
    for (let r = 0; r < REPEAT; r++) {
      task.addresses['n'] = ip((251 << 16) + r);
      const applied: number[] = [];
      const b2 = balancer as unknown as { onSync?: unknown };
      void b2;
      t0 = performance.now();
      balancer.update({ ...state, revision: r + 1 });
      await balancer.syncNow();
      e2e.push(ms(t0));
      void applied;
      // The same userspace work without the kernel: plan + diff.
      const t1 = performance.now();
      diff(plan(state), observed, driver);
      pd.push(ms(t1));
    }
    await balancer.stop();
    await driver.cleanup();
    return { size, fullSync, fullText, observe, changeDriver: median(drv), changeE2E: median(e2e), planDiff: median(pd) };
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

const f = (x: number) => x.toFixed(1).padStart(9);
console.log(`\nnftables dataplane, ${BACKENDS} backends per service, one-change medians of ${REPEAT}\n`);
console.log('| services | units | full sync ms | full txn KiB | observe ms | 1 change: driver ms | 1 change: end-to-end ms | of which plan+diff ms |');
console.log('|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const r of rows) {
  console.log(`| ${r.size} | ${r.size} | ${f(r.fullSync)} | ${f(r.fullText / 1024)} | ${f(r.observe)} | ${f(r.changeDriver)} | ${f(r.changeE2E)} | ${f(r.planDiff)} |`);
}
if (rows.length >= 2) {
  const a = rows[0]!;
  const b = rows[rows.length - 1]!;
  console.log(`\nratio one change ${b.size} vs ${a.size}: driver ${(b.changeDriver / a.changeDriver).toFixed(2)} (goal ≤ 1.5), end-to-end ${(b.changeE2E / a.changeE2E).toFixed(2)}`);
  console.log(`full sync of ${b.size} × ${BACKENDS}: ${b.fullSync.toFixed(0)} ms (goal ≤ 2000)`);
}
