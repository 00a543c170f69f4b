import test from 'ava';
import { AnswerIndex, DEFAULT_TTL } from '../../src/dns/answers.js';
import { type CatalogState, emptyState } from '../../src/catalog/model.js';
import { parseIp } from '../../src/net/ip.js';

function state(): CatalogState {
  const s = emptyState();
  const net = (name: string, subnet: string, attachable = false) =>
    (s.networks[name] = { id: name, name, subnet, gateway: '', attachable, createdAt: '', ipamCursor: '0' });
  net('front', '10.0.9.0/24', true);
  net('back', '10.0.10.0/24');
  net('v6', 'fd00:6::/64');
  s.services.web = { id: 'w', name: 'web', aliases: ['www'], endpointMode: 'vip', attachments: [{ network: 'front', vip: '10.0.9.2' }, { network: 'v6', vip: 'fd00:6::2' }], ports: [], fwmark: 256, createdAt: '' };
  s.services.api = { id: 'a', name: 'api', aliases: [], endpointMode: 'dnsrr', attachments: [{ network: 'back', vip: undefined }], ports: [], fwmark: 257, createdAt: '' };
  const task = (id: string, service: string, addresses: Record<string, string>, health: 'unknown' | 'healthy' | 'unhealthy' = 'unknown') =>
    (s.tasks[id] = { id, name: `${service}.${id}`, service, slot: 1, addresses, health, createdAt: '' });
  task('t1', 'web', { front: '10.0.9.3', v6: 'fd00:6::3' });
  task('t2', 'web', { front: '10.0.9.4', v6: 'fd00:6::4' });
  task('a1', 'api', { back: '10.0.10.3' });
  task('a2', 'api', { back: '10.0.10.4' });
  task('a3', 'api', { back: '10.0.10.5' }, 'unhealthy');
  s.containers.db = { id: 'd', name: 'db', aliases: ['database'], addresses: { front: '10.0.9.100' }, createdAt: '' };
  return s;
}

const idx = (): AnswerIndex => {
  const i = new AnswerIndex({ suffix: 'vipdns.internal', ttl: DEFAULT_TTL, loopbackSeesAll: true, othersSeeAll: false });
  i.rebuild(state());
  return i;
};
const LO = parseIp('127.0.0.1');
const data = (r: ReturnType<AnswerIndex['resolve']>): string[] => (r.kind === 'answer' ? r.records.map((x) => String(x.data)).sort() : [r.kind]);

test('vip service answers its VIP by family; tasks.<svc> the task IPs', (t) => {
  const i = idx();
  t.deepEqual(data(i.resolve('web', 'A', LO)), ['10.0.9.2']);
  t.deepEqual(data(i.resolve('WEB.', 'AAAA', LO)), ['fd00:6::2']);
  t.deepEqual(data(i.resolve('www', 'A', LO)), ['10.0.9.2'], 'alias');
  t.deepEqual(data(i.resolve('tasks.web', 'A', LO)), ['10.0.9.3', '10.0.9.4']);
  t.deepEqual(data(i.resolve('web.front', 'A', LO)), ['10.0.9.2']);
  t.deepEqual(data(i.resolve('web.v6.vipdns.internal', 'A', LO)), ['nodata'], 'exists on v6 only as AAAA');
  t.deepEqual(data(i.resolve('web.back', 'A', LO)), ['nxdomain'], 'not attached to back');
  t.deepEqual(data(i.resolve('web', 'MX', LO)), ['nodata']);
});

test('dnsrr answers every serving task and leaves unhealthy ones out', (t) => {
  const i = idx();
  t.deepEqual(data(i.resolve('api', 'A', LO)), ['10.0.10.3', '10.0.10.4']);
  const orders = new Set<string>();
  for (let n = 0; n < 50; n++) {
    const r = i.resolve('api', 'A', LO);
    if (r.kind === 'answer') orders.add(r.records.map((x) => x.data).join());
  }
  t.is(orders.size, 2, 'both orders appear');
});

test('scoping: a client sees only its own networks', (t) => {
  const i = idx();
  const inFront = parseIp('10.0.9.50');
  const inBack = parseIp('10.0.10.50');
  const outsider = parseIp('192.0.2.1');
  t.deepEqual(data(i.resolve('web', 'A', inFront)), ['10.0.9.2']);
  t.deepEqual(data(i.resolve('api', 'A', inFront)), ['nxdomain']);
  t.deepEqual(data(i.resolve('api', 'A', inBack)), ['10.0.10.3', '10.0.10.4']);
  t.deepEqual(data(i.resolve('web', 'A', inBack)), ['nxdomain']);
  t.deepEqual(data(i.resolve('db', 'A', outsider)), ['nxdomain']);
  t.deepEqual(data(i.resolve('db', 'A', parseIp('::ffff:10.0.9.9'))), ['10.0.9.100'], 'v4-mapped client');
  t.false(i.isKnownClient(outsider));
  t.true(i.isKnownClient(inBack));
});

test('containers, task names, PTR, NXDOMAIN and external names', (t) => {
  const i = idx();
  t.deepEqual(data(i.resolve('database', 'A', LO)), ['10.0.9.100']);
  t.deepEqual(data(i.resolve('web.t1', 'A', LO)), ['10.0.9.3']);
  t.deepEqual(data(i.resolve('2.9.0.10.in-addr.arpa', 'PTR', LO)), ['web.front.vipdns.internal']);
  t.deepEqual(data(i.resolve('100.9.0.10.in-addr.arpa', 'PTR', LO)), ['db.front.vipdns.internal']);
  t.deepEqual(data(i.resolve('99.9.0.10.in-addr.arpa', 'PTR', LO)), ['nxdomain'], 'ours but unused');
  t.deepEqual(data(i.resolve('1.2.0.192.in-addr.arpa', 'PTR', LO)), ['external']);
  t.deepEqual(data(i.resolve('2.9.0.10.in-addr.arpa', 'PTR', parseIp('10.0.10.9'))), ['nxdomain'], 'PTR is scoped too');
  t.deepEqual(data(i.resolve('nope', 'A', LO)), ['nxdomain']);
  t.deepEqual(data(i.resolve('tasks.nope', 'A', LO)), ['nxdomain']);
  t.deepEqual(data(i.resolve('nope.front', 'A', LO)), ['nxdomain']);
  t.deepEqual(data(i.resolve('x.y.vipdns.internal', 'A', LO)), ['nxdomain']);
  t.deepEqual(data(i.resolve('example.com', 'A', LO)), ['external']);
});

test('a rebuild reflects removals at once', (t) => {
  const i = idx();
  const s = state();
  delete s.tasks.a1;
  i.rebuild(s);
  t.deepEqual(data(i.resolve('api', 'A', LO)), ['10.0.10.4']);
});

test('when every task is unhealthy the answers fail open to all tasks', (t) => {
  const i = new AnswerIndex({ suffix: 'vipdns.internal', ttl: DEFAULT_TTL, loopbackSeesAll: true, othersSeeAll: false });
  const s = state();
  for (const id of ['a1', 'a2', 'a3']) s.tasks[id]!.health = 'unhealthy';
  i.rebuild(s);
  t.deepEqual(data(i.resolve('api', 'A', LO)), ['10.0.10.3', '10.0.10.4', '10.0.10.5']);
});

test('a container on two networks sees both from either address, as in Docker; joining or leaving one updates the view and the resolver', async (t) => {
  const { applyChange, diffStates } = await import('../../src/catalog/changes.js');
  const { Resolver } = await import('../../src/dns/resolver.js');
  const packet = await import('dns-packet');
  const before = state();
  const i = new AnswerIndex({ suffix: 'vipdns.internal', ttl: DEFAULT_TTL, loopbackSeesAll: true, othersSeeAll: false });
  i.rebuild(before);
  const fromBack = parseIp('10.0.10.77');
  t.deepEqual(data(i.resolve('web', 'A', fromBack)), ['nxdomain'], 'only on back: web (front) is not visible');
  const r = new Resolver({ index: i });
  const ask = async (): Promise<string> => {
    const reply = await r.handle(packet.encode({ type: 'query', id: 7, questions: [{ type: 'A', name: 'web' }] }), '10.0.10.77', 'udp');
    return (packet.decode(reply!) as { rcode?: string }).rcode ?? '';
  };
  t.is(await ask(), 'NXDOMAIN');
  // The container joins front too: from its back address it now sees front's names.
  const after = structuredClone(before);
  after.containers.probe = { id: 'p', name: 'probe', aliases: [], addresses: { back: '10.0.10.77', front: '10.0.9.77' }, createdAt: '' };
  after.revision = 1;
  const joined = applyChange(structuredClone(before), diffStates(before, after), 1);
  i.apply(joined.applied);
  t.deepEqual(data(i.resolve('web', 'A', fromBack)), ['10.0.9.2']);
  t.deepEqual(data(i.resolve('api', 'A', parseIp('10.0.9.77'))), ['10.0.10.3', '10.0.10.4'], 'and from its front address, back');
  t.is(await ask(), 'NOERROR', 'the resolver recomputed the client\'s view');
  // It leaves: back to its subnet alone.
  const left = applyChange(structuredClone(after), diffStates(after, before), 2);
  i.apply(left.applied);
  t.deepEqual(data(i.resolve('web', 'A', fromBack)), ['nxdomain']);
  t.is(await ask(), 'NXDOMAIN');
  // A rebuild gives the same view as the incremental path.
  const whole = new AnswerIndex({ suffix: 'vipdns.internal', ttl: DEFAULT_TTL, loopbackSeesAll: true, othersSeeAll: false });
  whole.rebuild(after);
  t.deepEqual(data(whole.resolve('web', 'A', fromBack)), ['10.0.9.2']);
});
