// The Docker source against a stand-in engine on a unix socket (recorded podman shapes):
// initial convergence, events, debounce, reconnect after an engine restart, ownership.
import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { Catalog } from '../../src/catalog/catalog.js';
import type { Change } from '../../src/catalog/changes.js';
import { LocalStore } from '../../src/catalog/store/local.js';
import type { ChangeListener, ReplicatedStore } from '../../src/catalog/store/store.js';
import { DockerSource } from '../../src/catalog/sources/docker.js';
import { VipdnsError } from '../../src/errors.js';
import { removeDir, tempDir } from '../helpers/daemon.js';
import { FakeEngine, container, network } from './fake-engine.js';

async function until(what: string, f: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The local store with an enforced cap on objects per commit (as etcd has), and a switch that fails commits. */
class TestStore implements ReplicatedStore {
  /** Objects written or deleted by each commit. */
  readonly commits: number[] = [];
  fail = false;
  constructor(
    private readonly inner: ReplicatedStore,
    readonly maxObjectsPerCommit?: number,
  ) {}
  get location(): string {
    return this.inner.location;
  }
  open(listener: ChangeListener): ReturnType<ReplicatedStore['open']> {
    return this.inner.open(listener);
  }
  async commit(change: Change): Promise<number> {
    const n = change.puts.length + change.deletes.length;
    if (this.fail) throw new VipdnsError('STORE_FAILED', 'test: the store refuses writes');
    if (this.maxObjectsPerCommit !== undefined && n > this.maxObjectsPerCommit) throw new VipdnsError('STORE_FAILED', `test: ${n} objects in one commit, over the cap of ${this.maxObjectsPerCommit}`);
    this.commits.push(n);
    return this.inner.commit(change);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

async function setup(t: import('ava').ExecutionContext, dir = tempDir(), cap?: number) {
  const engine = await new FakeEngine().start();
  const store = new TestStore(await LocalStore.open(dir), cap);
  const catalog = await Catalog.open(store);
  const registry = new Registry();
  let made = 0;
  const mk = (): DockerSource =>
    new DockerSource({
      url: `unix://${engine.socket}`,
      catalog,
      ownedFile: join(dir, 'docker-source.json'),
      log: pino({ level: 'silent' }),
      ...(made++ === 0 ? { registry } : {}),
      debounceMs: 30,
      maxDelayMs: 200,
      backoffMinMs: 50,
      backoffMaxMs: 200,
    });
  // Every committed change, as consumers see it.
  const changes: number[] = [];
  catalog.on('change', (_s, _k, c) => changes.push(c.puts.length + c.deletes.length));
  t.teardown(async () => {
    await engine.stop();
    await catalog.close();
    removeDir(dir);
  });
  const owned = (): unknown => JSON.parse(readFileSync(join(dir, 'docker-source.json'), 'utf8')).owned;
  const metric = async (op: string, result: string): Promise<number> => {
    const m = /\} (\d+)$/.exec((await registry.metrics()).split('\n').find((l) => l.startsWith(`vipdns_docker_changes_total{op="${op}",result="${result}"}`)) ?? '');
    return m ? Number(m[1]) : 0;
  };
  return { engine, catalog, mk, dir, store, changes, owned, metric };
}

test('converges on start, follows events, a stopped container leaves, bursts coalesce', async (t) => {
  const { engine, catalog, mk, dir } = await setup(t);
  engine.networks = [network('front', '10.0.9.0/24', '10.0.9.1')];
  const web1 = container('web-1', { front: { ip: '10.0.9.2' } }, { 'vipdns.service': 'web', 'vipdns.ports': 'http=80' });
  const db = container('db', { front: { ip: '10.0.9.3', aliases: ['database'] } });
  engine.containers = [web1, db];
  const src = mk();
  await src.start();
  t.teardown(() => src.stop());
  await until('first pass', () => src.passes >= 1 && src.status().ok);
  t.deepEqual(Object.keys(catalog.state.networks), ['front']);
  t.is(catalog.service('web').attachments[0]!.vip, '10.0.9.254', 'VIP from the top of the subnet');
  t.deepEqual(catalog.tasksOf('web').map((x) => [x.name, x.addresses.front]), [['web-1', '10.0.9.2']]);
  t.deepEqual(catalog.findContainer('db')?.networkAliases, { front: ['database'] }, "Docker's network alias, on its network");
  t.true(existsSync(join(dir, 'docker-source.json')));

  // A burst of events costs one pass.
  const passes = src.passes;
  const web2 = container('web-2', { front: { ip: '10.0.9.4' } }, { 'vipdns.service': 'web', 'vipdns.ports': 'http=80' });
  engine.containers = [web1, web2, db];
  for (let i = 0; i < 20; i++) engine.emit('container', i % 2 ? 'start' : 'create', web2.Id!);
  engine.emit('container', 'exec_start: sh', web2.Id!);
  await until('web-2 task', () => catalog.tasksOf('web').length === 2);
  await new Promise((r) => setTimeout(r, 100));
  t.true(src.passes - passes <= 2, `20 events → ${src.passes - passes} passes`);

  // Stop: the task and the plain container leave; the service (and its VIP) stays while a stopped container has the label.
  engine.containers = [{ ...web1, State: 'exited' }, web2, { ...db, State: 'exited' }];
  engine.emit('container', 'die', web1.Id!);
  await until('web-1 gone', () => catalog.tasksOf('web').length === 1 && !catalog.findContainer('db'));
  t.is(catalog.service('web').attachments[0]!.vip, '10.0.9.254');
  // Destroyed: the service and the network go too.
  engine.containers = [];
  engine.networks = [];
  engine.emit('container', 'destroy', web2.Id!);
  await until('all gone', () => Object.keys(catalog.state.services).length === 0 && Object.keys(catalog.state.networks).length === 0);
  // The ownership file is written at the end of the pass.
  const ownedNow = (): unknown => JSON.parse(readFileSync(join(dir, 'docker-source.json'), 'utf8')).owned;
  await until('ownership saved', () => JSON.stringify(ownedNow()) === JSON.stringify({ networks: {}, services: {}, tasks: {}, containers: {} }));
  t.pass();
});

test('reconnects after the engine restarts and catches up on what it missed; never touches hand-made entries', async (t) => {
  const { engine, catalog, mk } = await setup(t);
  engine.networks = [network('front', '10.0.9.0/24')];
  engine.containers = [container('a', { front: { ip: '10.0.9.10' } })];
  await catalog.createNetwork({ name: 'mine', subnet: '10.7.0.0/24', attachable: true });
  await catalog.createNetwork({ name: 'shared', subnet: '10.8.0.0/24', attachable: true });
  const src = mk();
  await src.start();
  t.teardown(() => src.stop());
  await until('first pass', () => src.status().ok);
  await catalog.addContainer({ name: 'byhand', networks: ['front'], aliases: ['x'] });

  engine.dropStreams(); // engine restart: the stream ends ...
  engine.containers = [container('b', { front: { ip: '10.0.9.11' } })]; // ... and things change meanwhile, with no event
  await until('reconnected', () => engine.streamCount === 1);
  await until('caught up', () => !!catalog.findContainer('b') && !catalog.findContainer('a'));
  t.truthy(catalog.findContainer('byhand'));
  t.truthy(catalog.findNetwork('mine'));

  // Engine down for good: readiness says so; the catalog keeps what it had.
  await engine.stop();
  await until('not ready', () => !src.status().ok);
  t.regex(src.status().detail, /reconnecting/);
  t.truthy(catalog.findContainer('b'));
});

test('after a restart of vipdns, entries it created earlier are cleaned up from its ownership file', async (t) => {
  const { engine, catalog, mk } = await setup(t);
  engine.networks = [network('front', '10.0.9.0/24')];
  engine.containers = [container('a', { front: { ip: '10.0.9.10' } })];
  const s1 = mk();
  await s1.start();
  await until('first pass', () => s1.status().ok);
  await s1.stop();
  engine.containers = []; // "a" went away while vipdns was down
  const s2 = mk();
  await s2.start();
  t.teardown(() => s2.stop());
  await until('cleaned', () => !catalog.findContainer('a'));
  t.truthy(catalog.findNetwork('front'), 'the network is still in Docker');
});

test('one pass is one catalog change; a VIP never takes an address Docker gave a container', async (t) => {
  const { engine, catalog, mk, changes, metric } = await setup(t);
  engine.networks = [network('front', '10.0.9.0/24', '10.0.9.1')];
  engine.containers = [
    container('api-1', { front: { ip: '10.0.9.5' } }, { 'vipdns.service': 'api' }),
    container('web-1', { front: { ip: '10.0.9.2' } }, { 'vipdns.service': 'web' }),
    container('web-2', { front: { ip: '10.0.9.3' } }, { 'vipdns.service': 'web' }),
    container('db', { front: { ip: '10.0.9.4' } }),
    // Addresses Docker handed out from the top that the catalog never gets: ignored, and a bad label.
    container('squat', { front: { ip: '10.0.9.254' } }, { 'vipdns.ignore': 'true' }),
    container('odd', { front: { ip: '10.0.9.253' } }, { 'vipdns.service': 'x.y' }),
  ];
  const src = mk();
  await src.start();
  t.teardown(() => src.stop());
  await until('first pass', () => src.passes >= 1);
  t.deepEqual(changes, [7], 'network, 2 services, 3 tasks and a container: one change');
  const vips = ['api', 'web'].map((n) => catalog.service(n).attachments[0]!.vip);
  t.deepEqual(vips, ['10.0.9.252', '10.0.9.251'], 'from the top, around the addresses Docker holds');
  t.is(await metric('addTask', 'ok'), 3);
  t.is(await metric('createService', 'ok'), 2);

  // A container starting on the next address down, before vipdns sees it, and a new service: one more change.
  engine.containers.push(container('late', { front: { ip: '10.0.9.250' } }), container('cache-1', { front: { ip: '10.0.9.6' } }, { 'vipdns.service': 'cache' }));
  await src.syncNow();
  t.is(changes.length, 2);
  t.is(catalog.service('cache').attachments[0]!.vip, '10.0.9.249');
  t.is(catalog.findContainer('late')?.addresses.front, '10.0.9.250');
});

test('one bad op fails alone; ownership records only what committed, nothing when the commit fails', async (t) => {
  const { engine, catalog, mk, store, changes, owned, metric } = await setup(t);
  // A hand-made network of the same subnet is used, but it takes no standalone containers.
  await catalog.createNetwork({ name: 'front', subnet: '10.0.9.0/24' });
  engine.networks = [network('front', '10.0.9.0/24')];
  const web1 = container('web-1', { front: { ip: '10.0.9.2' } }, { 'vipdns.service': 'web' });
  engine.containers = [web1, container('db', { front: { ip: '10.0.9.3' } })];
  const before = changes.length;
  const src = mk();
  await src.start();
  t.teardown(() => src.stop());
  await until('first pass', () => src.passes >= 1);
  t.is(changes.length - before, 1);
  t.truthy(catalog.tasksOf('web').length === 1 && !catalog.findContainer('db'));
  t.is(await metric('addContainer', 'error'), 1);
  t.is(await metric('addTask', 'ok'), 1);
  t.deepEqual(owned(), { networks: {}, services: { web: 'web-1' }, tasks: { 'web-1': web1.Id! }, containers: {} });

  // The store refuses the commit: nothing happened, nothing is recorded; the next pass makes up for it.
  store.fail = true;
  const web2 = container('web-2', { front: { ip: '10.0.9.4' } }, { 'vipdns.service': 'web' });
  engine.containers.push(web2);
  await src.syncNow();
  t.is(catalog.tasksOf('web').length, 1);
  t.is(await metric('addTask', 'error'), 1);
  t.deepEqual(owned(), { networks: {}, services: { web: 'web-1' }, tasks: { 'web-1': web1.Id! }, containers: {} });
  store.fail = false;
  await src.syncNow();
  t.deepEqual(catalog.tasksOf('web').map((x) => x.name).sort(), ['web-1', 'web-2']);
  t.deepEqual(owned(), { networks: {}, services: { web: 'web-1' }, tasks: { 'web-1': web1.Id!, 'web-2': web2.Id! }, containers: {} });
});

test("a store's cap on objects per commit splits a pass into a few batches, in order; a big service goes in chunks", async (t) => {
  const { engine, catalog, mk, store, changes, owned } = await setup(t, tempDir(), 5);
  engine.networks = [network('front', '10.0.9.0/24', '10.0.9.1')];
  engine.containers = Array.from({ length: 12 }, (_, i) => container(`web-${i + 1}`, { front: { ip: `10.0.9.${i + 2}` } }, { 'vipdns.service': 'web' }));
  const src = mk();
  await src.start();
  t.teardown(() => src.stop());
  await until('first pass', () => src.passes >= 1);
  t.is(catalog.tasksOf('web').length, 12);
  t.deepEqual(store.commits, [5, 5, 4], 'network + service + 12 tasks in three commits under the cap');
  t.is(changes.length, 3);
  t.is(Object.keys((owned() as { tasks: object }).tasks).length, 12);

  // Everything gone from Docker: the service's 12 tasks cannot go in one commit with it.
  engine.containers = [];
  engine.networks = [];
  store.commits.length = 0;
  await src.syncNow();
  t.deepEqual(store.commits, [5, 5, 4], '5 + 5 tasks, then the last 2 with the service and the network');
  t.is(catalog.findNetwork('front'), undefined);
  t.deepEqual(owned(), { networks: {}, services: {}, tasks: {}, containers: {} });
});

test('swarm: services from GET /services; containers on an overlay are handed over with their namespace; a worker falls back', async (t) => {
  const { engine, catalog, mk } = await setup(t);
  const dir = tempDir();
  t.teardown(() => removeDir(dir));
  engine.networks = [
    { ...network('ov', '10.0.1.0/24', '10.0.1.1'), Id: 'ov-id', Scope: 'swarm', Driver: 'overlay', Attachable: true },
    network('front', '10.0.9.0/24', '10.0.9.1'),
  ];
  const labels = { 'com.docker.swarm.service.name': 'sw', 'com.docker.swarm.service.id': 'sw-sid' };
  const t1 = container('sw.1.aaaa', { ov: { ip: '10.0.1.3' } }, labels);
  const probe = container('probe', { ov: { ip: '10.0.1.9' }, front: { ip: '10.0.9.9' } });
  const local = container('local', { front: { ip: '10.0.9.10' } });
  engine.containers = [t1, probe, local];
  // Existing processes, so the namespace paths exist: this test's own.
  engine.pids.set(t1.Id!, process.pid);
  engine.pids.set(probe.Id!, process.pid);
  engine.services = [{ ID: 'sw-sid', Spec: { Name: 'sw', TaskTemplate: { Networks: [{ Target: 'ov-id', Aliases: ['foo'] }] }, EndpointSpec: { Mode: 'vip' } }, Endpoint: { VirtualIPs: [{ NetworkID: 'ov-id', Addr: '10.0.1.2/24' }] } }];
  const handed: Array<Array<{ id: string; netns: string; networks: string[] }>> = [];
  const src = new DockerSource({ url: `unix://${engine.socket}`, catalog, ownedFile: join(dir, 'owned.json'), log: pino({ level: 'silent' }), debounceMs: 30, maxDelayMs: 200, onSandboxes: (l) => void handed.push(l) });
  await src.start();
  t.teardown(() => src.stop());
  await until('the first pass', () => src.passes > 0);
  t.like(catalog.service('sw'), { endpointMode: 'vip', attachments: [{ network: 'ov', vip: '10.0.1.2', aliases: ['foo'] }] }, "the swarm service's own VIP and network alias");
  t.deepEqual(
    handed.at(-1)!.map((s) => [s.id, s.netns, s.networks]),
    [
      [probe.Id, `/proc/${process.pid}/ns/net`, ['ov']],
      [t1.Id, `/proc/${process.pid}/ns/net`, ['ov']],
    ],
    'containers on the overlay, with their namespace and their overlay networks only; not the one on a local bridge',
  );
  t.is(engine.requests.filter((r) => r.startsWith('GET /containers/') && r.endsWith('/json') && !r.includes('containers/json')).length, 2, 'each inspected once');
  await src.syncNow();
  t.is(engine.requests.filter((r) => r.startsWith('GET /containers/') && r.endsWith('/json') && !r.includes('containers/json')).length, 2, 'not again on the next pass');

  // The engine stops being a manager: the service keeps going in vip mode, without the engine's VIP.
  engine.services = undefined;
  engine.emit('service', 'update');
  await src.syncNow();
  const sw = catalog.service('sw');
  t.is(sw.endpointMode, 'vip');
  t.not(sw.attachments[0]!.vip, '10.0.1.2', 'recreated with a VIP of its own once the swarm VIP is no longer known');
  t.true(src.status().ok);
});
