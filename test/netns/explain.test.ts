// `vipdns explain` never disagrees with dig: for each row of a table of names, types and client
// addresses (vip, dnsrr, tasks., aliases, containers, task names, PTR, SRV, another network, no
// network, unhealthy tasks, fail-open, unknown and outside names), explain's answer equals what
// `dig -b SOURCE` gets from the daemon, asked from a client namespace holding those addresses.
import test from 'ava';
import type { ChildProcess } from 'node:child_process';
import { removeDir, run, startDaemon } from '../helpers/daemon.js';
import { NetnsSet, canUseNetns, sh } from '../helpers/ns.js';
import { startIn } from '../helpers/netns.js';
import { fixture } from './common.js';

const can = canUseNetns();
const rootTest = can.ok ? test.serial : test.skip;
if (!can.ok) console.log(`netns explain test skipped: ${can.reason}`);

const FRONT = '10.89.1.50';
const BACK = '10.89.2.50';
const NOWHERE = '10.89.9.50';

interface Rr {
  name: string;
  type: string;
  data: string;
}
const key = (r: Rr) => `${r.name.toLowerCase().replace(/\.$/, '')} ${r.type} ${r.data.replace(/\.$/, '').toLowerCase()}`;

/** dig's status and answer section, without TTLs. */
function parseDig(out: string): { rcode: string; answers: string[] } {
  const rcode = /status: ([A-Z]+)/.exec(out)?.[1] ?? 'NONE';
  const answers: string[] = [];
  const lines = out.split('\n');
  const i = lines.findIndex((l) => l.startsWith(';; ANSWER SECTION:'));
  if (i >= 0) {
    for (const l of lines.slice(i + 1)) {
      if (l.trim() === '') break;
      const [name, , , type, ...data] = l.trim().split(/\s+/);
      answers.push(key({ name: name!, type: type!, data: data.join(' ') }));
    }
  }
  return { rcode, answers: answers.sort() };
}

rootTest(`explain's answer equals dig -b SOURCE for every row of the table${can.ok ? '' : ` (skipped: ${can.reason})`}`, async (t) => {
  const ns = new NetnsSet();
  const procs: ChildProcess[] = [];
  t.teardown(() => {
    for (const p of procs) p.kill('SIGKILL');
    ns.destroy();
  });
  const host = ns.add('h');
  const cl = ns.add('c');
  ns.link(host, 'to-c', '10.89.1.1/24', cl, 'eth0', `${FRONT}/24`);
  sh('ip', ['-n', host, 'addr', 'add', '10.89.2.1/24', 'dev', 'to-c']);
  sh('ip', ['-n', host, 'addr', 'add', '10.89.9.1/24', 'dev', 'to-c']);
  sh('ip', ['-n', cl, 'addr', 'add', `${BACK}/24`, 'dev', 'eth0']);
  sh('ip', ['-n', cl, 'addr', 'add', `${NOWHERE}/24`, 'dev', 'eth0']);
  // A container on both networks asks from either of its addresses.
  sh('ip', ['-n', cl, 'addr', 'add', '10.89.1.70/24', 'dev', 'eth0']);
  sh('ip', ['-n', cl, 'addr', 'add', '10.89.2.70/24', 'dev', 'eth0']);
  // A container on front that also asks from an address on no network of ours (docker_gwbridge's role).
  sh('ip', ['-n', cl, 'addr', 'add', '10.89.9.80/24', 'dev', 'eth0']);
  // The one healthy task of `hc` answers its check on 7777 in the client namespace.
  procs.push(await startIn(cl, fixture('echo-server'), ['hc', '7777']));

  const d = await startDaemon({ wrap: ['ip', 'netns', 'exec', host], dnsListen: '0.0.0.0:0' });
  t.teardown(async () => {
    await d.stop();
    removeDir(d.dataDir);
  });
  const ok = (...a: string[]): Promise<string> => d.ok(...a);
  await ok('network', 'create', 'front', '--subnet', '10.89.1.0/24', '--attachable');
  await ok('network', 'create', 'back', '--subnet', '10.89.2.0/24', '--attachable');
  await ok('service', 'create', 'web', '--network', 'front', '--network', 'back', '--port', 'http=80', '--alias', 'www');
  await ok('task', 'add', 'web');
  await ok('task', 'add', 'web');
  await ok('service', 'create', 'rr', '--network', 'front', '--endpoint-mode', 'dnsrr', '--port', 'dns=53/udp');
  await ok('task', 'add', 'rr');
  await ok('task', 'add', 'rr');
  await ok('container', 'add', 'db', '--network', 'back', '--alias', 'database');
  await ok('container', 'add', 'multi', '--network', 'front', '--ip', '10.89.1.70', '--network', 'back', '--ip', '10.89.2.70');
  await ok('container', 'add', 'gwc', '--network', 'front', '--ip', '10.89.1.80', '--client-address', '10.89.9.80');
  const inside = await d.cli('container', 'add', 'bad-client', '--network', 'front', '--client-address', '10.89.2.99');
  t.regex(inside.stderr, /client address 10\.89\.2\.99 is inside network "back"/);
  await ok('service', 'create', 'hc', '--network', 'front', '--endpoint-mode', 'dnsrr', '--health-check', 'tcp:7777', '--health-interval', '300', '--health-timeout', '200');
  await ok('task', 'add', 'hc', '--ip', FRONT);
  await ok('task', 'add', 'hc', '--ip', '10.89.1.51'); // nobody there: unhealthy
  await ok('service', 'create', 'bad', '--network', 'back', '--endpoint-mode', 'dnsrr', '--health-check', 'tcp:7778', '--health-interval', '300', '--health-timeout', '200');
  await ok('task', 'add', 'bad', '--ip', '10.89.2.60');
  await ok('task', 'add', 'bad', '--ip', '10.89.2.61');
  const tasks = JSON.parse(await ok('--json', 'task', 'ls')) as Array<{ name: string; service: string; health: string; addresses: Record<string, string> }>;
  for (let i = 0; i < 100; i++) {
    const h = (JSON.parse(await ok('--json', 'task', 'ls')) as typeof tasks).filter((x) => x.service === 'hc' || x.service === 'bad').map((x) => `${x.service}:${x.health}`).sort();
    if (h.join() === 'bad:unhealthy,bad:unhealthy,hc:healthy,hc:unhealthy') break;
    if (i === 99) throw new Error(`health never settled: ${h.join()}`);
    await new Promise((r) => setTimeout(r, 150));
  }
  const webTask = tasks.find((x) => x.service === 'web')!;
  const webVip = (JSON.parse(await ok('--json', 'service', 'inspect', 'web')) as { attachments: { network: string; vip: string }[] }).attachments.find((a) => a.network === 'front')!.vip;
  const dbIp = (JSON.parse(await ok('--json', 'container', 'inspect', 'db')) as { addresses: { back: string } }).addresses.back;
  const rev = (ip: string) => `${ip.split('.').reverse().join('.')}.in-addr.arpa`;

  const cases: Array<[string, string, string]> = [
    ['web', 'A', FRONT],
    ['web', 'A', BACK],
    ['web', 'A', NOWHERE],
    ['web.back', 'A', FRONT],
    ['web.front', 'A', FRONT],
    ['web.vipdns.internal', 'A', BACK],
    ['web', 'AAAA', FRONT],
    ['tasks.web', 'A', FRONT],
    ['tasks.web', 'A', BACK],
    ['www', 'A', FRONT],
    ['rr', 'A', FRONT],
    ['rr', 'A', BACK],
    ['db', 'A', BACK],
    ['db', 'A', FRONT],
    ['database', 'A', BACK],
    [webTask.name, 'A', BACK],
    [rev(webVip), 'PTR', FRONT],
    [rev(dbIp), 'PTR', FRONT],
    [rev(dbIp), 'PTR', BACK],
    ['_http._tcp.web', 'SRV', FRONT],
    ['_dns._udp.rr', 'SRV', FRONT],
    ['hc', 'A', FRONT],
    ['tasks.hc', 'A', FRONT],
    ['bad', 'A', BACK],
    ['nope', 'A', FRONT],
    ['tasks.nope', 'A', FRONT],
    ['outside.invalid', 'A', FRONT],
    ['rr', 'A', '10.89.2.70'], // rr is on front only: seen from multi's back address
    ['db', 'A', '10.89.1.70'], // db is on back only: seen from multi's front address
    ['rr', 'A', '10.89.9.80'], // from gwc's client address: gwc's networks (front)
    ['db', 'A', '10.89.9.80'], // db (back) is not on them
  ];
  const rows: string[] = [];
  for (const [name, type, src] of cases) {
    const dig = parseDig((await run('ip', ['netns', 'exec', cl, 'dig', '-b', src, '@10.89.1.1', '-p', String(d.dnsPort), '+time=2', '+tries=1', name, type])).stdout);
    const e = JSON.parse(await ok('--json', 'explain', name, '--from', src, '--type', type)) as { answer: { rcode: string; answers: Rr[] } };
    const mine = { rcode: e.answer.rcode, answers: e.answer.answers.map(key).sort() };
    t.deepEqual(mine, dig, `${name} ${type} from ${src}`);
    rows.push(`${name} ${type} from ${src}: ${dig.rcode}, ${dig.answers.length} record(s)`);
  }
  t.log(rows.join('\n'));

  // The explanation around the answer.
  const back = JSON.parse(await ok('--json', 'explain', 'web', '--from', BACK)) as { client: { sees: string[] }; matches: Array<{ network: string; visible: boolean; hidden?: string }> };
  t.deepEqual(back.client.sees, ['back']);
  const multi = JSON.parse(await ok('--json', 'explain', 'rr', '--from', '10.89.2.70')) as { client: { sees: string[]; why: string } };
  t.deepEqual(multi.client.sees, ['back', 'front']);
  t.regex(multi.client.why, /inside back \(10\.89\.2\.0\/24\); the task or container with this address is also on front/);
  t.deepEqual(back.matches.map((m) => [m.network, m.visible, m.hidden ?? '']).sort(), [['back', true, ''], ['front', false, 'the client is not on network front']]);
  const hc = JSON.parse(await ok('--json', 'explain', 'hc', '--from', FRONT)) as { matches: Array<{ health: { unhealthy: number; failOpen: boolean } }> };
  t.like(hc.matches[0]!.health, { unhealthy: 1, failOpen: false });
  const bad = JSON.parse(await ok('--json', 'explain', 'bad', '--from', BACK)) as { matches: Array<{ health: { failOpen: boolean; note: string } }> };
  t.true(bad.matches[0]!.health.failOpen);
  t.regex(bad.matches[0]!.health.note, /fails open/);
  const text = await ok('explain', 'web', '--from', NOWHERE);
  t.regex(text, /outside every network: sees no internal names/);
  const wrong = await d.cli('explain', 'web', '--from', 'not-an-ip');
  t.not(wrong.code, 0);
  t.regex(wrong.stderr, /--from needs the client's IP address, got "not-an-ip"/);
});
