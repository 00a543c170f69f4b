// The Dockerfile without a Docker engine: lint rules we care about (there is no hadolint in
// Debian, and the npm Dockerfile linters are unmaintained), and its build stage's commands
// run for real on a copy of the repo, as in the image.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, removeDir, run, tempDir } from '../helpers/daemon.js';
import { parseDockerfile } from './dockerfile.js';

const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const stages = parseDockerfile(text);
const runtime = stages[stages.length - 1]!;
const all = stages.flatMap((s) => s.instructions);

test('lint: pinned bases, multi-stage, no remote ADD, apt hygiene, USER, HEALTHCHECK, exec form', (t) => {
  t.true(stages.length >= 2, 'multi-stage');
  for (const s of stages) {
    t.regex(s.from, /^[a-z0-9./-]+:\d+[\w.-]*$/, `base ${s.from} has a version tag (not latest)`);
    t.notRegex(s.from, /:latest$/);
  }
  t.is(runtime.from, 'node:20-bookworm-slim', 'runtime on Node 20, slim');
  for (const i of all) {
    t.not(i.cmd, 'ADD', `line ${i.line}: use COPY (ADD fetches URLs and unpacks archives)`);
    t.false(i.cmd === 'MAINTAINER', `line ${i.line}: MAINTAINER is deprecated`);
    if (i.cmd === 'RUN') {
      t.notRegex(i.args, /\b(curl|wget)\b/, `line ${i.line}: nothing is downloaded outside the package managers`);
      t.notRegex(i.args, /\bsudo\b/, `line ${i.line}: no sudo`);
      t.notRegex(i.args, /^cd\s/, `line ${i.line}: use WORKDIR instead of cd`);
      if (/apt-get install/.test(i.args)) {
        t.regex(i.args, /apt-get update\s*&&/, `line ${i.line}: update and install in one layer`);
        t.regex(i.args, /-y\b/, `line ${i.line}: non-interactive`);
        t.regex(i.args, /--no-install-recommends/, `line ${i.line}: no recommends`);
        t.regex(i.args, /rm -rf \/var\/lib\/apt\/lists\/\*/, `line ${i.line}: apt lists cleaned in the same layer`);
      }
      if (/npm (install|ci)/.test(i.args)) t.regex(i.args, /npm ci\b/, `line ${i.line}: npm ci, from the lock file`);
    }
  }
  const rt = (cmd: string) => runtime.instructions.filter((i) => i.cmd === cmd);
  t.true(rt('USER').length > 0 && rt('USER').at(-1)!.args !== 'root' && rt('USER').at(-1)!.args !== '0', 'runtime runs as non-root');
  const hc = rt('HEALTHCHECK');
  t.is(hc.length, 1);
  t.regex(hc[0]!.args, /CMD \[.*127\.0\.0\.1:9153\/healthz/, 'HEALTHCHECK on /healthz, exec form');
  t.notRegex(hc[0]!.args, /curl|wget/, 'no curl in the image');
  for (const cmd of ['ENTRYPOINT', 'CMD']) t.regex(rt(cmd)[0]!.args, /^\[/, `${cmd} in exec form (signals reach node)`);
  t.deepEqual(rt('EXPOSE').flatMap((i) => i.args.split(/\s+/)).sort(), ['53/tcp', '53/udp', '9153/tcp'], 'the API is a socket in the volume, not a port');
  for (const tool of ['nftables', 'iptables', 'ipvsadm', 'iproute2']) t.true(runtime.instructions.some((i) => i.cmd === 'RUN' && i.args.includes(tool)), `runtime has ${tool}`);
  t.true(runtime.instructions.some((i) => i.cmd === 'COPY' && /--from=build/.test(i.args)), 'runtime copies build output only');
  // .dockerignore keeps local builds and dependencies out of the context.
  const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n');
  for (const x of ['node_modules', 'dist', 'vipdns-data', '.git']) t.true(ignore.includes(x), `.dockerignore has ${x}`);
});

test('build stage commands run on a copy of the build context; the pruned tree runs the CLI and the HEALTHCHECK', async (t) => {
  const dir = tempDir('vipdns-image-');
  t.teardown(() => removeDir(dir));
  const build = stages[0]!;
  // COPY from the context, as the build stage does (only what it names).
  for (const i of build.instructions.filter((x) => x.cmd === 'COPY')) {
    const parts = i.args.split(/\s+/);
    for (const src of parts.slice(0, -1)) cpSync(join(ROOT, src), join(dir, src), { recursive: true });
  }
  // System packages (apt-get) are the host's own here; every other build step runs as written.
  for (const i of build.instructions.filter((x): boolean => x.cmd === 'RUN' && !/^apt-get\b/.test(x.args.trim()))) {
    execFileSync('sh', ['-ec', i.args], { cwd: dir, stdio: 'pipe', timeout: 8 * 60_000, env: { ...process.env, npm_config_prefer_offline: 'true' } });
  }
  t.true(existsSync(join(dir, 'dist/src/cli.js')));
  t.true(existsSync(join(dir, 'build/Release/vipdns_netlink.node')), 'the netlink addon is built');
  t.false(existsSync(join(dir, 'node_modules/typescript')), 'dev dependencies pruned');
  t.false(existsSync(join(dir, 'node_modules/ava')));
  const help = await run(process.execPath, [join(dir, 'dist/src/cli.js'), 'serve', '--help']);
  t.is(help.code, 0, help.stderr);
  t.regex(help.stdout, /--docker/);

  // The HEALTHCHECK command itself, pointed at a daemon run from the pruned tree.
  const hc = /CMD \[(.*)\]\s*$/.exec(runtime.instructions.find((i) => i.cmd === 'HEALTHCHECK')!.args)![1]!;
  const argv = JSON.parse(`[${hc}]`) as string[];
  const { startDaemon } = await import('../helpers/daemon.js');
  const d = await startDaemon();
  t.teardown(async () => {
    await d.stop();
    removeDir(d.dataDir);
  });
  const port = new URL(d.metrics).port;
  const script = argv[2]!.replace('9153', port);
  t.is((await run(process.execPath, ['-e', script])).code, 0, 'healthy daemon → 0');
  t.is((await run(process.execPath, ['-e', argv[2]!.replace('9153', '1')])).code, 1, 'nothing listening → 1');
});
