// The IPVS driver against in-memory IPVS, iptables and ip (ipvs-fakes.ts): first sync, adoption by a
// new driver, ownership (foreign fwmark services and rules untouched), ordering, drain, cleanup, a failed
// iptables transaction. Host-only, no root; the kernel itself is covered by test/vm.
import test from 'ava';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { diff, isEmpty } from '../../src/balancer/diff.js';
import { IpvsDriver } from '../../src/balancer/drivers/ipvs.js';
import { IPVS_SYSCTLS } from '../../src/balancer/drivers/ipvs-sysctl.js';
import type { Backend, DesiredState, VirtualService } from '../../src/balancer/types.js';
import { FakeIp, FakeIptables, FakeIpvs } from './ipvs-fakes.js';

function kernel() {
  const ipvs = new FakeIpvs();
  const v4 = new FakeIptables();
  const ip = new FakeIp();
  const root = mkdtempSync(join(tmpdir(), 'vipdns-sysctl-'));
  for (const s of IPVS_SYSCTLS) {
    const p = join(root, ...s.name.split('.'));
    mkdirSync(join(p, '..'), { recursive: true });
    writeFileSync(p, '0\n');
  }
  const driver = () =>
    new IpvsDriver({
      ipv6: false,
      openIpvs: async () => ipvs,
      sysctlRoot: root,
      procFile: '/',
      runner: (tool) => (tool === 'iptables-save' ? v4.runner('save') : tool === 'iptables-restore' ? v4.runner('restore') : ip.runner()),
    });
  return { ipvs, v4, ip, root, driver };
}

const be = (n: number, weight = 1, draining = false): Backend => ({ task: `t${n}`, ip: `10.99.${n}.2`, port: 80, weight, draining });
const svc = (name: string, fwmark: number, vip: string, backends: Backend[], protocol: 'tcp' | 'udp' = 'tcp'): VirtualService => ({
  key: `net1/${name}/${protocol}/80`, service: name, network: 'net1', fwmark, family: 4, vip, protocol, port: 80, scheduler: 'rr', backends,
});
const state = (services: VirtualService[], published = true): DesiredState => ({
  services: [...services].sort((a, b) => (a.key < b.key ? -1 : 1)),
  published: published ? [{ key: 'tcp/8080', service: 'web', fwmark: 0x100, protocol: 'tcp', port: 8080, targetPort: 80, scheduler: 'rr', backends: [be(1), be(2)] }] : [],
});

async function sync(d: IpvsDriver, want: DesiredState) {
  const df = diff(want, await d.observe(), d);
  const r = await d.apply(df);
  return { df, r };
}

test('first sync: scaffolding, sysctls, VIPs, one fwmark service per unit, one restore per change', async (t) => {
  const k = kernel();
  const d = k.driver();
  t.deepEqual(await d.probe(), { supported: true });
  const want = state([svc('web', 0x100, '10.96.0.10', [be(1), be(2)]), svc('api', 0x101, '10.96.0.11', [be(3)])]);
  const { df } = await sync(d, want);
  t.is(df.base, true);
  t.is(df.add.length, 3);
  t.deepEqual(
    [...d.unitMarks()].sort(),
    [['pub/tcp/8080', 0x40010001], ['vip/net1/api/tcp/80', 0x40010100], ['vip/net1/web/tcp/80', 0x40010000]].sort(),
    'VIP unit first in its service (slot 0), published port next',
  );
  t.is(k.v4.scripts.filter(Boolean).length, 1, 'one iptables-restore');
  t.deepEqual([...k.ipvs.services.keys()].sort(), ['fwmark:1073807360', 'fwmark:1073807361', 'fwmark:1073807616']);
  t.deepEqual([...k.ipvs.services.get('fwmark:1073807361')!.dests.keys()], ['10.99.1.2|80', '10.99.2.2|80']);
  t.deepEqual([...k.ip.links.get('vipdns0')!].sort(), ['10.96.0.10', '10.96.0.11']);
  for (const s of IPVS_SYSCTLS) t.is(readFileSync(join(k.root, ...s.name.split('.')), 'utf8').trim(), s.want);
  t.true(isEmpty(diff(want, await d.observe(), d)), 'reads back as planned');
  // IPVS before rules: every addService precedes the restore, so no rule ever marks into nothing.
  t.is(k.ipvs.log[0]!.op, 'addService');
});

test('restart adoption: a new driver sees the same units and marks, changes nothing', async (t) => {
  const k = kernel();
  const want = state([svc('web', 0x100, '10.96.0.10', [be(1), be(2)])]);
  const first = k.driver();
  await sync(first, want);
  const ops = k.ipvs.log.length;
  const second = k.driver();
  const df = diff(want, await second.observe(), second);
  t.true(isEmpty(df));
  t.deepEqual([...second.unitMarks()].sort(), [...first.unitMarks()].sort());
  t.is(k.ipvs.log.length, ops);
});

test('ownership: foreign services (also in our mark range) and foreign rules are never touched', async (t) => {
  const k = kernel();
  await k.ipvs.batch([
    { op: 'addService', service: { fwmark: 0x40010005, family: 4, scheduler: 'rr' } }, // our range, not referenced
    { op: 'addService', service: { fwmark: 77, family: 4, scheduler: 'wrr' } },
    { op: 'addService', service: { protocol: 'tcp', address: '10.200.0.1', port: 80, scheduler: 'rr' } },
  ]);
  k.v4.exec('mangle', '-A PREROUTING -p tcp --dport 9999 -j MARK --set-mark 0x77');
  k.v4.exec('mangle', '-A OUTPUT -d 10.200.0.1/32 -j MARK --set-xmark 0x40010005/0xffffffff');
  const d = k.driver();
  await sync(d, state([svc('web', 0x100, '10.96.0.10', [be(1)])]));
  const observed = await d.observe();
  t.deepEqual([...observed.units.keys()].sort(), ['pub/tcp/8080', 'vip/net1/web/tcp/80']);
  await d.cleanup();
  t.deepEqual([...k.ipvs.services.keys()].sort(), ['fwmark:1073807365', 'fwmark:77', 'tcp:10.200.0.1:80']);
  t.deepEqual(k.v4.tables.get('mangle')!.get('PREROUTING'), [['-p', 'tcp', '--dport', '9999', '-j', 'MARK', '--set-mark', '0x77']]);
  t.deepEqual(k.v4.tables.get('mangle')!.get('OUTPUT')!.length, 1);
  t.false([...k.v4.tables.get('mangle')!.keys()].some((c) => c.startsWith('VIPDNS')));
  t.false(k.ip.links.has('vipdns0'));
  t.deepEqual(await d.cleanup(), { removed: false });
});

test('drain: weight 0 while connected, deleted when idle or UDP; removal drops rule before service', async (t) => {
  const k = kernel();
  const d = k.driver();
  await sync(d, state([svc('web', 0x100, '10.96.0.10', [be(1), be(2)]), svc('dns', 0x101, '10.96.0.11', [be(1), be(2)], 'udp')], false));
  const web = 0x40010000;
  k.ipvs.conns(web, '10.99.2.2', 80, 1);
  k.ipvs.conns(0x40010100, '10.99.2.2', 80, 0, 4);
  const draining = state([svc('web', 0x100, '10.96.0.10', [be(1), be(2, 1, true)]), svc('dns', 0x101, '10.96.0.11', [be(1), be(2, 1, true)], 'udp')], false);
  await sync(d, draining);
  t.is(k.ipvs.services.get(`fwmark:${web}`)!.dests.get('10.99.2.2|80')!.weight, 0);
  t.false(k.ipvs.services.get(`fwmark:${0x40010100}`)!.dests.has('10.99.2.2|80'), 'UDP dest deleted at once');
  t.true(isEmpty(diff(draining, await d.observe(), d)), 'stable while draining');
  k.ipvs.conns(web, '10.99.2.2', 80, 0, 0);
  const { df } = await sync(d, draining);
  t.deepEqual(df.change.map((c) => c.observed.id), ['vip/net1/web/tcp/80'], 'idle drain noticed on resync');
  t.false(k.ipvs.services.get(`fwmark:${web}`)!.dests.has('10.99.2.2|80'));
  t.true(isEmpty(diff(draining, await d.observe(), d)), 'early deletion remembered');

  k.ipvs.log.length = 0;
  await sync(d, state([svc('dns', 0x101, '10.96.0.11', [be(1)], 'udp')], false));
  t.false(k.ipvs.services.has(`fwmark:${web}`));
  t.deepEqual([...k.ip.links.get('vipdns0')!], ['10.96.0.11'], 'VIP of the removed unit released');
  t.false(JSON.stringify(k.v4.tables.get('mangle')!.get('VIPDNS-VIPS')).includes('web'));
});

test('drift: an edited weight and a lost rule are repaired; an orphaned service of ours is re-adopted', async (t) => {
  const k = kernel();
  const d = k.driver();
  const want = state([svc('web', 0x100, '10.96.0.10', [be(1), be(2)])], false);
  await sync(d, want);
  await k.ipvs.batch([{ op: 'updateDest', service: { fwmark: 0x40010000, family: 4 }, dest: { address: '10.99.1.2', port: 80, forward: 'masq', weight: 9 } }]);
  let df = diff(want, await d.observe(), d);
  t.deepEqual(df.change.map((c) => c.observed.id), ['vip/net1/web/tcp/80']);
  await d.apply(df);
  t.is(k.ipvs.services.get('fwmark:1073807360')!.dests.get('10.99.1.2|80')!.weight, 1);
  k.v4.tables.get('mangle')!.set('VIPDNS-VIPS', []); // rule lost: the service is now an orphan
  df = diff(want, await d.observe(), d);
  t.is(df.add.length, 1);
  await d.apply(df); // same mark again: EEXIST becomes an update
  t.true(isEmpty(diff(want, await d.observe(), d)));
  t.is(k.ipvs.services.size, 1);
});

test('failed iptables transaction: error with a code, services it created are removed', async (t) => {
  const k = kernel();
  const d = k.driver();
  await sync(d, state([], false));
  k.v4.tables.get('mangle')!.delete('VIPDNS-VIPS'); // the restore will fail: no such chain
  const df = diff(state([svc('web', 0x100, '10.96.0.10', [be(1)])], false), { base: 'ok', units: new Map() }, d);
  const err = await t.throwsAsync(d.apply(df));
  t.is((err as { code?: string }).code, 'DATAPLANE_FAILED');
  t.is(k.ipvs.services.size, 0);
  t.is((await d.observe()).base, 'drifted', 'the lost chain is seen, so the next sync rewrites the scaffolding');
});
