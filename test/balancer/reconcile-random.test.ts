// The reconciler's incremental path against the full one, under random catalog changes delivered as
// the catalog delivers them (AppliedChange → hintFor → update): after every change the units in the
// (fake, recording) kernel equal a full plan() of the catalog, draining included; and one task added
// or removed costs work on that task's service only, at any catalog size.
import test from 'ava';
import { units } from '../../src/balancer/diff.js';
import { withDraining } from '../../src/balancer/drain.js';
import { hintFor } from '../../src/balancer/hint.js';
import { plan } from '../../src/balancer/plan.js';
import { Balancer } from '../../src/balancer/reconcile.js';
import type { DataplaneDriver, DesiredState, Diff, ObservedState, ObservedUnit, Unit } from '../../src/balancer/types.js';
import { type AppliedChange, applyChange, diffStates } from '../../src/catalog/changes.js';
import { type CatalogState, type Health, type PortSpec, emptyState } from '../../src/catalog/model.js';
import { Rng } from '../helpers/fuzz.js';

/** A kernel that holds each unit as the exact record it was given; counts the work asked of it. */
class RecordingDriver implements DataplaneDriver {
  readonly name = 'nftables' as const;
  kernel = new Map<string, string>(); // unit id → the unit as JSON
  base: ObservedState['base'] = 'missing';
  observes = 0;
  expects = 0;
  async probe() {
    return { supported: true };
  }
  expect(u: Unit): ObservedUnit {
    this.expects++;
    const x = u.kind === 'vip' ? u.vip : u.published;
    return { id: `${u.kind}:${x.key}`, fingerprint: JSON.stringify(x) };
  }
  async observe(): Promise<ObservedState> {
    this.observes++;
    return { base: this.base, units: new Map([...this.kernel].map(([id, f]) => [id, { id, fingerprint: f }])) };
  }
  async apply(d: Diff) {
    for (const r of d.remove) this.kernel.delete(r.id);
    for (const u of [...d.add, ...d.change.map((c) => c.unit)]) {
      const e = this.expect(u);
      this.kernel.set(e.id, e.fingerprint);
    }
    this.base = 'ok';
    return { ops: 1 };
  }
  async cleanup() {
    this.kernel.clear();
    return { removed: true };
  }
}

const quiet = { info() {}, warn() {}, error() {} };

/** The kernel a desired state makes, as the recording driver stores it. */
function kernelOf(d: DesiredState): Map<string, string> {
  const out = new Map<string, string>();
  for (const u of units(d)) {
    const x = u.kind === 'vip' ? u.vip : u.published;
    out.set(`${u.kind}:${x.key}`, JSON.stringify(x));
  }
  return out;
}

function sameKernel(a: Map<string, string>, b: Map<string, string>): string | undefined {
  for (const [id, f] of b) if (a.get(id) !== f) return `${id}: have ${a.get(id) ?? '(none)'}, want ${f}`;
  for (const id of a.keys()) if (!b.has(id)) return `${id}: have it, want none`;
  return undefined;
}

/** Copy-on-write commit, as the catalog delivers it: the change with each object's previous value. */
function commit(s: CatalogState, mutate: (next: CatalogState) => void): AppliedChange {
  const next: CatalogState = { ...s, networks: { ...s.networks }, services: { ...s.services }, tasks: { ...s.tasks }, containers: { ...s.containers } };
  mutate(next);
  const before = emptyState();
  const after = emptyState();
  for (const k of ['networks', 'services', 'tasks'] as const) {
    const a = s[k] as Record<string, unknown>;
    const b = next[k] as Record<string, unknown>;
    for (const id of new Set([...Object.keys(a), ...Object.keys(b)])) {
      if (a[id] === b[id]) continue;
      if (id in a) (before[k] as Record<string, unknown>)[id] = a[id];
      if (id in b) (after[k] as Record<string, unknown>)[id] = b[id];
    }
  }
  return applyChange(s, diffStates(before, after), ++s.revision).applied;
}

function edit<T>(rec: Record<string, T>, id: string): T {
  return (rec[id] = structuredClone(rec[id]!));
}

const NETS: Record<string, string> = { n: '10.1', m: '10.2', six: 'fd00:6' };
// Every address handed out once (the catalog's IPAM never gives one twice), so backend order is defined.
let lastAddr = 0;
const addr = (net: string, _r: Rng): string => {
  const n = ++lastAddr;
  return net === 'six' ? `fd00:6::${n.toString(16)}` : `${NETS[net]}.${(n >> 8) & 127}.${n & 255}`;
};
const vipOf = (net: string, i: number, gen: number): string => (net === 'six' ? `fd00:6::${(0x100 + i * 16 + gen).toString(16)}` : `${NETS[net]}.200.${i * 16 + gen}`);

function randomPorts(r: Rng): PortSpec[] {
  const out: PortSpec[] = [];
  for (const target of [80, 53, 443]) {
    if (r.int(2)) continue;
    // A few shared published ports, so some changes contest one (the planner falls back to a full plan).
    out.push({ protocol: target === 53 ? 'udp' : 'tcp', target, ...(r.int(3) === 0 ? { published: 8080 + r.int(4) } : {}) });
  }
  return out;
}

let gen = 0;
function randomStep(r: Rng, s: CatalogState, seq: { n: number }): void {
  const pick = <T>(xs: T[]): T | undefined => (xs.length ? xs[r.int(xs.length)] : undefined);
  const services = Object.keys(s.services);
  const tasks = Object.keys(s.tasks);
  const nets = Object.keys(s.networks);
  const attach = (i: number) => nets.filter(() => r.int(3) !== 0).map((network) => ({ network, vip: vipOf(network, i, ++gen % 16) }));
  switch (r.int(16)) {
    case 0: {
      const i = r.int(16);
      const name = `s${i}`;
      if (s.services[name]) return;
      s.services[name] = { id: name, name, aliases: [], endpointMode: r.int(6) ? 'vip' : 'dnsrr', attachments: attach(i), ports: randomPorts(r), fwmark: 0x100 + i, createdAt: '' };
      return;
    }
    case 1: {
      const name = pick(services);
      if (!name || r.int(2)) return;
      delete s.services[name];
      for (const id of tasks) if (s.tasks[id]?.service === name) delete s.tasks[id];
      return;
    }
    case 2: {
      const name = pick(services);
      if (name) edit(s.services, name).ports = randomPorts(r);
      return;
    }
    case 3: {
      const name = pick(services);
      if (name) edit(s.services, name).attachments = attach(Number(name.slice(1)));
      return;
    }
    case 4: {
      const name = pick(services);
      if (name) {
        const svc = edit(s.services, name);
        svc.endpointMode = svc.endpointMode === 'vip' ? 'dnsrr' : 'vip';
      }
      return;
    }
    case 5:
    case 6:
    case 7:
    case 8: {
      const service = pick(services);
      if (!service || tasks.length > 120) return;
      const id = `t${++seq.n}`;
      const addresses: Record<string, string> = {};
      for (const n of nets) if (r.int(4)) addresses[n] = addr(n, r);
      s.tasks[id] = { id, name: id, service, slot: seq.n, addresses, health: (['healthy', 'unknown', 'unhealthy'] as Health[])[r.int(6) === 0 ? 2 : r.int(2)]!, createdAt: '' };
      return;
    }
    case 9:
    case 10:
    case 11: {
      const id = pick(tasks);
      if (id) delete s.tasks[id];
      return;
    }
    case 12: {
      const id = pick(tasks);
      if (!id) return;
      const t = edit(s.tasks, id);
      const n = pick(nets);
      if (n) t.addresses[n] = addr(n, r);
      return;
    }
    case 13: {
      const id = pick(tasks);
      if (!id) return;
      const t = edit(s.tasks, id);
      if (r.int(4) === 0) t.service = pick(services) ?? t.service;
      else t.health = t.health === 'unhealthy' ? 'healthy' : 'unhealthy';
      return;
    }
    case 14: {
      // A network put: mostly an IPAM cursor move (hint stays), sometimes a new subnet (full re-plan).
      const name = pick(nets)!;
      const n = edit(s.networks, name);
      if (r.int(4)) n.ipamCursor = String(Number(n.ipamCursor) + 1);
      else n.subnet = n.subnet.endsWith('/16') ? n.subnet.replace('/16', '/17') : n.subnet.replace('/17', '/16');
      return;
    }
    default: {
      // A network leaves or comes back: units on it go or return (a full re-plan).
      if (r.int(3)) return;
      if (s.networks['m']) delete s.networks['m'];
      else s.networks['m'] = { id: 'm', name: 'm', subnet: '10.2.0.0/16', gateway: '10.2.0.1', attachable: true, createdAt: '', ipamCursor: '0' };
    }
  }
}

function seedState(): CatalogState {
  const s = emptyState();
  for (const [name, pre] of Object.entries(NETS)) {
    s.networks[name] = name === 'six'
      ? { id: name, name, subnet: 'fd00:6::/64', gateway: 'fd00:6::1', attachable: true, createdAt: '', ipamCursor: '0' }
      : { id: name, name, subnet: `${pre}.0.0/16`, gateway: `${pre}.0.1`, attachable: true, createdAt: '', ipamCursor: '0' };
  }
  return s;
}

for (const seed of [1, 2]) {
  test(`random changes, no draining: the kernel equals a full plan() after every change (seed ${seed})`, async (t) => {
    const r = new Rng(seed * 104729);
    const s = seedState();
    const seq = { n: 0 };
    for (let i = 0; i < 30; i++) commit(s, (x) => randomStep(r, x, seq));
    const drv = new RecordingDriver();
    const b = new Balancer({ driver: drv, logger: quiet, resyncIntervalMs: 0, drainMs: 0, coalesceMs: 60_000 });
    b.update(s);
    await b.start();
    t.teardown(() => b.stop());
    let hinted = 0;
    let units = 0;
    for (let step = 1; step <= 1500; step++) {
      const change = commit(s, (x) => {
        for (let k = r.int(5) === 0 ? 1 + r.int(3) : 1; k > 0; k--) randomStep(r, x, seq);
      });
      const hint = hintFor(change);
      if (hint) hinted++;
      b.update(s, hint);
      await b.syncNow();
      const want = kernelOf(plan(s));
      units += want.size;
      const bad = sameKernel(drv.kernel, want);
      if (bad) return t.fail(`step ${step}: ${bad}`);
    }
    t.is(drv.observes, 1, 'no change re-read the kernel');
    t.true(hinted > 1000, `most changes took the hinted path (${hinted})`);
    t.true(units / 1500 > 5, `the catalog had units to compare (${(units / 1500).toFixed(1)} on average)`);
  });

  test(`random changes with draining and a clock: the kernel equals the full path's drained plan (seed ${seed})`, async (t) => {
    const r = new Rng(seed * 7727);
    const s = seedState();
    const seq = { n: 0 };
    for (let i = 0; i < 30; i++) commit(s, (x) => randomStep(r, x, seq));
    let now = 1_000_000;
    const drv = new RecordingDriver();
    const b = new Balancer({ driver: drv, logger: quiet, resyncIntervalMs: 0, drainMs: 1000, coalesceMs: 60_000, now: () => now });
    b.update(s);
    await b.start();
    t.teardown(() => b.stop());
    // The reference: what the full path computes, from the previous reference and a full plan.
    let ref = withDraining(undefined, plan(s), now, 1000).state;
    let draining = 0;
    for (let step = 1; step <= 1500; step++) {
      const change = commit(s, (x) => randomStep(r, x, seq));
      if (r.int(3) === 0) now += r.int(600);
      b.update(s, hintFor(change));
      await b.syncNow();
      await b.syncNow('drain'); // what the drain timer does when a deadline passes
      ref = withDraining(ref, plan(s), now, 1000).state;
      const bad = sameKernel(drv.kernel, kernelOf(ref));
      if (bad) return t.fail(`step ${step}: ${bad}`);
      draining += b.status().programmed.draining;
    }
    t.is(drv.observes, 1, 'no change re-read the kernel');
    t.true(draining > 500, `backends were draining along the way (${draining} backend-steps)`);
  });
}

test('one task added or removed, or a drain expiring, costs work on its service only, at any size', async (t) => {
  const perChange: Record<number, number[]> = {};
  for (const size of [200, 4000]) {
    const s = seedState();
    for (let i = 0; i < size; i++) {
      const name = `s${i}`;
      s.services[name] = { id: name, name, aliases: [], endpointMode: 'vip', attachments: [{ network: 'n', vip: `10.1.${200 + (i >> 8)}.${i & 255}` }], ports: [{ protocol: 'tcp', target: 80, ...(i % 10 === 0 ? { published: 10_000 + i } : {}) }], fwmark: 0x100 + i, createdAt: '' };
      for (let j = 0; j < 5; j++) s.tasks[`t${i}-${j}`] = { id: `t${i}-${j}`, name: `t${i}-${j}`, service: name, slot: j, addresses: { n: `10.1.${(i * 5 + j) >> 8}.${(i * 5 + j) & 255}` }, health: 'healthy', createdAt: '' };
    }
    let now = 1_000_000;
    const drv = new RecordingDriver();
    const b = new Balancer({ driver: drv, logger: quiet, resyncIntervalMs: 0, drainMs: 1000, coalesceMs: 60_000, now: () => now });
    b.update(s);
    await b.start();
    const counts: number[] = [];
    for (let k = 0; k < 40; k++) {
      const i = (k * 97) % size; // a service with a published port now and then
      for (const mutate of [
        (x: CatalogState) => void (x.tasks[`x${k}`] = { id: `x${k}`, name: `x${k}`, service: `s${i}`, slot: 9, addresses: { n: `10.1.250.${k}` }, health: 'healthy', createdAt: '' }),
        (x: CatalogState) => void delete x.tasks[`t${i}-0`],
      ]) {
        drv.expects = 0;
        b.update(s, hintFor(commit(s, mutate)));
        await b.syncNow();
        counts.push(drv.expects);
      }
      now += 1001; // the removed task's drain is due
      drv.expects = 0;
      await b.syncNow('drain');
      counts.push(drv.expects);
    }
    t.is(drv.observes, 1);
    t.is(b.status().programmed.draining, 0, 'every drain expired');
    t.deepEqual(kernelOf(plan(s)).size, drv.kernel.size);
    perChange[size] = counts;
    await b.stop();
  }
  // Each sync renders (expect) the changed service's units before and after: a few, not thousands.
  // (five per unit: the before and after lookups, the diff, remember(), and the fake's own apply).
  t.true(Math.max(...perChange[4000]!) <= 10, `expect() calls per change: ${Math.max(...perChange[4000]!)}`);
  t.deepEqual(perChange[4000], perChange[200], 'the same work at 200 and at 4000 services');
});
