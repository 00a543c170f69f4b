import test from 'ava';
import { diff, units } from '../../src/balancer/diff.js';
import { drainDeadlines, withDraining } from '../../src/balancer/drain.js';
import { incrementalDiff } from '../../src/balancer/incremental.js';
import { plan } from '../../src/balancer/plan.js';
import type { DesiredState, ObservedState, ObservedUnit, Unit } from '../../src/balancer/types.js';
import { CatalogBuilder } from '../helpers/catalog.js';

const codec = {
  expect(u: Unit): ObservedUnit {
    const x = u.kind === 'vip' ? u.vip : u.published;
    return { id: `${u.kind}:${x.key}`, fingerprint: x.backends.map((b) => `${b.ip}/${b.weight}`).join(',') };
  },
};
const observedOf = (d: DesiredState): ObservedState => ({ base: 'ok', units: new Map(units(d).map((u) => [codec.expect(u).id, codec.expect(u)])) });

test('the incremental path gives the same state and the same changes as the full one', (t) => {
  const c = new CatalogBuilder().network('n', '10.0.9.0/24');
  for (let i = 0; i < 10; i++) {
    c.service({ name: `s${i}`, vips: { n: `10.0.9.${i + 2}` }, ports: [{ protocol: 'tcp', target: 80, published: 8000 + i }] });
    for (let j = 0; j < 3; j++) c.task(`s${i}`, { n: `10.0.9.${100 + i * 3 + j}` }, 'healthy', `s${i}-${j}`);
  }
  const applied = plan(c.state);
  c.removeTask('s2-0'); // drains
  delete c.state.services['s4']; // removed service
  c.service({ name: 's10', vips: { n: '10.0.9.70' } }).task('s10', { n: '10.0.9.71' }); // new service
  const planned = plan(c.state);
  const touched = new Set(['s2', 's4', 's10']);
  const inc = incrementalDiff(applied, planned, observedOf(applied), codec, touched, 1000, 500);
  const fullState = withDraining(applied, planned, 1000, 500);
  const full = diff(fullState.state, observedOf(applied), codec);
  t.deepEqual(inc.state, fullState.state);
  t.deepEqual(inc.diff.add.map((u) => codec.expect(u).id).sort(), full.add.map((u) => codec.expect(u).id).sort());
  t.deepEqual(inc.diff.change.map((x) => x.observed.id).sort(), full.change.map((x) => x.observed.id).sort());
  t.deepEqual(inc.diff.remove.map((x) => x.id).sort(), full.remove.map((x) => x.id).sort());
  t.deepEqual(drainDeadlines(inc.touched), new Map([['s2', 1500]]), 'the drain started here, by service');
});
