// kill -9 of the process running the balancer, then a restart: the kernel keeps the dataplane, the new
// process adopts it and applies only the difference, and a long-lived connection never notices.
import test from 'ava';
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanupDataplane } from '../../src/balancer/cleanup.js';
import type { SyncReport } from '../../src/balancer/reconcile.js';
import { onLines } from '../helpers/lines.js';
import { createTopology, netnsUnavailable, uniquePrefix, type Topology } from '../helpers/netns.js';
import { VIP, addVip, burst, fixture, hold, nftRuleset, startBackends, webCatalog, type Held } from './common.js';

const why = await netnsUnavailable();

interface Harness {
  child: ChildProcess;
  syncs: SyncReport[];
  logs: string[];
}

/** Starts the harness inside the host namespace; resolves after its first sync and 'ready'. */
function startHarness(topo: Topology, stateFile: string): Promise<Harness> {
  const child = spawn('ip', ['netns', 'exec', topo.host, process.execPath, fixture('balancer-harness'), stateFile], {
    env: { ...process.env, VIPDNS_TEST_NETNS: topo.host },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const h: Harness = { child, syncs: [], logs: [] };
  let err = '';
  child.stderr!.on('data', (b) => (err += b));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`harness not ready: ${err}`)), 10_000);
    onLines(child.stdout!, (line) => {
      const ev = JSON.parse(line) as { event: string } & SyncReport;
      if (ev.event === 'synced') h.syncs.push(ev);
      else h.logs.push(line);
      child.emit('event', ev);
      if (ev.event === 'ready') {
        clearTimeout(timer);
        resolve(h);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`harness exited (${code}): ${err}`));
    });
  });
}

function nextSync(h: Harness): Promise<SyncReport> {
  return new Promise((resolve) => {
    const on = (ev: { event: string } & SyncReport) => {
      if (ev.event !== 'synced') return;
      h.child.off('event', on);
      resolve(ev);
    };
    h.child.on('event', on);
  });
}

function kill9(h: Harness): Promise<void> {
  return new Promise((resolve) => {
    if (h.child.exitCode !== null || h.child.signalCode !== null) return resolve();
    h.child.removeAllListeners('exit');
    h.child.once('exit', () => resolve());
    // `ip netns exec` execs node in place, so the child pid is the balancer process itself.
    h.child.kill('SIGKILL');
  });
}

if (why) {
  test.skip(`netns restart suite skipped: ${why}`, () => {});
} else {
  let topo: Topology;
  const procs: ChildProcess[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'vipdns-t-'));
  const stateFile = join(dir, 'state.json');

  test.before(async () => {
    topo = await createTopology(uniquePrefix(), 3);
    procs.push(...(await startBackends(topo)));
    await addVip(topo);
  });

  test.after.always(async () => {
    for (const p of procs) p.kill('SIGKILL');
    await topo?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test.serial('kill -9 and restart keep a long-lived connection alive; the restart applies only the difference', async (t) => {
    t.timeout(60_000);
    writeFileSync(stateFile, JSON.stringify(webCatalog(topo, [1, 2]).snapshot()));
    const h1 = await startHarness(topo, stateFile);
    procs.push(h1.child);
    t.true(h1.syncs[0]!.ops > 0, 'first start programs the table');

    const conn: Held = await hold(topo.client.ns, VIP, 80);
    procs.push(conn.child);
    t.is(await conn.ping('one'), conn.backend);

    await kill9(h1);
    t.is(await conn.ping('while-dead'), conn.backend, 'the kernel keeps serving without the process');
    const alive = await burst(topo.client.ns, 'tcp', VIP, 80, 10);
    t.deepEqual(alive.counts, { b1: 5, b2: 5 });

    // Same catalog: adopts the table, writes nothing.
    const h2 = await startHarness(topo, stateFile);
    procs.push(h2.child);
    t.deepEqual(h2.syncs.map((s) => [s.ops, s.added, s.changed, s.removed]), [[0, 0, 0, 0]]);
    t.is(await conn.ping('after-restart'), conn.backend);

    // Killed again; the catalog changes while nobody runs; the restart applies just that change.
    await kill9(h2);
    writeFileSync(stateFile, JSON.stringify(webCatalog(topo, [1, 2, 3]).snapshot()));
    const h3 = await startHarness(topo, stateFile);
    procs.push(h3.child);
    const s = h3.syncs[0]!;
    t.deepEqual([s.added, s.changed, s.removed, s.base], [0, 4, 0, false], 'tcp+udp VIP ports and published ports gained b3');
    t.is(await conn.ping('after-change'), conn.backend);
    const spread = await burst(topo.client.ns, 'tcp', VIP, 80, 30);
    t.deepEqual(spread.counts, { b1: 10, b2: 10, b3: 10 });

    // An update through the running process (SIGHUP reloads the file) is applied incrementally too.
    writeFileSync(stateFile, JSON.stringify(webCatalog(topo, [1, 3]).snapshot()));
    const next = nextSync(h3);
    h3.child.kill('SIGHUP');
    const s2 = await next;
    t.is(s2.changed, 4);
    t.is(await conn.ping('after-hup'), conn.backend, 'even when its task was removed (drained)');

    await kill9(h3);
    t.deepEqual(await cleanupDataplane({ netns: topo.host }), { removed: ['nftables'], errors: [] });
    for (const ns of topo.all) t.is(await nftRuleset(ns), '', `namespace ${ns}`);
  });
}
