// kill -9 at random moments while a writer commits: the file always parses and holds at
// least every revision the writer saw acknowledged.
import test from 'ava';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Catalog } from '../../src/catalog/catalog.js';
import { FileStore } from '../../src/catalog/store/file.js';
import { ROOT, removeDir, tempDir } from '../helpers/daemon.js';
import { onLines } from '../helpers/lines.js';

const WRITER = `
import { Catalog } from '${ROOT}/dist/src/catalog/catalog.js';
import { FileStore } from '${ROOT}/dist/src/catalog/store/file.js';
const c = await Catalog.open(await FileStore.open(process.argv[2]));
if (!c.findNetwork('n')) await c.createNetwork({ name: 'n', subnet: '10.64.0.0/16' });
if (!c.state.services.s) await c.createService({ name: 's', networks: ['n'] });
for (;;) {
  const t = await c.addTask({ service: 's' });
  process.stdout.write('ack ' + c.state.revision + ' ' + t.id + '\\n');
}
`;

test('kill -9 during writes never loses an acknowledged change nor corrupts the file', async (t) => {
  const dir = tempDir();
  t.teardown(() => removeDir(dir));
  const script = join(dir, 'writer.mjs');
  writeFileSync(script, WRITER);
  const acked = new Set<string>();
  let lastAck = 0;
  for (let round = 0; round < 5; round++) {
    const p = spawn(process.execPath, [script, join(dir, 'data')], { stdio: ['ignore', 'pipe', 'inherit'] });
    onLines(p.stdout, (line) => {
      const [, rev, id] = line.split(' ');
      lastAck = Math.max(lastAck, Number(rev));
      acked.add(id!);
    });
    await new Promise((r) => setTimeout(r, 300 + Math.random() * 400));
    p.kill('SIGKILL');
    await new Promise((r) => p.once('exit', r));
    const state = JSON.parse(readFileSync(join(dir, 'data', 'catalog.json'), 'utf8')) as { revision: number; tasks: Record<string, unknown> };
    t.true(state.revision >= lastAck, `round ${round}: stored revision ${state.revision} >= acknowledged ${lastAck}`);
    for (const id of acked) t.truthy(state.tasks[id], `acknowledged task ${id} is stored`);
  }
  t.true(acked.size > 20, `writer made progress (${acked.size} tasks)`);
  // The store opens cleanly after the last kill (the stale lock is taken over).
  const c = await Catalog.open(await FileStore.open(join(dir, 'data')));
  t.is(c.tasksOf('s').length >= acked.size, true);
  await c.close();
});

test('a corrupt catalog file stops the daemon with a clear message instead of starting empty', async (t) => {
  const dir = tempDir();
  t.teardown(() => removeDir(dir));
  writeFileSync(join(dir, 'catalog.json'), '{"version":1,"networks":');
  const store = await FileStore.open(dir);
  await t.throwsAsync(store.load(), { message: /is not a vipdns catalog .*move it aside/ });
  await store.close();
});
