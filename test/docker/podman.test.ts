// The Docker source against a real Docker-compatible engine (podman's API service), with the
// real daemon, the real CLI and dig: start, stop and remove containers; DNS follows.
import test from 'ava';
import { type DaemonHandle, removeDir, shortAnswers, startDaemon } from '../helpers/daemon.js';
import { podmanAvailable, run, startPodman } from './podman.js';

const avail = podmanAvailable();
const maybe = avail.ok ? test.serial : test.skip;
if (!avail.ok) console.log(`# podman tests skipped: ${avail.reason}`);

async function until(what: string, f: () => Promise<boolean>, ms = 10_000): Promise<number> {
  const start = Date.now();
  while (!(await f())) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return Date.now() - start;
}

maybe('real podman: labelled containers become a service, others containers; stop and rm leave DNS', async (t) => {
  const pm = await startPodman();
  let d: DaemonHandle | undefined;
  t.teardown(async () => {
    await d?.stop();
    if (d) removeDir(d.dataDir);
    await pm.stop();
  });
  const api = pm.api;
  await api.request('POST', '/networks/create', { Name: 'front', IPAM: { Config: [{ Subnet: '10.31.0.0/24', Gateway: '10.31.0.1' }] } });
  await run(api, 'web-1', 'front', { 'vipdns.service': 'web', 'vipdns.ports': 'http=80', 'vipdns.alias': 'www' });
  d = await startDaemon({ args: ['--docker', `unix://${pm.socket}`] });
  const dd = d;
  await until('web from the initial listing', async () => shortAnswers(await dd.dig('+short', 'tasks.web')).length === 1);

  // Started after the daemon: picked up from the event stream.
  await run(api, 'web-2', 'front', { 'vipdns.service': 'web', 'vipdns.ports': 'http=80', 'vipdns.alias': 'www' });
  await run(api, 'db', 'front', {}, ['database']);
  await run(api, 'api-1', 'front', { 'vipdns.service': 'api', 'vipdns.endpoint-mode': 'dnsrr' });
  await until('web-2, db, api', async () => shortAnswers(await dd.dig('+short', 'tasks.web')).length === 2 && shortAnswers(await dd.dig('+short', 'database')).length === 1 && shortAnswers(await dd.dig('+short', 'api')).length === 1);

  const list = await api.request<Array<{ Names: string[]; NetworkSettings: { Networks: Record<string, { IPAddress: string }> } }>>('GET', '/containers/json');
  const ip = (n: string): string => list.find((c) => c.Names[0]!.replace('/', '') === n)!.NetworkSettings.Networks.front!.IPAddress;
  t.deepEqual(shortAnswers(await d.dig('+short', 'web')), ['10.31.0.254'], 'the VIP, from the top of the subnet');
  t.deepEqual(shortAnswers(await d.dig('+short', 'www')), ['10.31.0.254']);
  t.deepEqual(shortAnswers(await d.dig('+short', 'tasks.web')).sort(), [ip('web-1'), ip('web-2')].sort());
  t.deepEqual(shortAnswers(await d.dig('+short', 'db')), [ip('db')]);
  t.deepEqual(shortAnswers(await d.dig('+short', 'database')), [ip('db')]);
  t.deepEqual(shortAnswers(await d.dig('+short', 'web-1.front.vipdns.internal')), [ip('web-1')], 'a task by its container name');
  t.deepEqual(shortAnswers(await d.dig('+short', 'api')), [ip('api-1')]);
  const svcLs = await d.cli('service', 'ls');
  t.regex(svcLs.stdout, /web\s+vip\s+rr\s+2\s+front\s+10\.31\.0\.254\s+http=80\/tcp/);
  t.regex((await d.cli('container', 'ls')).stdout, /db\s+database@front\s+front=10\.31\.0\.\d+/, 'a network alias, shown with its network');
  const ready = await (await fetch(`${d.metrics}/readyz`)).text();
  t.regex(ready, /\[\+\] docker: following unix:\/\//);

  // docker stop: the task leaves DNS; the VIP stays.
  await api.request('POST', '/containers/web-1/stop?t=0');
  const ms = await until('web-1 out of tasks.web', async () => shortAnswers(await dd.dig('+short', 'tasks.web')).length === 1);
  t.log(`stopped container left DNS ${ms} ms after the stop call returned`);
  t.deepEqual(shortAnswers(await d.dig('+short', 'tasks.web')), [ip('web-2')]);
  t.deepEqual(shortAnswers(await d.dig('+short', 'web')), ['10.31.0.254']);
  // docker rm -f db: gone.
  await api.request('DELETE', '/containers/db?force=true');
  await until('db gone', async () => /NXDOMAIN/.test(await dd.dig('db')));
  // docker start again: back.
  await api.request('POST', '/containers/web-1/start');
  await until('web-1 back', async () => shortAnswers(await dd.dig('+short', 'tasks.web')).length === 2);
  t.pass();
});
