// The forwarder (the shape of CoreDNS plugin/forward): cache first; identical questions in
// flight share one upstream exchange; a cap on concurrent exchanges (over it: REFUSED, counted);
// upstreams in policy order, the next one started after a short hedge delay or at once when one
// fails, so a dead upstream costs one hedge delay rather than a timeout per query (moby#20029);
// a truncated UDP reply is retried over TCP; SERVFAIL (or a stale answer) when every upstream
// fails. Upstream rcodes such as NXDOMAIN pass through.
import type { Logger } from '../../log.js';
import { DnsCache } from '../cache.js';
import { MessageWriter } from '../encode.js';
import type { DnsMetrics } from '../metrics.js';
import { CD, FLAG_RA, FLAG_TC, type Query, RCODE, RD, buildResponse } from '../wire.js';
import { Policy, type PolicyName } from './policy.js';
import { type StoredReply, storeUpstreamReply, toClient } from './reply.js';
import { type Upstream, UpstreamError } from './upstream.js';

export interface ForwarderOptions {
  upstreams: Upstream[];
  policy?: PolicyName;
  hedgeMs?: number; // start the next upstream when the current one has not answered by then
  attemptTimeoutMs?: number; // one upstream, one try
  deadlineMs?: number; // the whole forward
  maxConcurrent?: number; // distinct exchanges in flight
  ednsSize?: number;
  staleTtl?: number; // TTL of a stale answer (RFC 8767 suggests 30 s)
  cache?: DnsCache;
  metrics?: DnsMetrics;
  log?: Pick<Logger, 'info' | 'warn' | 'error'>;
}

export interface ForwardResult {
  reply: Buffer;
  rcode: number;
  source: 'forward' | 'cache';
}

// Replies that say "this server could not do it", not "the answer is": try another upstream.
const RETRYABLE = new Set<number>([RCODE.SERVFAIL, RCODE.REFUSED, RCODE.NOTIMP, RCODE.FORMERR]);

export class Forwarder {
  readonly upstreams: Upstream[];
  private readonly policy: Policy;
  private readonly o: Required<Omit<ForwarderOptions, 'cache' | 'metrics' | 'log' | 'upstreams' | 'policy'>>;
  private readonly inflight = new Map<string, Promise<StoredReply>>();
  readonly cache: DnsCache | undefined;
  private readonly metrics: DnsMetrics | undefined;
  private readonly log: ForwarderOptions['log'];
  private warnedEmpty = false;
  refused = 0;

  constructor(opts: ForwarderOptions) {
    this.upstreams = opts.upstreams;
    this.policy = new Policy(opts.policy ?? 'random');
    this.o = {
      hedgeMs: opts.hedgeMs ?? 150,
      attemptTimeoutMs: opts.attemptTimeoutMs ?? 2000,
      deadlineMs: opts.deadlineMs ?? 4000,
      maxConcurrent: opts.maxConcurrent ?? 1000,
      ednsSize: opts.ednsSize ?? 1232,
      staleTtl: opts.staleTtl ?? 30,
    };
    this.cache = opts.cache;
    this.metrics = opts.metrics;
    this.log = opts.log;
    if (this.metrics) this.metrics.upstreamHealth = () => this.upstreams.map((u) => ({ upstream: u.label, healthy: u.healthy }));
  }

  get inflightCount(): number {
    return this.inflight.size;
  }

  forward(q: Query, maxSize: number): ForwardResult | Promise<ForwardResult> {
    const key = DnsCache.key(q);
    const shape = { maxSize, ednsSize: this.o.ednsSize };
    let stale: StoredReply | undefined;
    if (this.cache) {
      const l = this.cache.get(key);
      if (l?.state === 'fresh') {
        if (this.cache.wantsPrefetch(l)) {
          l.entry.prefetching = true;
          this.metrics?.cache.inc('prefetch\0');
          this.exchange(q, key).then(
            () => undefined,
            () => (l.entry.prefetching = false),
          );
        }
        return { reply: toClient(l.entry, q, { ageSeconds: l.ageSeconds, ...shape }), rcode: l.entry.rcode, source: 'cache' };
      }
      if (l?.state === 'stale') stale = l.entry;
    }
    if (this.upstreams.length === 0) {
      if (!this.warnedEmpty) {
        this.warnedEmpty = true;
        this.log?.error('no upstream resolvers (none given and none usable in resolv.conf): names outside the internal domain get SERVFAIL');
      }
      return this.error(q, RCODE.SERVFAIL, maxSize);
    }
    let p = this.inflight.get(key);
    if (!p) {
      if (this.inflight.size >= this.o.maxConcurrent) {
        // Unlike libnetwork#2082, never silent: counted and exported.
        this.refused++;
        if (this.metrics) this.metrics.refused++;
        return this.error(q, RCODE.REFUSED, maxSize);
      }
      p = this.exchange(q, key);
    }
    return p.then(
      (s) => ({ reply: toClient(s, q, { ageSeconds: 0, ...shape }), rcode: s.rcode, source: 'forward' as const }),
      () => {
        if (stale) {
          this.cache?.countStaleHit();
          return { reply: toClient(stale, q, { ageSeconds: 0, fixedTtl: this.o.staleTtl, ...shape }), rcode: stale.rcode, source: 'cache' as const };
        }
        return this.error(q, RCODE.SERVFAIL, maxSize);
      },
    );
  }

  private error(q: Query, rcode: number, maxSize: number): ForwardResult {
    return { reply: buildResponse(q, { rcode, flags: FLAG_RA, answers: [], maxSize, ednsSize: this.o.ednsSize }), rcode, source: 'forward' };
  }

  /** One shared upstream resolution per key; its result goes into the cache. */
  private exchange(q: Query, key: string): Promise<StoredReply> {
    const p = this.race(upstreamQuery(q, this.o.ednsSize), q.qEnd).then((s) => {
      this.cache?.put(key, s);
      return s;
    });
    this.inflight.set(key, p);
    const clear = (): void => {
      if (this.inflight.get(key) === p) this.inflight.delete(key);
    };
    p.then(clear, clear);
    return p;
  }

  /** Tries upstreams in policy order, hedging: returns the first usable reply. */
  private race(query: Buffer, qEnd: number): Promise<StoredReply> {
    const order = this.policy.order(this.upstreams);
    return new Promise<StoredReply>((resolve, reject) => {
      let next = 0;
      let running = 0;
      let finished = false;
      let lastError: Error = new UpstreamError('UPSTREAM_TIMEOUT', 'no upstream answered');
      let hedge: NodeJS.Timeout | undefined;
      const deadline = setTimeout(() => finish(new UpstreamError('UPSTREAM_TIMEOUT', `no upstream answered in ${this.o.deadlineMs} ms`)), this.o.deadlineMs);
      const finish = (err: Error | undefined, s?: StoredReply): void => {
        if (finished) return;
        finished = true;
        clearTimeout(deadline);
        clearTimeout(hedge);
        if (err) reject(err);
        else resolve(s!);
      };
      const exhausted = (): void => {
        if (running === 0 && next >= order.length) finish(lastError);
      };
      const launch = (): void => {
        if (finished || next >= order.length) return;
        const u = order[next++]!;
        running++;
        clearTimeout(hedge);
        if (next < order.length) hedge = setTimeout(launch, this.o.hedgeMs);
        this.attempt(u, query, qEnd).then(
          (s) => {
            running--;
            if (RETRYABLE.has(s.rcode)) {
              lastError = new UpstreamError('UPSTREAM_BAD_REPLY', `${u.label} answered rcode ${s.rcode}`);
              launch();
              exhausted();
              return;
            }
            finish(undefined, s);
          },
          (e: Error) => {
            running--;
            lastError = e;
            launch();
            exhausted();
          },
        );
      };
      launch();
    });
  }

  private async attempt(u: Upstream, query: Buffer, qEnd: number): Promise<StoredReply> {
    const t0 = process.hrtime.bigint();
    try {
      let reply = await u.udp(query, qEnd, this.o.attemptTimeoutMs);
      if (reply.readUInt16BE(2) & FLAG_TC) reply = await u.tcp(query, qEnd, this.o.attemptTimeoutMs);
      const s = storeUpstreamReply(reply);
      u.success();
      this.metrics?.forward(u.label, s.rcode, Number(process.hrtime.bigint() - t0) / 1e9);
      return s;
    } catch (e) {
      // The transition is judged at this failure, not at the attempt's start: attempts in flight
      // together would each see "healthy before, unhealthy now" and log one change many times.
      const wasHealthy = u.healthy;
      u.failure();
      this.metrics?.forward(u.label, e instanceof UpstreamError && e.code === 'UPSTREAM_TIMEOUT' ? 'timeout' : 'error');
      if (wasHealthy && !u.healthy) this.log?.warn({ upstream: u.label, err: (e as Error).message }, 'upstream marked unhealthy');
      throw e;
    }
  }

  close(): void {
    for (const u of this.upstreams) u.close();
  }
}

/** Our query to an upstream: the client's question, RD, its CD and DO bits, our EDNS size. */
export function upstreamQuery(q: Query, ednsSize: number): Buffer {
  const w = new MessageWriter(q.qEnd + 11);
  w.header(0, RD | (q.flags & CD), 1, 0, 0, 1);
  w.rawQuestion(q.raw, 12, q.qEnd, q.labels);
  w.opt(ednsSize, 0, q.edns?.do ?? false);
  return w.finish();
}
