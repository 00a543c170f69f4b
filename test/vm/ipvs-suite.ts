// Runs INSIDE the IPVS VM (test/vm/vm.sh) (its own kernel with IPVS, root): the IPVS driver against real traffic. The suite
// re-executes itself inside a fresh namespace `lb` (the balancing namespace), creates client and
// backend namespaces from there, and never programs the VM's root namespace. One boot, many checks;
// prints PASS/FAIL per check and exits non-zero on any failure.
//   host: test/vm/ipvs.test.ts (ava) or test/vm/ipvs-suite.sh
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { diff, isEmpty } from '../../src/balancer/diff.js';
import { IpvsDriver } from '../../src/balancer/drivers/ipvs.js';
import { unitId, unitPlan } from '../../src/balancer/drivers/ipvs-render.js';
import { units } from '../../src/balancer/diff.js';
import { showUnits } from '../../src/balancer/show.js';
import { plan } from '../../src/balancer/plan.js';
import { emptyState } from '../../src/catalog/model.js';
import type { Backend, DesiredState, PublishedPort, VirtualService } from '../../src/balancer/types.js';
import { Checks, eq } from './checks.js';

const here = dirname(fileURLToPath(import.meta.url));
const fixtures = join(here, '..', 'netns', 'fixtures');

if (process.env['VIPDNS_SUITE_NS'] !== 'lb') {
  // Enter a namespace of our own; everything below runs there.
  execFileSync('ip', ['netns', 'add', 'lb']);
  const r = spawnSync('ip', ['netns', 'exec', 'lb', process.execPath, fileURLToPath(import.meta.url)], {
    stdio: 'inherit',
    env: { ...process.env, VIPDNS_SUITE_NS: 'lb' },
  });
  process.exit(r.status ?? 1);
}

const checks = new Checks();
const check = (name: string, fn: () => unknown): Promise<void> => checks.check(name, fn);
const children: ChildProcess[] = [];


function ok(cond: unknown, what: string): void {
  if (!cond) throw new Error(what);
}

const run = (cmd: string, ...args: string[]): string => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const sh = (script: string): string => run('bash', '-c', `set -e\n${script}`);

// ---- topology: lb (us) ── vbN ── beN (10.99.N.2, N=1..3); lb ── vc ── cl (10.99.100.2) ----
const BACKENDS = [1, 2, 3].map((n) => ({ name: `be${n}`, ip: `10.99.${n}.2` }));
const LB_CLIENT_SIDE = '10.99.100.1';

function topology(): void {
  let s = 'ip link set lo up\necho 1 >/proc/sys/net/ipv4/ip_forward\n'; // no procps needed
  for (const [i, b] of BACKENDS.entries()) {
    const n = i + 1;
    s += `ip netns add ${b.name}
ip link add vb${n} type veth peer name eth0 netns ${b.name}
ip addr add 10.99.${n}.1/24 dev vb${n}; ip link set vb${n} up
ip -n ${b.name} addr add ${b.ip}/24 dev eth0; ip -n ${b.name} link set eth0 up; ip -n ${b.name} link set lo up
ip -n ${b.name} route add default via 10.99.${n}.1
`;
  }
  s += `ip netns add cl
ip link add vc type veth peer name eth0 netns cl
ip addr add ${LB_CLIENT_SIDE}/24 dev vc; ip link set vc up
ip -n cl addr add 10.99.100.2/24 dev eth0; ip -n cl link set eth0 up; ip -n cl link set lo up
ip -n cl route add default via ${LB_CLIENT_SIDE}
`;
  sh(s);
}

async function startBackends(ports = ['80', '53']): Promise<void> {
  await Promise.all(
    BACKENDS.map(
      (b) =>
        new Promise<void>((resolve, reject) => {
          const c = spawn('ip', ['netns', 'exec', b.name, process.execPath, join(fixtures, 'echo-server.js'), b.name, ...ports], { stdio: ['ignore', 'pipe', 'inherit'] });
          children.push(c);
          const timer = setTimeout(() => reject(new Error(`${b.name} did not start`)), 60_000);
          createInterface({ input: c.stdout! }).on('line', (l) => {
            if (l.startsWith('ready')) (clearTimeout(timer), resolve());
          });
          c.on('exit', (code) => reject(new Error(`${b.name} exited ${code}`)));
        }),
    ),
  );
}

function burst(proto: 'tcp' | 'udp', host: string, port: number, n: number): { counts: Record<string, number>; errors: number } {
  const out = run('ip', 'netns', 'exec', 'cl', process.execPath, join(here, 'burst.js'), proto, host, String(port), String(n));
  const r = JSON.parse(out.trim().split('\n').pop()!) as { counts: Record<string, number>; errors: number };
  return { counts: Object.fromEntries(Object.entries(r.counts).sort()), errors: r.errors }; // key order: for eq()
}

/** A long-lived TCP connection from the client namespace; `say` sends a line and waits for the reply. */
class Held {
  private lines: string[] = [];
  private waiters: ((l: string) => void)[] = [];
  readonly child: ChildProcess;
  constructor(host: string, port: number) {
    this.child = spawn('ip', ['netns', 'exec', 'cl', process.execPath, join(fixtures, 'client.js'), 'hold', host, String(port)], { stdio: ['pipe', 'pipe', 'inherit'] });
    children.push(this.child);
    createInterface({ input: this.child.stdout! }).on('line', (l) => {
      const w = this.waiters.shift();
      if (w) w(l);
      else this.lines.push(l);
    });
  }
  next(ms = 20_000): Promise<string> {
    const l = this.lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no line from held connection')), ms);
      this.waiters.push((x) => (clearTimeout(timer), resolve(x)));
    });
  }
  async say(text: string): Promise<string> {
    this.child.stdin!.write(`${text}\n`);
    return this.next();
  }
  close(): void {
    this.child.stdin!.end();
    this.child.kill();
  }
}

// ---- desired states ----
const be = (n: number, port: number, weight = 1, draining = false): Backend => ({ task: `t${n}`, ip: `10.99.${n}.2`, port, weight, draining });
const vs = (name: string, fwmark: number, vip: string, protocol: 'tcp' | 'udp', port: number, backends: Backend[], extra: Partial<VirtualService> = {}): VirtualService => ({
  key: `net1/${name}/${protocol}/${port}`,
  service: name,
  network: 'net1',
  fwmark,
  family: 4,
  vip,
  protocol,
  port,
  scheduler: 'rr',
  backends,
  ...extra,
});
const pub = (port: number, fwmark: number, targetPort: number, backends: Backend[]): PublishedPort => ({ key: `tcp/${port}`, service: 'web', fwmark, protocol: 'tcp', port, targetPort, scheduler: 'rr', backends });

function desired(o: { web?: Backend[]; dns?: Backend[]; idle?: Backend[] } = {}): DesiredState {
  const services = [
    vs('web', 0x100, '10.96.0.10', 'tcp', 80, o.web ?? [be(1, 80), be(2, 80), be(3, 80)]),
    vs('wweb', 0x101, '10.96.0.11', 'tcp', 80, [be(1, 80, 3), be(2, 80, 2), be(3, 80, 1)], { scheduler: 'wrr' }),
    vs('sticky', 0x102, '10.96.0.12', 'tcp', 80, [be(1, 80), be(2, 80), be(3, 80)], { persistence: 60 }),
    vs('dns', 0x103, '10.96.0.13', 'udp', 53, o.dns ?? [be(1, 53), be(2, 53), be(3, 53)]),
    vs('idle', 0x104, '10.96.0.14', 'tcp', 80, o.idle ?? [be(1, 80), be(2, 80)]),
    vs('hashweb', 0x105, '10.96.0.15', 'tcp', 80, [be(1, 80), be(2, 80), be(3, 80)], { scheduler: 'sh' }),
  ].sort((a, b) => (a.key < b.key ? -1 : 1));
  return { services, published: [pub(8080, 0x100, 80, [be(1, 80), be(2, 80), be(3, 80)])] };
}

async function sync(driver: IpvsDriver, want: DesiredState): Promise<{ ops: number; changed: number }> {
  const d = diff(want, await driver.observe(), driver);
  const r = await driver.apply(d);
  return { ops: r.ops, changed: d.add.length + d.change.length + d.remove.length + (d.base ? 1 : 0) };
}

// ---- ipvsadm -Ln, parsed: service head → destination lines without counters ----
function ipvsadmLn(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let cur: string[] | undefined;
  for (const raw of run('ipvsadm', '-Ln').split('\n')) {
    const l = raw.trim().replace(/\s+/g, ' ');
    if (/^(TCP|UDP|FWM|SCTP) /.test(l)) out.set(l, (cur = []));
    else if (l.startsWith('-> ') && cur && !l.startsWith('-> RemoteAddress')) cur.push(l.split(' ').slice(0, 4).join(' '));
  }
  return out;
}

/** `ipvsadm -Ln` holds exactly our planned services (plus the foreign ones, compared elsewhere). */
function assertPlanned(driver: IpvsDriver, want: DesiredState, foreignHeads: Set<string>): void {
  const marks = driver.unitMarks();
  const expected = new Map<string, string[]>();
  const drainingOk = new Map<string, Set<string>>();
  for (const u of units(want)) {
    const mark = marks.get(unitId(u));
    ok(mark !== undefined, `no mark for ${unitId(u)}`);
    for (const p of unitPlan(u, driver.kernelSchedulers)) {
      const head = `FWM ${mark} ${p.family === 6 ? 'IPv6 ' : ''}${p.scheduler}${p.persistence ? ` persistent ${p.persistence}` : ''}`;
      expected.set(head, p.dests.filter((d) => d.weight > 0).map((d) => `-> ${d.address}:${d.port} Masq ${d.weight}`).sort());
      drainingOk.set(head, new Set([...p.draining].map((k) => `-> ${k.replace('|', ':')} Masq 0`)));
    }
  }
  const actual = new Map<string, string[]>();
  for (const [head, dests] of ipvsadmLn()) {
    if (foreignHeads.has(head)) continue;
    actual.set(head, dests.filter((d) => !drainingOk.get(head)?.has(d)).sort());
  }
  eq([...actual.entries()].sort(), [...expected.entries()].sort(), 'ipvsadm -Ln (our services)');
}

// ---- foreign state, created before the driver runs and compared at the end ----
function createForeign(): void {
  sh(`ipvsadm -A -t 10.200.0.1:80 -s rr
ipvsadm -a -t 10.200.0.1:80 -r 10.99.1.2:80 -m -w 2
ipvsadm -A -f 77 -s wrr
ipvsadm -A -f ${0x40000123} -s rr   # in our mark range, but no rule of ours references it
ipvsadm -a -f ${0x40000123} -r 10.99.2.2:80 -m
iptables -t mangle -A PREROUTING -p tcp --dport 9999 -j MARK --set-mark 0x77
iptables -t mangle -A OUTPUT -d 10.200.0.1/32 -j MARK --set-mark 0x40000123
iptables -t nat -N FOREIGN
iptables -t nat -A FOREIGN -d 10.200.0.0/24 -j MASQUERADE
iptables -t nat -A POSTROUTING -j FOREIGN`);
}
const foreignIpvs = (): string[] => run('ipvsadm', '-S', '-n').split('\n').filter((l) => l && !/-f (\d+)/.test(l) || /-f (77|1073742115)\b/.test(l)).sort();
const foreignRules = (): string[] =>
  ['mangle', 'nat']
    .flatMap((t) => run('iptables-save', '-t', t).split('\n'))
    .filter((l) => l.startsWith('-A') && !l.includes('VIPDNS') && !l.includes('vipdns'))
    .sort();

async function main(): Promise<void> {
  console.log(`kernel ${run('uname', '-r').trim()}, node ${process.version}, in namespace lb`);
  await check('topology: lb, cl, be1..be3 namespaces, backends answering', async () => {
    topology();
    await startBackends();
    const direct = burst('tcp', '10.99.1.2', 80, 1);
    eq(direct.counts, { be1: 1 }, 'direct backend');
  });
  createForeign();
  const ipvsBefore = foreignIpvs();
  const rulesBefore = foreignRules();
  const foreignHeads = new Set([...ipvsadmLn().keys()]);

  let driver = new IpvsDriver({ ipv6: true });
  const s1 = desired();
  await check('probe: IPVS over generic netlink and iptables usable', async () => eq(await driver.probe(), { supported: true }, 'probe'));
  await check('first sync programs everything; sysctls set and reported', async () => {
    const r = await sync(driver, s1);
    ok(r.ops > 0, 'no ops');
    const sys = await driver.sysctlReport();
    eq(sys.map((s) => `${s.name}=${s.have}`), sys.map((s) => `${s.name}=${s.want}`), 'sysctls');
    const vips = run('ip', '-j', 'addr', 'show', 'dev', 'vipdns0');
    for (const v of ['10.96.0.10', '10.96.0.11', '10.96.0.12', '10.96.0.13', '10.96.0.14']) ok(vips.includes(`"${v}"`), `VIP ${v} not on vipdns0`);
  });
  await check('ipvsadm -Ln shows exactly the planned state', () => assertPlanned(driver, s1, foreignHeads));
  await check('dataplane show: inspect() lists what ipvsadm -Ln lists, per unit, with counters', async () => {
    const want = units(s1);
    const kernel = await driver.inspect(want);
    const listed = ipvsadmLn();
    const marks = driver.unitMarks();
    for (const [i, u] of want.entries()) {
      const k = kernel[i]!;
      ok(k.present && k.weights === 'exact', `${unitId(u)} present`);
      const head = [...listed.keys()].find((h) => h.startsWith(`FWM ${marks.get(unitId(u))} `));
      ok(head !== undefined, `no ipvsadm head for ${unitId(u)}`);
      ok(head!.includes(k.scheduler!), `scheduler ${k.scheduler} in "${head}"`);
      eq(k.backends.map((b) => `-> ${b.ip}:${b.port} Masq ${b.weight}`).sort(), [...listed.get(head!)!].sort(), `backends of ${unitId(u)}`);
      ok(k.backends.every((b) => typeof b.activeConns === 'number' && typeof b.inactiveConns === 'number'), 'connection counters');
    }
  });
  await check('second sync: observe matches expect, nothing to do', async () => {
    const d = diff(s1, await driver.observe(), driver);
    ok(isEmpty(d), `diff not empty: ${JSON.stringify({ add: d.add.length, change: d.change.map((c) => c.observed.id), remove: d.remove.map((r) => r.id), base: d.base })}`);
  });
  await check('rr: 300 connections exactly even over 3 replicas', () => eq(burst('tcp', '10.96.0.10', 80, 300), { counts: { be1: 100, be2: 100, be3: 100 }, errors: 0 }, 'spread'));
  await check('explain --port: the kernel rows of 10.96.0.10:80/tcp name the backends connections reach; a destination deleted by hand is flagged', async () => {
    // The rows explain --port and dataplane show print: the plan beside the driver's inspect().
    const want = units(s1).filter((u) => u.kind === 'vip' && u.vip.vip === '10.96.0.10');
    const rows = async () => showUnits(want, await driver.inspect(want), () => undefined);
    const before = await rows();
    eq(before.map((r) => [r.address, r.differences.length]), [['10.96.0.10:80/tcp', 0]], 'one row, agreeing');
    const named = before[0]!.backends.map((b) => BACKENDS.find((x) => x.ip === b.ip)?.name ?? b.ip).sort();
    eq(Object.keys(burst('tcp', '10.96.0.10', 80, 30).counts).sort(), named, 'connections reach exactly the backends named');
    sh(`ipvsadm -d -f ${driver.unitMarks().get('vip/net1/web/tcp/80')} -r 10.99.3.2:80`);
    eq((await rows())[0]!.differences, ['10.99.3.2:80 is planned but missing in the kernel'], 'flagged');
    await sync(driver, s1);
    eq((await rows())[0]!.differences, [], 'repaired by the next sync');
  });
  await check('wrr: 300 connections by weight 3:2:1', () => eq(burst('tcp', '10.96.0.11', 80, 300), { counts: { be1: 150, be2: 100, be3: 50 }, errors: 0 }, 'spread'));
  await check('persistence: one client stays on one backend', () => {
    const r = burst('tcp', '10.96.0.12', 80, 30);
    eq([Object.keys(r.counts).length, Object.values(r.counts)[0], r.errors], [1, 30, 0], `counts ${JSON.stringify(r.counts)}`);
  });
  await check('sh is the kernel\'s mh (consistent hashing): one client reaches one backend 50/50 times', () => {
    ok(run('ipvsadm', '-Ln').includes('mh'), 'an mh service is listed');
    const r = burst('tcp', '10.96.0.15', 80, 50);
    eq([Object.keys(r.counts).length, Object.values(r.counts)[0], r.errors], [1, 50, 0], `counts ${JSON.stringify(r.counts)}`);
  });
  await check('published port 8080 → target 80 on the balancer address, even spread', () =>
    eq(burst('tcp', LB_CLIENT_SIDE, 8080, 30), { counts: { be1: 10, be2: 10, be3: 10 }, errors: 0 }, 'spread'));
  await check('UDP VIP: 30 datagrams even over 3 replicas', () => eq(burst('udp', '10.96.0.13', 53, 30), { counts: { be1: 10, be2: 10, be3: 10 }, errors: 0 }, 'spread'));

  await check('FORWARD policy DROP with Docker-like chains (a Docker host): replies still cross, and those chains are unchanged', async () => {
    // Docker's filter chains as a Docker host has them, with the policy that drops what they do not accept.
    sh(`iptables -N DOCKER-USER
iptables -N DOCKER
iptables -A DOCKER-USER -j RETURN
iptables -A FORWARD -j DOCKER-USER
iptables -A FORWARD -o docker0 -j DOCKER
iptables -A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
iptables -P FORWARD DROP`);
    const docker = (): string[] =>
      run('iptables-save', '-t', 'filter')
        .split('\n')
        .filter((l) => (l.startsWith('-A') || l.startsWith(':')) && !l.includes('VIPDNS'))
        .map((l) => l.replace(/ \[\d+:\d+\]$/, ''));
    const before = docker();
    ok(burst('tcp', '10.96.0.10', 80, 2).errors === 2, 'without our accept, replies to the client are dropped in FORWARD');
    // The resync finds its FORWARD accept missing (the scaffolding drifted) and writes it first.
    await sync(driver, s1);
    eq(burst('tcp', '10.96.0.10', 80, 30), { counts: { be1: 10, be2: 10, be3: 10 }, errors: 0 }, 'VIP spread under DROP');
    eq(burst('tcp', LB_CLIENT_SIDE, 8080, 3).errors, 0, 'published port under DROP');
    eq(docker(), before, "Docker's chains and the policy byte-for-byte");
    ok(run('iptables-save', '-t', 'filter').split('\n').find((l) => l.startsWith('-A FORWARD')) === '-A FORWARD -j VIPDNS-FORWARD', 'our jump is first in FORWARD');
    sh(`iptables -P FORWARD ACCEPT
iptables -D FORWARD -j DOCKER-USER
iptables -D FORWARD -o docker0 -j DOCKER
iptables -D FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
iptables -F DOCKER-USER
iptables -X DOCKER-USER
iptables -X DOCKER`);
  });

  const held = new Held('10.96.0.10', 80);
  let heldOn = '';
  await check('long-lived connection established', async () => {
    eq(await held.next(), 'ready', 'connect');
    heldOn = (await held.next()).replace(/^reply /, '');
    ok(/^be\d$/.test(heldOn), `greeting ${heldOn}`);
  });
  await check('restart: a new driver adopts its services (no ops) and the connection survives', async () => {
    const marks = driver.unitMarks();
    driver.close();
    driver = new IpvsDriver({ ipv6: true });
    const d = diff(s1, await driver.observe(), driver);
    ok(isEmpty(d), `restart diff not empty: ${JSON.stringify({ add: d.add.length, change: d.change.map((c) => c.observed.id), remove: d.remove.map((r) => r.id), base: d.base })}`);
    eq([...driver.unitMarks()].sort(), [...marks].sort(), 'marks after restart');
    eq(await held.say('after-restart'), `reply ${heldOn} after-restart`, 'held connection');
  });

  // UDP from one fixed source port: its IPVS entry will point at the backend we drain.
  const udpJs = "const s=require('dgram').createSocket('udp4');s.bind(40053,()=>{s.send('x',53,'10.96.0.13')});s.on('message',m=>{console.log(String(m));process.exit(0)});setTimeout(()=>{console.log('timeout');process.exit(0)},3000)";
  const udpFixed = (): string => run('ip', 'netns', 'exec', 'cl', process.execPath, '-e', udpJs).trim();
  let k = 3;
  await check('UDP client on a fixed source port is answered', () => {
    const a = udpFixed();
    ok(/^be\d$/.test(a), `answer ${a}`);
    k = Number(a.slice(2));
  });
  const n = Number(heldOn.slice(2));
  const others = [1, 2, 3].filter((x) => x !== n);
  const s2 = desired({
    web: [1, 2, 3].map((x) => be(x, 80, 1, x === n)),
    dns: [1, 2, 3].map((x) => be(x, 53, 1, x === k)),
    idle: [be(1, 80), be(2, 80, 0, true)],
  });
  await check(`drain be${n} (TCP): weight 0, established connection kept, no new connections`, async () => {
    await sync(driver, s2);
    const dests = ipvsadmLn().get(`FWM ${driver.unitMarks().get('vip/net1/web/tcp/80')} rr`) ?? [];
    ok(dests.includes(`-> 10.99.${n}.2:80 Masq 0`), `draining dest not at weight 0: ${dests.join(' | ')}`);
    eq(await held.say('while-draining'), `reply ${heldOn} while-draining`, 'held connection');
    eq(burst('tcp', '10.96.0.10', 80, 30), { counts: { [`be${others[0]}`]: 15, [`be${others[1]}`]: 15 }, errors: 0 }, 'new connections');
    assertPlanned(driver, s2, foreignHeads);
  });
  await check('drain without connections: deleted at once; UDP draining dest deleted at once, no loss', async () => {
    const heads = ipvsadmLn();
    const m = driver.unitMarks();
    ok(!(heads.get(`FWM ${m.get('vip/net1/idle/tcp/80')} rr`) ?? []).some((l) => l.includes('10.99.2.2')), 'idle dest still there');
    ok(!(heads.get(`FWM ${m.get('vip/net1/dns/udp/53')} rr`) ?? []).some((l) => l.includes(`10.99.${k}.2`)), 'UDP dest still there');
    const u = burst('udp', '10.96.0.13', 53, 20);
    eq([u.errors, u.counts[`be${k}`] ?? 0, Object.values(u.counts).reduce((a, b) => a + b, 0)], [0, 0, 20], `UDP spread ${JSON.stringify(u.counts)}`);
    const d = diff(s2, await driver.observe(), driver);
    ok(isEmpty(d), 'early-deleted dests read back as drained');
  });
  await check('UDP: the fixed-port client whose flow went to the drained backend is rescheduled, not blackholed', () => {
    const b = udpFixed();
    ok(/^be\d$/.test(b) && b !== `be${k}`, `answer ${b} (drained be${k})`);
  });
  await check('drain deadline: the dest goes', async () => {
    const s3 = desired({ web: others.map((x) => be(x, 80)), dns: [be(1, 53), be(2, 53)], idle: [be(1, 80)] });
    await sync(driver, s3);
    assertPlanned(driver, s3, foreignHeads);
    ok(!(ipvsadmLn().get(`FWM ${driver.unitMarks().get('vip/net1/web/tcp/80')} rr`) ?? []).some((l) => l.includes(`10.99.${n}.2`)), 'drained dest still there');
  });
  held.close();

  await check('IPv6 VIP: 30 TCP connections over v6, even over 3 replicas', async () => {
    let v6 = 'echo 1 >/proc/sys/net/ipv6/conf/all/forwarding\n';
    v6 += 'ip -6 addr add fd00:99:100::1/64 dev vc nodad\nip -n cl -6 addr add fd00:99:100::2/64 dev eth0 nodad\nip -n cl -6 route add default via fd00:99:100::1\n';
    for (const n of [1, 2, 3]) v6 += `ip -6 addr add fd00:99:${n}::1/64 dev vb${n} nodad\nip -n be${n} -6 addr add fd00:99:${n}::2/64 dev eth0 nodad\nip -n be${n} -6 route add default via fd00:99:${n}::1\n`;
    sh(v6);
    await startBackends(['6:80']);
    const backends6 = [1, 2, 3].map((n): Backend => ({ task: `t6-${n}`, ip: `fd00:99:${n}::2`, port: 80, weight: 1, draining: false }));
    const s6 = desired();
    s6.services = [...s6.services, { ...vs('web6', 0x106, 'fd00:96::10', 'tcp', 80, backends6), family: 6 as const }].sort((a, b) => (a.key < b.key ? -1 : 1));
    await sync(driver, s6);
    ok(run('ip', '-6', 'addr', 'show', 'dev', 'vipdns0').includes('fd00:96::10'), 'the v6 VIP is on vipdns0');
    eq(burst('tcp', 'fd00:96::10', 80, 30), { counts: { be1: 10, be2: 10, be3: 10 }, errors: 0 }, 'v6 spread');
    ok(isEmpty(diff(s6, await driver.observe(), driver)), 'the v6 unit reads back as planned');
  });

  await check("IPv6 VIP on the client's own link: the host answers for it by proxy NDP, repaired, and let go with its unit", async () => {
    const backends6 = [1, 2, 3].map((n): Backend => ({ task: `t6-${n}`, ip: `fd00:99:${n}::2`, port: 80, weight: 1, draining: false }));
    const with6 = (...extra: VirtualService[]): DesiredState => {
      const s = desired();
      s.services = [...s.services, ...extra].sort((a, b) => (a.key < b.key ? -1 : 1));
      return s;
    };
    const web6 = { ...vs('web6', 0x106, 'fd00:96::10', 'tcp', 80, backends6), family: 6 as const };
    const link6 = { ...vs('link6', 0x107, 'fd00:99:100::10', 'tcp', 80, backends6), family: 6 as const };
    const proxies = (): string => run('ip', '-6', 'neigh', 'show', 'proxy');
    await sync(driver, with6(web6, link6));
    ok(proxies().includes('fd00:99:100::10 dev vc'), `proxy entry on the clients' link: ${proxies()}`);
    ok(!proxies().includes('fd00:96::10'), 'a routed VIP gets none');
    eq(burst('tcp', 'fd00:99:100::10', 80, 30), { counts: { be1: 10, be2: 10, be3: 10 }, errors: 0 }, 'spread from the same link');
    sh('ip -6 neigh del proxy fd00:99:100::10 dev vc');
    const d = diff(with6(web6, link6), await driver.observe(), driver);
    ok(d.change.some((c) => c.observed.id.includes('link6')), 'a missing entry is drift');
    await sync(driver, with6(web6, link6));
    ok(proxies().includes('fd00:99:100::10 dev vc'), 'repaired');
    await sync(driver, with6(web6));
    ok(!proxies().includes('fd00:99:100::10'), 'gone with its unit');
  });

  await check('dual stack: a service planned from a dual-stack network gets a VIP per family (one catalog fwmark, two IPVS services), each spreading over its family', async () => {
    const st = emptyState();
    st.networks.dual = { id: 'dual', name: 'dual', subnet: '10.97.0.0/24', gateway: '10.97.0.1', subnet6: 'fd00:97::/64', gateway6: 'fd00:97::1', attachable: false, createdAt: '', ipamCursor: '0', ipamCursor6: '0' };
    st.services.both = { id: 'both', name: 'both', aliases: [], endpointMode: 'vip', attachments: [{ network: 'dual', vip: '10.97.0.10', vip6: 'fd00:97::10' }], ports: [{ protocol: 'tcp', target: 80 }], fwmark: 0x108, createdAt: '' };
    for (const n of [1, 2, 3]) {
      st.tasks[`d${n}`] = { id: `d${n}`, name: `both.${n}`, service: 'both', slot: n, addresses: { dual: be(n, 80).ip }, addresses6: { dual: `fd00:99:${n}::2` }, health: 'healthy', createdAt: '' };
    }
    const dual = plan(st).services;
    eq(dual.map((u) => [u.vip, u.family, u.backends.length]), [['10.97.0.10', 4, 3], ['fd00:97::10', 6, 3]], 'planned units');
    const s = desired();
    s.services = [...s.services, ...dual].sort((a, b) => (a.key < b.key ? -1 : 1));
    await sync(driver, s);
    eq(burst('tcp', '10.97.0.10', 80, 30), { counts: { be1: 10, be2: 10, be3: 10 }, errors: 0 }, 'v4 VIP spread');
    eq(burst('tcp', 'fd00:97::10', 80, 30), { counts: { be1: 10, be2: 10, be3: 10 }, errors: 0 }, 'v6 VIP spread');
    ok(isEmpty(diff(s, await driver.observe(), driver)), 'both units read back as planned');
    await sync(driver, desired());
    ok(!run('ip', 'addr', 'show', 'dev', 'vipdns0').includes('10.97.0.10') && !run('ip', '-6', 'addr', 'show', 'dev', 'vipdns0').includes('fd00:97::10'), 'both VIPs go with the service');
  });

  await check('drift repaired: edited weight, deleted rule, removed VIP', async () => {
    const m = driver.unitMarks();
    sh(`ipvsadm -e -f ${m.get('vip/net1/wweb/tcp/80')} -r 10.99.1.2:80 -m -w 9
iptables -t mangle -D VIPDNS-VIPS $(iptables-save -t mangle | grep 'vip/net1/sticky' | sed 's/^-A VIPDNS-VIPS //' | tr -d '"')
ip addr del 10.96.0.14/32 dev vipdns0`);
    const s1b = desired();
    const d = diff(s1b, await driver.observe(), driver);
    const changed = d.change.map((c) => c.observed.id);
    ok(changed.includes('vip/net1/wweb/tcp/80') && changed.includes('vip/net1/idle/tcp/80'), `changed: ${changed.join(' ')}`);
    ok(d.add.some((u) => unitId(u) === 'vip/net1/sticky/tcp/80'), 'sticky re-added');
    await driver.apply(d);
    assertPlanned(driver, s1b, foreignHeads);
    ok(isEmpty(diff(s1b, await driver.observe(), driver)), 'converged');
    eq(burst('tcp', '10.96.0.14', 80, 4).errors, 0, 'idle VIP answers again');
  });
  await check('foreign IPVS services and iptables rules unchanged', () => {
    eq(foreignIpvs(), ipvsBefore, 'ipvsadm -S -n (foreign)');
    eq(foreignRules(), rulesBefore, 'iptables-save (foreign)');
  });
  await check('cleanup removes our chains, services and vipdns0; foreign state unchanged', async () => {
    eq(await driver.cleanup(), { removed: true }, 'cleanup');
    const save = run('iptables-save');
    ok(!save.includes('VIPDNS') && !save.includes('vipdns'), 'our rules remain (the FORWARD accept too)');
    eq([...ipvsadmLn().keys()].sort(), [...foreignHeads].sort(), 'IPVS services after cleanup');
    ok(spawnSync('ip', ['link', 'show', 'vipdns0']).status !== 0, 'vipdns0 still exists');
    eq(foreignIpvs(), ipvsBefore, 'ipvsadm -S -n (foreign)');
    eq(foreignRules(), rulesBefore, 'iptables-save (foreign)');
    eq(await driver.cleanup(), { removed: false }, 'second cleanup');
  });
  driver.close();
}

main()
  .catch((e) => checks.fail('suite', e))
  .finally(() => {
    for (const c of children) c.kill();
    process.exit(checks.summary('ipvs suite'));
  });
