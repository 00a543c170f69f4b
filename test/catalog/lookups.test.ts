// The catalog's lookups are built in steps after open while changes may already arrive (from
// other daemons): whatever the interleaving, the finished index equals one built from scratch.
import test from 'ava';
import { applyChange, diffStates } from '../../src/catalog/changes.js';
import { CatalogIndex } from '../../src/catalog/lookups.js';
import { type CatalogState, emptyState } from '../../src/catalog/model.js';
import { Rng } from '../helpers/fuzz.js';

function randomState(rnd: (n: number) => number, n: number): CatalogState {
  const s = emptyState();
  s.networks.a = { id: 'a', name: 'a', subnet: '10.1.0.0/16', gateway: '10.1.0.1', attachable: true, createdAt: '', ipamCursor: '1' };
  s.networks.b = { id: 'b', name: 'b', subnet: '10.2.0.0/16', gateway: '10.2.0.1', attachable: true, createdAt: '', ipamCursor: '1' };
  for (let i = 0; i < n; i++) {
    const net = rnd(2) ? 'a' : 'b';
    s.services[`s${i}`] = { id: `s${i}`, name: `s${i}`, aliases: rnd(3) ? [] : [`al${rnd(5)}`], endpointMode: 'vip', attachments: [{ network: net, vip: `10.${net === 'a' ? 1 : 2}.200.${i}` }], ports: rnd(4) ? [] : [{ protocol: 'tcp', target: 80, published: 30000 + rnd(20) }], fwmark: 256 + i, createdAt: '' };
    for (let j = 0; j < 3; j++) {
      const id = `t${i}-${j}`;
      s.tasks[id] = { id, name: `S${i}.${j}`, service: `s${i}`, slot: j, addresses: { [net]: `10.${net === 'a' ? 1 : 2}.${i % 200}.${j + 10}` }, health: 'unknown', createdAt: '' };
    }
    if (rnd(4) === 0) s.containers[`c${i}`] = { id: `c${i}`, name: `c${i}`, aliases: [`al${rnd(5)}`], addresses: { a: `10.1.250.${i % 250}` }, createdAt: '' };
  }
  return s;
}

test('an index built in steps while changes arrive equals one built at once', (t) => {
  for (let round = 0; round < 20; round++) {
    const rng = new Rng(round + 1);
    const rnd = (n: number): number => rng.int(n);
    const live = randomState(rnd, 60);
    const idx = CatalogIndex.building(live);
    let fresh = 0; // new addresses are unique, as the catalog keeps them
    const freshIp = (): string => `10.3.${Math.floor(fresh / 250)}.${(fresh++ % 250) + 1}`;
    for (let step = 0; step < 40; step++) {
      idx.step(rnd(15));
      // A change from elsewhere: remove, add or rewrite a few objects.
      const next = structuredClone(live);
      for (let k = 0; k < 3; k++) {
        const tasks = Object.keys(next.tasks);
        const svcs = Object.keys(next.services);
        const op = rnd(4);
        if (op === 0 && tasks.length) delete next.tasks[tasks[rnd(tasks.length)]!];
        else if (op === 1 && svcs.length) {
          const sv = svcs[rnd(svcs.length)]!;
          for (const [id, x] of Object.entries(next.tasks)) if (x.service === sv) delete next.tasks[id];
          delete next.services[sv];
        } else if (op === 2) {
          const id = `n${round}-${step}-${k}`;
          next.tasks[id] = { id, name: `new.${id}`, service: svcs[0] ?? 'none', slot: 9, addresses: { b: freshIp() }, health: 'unknown', createdAt: '' };
        } else if (tasks.length) {
          const id = tasks[rnd(tasks.length)]!;
          next.tasks[id] = { ...next.tasks[id]!, addresses: { a: freshIp() } };
        }
      }
      const { applied } = applyChange(live, diffStates(live, next));
      idx.apply(applied);
    }
    idx.ready();
    t.deepEqual(idx.dump(), CatalogIndex.of(live).dump(), `round ${round}`);
  }
});
