// Dataplane programming cost on a real IPVS kernel (run inside the IPVS VM: bench/ipvs-vm.sh).
//   1. 10,000 fwmark services × 10 destinations from empty: our netlink batch vs `ipvsadm --restore`
//   2. one destination change with 10 and with 10,000 services present: netlink vs `ipvsadm --restore`
//   3. the whole IPVS driver (diff + netlink + iptables-restore + VIPs): full sync, then one change
// Sizes: BENCH_SERVICES (10000), BENCH_DESTS (10), BENCH_REPS (5).
import { execFileSync, spawnSync } from 'node:child_process';
import { diff } from '../src/balancer/diff.js';
import { IpvsDriver } from '../src/balancer/drivers/ipvs.js';
import { makeMark } from '../src/balancer/drivers/ipvs-marks.js';
import { IpvsClient, type IpvsOp } from '../src/balancer/netlink/ipvs.js';
import type { DesiredState, VirtualService } from '../src/balancer/types.js';

const N = Number(process.env['BENCH_SERVICES'] ?? 10_000);
const D = Number(process.env['BENCH_DESTS'] ?? 10);
const REPS = Number(process.env['BENCH_REPS'] ?? 5);
const SMALL = 10;

const mark = (i: number): number => makeMark(0x100 + i, 0);
// destination j of service i: 10.X.Y.Z, port 8000+j (distinct per service, like real task IPs)
const dAddr = (i: number, j: number): { address: string; port: number } => {
  const k = i * D + j;
  return { address: `10.${64 + (k >> 16)}.${(k >> 8) & 0xff}.${k & 0xff}`, port: 80 };
};

const ms = (t: number): string => (performance.now() - t).toFixed(1);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function ipvsadmRestore(text: string): void {
  const r = spawnSync('ipvsadm', ['--restore'], { input: text, encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`ipvsadm --restore: ${r.stderr}`);
}
function restoreText(n: number): string {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    out.push(`-A -f ${mark(i)} -s rr`);
    for (let j = 0; j < D; j++) {
      const d = dAddr(i, j);
      out.push(`-a -f ${mark(i)} -r ${d.address}:${d.port} -m -w 1`);
    }
  }
  return `${out.join('\n')}\n`;
}
function fullOps(n: number): IpvsOp[] {
  const ops: IpvsOp[] = [];
  for (let i = 0; i < n; i++) {
    ops.push({ op: 'addService', service: { fwmark: mark(i), family: 4, scheduler: 'rr' } });
    for (let j = 0; j < D; j++) ops.push({ op: 'addDest', service: { fwmark: mark(i), family: 4 }, dest: { ...dAddr(i, j), forward: 'masq', weight: 1 } });
  }
  return ops;
}
const count = (): number => Number(execFileSync('bash', ['-c', "ipvsadm -Ln | grep -c '^FWM' || true"], { encoding: 'utf8' }).trim());

const rows: [string, string, string][] = [];
const row = (what: string, netlink: string, ipvsadm: string): void => {
  rows.push([what, netlink, ipvsadm]);
  console.log(`  ${what}: netlink ${netlink} ms, ipvsadm ${ipvsadm} ms`);
};

async function main(): Promise<void> {
  console.log(`kernel ${execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim()}, node ${process.version}; ${N} services × ${D} dests`);
  const ipvs = await IpvsClient.open();

  // 1. full programming from empty
  await ipvs.flush();
  let t = performance.now();
  const res = await ipvs.batch(fullOps(N));
  const nl = ms(t);
  if (res.some((r) => !r.ok)) throw new Error('netlink batch had failures');
  if (count() !== N) throw new Error('netlink: wrong service count');
  await ipvs.flush();
  const text = restoreText(N);
  t = performance.now();
  ipvsadmRestore(text);
  const ad = ms(t);
  if (count() !== N) throw new Error('ipvsadm: wrong service count');
  row(`program ${N} services × ${D} dests`, nl, ad);

  // 2. one destination change (weight 1 → 2 and back) with SMALL and N services present
  for (const size of [SMALL, N]) {
    await ipvs.flush();
    ipvsadmRestore(restoreText(size));
    const i = size - 1;
    const d0 = dAddr(i, 0);
    const nlT: number[] = [];
    const adT: number[] = [];
    for (let r = 0; r < REPS; r++) {
      const w = 2 + (r % 2);
      t = performance.now();
      const [x] = await ipvs.batch([{ op: 'updateDest', service: { fwmark: mark(i), family: 4 }, dest: { ...d0, forward: 'masq', weight: w } }]);
      nlT.push(performance.now() - t);
      if (!x?.ok) throw new Error('netlink update failed');
      t = performance.now();
      ipvsadmRestore(`-e -f ${mark(i)} -r ${d0.address}:${d0.port} -m -w ${w + 10}\n`);
      adT.push(performance.now() - t);
    }
    row(`one dest change, ${size} services (median of ${REPS})`, median(nlT).toFixed(2), median(adT).toFixed(2));
  }
  await ipvs.flush();
  ipvs.close();

  // 3. the driver end to end (namespace-local: iptables rules, VIPs on vipdns0, IPVS)
  const svc = (i: number, backends = D): VirtualService => ({
    key: `net/s${i}/tcp/80`,
    service: `s${i}`,
    network: 'net',
    fwmark: 0x100 + i,
    family: 4,
    vip: `10.${32 + (i >> 16)}.${(i >> 8) & 0xff}.${i & 0xff}`,
    protocol: 'tcp',
    port: 80,
    scheduler: 'rr',
    backends: Array.from({ length: backends }, (_, j) => ({ task: `t${i}.${j}`, ...{ ip: dAddr(i, j).address, port: 80 }, weight: 1, draining: false })),
  });
  for (const size of [SMALL, N]) {
    const driver = new IpvsDriver({ ipv6: false });
    const want: DesiredState = { services: Array.from({ length: size }, (_, i) => svc(i)).sort((a, b) => (a.key < b.key ? -1 : 1)), published: [] };
    t = performance.now();
    const obs = await driver.observe();
    const d = diff(want, obs, driver);
    await driver.apply(d);
    const full = ms(t);
    // one backend added to one service, diffed against the cached observation (as the reconciler does)
    const cached = { base: 'ok' as const, units: new Map([...want.services].map((s) => { const e = driver.expect({ kind: 'vip', vip: s }); return [e.id, e]; })) };
    const changed: DesiredState = { ...want, services: want.services.map((s, i) => (i === 0 ? svc(Number(s.service.slice(1)), D + 1) : s)) };
    t = performance.now();
    const d2 = diff(changed, cached, driver);
    const r2 = await driver.apply(d2);
    const one = ms(t);
    console.log(`  driver ${size} services: full sync ${full} ms; one added backend ${one} ms (${r2.ops} ops, ${d2.change.length} unit changed)`);
    rows.push([`driver: full sync, ${size} services × ${D}`, full, '-']);
    rows.push([`driver: one backend added, ${size} services`, one, '-']);
    await driver.cleanup();
    driver.close();
  }

  console.log('\n| case | vipdns (netlink) ms | ipvsadm --restore ms |\n|---|---|---|');
  for (const [a, b, c] of rows) console.log(`| ${a} | ${b} | ${c} |`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
