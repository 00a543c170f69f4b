// The metrics' catalog counts are kept from change records; after every step of a random
// sequence of real catalog writes they equal a count from scratch.
import test from 'ava';
import { Catalog } from '../../src/catalog/catalog.js';
import { CatalogCounts } from '../../src/catalog/counts.js';
import { LocalStore } from '../../src/catalog/store/local.js';
import { removeDir, tempDir } from '../helpers/daemon.js';
import { Rng } from '../helpers/fuzz.js';

const pub = (c: CatalogCounts) => ({ networks: c.networks, containers: c.containers, services: { ...c.services }, tasks: { ...c.tasks }, withoutServing: c.withoutServing });

test('counts kept from changes equal counts from scratch after 1,500 random writes', async (t) => {
  const dir = tempDir();
  t.teardown(() => removeDir(dir));
  const c = await Catalog.open(await LocalStore.open(dir));
  t.teardown(() => c.close());
  const kept = CatalogCounts.of(c.state);
  c.on('change', (_s, _k, ch) => kept.apply(ch));
  const rng = new Rng(0x5eed1); // seeded, so a failure replays
  const rnd = (n: number): number => rng.int(n);
  const pick = <T>(xs: T[]): T | undefined => (xs.length ? xs[rnd(xs.length)] : undefined);
  let withoutServingSeen = 0;
  for (let i = 0; i < 1500; i++) {
    const svcs = Object.keys(c.state.services);
    const tasks = Object.values(c.state.tasks);
    const nets = Object.keys(c.state.networks);
    const op = rnd(12);
    try {
      if (op === 0 || nets.length === 0) await c.createNetwork({ name: `n${i}`, subnet: `10.${i % 250}.${Math.floor(i / 250)}.0/24`, attachable: true });
      else if (op === 1) await c.removeNetwork(pick(nets)!);
      else if (op === 2) await c.createService({ name: `s${i}`, networks: [pick(nets)!], endpointMode: rnd(2) ? 'vip' : 'dnsrr' });
      else if (op === 3 && svcs.length) await c.removeService(pick(svcs)!);
      else if (op === 4 && svcs.length) await c.updateService(pick(svcs)!, { endpointMode: rnd(2) ? 'vip' : 'dnsrr' });
      else if ((op === 5 || op === 6 || op === 7) && svcs.length) await c.addTask({ service: pick(svcs)! });
      else if (op === 8 && tasks.length) await c.removeTask(pick(tasks)!.id);
      else if (op === 9 && tasks.length) await c.setTaskHealth(pick(tasks)!.id, (['healthy', 'unhealthy', 'unknown'] as const)[rnd(3)]!);
      else if (op === 10 && svcs.length) for (const x of c.tasksOf(pick(svcs)!)) await c.setTaskHealth(x.id, 'unhealthy'); // a whole service fails
      else if (op === 11) await c.addContainer({ name: `c${i}`, networks: [pick(nets)!] });
    } catch {
      /* refused writes (network in use, ...) change nothing: the counts must agree all the same */
    }
    t.deepEqual(pub(kept), pub(CatalogCounts.of(c.state)), `step ${i}`);
    withoutServingSeen = Math.max(withoutServingSeen, kept.withoutServing);
  }
  t.true(withoutServingSeen > 0, 'the sequence reached services without a serving task');
  t.true(Object.keys(c.state.tasks).length > 20);
});
