// SRV, EDNS, truncation, case and ANY for internal names, checked with the real dig.
import test from 'ava';
import { type DaemonHandle, removeDir, shortAnswers, startDaemon } from '../helpers/daemon.js';

const ok = (d: DaemonHandle, ...args: string[]): Promise<string> => d.ok(...args);

test('SRV for named ports, EDNS echo, TC without EDNS, ANY and case, with dig', async (t) => {
  const d = await startDaemon();
  t.teardown(async () => {
    await d.stop();
    removeDir(d.dataDir);
  });
  await ok(d, 'network', 'create', 'front', '--subnet', '10.0.9.0/24');
  await ok(d, 'service', 'create', 'web', '--network', 'front', '--port', 'http=80');
  await ok(d, 'service', 'create', 'api', '--network', 'front', '--endpoint-mode', 'dnsrr', '--port', 'grpc=9000');
  await ok(d, 'service', 'create', 'big', '--network', 'front', '--endpoint-mode', 'dnsrr');
  await ok(d, 'task', 'add', 'web');
  for (let i = 0; i < 3; i++) await ok(d, 'task', 'add', 'api');
  for (let i = 0; i < 40; i++) await ok(d, 'task', 'add', 'big');

  const srv = await d.dig('_http._tcp.web', 'SRV');
  t.regex(srv, /status: NOERROR/);
  t.regex(srv, /flags: qr aa rd ra/);
  t.regex(srv, /^_http\._tcp\.web\.\s+60\s+IN\s+SRV\s+0 10 80 web\.front\.vipdns\.internal\.$/m, 'vip mode: the VIP name as target');
  t.regex(srv, /^web\.front\.vipdns\.internal\.\s+60\s+IN\s+A\s+10\.0\.9\.2$/m, 'glue in the additional section');
  t.deepEqual(shortAnswers(await d.dig('+short', 'web.front.vipdns.internal')), ['10.0.9.2'], 'the target resolves');
  const apiSrv = shortAnswers(await d.dig('+short', '_grpc._tcp.api.front.vipdns.internal', 'SRV'));
  t.is(apiSrv.length, 3, 'dnsrr: one SRV per task');
  for (const l of apiSrv) {
    t.regex(l, /^0 10 9000 api\.\d+\.\w+\.front\.vipdns\.internal\.$/);
    const target = l.split(' ')[3]!;
    t.is(shortAnswers(await d.dig('+short', target)).length, 1, `${target} resolves`);
  }
  t.regex(await d.dig('_nope._tcp.web', 'SRV'), /status: NXDOMAIN/);
  t.regex(await d.dig('_http._tcp.web', 'A'), /status: NOERROR.*\n.*ANSWER: 0/, 'SRV name, other type: NODATA');

  const edns = await d.dig('+bufsize=4096', 'web');
  t.regex(edns, /; EDNS: version: 0, flags:; udp: 1232/, 'OPT echoed with our size');
  t.notRegex(await d.dig('+noedns', 'web'), /OPT PSEUDOSECTION/, 'no OPT when the client sent none');
  t.regex(await d.dig('+edns=1', 'web'), /BADVERS/, 'EDNS version 1 gets BADVERS (dig then retries with 0)');

  const plain = await d.dig('+noedns', '+ignore', 'big');
  t.regex(plain, /flags: qr aa tc rd ra/, '40 A records exceed 512 bytes: TC');
  const viaEdns = await d.dig('+bufsize=1232', 'big');
  t.regex(viaEdns, /ANSWER: 40,/);
  t.regex(viaEdns, /MSG SIZE\s+rcvd: (\d+)/);
  const size = Number(/MSG SIZE\s+rcvd: (\d+)/.exec(viaEdns)?.[1]);
  t.true(size <= 12 + 9 + 40 * 16 + 11, `compressed: ${size} bytes for 40 A records`);
  t.regex(await d.dig('+tcp', 'big'), /ANSWER: 40,/);

  const any = await d.dig('WeB', 'ANY');
  t.regex(any, /^WeB\.\s+60\s+IN\s+A\s+10\.0\.9\.2$/m, 'ANY: the addresses, in the query case');
  const nx = await d.dig('nothing-here.front');
  t.regex(nx, /status: NXDOMAIN/);
  t.regex(nx, /^vipdns\.internal\.\s+5\s+IN\s+SOA\s+ns\.vipdns\.internal\. hostmaster\.vipdns\.internal\. \d+ 3600 600 86400 5$/m, 'RFC 2308 SOA');
});
