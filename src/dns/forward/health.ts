// Brings unhealthy upstreams back: every interval, each upstream marked unhealthy gets a
// ". IN NS" probe (as CoreDNS does); any reply at all, even REFUSED, means it is alive again.
import type { Logger } from '../../log.js';
import type { Upstream } from './upstream.js';

// ". IN NS" with RD: header, root name, type 2, class 1.
const PROBE = Buffer.from([0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1]);
const PROBE_QEND = PROBE.length;

export class HealthChecker {
  private timer?: NodeJS.Timeout;
  private readonly probing = new Set<Upstream>();

  constructor(
    private readonly upstreams: readonly Upstream[],
    private readonly intervalMs = 500,
    private readonly log?: Pick<Logger, 'info' | 'warn'>,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  tick(): void {
    for (const u of this.upstreams) {
      if (u.healthy || this.probing.has(u)) continue;
      this.probing.add(u);
      u.udp(PROBE, PROBE_QEND, Math.max(100, this.intervalMs * 2)).then(
        () => {
          this.probing.delete(u);
          if (!u.healthy) this.log?.info({ upstream: u.label }, 'upstream answers again, marked healthy');
          u.success();
        },
        () => this.probing.delete(u),
      );
    }
  }
}
