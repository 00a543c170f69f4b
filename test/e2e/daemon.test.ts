// The real daemon, the real CLI, the real dig: Docker's documented service-discovery scenarios.
import test from 'ava';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type DaemonHandle, removeDir, shortAnswers, startDaemon } from '../helpers/daemon.js';

const ok = (d: DaemonHandle, ...args: string[]): Promise<string> => d.ok(...args);

test('vip, dnsrr, tasks.<svc>, containers, TCP and PTR answered by dig', async (t) => {
  const d = await startDaemon();
  t.teardown(async () => {
    await d.stop();
    removeDir(d.dataDir);
  });
  await ok(d, 'network', 'create', 'front', '--subnet', '10.0.9.0/24', '--attachable');
  await ok(d, 'service', 'create', 'web', '--network', 'front', '--alias', 'www');
  await ok(d, 'service', 'create', 'api', '--network', 'front', '--endpoint-mode', 'dnsrr');
  for (let i = 0; i < 3; i++) await ok(d, 'task', 'add', 'web');
  for (let i = 0; i < 4; i++) await ok(d, 'task', 'add', 'api');
  await ok(d, 'container', 'add', 'db', '--network', 'front', '--ip', '10.0.9.200', '--alias', 'database');

  const vips = new Set<string>();
  for (let i = 0; i < 10; i++) vips.add((await d.dig('+short', 'web')).trim());
  t.deepEqual([...vips], ['10.0.9.2'], 'a vip service resolves to the same VIP every time');
  t.deepEqual(shortAnswers(await d.dig('+short', 'www')), ['10.0.9.2']);
  t.deepEqual(shortAnswers(await d.dig('+short', 'web.front.vipdns.internal')), ['10.0.9.2']);
  t.deepEqual(shortAnswers(await d.dig('+short', 'tasks.web')).sort(), ['10.0.9.3', '10.0.9.4', '10.0.9.5']);

  const apiIps = ['10.0.9.6', '10.0.9.7', '10.0.9.8', '10.0.9.9'];
  const orders = new Set<string>();
  for (let i = 0; i < 12; i++) {
    const ips = shortAnswers(await d.dig('+short', 'api'));
    t.deepEqual([...ips].sort(), [...apiIps].sort(), 'dnsrr returns all task IPs');
    orders.add(ips.join(','));
  }
  t.true(orders.size > 1, `the order varies across queries (${orders.size} orders seen)`);

  t.deepEqual(shortAnswers(await d.dig('+short', 'database')), ['10.0.9.200']);
  t.deepEqual(shortAnswers(await d.dig('+short', '+tcp', 'db')), ['10.0.9.200'], 'TCP');
  t.deepEqual(shortAnswers(await d.dig('+short', '-x', '10.0.9.2')), ['web.front.vipdns.internal.']);
  t.regex(await d.dig('nope'), /status: NXDOMAIN/);
  t.regex(await d.dig('web', 'AAAA'), /status: NOERROR.*\n.*ANSWER: 0/);
  t.regex(await d.dig('example.com'), /status: SERVFAIL/, 'no upstreams configured: SERVFAIL, never a real resolver');
  t.regex(await d.dig('wEb'), /^wEb\.\s+60\s+IN\s+A\s+10\.0\.9\.2$/m, 'case preserved, TTL 60');

  // Removing a task takes it out of the answers at once.
  const tasks = JSON.parse(await ok(d, '--json', 'task', 'ls', 'api')) as Array<{ id: string; addresses: { front: string } }>;
  await ok(d, 'task', 'rm', tasks[0]!.id);
  t.false(shortAnswers(await d.dig('+short', 'api')).includes(tasks[0]!.addresses.front));
});

test('data survives kill -9 and the restarted daemon answers the same', async (t) => {
  const d = await startDaemon();
  t.teardown(() => removeDir(d.dataDir));
  await ok(d, 'network', 'create', 'front', '--subnet', 'fd00:9::/64');
  await ok(d, 'service', 'create', 'web', '--network', 'front');
  await ok(d, 'task', 'add', 'web');
  const before = await ok(d, '--json', 'service', 'inspect', 'web');
  await d.kill9();
  t.true(existsSync(join(d.dataDir, 'vipdns.pid')), 'the stale lock is left behind');
  const d2 = await startDaemon({ dataDir: d.dataDir });
  t.teardown(() => d2.stop());
  t.is(await ok(d2, '--json', 'service', 'inspect', 'web'), before);
  t.deepEqual(shortAnswers(await d2.dig('+short', 'web', 'AAAA')), ['fd00:9::2']);
  t.is(await d2.stop(), 0, 'SIGTERM exits 0');
  t.false(existsSync(join(d.dataDir, 'vipdns.pid')), 'a clean stop releases the lock');
});

test('every bad input: one clear line, non-zero exit, catalog unchanged', async (t) => {
  const d = await startDaemon();
  t.teardown(async () => {
    await d.stop();
    removeDir(d.dataDir);
  });
  await ok(d, 'network', 'create', 'front', '--subnet', '10.0.9.0/24');
  await ok(d, 'network', 'create', 'small', '--subnet', '10.0.10.0/29');
  await ok(d, 'service', 'create', 'web', '--network', 'front', '--publish', '8080:80');
  await ok(d, 'service', 'create', 'fill', '--network', 'small');
  for (let i = 0; i < 4; i++) await ok(d, 'task', 'add', 'fill'); // small: 5 usable, VIP + 4 tasks
  const dump = async (): Promise<string> =>
    JSON.stringify(await Promise.all(['network', 'service', 'task', 'container'].map((k) => ok(d, '--json', k, 'ls'))));
  const before = await dump();
  const cases: Array<[string[], RegExp]> = [
    [['network', 'create', 'x', '--subnet', '10.0.0.0/33'], /prefix length \/33 is longer than 32 bits/],
    [['network', 'create', 'x', '--subnet', 'not-a-cidr'], /is not a CIDR subnet/],
    [['network', 'create', 'x', '--subnet', '10.0.9.0/25'], /overlaps network "front"/],
    [['network', 'create', 'front', '--subnet', '10.7.0.0/24'], /network "front" already exists/],
    [['service', 'create', 'web', '--network', 'front'], /name "web" is already used by service "web"/],
    [['service', 'create', 's', '--network', 'nowhere'], /no network "nowhere"/],
    [['service', 'create', 's', '--network', 'front', '--vip', 'front=10.0.10.1'], /VIP 10\.0\.10\.1 is outside network "front" \(10\.0\.9\.0\/24\)/],
    [['service', 'create', 's', '--network', 'front', '--vip', 'front=10.0.9.2'], /VIP 10\.0\.9\.2 is already in use on network "front"/],
    [['service', 'create', 's', '--network', 'front', '--publish', '8080:81'], /published port 8080\/tcp is already used by service "web"/],
    [['service', 'create', 's', '--network', 'front', '--publish', '99999:80'], /port number from 1 to 65535/],
    [['task', 'add', 'web', '--ip', '10.0.8.5'], /task IP 10\.0\.8\.5 is outside every network of service "web"/],
    [['task', 'add', 'web', '--ip', '10.0.9.2'], /task IP 10\.0\.9\.2 is already in use/],
    [['task', 'add', 'fill'], /network "small" \(10\.0\.10\.0\/29\) is exhausted: 5 of its 5 usable addresses are in use \(8 in the subnet, 3 reserved/],
    [['container', 'add', 'c', '--network', 'front'], /network "front" is not attachable/],
    [['network', 'rm', 'front'], /network "front" is in use by service web/],
    [['task', 'rm', 'nope'], /no task "nope"/],
    [['service', 'create', 's', '--network', 'front', '--lb', 'fastest'], /unknown scheduler "fastest": use rr, wrr, lc, sh/],
    [['service', 'update', 'web', '--lb', 'random'], /unknown scheduler "random"/],
    [['service', 'create', 's', '--network', 'front', '--endpoint-mode', 'dnsrr', '--sticky', '30'], /sticky sessions need endpoint mode vip/],
    [['service', 'create', 's', '--network', 'front', '--sticky', 'long'], /sticky must be whole seconds from 0 \(off\) to 86400, got "long"/],
    [['service', 'update', 'web', '--sticky', '-1'], /sticky must be whole seconds/],
    [['task', 'add', 'web', '--weight', '-1'], /weight must be a whole number from 0 \(drain: no new connections\) to 10000, got -1/],
    [['task', 'add', 'web', '--weight', '1.5'], /weight must be a whole number/],
  ];
  for (const [args, msg] of cases) {
    const r = await d.cli(...args);
    t.not(r.code, 0, args.join(' '));
    t.regex(r.stderr, msg, args.join(' '));
    t.is(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    t.is(r.stdout, '', args.join(' '));
  }
  t.is(await dump(), before, 'nothing changed');
  const down = await (await import('../helpers/daemon.js')).run(process.execPath, [(await import('../helpers/daemon.js')).CLI, '--api', 'http://127.0.0.1:1', 'network', 'ls']);
  t.regex(down.stderr, /cannot reach the vipdns daemon at http:\/\/127\.0\.0\.1:1/);
});

test('readiness, health and a second daemon on the same data dir', async (t) => {
  const d = await startDaemon();
  t.teardown(async () => {
    await d.stop();
    removeDir(d.dataDir);
  });
  const ready = await fetch(`${d.metrics}/readyz`);
  t.is(ready.status, 200);
  t.regex(await ready.text(), /\[\+\] dns: listening/);
  t.is((await fetch(`${d.metrics}/healthz`)).status, 200);
  t.regex(await (await fetch(`${d.metrics}/metrics`)).text(), /process_cpu_seconds_total/);
  await t.throwsAsync(startDaemon({ dataDir: d.dataDir }), { message: /in use by another vipdns \(pid \d+\)/ });
});

test('hostile API bodies get a 4xx with a code, never a 500, and change nothing', async (t) => {
  const d = await startDaemon();
  t.teardown(async () => {
    await d.stop();
    removeDir(d.dataDir);
  });
  await ok(d, 'network', 'create', 'front', '--subnet', '10.0.9.0/24', '--attachable');
  await ok(d, 'service', 'create', 'web', '--network', 'front');
  const call = async (method: string, path: string, body?: unknown): Promise<{ status: number; code?: string }> => {
    const r = await fetch(`${d.api}${path}`, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
    const j = (await r.json()) as { error?: { code?: string } };
    return { status: r.status, ...(j.error?.code ? { code: j.error.code } : {}) };
  };
  const before = JSON.stringify(await (await fetch(`${d.api}/v1/services`)).json());
  const cases: Array<[string, string, unknown]> = [
    ['POST', '/v1/networks', { name: 5, subnet: '10.1.0.0/24' }],
    ['POST', '/v1/networks', { name: 'x', subnet: 42 }],
    ['POST', '/v1/networks', { name: 'x', subnet: '10.1.0.0/24', gateway: 5 }],
    ['POST', '/v1/networks', { name: 'constructor', subnet: '10.2.0.0/24', gateway: {} }],
    ['POST', '/v1/services', { name: 's', networks: 'front' }],
    ['POST', '/v1/services', { name: 's', networks: [5] }],
    ['POST', '/v1/services', { name: 's', networks: [null] }],
    ['POST', '/v1/services', { name: 's', networks: [{ network: 'front', vip: 5 }] }],
    ['POST', '/v1/services', { name: 's', networks: ['front'], ports: [null] }],
    ['POST', '/v1/services', { name: 's', networks: ['front'], ports: [{ target: '80' }] }],
    ['POST', '/v1/services', { name: 's', networks: ['front'], aliases: 'www' }],
    ['POST', '/v1/services', { name: 's', networks: ['front'], healthCheck: 'tcp' }],
    ['PATCH', '/v1/services/web', { networkRm: 'front' }],
    ['PATCH', '/v1/services/web', { networkRm: [5] }],
    ['PATCH', '/v1/services/web', { networkAdd: 'front' }],
    ['POST', '/v1/tasks', { service: 5 }],
    ['POST', '/v1/tasks', { service: 'web', ips: [5] }],
    ['POST', '/v1/tasks', { service: 'web', ips: '10.0.9.7' }],
    ['POST', '/v1/tasks', { service: 'constructor' }],
    ['POST', '/v1/containers', { name: 'c', networks: [{ network: 5 }] }],
    ['POST', '/v1/containers', { name: 'c', networks: [{ network: 'front', ip: 5 }] }],
    ['POST', '/v1/networks', '{"name": "x", '],
    ['POST', '/v1/networks', [1, 2]],
    ['GET', '/v1/networks/%E0%A4%A', undefined],
    ['GET', '/v1/networks/constructor', undefined],
    ['GET', '/v1/services/toString', undefined],
    ['GET', '/v1/tasks/constructor', undefined],
    ['DELETE', '/v1/tasks/constructor', undefined],
  ];
  for (const [method, path, body] of cases) {
    const r = await call(method, path, body);
    const what = `${method} ${path} ${JSON.stringify(body)}`;
    t.true(r.status >= 400 && r.status < 500, `${what} → ${r.status}`);
    t.truthy(r.code, what);
  }
  t.is(JSON.stringify(await (await fetch(`${d.api}/v1/services`)).json()), before);
  t.is((await fetch(`${d.metrics}/healthz`)).status, 200, 'still alive');
});

test('one host alone: node ls lists it with its tasks; network inspect names it as the peer', async (t) => {
  const d = await startDaemon({ args: ['--node-name', 'solo'] });
  t.teardown(async () => {
    await d.stop();
    removeDir(d.dataDir);
  });
  await ok(d, 'network', 'create', 'front', '--subnet', '10.0.9.0/24');
  await ok(d, 'service', 'create', 'web', '--network', 'front');
  await ok(d, 'task', 'add', 'web');
  await ok(d, 'task', 'add', 'web');
  const nodes = JSON.parse(await ok(d, '--json', 'node', 'ls')) as Array<{ name: string; tasks: number; self: boolean }>;
  t.deepEqual(nodes.map((n) => [n.name, n.tasks, n.self]), [['solo', 2, true]]);
  const net = JSON.parse(await ok(d, '--json', 'network', 'inspect', 'front')) as { services: string[]; peers: Array<{ node: string; tasks: number }> };
  t.deepEqual(net.services, ['web']);
  t.deepEqual(net.peers.map((p) => [p.node, p.tasks]), [['solo', 2]]);
});
