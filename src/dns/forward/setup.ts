// From configuration to a running forwarder: upstreams (given, or resolv.conf minus ourselves),
// cache, health checker. Logs what it uses, since "why does this name not resolve" starts here.
import type { Logger } from '../../log.js';
import { DEFAULT_CACHE, DnsCache } from '../cache.js';
import type { DnsMetrics } from '../metrics.js';
import { Forwarder } from './forwarder.js';
import { HealthChecker } from './health.js';
import type { PolicyName } from './policy.js';
import { defaultUpstreams } from './resolvconf.js';
import { Upstream } from './upstream.js';

export interface ForwardingConfig {
  upstreams: string[];
  resolvConf: string;
  dnsListen: { host: string; port: number };
  forward: { policy: PolicyName; hedgeMs: number; maxConcurrent: number; cacheEntries: number; cacheBytes: number; serveStale: number };
}

export interface Forwarding {
  forwarder: Forwarder;
  close(): void;
}

export function setupForwarding(cfg: ForwardingConfig, metrics: DnsMetrics | undefined, log: Pick<Logger, 'info' | 'warn' | 'error'>): Forwarding {
  let addrs = cfg.upstreams;
  if (addrs.length === 0) {
    const d = defaultUpstreams(cfg.resolvConf, cfg.dnsListen);
    if (d.error) log.warn({ resolvConf: cfg.resolvConf, err: d.error }, 'cannot read resolv.conf for default upstreams');
    if (d.dropped.length) log.warn({ dropped: d.dropped, dnsListen: `${cfg.dnsListen.host}:${cfg.dnsListen.port}` }, `${cfg.resolvConf} nameservers that are this daemon itself are not forwarded to (that would loop)`);
    addrs = d.upstreams;
  }
  const upstreams = addrs.map((a) => Upstream.parse(a));
  if (upstreams.length === 0) log.error('no upstream resolvers: names outside the internal domain will get SERVFAIL (use --upstream ADDR[:PORT])');
  else log.info({ upstreams: upstreams.map((u) => u.label), policy: cfg.forward.policy, source: cfg.upstreams.length ? 'config' : cfg.resolvConf }, 'forwarding to upstreams');
  const f = cfg.forward;
  const cache = f.cacheEntries > 0 ? new DnsCache({ ...DEFAULT_CACHE, maxEntries: f.cacheEntries, maxBytes: f.cacheBytes, serveStale: f.serveStale }, metrics) : undefined;
  const forwarder = new Forwarder({ upstreams, policy: f.policy, hedgeMs: f.hedgeMs, maxConcurrent: f.maxConcurrent, cache, metrics, log });
  const health = new HealthChecker(upstreams, 500, log);
  health.start();
  return {
    forwarder,
    close: () => {
      health.stop();
      forwarder.close();
    },
  };
}
