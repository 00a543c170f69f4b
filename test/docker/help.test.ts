// Every command and subcommand has a --help that exits 0 and names its options; the example
// config file loads.
import test from 'ava';
import { availableParallelism } from 'node:os';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../src/config.js';
import { CLI, ROOT, removeDir, run, tempDir } from '../helpers/daemon.js';

const commands: Array<[string[], RegExp[]]> = [
  [[], [/serve/, /network/, /service/, /task/, /container/, /--api/, /--json/]],
  [['serve'], [/--config/, /--data-dir/, /--dns-listen/, /--dns-workers/, /--api-listen/, /--metrics-listen/, /--domain/, /--upstream/, /--dataplane/, /--log-level/, /--docker/]],
  [['network'], [/create/, /ls/, /inspect/, /rm/]],
  [['network', 'create'], [/--subnet/, /--gateway/, /--attachable/]],
  [['network', 'ls'], [/list networks/]],
  [['network', 'inspect'], [/<name>/]],
  [['network', 'rm'], [/<name\.\.\.>/]],
  [['service'], [/create/, /update/, /ls/, /inspect/, /rm/]],
  [['service', 'create'], [/--network/, /--endpoint-mode/, /--vip/, /--publish/, /--port/, /--alias/, /--health-check/]],
  [['service', 'update'], [/--network-add/, /--network-rm/, /--endpoint-mode/, /--alias-add/, /--alias-rm/]],
  [['service', 'ls'], [/list services/]],
  [['service', 'inspect'], [/<name>/]],
  [['service', 'rm'], [/<name\.\.\.>/]],
  [['task'], [/add/, /ls/, /inspect/, /rm/]],
  [['task', 'add'], [/--ip/, /--name/]],
  [['task', 'ls'], [/\[service\]/]],
  [['task', 'inspect'], [/<task>/]],
  [['task', 'rm'], [/<task\.\.\.>/]],
  [['container'], [/add/, /ls/, /inspect/, /rm/]],
  [['container', 'add'], [/--network/, /--ip/, /--alias/]],
  [['container', 'ls'], [/list containers/]],
  [['container', 'inspect'], [/<name>/]],
  [['container', 'rm'], [/<name\.\.\.>/]],
];

test('vipdns <cmd> --help exits 0 and mentions its options', async (t) => {
  const results = await Promise.all(commands.map(([cmd]) => run(process.execPath, [CLI, ...cmd, '--help'])));
  results.forEach((r, i) => {
    const [cmd, want] = commands[i]!;
    t.is(r.code, 0, `vipdns ${cmd.join(' ')} --help: ${r.stderr}`);
    t.regex(r.stdout, /^Usage: vipdns/, cmd.join(' '));
    for (const w of want) t.regex(r.stdout, w, `vipdns ${cmd.join(' ')} --help mentions ${w}`);
  });
});

test('examples/vipdns.json is a valid config with every key', (t) => {
  const c = loadConfig({ file: join(ROOT, 'examples/vipdns.json'), env: {} });
  t.is(c.dnsListen.port, 53);
  t.deepEqual(c.upstreams, ['1.1.1.1', '9.9.9.9:53']);
  t.is(c.docker, 'unix:///var/run/docker.sock');
  t.is(loadConfig({ env: { VIPDNS_DOCKER: 'true', DOCKER_HOST: 'unix:///run/podman/podman.sock' } }).docker, 'unix:///run/podman/podman.sock');
  t.is(loadConfig({ env: { VIPDNS_DOCKER: 'true' } }).docker, 'unix:///var/run/docker.sock');
  t.is(loadConfig({ env: { VIPDNS_DOCKER: 'false' }, flags: {} }).docker, undefined);
  t.is(loadConfig({ env: {}, flags: { docker: true } }).docker, 'unix:///var/run/docker.sock', '--docker with no value');
  t.is(loadConfig({ env: {}, flags: { docker: 'tcp://127.0.0.1:2375' } }).docker, 'tcp://127.0.0.1:2375');
  t.is(loadConfig({ env: {}, flags: { docker: '/run/podman/podman.sock' } }).docker, 'unix:///run/podman/podman.sock');
  t.throws(() => loadConfig({ env: {}, flags: { docker: 'https://engine:2376' } }), { message: /needs --docker-tls-dir DIR/ });
  t.throws(() => loadConfig({ env: {}, flags: { docker: 'ssh://me@engine' } }), { message: /ssh engines are not supported/ });
  // TLS files from --docker-tls-dir, or as the docker CLI takes them from DOCKER_CERT_PATH with DOCKER_TLS_VERIFY.
  const dir = tempDir();
  t.teardown(() => removeDir(dir));
  for (const f of ['ca.pem', 'cert.pem', 'key.pem']) writeFileSync(join(dir, f), 'PEM');
  t.like(loadConfig({ env: {}, flags: { docker: 'tcp://engine', dockerTlsDir: dir } }), { docker: 'https://engine:2376', dockerTlsDir: dir });
  t.like(loadConfig({ env: { DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: dir }, flags: { docker: 'tcp://engine:2376' } }), { docker: 'https://engine:2376', dockerTlsDir: dir });
  t.is(loadConfig({ env: { DOCKER_CERT_PATH: dir }, flags: { docker: 'tcp://engine:2375' } }).docker, 'tcp://engine:2375', 'DOCKER_CERT_PATH alone does not ask for TLS');
  t.throws(() => loadConfig({ env: {}, flags: { docker: 'tcp://engine', dockerTlsDir: join(dir, 'none') } }), { code: 'CONFIG', message: /none\/ca\.pem: ENOENT/ } as never);
});

test('dnsWorkers: a number of threads or auto, from flags, env or file', (t) => {
  t.is(loadConfig({ env: {} }).dnsWorkers, 1, 'one thread unless asked');
  t.is(loadConfig({ env: { VIPDNS_DNS_WORKERS: '3' } }).dnsWorkers, 3);
  t.is(loadConfig({ env: {}, flags: { dnsWorkers: 'auto' } }).dnsWorkers, Math.min(64, availableParallelism()));
  t.throws(() => loadConfig({ env: {}, flags: { dnsWorkers: '65' } }), { message: 'dnsWorkers must be a whole number from 1 to 64, got "65"' });
  t.throws(() => loadConfig({ env: { VIPDNS_DNS_WORKERS: 'two' } }), { message: /dnsWorkers must be a whole number/ });
});
