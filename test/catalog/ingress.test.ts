import test from 'ava';
import { plan } from '../../src/balancer/plan.js';
import { Catalog } from '../../src/catalog/catalog.js';
import { LocalStore } from '../../src/catalog/store/local.js';
import { AnswerIndex, DEFAULT_TTL } from '../../src/dns/answers.js';
import { parseIp } from '../../src/net/ip.js';
import { removeDir, tempDir } from '../helpers/daemon.js';

async function open(): Promise<{ c: Catalog; dir: string }> {
  const dir = tempDir();
  return { c: await Catalog.open(await LocalStore.open(dir)), dir };
}

const index = (c: Catalog): AnswerIndex => {
  const i = new AnswerIndex({ suffix: 'vipdns.internal', ttl: DEFAULT_TTL, loopbackSeesAll: true, othersSeeAll: false });
  i.rebuild(c.state);
  return i;
};
const data = (r: ReturnType<AnswerIndex['resolve']>): string[] => (r.kind === 'answer' ? r.records.map((x) => String(x.data)).sort() : [r.kind]);

test('at most one ingress network; it is never attachable, and services on it get no VIP', async (t) => {
  const { c, dir } = await open();
  t.teardown(() => removeDir(dir));
  await t.throwsAsync(c.createNetwork({ name: 'ing', subnet: '10.255.0.0/16', ingress: true, attachable: true }), { code: 'BAD_REQUEST', message: /cannot be attachable/ } as never);
  const ing = await c.createNetwork({ name: 'ing', subnet: '10.255.0.0/16', ingress: true });
  t.true(ing.ingress);
  const before = JSON.stringify(c.state);
  await t.throwsAsync(c.createNetwork({ name: 'ing2', subnet: '10.254.0.0/16', ingress: true }), { code: 'CONFLICT', message: /"ing" is already the ingress network/ } as never);
  await t.throwsAsync(c.addContainer({ name: 'box', networks: ['ing'] }), { code: 'NETWORK_NOT_ATTACHABLE' } as never);
  await c.createNetwork({ name: 'front', subnet: '10.0.9.0/24' });
  await t.throwsAsync(c.createService({ name: 'bad', networks: [{ network: 'ing', vip: '10.255.0.9' }] }), { code: 'BAD_REQUEST', message: /no VIP on it/ } as never);
  const web = await c.createService({ name: 'web', networks: ['ing', 'front'], ports: [{ protocol: 'tcp', target: 80, published: 8080 }] });
  t.deepEqual(web.attachments, [{ network: 'ing' }, { network: 'front', vip: '10.0.9.2' }]);
  const task = await c.addTask({ service: 'web', ips: ['10.255.0.5'] });
  t.is(task.addresses.ing, '10.255.0.5', 'tasks get their address on ingress');
  // dnsrr → vip: the front attachment gets a VIP back, ingress still none.
  await c.createService({ name: 'mix', networks: ['ing', 'front'], endpointMode: 'dnsrr' });
  const again = await c.updateService('mix', { endpointMode: 'vip' });
  t.is(again.attachments.find((a) => a.network === 'ing')!.vip, undefined);
  t.truthy(again.attachments.find((a) => a.network === 'front')!.vip);
  t.not(before, JSON.stringify(c.state));
});

test('the ingress network cannot be removed while any service publishes a port, and is re-created with another subnet when none does', async (t) => {
  const { c, dir } = await open();
  t.teardown(() => removeDir(dir));
  await c.createNetwork({ name: 'ingress', subnet: '10.255.0.0/16', ingress: true });
  await c.createNetwork({ name: 'front', subnet: '10.0.9.0/24' });
  // Not even attached to ingress: a published port still depends on it (as in Docker).
  await c.createService({ name: 'web', networks: ['front'], ports: [{ protocol: 'tcp', target: 80, published: 8080 }] });
  const before = JSON.stringify(c.state);
  const e = await t.throwsAsync(c.removeNetwork('ingress'));
  t.is((e as { code?: string }).code, 'NETWORK_IN_USE');
  t.regex(e!.message, /ingress network and service "web" publishes a port/);
  t.is(JSON.stringify(c.state), before, 'nothing changed');
  await c.updateService('web', { ports: [{ protocol: 'tcp', target: 80 }] });
  await c.removeNetwork('ingress');
  const again = await c.createNetwork({ name: 'ingress', subnet: '10.200.0.0/24', ingress: true });
  t.is(again.subnet, '10.200.0.0/24');
  t.true(again.ingress);
});

test('DNS answers nothing on ingress: a service on ingress only is NXDOMAIN, one also on front answers there, an ingress client sees nothing', async (t) => {
  const { c, dir } = await open();
  t.teardown(() => removeDir(dir));
  await c.createNetwork({ name: 'ingress', subnet: '10.255.0.0/24', ingress: true });
  await c.createNetwork({ name: 'front', subnet: '10.0.9.0/24' });
  await c.createService({ name: 'edge', networks: ['ingress'], ports: [{ protocol: 'tcp', target: 80, published: 8080 }] });
  await c.addTask({ service: 'edge', ips: ['10.255.0.5'], name: 'edge-1' });
  await c.createService({ name: 'web', networks: ['ingress', 'front'], ports: [{ protocol: 'tcp', target: 80, published: 8081 }] });
  await c.addTask({ service: 'web', ips: ['10.255.0.6', '10.0.9.6'] });
  const i = index(c);
  const lo = parseIp('127.0.0.1');
  t.deepEqual(data(i.resolve('edge', 'A', lo)), ['nxdomain']);
  t.deepEqual(data(i.resolve('tasks.edge', 'A', lo)), ['nxdomain']);
  t.deepEqual(data(i.resolve('edge-1', 'A', lo)), ['nxdomain'], 'task names on ingress are not answered');
  t.deepEqual(data(i.resolve('edge.ingress', 'A', lo)), ['nxdomain']);
  t.deepEqual(data(i.resolve('5.0.255.10.in-addr.arpa', 'PTR', lo)), ['nxdomain'], 'nor their PTRs');
  t.deepEqual(data(i.resolve('web', 'A', lo)), [c.state.services.web!.attachments[1]!.vip!]);
  t.deepEqual(data(i.resolve('tasks.web', 'A', lo)), ['10.0.9.6'], 'tasks answered on front only');
  t.deepEqual(data(i.resolve('web', 'A', parseIp('10.255.0.50'))), ['nxdomain'], 'an address on ingress gives no view');
  t.deepEqual(data(i.resolve('web', 'A', parseIp('10.0.9.50'))), [c.state.services.web!.attachments[1]!.vip!]);
  t.is(i.networkLabel(parseIp('10.255.0.50')), 'none');
});

test('published ports reach tasks on their ingress address; VIPs are programmed on the other networks only', async (t) => {
  const { c, dir } = await open();
  t.teardown(() => removeDir(dir));
  await c.createNetwork({ name: 'front', subnet: '10.0.9.0/24' });
  await c.createNetwork({ name: 'ingress', subnet: '10.255.0.0/24', ingress: true });
  // front first in attachment order: ingress still wins for published ports.
  await c.createService({ name: 'web', networks: ['front', 'ingress'], ports: [{ protocol: 'tcp', target: 80, published: 8080 }] });
  await c.addTask({ service: 'web', ips: ['10.0.9.6', '10.255.0.6'] });
  await c.addTask({ service: 'web', ips: ['10.0.9.7', '10.255.0.7'] });
  const p = plan(c.state);
  t.deepEqual(p.published.map((x) => x.backends.map((b) => b.ip)), [['10.255.0.6', '10.255.0.7']]);
  t.deepEqual(p.services.map((s) => `${s.network} ${s.vip}`), ['front 10.0.9.2']);
  t.deepEqual(p.services[0]!.backends.map((b) => b.ip), ['10.0.9.6', '10.0.9.7']);
});
