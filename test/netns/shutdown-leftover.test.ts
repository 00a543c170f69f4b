// A daemon stopped as root keeps its dataplane in the kernel on purpose (a restart adopts it and
// established flows survive), and says so on the way out (issue 16): one line naming what it left
// and the command that removes it. Runs the real daemon with nftables in a namespace of its own.
import test from 'ava';
import { removeDir, startDaemon } from '../helpers/daemon.js';
import { inNs, netnsUnavailable, sh, sweepStale, track, uniquePrefix, untrack } from '../helpers/netns.js';
import { VIP, nftRuleset } from './common.js';

const why = await netnsUnavailable();
const rootTest = why ? test.skip : test.serial;
if (why) console.log(`shutdown leftover test skipped: ${why}`);

rootTest(`on exit the daemon names the nftables table and VIPs it leaves, and the command to remove them${why ? ` (skipped: ${why})` : ''}`, async (t) => {
  await sweepStale();
  const ns = `${uniquePrefix()}-h`;
  track(ns);
  t.teardown(async () => {
    await sh('ip', ['netns', 'del', ns]).catch(() => {});
    untrack(ns);
  });
  await sh('ip', ['netns', 'add', ns]);
  await sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  const d = await startDaemon({ wrap: ['ip', 'netns', 'exec', ns], args: ['--dataplane', 'nftables'] });
  t.teardown(async () => {
    await d.stop();
    removeDir(d.dataDir);
  });
  await d.ok('network', 'create', 'n', '--subnet', '10.0.9.0/24');
  await d.ok('service', 'create', 'web', '--network', 'n', '--publish', '8080:80');
  await d.ok('task', 'add', 'web', '--ip', '10.0.9.11');
  // The API answers once the catalog has the task; the dataplane follows on its own.
  for (let i = 0; ; i++) {
    const s = JSON.parse(await d.ok('--json', 'dataplane', 'status')) as { status?: { programmed: { services: number; published: number } } };
    if (s.status?.programmed.services === 1 && s.status.programmed.published === 1) break;
    if (i === 100) throw new Error(`dataplane never programmed the service: ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  t.is(await d.stop(), 0);

  const lines = d.logs.flatMap((l) => {
    try {
      return [JSON.parse(l) as Record<string, unknown>];
    } catch {
      return [];
    }
  });
  const left = lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('left the'));
  t.is(left.length, 1, `one line in:\n${d.logs.join('\n')}`);
  t.is(
    left[0]?.msg,
    `left the nftables dataplane in the kernel for the next start to adopt (connections keep flowing): nftables table inet vipdns (1 VIP service and 1 published port), 1 VIP on lo (label lo:vipdns); to remove it, run \`vipdns dataplane cleanup\` as root with the daemon stopped`,
  );
  t.like(left[0], { dataplane: 'nftables', vipServices: 1, publishedPorts: 1, vips: 1, cleanup: 'vipdns dataplane cleanup' });
  t.is(lines.at(-1)?.msg, 'vipdns stopped', 'said before the last line');

  // What it says is there is there, and the command it names removes it.
  t.regex(await nftRuleset(ns), /table inet vipdns/);
  t.regex(await inNs(ns, 'ip', '-4', '-o', 'addr', 'show', 'dev', 'lo'), new RegExp(`inet ${VIP.replaceAll('.', '\\.')}/32 .*lo:vipdns`));
  const clean = await d.cli('dataplane', 'cleanup');
  t.is(clean.code, 0, clean.stderr);
  t.notRegex(await nftRuleset(ns), /vipdns/);
  t.notRegex(await inNs(ns, 'ip', '-4', '-o', 'addr', 'show', 'dev', 'lo'), /lo:vipdns/);
});
