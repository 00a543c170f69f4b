// --publish TARGET without a published port, on the nftables dataplane with real connections:
// the port comes from --publish-range, skips a port the host listens on, is reachable from a
// client namespace, survives a restart unchanged, and an exhausted range is one clear error.
import test from 'ava';
import { type DaemonHandle, removeDir, startDaemon } from '../helpers/daemon.js';
import { netnsUnavailable, startIn } from '../helpers/netns.js';
import { burst, fixture, startBackends, testTopology } from './common.js';

const why = await netnsUnavailable();
const rootTest = why ? test.serial.skip : test.serial;
if (why) console.log(`published-port traffic test skipped: ${why}`);

rootTest(`a published port from the range: reachable, kept across a restart, exhaustion refused${why ? ` (skipped: ${why})` : ''}`, async (t) => {
  const { topo, procs } = await testTopology(t, 2);
  procs.push(...(await startBackends(topo)));
  // Something on the host already listens on 30000: the range's first port is not free.
  procs.push(await startIn(topo.host, fixture('echo-server'), ['host', '30000']));
  const start = (dataDir?: string): Promise<DaemonHandle> =>
    startDaemon({ wrap: ['ip', 'netns', 'exec', topo.host], args: ['--dataplane', 'nftables', '--publish-range', '30000-30002'], ...(dataDir ? { dataDir } : {}) });
  let d = await start();
  const dataDir = d.dataDir;
  t.teardown(async () => {
    await d.stop();
    await d.cli('dataplane', 'cleanup');
    removeDir(dataDir);
  });
  const ok = (...a: string[]): Promise<string> => d.ok(...a);
  await ok('network', 'create', 'n', '--subnet', '10.0.9.0/24');
  await ok('service', 'create', 'web', '--network', 'n', '--publish', '80');
  for (const b of topo.backends) await ok('task', 'add', 'web', '--ip', b.ip);
  const portOf = async (svc: string): Promise<number> => (JSON.parse(await ok('--json', 'service', 'inspect', svc)) as { ports: { published: number }[] }).ports[0]!.published;
  t.is(await portOf('web'), 30001, '30000 is taken by a listener on the host');
  t.regex(await ok('service', 'ls'), /\*:30001->80\/tcp/);
  const reach = async (port: number): Promise<Record<string, number>> => {
    for (let i = 0; i < 50; i++) {
      const r = await burst(topo.client.ns, 'tcp', topo.hostIp, port, 20);
      if (r.errors === 0 && Object.keys(r.counts).length === 2) return r.counts;
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new Error(`published port ${port} never spread over both backends`);
  };
  t.deepEqual(await reach(30001), { b1: 10, b2: 10 });

  await ok('service', 'create', 'api', '--network', 'n', '--publish', '81');
  t.is(await portOf('api'), 30002);
  const full = await d.cli('service', 'create', 'third', '--network', 'n', '--publish', '82');
  t.not(full.code, 0);
  t.regex(full.stderr, /no free tcp port in the publish range 30000-30002: 2 published by services, 1 in use on the host/);
  t.is(full.stderr.trim().split('\n').length, 1);
  t.notRegex(await ok('service', 'ls'), /third/);

  await d.stop();
  d = await start(dataDir);
  t.is(await portOf('web'), 30001, 'kept across a restart');
  t.deepEqual(await reach(30001), { b1: 10, b2: 10 });
  await ok('service', 'rm', 'api');
  await ok('service', 'create', 'third', '--network', 'n', '--publish', '82');
  t.is(await portOf('third'), 30002, 'a removed service gives its port back');
});
