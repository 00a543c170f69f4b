// The etcd store in-process against a real etcd: two catalogs (as two daemons would hold)
// racing, leases, and the key layout.
import test, { type ExecutionContext } from 'ava';
import { Catalog } from '../../src/catalog/catalog.js';
import { EtcdStore } from '../../src/catalog/store/etcd.js';
import { DEFAULT_PREFIX } from '../../src/catalog/store/etcd-keys.js';
import { type EtcdHandle, startEtcd } from '../helpers/etcd.js';
import { Etcd3 } from 'etcd3';

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

test('a network attached to a service of 1,000 tasks lands whole: readers never see half of it, writes around it wait, a new reader sees it all', async (t) => {
  const etcd = await startEtcd();
  t.teardown(() => etcd.destroy());
  const open = async (node: string): Promise<Catalog> => {
    const c = await Catalog.open(store(etcd, node));
    t.teardown(() => c.close());
    return c;
  };
  const [a, b] = [await open('a'), await open('b')];
  await a.createNetwork({ name: 'big', subnet: '10.90.0.0/16' });
  await a.createNetwork({ name: 'other', subnet: '10.91.0.0/16' });
  await a.createService({ name: 'web', networks: ['big'] });
  await Promise.all(Array.from({ length: 1000 }, () => a.addTask({ service: 'web' })));
  await until('b holds 1,000 tasks', () => b.tasksOf('web').length === 1000);
  // After every change b applies, every task has an address on "other", or none does.
  const halves: string[] = [];
  let changes = 0;
  b.on('change', () => {
    changes++;
    const tasks = b.tasksOf('web');
    const on = tasks.filter((x) => x.addresses.other !== undefined).length;
    if (on !== 0 && on !== tasks.length) halves.push(`${on} of ${tasks.length}`);
  });
  const t0 = Date.now();
  const [svc] = await Promise.all([a.updateService('web', { networkAdd: ['other'] }), b.createNetwork({ name: 'during', subnet: '10.92.0.0/16' })]);
  t.log(`attach over 1,000 tasks acknowledged in ${Date.now() - t0} ms`);
  t.truthy(svc.attachments.find((x) => x.network === 'other')?.vip);
  await until('b sees every task on "other"', () => b.tasksOf('web').every((x) => x.addresses.other !== undefined));
  t.deepEqual(halves, [], 'no half-applied state');
  t.true(changes >= 1);
  t.truthy(b.findNetwork('during'), 'a write racing the staged change was made too');
  const ips = new Set(a.tasksOf('web').map((x) => x.addresses.other));
  t.is(ips.size, 1000, 'distinct addresses');
  // A catalog opened now reads the object keys: the change was written out and the batch is gone.
  const raw = new Etcd3({ hosts: etcd.endpoint });
  t.teardown(() => raw.close());
  t.false(await raw.get(`${DEFAULT_PREFIX}batch`).exists(), 'the staged key is gone');
  const keys = await raw.getAll().prefix(`${DEFAULT_PREFIX}tasks/`).strings();
  t.is(Object.values(keys).filter((v) => (JSON.parse(v) as { addresses: Record<string, string> }).addresses.other !== undefined).length, 1000, 'every task key was written out');
  const c = await open('c');
  await until('c sees every task on "other"', () => c.tasksOf('web').length === 1000 && c.tasksOf('web').every((x) => x.addresses.other !== undefined));
  // Detaching and removing are whole as well.
  await a.updateService('web', { networkRm: ['other'] });
  await until('b sees every task off "other"', () => b.tasksOf('web').every((x) => x.addresses.other === undefined));
  await a.removeService('web');
  await until('b sees the service gone', () => b.tasksOf('web').length === 0 && b.state.services.web === undefined);
  t.deepEqual(halves, [], 'no half-applied state');
});

test('a staged change its writer left unfinished is finished by another daemon; writes wait for it, readers see it at once', async (t) => {
  const etcd = await startEtcd();
  t.teardown(() => etcd.destroy());
  const a = await Catalog.open(store(etcd, 'a'));
  t.teardown(() => a.close());
  await a.createNetwork({ name: 'n', subnet: '10.1.0.0/24' });
  // What a writer that died right after its first transaction leaves: the batch key, nothing written out.
  const raw = new Etcd3({ hosts: etcd.endpoint });
  t.teardown(() => raw.close());
  const ghost = { id: 'g', name: 'ghost', subnet: '10.2.0.0/24', gateway: '10.2.0.1', attachable: false, createdAt: 'x', ipamCursor: '1' };
  await raw.put(`${DEFAULT_PREFIX}batch`).value(JSON.stringify({ id: 'dead', ops: [{ type: 'put', key: `${DEFAULT_PREFIX}networks/ghost`, value: JSON.stringify(ghost), lease: 'none' }] }));
  await until('a sees the staged network', () => a.findNetwork('ghost') !== undefined);
  const t0 = Date.now();
  await a.createNetwork({ name: 'after', subnet: '10.3.0.0/24' });
  t.log(`a write behind an abandoned staged change waited ${Date.now() - t0} ms (takeover after 3 s)`);
  t.false(await raw.get(`${DEFAULT_PREFIX}batch`).exists(), 'finished and closed');
  t.deepEqual(JSON.parse((await raw.get(`${DEFAULT_PREFIX}networks/ghost`).string())!), ghost);
  t.truthy(a.findNetwork('after'));
  const b = await Catalog.open(store(etcd, 'b'));
  t.teardown(() => b.close());
  t.truthy(b.findNetwork('ghost'));
});
