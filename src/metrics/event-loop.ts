// The longest event-loop stall, for Prometheus: while the loop is blocked (a commit, a rebuild,
// a long GC) nothing on this thread answers, DNS included. A monitorEventLoopDelay timer due
// every RESOLUTION_MS measures how late it ran; the gauges give that lateness since the previous
// scrape (max and p99), then start over. A stall of S ms reads between S - 10 and S ms.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Gauge, type Registry } from 'prom-client';

const RESOLUTION_MS = 10;

export function registerEventLoopMetrics(registry: Registry): void {
  const h = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  h.enable();
  const guard = new ResetGuard();
  const p99 = new Gauge({
    name: 'vipdns_event_loop_delay_p99_seconds',
    help: `99th percentile of how late a ${RESOLUTION_MS} ms timer ran on the main thread, since the previous scrape`,
    registers: [],
  });
  const max = new Gauge({
    name: 'vipdns_event_loop_delay_max_seconds',
    help: `Longest event-loop stall on the main thread since the previous scrape: how late a ${RESOLUTION_MS} ms timer ran`,
    registers: [],
    // One collect sets both gauges, then resets the window (p99 registers after this one).
    collect() {
      const lateMs = (ns: number): number => (h.count === 0 ? 0 : Math.max(0, ns / 1e6 - RESOLUTION_MS));
      this.set(Math.max(lateMs(h.max), guard.take()) / 1000);
      p99.set(lateMs(h.percentile(99)) / 1000);
      h.reset();
      guard.arm();
    },
  });
  registry.registerMetric(max);
  registry.registerMetric(p99);
}

/**
 * After reset() the histogram skips its next tick (it has no previous one to measure from), so a
 * stall right after a scrape would go unseen. A one-shot timer due one tick after the reset
 * measures that stretch instead.
 */
class ResetGuard {
  private worst = 0;
  private pending = false;

  arm(): void {
    if (this.pending) return;
    this.pending = true;
    const start = performance.now();
    setTimeout(() => {
      this.pending = false;
      this.worst = Math.max(this.worst, performance.now() - start - RESOLUTION_MS);
    }, RESOLUTION_MS).unref();
  }

  /** The lateness seen since the last take (ms). */
  take(): number {
    const w = this.worst;
    this.worst = 0;
    return w;
  }
}
