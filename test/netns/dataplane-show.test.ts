// `vipdns dataplane show` on the nftables dataplane: the backends it lists are the ones in the
// kernel's maps (read with nft), a slot deleted by hand is flagged as a difference from the plan,
// and a removed task shows as draining.
import test from 'ava';
import { resolveTool } from '../../src/balancer/drivers/exec.js';
import { inNs, netnsUnavailable } from '../helpers/netns.js';
import { burst, nftablesDaemon, startBackends, testTopology, VIP } from './common.js';

// The nft binary itself: node_modules/.bin has an unrelated `nft` ahead of it on npm's PATH.
const NFT = resolveTool('nft');
const why = await netnsUnavailable();
const rootTest = why ? test.skip : test.serial;
if (why) console.log(`dataplane show test skipped: ${why}`);

interface Show {
  driver: string;
  units: Array<{ kind: string; address: string; scheduler: string; kernel: { present: boolean; where?: string }; backends: Array<{ ip: string; port: number; state: string; health?: string; kernel?: { weight: number } }>; differences: string[] }>;
}

rootTest(`dataplane show lists what nft holds and flags what differs from the plan${why ? ` (skipped: ${why})` : ''}`, async (t) => {
  const { topo, procs } = await testTopology(t, 3);
  procs.push(...(await startBackends(topo)));
  const d = await nftablesDaemon(t, topo);
  const ok = (...a: string[]): Promise<string> => d.ok(...a);
  await ok('network', 'create', 'n', '--subnet', '10.0.9.0/24');
  await ok('service', 'create', 'web', '--network', 'n', '--port', '80', '--publish', '8080:80');
  await ok('service', 'create', 'other', '--network', 'n', '--port', '81');
  for (const b of topo.backends) await ok('task', 'add', 'web', '--ip', b.ip);
  const show = async (svc = 'web'): Promise<Show> => {
    const text = await ok('--json', 'dataplane', 'show', svc);
    try {
      return JSON.parse(text) as Show;
    } catch {
      throw new Error(`dataplane show --json printed: ${JSON.stringify(text)}`);
    }
  };
  let s: Show | undefined;
  for (let i = 0; i < 50; i++) {
    s = await show();
    const vipUnit = s.units.find((u) => u.kind === 'vip');
    // Settled: a sync in flight can have written the kernel before its plan is the applied one.
    if (s.units.length === 2 && vipUnit?.backends.length === 3 && s.units.every((u) => u.kernel.present && u.differences.length === 0 && u.backends.every((b) => b.kernel))) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  t.is(s!.driver, 'nftables');
  t.deepEqual(s!.units.map((u) => u.address).sort(), ['*:8080/tcp', `${VIP}:80/tcp`]);
  const vip = s!.units.find((u) => u.kind === 'vip')!;
  t.deepEqual(vip.differences, []);
  t.regex(vip.kernel.where ?? '', /goto c-v4-tcp-k3/);

  // The same backends as the kernel's map for this VIP.
  const table = JSON.parse(await inNs(topo.host, NFT, '-j', 'list', 'table', 'inet', 'vipdns')) as { nftables: Array<{ map?: { name: string; elem?: Array<[{ concat: unknown[] }, { concat: unknown[] }]> } }> };
  const elems = table.nftables.find((x) => x.map?.name === 't-v4-tcp-k3')!.map!.elem!;
  const fromNft = elems.filter(([k]) => k.concat[0] === VIP).map(([, v]) => `${String(v.concat[0])}:${String(v.concat[1])}`).sort();
  t.deepEqual(vip.backends.map((b) => `${b.ip}:${b.port}`).sort(), fromNft);
  t.deepEqual(vip.backends.map((b) => b.state), ['active', 'active', 'active']);
  const text = await ok('dataplane', 'show');
  t.regex(text, new RegExp(`VIP ${VIP.replaceAll('.', '\\.')}:80/tcp  web on n  rr  kernel: numgen round robin`));
  t.regex(text, /VIP 10\.0\.9\.\d+:81\/tcp  other on n/, 'all services without a name');

  // explain --port: the kernel path of a connection to the VIP the client is answered, naming the
  // backends that real connections from that client then reach.
  type Ex = { answer: { answers: Array<{ data: string }> }; kernel: Show['units'] };
  const ex = JSON.parse(await ok('--json', 'explain', 'web', '--from', topo.client.ip, '--port', '80')) as Ex;
  t.deepEqual(ex.answer.answers.map((a) => a.data), [VIP]);
  t.is(ex.kernel.length, 1);
  const reached = await burst(topo.client.ns, 'tcp', VIP, 80, 30);
  const byName = new Map(topo.backends.map((b, i) => [`b${i + 1}`, b.ip]));
  t.deepEqual(Object.keys(reached.counts).map((n) => byName.get(n)).sort(), ex.kernel[0]!.backends.filter((b) => b.kernel).map((b) => b.ip).sort());
  t.regex(await ok('explain', 'web', '--from', topo.client.ip, '--port', '80'), /kernel path:\nVIP 10\.0\.9\.2:80\/tcp  web on n  rr  kernel: numgen round robin/);

  // A slot deleted by hand: the kernel no longer has that backend for the VIP.
  const [k1] = elems.filter(([k]) => k.concat[0] === VIP && k.concat[3] === 1);
  const gone = `${String(k1![1].concat[0])}:${String(k1![1].concat[1])}`;
  await inNs(topo.host, NFT, 'delete', 'element', 'inet', 'vipdns', 't-v4-tcp-k3', `{ ${VIP} . tcp . 80 . 1 }`);
  s = await show();
  t.deepEqual(s.units.find((u) => u.kind === 'vip')!.differences, [`${gone} is planned but missing in the kernel`]);
  const flagged = JSON.parse(await ok('--json', 'explain', 'web', '--from', topo.client.ip, '--port', '80/tcp')) as Ex;
  t.deepEqual(flagged.kernel[0]!.differences, [`${gone} is planned but missing in the kernel`], 'explain --port flags it too');

  // A removed task drains: listed as draining, out of the kernel's map, and that is no difference.
  // The next sync's transaction fails on the missing slot; the retry re-reads the kernel and repairs it.
  const tasks = JSON.parse(await ok('--json', 'task', 'ls', 'web')) as Array<{ id: string; addresses: { n: string } }>;
  await ok('task', 'rm', tasks.find((x) => x.addresses.n === topo.backends[0]!.ip)!.id);
  for (let i = 0; i < 50; i++) {
    s = await show();
    const v = s.units.find((u) => u.kind === 'vip')!;
    if (v.backends.some((b) => b.state === 'draining') && v.differences.length === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const v = s!.units.find((u) => u.kind === 'vip')!;
  t.deepEqual(v.backends.filter((b) => b.state === 'draining').map((b) => b.ip), [topo.backends[0]!.ip]);
  t.deepEqual(v.differences, []);
  const none = await d.cli('dataplane', 'show', 'nope');
  t.not(none.code, 0);
  t.regex(none.stderr, /no service "nope"/);
});
