// The Docker source against the real Docker engine (Debian's dockerd 20.10, docker.io), confined to a
// network namespace of the test's own (test/docker/dockerd.ts), with the real daemon on the nftables
// dataplane in that namespace:
// - a one-node swarm: for every service (vip and dnsrr), tasks.<svc>, network aliases, task and container
//   names, vipdns answers a container exactly what Docker's own 127.0.0.11 answers it; connections from a
//   container to a swarm VIP reach the tasks through vipdns's dataplane in the container (this kernel has
//   no IPVS, so the engine's own balancing fails); a removed service leaves DNS. The engine is followed
//   over TCP with TLS client certificates.
// - plain Docker: labelled containers on a user network; a client container with --dns pointing at
//   vipdns resolves the service, its connections to the VIP spread; docker stop takes a replica out.
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { type DaemonHandle, removeDir, startDaemon } from '../helpers/daemon.js';
import { inNs } from '../helpers/netns.js';
import { type Dockerd, IMAGE, dockerdAvailable, inContainer, startDockerd } from './dockerd.js';

const avail = dockerdAvailable();
const maybe = avail.ok ? test.serial : test.skip;
if (!avail.ok) console.log(`# dockerd tests skipped: ${avail.reason}`);

const CLIENT = fileURLToPath(new URL('../netns/fixtures/client.js', import.meta.url));
/** Each replica serves its own hostname (its short container ID), so a client can tell them apart. */
const SERVE = ['sh', '-c', 'hostname > /www/index.html && exec httpd -f -p 80 -h /www'];

async function until<T>(what: string, f: () => Promise<T | undefined | false>, ms = 30_000): Promise<{ value: T; ms: number }> {
  const start = Date.now();
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v) return { value: v, ms: Date.now() - start };
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The A (or AAAA) records a resolver gives, sorted; [] for NXDOMAIN or none. */
async function answers(pid: number, server: string, port: number, name: string, type: 'A' | 'AAAA' = 'A'): Promise<string[]> {
  const out = await inContainer(pid, 'dig', ['+short', '+time=2', '+tries=2', `@${server}`, '-p', String(port), name, type]);
  return out.split('\n').map((l) => l.trim()).filter((l) => (type === 'A' ? /^\d+\.\d+\.\d+\.\d+$/ : /^[0-9a-f:]+:[0-9a-f:]*$/).test(l)).sort();
}

async function httpBurst(pid: number, host: string, n: number): Promise<{ counts: Record<string, number>; errors: number }> {
  return JSON.parse(await inContainer(pid, process.execPath, [CLIENT, 'burst', 'http', host, '80', String(n)])) as { counts: Record<string, number>; errors: number };
}

async function withEngine(t: import('ava').ExecutionContext, opts: { swarm?: boolean; tls?: boolean }): Promise<Dockerd> {
  const dk = await startDockerd(opts);
  t.teardown(() => dk.stop());
  return dk;
}

async function vipdnsIn(t: import('ava').ExecutionContext, dk: Dockerd, dnsListen: string, docker: string[]): Promise<DaemonHandle> {
  const d = await startDaemon({ wrap: ['ip', 'netns', 'exec', dk.ns], dnsListen, args: ['--dataplane', 'nftables', '--docker', ...docker] });
  t.teardown(async () => {
    if (!t.passed) console.log(`# vipdns log:\n${d.logs.slice(-40).join('\n')}\n# dockerd log:\n${dk.log().slice(-3000)}`);
    await d.stop();
    await d.cli('dataplane', 'cleanup');
    removeDir(d.dataDir);
  });
  return d;
}

maybe('real swarm: vipdns answers a container what Docker answers it; overlay VIP traffic flows through vipdns; a removed service leaves', async (t) => {
  const dk = await withEngine(t, { swarm: true, tls: true });
  await dk.docker('network', 'create', '-d', 'overlay', '--attachable', '--subnet', '10.0.1.0/24', 'ov');
  await dk.docker('service', 'create', '-d', '--name', 'sw', '--replicas', '2', '--network', 'name=ov,alias=foo', '--label', 'vipdns.ports=80', IMAGE, ...SERVE);
  await dk.docker('service', 'create', '-d', '--name', 'swv', '--endpoint-mode', 'dnsrr', '--replicas', '2', '--network', 'ov', IMAGE, ...SERVE);
  await dk.docker('run', '-d', '--name', 'probe', '--network', 'ov', IMAGE, 'sleep', '600');
  await until('every replica running', async () => {
    const ls = await dk.docker('service', 'ls', '--format', '{{.Name}} {{.Replicas}}');
    return /^sw 2\/2$/m.test(ls) && /^swv 2\/2$/m.test(ls);
  });
  const gw = (await dk.docker('network', 'inspect', 'docker_gwbridge', '-f', '{{(index .IPAM.Config 0).Gateway}}')).trim();
  // The engine over TCP with TLS client certificates (inside the namespace).
  const d = await vipdnsIn(t, dk, '0.0.0.0:0', [dk.tcp!.url, '--docker-tls-dir', dk.tcp!.tlsDir]);
  const probe = await dk.pid('probe');
  await until('vipdns answering sw to the probe container', async () => (await answers(probe, gw, d.dnsPort, 'sw')).length === 1);

  const tasks = (await dk.docker('ps', '--filter', 'label=com.docker.swarm.service.name', '--format', '{{.Names}}')).split('\n').filter(Boolean).sort();
  t.is(tasks.length, 4);
  const names = ['sw', 'tasks.sw', 'swv', 'tasks.swv', 'foo', 'tasks.foo', 'probe', ...tasks];
  const task = await dk.pid(tasks.find((n) => n.startsWith('sw.'))!);
  for (const [who, pid] of [['probe', probe], ['a task of sw', task]] as const) {
    for (const name of names) {
      const docker = await answers(pid, '127.0.0.11', 53, name);
      t.true(docker.length > 0, `Docker answers ${name}`);
      t.deepEqual(await answers(pid, gw, d.dnsPort, name), docker, `${name} asked from ${who}: vipdns's answer set is Docker's`);
    }
  }

  // sw's VIP from inside the probe container: Docker's own balancing cannot work here (no IPVS).
  const [vip] = await answers(probe, '127.0.0.11', 53, 'sw');
  t.regex(dk.log(), /Native loadbalancing will not work/);
  const burst = await httpBurst(probe, vip!, 40);
  t.is(burst.errors, 0, JSON.stringify(burst));
  const hosts = (await dk.docker('ps', '--filter', 'label=com.docker.swarm.service.name=sw', '--format', '{{.ID}}')).split('\n').filter(Boolean).sort();
  t.deepEqual(Object.keys(burst.counts).sort(), hosts, `both replicas serve the VIP: ${JSON.stringify(burst.counts)}`);
  for (const n of Object.values(burst.counts)) t.true(n >= 10, JSON.stringify(burst.counts));

  // docker service rm: the names leave vipdns's answers.
  await dk.docker('service', 'rm', 'swv');
  const gone = await until('swv gone from vipdns', async () => (await answers(probe, gw, d.dnsPort, 'swv')).length === 0 && (await answers(probe, gw, d.dnsPort, 'tasks.swv')).length === 0);
  t.log(`swv left vipdns's answers ${gone.ms} ms after docker service rm returned`);
  t.deepEqual(await answers(probe, gw, d.dnsPort, 'sw'), [vip!], 'the other service stays');
});

maybe('real Docker without swarm: a client with --dns vipdns resolves the service; its VIP spreads over the replicas; docker stop takes one out', async (t) => {
  const dk = await withEngine(t, {});
  await dk.docker('network', 'create', '--subnet', '10.0.9.0/24', '--ip-range', '10.0.9.0/25', '--gateway', '10.0.9.1', 'front');
  for (const i of [1, 2, 3]) await dk.docker('run', '-d', '--name', `web-${i}`, '--network', 'front', '--label', 'vipdns.service=web', '--label', 'vipdns.ports=http=80', IMAGE, ...SERVE);
  const d = await vipdnsIn(t, dk, '0.0.0.0:53', [`unix://${dk.socket}`]);
  await dk.docker('run', '-d', '--name', 'client', '--network', 'front', '--dns', '10.0.9.1', IMAGE, 'sleep', '600');
  const client = await dk.pid('client');
  // Docker's resolver in the container answers its own names and forwards the rest to --dns: vipdns.
  const { value: vip } = await until('web resolved in the client container', async () => (await answers(client, '127.0.0.11', 53, 'web'))[0]);
  t.is(vip, '10.0.9.254', 'the VIP, from the top of the subnet (Docker allocates from the bottom of its ip-range)');
  const ids = async (): Promise<string[]> => (await dk.docker('ps', '--filter', 'label=vipdns.service=web', '--format', '{{.ID}}')).split('\n').filter(Boolean).sort();
  t.is((await answers(client, '127.0.0.11', 53, 'tasks.web')).length, 3);

  const burst = await httpBurst(client, vip, 60);
  t.is(burst.errors, 0, JSON.stringify(burst));
  t.deepEqual(Object.keys(burst.counts).sort(), await ids(), JSON.stringify(burst.counts));
  for (const n of Object.values(burst.counts)) t.true(n >= 12 && n <= 28, JSON.stringify(burst.counts));

  // docker stop web-1: out of the answers, and new connections go to the other two only.
  await dk.docker('stop', '-t', '0', 'web-1');
  const out = await until('web-1 out of tasks.web', async () => (await answers(client, '10.0.9.1', d.dnsPort, 'tasks.web')).length === 2);
  t.log(`a stopped replica left vipdns's answers ${out.ms} ms after docker stop returned`);
  const after = await httpBurst(client, vip, 40);
  t.is(after.errors, 0, JSON.stringify(after));
  t.deepEqual(Object.keys(after.counts).sort(), await ids(), 'only the running replicas');
  t.is((await ids()).length, 2);
});

maybe('real Docker, dual stack: a network with an IPv4 and an IPv6 subnet maps to one dual-stack network; A and AAAA; both VIPs spread', async (t) => {
  const dk = await withEngine(t, {});
  // VIP traffic over v6 is DNATed in this (the engine's) namespace and leaves through the same bridge.
  await inNs(dk.ns, 'sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1');
  await dk.docker('network', 'create', '--ipv6', '--subnet', '10.0.9.0/24', '--ip-range', '10.0.9.0/25', '--gateway', '10.0.9.1', '--subnet', 'fd00:9::/64', '--ip-range', 'fd00:9::/80', '--gateway', 'fd00:9::1', 'dual');
  for (const i of [1, 2]) await dk.docker('run', '-d', '--name', `web-${i}`, '--network', 'dual', '--label', 'vipdns.service=web', '--label', 'vipdns.ports=http=80', IMAGE, ...SERVE);
  const d = await vipdnsIn(t, dk, '0.0.0.0:53', [`unix://${dk.socket}`]);
  await dk.docker('run', '-d', '--name', 'client', '--network', 'dual', IMAGE, 'sleep', '600');
  const client = await dk.pid('client');
  const { value: vip6 } = await until('web AAAA from vipdns', async () => (await answers(client, '10.0.9.1', d.dnsPort, 'web', 'AAAA'))[0]);
  t.regex(vip6, /^fd00:9::/);
  t.deepEqual(await answers(client, '10.0.9.1', d.dnsPort, 'web', 'A'), ['10.0.9.254'], 'the IPv4 VIP, from the top');
  const inspect = JSON.parse(await dk.docker('inspect', 'web-1', 'web-2')) as Array<{ NetworkSettings: { Networks: { dual: { IPAddress: string; GlobalIPv6Address: string } } } }>;
  t.deepEqual(await answers(client, '10.0.9.1', d.dnsPort, 'tasks.web', 'AAAA'), inspect.map((c) => c.NetworkSettings.Networks.dual.GlobalIPv6Address).sort(), "the tasks' IPv6 addresses as Docker gave them");
  const ids = (await dk.docker('ps', '--filter', 'label=vipdns.service=web', '--format', '{{.ID}}')).split('\n').filter(Boolean).sort();
  for (const vip of ['10.0.9.254', vip6]) {
    const { value: b } = await until(`HTTP over ${vip}`, async () => {
      const r = await httpBurst(client, vip, 20);
      return r.errors === 0 && r;
    });
    t.deepEqual(Object.keys(b.counts).sort(), ids, `${vip}: ${JSON.stringify(b.counts)}`);
  }
});
