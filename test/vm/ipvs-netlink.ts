// Runs INSIDE the IPVS VM (test/vm/vm.sh) (real IPVS, root): drives our netlink client and checks
// the kernel state against ipvsadm's own view. One boot, many checks; prints
// PASS/FAIL per check and exits non-zero on any failure.
//   test/vm/ipvs-netlink.sh      (host: builds, boots the VM, runs this)
import { execFileSync } from 'node:child_process';
import { IpvsClient, type IpvsOp } from '../../src/balancer/netlink/ipvs.js';
import { NetlinkError } from '../../src/balancer/netlink/errors.js';
import type { Dest, DestSpec, Service, ServiceKey } from '../../src/balancer/netlink/ipvs-codec.js';
import { normalizeIpvsadm, renderLn, renderSave, sortLikeIpvsadm } from '../netlink/ipvsadm-text.js';
import { Checks, eq } from './checks.js';

const checks = new Checks();
const check = (name: string, fn: () => unknown): Promise<void> => checks.check(name, fn);



async function expectCode(p: Promise<unknown>, codes: string[]): Promise<void> {
  try {
    await p;
  } catch (e) {
    if (e instanceof NetlinkError && codes.includes(e.code)) return;
    throw new Error(`expected NetlinkError ${codes.join('|')}, got ${String(e)}`);
  }
  throw new Error(`expected NetlinkError ${codes.join('|')}, but it succeeded`);
}

const ipvsadm = (...args: string[]): string[] => execFileSync('ipvsadm', args, { encoding: 'utf8' }).split('\n');

async function snapshot(ipvs: IpvsClient): Promise<{ service: Service; dests: Dest[] }[]> {
  const out = [];
  for (const service of await ipvs.listServices()) out.push({ service, dests: await ipvs.listDests(service.key) });
  return sortLikeIpvsadm(out);
}

async function sameAsIpvsadm(ipvs: IpvsClient): Promise<void> {
  const state = await snapshot(ipvs);
  eq(renderLn(state), normalizeIpvsadm(ipvsadm('-Ln')), 'ipvsadm -Ln');
  eq(renderSave(state), normalizeIpvsadm(ipvsadm('-S', '-n')), 'ipvsadm -S -n');
}

const tcp80: ServiceKey = { protocol: 'tcp', address: '10.0.0.1', port: 80 };
const udp53: ServiceKey = { protocol: 'udp', address: '10.0.0.1', port: 53 };
const fw256: ServiceKey = { fwmark: 256 };
const fw6: ServiceKey = { fwmark: 257, family: 6 };
const tcp6: ServiceKey = { protocol: 'tcp', address: '2001:db8::1', port: 443 };
const d = (address: string, port: number, forward: DestSpec['forward'], weight: number): DestSpec => ({ address, port, forward, weight });

async function main(): Promise<void> {
  console.log(`kernel ${execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim()}, node ${process.version}`);
  let ipvs!: IpvsClient;
  await check('open: resolve IPVS genl family via nlctrl', async () => {
    ipvs = await IpvsClient.open();
    if (ipvs.family.name !== 'IPVS' || ipvs.family.version !== 1) throw new Error(JSON.stringify(ipvs.family));
  });
  if (!ipvs) return;

  await check('getInfo matches ipvsadm banner', async () => {
    const info = await ipvs.getInfo();
    eq(`IP Virtual Server version ${info.version} (size=${info.connTableSize})`, ipvsadm('-Ln')[0]);
  });

  await check('flush (test VM only) leaves an empty table', async () => {
    await ipvs.flush();
    eq(await ipvs.listServices(), []);
  });

  await check('add TCP/UDP/fwmark/IPv6 services: rr, wrr+persistence, sh, mh', async () => {
    await ipvs.addService({ ...tcp80, scheduler: 'rr' });
    await ipvs.addService({ ...udp53, scheduler: 'wrr', persistence: { timeout: 300, netmask: 24 } });
    await ipvs.addService({ ...fw256, scheduler: 'sh' });
    await ipvs.addService({ ...fw6, scheduler: 'mh', persistence: { timeout: 60 } });
    await ipvs.addService({ ...tcp6, scheduler: 'rr' });
    eq((await ipvs.listServices()).length, 5, 'service count');
  });

  await check('add masq and dr destinations with weights (IPv4 and IPv6)', async () => {
    await ipvs.addDest(tcp80, d('10.0.1.2', 8080, 'masq', 3));
    await ipvs.addDest(tcp80, d('10.0.1.3', 8080, 'masq', 1));
    await ipvs.addDest(udp53, d('10.0.1.4', 53, 'masq', 2));
    await ipvs.addDest(fw256, d('10.0.1.5', 80, 'dr', 1));
    await ipvs.addDest(fw256, d('10.0.1.6', 80, 'masq', 4));
    await ipvs.addDest(fw6, d('fd00::5', 80, 'masq', 1));
    await ipvs.addDest(tcp6, d('2001:db8::2', 443, 'masq', 2));
    eq((await ipvs.listDests(tcp80)).length, 2, 'tcp80 dests');
  });

  await check('listing equals `ipvsadm -Ln` and `ipvsadm -S -n`', () => sameAsIpvsadm(ipvs));

  await check('updateDest (weight 3->5, masq->dr) and updateService (rr->wrr) take effect', async () => {
    await ipvs.updateDest(tcp80, d('10.0.1.2', 8080, 'dr', 5));
    await ipvs.updateService({ ...tcp80, scheduler: 'wrr' });
    const svc = await ipvs.getService(tcp80);
    eq(svc?.scheduler, 'wrr', 'scheduler');
    const dest = (await ipvs.listDests(tcp80)).find((x) => x.address === '10.0.1.2');
    eq([dest?.weight, dest?.forward], [5, 'dr'], 'dest');
    await sameAsIpvsadm(ipvs);
  });

  await check('getService: persistence decoded; missing service -> undefined', async () => {
    const u = await ipvs.getService(udp53);
    eq(u?.persistence, { timeout: 300, netmask: 24 }, 'persistence');
    eq(await ipvs.getService({ protocol: 'tcp', address: '10.9.9.9', port: 1 }), undefined, 'missing');
  });

  await check('typed errors: duplicate service -> EEXIST', () => expectCode(ipvs.addService({ ...tcp80, scheduler: 'rr' }), ['EEXIST']));
  await check('typed errors: delete missing service -> ESRCH', () =>
    expectCode(ipvs.delService({ protocol: 'tcp', address: '10.9.9.9', port: 80 }), ['ESRCH', 'ENOENT']));
  await check('typed errors: duplicate dest -> EEXIST', () => expectCode(ipvs.addDest(tcp80, d('10.0.1.3', 8080, 'masq', 1)), ['EEXIST']));
  await check('typed errors: delete missing dest -> ENOENT', () => expectCode(ipvs.delDest(tcp80, { address: '10.0.1.99', port: 8080 }), ['ENOENT']));
  await check('typed errors: dest on missing service -> ESRCH', () =>
    expectCode(ipvs.addDest({ fwmark: 999 }, d('10.0.1.2', 80, 'masq', 1)), ['ESRCH']));
  await check('typed errors: unknown scheduler -> ENOENT', () =>
    expectCode(ipvs.addService({ protocol: 'tcp', address: '10.0.0.9', port: 80, scheduler: 'nosuch' }), ['ENOENT']));

  await check('delDest and delService remove exactly what they name', async () => {
    await ipvs.delDest(tcp80, { address: '10.0.1.3', port: 8080 });
    await ipvs.delService(udp53);
    eq((await ipvs.listDests(tcp80)).map((x) => x.address), ['10.0.1.2'], 'tcp80 dests');
    eq(await ipvs.getService(udp53), undefined, 'udp53');
    await sameAsIpvsadm(ipvs);
  });

  await check('timeouts: set tcp=1000, read back, same as `ipvsadm -L --timeout`', async () => {
    await ipvs.setTimeouts({ tcp: 1000 });
    const t = await ipvs.getTimeouts();
    eq(t.tcp, 1000, 'tcp');
    eq(`Timeout (tcp tcpfin udp): ${t.tcp} ${t.tcpFin} ${t.udp}`, ipvsadm('-L', '--timeout')[0]);
  });

  await check('zero() clears counters', async () => {
    await ipvs.zero();
    eq((await ipvs.getService(tcp80))?.stats?.conns, 0);
  });

  await check('concurrent callers get their own replies', async () => {
    const keys = [tcp80, fw256, fw6, tcp6];
    const got = await Promise.all(keys.map((k) => ipvs.getService(k)));
    eq(got.map((s) => s?.scheduler), ['wrr', 'sh', 'mh', 'rr']);
  });

  const N = 100;
  const svcKey = (i: number): ServiceKey => ({ protocol: 'tcp', address: `10.1.${i >> 8}.${i & 255}`, port: 80 });
  await check(`batch: ${N} services + ${3 * N} dests in one call, per-op results`, async () => {
    const ops: IpvsOp[] = [];
    for (let i = 0; i < N; i++) {
      ops.push({ op: 'addService', service: { ...svcKey(i), scheduler: 'wrr' } });
      for (let j = 1; j <= 3; j++) ops.push({ op: 'addDest', service: svcKey(i), dest: d(`10.2.${i}.${j}`, 8080, 'masq', j) });
    }
    ops.push({ op: 'addService', service: { ...tcp80, scheduler: 'rr' } }); // must fail alone
    const t1 = performance.now();
    const res = await ipvs.batch(ops);
    const ms = performance.now() - t1;
    const bad = res.filter((r) => !r.ok);
    eq(bad.length, 1, 'failures');
    const last = res.at(-1);
    eq(last && !last.ok ? last.error.code : 'ok', 'EEXIST', 'last op');
    const lines = normalizeIpvsadm(ipvsadm('-Ln'));
    eq(lines.filter((l) => l.startsWith('TCP  10.1.')).length, N, 'services in ipvsadm');
    eq(lines.filter((l) => l.startsWith('-> 10.2.')).length, 3 * N, 'dests in ipvsadm');
    console.log(`  batch of ${ops.length} ops: ${ms.toFixed(0)} ms (${((ms * 1000) / ops.length).toFixed(0)} us/op under TCG)`);
    await sameAsIpvsadm(ipvs);
  });

  await check('batch delete of only our own services leaves the others', async () => {
    const res = await ipvs.batch(Array.from({ length: N }, (_, i) => ({ op: 'delService', service: svcKey(i) }) as IpvsOp));
    eq(res.every((r) => r.ok), true, 'all ok');
    eq((await ipvs.listServices()).length, 4, 'remaining');
    await sameAsIpvsadm(ipvs);
  });

  await check('flush empties the table, ipvsadm agrees', async () => {
    await ipvs.flush();
    eq(await ipvs.listServices(), []);
    eq(normalizeIpvsadm(ipvsadm('-Ln')), []);
  });

  ipvs.close();
}

await main().catch((e) => checks.fail('harness', e));
process.exit(checks.summary('ipvs netlink'));
