// Real traffic through the nftables dataplane, in namespaces this test creates: a client, a host (bridge,
// VIPs, dataplane) and three backends answering their own name. Root only.
import test from 'ava';
import type { ChildProcess } from 'node:child_process';
import { cleanupDataplane } from '../../src/balancer/cleanup.js';
import { NftablesDriver } from '../../src/balancer/drivers/nftables.js';
import { Balancer } from '../../src/balancer/reconcile.js';
import { createTopology, netnsUnavailable, uniquePrefix, type Topology } from '../helpers/netns.js';
import { VIP, burst, hold, nftRuleset, startBackends, webCatalog, type Held } from './common.js';

const why = await netnsUnavailable();
if (why) {
  test.skip(`netns traffic suite skipped: ${why}`, () => {});
} else {
  let topo: Topology;
  let balancer: Balancer;
  const procs: ChildProcess[] = [];
  const held: Held[] = [];
  const logs: string[] = [];
  const logger = {
    info: (_o: object, m?: string) => logs.push(`info ${m}`),
    warn: (_o: object, m?: string) => logs.push(`warn ${m}`),
    error: (o: object, m?: string) => logs.push(`error ${m} ${JSON.stringify(o)}`),
  };

  test.before(async () => {
    topo = await createTopology(uniquePrefix(), 3);
    procs.push(...(await startBackends(topo)));
    // No address for the VIP here: the driver puts it on lo (clients on its subnet ARP for it).
    balancer = new Balancer({ driver: new NftablesDriver({ netns: topo.host }), logger, resyncIntervalMs: 0, coalesceMs: 5, drainMs: 60_000 });
    balancer.update(webCatalog(topo, [1, 2, 3]).snapshot());
    await balancer.start();
  });

  test.after.always(async () => {
    await balancer?.stop();
    for (const p of [...procs, ...held.map((h) => h.child)]) p.kill('SIGKILL');
    await topo?.destroy();
  });

  test.serial('300 TCP connections to the VIP spread evenly over three backends; UDP too', async (t) => {
    t.is(balancer.status().lastError, undefined, logs.join('\n'));
    const tcp = await burst(topo.client.ns, 'tcp', VIP, 80, 300);
    t.is(tcp.errors, 0);
    t.deepEqual(Object.keys(tcp.counts).sort(), ['b1', 'b2', 'b3']);
    for (const n of Object.values(tcp.counts)) t.true(n >= 80 && n <= 120, JSON.stringify(tcp.counts));
    const udp = await burst(topo.client.ns, 'udp', VIP, 80, 90);
    t.is(udp.errors, 0);
    for (const n of Object.values(udp.counts)) t.true(n >= 20 && n <= 40, JSON.stringify(udp.counts));
  });

  test.serial('scaling down and up changes the spread; established connections keep flowing; a removed task gets no new connections', async (t) => {
    for (let i = 0; i < 3; i++) held.push(await hold(topo.client.ns, VIP, 80));
    t.deepEqual(held.map((h) => h.backend).sort(), ['b1', 'b2', 'b3'], 'round robin: one held connection per backend');

    // Scale down: b3's task leaves (drained: weight 0, its flows kept).
    balancer.update(webCatalog(topo, [1, 2]).snapshot());
    await balancer.syncNow();
    t.is(balancer.status().programmed.draining, 4, 'b3 drains from tcp+udp VIP ports and tcp+udp published ports');
    const down = await burst(topo.client.ns, 'tcp', VIP, 80, 60);
    t.deepEqual(down.counts, { b1: 30, b2: 30 });
    for (const h of held) t.is(await h.ping('after-down'), h.backend);

    // Scale up: b3 returns and a new spread includes it.
    balancer.update(webCatalog(topo, [1, 2, 3]).snapshot());
    await balancer.syncNow();
    const up = await burst(topo.client.ns, 'tcp', VIP, 80, 60);
    t.deepEqual(up.counts, { b1: 20, b2: 20, b3: 20 });
    for (const h of held) t.is(await h.ping('after-up'), h.backend);
  });

  test.serial('a published port on the host reaches the backends from outside and from the host itself', async (t) => {
    const fromClient = await burst(topo.client.ns, 'tcp', topo.hostIp, 8080, 30);
    t.deepEqual(fromClient.counts, { b1: 10, b2: 10, b3: 10 });
    const udp = await burst(topo.client.ns, 'udp', topo.hostIp, 8080, 30);
    t.deepEqual(Object.keys(udp.counts).sort(), ['b1', 'b2', 'b3']);
    const fromHost = await burst(topo.host, 'tcp', topo.hostIp, 8080, 30); // OUTPUT hook
    t.deepEqual(fromHost.counts, { b1: 10, b2: 10, b3: 10 });
  });

  test.serial('cleanup removes everything of vipdns and leaves every namespace empty', async (t) => {
    await balancer.stop();
    const r = await cleanupDataplane({ netns: topo.host });
    t.deepEqual(r, { removed: ['nftables'], errors: [] });
    for (const ns of topo.all) t.is(await nftRuleset(ns), '', `namespace ${ns}`);
    t.deepEqual(await cleanupDataplane({ netns: topo.host }), { removed: [], errors: [] }, 'idempotent');
  });
}
