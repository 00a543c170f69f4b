// The etcd store in-process against a real etcd: two catalogs (as two daemons would hold)
// racing, leases, and the key layout.
import test, { type ExecutionContext } from 'ava';
import { Catalog } from '../../src/catalog/catalog.js';
import { EtcdStore } from '../../src/catalog/store/etcd.js';
import { DEFAULT_PREFIX } from '../../src/catalog/store/etcd-keys.js';
import { type EtcdHandle, startEtcd } from '../helpers/etcd.js';

function store(etcd: EtcdHandle, node: string, ttl = 10): EtcdStore {
  return new EtcdStore({ hosts: [etcd.endpoint], prefix: DEFAULT_PREFIX, nodeName: node, leaseTtlSeconds: ttl });
}

/** A fresh etcd and one catalog per node name on it, all torn down with the test. */
async function catalogs(t: ExecutionContext, ...nodes: string[]): Promise<Catalog[]> {
  const etcd = await startEtcd();
  t.teardown(() => etcd.destroy());
  const cs: Catalog[] = [];
  t.teardown(async () => {
    for (const c of cs) await c.close();
  });
  for (const n of nodes) cs.push(await Catalog.open(store(etcd, n)));
  return cs;
}

async function until(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<number> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return Date.now() - t0;
}

test('two catalogs racing 1,000 allocations on one etcd never collide and lose no ack', async (t) => {
  const [a, b] = (await catalogs(t, 'a', 'b')) as [Catalog, Catalog];
  await a.createNetwork({ name: 'n', subnet: '10.50.0.0/16' });
  await until('b sees the network', () => b.findNetwork('n') !== undefined);
  await b.createService({ name: 's', networks: ['n'] });
  await until('a sees the service', () => a.state.services.s !== undefined);

  const t0 = Date.now();
  const race = (c: Catalog, n: number): Array<Promise<string>> => Array.from({ length: n }, () => c.addTask({ service: 's' }).then((x) => x.addresses.n!));
  const ips = await Promise.all([...race(a, 500), ...race(b, 500)]);
  const ms = Date.now() - t0;
  t.log(`1,000 racing allocations from two catalogs: ${ms} ms`);
  t.is(ips.length, 1000);
  t.is(new Set(ips).size, 1000, 'every acknowledged IP is distinct');
  t.false(ips.includes(a.service('s').attachments[0]!.vip!), 'no task got the VIP');
  await until('both hold 1,000 tasks', () => Object.keys(a.state.tasks).length === 1000 && Object.keys(b.state.tasks).length === 1000);
  t.deepEqual(Object.keys(a.state.tasks).sort(), Object.keys(b.state.tasks).sort());
  t.is(JSON.stringify(a.state.tasks), JSON.stringify(Object.fromEntries(Object.keys(a.state.tasks).map((k) => [k, b.state.tasks[k]]))));
});

test('a conflicting name from two catalogs at once: exactly one wins, the other gets DUPLICATE_NAME', async (t) => {
  const [a, b] = (await catalogs(t, 'a', 'b')) as [Catalog, Catalog];
  const results = await Promise.allSettled([a.createNetwork({ name: 'n', subnet: '10.1.0.0/24' }), b.createNetwork({ name: 'N', subnet: '10.2.0.0/24' })]);
  t.is(results.filter((r) => r.status === 'fulfilled').length, 1);
  const rejected = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
  t.is((rejected.reason as { code: string }).code, 'DUPLICATE_NAME');
});

test('tasks of a catalog whose daemon dies expire from the others after the lease TTL', async (t) => {
  const etcd = await startEtcd();
  t.teardown(() => etcd.destroy());
  const a = await Catalog.open(store(etcd, 'a'));
  t.teardown(() => a.close());
  const dying = await Catalog.open(store(etcd, 'dying', 2));
  await a.createNetwork({ name: 'n', subnet: '10.1.0.0/24' });
  await a.createService({ name: 's', networks: ['n'] });
  await a.addTask({ service: 's' });
  await until('dying sees the service', () => dying.state.services.s !== undefined);
  const mine = await dying.addTask({ service: 's' });
  await until('a sees the task', () => a.state.tasks[mine.id] !== undefined);
  // A task of the dying daemon, rewritten by another (health), keeps the dying daemon's lease.
  await a.setTaskHealth(mine.id, 'healthy');
  const t0 = Date.now();
  await dying.close(); // releases the lease without revoking it, as a crash would
  const ms = await until('the task expires', () => a.state.tasks[mine.id] === undefined, 15_000);
  t.log(`task expired ${Date.now() - t0} ms after its daemon stopped (lease TTL 2 s)`);
  t.true(ms >= 1000, 'not before the lease ran out');
  t.is(a.tasksOf('s').length, 1, "a's own task stays");
});

test('a service with more tasks than one etcd transaction holds is removed in chunks', async (t) => {
  const [c] = (await catalogs(t, 'n1')) as [Catalog];
  await c.createNetwork({ name: 'big', subnet: '10.90.0.0/16' });
  await c.createService({ name: 'web', networks: ['big'] });
  await Promise.all(Array.from({ length: 230 }, () => c.addTask({ service: 'web' })));
  t.is(c.tasksOf('web').length, 230);
  const err = await t.throwsAsync(c.updateService('web', { networkRm: ['big'], networkAdd: [] }));
  t.regex(err!.message, /at least one network|over the store's 100 objects per change/);
  await c.createNetwork({ name: 'other', subnet: '10.91.0.0/16' });
  const err2 = await t.throwsAsync(c.updateService('web', { networkAdd: ['other'] }));
  t.regex(err2!.message, /has 230 tasks: .*over the store's 100 objects per change/);
  await c.removeService('web');
  t.is(c.tasksOf('web').length, 0);
  t.throws(() => c.service('web'), { message: /no service/ });
});
