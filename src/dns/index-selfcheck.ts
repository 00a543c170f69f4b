// The answer index's self-check: every so often, build the index whole from the catalog and
// compare it with the one apply() kept current. A difference is a bug in the incremental
// path: log it, count it, and take the full build so answers are right again.
import type { CatalogState } from '../catalog/model.js';
import type { Logger } from '../log.js';
import type { AnswerIndex } from './answers.js';
import type { DnsMetrics } from './metrics.js';

export interface IndexSelfCheckOptions {
  index: AnswerIndex;
  state: () => Readonly<CatalogState>;
  /** Between two checks; a full build costs 25-100 ms at 100,000 tasks. */
  intervalMs: number;
  log: Pick<Logger, 'error'>;
  metrics?: DnsMetrics;
  /** After a repair: whatever else derives from the same changes (DNS workers) resyncs too. */
  onRepair?: () => void;
}

export const DEFAULT_SELFCHECK_MS = 10 * 60_000;

export class IndexSelfCheck {
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: IndexSelfCheckOptions) {}

  start(): void {
    this.timer ??= setInterval(() => this.check(), this.opts.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Runs one check; returns the number of keys that differed (and were repaired). */
  check(): number {
    const { index, metrics } = this.opts;
    const r = index.verify(this.opts.state());
    if (metrics) metrics.indexSelfcheck.runs++;
    if (r.mismatches === 0) return 0;
    if (metrics) metrics.indexSelfcheck.mismatches += r.mismatches;
    this.opts.log.error({ mismatches: r.mismatches, sample: r.sample, revision: index.revision }, 'dns answer index differed from a full build of the catalog; replaced it with the full build');
    index.replaceWith(r.full);
    this.opts.onRepair?.();
    return r.mismatches;
  }
}
