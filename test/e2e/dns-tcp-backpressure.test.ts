// A TCP client that sends queries and never reads the answers must not grow the daemon's
// memory without bound: the server stops reading once its unsent answers pile up.
import test from 'ava';
import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import { removeDir, startDaemon } from '../helpers/daemon.js';

const rssKb = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);

test('a TCP client that never reads its answers is throttled, not buffered for', async (t) => {
  const d = await startDaemon();
  t.teardown(async () => {
    await d.stop();
    removeDir(d.dataDir);
  });
  await d.ok('network', 'create', 'front', '--subnet', '10.0.9.0/24');
  await d.ok('service', 'create', 'web', '--network', 'front');
  const q = Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 119, 101, 98, 0, 0, 1, 0, 1]); // web A
  const frame = Buffer.concat([Buffer.from([0, q.length]), q]);
  const chunk = Buffer.concat(Array<Buffer>(2000).fill(frame));
  const before = rssKb(d.proc.pid!);
  const s = net.connect(d.dnsPort, d.dnsHost);
  await new Promise((r) => s.once('connect', r));
  s.pause(); // never read
  let sent = 0;
  const deadline = Date.now() + 4000;
  // Write until the kernel's buffers are full and stay full: with back-pressure the server stops
  // reading, so 'drain' never comes; without it the server keeps queueing answers in memory.
  while (Date.now() < deadline && sent < 4_000_000) {
    if (!s.write(chunk)) {
      const drained = await Promise.race([new Promise((r) => s.once('drain', () => r(true))), new Promise((r) => setTimeout(() => r(false), 1000))]);
      if (!drained) break;
    }
    sent += 2000;
  }
  const grownMb = (rssKb(d.proc.pid!) - before) / 1024;
  t.log(`client managed to send ${sent} queries; daemon RSS grew ${grownMb.toFixed(1)} MB`);
  t.true(sent < 4_000_000, 'the server stopped reading the flood');
  t.true(grownMb < 100, `RSS growth ${grownMb.toFixed(1)} MB stays bounded`);
  s.destroy();
  // And it still answers everyone else.
  t.regex(await d.dig('+tcp', 'web'), /status: NOERROR/);
});
