// The full fuzz run: 1,000,000 hostile datagrams (plus garbage TCP streams) at a real vipdns
// daemon on loopback, then a valid query must still get the right answer, and the daemon must
// still be the same process. Usage: node dist/bench/dns-fuzz.js [COUNT]
import * as dgram from 'node:dgram';
import * as packet from 'dns-packet';
import { removeDir, startDaemon } from '../test/helpers/daemon.js';
import { Rng, garbageTcpStreams, hostilePacket } from '../test/helpers/fuzz.js';

const COUNT = Number(process.argv[2] ?? 1_000_000);

const d = await startDaemon();
const cli = async (...a: string[]): Promise<void> => {
  const r = await d.cli(...a);
  if (r.code !== 0) throw new Error(r.stderr);
};
await cli('network', 'create', 'front', '--subnet', '10.0.9.0/24');
await cli('service', 'create', 'web', '--network', 'front', '--port', 'http=80');
await cli('service', 'create', 'api', '--network', 'front', '--endpoint-mode', 'dnsrr');
for (let i = 0; i < 3; i++) await cli('task', 'add', 'api');
const pid = d.proc.pid;
const sock = dgram.createSocket('udp4');
await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
let replies = 0;
sock.on('message', () => replies++);
const rng = new Rng(Number(process.env.SEED ?? 0x5eed));
const t0 = Date.now();
// Paced (60 per ms) so the server, not the socket buffer, sees nearly every packet.
for (let i = 0; i < COUNT; i += 60) {
  for (let j = 0; j < 60 && i + j < COUNT; j++) sock.send(hostilePacket(rng), d.dnsPort, '127.0.0.1');
  await new Promise((r) => setTimeout(r, 1));
}
await garbageTcpStreams(d.dnsPort, rng, 500, 50, 5);
const secs = (Date.now() - t0) / 1000;
await new Promise((r) => setTimeout(r, 500));
const web = await d.dig('+short', 'WEB');
const srv = await d.dig('+short', '_http._tcp.web', 'SRV');
const tcp = await d.dig('+tcp', '+short', 'tasks.api');
const alive = d.proc.exitCode === null && d.proc.pid === pid;
const metrics = await (await fetch(`${d.metrics}/metrics`)).text();
const mal = [...metrics.matchAll(/^vipdns_dns_malformed_total\{reason="(\w+)"\} (\d+)/gm)];
const parsed = [...metrics.matchAll(/^vipdns_dns_requests_total\{[^}]*\} (\d+)/gm)].reduce((a, m) => a + Number(m[1]), 0);
const seen = parsed + mal.reduce((a, m) => a + Number(m[2]), 0);
console.log(`sent ${COUNT} hostile datagrams + 25,000 TCP frames in ${secs.toFixed(1)} s; the server processed ${seen} (${parsed} parsed as queries; malformed: ${mal.map((m) => `${m[1]}=${m[2]}`).join(' ')}); ${replies} UDP replies`);
console.log(`after: web -> ${web.trim()}; _http._tcp.web SRV -> ${srv.trim()}; tasks.api over TCP -> ${tcp.trim().split('\n').length} IPs; same process alive: ${alive}`);
const ok = web.trim() === '10.0.9.2' && /^0 10 80 web\.front\.vipdns\.internal\.$/.test(srv.trim()) && tcp.trim().split('\n').length === 3 && alive;
sock.close();
await d.stop();
removeDir(d.dataDir);
console.log(ok ? 'PASS' : 'FAIL');
process.exit(ok ? 0 : 1);
void packet;
