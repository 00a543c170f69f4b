import test from 'ava';
import { diff, isEmpty } from '../../src/balancer/diff.js';
import { withDraining } from '../../src/balancer/drain.js';
import { plan } from '../../src/balancer/plan.js';
import type { DesiredState, ObservedState, ObservedUnit, Unit } from '../../src/balancer/types.js';
import { CatalogBuilder } from '../helpers/catalog.js';

// A codec whose fingerprint is the backend list: enough to see the diff logic.
const codec = {
  expect(u: Unit): ObservedUnit {
    const x = u.kind === 'vip' ? u.vip : u.published;
    return { id: `${u.kind}:${x.key}`, fingerprint: x.backends.map((b) => `${b.ip}/${b.weight}`).join(',') };
  },
};

function observedOf(d: DesiredState): ObservedState {
  const units = new Map<string, ObservedUnit>();
  for (const s of d.services) units.set(`vip:${s.key}`, codec.expect({ kind: 'vip', vip: s }));
  for (const p of d.published) units.set(`published:${p.key}`, codec.expect({ kind: 'published', published: p }));
  return { base: 'ok', units };
}

function world() {
  return new CatalogBuilder()
    .network('n', '10.0.9.0/24')
    .service({ name: 'a', vips: { n: '10.0.9.2' }, ports: [{ protocol: 'tcp', target: 80, published: 8080 }] })
    .service({ name: 'b', vips: { n: '10.0.9.3' } })
    .task('a', { n: '10.0.9.11' }, 'healthy', 'a1')
    .task('a', { n: '10.0.9.12' }, 'healthy', 'a2')
    .task('b', { n: '10.0.9.21' }, 'healthy', 'b1');
}

test('no change → empty diff; one endpoint → one changed unit per affected port', (t) => {
  const c = world();
  const d0 = plan(c.state);
  t.true(isEmpty(diff(d0, observedOf(d0), codec)));
  c.task('a', { n: '10.0.9.13' }, 'healthy', 'a3');
  const d = diff(plan(c.state), observedOf(d0), codec);
  t.deepEqual(d.change.map((x) => x.observed.id).sort(), ['published:tcp/8080', 'vip:n/a/tcp/80']);
  t.is(d.add.length + d.remove.length, 0);
  t.is(d.unchanged, 1);
  t.false(d.base);
});

test('removed service → remove; unknown observed units → remove; missing base → base', (t) => {
  const c = world();
  const d0 = plan(c.state);
  const obs = observedOf(d0);
  obs.units.set('stray', { id: 'stray', fingerprint: '' });
  obs.base = 'drifted';
  delete c.state.services['b'];
  const d = diff(plan(c.state), obs, codec);
  t.deepEqual(d.remove.map((r) => r.id).sort(), ['stray', 'vip:n/b/tcp/80']);
  t.true(d.base);
});

test('empty fingerprint (drifted) is always rewritten; force rewrites everything', (t) => {
  const d0 = plan(world().state);
  const obs = observedOf(d0);
  obs.units.get('vip:n/b/tcp/80')!.fingerprint = '';
  t.is(diff(d0, obs, codec).change.length, 1);
  const f = diff(d0, observedOf(d0), codec, { force: true });
  t.is(f.change.length, 3);
  t.true(f.base);
});

test('drain: a departed backend stays with weight 0 until its deadline, then goes', (t) => {
  const c = world();
  const prev = plan(c.state);
  c.removeTask('a2');
  const next = plan(c.state);
  const r1 = withDraining(prev, next, 1000, 500);
  const a = r1.state.services.find((s) => s.key === 'n/a/tcp/80')!;
  t.deepEqual(a.backends.map((b) => [b.ip, b.weight, b.draining]), [['10.0.9.11', 1, false], ['10.0.9.12', 0, true]]);
  t.is(r1.nextExpiry, 1500);
  const pub = r1.state.published[0]!;
  t.is(pub.backends.find((b) => b.ip === '10.0.9.12')?.weight, 0, 'published port drains too');
  // Deadline carries over while pending, then the backend is dropped.
  const r2 = withDraining(r1.state, plan(c.state), 1200, 500);
  t.is(r2.state.services.find((s) => s.key === 'n/a/tcp/80')!.backends.find((b) => b.draining)?.drainUntil, 1500);
  const r3 = withDraining(r2.state, plan(c.state), 1500, 500);
  t.deepEqual(r3.state.services.find((s) => s.key === 'n/a/tcp/80')!.backends.map((b) => b.ip), ['10.0.9.11']);
  t.is(r3.nextExpiry, undefined);
});

test('drain: a backend that returns is live again; untouched units keep their identity', (t) => {
  const c = world();
  const prev = plan(c.state);
  c.removeTask('a2');
  const r1 = withDraining(prev, plan(c.state), 0, 1000);
  c.task('a', { n: '10.0.9.12' }, 'healthy', 'a2');
  const next = plan(c.state);
  const r2 = withDraining(r1.state, next, 10, 1000);
  t.deepEqual(r2.state.services.find((s) => s.key === 'n/a/tcp/80')!.backends.map((b) => b.weight), [1, 1]);
  t.is(r2.state.services.find((s) => s.key === 'n/b/tcp/80'), next.services.find((s) => s.key === 'n/b/tcp/80'));
});

test('drain: an unhealthy task drains like a departed one', (t) => {
  const c = world();
  const prev = plan(c.state);
  c.state.tasks['a1']!.health = 'unhealthy';
  const r = withDraining(prev, plan(c.state), 0, 1000);
  t.deepEqual(r.state.services.find((s) => s.key === 'n/a/tcp/80')!.backends.map((b) => b.weight), [0, 1]);
});
