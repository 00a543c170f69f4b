// The embedded store: kill -9 during a burst of concurrent writes never loses an acknowledged
// one; a catalog.json written by vipdns 0.1 is migrated on first open, kept as a backup, and
// nothing in it is lost; a corrupt legacy file stops the start with a clear message.
import test from 'ava';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Catalog } from '../../src/catalog/catalog.js';
import type { CatalogState } from '../../src/catalog/model.js';
import { LocalStore } from '../../src/catalog/store/local.js';
import { ROOT, removeDir, tempDir } from '../helpers/daemon.js';
import { onLines } from '../helpers/lines.js';

const WRITER = `
import { Catalog } from '${ROOT}/dist/src/catalog/catalog.js';
import { LocalStore } from '${ROOT}/dist/src/catalog/store/local.js';
const c = await Catalog.open(await LocalStore.open(process.argv[2]));
if (!c.findNetwork('n')) await c.createNetwork({ name: 'n', subnet: '10.64.0.0/16' });
if (!c.state.services.s) await c.createService({ name: 's', networks: ['n'] });
// 16 writers at once: acknowledged writes share group commits.
const one = async () => {
  for (;;) {
    const t = await c.addTask({ service: 's' });
    process.stdout.write('ack ' + t.id + ' ' + t.addresses.n + '\\n');
  }
};
await Promise.all(Array.from({ length: 16 }, one));
`;

test('kill -9 during a burst of concurrent writes loses no acknowledged write', async (t) => {
  const dir = tempDir();
  t.teardown(() => removeDir(dir));
  const script = join(dir, 'writer.mjs');
  writeFileSync(script, WRITER);
  const acked = new Map<string, string>();
  for (let round = 0; round < 5; round++) {
    const p = spawn(process.execPath, [script, join(dir, 'data')], { stdio: ['ignore', 'pipe', 'inherit'] });
    onLines(p.stdout, (line) => {
      const [, id, ip] = line.split(' ');
      acked.set(id!, ip!);
    });
    await new Promise((r) => setTimeout(r, 400 + Math.random() * 400));
    p.kill('SIGKILL');
    await new Promise((r) => p.once('exit', r));
    // Opens cleanly after the kill (the stale lock is taken over) and holds every acknowledged task.
    const c = await Catalog.open(await LocalStore.open(join(dir, 'data')));
    let missing = 0;
    for (const [id, ip] of acked) {
      const task = c.state.tasks[id];
      if (!task || task.addresses.n !== ip) missing++;
    }
    t.is(missing, 0, `round ${round}: every one of ${acked.size} acknowledged tasks is stored with its address`);
    // Addresses stayed unique across crashes.
    const ips = Object.values(c.state.tasks).map((x) => x.addresses.n);
    t.is(new Set(ips).size, ips.length, `round ${round}: no address handed out twice`);
    await c.close();
  }
  t.true(acked.size > 50, `writer made progress (${acked.size} tasks)`);
});

test('a catalog.json written by vipdns 0.1 is migrated on first start and kept as a backup', async (t) => {
  const dir = tempDir();
  t.teardown(() => removeDir(dir));
  const fixture = join(ROOT, 'test/fixtures/catalog-v0.1.json');
  copyFileSync(fixture, join(dir, 'catalog.json'));
  const old = JSON.parse(readFileSync(fixture, 'utf8')) as CatalogState;
  const store = await LocalStore.open(dir);
  t.truthy(store.migration, 'the store says it migrated');
  t.is(store.migration!.objects, Object.keys(old.networks).length + Object.keys(old.services).length + Object.keys(old.tasks).length + Object.keys(old.containers).length);
  const c = await Catalog.open(store);
  t.deepEqual(c.state, old, 'every object, counter and the revision survive');
  t.false(existsSync(join(dir, 'catalog.json')), 'the file is no longer where a start would load it');
  t.deepEqual(JSON.parse(readFileSync(join(dir, 'catalog.json.migrated'), 'utf8')), old, 'the original is kept byte-for-byte as a backup');
  // Writes continue from the migrated state: no address or fwmark is handed out twice.
  const svc = await c.createService({ name: 'new', networks: ['front'] });
  t.is(svc.fwmark, old.nextFwmark);
  const task = await c.addTask({ service: 'web' });
  const used = new Set<string>();
  for (const s of Object.values(old.services)) for (const a of s.attachments) if (a.vip) used.add(a.vip);
  for (const x of [...Object.values(old.tasks), ...Object.values(old.containers)]) for (const ip of Object.values(x.addresses)) used.add(ip);
  t.false(used.has(task.addresses.front!), 'a new task gets a free address');
  t.false(used.has(svc.attachments[0]!.vip!), 'a new VIP is free');
  await c.close();
  // A second start does not migrate again and keeps the writes.
  const again = await LocalStore.open(dir);
  t.is(again.migration, undefined);
  const c2 = await Catalog.open(again);
  t.truthy(c2.state.services.new);
  t.truthy(c2.state.tasks[task.id]);
  t.is(c2.state.revision, old.revision + 2);
  await c2.close();
});

test('a corrupt legacy catalog file stops the start with a clear message instead of starting empty', async (t) => {
  const dir = tempDir();
  t.teardown(() => removeDir(dir));
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'catalog.json'), '{"version":1,"networks":');
  await t.throwsAsync(LocalStore.open(dir), { message: /catalog\.json is not a vipdns catalog .*move it aside/ });
  // Nothing was changed, and the lock was released.
  t.is(readFileSync(join(dir, 'catalog.json'), 'utf8'), '{"version":1,"networks":');
  await t.throwsAsync(LocalStore.open(dir), { message: /is not a vipdns catalog/ });
});

test('a data dir is held by one store at a time', async (t) => {
  const dir = tempDir();
  t.teardown(() => removeDir(dir));
  const s = await LocalStore.open(dir);
  await t.throwsAsync(LocalStore.open(dir), { message: /in use by another vipdns/ });
  await s.close();
  const s2 = await LocalStore.open(dir);
  await s2.close();
});

test('after many writes and a pause the store maps its file afresh; writes before, during and after are all kept', async (t) => {
  const dir = tempDir();
  t.teardown(() => removeDir(dir));
  const c = await Catalog.open(await LocalStore.open(dir));
  await c.createNetwork({ name: 'n', subnet: '10.0.0.0/16' });
  await c.createService({ name: 'web', networks: ['n'] });
  const ids: string[] = [];
  // 2,500 objects: over the remap threshold; the pause lets the remap run.
  await Promise.all(Array.from({ length: 2500 }, async () => ids.push((await c.addTask({ service: 'web' })).id)));
  await new Promise((r) => setTimeout(r, 1300));
  // Writes racing the remap, and after it.
  const late = await Promise.all(Array.from({ length: 50 }, () => c.addTask({ service: 'web' })));
  await c.removeTask(ids[0]!);
  await c.close();
  const again = await Catalog.open(await LocalStore.open(dir));
  t.is(Object.keys(again.state.tasks).length, 2500 + 50 - 1);
  for (const x of late) t.truthy(again.state.tasks[x.id]);
  t.falsy(again.state.tasks[ids[0]!]);
  await again.close();
});
