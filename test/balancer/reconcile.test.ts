import test from 'ava';
import { createDriver } from '../../src/balancer/factory.js';
import { Balancer, type SyncReport } from '../../src/balancer/reconcile.js';
import type { DataplaneDriver, Diff, ObservedState, ObservedUnit, Unit } from '../../src/balancer/types.js';
import { isVipdnsError } from '../../src/errors.js';
import { CatalogBuilder } from '../helpers/catalog.js';

/** An in-memory "kernel": units by id with fingerprints; counts observes and applies. */
class FakeDriver implements DataplaneDriver {
  readonly name = 'nftables' as const;
  kernel = new Map<string, ObservedUnit>();
  base: ObservedState['base'] = 'missing';
  applies: Diff[] = [];
  observes = 0;
  failNext = false;
  async probe() {
    return { supported: true };
  }
  expect(u: Unit): ObservedUnit {
    const x = u.kind === 'vip' ? u.vip : u.published;
    return { id: `${u.kind}:${x.key}`, fingerprint: x.backends.map((b) => `${b.ip}/${b.weight}`).join(',') };
  }
  async observe(): Promise<ObservedState> {
    this.observes++;
    return { base: this.base, units: new Map([...this.kernel].map(([k, v]) => [k, { ...v }])) };
  }
  async apply(d: Diff) {
    if (this.failNext) {
      this.failNext = false;
      throw new Error('boom');
    }
    this.applies.push(d);
    for (const r of d.remove) this.kernel.delete(r.id);
    for (const u of [...d.add, ...d.change.map((c) => c.unit)]) {
      const e = this.expect(u);
      this.kernel.set(e.id, e);
    }
    if (d.base) this.base = 'ok';
    return { ops: d.add.length + d.change.length + d.remove.length + (d.base ? 1 : 0) };
  }
  async cleanup() {
    this.kernel.clear();
    return { removed: true };
  }
}

const quiet = { info() {}, warn() {}, error() {} };

function world() {
  return new CatalogBuilder()
    .network('n', '10.0.9.0/24')
    .service({ name: 'a', vips: { n: '10.0.9.2' } })
    .task('a', { n: '10.0.9.11' }, 'healthy', 'a1')
    .task('a', { n: '10.0.9.12' }, 'healthy', 'a2');
}

test('nothing is written before the first catalog; then one sync; bursts coalesce', async (t) => {
  const drv = new FakeDriver();
  const reports: SyncReport[] = [];
  const b = new Balancer({ driver: drv, logger: quiet, resyncIntervalMs: 0, coalesceMs: 20, onSync: (r) => reports.push(r) });
  await b.start();
  t.is(drv.applies.length, 0);
  const c = world();
  for (let i = 0; i < 20; i++) {
    c.task('a', { n: `10.0.9.${100 + i}` });
    b.update(c.snapshot());
  }
  await new Promise((r) => setTimeout(r, 80));
  await b.syncNow();
  t.is(drv.applies.length, 1, 'twenty updates, one apply');
  t.is(drv.kernel.get('vip:n/a/tcp/80')?.fingerprint.split(',').length, 22);
  t.is(b.status().programmed.backends, 22);
  t.is(drv.observes, 1, 'changes are diffed against the cache, not the kernel');
  await b.stop();
});

test('restart adopts the kernel: the same catalog applies nothing', async (t) => {
  const drv = new FakeDriver();
  const c = world();
  const b1 = new Balancer({ driver: drv, logger: quiet, resyncIntervalMs: 0 });
  b1.update(c.snapshot());
  await b1.start();
  t.is(drv.applies.length, 1);
  await b1.stop();
  const b2 = new Balancer({ driver: drv, logger: quiet, resyncIntervalMs: 0 });
  b2.update(c.snapshot());
  await b2.start();
  t.is(drv.applies.length, 1, 'no second apply');
  t.true(b2.status().adopted);
  await b2.stop();
});

test('resync repairs drift and counts it; full resync rewrites everything', async (t) => {
  const drv = new FakeDriver();
  const b = new Balancer({ driver: drv, logger: quiet, resyncIntervalMs: 0 });
  b.update(world().snapshot());
  await b.start();
  drv.kernel.delete('vip:n/a/tcp/80'); // someone deleted our chain
  await b.resync();
  t.true(drv.kernel.has('vip:n/a/tcp/80'));
  t.is(b.status().repairs, 1);
  await b.resync();
  t.is(b.status().repairs, 1, 'no drift, no repair');
  await b.resync(true);
  t.is(drv.applies.at(-1)!.change.length, 1);
  t.true(drv.applies.at(-1)!.base);
  await b.stop();
});

test('a departed task drains with weight 0, then leaves after drainMs', async (t) => {
  const drv = new FakeDriver();
  let now = 1000;
  const b = new Balancer({ driver: drv, logger: quiet, resyncIntervalMs: 0, drainMs: 50, now: () => now });
  const c = world();
  b.update(c.snapshot());
  await b.start();
  c.removeTask('a2');
  b.update(c.snapshot());
  await b.syncNow();
  t.is(drv.kernel.get('vip:n/a/tcp/80')?.fingerprint, '10.0.9.11/1,10.0.9.12/0');
  t.is(b.status().programmed.draining, 1);
  now += 60;
  await new Promise((r) => setTimeout(r, 120)); // the drain timer fires a sync
  await b.syncNow('drain');
  t.is(drv.kernel.get('vip:n/a/tcp/80')?.fingerprint, '10.0.9.11/1');
  await b.stop();
});

test('a failed apply is reported, re-reads the kernel and retries', async (t) => {
  const drv = new FakeDriver();
  const b = new Balancer({ driver: drv, logger: quiet, resyncIntervalMs: 0 });
  b.update(world().snapshot());
  drv.failNext = true;
  await b.start();
  const s = b.status();
  t.is(s.errors, 1);
  t.is(s.lastError?.message, 'boom');
  await new Promise((r) => setTimeout(r, 700)); // first retry after 500 ms
  await b.syncNow();
  t.true(drv.kernel.has('vip:n/a/tcp/80'));
  t.true(drv.observes >= 2);
  await b.stop();
});

test('createDriver: none, non-root auto → none with a clear line, explicit kinds refused when impossible', async (t) => {
  const lines: string[] = [];
  const logger = { info: (_o: object, m?: string) => lines.push(m ?? ''), warn: (_o: object, m?: string) => lines.push(m ?? ''), error() {} };
  t.is((await createDriver('none', { isRoot: true, logger })).driver.name, 'none');
  const auto = await createDriver('auto', { isRoot: false, logger });
  t.is(auto.driver.name, 'none');
  t.regex(auto.reason, /not running as root.*DNS only/);
  const err = await t.throwsAsync(createDriver('nftables', { isRoot: false }));
  t.true(isVipdnsError(err) && err.code === 'DATAPLANE_UNSUPPORTED');
  const noIpvs = await t.throwsAsync(createDriver('ipvs', { isRoot: true, ipvs: undefined as never }));
  t.true(isVipdnsError(noIpvs) && noIpvs.code === 'DATAPLANE_UNSUPPORTED');
  t.regex(noIpvs!.message, /--dataplane ipvs: (kernel has no IPVS|the IPVS driver is not implemented yet)/);
  const fake = new FakeDriver();
  const withIpvs = await createDriver('auto', { isRoot: true, ipvs: { create: () => ({ ...fake, name: 'ipvs' }) as unknown as DataplaneDriver, probe: async () => ({ supported: true }) } });
  t.is(withIpvs.driver.name, 'ipvs');
  t.true(lines.length >= 2);
});
