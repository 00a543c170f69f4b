// Encoder output vs. bytes ipvsadm sent to a real 6.1 kernel, and decoder vs.
// what that kernel answered (fixtures/*.strace, captured in the IPVS VM, test/vm/vm.sh).
import test from 'ava';
import { encodeNlMsg, parseNlMsgs, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST } from '../../src/balancer/netlink/nlmsg.js';
import { decodeFamily, encodeGetFamily, GENL_ID_CTRL } from '../../src/balancer/netlink/genl.js';
import {
  IpvsCmd, decodeConfig, decodeDest, decodeInfo, decodeService, encodeDelDest, encodeDelService, encodeFlush,
  encodeGetConfig, encodeGetDests, encodeGetInfo, encodeGetService, encodeNewDest, encodeNewService, encodeSetDest,
  encodeSetService, serviceId, type ServiceKey, type ServiceSpec,
} from '../../src/balancer/netlink/ipvs-codec.js';
import { exchangeFor, loadCapture, maskSeqPid } from './strace-fixture.js';
import { normalizeIpvsadm, renderLn, sortLikeIpvsadm } from './ipvsadm-text.js';

// The IPVS family id the 6.1 VM kernel assigned (from the nlctrl reply, checked below).
const IPVS_ID = 0x20;

/** Frames our payload like the channel does, with the captured seq/pid, and compares exactly. */
function assertSameRequest(t: import('ava').ExecutionContext, fixture: string, cmd: number, payload: Buffer, dump = false) {
  const cap = loadCapture(fixture);
  const { request } = exchangeFor(cap, IPVS_ID, cmd);
  const flags = NLM_F_REQUEST | NLM_F_ACK | (dump ? NLM_F_DUMP : 0);
  const ours = encodeNlMsg({ type: IPVS_ID, flags, seq: request.readUInt32LE(8), pid: request.readUInt32LE(12) }, payload);
  t.is(ours.toString('hex'), request.toString('hex'), `${cap.file}: ${cap.command}`);
}

test('nlctrl GETFAMILY "IPVS": same bytes as libnl, reply decodes to the IPVS family', (t) => {
  const cap = loadCapture('add-svc-tcp-rr');
  const { request, replies } = exchangeFor(cap, GENL_ID_CTRL, 3);
  t.is(encodeGetFamily('IPVS', request.readUInt32LE(8), request.readUInt32LE(12)).toString('hex'), request.toString('hex'));
  const fam = decodeFamily(parseNlMsgs(replies[0]!)[0]!);
  t.is(fam.name, 'IPVS');
  t.is(fam.id, IPVS_ID);
  t.is(fam.version, 1);
  t.is(fam.maxAttr, 6);
  t.deepEqual(fam.ops.map((o) => o.id), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15, 16, 17]);
});

const tcp80: ServiceKey = { protocol: 'tcp', address: '10.0.0.1', port: 80 };
const fw256: ServiceKey = { fwmark: 256 };
const v6: ServiceKey = { protocol: 'tcp', address: '2001:db8::1', port: 443 };

const requestCases: [string, number, Buffer, boolean?][] = [
  ['add-svc-tcp-rr', IpvsCmd.NEW_SERVICE, encodeNewService({ ...tcp80, scheduler: 'rr' })],
  [
    'add-svc-udp-wrr-persist',
    IpvsCmd.NEW_SERVICE,
    encodeNewService({ protocol: 'udp', address: '10.0.0.1', port: 53, scheduler: 'wrr', persistence: { timeout: 300, netmask: 24 } }),
  ],
  ['add-svc-fwmark-sh', IpvsCmd.NEW_SERVICE, encodeNewService({ ...fw256, scheduler: 'sh' })],
  ['add-svc-tcp6-rr', IpvsCmd.NEW_SERVICE, encodeNewService({ ...v6, scheduler: 'rr' })],
  ['add-dest-masq-w3', IpvsCmd.NEW_DEST, encodeNewDest(tcp80, { address: '10.0.1.2', port: 8080, forward: 'masq', weight: 3 })],
  ['add-dest-fwmark-dr', IpvsCmd.NEW_DEST, encodeNewDest(fw256, { address: '10.0.1.3', port: 80, forward: 'dr', weight: 1 })],
  ['add-dest6-masq', IpvsCmd.NEW_DEST, encodeNewDest(v6, { address: '2001:db8::2', port: 443, forward: 'masq', weight: 2 })],
  ['edit-dest-w5', IpvsCmd.SET_DEST, encodeSetDest(tcp80, { address: '10.0.1.2', port: 8080, forward: 'masq', weight: 5 })],
  ['edit-svc-wrr', IpvsCmd.SET_SERVICE, encodeSetService({ ...tcp80, scheduler: 'wrr' })],
  ['add-svc-dup-eexist', IpvsCmd.NEW_SERVICE, encodeNewService({ ...tcp80, scheduler: 'rr' })],
  ['del-svc-missing-esrch', IpvsCmd.DEL_SERVICE, encodeDelService({ protocol: 'tcp', address: '10.9.9.9', port: 80 })],
  ['del-dest-missing', IpvsCmd.DEL_DEST, encodeDelDest(tcp80, { address: '10.0.1.9', port: 8080 })],
  ['14-del-dest', IpvsCmd.DEL_DEST, encodeDelDest(tcp80, { address: '10.0.1.2', port: 8080 })],
  ['15-del-svc', IpvsCmd.DEL_SERVICE, encodeDelService(tcp80)],
  ['get-timeouts', IpvsCmd.GET_CONFIG, encodeGetConfig()],
  ['flush', IpvsCmd.FLUSH, encodeFlush()],
  ['add-svc-tcp-rr', IpvsCmd.GET_INFO, encodeGetInfo()],
  ['10-list', IpvsCmd.GET_SERVICE, encodeGetService(), true],
  ['10-list', IpvsCmd.GET_DEST, encodeGetDests(tcp80), true],
];

for (const [fixture, cmd, payload, dump] of requestCases) {
  test(`request bytes match ipvsadm: ${fixture} cmd ${cmd}`, (t) => assertSameRequest(t, fixture, cmd, payload, dump));
}

test('every GET_DEST dump request in the listing matches ours, per service kind', (t) => {
  const cap = loadCapture('10-list');
  const sent = cap.datagrams.filter((d) => d.dir === 'send' && d.bytes.readUInt16LE(4) === IPVS_ID && d.bytes[16] === IpvsCmd.GET_DEST);
  const keys: ServiceKey[] = [tcp80, { protocol: 'udp', address: '10.0.0.1', port: 53 }, v6, fw256];
  t.is(sent.length, keys.length);
  const ours = keys.map((k) => maskSeqPid(encodeNlMsg({ type: IPVS_ID, flags: 0x305, seq: 0, pid: 0 }, encodeGetDests(k))).toString('hex'));
  for (const d of sent) t.true(ours.includes(maskSeqPid(d.bytes).toString('hex')));
});

test('GET_INFO and GET_CONFIG replies decode to what ipvsadm printed', (t) => {
  const info = decodeInfo(parseNlMsgs(exchangeFor(loadCapture('10-list'), IPVS_ID, IpvsCmd.GET_INFO).replies[0]!)[0]!);
  t.deepEqual(info, { version: '1.2.1', versionCode: 0x010201, connTableSize: 4096 });
  const cfg = decodeConfig(parseNlMsgs(exchangeFor(loadCapture('get-timeouts'), IPVS_ID, IpvsCmd.GET_CONFIG).replies[0]!)[0]!);
  t.deepEqual(cfg, { tcp: 900, tcpFin: 120, udp: 300 });
});

test('service and destination dumps decode to exactly what `ipvsadm -Ln` printed', (t) => {
  const cap = loadCapture('10-list');
  // services: every data message of the GET_SERVICE dump (possibly several datagrams)
  const svcReplies = exchangeFor(cap, IPVS_ID, IpvsCmd.GET_SERVICE).replies.flatMap((d) => parseNlMsgs(d));
  t.is(svcReplies.at(-1)?.type, 3 /* NLMSG_DONE */);
  const services = svcReplies.filter((m) => m.type === IPVS_ID).map(decodeService);
  t.is(services.length, 4);
  // dests: match each GET_DEST request to its service by re-encoding the key
  const state = services.map((service) => {
    const req = maskSeqPid(encodeNlMsg({ type: IPVS_ID, flags: 0x305, seq: 0, pid: 0 }, encodeGetDests(service.key)));
    const i = cap.datagrams.findIndex((d) => d.dir === 'send' && maskSeqPid(d.bytes).equals(req));
    t.true(i >= 0, serviceId(service.key));
    const msgs = [];
    for (let j = i + 1; cap.datagrams[j]?.dir === 'recv'; j++) msgs.push(...parseNlMsgs(cap.datagrams[j]!.bytes));
    return { service, dests: msgs.filter((m) => m.type === IPVS_ID).map((m) => decodeDest(m, service.family)) };
  });
  t.deepEqual(renderLn(sortLikeIpvsadm(state)), normalizeIpvsadm(cap.out));
  const udp = services.find((s) => serviceId(s.key) === 'udp:10.0.0.1:53')!;
  t.deepEqual(udp.persistence, { timeout: 300, netmask: 24 });
  t.is(udp.flags & 1, 1);
  t.truthy(udp.stats);
  t.is(udp.stats?.conns, 0);
  const fw = state.find((s) => serviceId(s.service.key) === 'fwmark:256')!;
  t.deepEqual(fw.dests.map((d) => [d.address, d.port, d.forward, d.weight, d.family]), [['10.0.1.3', 80, 'dr', 1, 4]]);
  const six = state.find((s) => s.service.family === 6)!;
  t.is(six.dests[0]?.address, '2001:db8::2');
});

test('encode/decode round trip: a NEW_SERVICE request decodes as a service, a NEW_DEST as a dest', (t) => {
  const specs: ServiceSpec[] = [
    { ...tcp80, scheduler: 'rr' },
    { protocol: 'udp', address: '10.0.0.2', port: 53, scheduler: 'wrr', persistence: { timeout: 60, netmask: 16 } },
    { fwmark: 0x1234, family: 6, scheduler: 'sh', flags: 0x8 },
    { protocol: 'sctp', address: 'fd00::10', port: 9, scheduler: 'mh', persistence: { timeout: 10, netmask: 64 } },
  ];
  for (const s of specs) {
    const msg = parseNlMsgs(encodeNlMsg({ type: IPVS_ID, flags: 0, seq: 1, pid: 1 }, encodeNewService(s)))[0]!;
    const d = decodeService(msg);
    t.deepEqual(d.key, 'fwmark' in s ? { fwmark: s.fwmark, family: s.family ?? 4 } : { protocol: s.protocol, address: s.address, port: s.port });
    t.is(d.scheduler, s.scheduler);
    t.deepEqual(d.persistence, s.persistence);
    t.is(d.flags, (s.flags ?? 0) | (s.persistence ? 1 : 0));
  }
  for (const forward of ['masq', 'dr', 'tunnel', 'local', 'bypass'] as const) {
    const spec = { address: 'fd00::7', port: 8443, forward, weight: 9, upperThreshold: 100, lowerThreshold: 10 };
    const msg = parseNlMsgs(encodeNlMsg({ type: IPVS_ID, flags: 0, seq: 1, pid: 1 }, encodeNewDest(v6, spec)))[0]!;
    t.like(decodeDest(msg), { ...spec, family: 6, activeConns: 0 });
  }
});

test('encoder rejects bad input instead of sending it', (t) => {
  t.throws(() => encodeNewService({ ...tcp80, port: 70000, scheduler: 'rr' }), { instanceOf: RangeError });
  t.throws(() => encodeNewService({ protocol: 'tcp', address: 'nope', port: 1, scheduler: 'rr' }), { instanceOf: RangeError });
  t.throws(() => encodeNewService({ fwmark: 0, scheduler: 'rr' }), { instanceOf: RangeError });
  t.throws(() => encodeNewService({ ...tcp80, scheduler: 'rr', persistence: { timeout: 1, netmask: 40 } }), { instanceOf: RangeError });
  t.throws(() => encodeNewDest(tcp80, { address: '10.0.0.2', port: 1, forward: 'masq', weight: -1 }), { instanceOf: RangeError });
});

test('serviceId is stable and canonical', (t) => {
  t.is(serviceId({ protocol: 'tcp', address: '2001:0db8::0001', port: 443 }), 'tcp:[2001:db8::1]:443');
  t.is(serviceId({ fwmark: 7 }), 'fwmark:7');
  t.is(serviceId({ fwmark: 7, family: 6 }), 'fwmark6:7');
});
