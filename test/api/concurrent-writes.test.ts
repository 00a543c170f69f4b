// Concurrent writers queue: a burst of task adds from 64 keep-alive clients (another process),
// against the real API server on a real catalog, while the server's event loop stalls for
// longer than the keep-alive timeout (as it does while commits run on a big catalog), gets one
// proper HTTP answer per request, never a reset connection.
import test from 'ava';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { ApiServer } from '../../src/api/server.js';
import { Catalog } from '../../src/catalog/catalog.js';
import { LocalStore } from '../../src/catalog/store/local.js';
import { ROOT, removeDir, tempDir } from '../helpers/daemon.js';

const CLIENTS = 64;
const PER_CLIENT = 3;
// fetch (undici) keeps an idle connection for the server's Keep-Alive hint minus 2 s: 3 s is
// the shortest timeout under which it reuses connections at all.
const KEEP_ALIVE_MS = 3000;
// Node arms its timer 1 s beyond the advertised timeout (HTTP_SERVER_KEEP_ALIVE_TIMEOUT_BUFFER).
const STALL_MS = KEEP_ALIVE_MS + 1500;
const BREATHER_MS = 300;

function busyWait(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    /* a commit that blocks the event loop */
  }
}

function runClients(api: string): Promise<Record<string, number>> {
  const script = join(ROOT, 'dist/test/api/burst-client.js');
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [script, api, 'web', String(CLIENTS), String(PER_CLIENT), '600'], { timeout: 100_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`burst client failed: ${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout) as Record<string, number>);
    });
  });
}

test('64 concurrent writers through event-loop stalls longer than the keep-alive timeout: every request answered', async (t) => {
  const dir = tempDir('vipdns-api-');
  const catalog = await Catalog.open(await LocalStore.open(dir));
  const api = new ApiServer({ listen: { kind: 'tcp', host: '127.0.0.1', port: 0 }, catalog, keepAliveTimeoutMs: KEEP_ALIVE_MS });
  t.teardown(async () => {
    await api.stop();
    await catalog.close();
    removeDir(dir);
  });
  await catalog.createNetwork({ name: 'n', subnet: '10.0.0.0/16' });
  await catalog.createService({ name: 'web', networks: ['n'] });
  // The event loop stalls for longer than the keep-alive timeout again and again, with short
  // breathers in which answers go out and their connections turn idle: as it does on a big
  // catalog while commits run. Requests sent during a stall must wait, not be reset.
  let stalls = 0;
  let stalling = true;
  // In the check phase (setImmediate), like work that follows I/O: in the timers phase the
  // loop's clock stays behind and the keep-alive timers would not be due yet.
  const cycle = (): void => {
    if (!stalling) return;
    stalls++;
    busyWait(STALL_MS);
    setTimeout(() => setImmediate(cycle), BREATHER_MS);
  };
  setTimeout(() => setImmediate(cycle), BREATHER_MS);
  t.teardown(() => void (stalling = false));
  await api.start();

  const outcomes = await runClients(`http://127.0.0.1:${api.port}`);
  stalling = false;
  t.true(stalls >= 2, `the loop stalled while the clients wrote (${stalls} stalls)`);
  t.deepEqual(outcomes, { '201': CLIENTS * PER_CLIENT }, `every request got 201 Created: ${JSON.stringify(outcomes)}`);
  t.is(catalog.tasksOf('web').length, CLIENTS * PER_CLIENT, 'and every acknowledged task is in the catalog');
});
