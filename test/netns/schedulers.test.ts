// Schedulers and weights on the nftables dataplane, with real connections from a client namespace:
// wrr by task weight, sh (a hash of the client address), weight 0 drains, and what nftables cannot do
// (lc, sticky) refused with the reason and nothing written.
import test from 'ava';
import type { ChildProcess } from 'node:child_process';
import { resolveTool } from '../../src/balancer/drivers/exec.js';
import { createTopology, inNs, netnsUnavailable, uniquePrefix } from '../helpers/netns.js';
import { burst, nftablesDaemon, startBackends } from './common.js';

// The nft binary itself: node_modules/.bin has an unrelated `nft` ahead of it on npm's PATH.
const NFT = resolveTool('nft');
const why = await netnsUnavailable();
const rootTest = why ? test.skip : test.serial;
if (why) console.log(`scheduler traffic tests skipped: ${why}`);

rootTest(`nftables: wrr by weight, sh per client address, weight 0 drains; lc and sticky refused${why ? ` (skipped: ${why})` : ''}`, async (t) => {
  const topo = await createTopology(uniquePrefix(), 3);
  const procs: ChildProcess[] = [];
  t.teardown(async () => {
    for (const p of procs) p.kill('SIGKILL');
    await topo.destroy();
  });
  procs.push(...(await startBackends(topo)));
  const sources = ['10.0.9.100', '10.0.9.101', '10.0.9.102', '10.0.9.103', '10.0.9.104', '10.0.9.105'];
  for (const s of sources.slice(1)) await inNs(topo.client.ns, 'ip', 'addr', 'add', `${s}/24`, 'dev', 'eth0');
  const d = await nftablesDaemon(t, topo);
  const ok = (...a: string[]): Promise<string> => d.ok(...a);
  const vipOf = async (svc: string): Promise<string> => (JSON.parse(await ok('--json', 'service', 'inspect', svc)) as { attachments: { vip: string }[] }).attachments[0]!.vip;
  const settle = async (vip: string, want: number): Promise<void> => {
    for (let i = 0; i < 50; i++) {
      const r = await burst(topo.client.ns, 'tcp', vip, 80, 12);
      if (r.errors === 0 && Object.keys(r.counts).length === want) return;
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new Error(`${vip}: traffic never reached ${want} backends`);
  };
  await ok('network', 'create', 'n', '--subnet', '10.0.9.0/24');

  // wrr, weights 3:2:1: 600 connections, each backend within ±10% of its share.
  await ok('service', 'create', 'wweb', '--network', 'n', '--port', '80', '--lb', 'wrr');
  const weights = [3, 2, 1];
  for (const [i, b] of topo.backends.entries()) await ok('task', 'add', 'wweb', '--ip', b.ip, '--name', `w${i + 1}`, '--weight', String(weights[i]));
  const wvip = await vipOf('wweb');
  await settle(wvip, 3);
  const w = await burst(topo.client.ns, 'tcp', wvip, 80, 600);
  t.is(w.errors, 0);
  for (const [i, share] of [300, 200, 100].entries()) {
    const got = w.counts[`b${i + 1}`] ?? 0;
    t.true(Math.abs(got - share) <= share * 0.1, `b${i + 1}: ${got} of 600, want ${share} ±10% (${JSON.stringify(w.counts)})`);
  }
  t.regex(await ok('service', 'ls'), /wweb\s+vip\s+wrr\s+3/);
  t.regex(await ok('task', 'ls', 'wweb'), /w1\s+wweb\s+\S+\s+\S+\s+3\s/);

  // Weight 0 drains: no new connections, the others keep their 2:1.
  await ok('task', 'update', 'w1', '--weight', '0');
  await settle(wvip, 2);
  const drained = await burst(topo.client.ns, 'tcp', wvip, 80, 60);
  t.deepEqual(drained, { counts: { b2: 40, b3: 20 }, errors: 0 }, 'b1 drained, 2:1 for the rest');

  // sh (switched on the running service): each client address keeps one backend; addresses spread.
  await ok('task', 'update', 'w1', '--weight', '1');
  await ok('service', 'update', 'wweb', '--lb', 'sh');
  const hvip = wvip;
  for (let i = 0; i < 50 && !/c-v4-tcp-h/.test(await inNs(topo.host, NFT, 'list', 'map', 'inet', 'vipdns', 'vips4')); i++) await new Promise((res) => setTimeout(res, 100));
  const one = await burst(topo.client.ns, 'tcp', hvip, 80, 50);
  t.is(one.errors, 0);
  t.deepEqual(Object.values(one.counts), [50], `one client, one backend: ${JSON.stringify(one.counts)}`);
  const chosen = new Set<string>();
  for (const s of sources) {
    const r = await burst(topo.client.ns, 'tcp', hvip, 80, 10, s);
    t.is(Object.keys(r.counts).length, 1, `${s} stays on one backend: ${JSON.stringify(r.counts)}`);
    chosen.add(Object.keys(r.counts)[0]!);
  }
  t.true(chosen.size >= 2, `${sources.length} clients spread over ${[...chosen].join(', ')}`);

  // What nftables cannot do is refused with the reason; nothing is written.
  const lc = await d.cli('service', 'create', 'lweb', '--network', 'n', '--lb', 'lc');
  t.not(lc.code, 0);
  t.regex(lc.stderr, /lb lc: the nftables dataplane has no least-connections scheduler/);
  const sticky = await d.cli('service', 'update', 'wweb', '--sticky', '30');
  t.not(sticky.code, 0);
  t.regex(sticky.stderr, /sticky 30: the nftables dataplane has no sticky sessions/);
  const ls = await ok('service', 'ls');
  t.notRegex(ls, /lweb/);
  t.notRegex(ls, /sticky/);
});
