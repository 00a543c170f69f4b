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
  t.is(wrong.stderr.trim(), `vipdns: error: --api takes the daemon's API as unix:///PATH, http://HOST:PORT or HOST:PORT, got "ftp://x" [BAD_REQUEST]`);
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

test('a mistyped option is "unknown option" with a suggestion, not a missing required one, on every command', async (t) => {
  const cases: Array<[string[], string]> = [
    [['network', 'create', 'n1', '--subnett', '10.1.0.0/24'], "unknown option '--subnett' (Did you mean --subnet?)"],
    [['service', 'create', 's1', '--netwrk', 'n1'], "unknown option '--netwrk' (Did you mean --network?)"],
    [['container', 'add', 'c1', '--netwrk', 'n1'], "unknown option '--netwrk' (Did you mean --network?)"],
    [['serve', '--dns-listn', '127.0.0.1:0'], "unknown option '--dns-listn' (Did you mean --dns-listen?)"],
  ];
  for (const [args, message] of cases) {
    const r = await cli(...args);
    t.is(r.code, 1, args.join(' '));
    t.is(r.stderr, `vipdns: error: ${message}\n(run with --help for usage)\n`, args.join(' '));
  }
  const missing = await cli('network', 'create', 'n1');
  t.is(missing.code, 1);
  t.is(missing.stderr.split('\n')[0], "vipdns: error: required option '--subnet <cidr>' not specified", 'a required option really missing is still named');
});

test('--json: a usage error is a JSON object too', async (t) => {
  const r = await cli('--json', 'network', 'create', 'n1', '--subnett', '10.1.0.0/24');
  t.is(r.code, 1);
  t.is(r.stdout, '');
  t.deepEqual(JSON.parse(r.stderr), { error: { code: 'BAD_REQUEST', message: "unknown option '--subnett' (Did you mean --subnet?)" } });
});

test('--upstream at the daemon\'s own DNS address is refused at start, naming the address', async (t) => {
  const dir = tempDir();
  t.teardown(() => removeDir(dir));
  const r = await cli('serve', '--data-dir', `${dir}/data`, '--dataplane', 'none', '--dns-listen', '0.0.0.0:5391', '--upstream', '127.0.0.1:5391');
  t.is(r.code, 1);
  t.is(r.stderr.trim(), `vipdns: error: upstream 127.0.0.1:5391 is this daemon's own DNS address (dns-listen 0.0.0.0:5391): forwarding to it would loop; give another resolver's address, or none to use /etc/resolv.conf [CONFIG]`);
  const { existsSync } = await import('node:fs');
  t.false(existsSync(`${dir}/data`), 'refused before anything was created');
});

test('--publish-range inverted or outside 1-65535: one line, nothing started', async (t) => {
  const dir = tempDir();
  t.teardown(() => removeDir(dir));
  const inverted = await cli('serve', '--publish-range', '32767-30000', '--data-dir', dir, '--dataplane', 'none');
  t.is(inverted.code, 1);
  t.is(inverted.stderr.trim(), 'vipdns: error: publish-range "32767-30000" is inverted: the low port comes first (30000-32767) [CONFIG]');
  const outside = await cli('serve', '--publish-range', '60000-70000', '--data-dir', dir, '--dataplane', 'none');
  t.is(outside.code, 1);
  t.is(outside.stderr.trim(), 'vipdns: error: publish-range takes LO-HI with ports from 1 to 65535 (e.g. 30000-32767), got "60000-70000" [CONFIG]');
});

test('--log-format with an unknown format names it and the valid ones', async (t) => {
  const dir = tempDir();
  t.teardown(() => removeDir(dir));
  const r = await cli('serve', '--log-format', 'fancy', '--data-dir', dir, '--dataplane', 'none');
  t.is(r.code, 1);
  t.is(r.stderr.trim(), 'vipdns: error: log format must be pretty or json, got "fancy" [CONFIG]');
});

test('help shows each default once: no "(default: [])", no option with two defaults, on every command', async (t) => {
  const commands = [['serve'], ['network', 'create'], ['service', 'create'], ['service', 'update'], ['task', 'add'], ['container', 'add'], []];
  for (const c of commands) {
    const r = await cli(...c, '--help');
    t.is(r.code, 0);
    // One entry per option: its first line starts with "  -", wrapped lines are indented further.
    const options = r.stdout.replace(/\n {4,}/g, ' ').split('\n').filter((l) => /^ {2}-/.test(l));
    t.true(options.length > 1, c.join(' '));
    for (const o of options) {
      t.notRegex(o, /default: \[\]/, o);
      t.true((o.match(/\bdefault\b/g) ?? []).length <= 1, o);
    }
  }
  const serve = (await cli('serve', '--help')).stdout.replace(/\n {4,}/g, ' ');
  t.regex(serve, /--upstream <addr\[:port\]> +upstream resolver, repeatable \(default: the nameservers in \/etc\/resolv\.conf\)\n/);
  t.regex(serve, /--dns-listen <addr:port> +DNS address, UDP and TCP \(default: 127\.0\.0\.1:1053\)\n/);
  t.regex(serve, /--log-format <format> .*\(default: pretty on a terminal, json otherwise\)\n/);
});

test('dataplane cleanup refuses while a daemon runs in this namespace, naming its pid; nothing is removed', async (t) => {
  if (process.getuid?.() !== 0) {
    t.log('skipped: dataplane cleanup needs root');
    return t.pass();
  }
  const d = await startDaemon();
  t.teardown(async () => {
    await d.stop();
    removeDir(d.dataDir);
  });
  const r = await cli('dataplane', 'cleanup');
  t.is(r.code, 1);
  t.regex(r.stderr, new RegExp(`a vipdns daemon is running here \\(pid [0-9, ]*\\b${d.proc.pid}\\b[0-9, ]*\\).*stop it first \\(or --force\\) \\[DATAPLANE_BUSY\\]`));
  t.notRegex(r.stdout, /removed/);
});

test('a hostname that is not a usable node name ("(none)" in a minimal VM): a cleaned-up one, said once', async (t) => {
  const { sanitizeNodeName } = await import('../../src/config.js');
  t.is(sanitizeNodeName('(none)'), 'none');
  t.is(sanitizeNodeName('my host.example'), 'my-host.example');
  t.is(sanitizeNodeName('---'), 'vipdns');
  t.is(sanitizeNodeName('a'.repeat(80)).length, 63);
  if (process.getuid?.() !== 0) {
    t.log('the daemon part needs root for a UTS namespace (unshare -u); CI runs it');
    return;
  }
  // A UTS namespace of its own, hostname "(none)", then the daemon on the embedded store.
  const d = await startDaemon({ wrap: ['unshare', '-u', 'sh', '-c', 'printf "(none)" > /proc/sys/kernel/hostname && exec "$0" "$@"'] });
  t.teardown(async () => {
    await d.stop();
    removeDir(d.dataDir);
  });
  const said = d.logs.filter((l) => l.includes('is not a usable node name'));
  t.is(said.length, 1, d.logs.join('\n'));
  t.regex(said[0]!, /the hostname \\"\(none\)\\" is not a usable node name; using \\"none\\"/);
  t.regex(await d.ok('network', 'ls'), /NAME/);
});
