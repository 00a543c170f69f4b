// Schedulers and weights on the nftables dataplane, with real connections from a client namespace:
// wrr by task weight, sh (a hash of the client address), weight 0 drains, sticky sessions, and what
// nftables cannot do (lc) refused with the reason and nothing written.
import test from 'ava';
import { resolveTool } from '../../src/balancer/drivers/exec.js';
import { inNs, netnsUnavailable } from '../helpers/netns.js';
import { burst, nftablesDaemon, startBackends, testTopology } from './common.js';

// The nft binary itself: node_modules/.bin has an unrelated `nft` ahead of it on npm's PATH.
const NFT = resolveTool('nft');
const why = await netnsUnavailable();
const rootTest = why ? test.skip : test.serial;
if (why) console.log(`scheduler traffic tests skipped: ${why}`);

rootTest(`nftables: wrr by weight, sh per client address, weight 0 drains; lc refused${why ? ` (skipped: ${why})` : ''}`, async (t) => {
  const { topo, procs } = await testTopology(t, 3);
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
  t.notRegex(await ok('service', 'ls'), /lweb/);
});

rootTest(`nftables sticky: a client keeps its backend, clients spread, after the timeout it can change, a removed backend is left at once${why ? ` (skipped: ${why})` : ''}`, async (t) => {
  const { topo, procs } = await testTopology(t, 3);
  procs.push(...(await startBackends(topo)));
  const sources = ['10.0.9.100', '10.0.9.101', '10.0.9.102', '10.0.9.103', '10.0.9.104', '10.0.9.105', '10.0.9.106'];
  for (const s of sources.slice(1)) await inNs(topo.client.ns, 'ip', 'addr', 'add', `${s}/24`, 'dev', 'eth0');
  const d = await nftablesDaemon(t, topo);
  const ok = (...a: string[]): Promise<string> => d.ok(...a);
  const TIMEOUT_S = 2;
  await ok('network', 'create', 'n', '--subnet', '10.0.9.0/24');
  await ok('service', 'create', 'sweb', '--network', 'n', '--port', '80', '--sticky', String(TIMEOUT_S));
  for (const [i, b] of topo.backends.entries()) await ok('task', 'add', 'sweb', '--ip', b.ip, '--name', `s${i + 1}`);
  const vip = (JSON.parse(await ok('--json', 'service', 'inspect', 'sweb')) as { attachments: { vip: string }[] }).attachments[0]!.vip;
  const only = async (source: string, n: number): Promise<string> => {
    const r = await burst(topo.client.ns, 'tcp', vip, 80, n, source);
    t.is(r.errors, 0, `${source}: ${JSON.stringify(r)}`);
    t.is(Object.keys(r.counts).length, 1, `${source} keeps one backend over ${n} connections: ${JSON.stringify(r.counts)}`);
    return Object.keys(r.counts)[0]!;
  };
  for (let i = 0; i < 50 && !/-s2/.test(await inNs(topo.host, NFT, 'list', 'map', 'inet', 'vipdns', 'vips4')); i++) await new Promise((res) => setTimeout(res, 100));
  const a = sources[0]!;
  const first = await only(a, 20);
  const spread = new Set([first]);
  for (const s of sources.slice(1)) spread.add(await only(s, 5));
  t.true(spread.size >= 2, `${sources.length} clients over ${[...spread].join(', ')}`);
  t.regex(await ok('dataplane', 'show', 'sweb'), /sticky 2 s per client address/);

  // After the timeout, a's memory is gone and it picks again: each round moves the pick by two, so
  // within three rounds it lands on another backend.
  let again = first;
  for (let round = 0; round < 3 && again === first; round++) {
    await new Promise((res) => setTimeout(res, TIMEOUT_S * 1000 + 700));
    again = await only(a, 1);
    if (again === first) await only(sources[round + 1]!, 1);
  }
  t.not(again, first, 'after the timeout the client can change backend');

  // Its backend removed: the client is off it at once, and sticky on another.
  const b = await only(a, 5);
  const task = b.replace(/^b/, 's');
  await ok('task', 'rm', task);
  let moved = '';
  for (let i = 0; i < 50; i++) {
    const r = await burst(topo.client.ns, 'tcp', vip, 80, 10, a);
    if (r.errors === 0 && !(b in r.counts)) {
      moved = Object.keys(r.counts).join(',');
      break;
    }
    await new Promise((res) => setTimeout(res, 100));
  }
  t.true(moved !== '' && !moved.includes(','), `after ${task} left, ${a} sticks to one other backend (${moved})`);
  t.not(await only(a, 20), b);
});

rootTest(`nftables rr and wrr exact per service: two services of equal size, connections alternated between them${why ? ` (skipped: ${why})` : ''}`, async (t) => {
  const { topo, procs } = await testTopology(t, 4);
  procs.push(...(await startBackends(topo)));
  const d = await nftablesDaemon(t, topo);
  const ok = (...a: string[]): Promise<string> => d.ok(...a);
  await ok('network', 'create', 'n', '--subnet', '10.0.9.0/24');
  // ra on b1, b2 and rb on b3, b4: the same slot count, so the same slot map and class.
  for (const [svc, first] of [['ra', 0], ['rb', 2]] as const) {
    await ok('service', 'create', svc, '--network', 'n', '--port', '80');
    for (const i of [first, first + 1]) await ok('task', 'add', svc, '--ip', topo.backends[i]!.ip, '--name', `${svc}${i + 1}`);
  }
  const vipOf = async (svc: string): Promise<string> => (JSON.parse(await ok('--json', 'service', 'inspect', svc)) as { attachments: { vip: string }[] }).attachments[0]!.vip;
  const vips = [await vipOf('ra'), await vipOf('rb')];
  /** Waits until both VIPs dispatch to a chain of slot count `w` (and so have their slots). */
  const programmed = async (w: number): Promise<void> => {
    for (let i = 0; i < 50; i++) {
      const text = await inNs(topo.host, NFT, 'list', 'map', 'inet', 'vipdns', 'vips4');
      if (vips.every((v) => new RegExp(`${v.replaceAll('.', '\\.')} \\. tcp \\. 80 : goto c-v4-tcp-k${w}\\b`).test(text))) return;
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new Error(`the VIPs never dispatched to k${w}`);
  };
  /** `n` connections one at a time, alternating ra, rb, ra, …: backends reached, per VIP. */
  const alternate = async (n: number): Promise<Record<string, number>[]> => {
    const counts: Record<string, number>[] = vips.map(() => ({}));
    for (let i = 0; i < n; i++) {
      const r = await burst(topo.client.ns, 'tcp', vips[i % 2]!, 80, 1);
      t.is(r.errors, 0);
      for (const [b, k] of Object.entries(r.counts)) counts[i % 2]![b] = (counts[i % 2]![b] ?? 0) + k;
    }
    return counts;
  };

  // rr: each service's own counter, so each alternated service still alternates between its replicas
  // (with one counter for the class, ra took the even counts and rb the odd: 20 to one replica each).
  await programmed(2);
  t.deepEqual(await alternate(40), [{ b1: 10, b2: 10 }, { b3: 10, b4: 10 }], 'rr: 10/10 per service');

  // wrr 3:1 (4 slots, interleaved a a b a): with one counter ra would see only slots 0 and 2, half and half.
  await ok('task', 'update', 'ra1', '--weight', '3');
  await ok('task', 'update', 'rb3', '--weight', '3');
  for (const svc of ['ra', 'rb']) await ok('service', 'update', svc, '--lb', 'wrr');
  await programmed(4);
  t.deepEqual(await alternate(80), [{ b1: 30, b2: 10 }, { b3: 30, b4: 10 }], 'wrr: 30/10 per service');
});
