// vipdns beside Docker's own resolver, asked by a real client in a real container: a one-node swarm
// (dockerd 20.10 in a namespace of its own, test/docker/dockerd.ts), vipdns following it, and dnsperf
// run inside a container's network namespace against 127.0.0.11 (Docker's embedded DNS) and against
// vipdns at the docker_gwbridge gateway, with the same query file: swarm service names (vip and
// dnsrr), tasks.<svc> and task names. Prints both columns and vipdns/Docker. Root only.
// Usage: npm run bench:docker [-- --services 20 --replicas 2 --seconds 10 --rate 2000]
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { removeDir, startDaemon, tempDir } from '../test/helpers/daemon.js';
import { IMAGE, dockerdAvailable, inContainer, startDockerd } from '../test/docker/dockerd.js';

const pexec = promisify(execFile);
const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const SERVICES = arg('services', 20);
const REPLICAS = arg('replicas', 2);
const SECONDS = arg('seconds', 10);
const RATE = arg('rate', 2000);

interface PerfResult {
  qps: number;
  avgMs: number;
  lost: number;
  sent: number;
  noerror: number;
}

/** dnsperf's summary lines → numbers. */
function parsePerf(out: string): PerfResult {
  const num = (re: RegExp): number => Number(re.exec(out)?.[1] ?? NaN);
  return {
    sent: num(/Queries sent:\s+(\d+)/),
    lost: num(/Queries lost:\s+(\d+)/),
    noerror: num(/NOERROR (\d+)/),
    qps: num(/Queries per second:\s+([\d.]+)/),
    avgMs: num(/Average Latency \(s\):\s+([\d.]+)/) * 1000,
  };
}

async function dnsperf(pid: number, server: string, port: number, file: string, rate?: number): Promise<PerfResult> {
  const args = ['-s', server, '-p', String(port), '-d', file, '-l', String(SECONDS), '-c', '4', '-t', '2', ...(rate ? ['-Q', String(rate)] : ['-q', '200'])];
  return parsePerf(await inContainer(pid, 'dnsperf', args));
}

async function main(): Promise<void> {
  const avail = dockerdAvailable();
  if (!avail.ok) throw new Error(`bench:docker needs a real dockerd: ${avail.reason}`);
  await pexec('sh', ['-c', 'command -v dnsperf']).catch(() => {
    throw new Error('bench:docker needs dnsperf (apt-get install dnsperf)');
  });
  const t0 = Date.now();
  const dk = await startDockerd({ swarm: true });
  const work = tempDir('vipdns-bench-docker-');
  let stopDaemon: (() => Promise<unknown>) | undefined;
  try {
    await dk.docker('network', 'create', '-d', 'overlay', '--attachable', '--subnet', '10.1.0.0/16', 'ov');
    // The client first: attaching a container to an overlay times out while the manager starts dozens of tasks.
    await dk.docker('run', '-d', '--name', 'probe', '--network', 'ov', IMAGE, 'sleep', '3600');
    const serve = ['sh', '-c', 'hostname > /www/index.html && exec httpd -f -p 80 -h /www'];
    const names: string[] = [];
    for (let i = 0; i < SERVICES; i++) {
      const dnsrr = i % 4 === 3;
      const name = `${dnsrr ? 'rr' : 'sv'}${i}`;
      await dk.docker('service', 'create', '-d', '--name', name, '--replicas', String(REPLICAS), '--network', 'ov', ...(dnsrr ? ['--endpoint-mode', 'dnsrr'] : []), IMAGE, ...serve);
      names.push(name);
    }
    for (let end = Date.now() + 180_000; ; ) {
      const ls = await dk.docker('service', 'ls', '--format', '{{.Replicas}}');
      if (ls.split('\n').filter(Boolean).every((r) => r === `${REPLICAS}/${REPLICAS}`)) break;
      if (Date.now() > end) throw new Error(`replicas not running after 180 s:\n${ls}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    const tasks = (await dk.docker('ps', '--filter', 'label=com.docker.swarm.service.name', '--format', '{{.Names}}')).split('\n').filter(Boolean);
    const gw = (await dk.docker('network', 'inspect', 'docker_gwbridge', '-f', '{{(index .IPAM.Config 0).Gateway}}')).trim();
    const d = await startDaemon({ wrap: ['ip', 'netns', 'exec', dk.ns], dnsListen: '0.0.0.0:0', args: ['--docker', `unix://${dk.socket}`] });
    stopDaemon = async () => {
      await d.stop();
      removeDir(d.dataDir);
    };
    const probe = await dk.pid('probe');
    // Wait until vipdns knows every name, and check that it answers each one as Docker does.
    const all = [...names, ...names.map((n) => `tasks.${n}`), ...tasks];
    const short = async (server: string, port: number, n: string): Promise<string> =>
      (await inContainer(probe, 'dig', ['+short', '+time=2', '+tries=1', `@${server}`, '-p', String(port), n])).split('\n').filter(Boolean).sort().join(',');
    for (let end = Date.now() + 60_000; ; ) {
      const last = await short(gw, d.dnsPort, tasks.at(-1)!);
      if (last !== '') break;
      if (Date.now() > end) throw new Error('vipdns did not learn the swarm in 60 s');
      await new Promise((r) => setTimeout(r, 250));
    }
    let same = 0;
    for (const n of all) if ((await short('127.0.0.11', 53, n)) === (await short(gw, d.dnsPort, n))) same++;

    // The query mix: 60% service names, 25% tasks.<svc>, 15% task names.
    const lines: string[] = [];
    for (let i = 0; i < 2000; i++) {
      const r = i % 20;
      const n = r < 12 ? names[i % names.length]! : r < 17 ? `tasks.${names[i % names.length]}` : tasks[i % tasks.length]!;
      lines.push(`${n} A`);
    }
    const file = join(work, 'queries');
    writeFileSync(file, `${lines.join('\n')}\n`);

    const rows: Array<[string, (p: PerfResult) => number, (n: number) => string]> = [
      ['queries/s', (p) => p.qps, (n) => n.toFixed(0)],
      ['mean latency', (p) => p.avgMs, (n) => `${n.toFixed(3)} ms`],
      ['lost', (p) => p.lost, (n) => String(n)],
    ];
    const report = (title: string, docker: PerfResult, ours: PerfResult): void => {
      console.log(`\n${title}`);
      console.log(`${'figure'.padEnd(16)}${'Docker 127.0.0.11'.padStart(20)}${'vipdns'.padStart(14)}${'vipdns/Docker'.padStart(16)}`);
      for (const [label, get, fmt] of rows) {
        const a = get(docker);
        const b = get(ours);
        console.log(`${label.padEnd(16)}${fmt(a).padStart(20)}${fmt(b).padStart(14)}${(a === 0 ? '-' : `${(b / a).toFixed(2)}x`).padStart(16)}`);
      }
    };
    // Alternated, so drift on a shared machine hits both.
    const fixedDocker = await dnsperf(probe, '127.0.0.11', 53, file, RATE);
    const fixedOurs = await dnsperf(probe, gw, d.dnsPort, file, RATE);
    const maxDocker = await dnsperf(probe, '127.0.0.11', 53, file);
    const maxOurs = await dnsperf(probe, gw, d.dnsPort, file);

    console.log(`swarm: ${SERVICES} services (every 4th dnsrr) x ${REPLICAS} replicas on one overlay, a client container (probe); dnsperf in its namespace, ${SECONDS} s per run, 4 clients`);
    console.log(`answer sets equal to Docker's for ${same} of ${all.length} names (services, tasks.<svc>, task names)`);
    report(`fixed rate: ${RATE} queries/s`, fixedDocker, fixedOurs);
    report('as fast as each answers (200 outstanding)', maxDocker, maxOurs);
    console.log(`\ntook ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  } finally {
    await stopDaemon?.();
    await dk.stop();
    removeDir(work);
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
