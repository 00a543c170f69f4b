// The control API lets no one in by accident: a unix socket (0660) by default that the CLI finds
// on its own, TCP beyond loopback only with a bearer token, and a request without the token
// refused with 401 and nothing changed.
import test from 'ava';
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, type RunResult, removeDir, startDaemon, tempDir } from '../helpers/daemon.js';

function cliIn(cwd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd, env: { ...process.env, VIPDNS_API: '', ...env }, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

test('the default API is a 0660 unix socket under the data dir, and the CLI finds it from the directory the daemon runs in', async (t) => {
  const top = tempDir();
  const dataDir = join(top, 'vipdns-data'); // the default data dir, seen from `top`
  mkdirSync(dataDir);
  const d = await startDaemon({ dataDir, apiListen: 'default' });
  t.teardown(async () => {
    await d.stop();
    removeDir(top);
  });
  t.is(d.api, `unix://${join(dataDir, 'api.sock')}`);
  const st = statSync(join(dataDir, 'api.sock'));
  t.true(st.isSocket());
  t.is(st.mode & 0o777, 0o660);
  t.false(d.logs.some((l) => l.includes('without a token')), 'no TCP warning');
  const r = await cliIn(top, ['network', 'create', 'n', '--subnet', '10.1.0.0/24']);
  t.is(r.code, 0, r.stderr);
  t.regex((await cliIn(top, ['network', 'ls'])).stdout, /10\.1\.0\.0\/24/);
  const elsewhere = await cliIn(tempDir(), ['network', 'ls']);
  t.not(elsewhere.code, 0);
  t.regex(elsewhere.stderr, /cannot reach the vipdns daemon at unix:\/\/vipdns-data\/api\.sock \(ENOENT\)/);

  // kill -9 leaves the socket file; the next start replaces it.
  await d.kill9();
  const again = await startDaemon({ dataDir, apiListen: 'default' });
  t.teardown(() => again.stop());
  t.regex((await cliIn(top, ['network', 'ls'])).stdout, /10\.1\.0\.0\/24/);
  await again.stop();
  t.throws(() => statSync(join(dataDir, 'api.sock')), undefined, 'a clean stop removes the socket');
});

test('TCP on a non-loopback address without a token refuses to start, in one line', async (t) => {
  const dir = tempDir();
  t.teardown(() => removeDir(dir));
  const r = await cliIn(dir, ['serve', '--data-dir', join(dir, 'd'), '--dataplane', 'none', '--api-listen', '0.0.0.0:0', '--dns-listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0']);
  t.is(r.code, 1);
  t.is(r.stderr.trim().split('\n').length, 1);
  t.regex(r.stderr, /api-listen 0\.0\.0\.0:0 is not a loopback address, and the API changes the catalog: give --api-token-file FILE/);
  const short = join(dir, 'short');
  writeFileSync(short, 'abc\n');
  const weak = await cliIn(dir, ['serve', '--data-dir', join(dir, 'd'), '--api-listen', '0.0.0.0:0', '--api-token-file', short]);
  t.regex(weak.stderr, /must hold a token of at least 16 characters/);
});

test('with a token: requests without it or with a wrong one get 401 and change nothing; the CLI sends it from a file or the environment', async (t) => {
  const dir = tempDir();
  const tokenFile = join(dir, 'token');
  const token = 'k3y-0f-th1s-t3st-d4em0n';
  writeFileSync(tokenFile, `${token}\n`);
  const d = await startDaemon({ args: ['--api-token-file', tokenFile], apiListen: '0.0.0.0:0' });
  t.teardown(async () => {
    await d.stop();
    removeDir(d.dataDir);
    removeDir(dir);
  });
  const port = Number(new URL(d.api.replace('0.0.0.0', '127.0.0.1')).port);
  const api = `http://127.0.0.1:${port}`;
  t.false(d.logs.some((l) => l.includes('without a token')));
  const bare = await fetch(`${api}/v1/networks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'x', subnet: '10.9.0.0/24' }) });
  t.is(bare.status, 401);
  t.is(((await bare.json()) as { error: { code: string } }).error.code, 'UNAUTHORIZED');
  const wrong = await fetch(`${api}/v1/networks`, { headers: { authorization: `Bearer ${token}x` } });
  t.is(wrong.status, 401);
  const right = await fetch(`${api}/v1/networks`, { headers: { authorization: `Bearer ${token}` } });
  t.is(right.status, 200);
  t.deepEqual(await right.json(), [], 'the refused POST wrote nothing');
  const noToken = await cliIn(dir, ['--api', api, 'network', 'ls']);
  t.not(noToken.code, 0);
  t.regex(noToken.stderr, /needs a bearer token: give the CLI --api-token-file FILE or VIPDNS_API_TOKEN \[UNAUTHORIZED\]/);
  t.is((await cliIn(dir, ['--api', api, '--api-token-file', tokenFile, 'network', 'create', 'n', '--subnet', '10.2.0.0/24'])).code, 0);
  t.regex((await cliIn(dir, ['--api', api, 'network', 'ls'], { VIPDNS_API_TOKEN: token })).stdout, /10\.2\.0\.0\/24/);
  const metrics = await (await fetch(`${d.metrics}/metrics`)).text();
  t.regex(metrics, /vipdns_api_unauthorized_requests_total 3/);
});

test('TLS with client certificates: a client with a certificate of the CA gets in; none or another CA\'s does not', async (t) => {
  const dir = tempDir();
  const f = (n: string) => join(dir, n);
  const ssl = (...a: string[]) => execFileSync('openssl', a, { cwd: dir, stdio: 'pipe' });
  const ca = (name: string) => ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${name}`, '-keyout', f(`${name}.key`), '-out', f(`${name}.pem`));
  const leaf = (name: string, by: string, ext: string) => {
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}`, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`));
    writeFileSync(f(`${name}.ext`), ext);
    ssl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f(`${by}.pem`), '-CAkey', f(`${by}.key`), '-CAcreateserial', '-days', '2', '-extfile', f(`${name}.ext`), '-out', f(`${name}.pem`));
  };
  ca('ca');
  ca('rogue-ca');
  leaf('server', 'ca', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  leaf('client', 'ca', 'extendedKeyUsage=clientAuth\n');
  leaf('rogue', 'rogue-ca', 'extendedKeyUsage=clientAuth\n');
  const d = await startDaemon({ apiListen: '0.0.0.0:0', args: ['--api-tls-cert', f('server.pem'), '--api-tls-key', f('server.key'), '--api-tls-ca', f('ca.pem')] });
  t.teardown(async () => {
    await d.stop();
    removeDir(d.dataDir);
    removeDir(dir);
  });
  t.regex(d.api, /^https:\/\//);
  const api = `https://127.0.0.1:${new URL(d.api).port}`;
  const withCert = ['--api', api, '--api-tls-cert', f('client.pem'), '--api-tls-key', f('client.key'), '--api-tls-ca', f('ca.pem')];
  t.is((await cliIn(dir, [...withCert, 'network', 'create', 'n', '--subnet', '10.3.0.0/24'])).code, 0);
  const rogue = await cliIn(dir, ['--api', api, '--api-tls-cert', f('rogue.pem'), '--api-tls-key', f('rogue.key'), '--api-tls-ca', f('ca.pem'), 'network', 'create', 'x', '--subnet', '10.4.0.0/24']);
  t.not(rogue.code, 0, "another CA's certificate");
  t.regex(rogue.stderr, /cannot reach the vipdns daemon/);
  const bare = await fetch(`${api}/v1/networks`).then(
    () => 'answered',
    () => 'refused',
  );
  t.is(bare, 'refused', 'no certificate at all');
  const ls = await cliIn(dir, [...withCert, '--json', 'network', 'ls']);
  t.deepEqual((JSON.parse(ls.stdout) as Array<{ name: string }>).map((n) => n.name), ['n'], 'nothing else was written');
  const half = await cliIn(dir, ['serve', '--data-dir', f('d2'), '--api-listen', '127.0.0.1:0', '--api-tls-cert', f('server.pem')]);
  t.regex(half.stderr, /API TLS needs all three of --api-tls-cert, --api-tls-key and --api-tls-ca/);
});
