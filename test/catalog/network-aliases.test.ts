import test from 'ava';
import { Catalog } from '../../src/catalog/catalog.js';
import { LocalStore } from '../../src/catalog/store/local.js';
import { AnswerIndex, DEFAULT_TTL } from '../../src/dns/answers.js';
import { parseIp } from '../../src/net/ip.js';
import { removeDir, tempDir } from '../helpers/daemon.js';

async function open(): Promise<{ c: Catalog; dir: string }> {
  const dir = tempDir();
  return { c: await Catalog.open(await LocalStore.open(dir)), dir };
}

const data = (i: AnswerIndex, name: string, from: string): string[] => {
  const r = i.resolve(name, 'A', parseIp(from));
  return r.kind === 'answer' ? r.records.map((x) => String(x.data)).sort() : [r.kind];
};

test('network aliases are answered only to clients on their network, for services and containers', async (t) => {
  const { c, dir } = await open();
  t.teardown(() => removeDir(dir));
  await c.createNetwork({ name: 'front', subnet: '10.0.9.0/24', attachable: true });
  await c.createNetwork({ name: 'back', subnet: '10.0.10.0/24', attachable: true });
  const web = await c.createService({ name: 'web', networks: [{ network: 'front', aliases: ['www'] }, 'back'] });
  await c.createService({ name: 'db', endpointMode: 'dnsrr', networks: [{ network: 'back', aliases: ['store'] }] });
  await c.addTask({ service: 'db', ips: ['10.0.10.20'] });
  await c.addContainer({ name: 'box', networks: [{ network: 'front', ip: '10.0.9.30', aliases: ['cache'] }, { network: 'back', ip: '10.0.10.30' }], aliases: ['everywhere'] });
  t.deepEqual(web.attachments[0]!.aliases, ['www']);
  t.is(web.attachments[1]!.aliases, undefined);

  const i = new AnswerIndex({ suffix: 'vipdns.internal', ttl: DEFAULT_TTL, loopbackSeesAll: false, othersSeeAll: false });
  i.rebuild(c.state);
  const vipFront = web.attachments[0]!.vip!;
  t.deepEqual(data(i, 'www', '10.0.9.50'), [vipFront], 'service alias on its network: the VIP there');
  t.deepEqual(data(i, 'www', '10.0.10.50'), ['nxdomain'], 'not on back');
  t.deepEqual(data(i, 'tasks.store', '10.0.10.50'), ['10.0.10.20']);
  t.deepEqual(data(i, 'cache', '10.0.9.50'), ['10.0.9.30']);
  t.deepEqual(data(i, 'cache', '10.0.10.50'), ['nxdomain'], "a container's network alias is not answered on its other networks");
  t.deepEqual(data(i, 'everywhere', '10.0.10.50'), ['10.0.10.30'], 'its own aliases are on every network');

  // A network alias is a name like any alias: it may not shadow a service or container, nor be shadowed.
  await t.throwsAsync(c.createService({ name: 'www', networks: ['back'] }), { code: 'DUPLICATE_NAME', message: /alias of service "web"/ } as never);
  await t.throwsAsync(c.addContainer({ name: 'c2', networks: [{ network: 'front', aliases: ['web'] }] }), { code: 'DUPLICATE_NAME', message: /alias "web"/ } as never);
  await t.throwsAsync(c.addContainer({ name: 'c3', networks: [{ network: 'front', aliases: ['-bad'] }] }), { code: 'BAD_NAME' } as never);

  // Kept across an endpoint-mode change, and gone with the attachment.
  let s = await c.updateService('web', { endpointMode: 'dnsrr' });
  t.deepEqual(s.attachments.find((a) => a.network === 'front')!.aliases, ['www']);
  s = await c.updateService('web', { networkRm: ['front'] });
  t.false(s.attachments.some((a) => a.aliases));
  await c.createService({ name: 'www', networks: ['back'] });
});

test('no network aliases on the ingress network', async (t) => {
  const { c, dir } = await open();
  t.teardown(() => removeDir(dir));
  await c.createNetwork({ name: 'ing', subnet: '10.255.0.0/16', ingress: true });
  const before = JSON.stringify(c.state);
  await t.throwsAsync(c.createService({ name: 'web', networks: [{ network: 'ing', aliases: ['www'] }] }), { code: 'BAD_REQUEST', message: /ingress network: nothing on it is answered/ } as never);
  t.is(JSON.stringify(c.state), before);
});
