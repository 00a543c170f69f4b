// DNS worker threads (--dns-workers): several UDP sockets on one port with datagrams spread over
// them at random, each thread answering from its own copy of the catalog; forwarding through
// the main thread; metrics summed over threads; a write visible on every thread once the API
// has answered it. The real daemon, CLI, dig and a dnsmasq upstream.
import test from 'ava';
import * as dgram from 'node:dgram';
import * as packet from 'dns-packet';
import { removeDir, shortAnswers, startDaemon } from '../helpers/daemon.js';
import { freePort, startDnsmasq } from '../helpers/peers.js';

/**
 * Sends one query per name from one socket (one flow), 50 in flight at a time so no socket
 * buffer overflows, and returns the decoded replies in order (undefined: no reply in 5 s).
 */
async function queryAll(port: number, names: string[]): Promise<Array<packet.Packet | undefined>> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  const replies: Array<packet.Packet | undefined> = Array.from({ length: names.length }, () => undefined);
  let wake: (() => void) | undefined;
  sock.on('message', (m) => {
    const p = packet.decode(m);
    if (p.id === undefined || p.id >= names.length || replies[p.id]) return;
    replies[p.id] = p;
    wake?.();
  });
  for (let from = 0; from < names.length; from += 50) {
    const to = Math.min(names.length, from + 50);
    for (let i = from; i < to; i++) {
      sock.send(packet.encode({ id: i, type: 'query', flags: packet.RECURSION_DESIRED, questions: [{ name: names[i]!, type: 'A', class: 'IN' }] }), port, '127.0.0.1');
    }
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline && replies.slice(from, to).some((p) => p === undefined)) {
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 100);
      });
    }
  }
  sock.close();
  return replies;
}

const firstA = (p: packet.Packet | undefined): string | undefined => (p?.answers?.find((a) => a.type === 'A') as { data: string } | undefined)?.data;

const rcodeOf = (p: packet.Packet | undefined): string | undefined => (p as { rcode?: string } | undefined)?.rcode;

async function metricsText(url: string): Promise<string> {
  return (await fetch(`${url}/metrics`)).text();
}

function sumOf(text: string, re: RegExp): number {
  let n = 0;
  for (const m of text.matchAll(re)) n += Number(m[1]);
  return n;
}

test('--dns-workers 2: both threads answer one flow, writes are seen at once, forwards work, metrics add up, clean stop', async (t) => {
  const dm = await startDnsmasq(['--address=/test.example/192.0.2.7']);
  t.teardown(() => dm.stop());
  const d = await startDaemon({ args: ['--dns-workers', '2', '--upstream', `127.0.0.1:${dm.port}`] });
  t.teardown(async () => {
    await d.stop();
    removeDir(d.dataDir);
  });
  t.regex(await (await fetch(`${d.metrics}/readyz`)).text(), /UDP on 2 threads/);
  await d.ok('network', 'create', 'front', '--subnet', '10.0.9.0/24');
  await d.ok('service', 'create', 'web', '--network', 'front');

  // One client socket is one flow: the kernel's default hash would pin it to one thread.
  const web = await queryAll(d.dnsPort, Array.from({ length: 400 }, (_, i) => (i % 2 ? 'web' : 'WEB.vipdns.internal')));
  t.is(web.filter((p) => firstA(p) === '10.0.9.2').length, 400, `every query answered with the VIP: ${JSON.stringify(web.map((p, i) => [i, p ? rcodeOf(p) : 'lost', firstA(p)]).filter((x) => x[2] !== '10.0.9.2'))}`);
  t.true(web.every((p, i) => p?.questions?.[0]?.name === (i % 2 ? 'web' : 'WEB.vipdns.internal')), 'the question keeps its case');

  // Read-your-writes: the API answers a write only once every thread answers from the new
  // catalog (straight HTTP, not the CLI: the race would hide behind a process start).
  for (let round = 0; round < 5; round++) {
    const res = await fetch(`${d.api}/v1/services`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: `new${round}`, networks: ['front'] }) });
    t.is(res.status, 201);
    const r = await queryAll(d.dnsPort, Array.from({ length: 100 }, () => `new${round}`));
    t.is(r.filter((p) => rcodeOf(p) === 'NOERROR' && firstA(p) !== undefined).length, 100, `new${round} visible on every thread at once`);
  }
  t.is((await fetch(`${d.api}/v1/services/new0`, { method: 'DELETE' })).status, 200);
  const gone = await queryAll(d.dnsPort, Array.from({ length: 100 }, () => 'new0'));
  t.is(gone.filter((p) => rcodeOf(p) === 'NXDOMAIN').length, 100, 'a removal too');

  // Forwarding: the worker hands outside names to the main thread, which owns the upstreams.
  const fwd = await queryAll(d.dnsPort, Array.from({ length: 200 }, (_, i) => `n${i}.test.example`));
  t.is(fwd.filter((p) => firstA(p) === '192.0.2.7').length, 200, 'every forwarded query answered');
  t.deepEqual(shortAnswers(await d.dig('+short', 'web')), ['10.0.9.2']);
  t.deepEqual(shortAnswers(await d.dig('+short', '+tcp', 'web')), ['10.0.9.2'], 'TCP stays with the main thread');

  // Workers report every second: the totals cover every thread, each thread took a share.
  const sent = 400 + 500 + 100 + 200 + 1;
  let text = '';
  for (let i = 0; i < 40; i++) {
    text = await metricsText(d.metrics);
    if (sumOf(text, /^vipdns_dns_requests_total\{proto="udp"[^}]*\} (\d+)/gm) >= sent) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  t.is(sumOf(text, /^vipdns_dns_requests_total\{proto="udp"[^}]*\} (\d+)/gm), sent, 'UDP requests summed over threads');
  t.is(sumOf(text, /^vipdns_dns_answers_total\{source="(?:forward|cache)"\} (\d+)/gm), 200);
  const perThread = [...text.matchAll(/^vipdns_dns_worker_requests_total\{worker="(\d)"\} (\d+)/gm)].map((m) => Number(m[2]));
  t.is(perThread.length, 2);
  t.true(
    perThread.every((n) => n > sent / 5),
    `both threads took a fair share of one flow: ${perThread.join(' / ')}`,
  );
  t.is(sumOf(text, /^vipdns_dns_request_duration_seconds_count\{proto="udp"\} (\d+)/gm), sent, 'durations summed over threads');

  t.is(await d.stop(), 0, 'SIGTERM stops the workers and the daemon cleanly');
});

test('--dns-workers rejects nonsense with a clear line', async (t) => {
  const d = startDaemon({ args: ['--dns-workers', '0'] });
  const e = await t.throwsAsync(d);
  t.regex(e?.message ?? '', /dnsWorkers must be a whole number from 1 to 64, got "0"/);
});

test('a second daemon with --dns-workers on the same port fails with EADDRINUSE; the first keeps answering', async (t) => {
  const port = await freePort();
  const a = await startDaemon({ dnsListen: `127.0.0.1:${port}`, args: ['--dns-workers', '2'] });
  t.teardown(async () => {
    await a.stop();
    removeDir(a.dataDir);
  });
  await a.ok('network', 'create', 'front', '--subnet', '10.0.9.0/24');
  await a.ok('service', 'create', 'web', '--network', 'front');
  const b = startDaemon({ dnsListen: `127.0.0.1:${port}`, args: ['--dns-workers', '2'] });
  const e = await t.throwsAsync(b);
  t.regex(e?.message ?? '', /EADDRINUSE/);
  const r = await queryAll(port, Array.from({ length: 200 }, () => 'web'));
  t.is(r.filter((p) => firstA(p) === '10.0.9.2').length, 200);
});
