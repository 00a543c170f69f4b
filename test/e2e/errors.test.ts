// A newcomer's mistakes get one line that names what is wrong (issue 16), and --json keeps
// even errors machine-readable. No daemon needed: each fails before reaching one.
import test from 'ava';
import { CLI, removeDir, run, startDaemon, tempDir } from '../helpers/daemon.js';

const cli = (...args: string[]) => run(process.execPath, [CLI, ...args], { timeoutMs: 15_000 });

test('--log-level with an unknown level names the level and the valid ones', async (t) => {
  const dir = tempDir();
  t.teardown(() => removeDir(dir));
  const r = await cli('serve', '--log-level', 'verbose', '--data-dir', dir, '--dataplane', 'none');
  t.is(r.code, 1);
  t.is(r.stderr.trim(), 'vipdns: error: log level must be one of fatal, error, warn, info, debug, trace, silent, got "verbose" [CONFIG]');
});

test('--api without a scheme is taken as http; a wrong scheme says what --api takes', async (t) => {
  const bare = await cli('--api', '127.0.0.1:1', 'network', 'ls');
  t.is(bare.code, 1);
  t.regex(bare.stderr, /cannot reach the vipdns daemon at http:\/\/127\.0\.0\.1:1\b/);
  t.notRegex(bare.stderr, /Invalid URL/);
  const wrong = await cli('--api', 'ftp://x', 'network', 'ls');
  t.is(wrong.code, 1);
  t.is(wrong.stderr.trim(), `vipdns: error: --api takes the daemon's API address as http://HOST:PORT (or HOST:PORT), got "ftp://x" [BAD_REQUEST]`);
});

test('--json: an error is a JSON object with its code, on stderr, exit 1', async (t) => {
  const r = await cli('--json', '--api', '127.0.0.1:1', 'network', 'ls');
  t.is(r.code, 1);
  t.is(r.stdout, '');
  const e = JSON.parse(r.stderr) as { error: { code: string; message: string } };
  t.is(e.error.code, 'UNAVAILABLE');
  t.regex(e.error.message, /cannot reach the vipdns daemon/);
});

test('/readyz names the dataplane once', async (t) => {
  const d = await startDaemon();
  t.teardown(async () => {
    await d.stop();
    removeDir(d.dataDir);
  });
  const text = await (await fetch(`${d.metrics}/readyz`)).text();
  t.regex(text, /dataplane: none \(--dataplane none\)/);
  t.notRegex(text, /dataplane: dataplane:/);
});

test('a second daemon on a taken DNS port names the address, and leaves no data dir behind', async (t) => {
  const d = await startDaemon();
  const fresh = `${tempDir()}/new-data-dir`; // does not exist yet
  t.teardown(async () => {
    await d.stop();
    removeDir(d.dataDir);
    removeDir(fresh.replace(/\/new-data-dir$/, ''));
  });
  const r = await cli('serve', '--data-dir', fresh, '--dataplane', 'none', '--dns-listen', `127.0.0.1:${d.dnsPort}`, '--api-listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0');
  t.is(r.code, 1);
  t.regex(r.stderr, new RegExp(`vipdns: error: DNS address 127\\.0\\.0\\.1:${d.dnsPort}: bind EADDRINUSE.*pick another --dns-listen`));
  const { existsSync } = await import('node:fs');
  t.false(existsSync(fresh), 'the data dir this failed start created is gone');
});
