// The Docker source against a stand-in engine on a unix socket (recorded podman shapes):
// initial convergence, events, debounce, reconnect after an engine restart, ownership.
import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { Catalog } from '../../src/catalog/catalog.js';
import { LocalStore } from '../../src/catalog/store/local.js';
import { DockerSource } from '../../src/catalog/sources/docker.js';
import { removeDir, tempDir } from '../helpers/daemon.js';
import { FakeEngine, container, network } from './fake-engine.js';

async function until(what: string, f: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function setup(t: import('ava').ExecutionContext, dir = tempDir()) {
  const engine = await new FakeEngine().start();
  const catalog = await Catalog.open(await LocalStore.open(dir));
  const mk = (): DockerSource =>
    new DockerSource({ url: `unix://${engine.socket}`, catalog, ownedFile: join(dir, 'docker-source.json'), log: pino({ level: 'silent' }), debounceMs: 30, maxDelayMs: 200, backoffMinMs: 50, backoffMaxMs: 200 });
  t.teardown(async () => {
    await engine.stop();
    await catalog.close();
    removeDir(dir);
  });
  return { engine, catalog, mk, dir };
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
  t.deepEqual(catalog.findContainer('db')?.aliases, ['database']);
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
