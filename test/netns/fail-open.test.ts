// Fail-open in the dataplane, with real traffic: when a health check fails every task of a service,
// connections to its VIP still reach all of them (as DNS answers still list them); once one task is
// healthy again, only it gets new connections.
import test from 'ava';
import { inNs, netnsUnavailable, startIn } from '../helpers/netns.js';
import { burst, fixture, nftablesDaemon, startBackends, testTopology, VIP } from './common.js';

const why = await netnsUnavailable();
const rootTest = why ? test.skip : test.serial;
if (why) console.log(`fail-open traffic test skipped: ${why}`);

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const v = await fn();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`timed out waiting for ${what}`);
}

rootTest(`all tasks unhealthy: the VIP still balances over all of them; one healthy: only it${why ? ` (skipped: ${why})` : ''}`, async (t) => {
  const { topo, procs } = await testTopology(t, 3);
  procs.push(...(await startBackends(topo))); // serving port 80; nothing on the checked port 81
  const d = await nftablesDaemon(t, topo);
  const ok = (...a: string[]): Promise<string> => d.ok(...a);
  await ok('network', 'create', 'n', '--subnet', '10.0.9.0/24');
  await ok('service', 'create', 'web', '--network', 'n', '--port', '80', '--health-check', 'tcp:81', '--health-interval', '300', '--health-timeout', '200');
  for (const b of topo.backends) await ok('task', 'add', 'web', '--ip', b.ip);
  const health = async (): Promise<string[]> => (JSON.parse(await ok('--json', 'task', 'ls', 'web')) as Array<{ health: string }>).map((x) => x.health).sort();
  await until('every task unhealthy', async () => ((await health()).every((h) => h === 'unhealthy') ? true : undefined));

  const open = await until('traffic over all three', async () => {
    const r = await burst(topo.client.ns, 'tcp', VIP, 80, 30);
    return r.errors === 0 && Object.keys(r.counts).length === 3 ? r : undefined;
  });
  t.deepEqual(Object.values(open.counts), [10, 10, 10], `fail open: ${JSON.stringify(open.counts)}`);
  const metrics = await inNs(topo.host, 'curl', '-s', `${d.metrics}/metrics`);
  t.regex(metrics, /vipdns_services_without_healthy_tasks 1/, 'the metric says a service is failing open');
  t.regex(metrics, /vipdns_dataplane_backends\{driver="nftables",state="active"\} 3/);

  // b1 passes its check: it alone takes new connections, the other two are drained.
  procs.push(await startIn(topo.backends[0]!.ns, fixture('echo-server'), ['b1-health', '81']));
  await until('b1 healthy', async () => ((await health()).includes('healthy') ? true : undefined));
  const one = await until('traffic to b1 only', async () => {
    const r = await burst(topo.client.ns, 'tcp', VIP, 80, 20);
    return r.errors === 0 && Object.keys(r.counts).join() === 'b1' ? r : undefined;
  });
  t.deepEqual(one.counts, { b1: 20 });
  t.regex(await inNs(topo.host, 'curl', '-s', `${d.metrics}/metrics`), /vipdns_services_without_healthy_tasks 0/);
});
