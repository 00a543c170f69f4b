// The typed client end to end over a transport that replays the kernel's
// captured answers: proves request bytes, reply handling and typed errors
// together, without IPVS on the host.
import test from 'ava';
import { IpvsClient } from '../../src/balancer/netlink/ipvs.js';
import { NetlinkError } from '../../src/balancer/netlink/errors.js';
import { ReplayTransport } from './replay-transport.js';
import { allCaptures, loadCapture } from './strace-fixture.js';
import { normalizeIpvsadm, renderLn, sortLikeIpvsadm } from './ipvsadm-text.js';

const tcp80 = { protocol: 'tcp', address: '10.0.0.1', port: 80 } as const;

async function client(...names: string[]): Promise<{ ipvs: IpvsClient; tr: ReplayTransport }> {
  const tr = new ReplayTransport(names.length ? names.map(loadCapture) : allCaptures());
  return { ipvs: await IpvsClient.open({ transport: tr }), tr };
}

test('open() resolves the IPVS family through nlctrl', async (t) => {
  const { ipvs } = await client('01-add-svc-tcp-rr');
  t.is(ipvs.family.name, 'IPVS');
  t.is(ipvs.family.id, 0x20);
});

test('mutations replay against the kernel capture and succeed', async (t) => {
  const { ipvs, tr } = await client();
  await ipvs.addService({ ...tcp80, scheduler: 'rr' });
  await ipvs.addService({ protocol: 'udp', address: '10.0.0.1', port: 53, scheduler: 'wrr', persistence: { timeout: 300, netmask: 24 } });
  await ipvs.addService({ fwmark: 256, scheduler: 'sh' });
  await ipvs.addService({ protocol: 'tcp', address: '2001:db8::1', port: 443, scheduler: 'rr' });
  await ipvs.addDest(tcp80, { address: '10.0.1.2', port: 8080, forward: 'masq', weight: 3 });
  await ipvs.addDest({ fwmark: 256 }, { address: '10.0.1.3', port: 80, forward: 'dr', weight: 1 });
  await ipvs.updateDest(tcp80, { address: '10.0.1.2', port: 8080, forward: 'masq', weight: 5 });
  await ipvs.updateService({ ...tcp80, scheduler: 'wrr' });
  await ipvs.delDest(tcp80, { address: '10.0.1.2', port: 8080 });
  await ipvs.delService(tcp80);
  await ipvs.flush();
  t.true(tr.sent.length >= 12);
});

test('kernel errors surface as NetlinkError with errno codes', async (t) => {
  const { ipvs } = await client('11-add-svc-dup-eexist', '12-del-svc-missing-esrch', '13-del-dest-missing');
  const dup = await t.throwsAsync(ipvs.addService({ ...tcp80, scheduler: 'rr' }));
  t.true(dup instanceof NetlinkError);
  t.like(dup as NetlinkError, { code: 'EEXIST', errno: 17 });
  t.regex(dup!.message, /NEW_SERVICE tcp:10\.0\.0\.1:80: EEXIST/);
  const missing = await t.throwsAsync(ipvs.delService({ protocol: 'tcp', address: '10.9.9.9', port: 80 }));
  t.like(missing as NetlinkError, { code: 'ESRCH', errno: 3 });
  const noDest = await t.throwsAsync(ipvs.delDest(tcp80, { address: '10.0.1.9', port: 8080 }));
  t.like(noDest as NetlinkError, { code: 'ENOENT', errno: 2 });
});

test('listing services and dests reproduces `ipvsadm -Ln`; info and timeouts decode', async (t) => {
  const { ipvs } = await client('10-list', '16-get-timeouts');
  t.deepEqual(await ipvs.getInfo(), { version: '1.2.1', versionCode: 0x010201, connTableSize: 4096 });
  const services = await ipvs.listServices();
  const state = [];
  for (const service of services) state.push({ service, dests: await ipvs.listDests(service.key) });
  t.deepEqual(renderLn(sortLikeIpvsadm(state)), normalizeIpvsadm(loadCapture('10-list').out));
  t.deepEqual(await ipvs.getTimeouts(), { tcp: 900, tcpFin: 120, udp: 300 });
});

test('an empty table lists as []', async (t) => {
  const { ipvs } = await client('18-list-empty');
  t.deepEqual(await ipvs.listServices(), []);
});

test('batch(): several ops in one datagram, each answered from the capture', async (t) => {
  const { ipvs, tr } = await client();
  const before = tr.sent.length;
  const res = await ipvs.batch([
    { op: 'addService', service: { ...tcp80, scheduler: 'rr' } },
    { op: 'addDest', service: tcp80, dest: { address: '10.0.1.2', port: 8080, forward: 'masq', weight: 3 } },
    { op: 'updateService', service: { ...tcp80, scheduler: 'wrr' } },
  ]);
  t.is(tr.sent.length, before + 1);
  t.deepEqual(res, [{ ok: true }, { ok: true }, { ok: true }]);
});
