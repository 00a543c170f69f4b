// DNS metrics with CoreDNS-style names. The hot path only bumps plain numbers (a map lookup
// per query); prom-client reads them at scrape time through collect() hooks, so a query costs
// no label hashing. Labels never carry query names or client addresses (cardinality).
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Cell } from './answer-table.js';

const KNOWN_TYPES = new Set(['A', 'AAAA', 'PTR', 'SRV', 'SOA', 'NS', 'CNAME', 'MX', 'TXT', 'ANY', 'HTTPS', 'SVCB', 'CAA', 'DS', 'DNSKEY']);
export const RCODE_NAMES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];
const DURATION_BUCKETS = [0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192];

export type AnswerSource = 'internal' | 'forward' | 'cache';

function rcodeName(rcode: number): string {
  return RCODE_NAMES[rcode] ?? `RCODE${rcode}`;
}

/** Counts keyed by a label tuple joined with "\0"; exported through a prom-client Counter. */
class Tally {
  readonly cells = new Map<string, Cell>();
  inc(key: string, by = 1): void {
    this.cell(key).n += by;
  }
  get(key: string): number {
    return this.cells.get(key)?.n ?? 0;
  }
  /** The key's cell, for hot paths that keep it and bump `n` without a lookup. */
  cell(key: string): Cell {
    let c = this.cells.get(key);
    if (!c) this.cells.set(key, (c = { n: 0 }));
    return c;
  }
}

interface Series {
  labels: Record<string, string>;
  counts: number[];
  sum: number;
  count: number;
}

/** A histogram series as another thread sends it. */
export interface SeriesSnapshot {
  labels: Record<string, string>;
  counts: number[];
  sum: number;
  count: number;
}

/** What a DNS worker thread's metrics send to the main thread's registry. */
export interface DnsMetricsSnapshot {
  requests: Array<[string, number]>;
  responses: Array<[string, number]>;
  answers: Array<[string, number]>;
  malformed: Array<[string, number]>;
  duration: SeriesSnapshot[];
}

const tallyEntries = (t: Tally): Array<[string, number]> => [...t.cells].map(([k, c]) => [k, c.n]);
const sumEntries = (e: Array<[string, number]>): number => e.reduce((a, [, n]) => a + n, 0);

/** A histogram updated with two array writes; rendered in Prometheus's histogram shape. */
export class FastHistogram extends Histogram<string> {
  private readonly series = new Map<string, Series>();
  private readonly metricName: string;
  private readonly metricHelp: string;
  private readonly bounds: number[];
  private readonly labelKeys: string[];

  constructor(name: string, help: string, labelNames: string[], buckets: number[] = DURATION_BUCKETS) {
    // A real prom-client histogram (registered as is); the counting happens in our cells.
    super({ name, help, labelNames, buckets, registers: [] });
    this.metricName = name;
    this.metricHelp = help;
    this.bounds = buckets;
    this.labelKeys = labelNames;
  }

  /** One observation into the series of these label values. */
  record(labelValues: string[], seconds: number): void {
    this.observeMany(this.seriesFor(labelValues), seconds, 1);
  }

  /** `n` observations of the same duration (a batch answered together) into a kept series. */
  observeMany(s: Series, seconds: number, n: number): void {
    let i = 0;
    while (i < this.bounds.length && seconds > this.bounds[i]!) i++;
    if (i < this.bounds.length) s.counts[i]! += n;
    s.sum += seconds * n;
    s.count += n;
  }

  seriesFor(labelValues: string[]): Series {
    const key = labelValues.join('\0');
    let s = this.series.get(key);
    if (!s) {
      const labels: Record<string, string> = {};
      this.labelKeys.forEach((n, i) => (labels[n] = labelValues[i] ?? ''));
      s = { labels, counts: new Array<number>(this.bounds.length).fill(0), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    return s;
  }

  /** Series of other threads, merged into ours at scrape time. */
  remote: () => SeriesSnapshot[][] = () => [];

  absorb(series: SeriesSnapshot[]): void {
    for (const r of series) {
      const s = this.seriesFor(this.labelKeys.map((n) => r.labels[n] ?? ''));
      r.counts.forEach((c, i) => (s.counts[i] = (s.counts[i] ?? 0) + c));
      s.sum += r.sum;
      s.count += r.count;
    }
  }

  snapshot(): SeriesSnapshot[] {
    return [...this.series.values()].map((s) => ({ labels: s.labels, counts: [...s.counts], sum: s.sum, count: s.count }));
  }

  /**
   * What the registry reads at scrape time (prom-client calls this on a histogram, and its own
   * get() goes through it too): our cells, merged with other threads', in its format.
   */
  async getForPromString(): Promise<{ name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: Array<{ metricName: string; labels: Record<string, string | number>; value: number }> }> {
    const values: Array<{ metricName: string; labels: Record<string, string | number>; value: number }> = [];
    const merged = new Map<string, Series>();
    for (const s of [...this.series.values(), ...this.remote().flat()]) {
      const key = this.labelKeys.map((n) => s.labels[n] ?? '').join('\0');
      const m = merged.get(key);
      if (!m) merged.set(key, { labels: s.labels, counts: [...s.counts], sum: s.sum, count: s.count });
      else {
        s.counts.forEach((c, i) => (m.counts[i] = (m.counts[i] ?? 0) + c));
        m.sum += s.sum;
        m.count += s.count;
      }
    }
    for (const s of merged.values()) {
      let acc = 0;
      this.bounds.forEach((b, i) => {
        acc += s.counts[i]!;
        values.push({ metricName: `${this.metricName}_bucket`, labels: { ...s.labels, le: b }, value: acc });
      });
      values.push({ metricName: `${this.metricName}_bucket`, labels: { ...s.labels, le: '+Inf' }, value: s.count });
      values.push({ metricName: `${this.metricName}_sum`, labels: s.labels, value: s.sum });
      values.push({ metricName: `${this.metricName}_count`, labels: s.labels, value: s.count });
    }
    return { name: this.metricName, help: this.metricHelp, type: 'histogram', aggregator: 'sum', values };
  }

  override reset(): void {
    super.reset();
    this.series?.clear(); // the base constructor calls reset() before our fields exist
  }
}

export class DnsMetrics {
  readonly requests = new Tally(); // proto \0 type
  readonly responses = new Tally(); // rcode
  readonly answers = new Tally(); // source
  readonly malformed = new Tally(); // reason
  readonly cache = new Tally(); // hits|misses|evictions|stale|prefetch \0 kind
  readonly forwards = new Tally(); // upstream \0 rcode
  refused = 0; // forwards turned away by the concurrency cap
  /** The answer index's periodic self-check (index-selfcheck.ts): runs, and keys found wrong. */
  readonly indexSelfcheck = { runs: 0, mismatches: 0 };
  readonly duration = new FastHistogram('vipdns_dns_request_duration_seconds', 'Time from a request read to its response written, by protocol.', ['proto']);
  readonly forwardDuration = new FastHistogram('vipdns_forward_request_duration_seconds', 'Time an upstream took to answer one forwarded request.', ['upstream']);
  /** The latest snapshot of each DNS worker thread (see workers.ts), added at scrape time. */
  readonly remotes = new Map<string, DnsMetricsSnapshot>();
  /** Filled by the owner of the cache and the upstreams at scrape time. */
  cacheEntries: () => number = () => 0;
  cacheBytes: () => number = () => 0;
  upstreamHealth: () => Array<{ upstream: string; healthy: boolean }> = () => [];

  /** `network`: the client's network (bounded by the catalog), 'loopback', 'multiple' or 'none'. */
  request(proto: string, type: string, network: string): void {
    this.requestCell(proto, type, network).n++;
  }

  requestCell(proto: string, type: string, network: string): Cell {
    return this.requests.cell(`${proto}\0${KNOWN_TYPES.has(type) ? type : 'other'}\0${network}`);
  }

  response(rcode: number, proto: string, seconds: number): void {
    this.responses.inc(rcodeName(rcode));
    this.duration.record([proto], seconds);
  }

  responseCell(rcode: number): Cell {
    return this.responses.cell(rcodeName(rcode));
  }

  /** Durations of replies counted through cells (the UDP fast path): one observation per batch. */
  batchAnswered(proto: string, seconds: number, n: number): void {
    this.duration.observeMany(this.duration.seriesFor([proto]), seconds, n);
  }

  answer(source: AnswerSource): void {
    this.answers.inc(source);
  }

  answerCell(source: AnswerSource): Cell {
    return this.answers.cell(source);
  }

  forward(upstream: string, rcode: number | 'timeout' | 'error', seconds?: number): void {
    this.forwards.inc(`${upstream}\0${typeof rcode === 'number' ? rcodeName(rcode) : rcode}`);
    if (seconds !== undefined) this.forwardDuration.record([upstream], seconds);
  }

  snapshot(): DnsMetricsSnapshot {
    return {
      requests: tallyEntries(this.requests),
      responses: tallyEntries(this.responses),
      answers: tallyEntries(this.answers),
      malformed: tallyEntries(this.malformed),
      duration: this.duration.snapshot(),
    };
  }

  /** Requests of worker threads that exited, by worker id: keeps their per-thread counter monotonic. */
  private readonly retired = new Map<string, number>();
  private retiredTotal = 0;

  /** Adds a snapshot's counts to ours (worker `id` exited: its counters must not go backwards). */
  absorb(snap: DnsMetricsSnapshot, id: string): void {
    const n = sumEntries(snap.requests);
    this.retired.set(id, (this.retired.get(id) ?? 0) + n);
    this.retiredTotal += n;
    for (const [k, n] of snap.requests) this.requests.inc(k, n);
    for (const [k, n] of snap.responses) this.responses.inc(k, n);
    for (const [k, n] of snap.answers) this.answers.inc(k, n);
    for (const [k, n] of snap.malformed) this.malformed.inc(k, n);
    this.duration.absorb(snap.duration);
  }

  register(registry: Registry): void {
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- prom-client binds `this` in collect()
    const self = this;
    const fromTally = (name: string, help: string, labelNames: string[], tally: Tally, remote?: (s: DnsMetricsSnapshot) => Array<[string, number]>): void => {
      registry.registerMetric(
        new Counter({
          name,
          help,
          labelNames,
          registers: [],
          collect() {
            this.reset();
            const entries: Array<[string, number]> = tallyEntries(tally);
            if (remote) for (const snap of self.remotes.values()) entries.push(...remote(snap));
            for (const [k, v] of entries) {
              const parts = k.split('\0');
              const labels: Record<string, string> = {};
              labelNames.forEach((n, i) => (labels[n] = parts[i] ?? ''));
              this.inc(labels, v);
            }
          },
        }),
      );
    };
    fromTally('vipdns_dns_requests_total', "DNS requests by protocol, query type and the client's network.", ['proto', 'type', 'network'], this.requests, (r) => r.requests);
    fromTally('vipdns_dns_responses_total', 'DNS responses by rcode.', ['rcode'], this.responses, (r) => r.responses);
    fromTally('vipdns_dns_answers_total', 'DNS responses by where the answer came from.', ['source'], this.answers, (r) => r.answers);
    fromTally('vipdns_dns_malformed_total', 'Packets dropped or answered FORMERR/NOTIMP before resolution, by reason.', ['reason'], this.malformed, (r) => r.malformed);
    this.duration.remote = () => [...self.remotes.values()].map((r) => r.duration);
    registry.registerMetric(
      new Counter({
        name: 'vipdns_dns_worker_requests_total',
        help: 'DNS requests read by each thread serving the DNS port (worker "0": the main thread); shows how the kernel spreads clients.',
        labelNames: ['worker'],
        registers: [],
        collect() {
          this.reset();
          this.inc({ worker: '0' }, sumEntries(tallyEntries(self.requests)) - self.retiredTotal);
          for (const id of new Set([...self.remotes.keys(), ...self.retired.keys()])) {
            const live = self.remotes.get(id);
            this.inc({ worker: id }, (self.retired.get(id) ?? 0) + (live ? sumEntries(live.requests) : 0));
          }
        },
      }),
    );
    fromTally('vipdns_forward_requests_total', 'Requests sent to upstreams, by upstream and outcome (rcode, timeout, error).', ['upstream', 'rcode'], this.forwards);
    const cache = this.cache;
    const cacheCounter = (what: string, help: string): void => {
      registry.registerMetric(
        new Counter({
          name: `vipdns_cache_${what}_total`,
          help,
          labelNames: ['type'],
          registers: [],
          collect() {
            this.reset();
            for (const [k, { n: v }] of cache.cells) {
              const [w, kind] = k.split('\0');
              if (w === what) this.inc({ type: kind ?? '' }, v);
            }
          },
        }),
      );
    };
    cacheCounter('hits', 'Cache hits by kind (success, denial, stale).');
    cacheCounter('misses', 'Cache misses.');
    cacheCounter('evictions', 'Cache entries evicted to stay within bounds.');
    cacheCounter('prefetch', 'Background refreshes of hot entries about to expire.');
    registry.registerMetric(
      new Gauge({
        name: 'vipdns_cache_entries',
        help: 'Entries in the forward cache.',
        registers: [],
        collect() {
          this.set(self.cacheEntries());
        },
      }),
    );
    registry.registerMetric(
      new Gauge({
        name: 'vipdns_cache_size_bytes',
        help: 'Bytes held by the forward cache.',
        registers: [],
        collect() {
          this.set(self.cacheBytes());
        },
      }),
    );
    registry.registerMetric(
      new Gauge({
        name: 'vipdns_forward_upstream_healthy',
        help: '1 when the upstream is considered healthy.',
        labelNames: ['upstream'],
        registers: [],
        collect() {
          this.reset();
          for (const u of self.upstreamHealth()) this.set({ upstream: u.upstream }, u.healthy ? 1 : 0);
        },
      }),
    );
    registry.registerMetric(
      new Counter({
        name: 'vipdns_forward_refused_total',
        help: 'Requests answered REFUSED because the concurrent-forward cap was reached.',
        registers: [],
        collect() {
          this.reset();
          this.inc(self.refused);
        },
      }),
    );
    registry.registerMetric(
      new Counter({
        name: 'vipdns_dns_index_selfcheck_mismatches_total',
        help: 'Answer index keys the periodic self-check found different from a full build of the catalog (then repaired); anything above 0 is a bug.',
        registers: [],
        collect() {
          this.reset();
          this.inc(self.indexSelfcheck.mismatches);
        },
      }),
    );
    registry.registerMetric(
      new Counter({
        name: 'vipdns_dns_index_selfchecks_total',
        help: 'Runs of the answer index self-check.',
        registers: [],
        collect() {
          this.reset();
          this.inc(self.indexSelfcheck.runs);
        },
      }),
    );
    registry.registerMetric(this.duration);
    registry.registerMetric(this.forwardDuration);
  }
}
