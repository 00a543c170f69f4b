import test from 'ava';
import { Catalog } from '../../src/catalog/catalog.js';
import { LocalStore } from '../../src/catalog/store/local.js';
import { removeDir, tempDir } from '../helpers/daemon.js';

async function open(dir = tempDir()): Promise<{ c: Catalog; dir: string }> {
  return { c: await Catalog.open(await LocalStore.open(dir)), dir };
}

const snapshot = (c: Catalog): string => JSON.stringify(c.state);

test('networks, vip and dnsrr services, tasks and containers', async (t) => {
  const { c, dir } = await open();
  t.teardown(() => removeDir(dir));
  await c.createNetwork({ name: 'front', subnet: '10.0.9.0/24', attachable: true });
  const web = await c.createService({ name: 'web', networks: ['front'], ports: [{ protocol: 'tcp', target: 80, published: 8080 }] });
  t.is(web.attachments[0]!.vip, '10.0.9.2');
  t.is(web.fwmark, 0x100);
  const rr = await c.createService({ name: 'rr', networks: ['front'], endpointMode: 'dnsrr' });
  t.is(rr.attachments[0]!.vip, undefined);
  t.is(rr.fwmark, 0x101);
  const t1 = await c.addTask({ service: 'web' });
  t.regex(t1.name, /^web\.1\.[0-9a-f]{12}$/);
  t.is(t1.addresses.front, '10.0.9.3');
  const t2 = await c.addTask({ service: 'web', ips: ['10.0.9.77'] });
  t.is(t2.slot, 2);
  t.is(t2.addresses.front, '10.0.9.77');
  const ct = await c.addContainer({ name: 'db', networks: [{ network: 'front', ip: '10.0.9.100' }], aliases: ['database'] });
  t.is(ct.addresses.front, '10.0.9.100');
  t.is(c.tasksOf('web').length, 2);
  await c.removeTask(t1.id);
  t.is((await c.addTask({ service: 'web' })).slot, 1, 'the freed slot is reused');
});

test('every bad input is refused with its code and changes nothing', async (t) => {
  const { c, dir } = await open();
  t.teardown(() => removeDir(dir));
  await c.createNetwork({ name: 'front', subnet: '10.0.9.0/24' });
  await c.createNetwork({ name: 'tiny', subnet: '10.0.10.0/30' }); // 4 addresses, 1 usable
  await c.createService({ name: 'web', networks: ['front'], ports: [{ protocol: 'tcp', target: 80, published: 8080 }] });
  await c.addContainer({ name: 'x', networks: ['front'] }).catch(() => undefined);
  const before = snapshot(c);
  const cases: Array<[string, () => Promise<unknown>, string, RegExp]> = [
    ['bad CIDR', () => c.createNetwork({ name: 'n1', subnet: '10.0.0.0/40' }), 'BAD_CIDR', /longer than 32/],
    ['overlap', () => c.createNetwork({ name: 'n2', subnet: '10.0.0.0/16' }), 'SUBNET_OVERLAP', /overlaps network "front"/],
    ['duplicate network', () => c.createNetwork({ name: 'front', subnet: '10.9.0.0/24' }), 'DUPLICATE_NAME', /already exists/],
    ['bad name', () => c.createNetwork({ name: 'a.b', subnet: '10.9.0.0/24' }), 'BAD_NAME', /no dots/],
    ['unknown network', () => c.createService({ name: 's', networks: ['nope'] }), 'NOT_FOUND', /no network "nope"/],
    ['duplicate service', () => c.createService({ name: 'WEB', networks: ['front'] }), 'DUPLICATE_NAME', /already used by service/],
    ['VIP outside', () => c.createService({ name: 's', networks: [{ network: 'front', vip: '10.1.0.1' }] }), 'IP_OUTSIDE_SUBNET', /outside network "front"/],
    ['VIP in use', () => c.createService({ name: 's', networks: [{ network: 'front', vip: '10.0.9.2' }] }), 'IP_IN_USE', /already in use/],
    ['VIP is gateway', () => c.createService({ name: 's', networks: [{ network: 'front', vip: '10.0.9.1' }] }), 'IP_RESERVED', /gateway/],
    ['published twice', () => c.createService({ name: 's', networks: ['front'], ports: [{ protocol: 'tcp', target: 81, published: 8080 }] }), 'CONFLICT', /already used by service "web"/],
    ['dnsrr publish', () => c.createService({ name: 's', networks: ['front'], endpointMode: 'dnsrr', ports: [{ protocol: 'tcp', target: 81, published: 9090 }] }), 'BAD_PORT', /needs endpoint mode vip/],
    ['task IP outside', () => c.addTask({ service: 'web', ips: ['192.0.2.1'] }), 'IP_OUTSIDE_SUBNET', /outside every network/],
    ['task IP in use', () => c.addTask({ service: 'web', ips: ['10.0.9.2'] }), 'IP_IN_USE', /in use/],
    ['unknown service', () => c.addTask({ service: 'nope' }), 'NOT_FOUND', /no service/],
    ['not attachable', () => c.addContainer({ name: 'y', networks: ['front'] }), 'NETWORK_NOT_ATTACHABLE', /--attachable/],
    ['network in use', () => c.removeNetwork('front'), 'NETWORK_IN_USE', /in use by service web/],
    ['reserved name', () => c.createService({ name: 'tasks', networks: ['front'] }), 'BAD_NAME', /reserved/],
  ];
  for (const [what, fn, code, msg] of cases) {
    const err = await t.throwsAsync(fn, undefined, what);
    t.is((err as { code?: string }).code, code, what);
    t.regex(err!.message, msg, what);
    t.is(snapshot(c), before, `${what}: catalog unchanged`);
  }
  // Exhaustion: the first service takes the only address; the second is refused, with numbers.
  await c.createService({ name: 'a', networks: ['tiny'] });
  const before2 = snapshot(c);
  const err = await t.throwsAsync(c.createService({ name: 'b', networks: ['tiny'] }));
  t.is((err as { code?: string }).code, 'SUBNET_EXHAUSTED');
  t.regex(err!.message, /network "tiny" \(10\.0\.10\.0\/30\) is exhausted: 1 of its 1 usable addresses/);
  t.is(snapshot(c), before2);
  // A multi-network service that fails on its second network leaves the first untouched.
  const err2 = await t.throwsAsync(c.createService({ name: 'b', networks: ['front', 'tiny'] }));
  t.is((err2 as { code?: string }).code, 'SUBNET_EXHAUSTED');
  t.is(snapshot(c), before2);
});

test('a /16 holds more than Docker overlay /24 limit of 256 tasks', async (t) => {
  const { c, dir } = await open();
  t.teardown(() => removeDir(dir));
  await c.createNetwork({ name: 'big', subnet: '10.20.0.0/16' });
  await c.createService({ name: 'web', networks: ['big'] });
  const ips = new Set<string>();
  for (let i = 0; i < 600; i++) ips.add((await c.addTask({ service: 'web' })).addresses.big!);
  t.is(ips.size, 600);
  t.true(ips.has('10.20.2.89'));
});

test('service update: attach, detach and switch endpoint mode', async (t) => {
  const { c, dir } = await open();
  t.teardown(() => removeDir(dir));
  await c.createNetwork({ name: 'a', subnet: '10.1.0.0/24' });
  await c.createNetwork({ name: 'b', subnet: 'fd00:b::/64' });
  await c.createService({ name: 'web', networks: ['a'] });
  const task = await c.addTask({ service: 'web' });
  let s = await c.updateService('web', { networkAdd: ['b'] });
  t.deepEqual(s.attachments.map((x) => x.network), ['a', 'b']);
  t.is(s.attachments[1]!.vip, 'fd00:b::2');
  t.is(c.task(task.id).addresses.b, 'fd00:b::3', 'existing tasks join the new network');
  s = await c.updateService('web', { endpointMode: 'dnsrr' });
  t.true(s.attachments.every((x) => x.vip === undefined));
  s = await c.updateService('web', { endpointMode: 'vip', networkRm: ['a'] });
  t.deepEqual(s.attachments.map((x) => x.network), ['b']);
  t.truthy(s.attachments[0]!.vip);
  t.is(c.task(task.id).addresses.a, undefined);
  await t.throwsAsync(c.updateService('web', { networkRm: ['b'] }), { message: /at least one network/ });
  await t.throwsAsync(c.updateService('web', { networkRm: ['a'] }), { message: /not attached/ });
});

test('state survives close and reopen, and the data dir is locked', async (t) => {
  const { c, dir } = await open();
  t.teardown(() => removeDir(dir));
  await c.createNetwork({ name: 'front', subnet: '10.0.9.0/24' });
  await c.createService({ name: 'web', networks: ['front'] });
  await t.throwsAsync(LocalStore.open(dir), { message: /in use by another vipdns/ });
  const rev = c.state.revision;
  await c.close();
  const again = await Catalog.open(await LocalStore.open(dir));
  t.is(again.state.revision, rev);
  t.is(again.service('web').attachments[0]!.vip, '10.0.9.2');
  // The IPAM cursor persisted: the next VIP is not the one just handed out.
  t.is((await again.createService({ name: 'api', networks: ['front'] })).attachments[0]!.vip, '10.0.9.3');
  await again.close();
});

test('a change event follows each commit', async (t) => {
  const { c, dir } = await open();
  t.teardown(() => removeDir(dir));
  const seen: number[] = [];
  c.on('change', (s) => seen.push(s.revision));
  await c.createNetwork({ name: 'front', subnet: '10.0.9.0/24' });
  await Promise.all([c.createService({ name: 'a', networks: ['front'] }), c.createService({ name: 'b', networks: ['front'] })]);
  t.true(seen.length >= 2);
  t.is(seen.at(-1), c.state.revision);
});

test('a batch commits several mutations as one change, all or nothing; attempt() drops one bad op alone', async (t) => {
  const { c, dir } = await open();
  t.teardown(() => removeDir(dir));
  await c.createNetwork({ name: 'n', subnet: '10.1.0.0/29' }); // 5 usable addresses
  const changes: number[] = [];
  c.on('change', (_s, _k, ch) => changes.push(ch.puts.length + ch.deletes.length));
  // Three writes that depend on each other, one change.
  const r = await c.batch((b) => {
    b.createService({ name: 'web', networks: ['n'] });
    const t1 = b.addTask({ service: 'web' });
    const t2 = b.addTask({ service: 'web' });
    return [t1.addresses.n, t2.addresses.n];
  });
  t.is(changes.length, 1, 'one commit');
  t.is(new Set([c.service('web').attachments[0]!.vip, ...r]).size, 3, 'VIP and task addresses distinct inside one batch');
  // A throw anywhere rejects the batch and changes nothing.
  const before = snapshot(c);
  await t.throwsAsync(
    c.batch((b) => {
      b.addTask({ service: 'web' });
      b.addTask({ service: 'nope' });
    }),
    { message: /no service "nope"/ },
  );
  t.is(snapshot(c), before);
  // attempt(): the failing op alone is undone; the others commit.
  const errs = await c.batch((b) => [b.attempt(() => b.addTask({ service: 'web' })), b.attempt(() => b.addTask({ service: 'web', ips: ['10.9.9.9'] })), b.attempt(() => b.addTask({ service: 'web' }))]);
  t.false(errs[0] instanceof Error);
  t.true(errs[1] instanceof Error && /outside every network/.test(errs[1].message));
  t.false(errs[2] instanceof Error);
  t.is(c.tasksOf('web').length, 4);
  // The pool is now full: exhaustion is reported, not a duplicate address.
  await t.throwsAsync(c.addTask({ service: 'web' }), { message: /exhausted/ });
});

test('published ports without a number: from the range, skipping published and listening ports; kept on update and restart; released on removal', async (t) => {
  const dir = tempDir();
  t.teardown(() => removeDir(dir));
  const listening = new Set([30001]);
  const host = { publishRange: { lo: 30000, hi: 30003 }, listening: (p: string) => (p === 'tcp' ? listening : new Set<number>()) };
  let c = await Catalog.open(await LocalStore.open(dir), { host });
  await c.createNetwork({ name: 'n', subnet: '10.0.9.0/24' });
  await c.createService({ name: 'fixed', networks: ['n'], ports: [{ protocol: 'tcp', target: 80, published: 30000 }] });
  const a = await c.createService({ name: 'a', networks: ['n'], ports: [{ protocol: 'tcp', target: 80, published: 'auto' }, { protocol: 'udp', target: 53, published: 'auto' }] });
  t.deepEqual(a.ports.map((p) => `${p.published}/${p.protocol}`), ['30002/tcp', '30000/udp'], 'tcp skips the published 30000 and the listening 30001; udp has its own ports');
  const b = await c.createService({ name: 'b', networks: ['n'], ports: [{ protocol: 'tcp', target: 81, published: 'auto' }] });
  t.is(b.ports[0]!.published, 30003);
  const before = JSON.stringify(c.state);
  const full = await t.throwsAsync(c.createService({ name: 'x', networks: ['n'], ports: [{ protocol: 'tcp', target: 80, published: 'auto' }] }));
  t.is((full as { code?: string }).code, 'PORTS_EXHAUSTED');
  t.regex(full!.message, /no free tcp port in the publish range 30000-30003: 3 published by services, 1 in use on the host/);
  t.is(JSON.stringify(c.state), before, 'nothing changed');
  const dnsrr = await t.throwsAsync(c.createService({ name: 'y', networks: ['n'], endpointMode: 'dnsrr', ports: [{ protocol: 'tcp', target: 80, published: 'auto' }] }));
  t.regex(dnsrr!.message, /a published port for target 80\/tcp needs endpoint mode vip/);

  const updated = await c.updateService('a', { ports: [{ protocol: 'tcp', target: 80, published: 'auto' }, { protocol: 'tcp', target: 9000 }] });
  t.is(updated.ports[0]!.published, 30002, 'an update naming the same target keeps its port');
  await c.close();
  c = await Catalog.open(await LocalStore.open(dir), { host });
  t.is(c.service('a').ports[0]!.published, 30002, 'kept across a restart');
  await c.removeService('b');
  const again = await c.createService({ name: 'x', networks: ['n'], ports: [{ protocol: 'tcp', target: 80, published: 'auto' }] });
  t.is(again.ports[0]!.published, 30003, 'released on removal');
  await c.close();
});
