import test from 'ava';
import { plan } from '../../src/balancer/plan.js';
import { CatalogBuilder } from '../helpers/catalog.js';

function base() {
  return new CatalogBuilder().network('front', '10.0.9.0/24').network('back', 'fd00:9::/64');
}

test('one VirtualService per network and target port, backends sorted, fwmark carried', (t) => {
  const c = base()
    .service({ name: 'web', vips: { front: '10.0.9.2', back: 'fd00:9::2' }, ports: [{ protocol: 'tcp', target: 80, published: 8080 }, { protocol: 'udp', target: 53 }], fwmark: 0x105 })
    .task('web', { front: '10.0.9.12', back: 'fd00:9::12' })
    .task('web', { front: '10.0.9.11', back: 'fd00:9:0:0::11' });
  const p = plan(c.state);
  t.deepEqual(
    p.services.map((s) => s.key),
    ['back/web/tcp/80', 'back/web/udp/53', 'front/web/tcp/80', 'front/web/udp/53'],
  );
  const v4 = p.services.find((s) => s.key === 'front/web/tcp/80')!;
  t.is(v4.vip, '10.0.9.2');
  t.is(v4.family, 4);
  t.is(v4.fwmark, 0x105);
  t.deepEqual(v4.backends.map((b) => `${b.ip}:${b.port}:${b.weight}`), ['10.0.9.11:80:1', '10.0.9.12:80:1']);
  const v6 = p.services.find((s) => s.key === 'back/web/tcp/80')!;
  t.deepEqual(v6.backends.map((b) => b.ip), ['fd00:9::11', 'fd00:9::12'], 'IPv6 canonicalised');
  t.deepEqual(p.warnings, []);
});

test('published port: one entry, both families, target port', (t) => {
  const c = base()
    .service({ name: 'web', vips: { front: '10.0.9.2', back: 'fd00:9::2' }, ports: [{ protocol: 'tcp', target: 80, published: 8080 }] })
    .task('web', { front: '10.0.9.11', back: 'fd00:9::11' });
  const p = plan(c.state);
  t.is(p.published.length, 1);
  const pub = p.published[0]!;
  t.is(pub.key, 'tcp/8080');
  t.is(pub.targetPort, 80);
  t.deepEqual(pub.backends.map((b) => `${b.ip}:${b.port}`), ['10.0.9.11:80', 'fd00:9::11:80']);
  t.is(plan(c.state, { published: false }).published.length, 0);
});

test('unhealthy tasks, dnsrr services, VIP-less or dangling attachments are left out', (t) => {
  const c = base()
    .service({ name: 'web', vips: { front: '10.0.9.2' } })
    .service({ name: 'rr', vips: { front: '' }, endpointMode: 'dnsrr' })
    .service({ name: 'ghost', vips: { gone: '10.9.9.9' } })
    .task('web', { front: '10.0.9.11' }, 'unhealthy')
    .task('web', { front: '10.0.9.12' }, 'unknown')
    .task('rr', { front: '10.0.9.20' });
  const p = plan(c.state);
  t.deepEqual(p.services.map((s) => s.key), ['front/web/tcp/80']);
  t.deepEqual(p.services[0]!.backends.map((b) => b.ip), ['10.0.9.12']);
});

test('every task unhealthy: all stay backends (fail open, as DNS answers); one healthy: only it', (t) => {
  const c = base()
    .service({ name: 'web', vips: { front: '10.0.9.2' }, ports: [{ protocol: 'tcp', target: 80, published: 8080 }] })
    .task('web', { front: '10.0.9.11' }, 'unhealthy')
    .task('web', { front: '10.0.9.12' }, 'unhealthy');
  let p = plan(c.state);
  t.deepEqual(p.services[0]!.backends.map((b) => b.ip), ['10.0.9.11', '10.0.9.12']);
  t.deepEqual(p.published[0]!.backends.map((b) => b.ip), ['10.0.9.11', '10.0.9.12']);
  const id = Object.values(c.state.tasks).find((x) => x.addresses.front === '10.0.9.12')!.id;
  c.state.tasks[id]!.health = 'healthy';
  p = plan(c.state);
  t.deepEqual(p.services[0]!.backends.map((b) => b.ip), ['10.0.9.12']);
  t.deepEqual(p.published[0]!.backends.map((b) => b.ip), ['10.0.9.12']);
});

test('the service\'s scheduler and stickiness and each task\'s weight reach every unit, VIP and published', (t) => {
  const c = base()
    .service({ name: 'web', vips: { front: '10.0.9.2' }, ports: [{ protocol: 'tcp', target: 80, published: 8080 }] })
    .task('web', { front: '10.0.9.11' })
    .task('web', { front: '10.0.9.12' });
  const svc = c.state.services.web!;
  svc.lb = 'wrr';
  svc.sticky = 600;
  Object.values(c.state.tasks).find((x) => x.addresses.front === '10.0.9.12')!.weight = 3;
  const p = plan(c.state);
  for (const u of [p.services[0]!, p.published[0]!]) {
    t.is(u.scheduler, 'wrr');
    t.is(u.persistence, 600);
    t.deepEqual(u.backends.map((b) => `${b.ip}:${b.weight}`), ['10.0.9.11:1', '10.0.9.12:3']);
  }
  delete svc.lb;
  delete svc.sticky;
  const q = plan(c.state);
  t.is(q.services[0]!.scheduler, 'rr', 'rr by default');
  t.is(q.services[0]!.persistence, undefined);
});

test('a task address of the other family is not a backend of the VIP', (t) => {
  const c = base().service({ name: 'web', vips: { front: '10.0.9.2' } }).task('web', { front: 'fd00:9::5' });
  t.deepEqual(plan(c.state).services[0]!.backends, []);
});

test('a published port claimed by two services: first by name wins, with a warning', (t) => {
  const c = base()
    .service({ name: 'b', vips: { front: '10.0.9.3' }, ports: [{ protocol: 'tcp', target: 80, published: 8080 }] })
    .service({ name: 'a', vips: { front: '10.0.9.2' }, ports: [{ protocol: 'tcp', target: 81, published: 8080 }] });
  const p = plan(c.state);
  t.is(p.published[0]!.service, 'a');
  t.is(p.warnings.length, 1);
  t.regex(p.warnings[0]!, /8080.*b.*a/);
});

test('deterministic and pure: same input, same output; input untouched', (t) => {
  const c = base().service({ name: 'web', vips: { front: '10.0.9.2' } }).task('web', { front: '10.0.9.11' });
  const before = JSON.stringify(c.state);
  t.deepEqual(plan(c.state), plan(structuredClone(c.state)));
  t.is(JSON.stringify(c.state), before);
});

test('duplicate target ports collapse into one VIP port', (t) => {
  const c = base().service({ name: 'web', vips: { front: '10.0.9.2' }, ports: [{ protocol: 'tcp', target: 80, published: 8080 }, { protocol: 'tcp', target: 80, published: 8081 }] });
  const p = plan(c.state);
  t.is(p.services.length, 1);
  t.deepEqual(p.published.map((x) => x.key), ['tcp/8080', 'tcp/8081']);
});

test('replan of the changed services equals a full plan, and keeps identity of the rest', async (t) => {
  const { replan } = await import('../../src/balancer/plan.js');
  const c = new CatalogBuilder().network('n', '10.0.9.0/24');
  for (let i = 0; i < 20; i++) {
    c.service({ name: `s${i}`, vips: { n: `10.0.9.${i + 2}` }, ports: [{ protocol: 'tcp', target: 80, published: 8000 + i }] });
    for (let j = 0; j < 3; j++) c.task(`s${i}`, { n: `10.0.9.${100 + i * 3 + j}` }, 'healthy', `s${i}-${j}`);
  }
  const before = plan(c.state);
  // A task replaced in s3, s5 removed, s21 added (with a port of its own), s7 unhealthy task.
  c.removeTask('s3-1').task('s3', { n: '10.0.9.250' }, 'healthy', 's3-9');
  delete c.state.services['s5'];
  for (let j = 0; j < 3; j++) c.removeTask(`s5-${j}`);
  c.service({ name: 's21', vips: { n: '10.0.9.60' }, ports: [{ protocol: 'udp', target: 53, published: 5353 }] }).task('s21', { n: '10.0.9.61' });
  c.state.tasks['s7-0']!.health = 'unhealthy';
  const changed = new Set(['s3', 's5', 's21', 's7']);
  const inc = replan(c.state, {}, before, changed);
  t.deepEqual(inc, plan(c.state));
  t.is(inc.services.find((s) => s.service === 's1'), before.services.find((s) => s.service === 's1'), 'untouched unit: same object');
});

test('replan falls back to a full plan when a published port becomes contested', async (t) => {
  const { replan } = await import('../../src/balancer/plan.js');
  const c = new CatalogBuilder()
    .network('n', '10.0.9.0/24')
    .service({ name: 'a', vips: { n: '10.0.9.2' }, ports: [{ protocol: 'tcp', target: 80, published: 8080 }] });
  const before = plan(c.state);
  c.service({ name: 'b', vips: { n: '10.0.9.3' }, ports: [{ protocol: 'tcp', target: 80, published: 8080 }] });
  const inc = replan(c.state, {}, before, new Set(['b']));
  t.deepEqual(inc, plan(c.state));
  t.is(inc.warnings.length, 1);
});

test('shared plans: one plan per catalog state for every sharer; the replan on its shared task index equals a full plan', async (t) => {
  const { SharedPlans } = await import('../../src/balancer/plan.js');
  const c = new CatalogBuilder().network('n', '10.0.9.0/24').network('m', '10.0.10.0/24');
  for (let i = 0; i < 10; i++) {
    c.service({ name: `s${i}`, vips: { n: `10.0.9.${i + 2}`, m: `10.0.10.${i + 2}` } });
    for (let j = 0; j < 3; j++) c.task(`s${i}`, { n: `10.0.9.${100 + i * 3 + j}`, m: `10.0.10.${100 + i * 3 + j}` }, 'healthy', `s${i}-${j}`);
  }
  const opts = { published: false, networks: new Set(['n']) };
  const shared = new SharedPlans(opts);
  const s1 = c.snapshot();
  shared.update(s1);
  const a = shared.plan(s1, undefined);
  t.is(shared.plan(s1, undefined), a, 'a second sharer gets the same plan object');
  t.deepEqual(a, plan(s1, opts));
  t.true(a.services.every((u) => u.network === 'n'), 'only the networks asked for');

  // A task of s3 moves to s4 (hinted by its id), s6 loses one: both sharers get one replan of it.
  c.state.tasks['s3-1']!.service = 's4';
  c.removeTask('s6-0');
  const s2 = c.snapshot();
  shared.update(s2, ['s3-1', 's6-0']);
  const r = shared.replanWith(s2, a, new Set(['s3', 's4', 's6']));
  t.is(shared.replanWith(s2, a, new Set(['s6'])), r, 'memoised by state');
  t.false(r.full);
  t.deepEqual(r.plan, plan(s2, opts));
  t.is(r.plan.services.find((u) => u.service === 's1'), a.services.find((u) => u.service === 's1'), 'untouched units keep their object, for every sharer');
});
