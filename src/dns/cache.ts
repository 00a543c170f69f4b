// The forward cache: upstream replies by (name, type, class, CD, DO), bounded by entries and
// bytes (lru-cache). Positive answers live for their smallest TTL (capped); negative ones for
// min(SOA TTL, SOA minimum) per RFC 2308, and not at all without an SOA. Expired entries are
// kept `serveStale` seconds longer for use only when every upstream fails (RFC 8767). Entries
// hit often and close to expiry are flagged for prefetch.
import { LRUCache } from 'lru-cache';
import { TYPE } from './encode.js';
import type { StoredReply } from './forward/reply.js';
import type { DnsMetrics } from './metrics.js';
import { CD, FLAG_TC, type Query, RCODE } from './wire.js';

export interface CacheOptions {
  maxEntries: number;
  maxBytes: number;
  maxTtl: number; // seconds, positive answers
  maxNegativeTtl: number; // seconds, NXDOMAIN / NODATA
  serveStale: number; // seconds an expired entry may still be served when upstreams fail; 0: off
  prefetchHits: number; // hits within one TTL that make an entry hot; 0: no prefetch
  prefetchPercent: number; // prefetch once less than this share of the TTL remains
}

export const DEFAULT_CACHE: CacheOptions = { maxEntries: 10_000, maxBytes: 32 << 20, maxTtl: 3600, maxNegativeTtl: 1800, serveStale: 0, prefetchHits: 10, prefetchPercent: 10 };

export interface CacheEntry extends StoredReply {
  storedAt: number; // ms
  ttl: number; // s
  negative: boolean;
  hits: number;
  prefetching: boolean;
}

export interface CacheLookup {
  state: 'fresh' | 'stale';
  entry: CacheEntry;
  ageSeconds: number;
}

export class DnsCache {
  private readonly lru: LRUCache<string, CacheEntry>;

  constructor(
    readonly opts: CacheOptions,
    private readonly metrics?: DnsMetrics,
    private readonly now: () => number = Date.now,
  ) {
    this.lru = new LRUCache<string, CacheEntry>({
      max: opts.maxEntries,
      maxSize: opts.maxBytes,
      sizeCalculation: (e, k) => e.body.length + k.length + 64,
      dispose: (_v, _k, reason) => {
        if (reason === 'evict') this.metrics?.cache.inc('evictions\0');
      },
    });
    if (metrics) {
      metrics.cacheEntries = () => this.lru.size;
      metrics.cacheBytes = () => this.lru.calculatedSize;
    }
  }

  static key(q: Query): string {
    return `${q.lname}\0${q.qtype}\0${q.qclass}\0${q.flags & CD ? 1 : 0}${q.edns?.do ? 1 : 0}`;
  }

  get size(): number {
    return this.lru.size;
  }

  get(key: string): CacheLookup | undefined {
    const e = this.lru.get(key);
    if (!e) {
      this.metrics?.cache.inc('misses\0');
      return undefined;
    }
    const ageSeconds = (this.now() - e.storedAt) / 1000;
    if (ageSeconds < e.ttl) {
      e.hits++;
      this.metrics?.cache.inc(`hits\0${e.negative ? 'denial' : 'success'}`);
      return { state: 'fresh', entry: e, ageSeconds };
    }
    if (ageSeconds < e.ttl + this.opts.serveStale) {
      this.metrics?.cache.inc('misses\0');
      return { state: 'stale', entry: e, ageSeconds };
    }
    this.lru.delete(key);
    this.metrics?.cache.inc('misses\0');
    return undefined;
  }

  /** A hot entry near its end: refresh it in the background so clients never see the miss. */
  wantsPrefetch(l: CacheLookup): boolean {
    const o = this.opts;
    if (o.prefetchHits <= 0 || l.state !== 'fresh' || l.entry.prefetching || l.entry.negative) return false;
    return l.entry.hits >= o.prefetchHits && l.entry.ttl - l.ageSeconds <= (l.entry.ttl * o.prefetchPercent) / 100;
  }

  countStaleHit(): void {
    this.metrics?.cache.inc('hits\0stale');
  }

  /** Stores a reply if it may be cached; returns the TTL used, or 0 when not stored. */
  put(key: string, s: StoredReply): number {
    const ttl = cacheTtl(s, this.opts);
    if (ttl <= 0) return 0;
    const negative = s.rcode === RCODE.NXDOMAIN || !s.walked.records.some((r) => r.section === 0);
    this.lru.set(key, { ...s, storedAt: this.now(), ttl, negative, hits: 0, prefetching: false });
    return ttl;
  }

  clear(): void {
    this.lru.clear();
  }
}

/** How long a reply may be cached (pure): 0 means never. */
export function cacheTtl(s: StoredReply, o: Pick<CacheOptions, 'maxTtl' | 'maxNegativeTtl'>): number {
  if (s.walked.flags & FLAG_TC) return 0;
  const answers = s.walked.records.filter((r) => r.section === 0);
  if (s.rcode === RCODE.NOERROR && answers.length > 0) {
    const min = Math.min(...s.walked.records.map((r) => r.ttl));
    return Math.min(min, o.maxTtl);
  }
  if (s.rcode === RCODE.NXDOMAIN || s.rcode === RCODE.NOERROR) {
    // RFC 2308 section 5: the SOA's TTL, bounded by its MINIMUM field.
    const soa = s.walked.records.find((r) => r.section === 1 && r.type === TYPE.SOA);
    if (!soa || soa.end - 4 < soa.rdStart) return 0;
    const minimum = s.body.readUInt32BE(soa.end - 4);
    return Math.min(soa.ttl, minimum, o.maxNegativeTtl);
  }
  return 0;
}
