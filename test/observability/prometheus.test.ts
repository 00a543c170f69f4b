// The dashboard and the alert rules, proven on a real Prometheus: the daemon (nftables
// dataplane, health checks, a dnsmasq upstream) runs in a namespace of its own, Prometheus
// scrapes it there, traffic is driven with dig, and every PromQL expression of the dashboard
// and every alert's signal is evaluated through Prometheus's HTTP API.
import test from 'ava';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, removeDir, startDaemon, tempDir } from '../helpers/daemon.js';
import { NetnsSet, canUseNetns, sh } from '../helpers/ns.js';

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos?: unknown;
  datasource?: unknown;
  targets?: Array<{ expr: string; refId: string }>;
}
const dashboard = JSON.parse(readFileSync(join(ROOT, 'grafana/dashboard.json'), 'utf8')) as { uid: string; panels: Panel[]; templating: { list: Array<{ name: string }> } };
const RULES = join(ROOT, 'grafana/alerts.yml');

// Series that exist only once something goes wrong; an empty result for them is the right answer here.
const LEGITIMATELY_EMPTY = new Set(['Cache evictions', 'Forwards refused by the concurrency cap', 'Sync errors', 'Kernel errors by operation']);

test('dashboard structure: rows, panels with queries, unique ids, template variables', (t) => {
  t.is(dashboard.uid, 'vipdns');
  const ids = dashboard.panels.map((p) => p.id);
  t.is(new Set(ids).size, ids.length, 'unique panel ids');
  const rows = dashboard.panels.filter((p) => p.type === 'row').map((p) => p.title);
  t.deepEqual(rows, ['DNS traffic', 'Cache', 'Upstreams', 'Catalog', 'Dataplane', 'Health checks', 'Process']);
  for (const p of dashboard.panels.filter((x) => x.type !== 'row')) {
    t.truthy(p.gridPos, p.title);
    t.truthy(p.datasource, p.title);
    t.true((p.targets?.length ?? 0) > 0, `${p.title} has queries`);
    for (const q of p.targets ?? []) t.notRegex(q.expr, /\b(name|qname|client)=/, 'no query names or clients in labels');
  }
  t.deepEqual(dashboard.templating.list.map((v) => v.name), ['datasource', 'instance']);
});

test('promtool accepts the alert rules', (t) => {
  const r = spawnSync('promtool', ['check', 'rules', RULES], { encoding: 'utf8' });
  if (r.error) return t.fail(`promtool is not installed (.ci/run installs the prometheus package): ${r.error.message}`);
  t.is(r.status, 0, r.stdout + r.stderr);
  t.regex(r.stdout, /SUCCESS: 7 rules found/);
});

const can = canUseNetns();
const rootTest = can.ok ? test.serial : test.skip;
if (!can.ok) console.log(`Prometheus end-to-end test skipped: ${can.reason}`);

rootTest(`every dashboard query and alert signal returns data on a real Prometheus${can.ok ? '' : ` (skipped: ${can.reason})`}`, async (t) => {
  const ns = new NetnsSet();
  const procs: ChildProcess[] = [];
  const dir = tempDir('vipdns-prom-');
  t.teardown(() => {
    for (const p of procs) p.kill('SIGKILL');
    ns.destroy();
    removeDir(dir);
  });
  const host = ns.add('h');
  const be = ns.add('b');
  sh('ip', ['-n', host, 'link', 'add', 'br0', 'type', 'bridge']);
  sh('ip', ['-n', host, 'addr', 'add', '10.79.0.1/24', 'dev', 'br0']);
  sh('ip', ['-n', host, 'link', 'set', 'br0', 'up']);
  ns.link(host, 'vb0', '0.0.0.0/32', be, 'eth0', '10.79.0.11/24');
  sh('ip', ['-n', host, 'addr', 'flush', 'dev', 'vb0']);
  sh('ip', ['-n', host, 'link', 'set', 'vb0', 'master', 'br0']);
  sh('ip', ['-n', be, 'route', 'add', 'default', 'via', '10.79.0.1']);
  const exec = (cmd: string, args: string[]): ChildProcess => {
    const p = spawn('ip', ['netns', 'exec', host, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    procs.push(p);
    return p;
  };
  const backend = spawn('ip', ['netns', 'exec', be, process.execPath, join(ROOT, 'test/fixtures/backend.mjs'), 'b0', '10.79.0.11', '8080'], { stdio: 'ignore' });
  procs.push(backend);
  // A real upstream inside the namespace, for forwarded and cached answers.
  exec('dnsmasq', ['--no-daemon', '--port=5399', '--listen-address=127.0.0.1', '--bind-interfaces', '--no-resolv', '--no-hosts', '--pid-file=', '--address=/upstream.test/192.0.2.7', '--local-ttl=300', '--user=root']);

  const d = await startDaemon({ wrap: ['ip', 'netns', 'exec', host], args: ['--dataplane', 'nftables', '--upstream', '127.0.0.1:5399'] });
  t.teardown(async () => {
    await d.stop();
    removeDir(d.dataDir);
  });
  const ok = (...a: string[]): Promise<string> => d.ok(...a);
  await ok('network', 'create', 'n', '--subnet', '10.79.0.0/24');
  await ok('service', 'create', 'web', '--network', 'n', '--port', 'http=8080', '--health-check', 'http:8080/', '--health-interval', '500', '--health-timeout', '300');
  await ok('task', 'add', 'web', '--ip', '10.79.0.11');
  await ok('service', 'create', 'api', '--network', 'n', '--endpoint-mode', 'dnsrr');
  await ok('task', 'add', 'api');

  const metricsPort = new URL(d.metrics).port;
  const promPort = 19000 + Math.floor(Math.random() * 900);
  writeFileSync(
    join(dir, 'prometheus.yml'),
    `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: ['${RULES}']\nscrape_configs:\n  - job_name: vipdns\n    static_configs:\n      - targets: ['127.0.0.1:${metricsPort}']\n`,
  );
  exec('prometheus', [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${promPort}`, '--log.level=warn']);

  const dig = (...a: string[]): string => sh('ip', ['netns', 'exec', host, 'dig', '@127.0.0.1', '-p', String(d.dnsPort), '+time=2', '+tries=1', ...a]);
  const drive = (): void => {
    for (const name of ['web', 'api', 'tasks.web', 'nope', '_http._tcp.web']) dig(name, name.startsWith('_') ? 'SRV' : 'A');
    dig('upstream.test');
    dig('+tcp', 'web');
    dig('web', 'AAAA');
    dig('+opcode=notify', 'web'); // answered NOTIMP: counted as malformed
  };
  const query = (expr: string): { status: string; data?: { result: unknown[] }; error?: string } => {
    const out = sh('ip', ['netns', 'exec', host, 'curl', '-s', '-G', `http://127.0.0.1:${promPort}/api/v1/query`, '--data-urlencode', `query=${expr}`]);
    return JSON.parse(out) as { status: string; data?: { result: unknown[] } };
  };
  // Traffic for a while, so rates over the window have several samples.
  const until = Date.now() + 12_000;
  while (Date.now() < until) {
    drive();
    await new Promise((r) => setTimeout(r, 300));
  }
  let upReady = false;
  for (let i = 0; i < 30 && !upReady; i++) {
    try {
      upReady = (query('up{job="vipdns"} == 1').data?.result.length ?? 0) > 0;
    } catch {
      /* Prometheus still starting */
    }
    if (!upReady) await new Promise((r) => setTimeout(r, 500));
  }
  t.true(upReady, 'Prometheus scrapes the daemon');

  const subst = (e: string): string => e.replaceAll('$__rate_interval', '30s').replaceAll('$instance', '.*');
  for (const p of dashboard.panels.filter((x) => x.type !== 'row')) {
    for (const q of p.targets ?? []) {
      const r = query(subst(q.expr));
      t.is(r.status, 'success', `${p.title}: ${q.expr} → ${r.error ?? ''}`);
      const n = r.data?.result.length ?? 0;
      if (LEGITIMATELY_EMPTY.has(p.title)) t.pass();
      else t.true(n > 0, `${p.title} [${q.refId}] returns data: ${q.expr}`);
    }
  }
  // Alerts: each rule is "<signal> <op> <threshold>"; the signal must evaluate to data.
  const rules = readFileSync(RULES, 'utf8');
  const exprs = [...rules.matchAll(/^\s+expr: (.*)$/gm)].map((m) => m[1]!);
  t.is(exprs.length, 7);
  for (const e of exprs) {
    const signal = e.replace(/\s*(>|<|==|>=|<=|!=)\s*[\d.e+-]+\s*$/, '');
    t.not(signal, e, `rule has a threshold: ${e}`);
    const r = query(signal);
    t.is(r.status, 'success', `${signal} → ${r.error ?? ''}`);
    t.true((r.data?.result.length ?? 0) > 0, `alert signal returns data: ${signal}`);
  }
  // promtool agrees with the exposition format.
  const text = sh('ip', ['netns', 'exec', host, 'curl', '-s', `${d.metrics}/metrics`]);
  const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  t.is(check.status, 0, `promtool check metrics: ${check.stdout}${check.stderr}`);
  t.notRegex(text, /upstream\.test|qname=|client=/, 'no query names or clients in the exposition');
  t.regex(text, /vipdns_dns_requests_total\{proto="udp",type="A",network="loopback"\} \d+/, 'requests carry the client network');
});
