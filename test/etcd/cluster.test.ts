// Three daemons on a real three-member etcd cluster: the etcd leader is killed in the middle of a
// write burst. Writes resume once a new leader is elected, and no acknowledged write is lost: every
// task any daemon acknowledged is in every daemon's catalog afterwards.
import test from 'ava';
import { type DaemonHandle, removeDir, startDaemon } from '../helpers/daemon.js';
import { startEtcdCluster } from '../helpers/etcd.js';

async function api<T>(d: DaemonHandle, method: string, path: string, body?: unknown): Promise<T> {
  const r = await fetch(`${d.api}${path}`, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(15_000) });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return JSON.parse(text) as T;
}

test('the etcd leader killed during a write burst: writes resume, no acknowledged write is lost', async (t) => {
  const cluster = await startEtcdCluster(3);
  const ds: DaemonHandle[] = [];
  t.teardown(async () => {
    await Promise.all(ds.map((d) => d.stop()));
    for (const d of ds) removeDir(d.dataDir);
    await cluster.destroy();
  });
  for (let i = 0; i < 3; i++) ds.push(await startDaemon({ args: ['--store', cluster.url, '--node-name', `node${i}`, '--etcd-lease-ttl', '10'] }));
  await api(ds[0]!, 'POST', '/v1/networks', { name: 'n', subnet: '10.60.0.0/16' });
  await api(ds[0]!, 'POST', '/v1/services', { name: 'web', networks: ['n'] });

  const acked: Array<{ id: string; at: number; took: number; d: number }> = [];
  const failed: Array<{ at: number; error: string }> = [];
  let stop = false;
  // One writer per daemon, one task add at a time, until told to stop.
  const writers = ds.map(async (d, di) => {
    while (!stop) {
      const t0 = Date.now();
      try {
        const task = await api<{ id: string }>(d, 'POST', '/v1/tasks', { service: 'web' });
        acked.push({ id: task.id, at: Date.now(), took: Date.now() - t0, d: di });
      } catch (e) {
        failed.push({ at: Date.now(), error: (e as Error).message.slice(0, 200) });
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  });
  await new Promise((r) => setTimeout(r, 1_500));
  const leader = await cluster.leader();
  const killedAt = Date.now();
  const before = acked.length;
  await cluster.kill(leader);
  // Run on until writes have resumed for a while (or it is clear they do not).
  const deadline = killedAt + 20_000;
  while (Date.now() < deadline && acked.filter((a) => a.at > killedAt + 200).length < 30) await new Promise((r) => setTimeout(r, 100));
  await new Promise((r) => setTimeout(r, 1_000));
  stop = true;
  await Promise.all(writers);

  const after = acked.filter((a) => a.at > killedAt);
  t.true(after.length > 0, `no write acknowledged after the leader (member ${leader}) was killed; errors: ${JSON.stringify(failed.slice(-3))}`);
  // The longest pause between two acknowledgements from just before the kill on: the election.
  const times = acked.map((a) => a.at).filter((at) => at >= killedAt - 500).sort((x, y) => x - y);
  let gap = 0;
  for (let i = 1; i < times.length; i++) gap = Math.max(gap, times[i]! - times[i - 1]!);
  t.log(`leader m${leader} killed after ${before} acknowledged writes; longest pause between acknowledgements ${gap} ms; ${failed.filter((f) => f.at >= killedAt).length} refused meanwhile; ${acked.length} acknowledged in all`);
  const slow = [...acked].sort((x, y) => y.took - x.took).slice(0, 3).map((a) => `daemon ${a.d}: ${a.took} ms, done ${a.at - killedAt} ms after the kill`);
  t.log(`slowest writes: ${slow.join('; ')}`);
  if (process.env.VIPDNS_TEST_LOGS) for (const d of ds) t.log(d.logs.filter((l) => /etcd/.test(l)).join('').slice(-1500));
  t.true(gap < 15_000, 'writes resume after an election');

  // Every acknowledged task is in every daemon's catalog.
  const want = new Set(acked.map((a) => a.id));
  for (const [i, d] of ds.entries()) {
    let have = new Set<string>();
    for (let n = 0; n < 100; n++) {
      have = new Set((await api<Array<{ id: string }>>(d, 'GET', '/v1/tasks?service=web')).map((x) => x.id));
      if ([...want].every((id) => have.has(id))) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const lost = [...want].filter((id) => !have.has(id));
    t.deepEqual(lost, [], `daemon ${i} lost acknowledged tasks`);
  }
});
