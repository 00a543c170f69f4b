// A machine without a C toolchain: the install step skips the native addons with one line and
// succeeds, and the daemon runs without them, saying once what is slower or missing, and answers.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT, removeDir, run, startDaemon } from '../helpers/daemon.js';

const SCRIPT = join(ROOT, 'scripts', 'build-addons.mjs');

test('without python3, make or a compiler on PATH the install step exits 0 with one line naming what is missing', (t) => {
  // Only node itself is reachable: PATH holds nothing.
  const r = spawnSync(process.execPath, [SCRIPT], { env: { PATH: '/nonexistent' }, encoding: 'utf8', cwd: ROOT });
  t.is(r.status, 0, r.stderr);
  const lines = r.stderr.trim().split('\n');
  t.is(lines.length, 1, r.stderr);
  t.regex(lines[0]!, /native addons not built/);
  t.regex(lines[0]!, /Missing: python3, make, a C compiler/);
  t.regex(lines[0]!, /npm run build:native/);
  t.is(r.stdout, '');
});

test('CI can insist: VIPDNS_REQUIRE_ADDONS=1 makes a missing toolchain fail the install', (t) => {
  const r = spawnSync(process.execPath, [SCRIPT], { env: { PATH: '/nonexistent', VIPDNS_REQUIRE_ADDONS: '1' }, encoding: 'utf8', cwd: ROOT });
  t.is(r.status, 1);
  t.regex(r.stderr, /Missing: python3/);
});

test('the daemon without its addons says once what it lacks and answers DNS (UDP and TCP)', async (t) => {
  const d = await startDaemon({ env: { VIPDNS_UDP_ADDON: '/nonexistent/vipdns_udp.node', VIPDNS_NETLINK_ADDON: '/nonexistent/vipdns_netlink.node' } });
  t.teardown(async () => {
    await d.stop();
    removeDir(d.dataDir);
  });
  const said = d.logs.filter((l) => l.includes('native addons not built'));
  t.is(said.length, 1, d.logs.join('\n'));
  t.regex(said[0]!, /vipdns_udp: UDP DNS runs on node:dgram/);
  t.regex(said[0]!, /vipdns_netlink: no IPVS dataplane/);
  const created = await fetch(`${d.api}/v1/networks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'front', subnet: '10.77.0.0/24' }) });
  t.is(created.status, 201);
  const svc = await fetch(`${d.api}/v1/services`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'web', networks: ['front'] }) });
  t.is(svc.status, 201);
  const vip = ((await svc.json()) as { attachments: Array<{ vip: string }> }).attachments[0]!.vip;
  for (const proto of ['+notcp', '+tcp']) {
    const r = await run('dig', ['@127.0.0.1', '-p', String(d.dnsPort), 'web', 'A', '+short', proto, '+time=2', '+tries=1']);
    t.is(r.stdout.trim(), vip, proto);
  }
});

test('a machine with addons says nothing about them', async (t) => {
  const d = await startDaemon();
  t.teardown(async () => {
    await d.stop();
    removeDir(d.dataDir);
  });
  t.false(d.logs.some((l) => l.includes('native addons not built')), d.logs.join('\n'));
});
