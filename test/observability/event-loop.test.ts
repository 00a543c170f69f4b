// The event-loop stall gauges: a stall shows in the next scrape, including one that starts
// right after a scrape (when the histogram has just been reset), and the window starts over.
import test from 'ava';
import { Registry } from 'prom-client';
import { registerEventLoopMetrics } from '../../src/metrics/event-loop.js';

const STALL_MS = 400;

function busyWait(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    /* blocks the event loop */
  }
}

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 50));

async function scrape(registry: Registry): Promise<{ max: number; p99: number }> {
  const text = await registry.metrics();
  const value = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
  return { max: value('vipdns_event_loop_delay_max_seconds'), p99: value('vipdns_event_loop_delay_p99_seconds') };
}

test.serial('a stall between scrapes is the max of the next scrape; the window then starts over', async (t) => {
  const registry = new Registry();
  registerEventLoopMetrics(registry);
  await tick();
  await scrape(registry);
  await tick();
  busyWait(STALL_MS);
  await tick();
  const stalled = await scrape(registry);
  t.true(stalled.max >= (STALL_MS - 10) / 1000, `max ${stalled.max} s after a ${STALL_MS} ms stall`);
  t.true(stalled.p99 >= 0 && stalled.p99 <= stalled.max, `p99 ${stalled.p99} within [0, max]`);
  await tick();
  const after = await scrape(registry);
  t.true(after.max < stalled.max, `reset on scrape: ${after.max} s then`);
});

test.serial('a stall that starts right after a scrape is not lost to the reset', async (t) => {
  const registry = new Registry();
  registerEventLoopMetrics(registry);
  await tick();
  await scrape(registry);
  busyWait(STALL_MS); // same tick as the scrape: the histogram's first tick after reset is skipped
  await tick();
  const { max } = await scrape(registry);
  t.true(max >= (STALL_MS - 10) / 1000, `max ${max} s after a ${STALL_MS} ms stall`);
});
