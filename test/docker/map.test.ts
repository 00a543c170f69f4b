// Pure parts of the Docker source: labels, Docker JSON → desired entries, the plan, the event splitter.
import test, { type ExecutionContext } from 'ava';
import { Catalog } from '../../src/catalog/catalog.js';
import { LocalStore } from '../../src/catalog/store/local.js';
import { ROOT, removeDir, tempDir } from '../helpers/daemon.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CatalogIndex } from '../../src/catalog/lookups.js';
import { type CatalogState, emptyState } from '../../src/catalog/model.js';
import { Txn } from '../../src/catalog/txn.js';
import { bound } from '../../src/catalog/mutations.js';
import { record, runOps } from '../../src/catalog/sources/docker-apply.js';
import { parsePorts, parseVips } from '../../src/catalog/sources/docker-labels.js';
import { mapDocker } from '../../src/catalog/sources/docker-map.js';
import { type CatalogReader, emptyOwned, plan } from '../../src/catalog/sources/docker-plan.js';
import { JsonObjectSplitter } from '../../src/catalog/sources/docker-stream.js';
import { isRelevant } from '../../src/catalog/sources/docker.js';
import { parseDockerUrl } from '../../src/catalog/sources/docker-api.js';
import type { DockerContainer, DockerNetwork, DockerService } from '../../src/catalog/sources/docker-types.js';
import { container, network } from './fake-engine.js';

/** A real catalog on a temporary local store, closed and removed after the test. */
async function openCatalog(t: ExecutionContext): Promise<Catalog> {
  const dir = tempDir();
  t.teardown(() => removeDir(dir));
  const c = await Catalog.open(await LocalStore.open(dir));
  t.teardown(() => c.close());
  return c;
}

/** The plan reads a catalog through indexed lookups; over a bare state, as the catalog's view does. */
const viewOf = (s: Readonly<CatalogState>): CatalogReader => new Txn(s, CatalogIndex.of(s));

test('port labels: named targets, published ports merged onto them, udp', (t) => {
  t.deepEqual(parsePorts('http=80,dns=53/udp,9000', '8080:80,5353:53/udp,7000:7'), [
    { protocol: 'tcp', target: 80, name: 'http', published: 8080 },
    { protocol: 'udp', target: 53, name: 'dns', published: 5353 },
    { protocol: 'tcp', target: 9000 },
    { protocol: 'tcp', target: 7, published: 7000 },
  ]);
  t.throws(() => parsePorts('http=0', undefined), { code: 'BAD_PORT' } as never);
  t.throws(() => parsePorts(undefined, '8080'), { message: /PUBLISHED:TARGET/ });
  t.throws(() => parsePorts('80/sctp', undefined), { message: /tcp or udp/ });
  t.deepEqual(parseVips('10.0.9.250, back=10.1.0.9'), { any: ['10.0.9.250'], byNetwork: new Map([['back', '10.1.0.9']]) });
});

test('docker URLs: unix sockets, tcp, tcp with TLS files; https without them and ssh refused with a hint', (t) => {
  t.deepEqual(parseDockerUrl('unix:///var/run/docker.sock'), { socketPath: '/var/run/docker.sock', url: 'unix:///var/run/docker.sock' });
  t.deepEqual(parseDockerUrl('/run/podman/podman.sock'), { socketPath: '/run/podman/podman.sock', url: 'unix:///run/podman/podman.sock' });
  t.deepEqual(parseDockerUrl('tcp://127.0.0.1:2375'), { host: '127.0.0.1', port: 2375, url: 'tcp://127.0.0.1:2375' });
  t.throws(() => parseDockerUrl('https://h:2376'), { message: /needs --docker-tls-dir DIR/ });
  t.throws(() => parseDockerUrl('ssh://me@h'), { message: /ssh engines are not supported/ });
  t.throws(() => parseDockerUrl('tcp://h', '/nonexistent-tls-dir'), { code: 'CONFIG', message: /nonexistent-tls-dir\/ca\.pem: ENOENT/ } as never);
  t.throws(() => parseDockerUrl('unix://relative.sock'), { message: /absolute socket path/ });
});

test('the podman recording maps to a network, a service with its port and a task', (t) => {
  const rec = JSON.parse(readFileSync(join(ROOT, 'test/docker/fixtures/podman-4.3.1.json'), 'utf8')) as { network: DockerNetwork; containers: DockerContainer[] };
  const d = mapDocker([rec.network, { Name: 'bridge', Driver: 'bridge', IPAM: { Config: [{ Subnet: '10.88.0.0/16' }] } }], rec.containers);
  t.deepEqual([...d.networks.values()].map((n) => [n.name, n.subnet, n.gateway, n.attachable]), [['front', '10.31.0.0/24', '10.31.0.1', true]], 'the default bridge is left out');
  const svc = d.services.get('web')!;
  t.deepEqual([svc.endpointMode, svc.networks, svc.ports], ['vip', ['front'], [{ protocol: 'tcp', target: 80, name: 'http' }]]);
  t.deepEqual([...d.tasks.values()].map((x) => [x.name, x.service, x.addresses]), [['web-1', 'web', { front: '10.31.0.2' }]]);
  t.is(d.containers.size, 0, 'a service container is a task, not a container');
  t.deepEqual(d.warnings, []);
});

test('mapping: containers, aliases, stopped, ignored, invalid names, health, shared networks', (t) => {
  const nets = [network('front', '10.0.9.0/24', '10.0.9.1'), network('back', '10.1.0.0/24'), network('my.net', '10.2.0.0/24'), { ...network('ov', '10.3.0.0/24'), Scope: 'swarm', Driver: 'overlay' }];
  const cs = [
    container('db', { front: { ip: '10.0.9.20', aliases: ['database', 'db'] }, ov: { ip: '10.3.0.5' } }, { 'vipdns.alias': 'pg' }),
    container('gone', { front: { ip: '10.0.9.21' } }, {}, 'exited'),
    container('quiet', { front: { ip: '10.0.9.22' } }, { 'vipdns.ignore': 'true' }),
    container('on.dots', { front: { ip: '10.0.9.23' } }),
    container('api-1', { front: { ip: '10.0.9.30' }, back: { ip: '10.1.0.30' } }, { 'vipdns.service': 'api', 'vipdns.endpoint-mode': 'dnsrr' }),
    container('api-2', { front: { ip: '10.0.9.31' } }, { 'vipdns.service': 'api', 'vipdns.endpoint-mode': 'dnsrr' }),
    container('api-3', { front: { ip: '10.0.9.32' } }, { 'vipdns.service': 'api', 'vipdns.endpoint-mode': 'dnsrr' }, 'exited'),
    { ...container('web-1', { front: { ip: '10.0.9.40' } }, { 'vipdns.service': 'web' }), Status: 'Up 1 minute (unhealthy)' },
    container('bad', { front: { ip: '10.0.9.50' } }, { 'vipdns.service': 'x.y' }),
    // A swarm container reaches a host-side resolver from its docker_gwbridge address: that one is its too.
    container('gw', { front: { ip: '10.0.9.60' }, docker_gwbridge: { ip: '172.18.0.5' }, 'my.net': { ip: '10.2.0.60' } }),
  ];
  const d = mapDocker(nets, cs);
  t.false(d.networks.has('my.net'));
  t.is(d.networks.get('ov')!.attachable, false, 'a swarm overlay is attachable only when Docker says so');
  t.deepEqual(
    d.containers.get('db'),
    { name: 'db', containerId: cs[0]!.Id!, aliases: ['pg'], networkAliases: { front: ['database'] }, addresses: { front: '10.0.9.20' }, addresses6: {}, clientAddresses: [] },
    "Docker's network aliases stay on their network; an address on a mapped network (ov) is never a client address",
  );
  t.deepEqual(d.containers.get('gw')?.clientAddresses, ['10.2.0.60', '172.18.0.5'], 'addresses on unmapped networks identify the container as a DNS client');
  t.false(d.containers.has('gone'));
  t.false(d.containers.has('quiet'));
  t.deepEqual(d.containers.get('on-dots')?.addresses, { front: '10.0.9.23' }, 'dots in a container name become dashes');
  t.deepEqual(d.services.get('api')!.networks, ['front'], 'a service spans the networks all its running containers share');
  t.deepEqual([...d.tasks.values()].filter((x) => x.service === 'api').map((x) => x.name), ['api-1', 'api-2']);
  t.is(d.tasks.get('web-1')!.health, 'unhealthy');
  t.true(d.warnings.some((w) => /network "my\.net" skipped/.test(w)));
  t.true(d.warnings.some((w) => /service "api": network "back" left out/.test(w)));
  t.true(d.warnings.some((w) => /"x\.y" is not a valid service name/.test(w)));
  t.true(d.warnings.some((w) => /swarm network that is not attachable/.test(w)));
});

test('plan: creates in dependency order; converged state plans nothing; stale owned entries go, foreign ones stay', async (t) => {
  const nets = [network('front', '10.0.9.0/24', '10.0.9.1')];
  const cs = [
    container('web-1', { front: { ip: '10.0.9.2' } }, { 'vipdns.service': 'web', 'vipdns.ports': 'http=80', 'vipdns.alias': 'www' }),
    container('db', { front: { ip: '10.0.9.3', aliases: ['web', 'database'] } }),
  ];
  const p = plan(mapDocker(nets, cs), viewOf(emptyState()), emptyOwned());
  t.deepEqual(p.ops.map((o) => o.op), ['createNetwork', 'createService', 'addTask', 'addContainer']);
  const svc = p.ops[1] as Extract<(typeof p.ops)[number], { op: 'createService' }>;
  t.deepEqual(svc.req.networks, ['front'], 'the VIP is picked at commit, by the catalog allocator');
  t.deepEqual([...p.held.get('front')!].sort(), ['10.0.9.2', '10.0.9.3'], "Docker's addresses are held from VIP picks");
  const ctr = p.ops[3] as Extract<(typeof p.ops)[number], { op: 'addContainer' }>;
  t.deepEqual(ctr.req.aliases, []);
  t.deepEqual(ctr.req.networks, [{ network: 'front', ip: '10.0.9.3', aliases: ['database'] }], 'a network alias that is a service name is dropped');

  // Apply it to a real catalog, then: no ops on the next plan; stop web-1 → only its task goes.
  const c = await openCatalog(t);
  const owned = emptyOwned();
  const outcomes = await c.batch((b) => runOps(b, p.ops, p.held));
  t.deepEqual(outcomes.map((o) => o.result), ['ok', 'ok', 'ok', 'ok']);
  record(owned, outcomes);
  t.deepEqual(owned, { networks: { front: 'front-id' }, services: { web: 'web-1' }, tasks: { 'web-1': cs[0]!.Id! }, containers: { db: cs[1]!.Id! } });
  t.is(c.service('web').attachments[0]!.vip, '10.0.9.254', 'VIP from the top of the subnet');
  await c.createNetwork({ name: 'mine', subnet: '10.5.0.0/24', attachable: true });
  await c.addContainer({ name: 'byhand', networks: ['front'] });
  t.deepEqual(plan(mapDocker(nets, cs), c.view(), owned).ops, [], 'converged');

  const stopped = [{ ...cs[0]!, State: 'exited' }, cs[1]!];
  t.deepEqual(plan(mapDocker(nets, stopped), c.view(), owned).ops.map((o) => [o.op, 'name' in o ? o.name : '']), [['removeTask', 'web-1']], 'the service (and its VIP) stays while a stopped container has the label');
  const gone = plan(mapDocker([], []), c.view(), owned).ops.map((o) => [o.op, 'name' in o ? o.name : '']);
  t.deepEqual(gone, [['removeContainer', 'db'], ['removeService', 'web'], ['removeNetwork', 'front']], 'the task goes with its service; byhand and mine are not touched');
});

test('dual-stack Docker networks: both subnets, an address of each family per container, VIPs of both families; converged plans nothing', async (t) => {
  const dual = { ...network('dual', '10.0.9.0/24', '10.0.9.1'), EnableIPv6: true, IPAM: { Config: [{ Subnet: 'fd00:9::/64', Gateway: 'fd00:9::1' }, { Subnet: '10.0.9.0/24', Gateway: '10.0.9.1' }] } };
  const v6 = (c: DockerContainer, ip6: string): DockerContainer => {
    const eps = c.NetworkSettings!.Networks!;
    eps.dual = { ...eps.dual!, GlobalIPv6Address: ip6 };
    return c;
  };
  const cs = [
    v6(container('web-1', { dual: { ip: '10.0.9.2' } }, { 'vipdns.service': 'web', 'vipdns.ports': '80', 'vipdns.vip': 'fd00:9::ff' }), 'fd00:9::2'),
    v6(container('box', { dual: { ip: '10.0.9.3' } }), 'fd00:9::3'),
    container('half', { dual: { ip: '10.0.9.4' } }), // no IPv6 address (yet): not complete on a dual-stack network
  ];
  const d = mapDocker([dual], cs);
  t.like(d.networks.get('dual'), { subnet: '10.0.9.0/24', gateway: '10.0.9.1', subnet6: 'fd00:9::/64', gateway6: 'fd00:9::1' });
  t.deepEqual([d.tasks.get('web-1')?.addresses, d.tasks.get('web-1')?.addresses6], [{ dual: '10.0.9.2' }, { dual: 'fd00:9::2' }]);
  t.deepEqual(d.services.get('web')?.vips6, { dual: 'fd00:9::ff' }, 'an IPv6 VIP label is the IPv6 VIP of a dual-stack network');
  t.false(d.containers.has('half'));
  t.deepEqual([...d.held.get('dual#6')!].sort(), ['fd00:9::2', 'fd00:9::3'], "Docker's IPv6 addresses are held in the IPv6 pool");

  const c = await openCatalog(t);
  const owned = emptyOwned();
  const p = plan(d, c.view(), owned);
  const outcomes = await c.batch((b) => runOps(b, p.ops, p.held));
  t.deepEqual(outcomes.map((o) => o.result), ['ok', 'ok', 'ok', 'ok']);
  record(owned, outcomes);
  t.like(c.state.networks.dual, { subnet: '10.0.9.0/24', subnet6: 'fd00:9::/64', gateway6: 'fd00:9::1' });
  t.deepEqual(c.service('web').attachments, [{ network: 'dual', vip: '10.0.9.254', vip6: 'fd00:9::ff' }], 'IPv4 VIP from the top, the IPv6 one as labelled');
  const task = Object.values(c.state.tasks)[0]!;
  t.deepEqual([task.addresses, task.addresses6], [{ dual: '10.0.9.2' }, { dual: 'fd00:9::2' }]);
  t.deepEqual(c.state.containers.box && [c.state.containers.box.addresses, c.state.containers.box.addresses6], [{ dual: '10.0.9.3' }, { dual: 'fd00:9::3' }]);
  t.deepEqual(plan(mapDocker([dual], cs), c.view(), owned).ops, [], 'converged');
  // A container whose IPv6 address changed is re-added; without the label an automatic IPv6 VIP skips Docker's addresses.
  const moved = [cs[0]!, v6(container('box', { dual: { ip: '10.0.9.3' } }), 'fd00:9::33')];
  moved[1]!.Id = cs[1]!.Id;
  t.deepEqual(plan(mapDocker([dual], moved), c.view(), owned).ops.map((o) => o.op), ['removeContainer', 'addContainer']);
});

test('plan: a hand-made service with a fixed VIP gets the tasks; changed labels update or recreate', async (t) => {
  const nets = [network('front', '10.0.9.0/24')];
  const state = emptyState();
  state.networks.front = { id: 'n', name: 'front', subnet: '10.0.9.0/24', gateway: '10.0.9.1', attachable: true, createdAt: '', ipamCursor: '1' };
  state.services.web = { id: 's', name: 'web', aliases: [], endpointMode: 'vip', attachments: [{ network: 'front', vip: '10.0.9.100' }], ports: [], fwmark: 256, createdAt: '' };
  const cs = [container('web-1', { front: { ip: '10.0.9.2' } }, { 'vipdns.service': 'web' })];
  t.deepEqual(plan(mapDocker(nets, cs), viewOf(state), emptyOwned()).ops.map((o) => o.op), ['addTask'], 'network adopted silently (same subnet), service left alone');

  const owned = { ...emptyOwned(), services: { web: 'web-1' } };
  const relabelled = [container('web-1', { front: { ip: '10.0.9.2' } }, { 'vipdns.service': 'web', 'vipdns.alias': 'www', 'vipdns.publish': '8080:80' })];
  const upd = plan(mapDocker(nets, relabelled), viewOf(state), owned).ops;
  t.deepEqual(upd[0], { op: 'updateService', name: 'web', upd: { aliasAdd: ['www'], aliasRm: [], ports: [{ protocol: 'tcp', target: 80, published: 8080 }] } });
  const rr = [container('web-1', { front: { ip: '10.0.9.2' } }, { 'vipdns.service': 'web', 'vipdns.endpoint-mode': 'dnsrr' })];
  t.deepEqual(plan(mapDocker(nets, rr), viewOf(state), owned).ops.map((o) => o.op), ['removeService', 'createService', 'addTask'], 'a mode change recreates the service');
});

test('plan: VIPs asked for by label are checked against Docker and the catalog; one freed in the same plan may be reused', async (t) => {
  const nets = [network('front', '10.0.9.0/24')];
  const state = emptyState();
  state.networks.front = { id: 'n', name: 'front', subnet: '10.0.9.0/24', gateway: '10.0.9.1', attachable: true, createdAt: '', ipamCursor: '1' };
  state.services.old = { id: 's', name: 'old', aliases: [], endpointMode: 'vip', attachments: [{ network: 'front', vip: '10.0.9.100' }], ports: [], fwmark: 256, createdAt: '' };
  state.services.byhand = { id: 'h', name: 'byhand', aliases: [], endpointMode: 'vip', attachments: [{ network: 'front', vip: '10.0.9.101' }], ports: [], fwmark: 257, createdAt: '' };
  const owned = { ...emptyOwned(), networks: { front: 'front-id' }, services: { old: 'old-1' } };
  const cs = [
    container('a-1', { front: { ip: '10.0.9.2' } }, { 'vipdns.service': 'a', 'vipdns.vip': '10.0.9.100' }), // old's VIP: old goes in this plan
    container('b-1', { front: { ip: '10.0.9.3' } }, { 'vipdns.service': 'b', 'vipdns.vip': '10.0.9.101' }), // a hand-made service holds it
    container('c-1', { front: { ip: '10.0.9.4' } }, { 'vipdns.service': 'c', 'vipdns.vip': 'front=10.0.9.5' }), // a container holds it
    container('d-1', { front: { ip: '10.0.9.5' } }),
    container('e-1', { front: { ip: '10.0.9.6' } }, { 'vipdns.service': 'e' }),
  ];
  const p = plan(mapDocker(nets, cs), viewOf(state), owned);
  const svcs = p.ops.filter((o) => o.op === 'createService').map((o) => (o as Extract<(typeof p.ops)[number], { op: 'createService' }>).req);
  t.deepEqual(svcs.map((r) => [r.name, r.networks]), [['a', [{ network: 'front', vip: '10.0.9.100' }]], ['e', ['front']]]);
  t.true(p.ops.some((o) => o.op === 'removeService' && o.name === 'old'));
  t.true(p.warnings.some((w) => /service "b": VIP 10\.0\.9\.101 asked for on "front" is in use/.test(w)));
  t.true(p.warnings.some((w) => /service "c": VIP 10\.0\.9\.5 asked for on "front" is in use/.test(w)));
  t.true(p.held.get('front')!.has('10.0.9.100'), 'an automatic pick for e must not take the VIP a asks for');
  // Run on one transaction, as the source's batch does: old's VIP is free for a by the time a is created.
  const tx = new Txn(state, CatalogIndex.of(state));
  const out = runOps(bound(tx, undefined), p.ops, p.held);
  t.deepEqual(out.map((o) => [o.op.op, o.result]), [['removeService', 'ok'], ['createService', 'ok'], ['createService', 'ok'], ['addTask', 'ok'], ['addTask', 'ok'], ['addContainer', 'ok']]);
  t.is(tx.service('a').attachments[0]!.vip, '10.0.9.100');
  t.is(tx.service('e').attachments[0]!.vip, '10.0.9.254');
});

test("plan: its catalog lookups are bounded by Docker's and the owned entries, not by the catalog's size", (t) => {
  const nets = [network('front', '10.0.9.0/24')];
  const cs = [container('web-1', { front: { ip: '10.0.9.2' } }, { 'vipdns.service': 'web', 'vipdns.alias': 'www' }), container('db', { front: { ip: '10.0.9.3' } })];
  const lookups = (services: number): number => {
    const state = emptyState();
    state.networks.api = { id: 'a', name: 'api', subnet: '10.64.0.0/16', gateway: '10.64.0.1', attachable: true, createdAt: '', ipamCursor: '1' };
    for (let i = 0; i < services; i++) {
      state.services[`s${i}`] = { id: `s${i}`, name: `s${i}`, aliases: [], endpointMode: 'vip', attachments: [{ network: 'api', vip: `10.64.${i >> 8}.${(i & 255) + 1}` }], ports: [], fwmark: 256 + i, createdAt: '' };
    }
    const inner = viewOf(state);
    let n = 0;
    const counting: CatalogReader = {
      find: (kind, name) => (n++, inner.find(kind, name)),
      addresses: (net) => (n++, inner.addresses(net)),
      all: (kind) => (n++, inner.all(kind)),
    };
    t.deepEqual(plan(mapDocker(nets, cs), counting, emptyOwned()).ops.map((o) => o.op), ['createNetwork', 'createService', 'addTask', 'addContainer']);
    return n;
  };
  t.is(lookups(2000), lookups(10));
});

test('event splitter: lines, glued objects, split chunks, braces in strings, garbage', (t) => {
  const s = new JsonObjectSplitter();
  t.deepEqual(s.push('{"a":1}\n{"b":"}{"}{"c"'), [{ a: 1 }, { b: '}{' }]);
  t.deepEqual(s.push(':{"d":"\\"}"}}\n'), [{ c: { d: '"}' } }]);
  t.deepEqual(s.push('garbage {"e":2}'), [{ e: 2 }]);
  t.deepEqual(s.push('{bad json}{"f":3}'), [{ f: 3 }]);
  t.is(s.dropped, 1);
});

test('relevant events: lifecycle and network changes, not exec or top', (t) => {
  t.true(isRelevant({ Type: 'container', Action: 'die' }));
  t.true(isRelevant({ Type: 'container', status: 'start' }));
  t.true(isRelevant({ Type: 'container', Action: 'health_status: unhealthy' }));
  t.true(isRelevant({ Type: 'network', Action: 'disconnect' }));
  t.false(isRelevant({ Type: 'container', Action: 'exec_start: sh' }));
  t.false(isRelevant({ Type: 'image', Action: 'pull' }));
});

test('hostile engine input: events and listings of the wrong shape are ignored, never thrown', async (t) => {
  const { isRelevant } = await import('../../src/catalog/sources/docker.js');
  for (const e of [{ Type: 'container', Action: 5 }, { Type: 'container' }, null, 7, { Type: 'network', status: {} }]) {
    t.false(isRelevant(e as never));
  }
  const { JsonObjectSplitter, MAX_EVENT_BYTES } = await import('../../src/catalog/sources/docker-stream.js');
  const s = new JsonObjectSplitter();
  // An oversize event whose tail holds a nested object: nothing of it may come out as an event.
  const inner = '{"Type":"network","Action":"destroy","Actor":{"ID":"x"}}';
  const big = `{"Type":"container","pad":"${'x'.repeat(MAX_EVENT_BYTES)}","nested":${inner},"more":${inner}}`;
  const out = [...s.push(big.slice(0, MAX_EVENT_BYTES + 100)), ...s.push(big.slice(MAX_EVENT_BYTES + 100)), ...s.push('{"Type":"container","Action":"start"}\n')];
  t.deepEqual(out, [{ Type: 'container', Action: 'start' }]);
  t.is(s.dropped, 1);
});

test('swarm: tasks map to their swarm service with its mode, VIPs and network aliases; ingress is the ingress network', async (t) => {
  const nets: DockerNetwork[] = [
    { ...network('ingress', '10.0.0.0/24', '10.0.0.1'), Id: 'ing-id', Scope: 'swarm', Driver: 'overlay', Ingress: true },
    { ...network('ov', '10.0.1.0/24', '10.0.1.1'), Id: 'ov-id', Scope: 'swarm', Driver: 'overlay', Attachable: true },
    network('docker_gwbridge', '172.18.0.0/16', '172.18.0.1'),
  ];
  const swarm = (svc: string, slot: number, ov: string, extra: Record<string, { ip: string }> = {}): DockerContainer =>
    container(`${svc}.${slot}.task${svc}${slot}`, { ov: { ip: ov }, docker_gwbridge: { ip: `172.18.0.${slot + 10}` }, ...extra }, { 'com.docker.swarm.service.name': svc, 'com.docker.swarm.service.id': `${svc}-sid`, 'com.docker.swarm.task.id': `task${svc}${slot}`, 'com.docker.swarm.task.name': `${svc}.${slot}.task${svc}${slot}` });
  const cs = [
    swarm('sw', 1, '10.0.1.3', { ingress: { ip: '10.0.0.3' } }),
    swarm('sw', 2, '10.0.1.4', { ingress: { ip: '10.0.0.4' } }),
    swarm('rr', 1, '10.0.1.6'),
    swarm('lone', 1, '10.0.1.8'),
    container('probe', { ov: { ip: '10.0.1.9', aliases: ['looker'] }, docker_gwbridge: { ip: '172.18.0.9' } }),
  ];
  const services: DockerService[] = [
    {
      ID: 'sw-sid',
      Spec: { Name: 'sw', Labels: { 'vipdns.health': 'http:80/healthz' }, TaskTemplate: { Networks: [{ Target: 'ov-id', Aliases: ['foo', 'sw'] }] }, EndpointSpec: { Mode: 'vip' } },
      Endpoint: { Ports: [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 8080, PublishMode: 'ingress' }], VirtualIPs: [{ NetworkID: 'ing-id', Addr: '10.0.0.2/24' }, { NetworkID: 'ov-id', Addr: '10.0.1.2/24' }] },
    },
    { ID: 'rr-sid', Spec: { Name: 'rr', EndpointSpec: { Mode: 'dnsrr' } }, Endpoint: {} },
  ];
  const d = mapDocker(nets, cs, { services, gateways: new Map([[cs[4]!.Id!, ['172.18.0.19']]]) });
  t.deepEqual([...d.networks.values()].map((n) => [n.name, n.ingress, n.attachable]), [['ingress', true, false], ['ov', false, true]], "swarm's ingress is vipdns's ingress network; the gwbridge is a default network");
  const sw = d.services.get('sw')!;
  t.like(sw, { endpointMode: 'vip', networks: ['ov'], vips: { ov: '10.0.1.2' }, networkAliases: { ov: ['foo'] }, ports: [{ protocol: 'tcp', target: 80 }] });
  t.like(sw.healthCheck, { type: 'http', port: 80, path: '/healthz' }, 'vipdns.health from the service labels');
  t.like(d.services.get('rr'), { endpointMode: 'dnsrr', networks: ['ov'], vips: {} });
  t.like(d.services.get('lone'), { endpointMode: 'vip', vips: {} });
  t.true(d.warnings.some((w) => /swarm service "lone": its endpoint mode and VIPs are not known here/.test(w)));
  t.deepEqual(
    [...d.tasks.values()].map((x) => [x.name, x.service, x.addresses, x.clientAddresses]),
    [
      ['lone.1.tasklone1', 'lone', { ov: '10.0.1.8' }, ['172.18.0.11']],
      ['rr.1.taskrr1', 'rr', { ov: '10.0.1.6' }, ['172.18.0.11']],
      ['sw.1.tasksw1', 'sw', { ov: '10.0.1.3' }, ['172.18.0.11']],
      ['sw.2.tasksw2', 'sw', { ov: '10.0.1.4' }, ['172.18.0.12']],
    ],
    'task names are the swarm task names; the ingress address is not a service address',
  );
  t.deepEqual(d.containers.get('probe')?.networkAliases, { ov: ['looker'] });
  t.deepEqual(d.containers.get('probe')?.clientAddresses, ['172.18.0.19', '172.18.0.9'], 'its gateway endpoint, which only docker_gwbridge lists, identifies it too');

  // A task the manager is shutting down (scaled down, service removed) leaves at once, before its container exits.
  const running = new Set(['tasksw1', 'taskrr1', 'tasklone1']);
  t.deepEqual([...mapDocker(nets, cs, { services, runningTasks: running }).tasks.keys()], ['lone.1.tasklone1', 'rr.1.taskrr1', 'sw.1.tasksw1']);

  // Planned onto an empty catalog: the ingress network as ingress, the swarm VIP kept, the alias on its network.
  const p = plan(d, viewOf(emptyState()), emptyOwned());
  const net = p.ops.find((o) => o.op === 'createNetwork' && o.req.name === 'ingress') as Extract<(typeof p.ops)[number], { op: 'createNetwork' }>;
  t.like(net.req, { ingress: true, attachable: false });
  const create = p.ops.find((o) => o.op === 'createService' && o.req.name === 'sw') as Extract<(typeof p.ops)[number], { op: 'createService' }>;
  t.deepEqual(create.req.networks, [{ network: 'ov', vip: '10.0.1.2', aliases: ['foo'] }]);
  t.like(create.req.healthCheck, { type: 'http', port: 80 });
});
