// A Docker host: iptables FORWARD policy DROP and Docker's chains. VIP traffic DNATed by the
// nftables dataplane to backends behind a bridge is forwarded by the host, so it must be accepted
// there: vipdns's own VIPDNS-FORWARD chain does it, and Docker's chains stay byte-for-byte.
import test from 'ava';
import { type DaemonHandle, removeDir, startDaemon } from '../helpers/daemon.js';
import { inNs, netnsUnavailable } from '../helpers/netns.js';
import { burst, startBackends, testTopology, VIP } from './common.js';

const why = await netnsUnavailable();
const rootTest = why ? test.skip : test.serial;
if (why) console.log(`FORWARD DROP traffic test skipped: ${why}`);

// What dockerd 20.10 writes into the filter table (docker0 is its bridge; ours is br0).
const DOCKER_RULES = [
  '-N DOCKER',
  '-N DOCKER-ISOLATION-STAGE-1',
  '-N DOCKER-ISOLATION-STAGE-2',
  '-N DOCKER-USER',
  '-A FORWARD -j DOCKER-USER',
  '-A FORWARD -j DOCKER-ISOLATION-STAGE-1',
  '-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
  '-A FORWARD -o docker0 -j DOCKER',
  '-A FORWARD -i docker0 ! -o docker0 -j ACCEPT',
  '-A FORWARD -i docker0 -o docker0 -j ACCEPT',
  '-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2',
  '-A DOCKER-ISOLATION-STAGE-1 -j RETURN',
  '-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP',
  '-A DOCKER-ISOLATION-STAGE-2 -j RETURN',
  '-A DOCKER-USER -j RETURN',
];

rootTest(`FORWARD policy DROP with Docker's chains: the VIP still balances; Docker's chains unchanged${why ? ` (skipped: ${why})` : ''}`, async (t) => {
  const { topo, procs } = await testTopology(t, 3);
  procs.push(...(await startBackends(topo)));
  const ipt = (...a: string[]) => inNs(topo.host, 'iptables', ...a);
  await ipt('-P', 'FORWARD', 'DROP');
  for (const r of DOCKER_RULES) await ipt(...r.split(' '));
  const docker = async (): Promise<string> => {
    const out: string[] = [];
    for (const c of ['DOCKER', 'DOCKER-USER', 'DOCKER-ISOLATION-STAGE-1', 'DOCKER-ISOLATION-STAGE-2']) out.push(await ipt('-S', c));
    out.push((await ipt('-S', 'FORWARD')).split('\n').filter((l) => !l.includes('VIPDNS-FORWARD')).join('\n'));
    return out.join('');
  };
  const before = await docker();
  t.regex(before, /-P FORWARD DROP/);

  const start = (dataDir?: string): Promise<DaemonHandle> =>
    startDaemon({ wrap: ['ip', 'netns', 'exec', topo.host], args: ['--dataplane', 'nftables'], ...(dataDir ? { dataDir } : {}) });
  let d = await start();
  const dataDir = d.dataDir;
  t.teardown(async () => {
    await d.stop();
    await d.cli('dataplane', 'cleanup');
    removeDir(dataDir);
  });
  await d.ok('network', 'create', 'n', '--subnet', '10.0.9.0/24');
  await d.ok('service', 'create', 'web', '--network', 'n', '--port', '80', '--publish', '8080:80');
  for (const b of topo.backends) await d.ok('task', 'add', 'web', '--ip', b.ip);
  const spread = async (host: string, port: number): Promise<Record<string, number>> => {
    for (let i = 0; i < 50; i++) {
      const r = await burst(topo.client.ns, 'tcp', host, port, 30);
      if (r.errors === 0 && Object.keys(r.counts).length === 3) return r.counts;
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new Error(`${host}:${port}: traffic never spread over 3 backends under FORWARD DROP`);
  };
  // Settled (every backend reached), then exact round robin.
  await spread(VIP, 80);
  await spread(topo.hostIp, 8080);
  t.deepEqual((await burst(topo.client.ns, 'tcp', VIP, 80, 30)).counts, { b1: 10, b2: 10, b3: 10 });
  t.deepEqual((await burst(topo.client.ns, 'tcp', topo.hostIp, 8080, 30)).counts, { b1: 10, b2: 10, b3: 10 }, 'published port too');
  t.regex(await ipt('-S', 'FORWARD'), /^-A FORWARD -j VIPDNS-FORWARD$/m);
  t.is((await ipt('-S', 'FORWARD')).split('\n').find((l) => l.startsWith('-A')), '-A FORWARD -j VIPDNS-FORWARD', 'our jump comes first');
  t.is(await docker(), before, "Docker's chains and FORWARD's own rules are byte-for-byte unchanged");

  // The accept is what lets traffic through: deleted by hand, connections fail; a restart repairs it.
  await d.stop();
  await ipt('-D', 'FORWARD', '-j', 'VIPDNS-FORWARD');
  const blocked = await burst(topo.client.ns, 'tcp', VIP, 80, 6);
  t.is(blocked.errors, 6, `dropped without our accept: ${JSON.stringify(blocked)}`);
  d = await start(dataDir);
  await spread(VIP, 80); // repaired at start
  await d.stop();
  const clean = await d.cli('dataplane', 'cleanup');
  t.is(clean.code, 0, clean.stderr);
  t.notRegex(await ipt('-S'), /VIPDNS/, 'cleanup removes our chain and jump');
  t.is(await docker(), before);
});
