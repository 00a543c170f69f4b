// The whole daemon as the load balancer: catalog changes made with the CLI reach the kernel
// (nftables in a namespace of the test's own), traffic spreads, removed tasks get no new
// connections, and kill -9 plus a restart keeps a long-lived connection alive.
import test from 'ava';
import { type DaemonHandle, removeDir, startDaemon } from '../helpers/daemon.js';
import { netnsUnavailable } from '../helpers/netns.js';
import { burst, hold, nftRuleset, startBackends, testTopology, VIP } from './common.js';
import { inNs } from '../helpers/netns.js';

const why = await netnsUnavailable();
const rootTest = why ? test.skip : test.serial;
if (why) console.log(`daemon dataplane tests skipped: ${why}`);

rootTest(`the daemon programs nftables from the catalog; kill -9 and restart keep a held connection${why ? ` (skipped: ${why})` : ''}`, async (t) => {
  const { topo, procs } = await testTopology(t, 3);
  procs.push(...(await startBackends(topo)));
  // A foreign address on lo: ours are told apart by their label and this one must survive.
  await inNs(topo.host, 'ip', 'addr', 'add', '10.0.9.250/32', 'dev', 'lo', 'label', 'lo:other');
  const start = (dataDir?: string): Promise<DaemonHandle> =>
    startDaemon({ wrap: ['ip', 'netns', 'exec', topo.host], args: ['--dataplane', 'nftables'], ...(dataDir ? { dataDir } : {}) });
  let d = await start();
  const dataDir = d.dataDir;
  t.teardown(async () => {
    await d.stop();
    removeDir(dataDir);
  });
  const ok = (...a: string[]): Promise<string> => d.ok(...a);
  await ok('network', 'create', 'n', '--subnet', '10.0.9.0/24');
  t.regex(await ok('service', 'create', 'web', '--network', 'n', '--port', 'http=80'), new RegExp(`vip ${VIP.replaceAll('.', '\\.')} on n`));
  for (const b of topo.backends) await ok('task', 'add', 'web', '--ip', b.ip);

  const spreadOver = async (n: number): Promise<Record<string, number>> => {
    for (let i = 0; i < 50; i++) {
      const r = await burst(topo.client.ns, 'tcp', VIP, 80, 30);
      if (Object.keys(r.counts).length === n && r.errors === 0) return r.counts;
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new Error(`traffic never spread over ${n} backends`);
  };
  await spreadOver(3);
  t.regex(await inNs(topo.host, 'ip', '-4', '-o', 'addr', 'show', 'dev', 'lo', 'label', 'lo:vipdns'), new RegExp(`inet ${VIP.replaceAll('.', '\\.')}/32`), 'the daemon owns the VIP on lo');
  const even = await burst(topo.client.ns, 'tcp', VIP, 80, 90);
  t.deepEqual(Object.values(even.counts).sort(), [30, 30, 30], `90 connections, round robin: ${JSON.stringify(even.counts)}`);

  // A removed task gets no new connections.
  const tasks = JSON.parse(await ok('--json', 'task', 'ls', 'web')) as Array<{ id: string; addresses: { n: string } }>;
  const gone = tasks.find((x) => x.addresses.n === topo.backends[2]!.ip)!;
  await ok('task', 'rm', gone.id);
  const after = await spreadOver(2);
  t.false('b3' in after, 'b3 left the rotation');
  const status = JSON.parse(await ok('--json', 'dataplane', 'status')) as { driver: string; status: { programmed: { services: number; draining: number } } };
  t.is(status.driver, 'nftables');
  t.is(status.status.programmed.services, 1);

  // kill -9: the kernel keeps the dataplane; a held connection keeps working while nothing runs.
  const held = await hold(topo.client.ns, VIP, 80);
  procs.push(held.child);
  t.is(await held.ping('one'), held.backend);
  await d.kill9();
  t.is(await held.ping('two'), held.backend, 'the held connection survives the kill');
  t.deepEqual(Object.keys((await burst(topo.client.ns, 'tcp', VIP, 80, 20)).counts).sort(), ['b1', 'b2'], 'new connections still balanced while the daemon is down');
  d = await start(dataDir);
  t.is(await held.ping('three'), held.backend, 'and survives the restart (the table is adopted, not rebuilt)');
  await ok('task', 'add', 'web', '--ip', topo.backends[2]!.ip);
  await spreadOver(3);
  t.is(await held.ping('four'), held.backend);

  // Metrics of the dataplane are there, then cleanup removes all of ours.
  const metrics = await inNs(topo.host, 'curl', '-s', `${d.metrics}/metrics`);
  t.regex(metrics, /vipdns_dataplane_last_sync_success_timestamp_seconds\{driver="nftables"\} \d/);
  t.regex(metrics, /vipdns_dataplane_backends\{driver="nftables",state="active"\} 3/);
  await d.stop();
  const clean = await d.cli('dataplane', 'cleanup');
  t.is(clean.code, 0, clean.stderr);
  t.regex(clean.stdout, /removed: nftables/); // its table and its VIP addresses on lo
  t.notRegex(await nftRuleset(topo.host), /vipdns/);
  const lo = await inNs(topo.host, 'ip', '-4', '-o', 'addr', 'show', 'dev', 'lo');
  t.notRegex(lo, /lo:vipdns/, 'our VIP addresses are gone');
  t.regex(lo, /10\.0\.9\.250\/32 .*lo:other/, 'the foreign one is not');
});
