// The nftables driver owns the IPv4 VIPs of the units it programs on lo (label lo:vipdns): parsing,
// the one-batch writer, the per-unit bookkeeping under random diffs and lo drift, and the driver
// writing addresses in the same apply as its units.
import test from 'ava';
import { diff } from '../../src/balancer/diff.js';
import type { Runner } from '../../src/balancer/drivers/exec.js';
import { NftablesDriver } from '../../src/balancer/drivers/nftables.js';
import { ADDR_UNIT, LoopbackVipBook, vipOfId } from '../../src/balancer/drivers/nftables-vips.js';
import { LoopbackVips, VIP_LABEL, parseLo } from '../../src/balancer/loopback-vips.js';
import { plan } from '../../src/balancer/plan.js';
import type { DesiredState, ObservedUnit } from '../../src/balancer/types.js';
import { CatalogBuilder } from '../helpers/catalog.js';
import { Rng } from '../helpers/fuzz.js';

const LO_JSON = (addrs: { local: string; prefixlen: number; label: string; family?: string }[]) =>
  JSON.stringify([{ ifindex: 1, ifname: 'lo', addr_info: addrs.map((a) => ({ family: 'inet', scope: 'global', ...a })) }]);

test('ip output parsing: ours are /32 with exactly our label; everything else is someone else\'s', (t) => {
  const lo = parseLo(
    LO_JSON([
      { local: '127.0.0.1', prefixlen: 8, label: 'lo' },
      { local: '10.0.9.2', prefixlen: 32, label: VIP_LABEL },
      { local: '10.0.9.9', prefixlen: 32, label: 'lo:vipdnsx' },
      { local: '10.0.9.8', prefixlen: 24, label: VIP_LABEL },
      { local: '::1', prefixlen: 128, label: 'lo', family: 'inet6' },
    ]),
  );
  t.deepEqual([...lo.ours], ['10.0.9.2']);
  t.deepEqual([...lo.others].sort(), ['10.0.9.8', '10.0.9.9', '127.0.0.1']);
});

test('write adds and removes in one ip -batch; cleanup removes only ours', async (t) => {
  const calls: Array<{ args: string[]; input?: string }> = [];
  const runner: Runner = async (args, input) => {
    calls.push({ args, ...(input !== undefined ? { input } : {}) });
    if (args.includes('show')) return { code: 0, stdout: LO_JSON([{ local: '10.0.9.2', prefixlen: 32, label: VIP_LABEL }, { local: '10.0.9.250', prefixlen: 32, label: 'lo:other' }]), stderr: '' };
    return { code: 0, stdout: '', stderr: '' };
  };
  const lo = new LoopbackVips({ runner });
  t.is(await lo.write(['10.0.9.3'], ['10.0.9.5']), 2);
  t.is(calls.length, 1);
  t.is(calls[0]!.input, 'addr add 10.0.9.3/32 dev lo label lo:vipdns\naddr del 10.0.9.5/32 dev lo label lo:vipdns\n');
  t.is(await lo.write([], []), 0);
  t.is(calls.length, 1, 'nothing to write: no ip call');
  t.true(await lo.cleanup());
  t.is(calls.at(-1)!.input, 'addr del 10.0.9.2/32 dev lo label lo:vipdns\n');
});

test('unit ids name their IPv4 VIP; IPv6 and published units have none', (t) => {
  t.is(vipOfId('vip|10.0.9.2 . tcp . 80'), '10.0.9.2');
  t.is(vipOfId('vip|fd00::2 . tcp . 80'), undefined);
  t.is(vipOfId('pub|tcp . 8080'), undefined);
  t.is(vipOfId(`${ADDR_UNIT}10.0.9.7`), '10.0.9.7');
});

/** A random catalog: services with 0–2 ports on an IPv4 and/or IPv6 network, some dnsrr, some sharing nothing. */
function randomDesired(r: Rng): DesiredState {
  const c = new CatalogBuilder().network('n', '10.0.9.0/24').network('six', 'fd00:9::/64');
  for (let i = 0; i < 12; i++) {
    if (r.int(3) === 0) continue;
    const vips: Record<string, string> = {};
    if (r.int(4) !== 0) vips['n'] = `10.0.9.${2 + i}`;
    if (r.int(3) === 0) vips['six'] = `fd00:9::${2 + i}`;
    const ports = [{ protocol: 'tcp' as const, target: 80 }, { protocol: 'udp' as const, target: 53 }, { protocol: 'tcp' as const, target: 443, published: 8443 + i }].filter(() => r.int(2) === 0);
    c.service({ name: `s${i}`, vips, ports, endpointMode: r.int(6) === 0 ? 'dnsrr' : 'vip' });
    for (let j = r.int(3); j > 0; j--) c.task(`s${i}`, { n: `10.0.9.${100 + i * 10 + j}`, six: `fd00:9::${100 + i * 10 + j}` });
  }
  return plan(c.state);
}

const wantedVips = (d: DesiredState): string[] => [...new Set(d.services.filter((s) => s.family === 4).map((s) => s.vip))].sort();

test('random diffs and lo drift: after each apply, lo holds exactly the IPv4 VIPs of the programmed units', (t) => {
  const driver = new NftablesDriver({ runner: async () => ({ code: 1, stdout: '', stderr: 'no nft here' }) });
  for (const seed of [11, 12, 13]) {
    const r = new Rng(seed);
    const book = new LoopbackVipBook();
    const ours = new Set<string>(); // simulated lo
    const others = new Set<string>(['10.0.9.250', '10.0.9.5']); // foreign, one of them a VIP
    let kernel = new Map<string, ObservedUnit>(); // what the driver programmed, as remember() keeps it
    book.observed(kernel, { ours: new Set(ours), others: new Set(others) });
    let writes = 0;
    for (let step = 0; step < 400; step++) {
      // Now and then lo drifts behind our back and the next sync re-observes (a resync).
      if (r.int(5) === 0) {
        const k = r.int(3);
        if (k === 0 && ours.size) ours.delete([...ours][r.int(ours.size)]!);
        else if (k === 1) ours.add(`10.0.9.${2 + r.int(14)}`); // a stray labelled address, maybe a VIP
        else others.add(`10.0.9.${2 + r.int(14)}`); // someone else takes a VIP address
        for (const v of others) ours.delete(v); // one address, one owner
        kernel = new Map([...kernel].map(([id, u]) => [id, { ...u }]));
        book.observed(kernel, { ours: new Set(ours), others: new Set(others) });
      }
      const desired = randomDesired(r);
      const d = diff(desired, { base: 'ok', units: kernel }, driver);
      const ch = book.changes(d);
      for (const v of ch.add) {
        t.false(ours.has(v) || others.has(v), `step ${step}: adds ${v}, already on lo`);
        ours.add(v);
      }
      for (const v of ch.del) {
        t.true(ours.has(v), `step ${step}: removes ${v}, not ours`);
        ours.delete(v);
      }
      writes += ch.add.length + ch.del.length;
      ch.commit();
      for (const x of d.remove) kernel.delete(x.id);
      for (const u of [...d.add, ...d.change.map((c) => c.unit)]) kernel.set(driver.expect(u).id, driver.expect(u));
      const want = wantedVips(desired);
      t.deepEqual(book.wanted(), want, `step ${step}: the book follows the units`);
      t.deepEqual([...ours].sort(), want.filter((v) => !others.has(v)), `step ${step}: lo holds exactly the wanted VIPs, foreign ones aside`);
    }
    t.true(writes > 100, `addresses were written (${writes})`);
    t.true(others.has('10.0.9.250') && others.has('10.0.9.5'), 'foreign addresses were never touched');
  }
});

test('the driver writes the VIP addresses in the same apply as its units, and only with an ip runner', async (t) => {
  const nftCalls: string[][] = [];
  const ipCalls: Array<{ args: string[]; input?: string }> = [];
  const nft: Runner = async (args) => {
    nftCalls.push(args);
    return args.includes('list') ? { code: 1, stdout: '', stderr: 'Error: No such file or directory' } : { code: 0, stdout: '', stderr: '' };
  };
  const ip: Runner = async (args, input) => {
    ipCalls.push({ args, ...(input !== undefined ? { input } : {}) });
    return args.includes('show') ? { code: 0, stdout: LO_JSON([{ local: '10.0.9.9', prefixlen: 32, label: VIP_LABEL }]), stderr: '' } : { code: 0, stdout: '', stderr: '' };
  };
  const c = new CatalogBuilder().network('n', '10.0.9.0/24').network('six', 'fd00:9::/64');
  c.service({ name: 'web', vips: { n: '10.0.9.2', six: 'fd00:9::2' }, ports: [{ protocol: 'tcp', target: 80 }, { protocol: 'udp', target: 53 }] });
  c.service({ name: 'api', vips: { n: '10.0.9.3' } });
  c.task('web', { n: '10.0.9.11', six: 'fd00:9::11' });
  const driver = new NftablesDriver({ runner: nft, ipRunner: ip });
  const observed = await driver.observe();
  t.true(observed.units.has(`${ADDR_UNIT}10.0.9.9`), 'a labelled address no unit needs is a stray unit');
  const d = diff(plan(c.state), observed, driver);
  t.deepEqual(d.remove.map((x) => x.id), [`${ADDR_UNIT}10.0.9.9`]);
  const r = await driver.apply(d);
  t.is(nftCalls.filter((a) => a.includes('-f')).length, 1);
  const batches = ipCalls.filter((x) => x.args.includes('-batch'));
  t.is(batches.length, 1, 'one ip -batch');
  t.is(batches[0]!.input, 'addr add 10.0.9.2/32 dev lo label lo:vipdns\naddr add 10.0.9.3/32 dev lo label lo:vipdns\naddr del 10.0.9.9/32 dev lo label lo:vipdns\n');
  t.true(r.ops > 3);
  t.deepEqual(driver.loopbackVips(), ['10.0.9.2', '10.0.9.3']);

  // A failed ip write fails the apply (the reconciler re-observes before retrying).
  const failing = new NftablesDriver({ runner: nft, ipRunner: async (args) => (args.includes('show') ? { code: 0, stdout: '[]', stderr: '' } : { code: 2, stdout: '', stderr: 'RTNETLINK answers: Operation not permitted' }) });
  const e = await t.throwsAsync(async () => failing.apply(diff(plan(c.state), await failing.observe(), failing)));
  t.regex(e!.message, /ip -batch .*Operation not permitted/);

  // An injected nft runner alone means another namespace: lo is never read nor written.
  ipCalls.length = 0;
  const blind = new NftablesDriver({ runner: nft });
  await blind.apply(diff(plan(c.state), await blind.observe(), blind));
  t.deepEqual(blind.loopbackVips(), []);
  t.is(ipCalls.length, 0);
});
