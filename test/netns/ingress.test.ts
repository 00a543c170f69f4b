// The ingress network, on the nftables dataplane with real connections: a published port reaches
// the tasks on their ingress addresses (the VIP on the service's other network still reaches them on
// that one), nothing on ingress is answered in DNS, and the ingress network cannot be removed while
// a port is published, then is re-created with another subnet.
import test from 'ava';
import { inNs, netnsUnavailable, sh, startIn } from '../helpers/netns.js';
import { burst, fixture, nftablesDaemon, testTopology } from './common.js';

const why = await netnsUnavailable();
const rootTest = why ? test.serial.skip : test.serial;
if (why) console.log(`ingress traffic test skipped: ${why}`);

rootTest(`ingress: published port reachable through it, no names on it, removal refused while used${why ? ` (skipped: ${why})` : ''}`, async (t) => {
  const { topo, procs } = await testTopology(t, 2);
  // The ingress subnet on the same bridge: each backend has an address on both networks.
  await sh('ip', ['-n', topo.host, 'addr', 'add', '10.255.0.1/24', 'dev', 'br0']);
  const ingressIp = (i: number): string => `10.255.0.${11 + i}`;
  const edgeIp = (i: number): string => `10.255.0.${21 + i}`; // a second task on the same container
  for (const [i, b] of topo.backends.entries()) {
    await sh('ip', ['-n', b.ns, 'addr', 'add', `${ingressIp(i)}/24`, 'dev', 'eth0']);
    await sh('ip', ['-n', b.ns, 'addr', 'add', `${edgeIp(i)}/24`, 'dev', 'eth0']);
    procs.push(await startIn(b.ns, fixture('echo-server'), [`b${i + 1}@{local}`, '80']));
  }
  const d = await nftablesDaemon(t, topo);
  const ok = (...a: string[]): Promise<string> => d.ok(...a);
  await ok('network', 'create', 'front', '--subnet', '10.0.9.0/24');
  await ok('network', 'create', 'ingress', '--ingress', '--subnet', '10.255.0.0/24');
  t.regex(await ok('network', 'ls'), /ingress\s+10\.255\.0\.0\/24\s+10\.255\.0\.1\s+false\s+true/);
  const second = await d.cli('network', 'create', 'ingress2', '--ingress', '--subnet', '10.254.0.0/24');
  t.not(second.code, 0);
  t.regex(second.stderr, /"ingress" is already the ingress network; there is at most one/);

  await ok('service', 'create', 'web', '--network', 'front', '--network', 'ingress', '--publish', '8080:80', '--port', 'http=80');
  await ok('service', 'create', 'edge', '--network', 'ingress', '--publish', '8081:80');
  for (const [i, b] of topo.backends.entries()) {
    await ok('task', 'add', 'web', '--ip', b.ip, '--ip', ingressIp(i));
    await ok('task', 'add', 'edge', '--ip', edgeIp(i), '--name', `edge-${i + 1}`);
  }
  const web = JSON.parse(await ok('--json', 'service', 'inspect', 'web')) as { attachments: { network: string; vip?: string }[] };
  const vip = web.attachments.find((a) => a.network === 'front')!.vip!;
  t.is(web.attachments.find((a) => a.network === 'ingress')!.vip, undefined, 'no VIP on ingress');

  const spread = async (host: string, port: number, want: string[]): Promise<void> => {
    let last: unknown;
    for (let i = 0; i < 50; i++) {
      const r = await burst(topo.client.ns, 'tcp', host, port, 20);
      last = r;
      if (r.errors === 0 && Object.keys(r.counts).sort().join() === want.join()) return;
      await new Promise((res) => setTimeout(res, 100));
    }
    t.fail(`${host}:${port} never reached exactly ${want.join(', ')}: last ${JSON.stringify(last)}`);
  };
  // Published ports enter through ingress: the backends see their ingress address as the destination.
  await spread(topo.hostIp, 8080, ['b1@10.255.0.11', 'b2@10.255.0.12']);
  await spread(topo.hostIp, 8081, ['b1@10.255.0.21', 'b2@10.255.0.22']);
  // The VIP lives on front, and reaches the tasks there.
  await spread(vip, 80, ['b1@10.0.9.11', 'b2@10.0.9.12']);

  const dig = async (name: string, type = 'A'): Promise<string> => (await inNs(topo.host, 'dig', '@127.0.0.1', '-p', String(d.dnsPort), '+time=2', '+tries=1', name, type));
  t.regex(await dig('edge'), /status: NXDOMAIN/, 'a service on ingress only has no name');
  t.regex(await dig('tasks.edge'), /status: NXDOMAIN/);
  t.regex(await dig('edge-1'), /status: NXDOMAIN/, 'nor its tasks');
  t.regex(await dig('web.ingress'), /status: NXDOMAIN/);
  t.regex(await dig('web'), new RegExp(`\\s${vip.replace(/\./g, '\\.')}\\n`), 'web answers its VIP on front');
  const explained = JSON.parse(await ok('--json', 'explain', 'edge', '--from', '10.0.9.100')) as { notes: string[] };
  t.true(explained.notes.some((n) => /attached to the ingress network only/.test(n)), JSON.stringify(explained.notes));

  // Removal refused while any service publishes a port; nothing changes.
  const rm = await d.cli('network', 'rm', 'ingress');
  t.not(rm.code, 0);
  t.regex(rm.stderr, /network "ingress" is in use by service (web, service edge|edge, service web); remove or detach them first/);
  await ok('service', 'rm', 'edge');
  await ok('service', 'update', 'web', '--network-rm', 'ingress');
  const rm2 = await d.cli('network', 'rm', 'ingress');
  t.regex(rm2.stderr, /"ingress" is the ingress network and service "web" publishes a port/);
  t.is(rm2.stderr.trim().split('\n').length, 1);
  // Off ingress, the published port reaches the tasks on front.
  await spread(topo.hostIp, 8080, ['b1@10.0.9.11', 'b2@10.0.9.12']);
  await ok('service', 'update', 'web', '--publish-rm', '8080');
  t.deepEqual((JSON.parse(await ok('--json', 'service', 'inspect', 'web')) as { ports: unknown[] }).ports, [{ name: 'http', protocol: 'tcp', target: 80 }], 'the named port stays, unpublished');
  await ok('network', 'rm', 'ingress');
  await ok('network', 'create', 'ingress', '--ingress', '--subnet', '10.254.0.0/24');
  t.regex(await ok('network', 'inspect', 'ingress'), /10\.254\.0\.0\/24/);
});
