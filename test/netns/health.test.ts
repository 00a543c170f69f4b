// Active health checks against real servers in their own namespaces, stopped and restarted.
import test from 'ava';
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { ROOT, removeDir, startDaemon } from '../helpers/daemon.js';
import { NetnsSet, canUseNetns, sh } from '../helpers/ns.js';

const can = canUseNetns();
const rootTest = can.ok ? test.serial : test.skip;
if (!can.ok) console.log(`netns health tests skipped: ${can.reason}`);

const BACKEND = join(ROOT, 'test/fixtures/backend.mjs');

function startBackend(ns: string, name: string, ip: string): Promise<ChildProcess> {
  const p = spawn('ip', ['netns', 'exec', ns, process.execPath, BACKEND, name, ip, '8080'], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    p.stdout!.once('data', () => resolve(p));
    p.once('exit', (c) => reject(new Error(`backend ${name} exited ${c}`)));
  });
}

async function waitFor(what: string, fn: () => Promise<boolean>, timeoutMs = 15_000): Promise<number> {
  const start = Date.now();
  while (Date.now() - start < timeoutMs) {
    if (await fn()) return Date.now() - start;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

rootTest(`unhealthy tasks leave dnsrr answers and come back; all unhealthy fails open${can.ok ? '' : ` (skipped: ${can.reason})`}`, async (t) => {
  const ns = new NetnsSet();
  const procs: ChildProcess[] = [];
  t.teardown(() => {
    for (const p of procs) p.kill('SIGKILL');
    ns.destroy();
  });
  const host = ns.add('h');
  sh('ip', ['-n', host, 'link', 'add', 'br0', 'type', 'bridge']);
  sh('ip', ['-n', host, 'addr', 'add', '10.78.0.1/24', 'dev', 'br0']);
  sh('ip', ['-n', host, 'link', 'set', 'br0', 'up']);
  const ips = ['10.78.0.11', '10.78.0.12', '10.78.0.13'];
  const bns: string[] = [];
  for (let i = 0; i < 3; i++) {
    const b = ns.add(`b${i}`);
    bns.push(b);
    ns.link(host, `vb${i}`, '0.0.0.0/32', b, 'eth0', `${ips[i]}/24`);
    sh('ip', ['-n', host, 'addr', 'flush', 'dev', `vb${i}`]);
    sh('ip', ['-n', host, 'link', 'set', `vb${i}`, 'master', 'br0']);
    procs[i] = await startBackend(b, `b${i}`, ips[i]!);
  }
  const d = await startDaemon({ wrap: ['ip', 'netns', 'exec', host] });
  t.teardown(async () => {
    await d.stop();
    removeDir(d.dataDir);
  });
  const ok = (...a: string[]): Promise<string> => d.ok(...a);
  await ok('network', 'create', 'n', '--subnet', '10.78.0.0/24');
  await ok('service', 'create', 'web', '--network', 'n', '--endpoint-mode', 'dnsrr', '--health-check', 'http:8080/', '--health-interval', '300', '--health-timeout', '200');
  for (const ip of ips) await ok('task', 'add', 'web', '--ip', ip);
  const health = async (): Promise<Record<string, string>> => {
    const list = JSON.parse(await ok('--json', 'task', 'ls', 'web')) as Array<{ addresses: { n: string }; health: string }>;
    return Object.fromEntries(list.map((x) => [x.addresses.n, x.health]));
  };
  const answers = async (): Promise<string[]> => {
    const out = sh('ip', ['netns', 'exec', host, 'dig', '@127.0.0.1', '-p', String(d.dnsPort), '+short', '+time=2', 'web']);
    return out.split('\n').filter(Boolean).sort();
  };
  await waitFor('all healthy', async () => Object.values(await health()).every((h) => h === 'healthy'));
  t.deepEqual(await answers(), ips);

  procs[1]!.kill('SIGKILL');
  const took = await waitFor('b1 unhealthy', async () => (await health())['10.78.0.12'] === 'unhealthy');
  t.log(`b1 marked unhealthy ${took} ms after its server died (interval 300 ms, fall 2)`);
  t.deepEqual(await answers(), [ips[0], ips[2]], 'the unhealthy task left the answers');

  procs[1] = await startBackend(bns[1]!, 'b1', ips[1]!);
  await waitFor('b1 healthy again', async () => (await health())['10.78.0.12'] === 'healthy');
  t.deepEqual(await answers(), ips, 'it came back');

  for (const p of procs) p.kill('SIGKILL');
  await waitFor('all unhealthy', async () => Object.values(await health()).every((h) => h === 'unhealthy'));
  t.deepEqual(await answers(), ips, 'no healthy task: answers fail open to all tasks');
  const metrics = sh('ip', ['netns', 'exec', host, 'curl', '-s', `${d.metrics}/metrics`]);
  t.regex(metrics, /vipdns_services_without_healthy_tasks 1/);
  t.regex(metrics, /vipdns_health_checks_total\{service="web",result="failure"\} \d+/);
  t.regex(metrics, /vipdns_catalog_tasks\{health="unhealthy"\} 3/);
});
