// Forwarding with real peers on loopback: unbound and dnsmasq as upstreams, a dead port, a
// slow server and a server whose UDP answers are truncated; the real daemon and the real dig.
import test from 'ava';
import { removeDir, shortAnswers, startDaemon } from '../helpers/daemon.js';
import { freePort, startDnsmasq, startScripted, startUnbound } from '../helpers/peers.js';

const SOA = 'test.example. 300 IN SOA ns.test.example. host.test.example. 1 3600 600 86400 60';

async function metric(url: string, re: RegExp): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = re.exec(text);
  return m ? Number(m[1]) : 0;
}

test('unbound upstream: answers, NXDOMAIN passes through, cache and negative cache outlive the upstream', async (t) => {
  const ub = await startUnbound(['a.test.example. 300 IN A 192.0.2.1', 'b.test.example. 300 IN AAAA 2001:db8::1', SOA], ['test.example.']);
  t.teardown(() => ub.stop());
  const d = await startDaemon({ args: ['--upstream', `127.0.0.1:${ub.port}`] });
  t.teardown(async () => {
    await d.stop();
    removeDir(d.dataDir);
  });
  t.truthy(d.logs.find((l) => l.includes('forwarding to upstreams') && l.includes(`127.0.0.1:${ub.port}`)), 'logs the upstreams it uses');
  t.deepEqual(shortAnswers(await d.dig('+short', 'a.test.example')), ['192.0.2.1']);
  t.regex(await d.dig('A.Test.Example'), /^A\.Test\.Example\.\s+\d+\s+IN\s+A\s+192\.0\.2\.1$/m, 'the client spelling comes back');
  t.deepEqual(shortAnswers(await d.dig('+short', 'b.test.example', 'AAAA')), ['2001:db8::1']);
  const nx = await d.dig('nope.test.example');
  t.regex(nx, /status: NXDOMAIN/);
  t.regex(nx, /flags: qr aa rd ra/, "the upstream's flags pass through");
  t.regex(nx, /SOA\s+ns\.test\.example\./, 'the SOA comes along for negative caching');

  const hitsBefore = await metric(d.metrics, /^vipdns_cache_hits_total\{type="success"\} (\d+)/m);
  await d.dig('+short', 'a.test.example');
  t.true((await metric(d.metrics, /^vipdns_cache_hits_total\{type="success"\} (\d+)/m)) > hitsBefore, 'second lookup is a cache hit');

  await ub.stop(); // the upstream is gone: cached answers still come back, with ageing TTLs
  const cached = await d.dig('a.test.example');
  t.regex(cached, /status: NOERROR/);
  const ttl = Number(/^a\.test\.example\.\s+(\d+)\s+IN\s+A/m.exec(cached)?.[1]);
  t.true(ttl <= 300 && ttl > 250, `TTL ages from 300 (${ttl})`);
  t.regex(await d.dig('nope.test.example'), /status: NXDOMAIN/, 'negative answer cached (SOA minimum 60 s)');
  t.true((await metric(d.metrics, /^vipdns_cache_hits_total\{type="denial"\} (\d+)/m)) >= 1);
  t.regex(await d.dig('uncached.test.example'), /status: SERVFAIL/, 'no upstream left and nothing cached: SERVFAIL');
  const text = await (await fetch(`${d.metrics}/metrics`)).text();
  t.regex(text, /vipdns_forward_requests_total\{upstream="127\.0\.0\.1:\d+",rcode="NOERROR"\} \d+/);
  t.regex(text, /vipdns_dns_requests_total\{proto="udp",type="A",network="loopback"\} \d+/);
  t.regex(text, /vipdns_dns_request_duration_seconds_bucket\{proto="udp",le="0.001"\} \d+/);
  t.notRegex(text, /test\.example/, 'no query names in metrics');
});

test('a dead upstream and a slow one cost one hedge delay, not a timeout per query (moby#20029)', async (t) => {
  const dm = await startDnsmasq(['--address=/test.example/192.0.2.7']);
  const slow = await startScripted({ delayMs: 3000, answers: (n) => [{ name: n, type: 'A', ttl: 60, data: '192.0.2.99' }] });
  const dead = await freePort(); // nothing listens here
  t.teardown(async () => {
    await dm.stop();
    await slow.stop();
  });
  const d = await startDaemon({
    args: ['--upstream', `127.0.0.1:${dead}`, '--upstream', `127.0.0.1:${slow.port}`, '--upstream', `127.0.0.1:${dm.port}`],
    env: { VIPDNS_HEDGE_MS: '150' },
  });
  t.teardown(async () => {
    await d.stop();
    removeDir(d.dataDir);
  });
  const times: number[] = [];
  for (let i = 0; i < 15; i++) {
    const t0 = Date.now();
    const out = await d.dig(`+time=5`, `n${i}.test.example`);
    times.push(Date.now() - t0);
    t.regex(out, /status: NOERROR/, `n${i}`);
    t.regex(out, /IN\s+A\s+192\.0\.2\.7/, 'the healthy upstream answered (the slow one lost the race)');
  }
  const worst = Math.max(...times);
  t.true(worst < 1500, `every lookup within one hedge delay + slack (worst ${worst} ms; Docker: 4000+)`);
  const text = await (await fetch(`${d.metrics}/metrics`)).text();
  t.regex(text, new RegExp(`vipdns_forward_upstream_healthy\\{upstream="127\\.0\\.0\\.1:${dead}"\\} 0`), 'the dead upstream is marked unhealthy');
  t.regex(text, new RegExp(`vipdns_forward_upstream_healthy\\{upstream="127\\.0\\.0\\.1:${dm.port}"\\} 1`));
});

test('a truncated UDP answer from upstream is retried over TCP; the client gets TC, then all of it over TCP', async (t) => {
  const big = await startScripted({
    udpTruncate: true,
    answers: (n) => Array.from({ length: 100 }, (_, i) => ({ name: n, type: 'A' as const, ttl: 60, data: `198.51.100.${i + 1}` })),
  });
  t.teardown(() => big.stop());
  const d = await startDaemon({ args: ['--upstream', `127.0.0.1:${big.port}`] });
  t.teardown(async () => {
    await d.stop();
    removeDir(d.dataDir);
  });
  const udpOnly = await d.dig('+ignore', '+bufsize=1232', 'many.example');
  t.regex(udpOnly, /flags: qr tc rd ra/, '100 A records do not fit in 1232 bytes: TC to the client');
  t.true(big.tcpQueries >= 1, 'vipdns retried the upstream over TCP');
  const full = await d.dig('many.example'); // dig retries over TCP itself on TC
  t.regex(full, /ANSWER: 100,/);
  t.is(shortAnswers(await d.dig('+tcp', '+short', 'many.example')).length, 100);
});
