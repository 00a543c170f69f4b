// The dataplane inside a container's own namespace (balancer/sandboxes.ts), as for a container on a
// swarm overlay whose VIP traffic never reaches the host: the client namespace of the topology is the
// "container", programmed by path (/run/netns/NAME, as /proc/PID/ns/net would be); the host only
// bridges and routes, and owns no VIP. Root only.
import test from 'ava';
import { NftablesDriver } from '../../src/balancer/drivers/nftables.js';
import { toolRunner } from '../../src/balancer/drivers/exec.js';
import { Sandboxes } from '../../src/balancer/sandboxes.js';
import { netnsUnavailable, sh } from '../helpers/netns.js';
import { VIP, burst, nftRuleset, startBackends, testTopology, webCatalog } from './common.js';

const why = await netnsUnavailable();
const maybe = why ? test.skip : test.serial;
if (why) console.log(`# sandbox dataplane tests skipped: ${why}`);

maybe('a container namespace gets the VIPs of its networks only; it follows the catalog; a gone one is let go', async (t) => {
  const { topo, procs } = await testTopology(t, 3);
  procs.push(...(await startBackends(topo)));
  const logs: string[] = [];
  const logger = { info: (_o: object, m?: string) => logs.push(`info ${m}`), warn: (_o: object, m?: string) => logs.push(`warn ${m}`), error: (o: object, m?: string) => logs.push(`error ${m} ${JSON.stringify(o)}`) };
  const sandboxes = new Sandboxes({ driverFor: (netns) => new NftablesDriver({ runner: toolRunner('nft', netns) }), logger, balancer: { resyncIntervalMs: 0, coalesceMs: 5, drainMs: 0 } });
  t.teardown(() => sandboxes.stop());

  // web on network n (the topology's), api on a network the container is not on.
  const cat = () => webCatalog(topo, [1, 2, 3]).network('other', '10.0.50.0/24').service({ name: 'api', vips: { other: '10.0.50.2' } }).task('api', { other: '10.0.50.11' });
  sandboxes.update(cat().snapshot());
  await sandboxes.set([{ id: 'c1', netns: `/run/netns/${topo.client.ns}`, networks: ['n'] }]);
  const b = sandboxes.balancerOf('c1')!;
  await b.syncNow();
  t.is(b.status().lastError, undefined, logs.join('\n'));
  t.deepEqual(b.status().programmed, { services: 2, published: 0, backends: 6, draining: 0 }, 'web tcp+udp 80 with 3 backends each; not api, not the published port');

  const tcp = await burst(topo.client.ns, 'tcp', VIP, 80, 90);
  t.is(tcp.errors, 0);
  t.deepEqual(Object.keys(tcp.counts).sort(), ['b1', 'b2', 'b3'], JSON.stringify(tcp.counts));
  for (const n of Object.values(tcp.counts)) t.true(n >= 20 && n <= 40, JSON.stringify(tcp.counts));

  // Nothing outside the container namespace: the host has no table of ours and no VIP on lo.
  t.notRegex(await nftRuleset(topo.host), /vipdns/);
  t.notRegex(await sh('ip', ['-n', topo.client.ns, 'addr', 'show', 'dev', 'lo']), /10\.0\.9\.2\b/, 'no VIP on the container lo');
  t.regex(await nftRuleset(topo.client.ns), /table inet vipdns/);

  // A second container on the same network (b3's namespace) shares the plan; it reaches the VIP too.
  await sandboxes.set([
    { id: 'c1', netns: `/run/netns/${topo.client.ns}`, networks: ['n'] },
    { id: 'c2', netns: `/run/netns/${topo.backends[2]!.ns}`, networks: ['n'] },
  ]);
  t.is(sandboxes.balancerOf('c1'), b, 'an unchanged sandbox keeps its reconciler');
  await sandboxes.balancerOf('c2')!.syncNow();
  t.deepEqual(sandboxes.balancerOf('c2')!.status().programmed, b.status().programmed);
  const fromB3 = await burst(topo.backends[2]!.ns, 'tcp', VIP, 80, 30);
  t.is(fromB3.errors, 0, JSON.stringify(fromB3));

  // A hinted catalog change reaches both: b3's task leaves, new connections go to b1 and b2 only.
  sandboxes.update(webCatalog(topo, [1, 2]).snapshot(), { services: [], tasks: ['b3'] });
  await b.syncNow();
  await sandboxes.balancerOf('c2')!.syncNow();
  const after = await burst(topo.client.ns, 'tcp', VIP, 80, 40);
  t.is(after.errors, 0);
  t.deepEqual(Object.keys(after.counts).sort(), ['b1', 'b2']);
  t.is(sandboxes.balancerOf('c2')!.status().programmed.backends, 4, 'b1 and b2, tcp and udp');

  // The container is gone from the list: its reconciler stops (its rules go with its namespace).
  await sandboxes.set([]);
  t.is(sandboxes.size, 0);
  t.is(sandboxes.balancerOf('c1'), undefined);
});
