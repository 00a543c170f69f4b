// --log-format (issue 16): one readable line per event for a person at a terminal, JSON for a
// program; pretty is the default only when stdout is a terminal.
import { spawn, spawnSync } from 'node:child_process';
import test from 'ava';
import { prettyLine } from '../../src/log.js';
import { CLI, removeDir, tempDir } from '../helpers/daemon.js';
import { onLines } from '../helpers/lines.js';

const at = (h: number, m: number, s: number, ms: number): string => new Date(2024, 0, 2, h, m, s, ms).toISOString();

test('prettyLine: local time, level, message, then the fields as key=value', (t) => {
  const line = JSON.stringify({ level: 30, time: at(3, 4, 5, 6), svc: 'vipdns', dns: '127.0.0.1:1053', dnsThreads: 1, domain: 'vipdns.internal', msg: 'vipdns serving' });
  t.is(prettyLine(line), '03:04:05.006 INFO  vipdns serving dns=127.0.0.1:1053 dnsThreads=1 domain=vipdns.internal\n');
  const warn = JSON.stringify({ level: 40, time: at(23, 59, 0, 999), upstreams: ['10.0.0.2:53', '[::1]:53'], reason: 'two words', nested: { a: 1 }, msg: 'x' });
  t.is(prettyLine(warn), '23:59:00.999 WARN  x upstreams=10.0.0.2:53,[::1]:53 reason="two words" nested={"a":1}\n');
  const err = JSON.stringify({ level: 50, time: at(1, 2, 3, 4), err: { type: 'Error', message: 'bind EADDRINUSE', stack: 'Error: bind\n    at x' }, msg: 'dns server error' });
  t.is(prettyLine(err), '01:02:03.004 ERROR dns server error err="bind EADDRINUSE"\n', 'an error shows its message; the stack stays in JSON');
  t.is(prettyLine(JSON.stringify({ level: 30, time: at(0, 0, 0, 0), msg: 'two\nlines' })), '00:00:00.000 INFO  two\\nlines\n', 'one line per event');
  t.is(prettyLine(JSON.stringify({ level: 40, time: at(0, 0, 0, 0), msg: 'm' }), true), '00:00:00.000 \x1b[33mWARN \x1b[0m m\n', 'colour only when asked');
  t.is(prettyLine('not json'), 'not json\n');
});

interface Run {
  lines: string[];
  until(re: RegExp): Promise<string>;
  stop(): Promise<void>;
}

/** Runs `vipdns serve` (under `script` for a terminal) and collects its output lines. */
function serve(extra: string[], opts: { tty?: boolean; env?: NodeJS.ProcessEnv } = {}): Run {
  const dir = tempDir();
  const args = [CLI, 'serve', '--data-dir', dir, '--dataplane', 'none', '--dns-listen', '127.0.0.1:0', '--api-listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0', ...extra];
  const env: NodeJS.ProcessEnv = { ...process.env, VIPDNS_RESOLV_CONF: '/nonexistent/vipdns-test-resolv.conf', NO_COLOR: '1' };
  delete env.VIPDNS_LOG_FORMAT; // the default is under test, not the caller's environment
  Object.assign(env, opts.env);
  const quoted = [process.execPath, ...args].map((a) => `'${a}'`).join(' ');
  const proc = opts.tty ? spawn('script', ['-qfec', `exec ${quoted}`, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] }) : spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const waiters: Array<() => void> = [];
  const exited = new Promise<void>((r) => proc.once('close', () => r())); // after its output is read
  const push = (l: string): void => {
    lines.push(l.replace(/\r$/, ''));
    waiters.forEach((w) => w());
  };
  onLines(proc.stdout!, push);
  onLines(proc.stderr!, push);
  return {
    lines,
    until: (re) =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          const hit = lines.find((l) => re.test(l));
          if (hit !== undefined) resolve(hit);
        };
        waiters.push(check);
        check();
        void exited.then(() => reject(new Error(`exited before a line matched ${re}:\n${lines.join('\n')}`)));
      }),
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      await exited;
      removeDir(dir);
    },
  };
}

test('--log-format pretty: readable lines to the end, the last one written before exit', async (t) => {
  const d = serve(['--log-format', 'pretty']);
  t.teardown(() => d.stop());
  const serving = await d.until(/vipdns serving/);
  t.regex(serving, /^\d\d:\d\d:\d\d\.\d{3} INFO {2}vipdns serving dns=127\.0\.0\.1:\d+ dnsThreads=1 api=http:\/\/127\.0\.0\.1:\d+ /);
  await d.stop();
  t.regex(d.lines.at(-1) ?? '', /^\d\d:\d\d:\d\d\.\d{3} INFO {2}vipdns stopped$/);
  t.false(d.lines.some((l) => l.startsWith('{')), 'no JSON line');
});

const hasScript = spawnSync('script', ['--version']).status === 0;
const ttyTest = hasScript ? test : test.skip;
if (!hasScript) console.log('terminal log-format tests skipped: `script` (util-linux) is not installed');

ttyTest('on a terminal the default is pretty', async (t) => {
  const d = serve([], { tty: true });
  t.teardown(() => d.stop());
  t.regex(await d.until(/vipdns serving/), /^\d\d:\d\d:\d\d\.\d{3} INFO {2}vipdns serving dns=/);
});

ttyTest('on a terminal, VIPDNS_LOG_FORMAT=json keeps JSON; off a terminal the default is JSON', async (t) => {
  const tty = serve([], { tty: true, env: { VIPDNS_LOG_FORMAT: 'json' } });
  t.teardown(() => tty.stop());
  t.is((JSON.parse(await tty.until(/vipdns serving/)) as { msg: string }).msg, 'vipdns serving');
  const pipe = serve([]);
  t.teardown(() => pipe.stop());
  t.is((JSON.parse(await pipe.until(/vipdns serving/)) as { msg: string }).msg, 'vipdns serving');
});
