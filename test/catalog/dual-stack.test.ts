// Dual-stack networks in the catalog: one IPv4 and one IPv6 subnet, a VIP and a task/container
// address from each, each pool counted and freed on its own; DNS answers A and AAAA from them, a client
// in either subnet sees the network, and the planner makes one unit per VIP.
import test from 'ava';
import { plan } from '../../src/balancer/plan.js';
import { Catalog } from '../../src/catalog/catalog.js';
import { LocalStore } from '../../src/catalog/store/local.js';
import { AnswerIndex, DEFAULT_TTL } from '../../src/dns/answers.js';
import { parseIp } from '../../src/net/ip.js';
import { removeDir, tempDir } from '../helpers/daemon.js';

async function open(t: { teardown(f: () => void): void }): Promise<Catalog> {
  const dir = tempDir();
  t.teardown(() => removeDir(dir));
  return Catalog.open(await LocalStore.open(dir));
}

const index = (c: Catalog): AnswerIndex => {
  const i = new AnswerIndex({ suffix: 'vipdns.internal', ttl: DEFAULT_TTL, loopbackSeesAll: false, othersSeeAll: false });
  i.rebuild(c.state);
  return i;
};
const ask = (i: AnswerIndex, name: string, type: string, from: string): string[] => {
  const r = i.resolve(name, type, parseIp(from));
  return r.kind === 'answer' ? r.records.map((x) => (typeof x.data === 'string' ? x.data : JSON.stringify(x.data))).sort() : [r.kind];
};

test('network create: one subnet per family in either order, gateways placed by family; bad combinations refused, nothing changed', async (t) => {
  const c = await open(t);
  const n = await c.createNetwork({ name: 'dual', subnet: ['fd00:9::/64', '10.0.9.0/24'], gateway: ['fd00:9::fe'] });
  t.like(n, { subnet: '10.0.9.0/24', gateway: '10.0.9.1', subnet6: 'fd00:9::/64', gateway6: 'fd00:9::fe' });
  const before = JSON.stringify(c.state.networks);
  await t.throwsAsync(c.createNetwork({ name: 'two4', subnet: ['10.1.0.0/24', '10.2.0.0/24'] }), { code: 'BAD_CIDR', message: /two IPv4 subnets/ } as never);
  await t.throwsAsync(c.createNetwork({ name: 'three', subnet: ['10.1.0.0/24', 'fd01::/64', 'fd02::/64'] }), { code: 'BAD_CIDR', message: /has 3 subnets/ } as never);
  await t.throwsAsync(c.createNetwork({ name: 'over6', subnet: ['10.3.0.0/24', 'fd00:9::/48'] }), { code: 'SUBNET_OVERLAP', message: /overlaps network "dual" \(fd00:9::\/64\)/ } as never);
  await t.throwsAsync(c.createNetwork({ name: 'gw', subnet: ['10.3.0.0/24', 'fd03::/64'], gateway: ['10.3.0.1', '10.3.0.2'] }), { code: 'BAD_REQUEST', message: /two gateways given for subnet 10.3.0.0\/24/ } as never);
  await t.throwsAsync(c.createNetwork({ name: 'gw', subnet: ['10.3.0.0/24', 'fd03::/64'], gateway: 'fd04::1' }), { code: 'IP_OUTSIDE_SUBNET', message: /outside subnet 10.3.0.0\/24 and fd03::\/64/ } as never);
  await t.throwsAsync(c.createNetwork({ name: 'bad', subnet: ['10.3.0.0/24', 'fd03::/129'] }), { code: 'BAD_CIDR' } as never);
  t.is(JSON.stringify(c.state.networks), before);
  // A single-family network keeps its one subnet in `subnet`, IPv6 included.
  t.like(await c.createNetwork({ name: 'six', subnet: 'fd05::/64' }), { subnet: 'fd05::/64', gateway: 'fd05::1' });
  t.is(c.state.networks.six!.subnet6, undefined);
});

test('a VIP and an address per family; requests placed by family; pools counted apart and freed', async (t) => {
  const c = await open(t);
  // A /30 holds 1 address beside the gateway: the IPv4 pool runs out while the IPv6 one has room.
  await c.createNetwork({ name: 'dual', subnet: ['10.0.9.0/29', 'fd00:9::/120'], attachable: true });
  const web = await c.createService({ name: 'web', networks: ['dual'], ports: [{ protocol: 'tcp', target: 80 }] });
  t.deepEqual(web.attachments, [{ network: 'dual', vip: '10.0.9.2', vip6: 'fd00:9::2' }]);
  const fixed = await c.createService({ name: 'fixed', networks: [{ network: 'dual', vip: 'fd00:9::99', vip6: '10.0.9.6' }] });
  t.deepEqual(fixed.attachments, [{ network: 'dual', vip: '10.0.9.6', vip6: 'fd00:9::99' }], 'each address goes to the subnet of its family');
  const before = JSON.stringify(c.state);
  await t.throwsAsync(c.createService({ name: 'twice', networks: [{ network: 'dual', vip: 'fd00:9::50', vip6: 'fd00:9::51' }] }), { code: 'BAD_REQUEST', message: /two VIPs given for the IPv6 subnet of network "dual"/ } as never);
  await t.throwsAsync(c.createService({ name: 'taken', networks: [{ network: 'dual', vip6: 'fd00:9::2' }] }), { code: 'IP_IN_USE' } as never);
  await t.throwsAsync(c.createService({ name: 'gw', networks: [{ network: 'dual', vip6: 'fd00:9::1' }] }), { code: 'IP_RESERVED', message: /gateway/ } as never);
  t.is(JSON.stringify(c.state), before);

  const t1 = await c.addTask({ service: 'web', ips: ['fd00:9::20'] });
  t.deepEqual(t1.addresses, { dual: '10.0.9.3' });
  t.deepEqual(t1.addresses6, { dual: 'fd00:9::20' });
  const box = await c.addContainer({ name: 'box', networks: [{ network: 'dual', ip6: 'fd00:9::30' }] });
  t.deepEqual([box.addresses, box.addresses6], [{ dual: '10.0.9.4' }, { dual: 'fd00:9::30' }]);
  await c.addTask({ service: 'web' }); // 10.0.9.5: the last IPv4 address
  await t.throwsAsync(c.addTask({ service: 'web' }), { code: 'SUBNET_EXHAUSTED', message: /network "dual" \(10.0.9.0\/29\) is exhausted/ } as never);
  // Freed addresses of both families come back (next-fit: after the rest of the pool).
  await c.removeTask(t1.id);
  const t3 = await c.addTask({ service: 'web', ips: ['fd00:9::20'] });
  t.deepEqual([t3.addresses.dual, t3.addresses6?.dual], ['10.0.9.3', 'fd00:9::20']);
});

test('service update: dnsrr→vip takes a VIP per family, network add/rm gives and takes both addresses of every task', async (t) => {
  const c = await open(t);
  await c.createNetwork({ name: 'v4', subnet: '10.0.8.0/24' });
  await c.createNetwork({ name: 'dual', subnet: ['10.0.9.0/24', 'fd00:9::/64'] });
  await c.createService({ name: 'db', networks: ['v4'], endpointMode: 'dnsrr' });
  const t1 = await c.addTask({ service: 'db' });
  t.is(t1.addresses6, undefined);
  const up = await c.updateService('db', { networkAdd: ['dual'], endpointMode: 'vip' });
  t.deepEqual(up.attachments.map((a) => [a.network, a.vip, a.vip6]), [['v4', '10.0.8.3', undefined], ['dual', '10.0.9.2', 'fd00:9::2']]);
  const task = c.state.tasks[t1.id]!;
  t.deepEqual([task.addresses, task.addresses6], [{ v4: '10.0.8.2', dual: '10.0.9.3' }, { dual: 'fd00:9::3' }]);
  await c.updateService('db', { networkRm: ['dual'] });
  const after = c.state.tasks[t1.id]!;
  t.deepEqual(after.addresses, { v4: '10.0.8.2' });
  t.false('addresses6' in after, 'no empty addresses6 left behind');
  // A client address inside an IPv6 subnet is an address on that network, not a client address.
  await t.throwsAsync(c.addTask({ service: 'db', clientAddresses: ['fd00:9::77'] }), { message: /inside network "dual"/ } as never);
});

test('DNS: A and AAAA for VIPs, tasks and containers; PTR for both; a client in either subnet sees the network; SRV glue of both', async (t) => {
  const c = await open(t);
  await c.createNetwork({ name: 'dual', subnet: ['10.0.9.0/24', 'fd00:9::/64'], attachable: true });
  await c.createNetwork({ name: 'other', subnet: ['10.0.7.0/24', 'fd00:7::/64'], attachable: true });
  await c.createService({ name: 'web', networks: ['dual'], ports: [{ protocol: 'tcp', target: 80, name: 'http' }] });
  await c.createService({ name: 'db', networks: ['dual'], endpointMode: 'dnsrr' });
  await c.addTask({ service: 'web', name: 'web.1', ips: ['10.0.9.11', 'fd00:9::11'] });
  await c.addTask({ service: 'db', name: 'db.1', ips: ['10.0.9.21', 'fd00:9::21'] });
  await c.addContainer({ name: 'probe', networks: [{ network: 'dual', ip: '10.0.9.100', ip6: 'fd00:9::100' }] });
  // On two networks: asking from its IPv6 address on one, it sees both.
  await c.addContainer({ name: 'multi', networks: [{ network: 'other', ip: '10.0.7.5', ip6: 'fd00:7::5' }, 'dual'] });
  const i = index(c);
  const from6 = 'fd00:9::100';
  t.deepEqual(ask(i, 'web', 'A', from6), ['10.0.9.2']);
  t.deepEqual(ask(i, 'web', 'AAAA', from6), ['fd00:9::2']);
  t.deepEqual(ask(i, 'web', 'AAAA', '10.0.9.100'), ['fd00:9::2'], 'the family of the question, not of the client');
  t.deepEqual(ask(i, 'tasks.web', 'AAAA', from6), ['fd00:9::11']);
  t.deepEqual(ask(i, 'db', 'AAAA', from6), ['fd00:9::21']);
  t.deepEqual(ask(i, 'db', 'A', from6), ['10.0.9.21']);
  t.deepEqual(ask(i, 'web.1', 'AAAA', from6), ['fd00:9::11']);
  t.deepEqual(ask(i, 'probe', 'AAAA', from6), ['fd00:9::100']);
  t.deepEqual(ask(i, '2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.9.0.0.0.0.0.d.f.ip6.arpa', 'PTR', from6), ['web.dual.vipdns.internal']);
  t.deepEqual(ask(i, 'web', 'AAAA', 'fd00:7::9'), ['nxdomain'], 'a client only on "other" does not see "dual"');
  t.deepEqual(ask(i, 'web', 'AAAA', 'fd00:7::5'), ['fd00:9::2'], 'multi, from its IPv6 address on "other", sees "dual" too');
  const srv = i.resolve('_http._tcp.web', 'SRV', parseIp(from6));
  t.is(srv.kind, 'answer');
  if (srv.kind === 'answer') t.deepEqual(srv.additionals.map((r) => `${r.type} ${String(r.data)}`).sort(), ['A 10.0.9.2', 'AAAA fd00:9::2']);
  // The incremental index equals a rebuilt one after more changes.
  await c.addTask({ service: 'web', ips: ['fd00:9::12'] });
  const j = index(c);
  t.deepEqual(ask(j, 'tasks.web', 'AAAA', from6), ['fd00:9::11', 'fd00:9::12']);
});

test('plan: one unit per VIP of a dual-stack attachment, each over the tasks\' addresses of its family; published ports over both', async (t) => {
  const c = await open(t);
  await c.createNetwork({ name: 'dual', subnet: ['10.0.9.0/24', 'fd00:9::/64'] });
  await c.createService({ name: 'web', networks: ['dual'], ports: [{ protocol: 'tcp', target: 80, published: 8080 }] });
  await c.addTask({ service: 'web', ips: ['10.0.9.11', 'fd00:9::11'] });
  await c.addTask({ service: 'web', ips: ['10.0.9.12', 'fd00:9::12'] });
  const p = plan(c.state);
  t.deepEqual(
    p.services.map((s) => [s.key, s.vip, s.family, s.backends.map((b) => b.ip)]),
    [
      ['dual/web/tcp/80', '10.0.9.2', 4, ['10.0.9.11', '10.0.9.12']],
      ['dual/web/tcp/80/6', 'fd00:9::2', 6, ['fd00:9::11', 'fd00:9::12']],
    ],
  );
  t.deepEqual(p.published[0]!.backends.map((b) => b.ip), ['10.0.9.11', '10.0.9.12', 'fd00:9::11', 'fd00:9::12']);
});
