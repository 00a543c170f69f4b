// Wires the modules together. Nothing imports this file but the CLI.
import { Registry, collectDefaultMetrics } from 'prom-client';
import { ApiServer } from './api/server.js';
import { Catalog } from './catalog/catalog.js';
import { FileStore } from './catalog/store/file.js';
import type { DaemonConfig } from './config.js';
import { AnswerIndex } from './dns/answers.js';
import { type Forwarding, setupForwarding } from './dns/forward/setup.js';
import { DnsMetrics } from './dns/metrics.js';
import { Resolver } from './dns/resolver.js';
import { DnsServer } from './dns/server.js';
import type { Logger } from './log.js';
import { MetricsServer } from './metrics/http.js';

export class Daemon {
  private constructor(
    readonly config: DaemonConfig,
    readonly catalog: Catalog,
    readonly dns: DnsServer,
    readonly api: ApiServer,
    readonly metrics: MetricsServer,
    private readonly log: Logger,
    private readonly forwarding: Forwarding,
  ) {}

  static async start(config: DaemonConfig, log: Logger): Promise<Daemon> {
    const store = await FileStore.open(config.dataDir);
    let catalog: Catalog;
    try {
      catalog = await Catalog.open(store);
    } catch (e) {
      await store.close();
      throw e;
    }
    const st = catalog.state;
    log.info(
      { store: store.location, revision: st.revision, networks: Object.keys(st.networks).length, services: Object.keys(st.services).length, tasks: Object.keys(st.tasks).length },
      'catalog loaded',
    );

    const index = new AnswerIndex({ suffix: config.domain, ttl: config.ttl, loopbackSeesAll: config.loopbackSeesAll, othersSeeAll: config.othersSeeAll });
    index.rebuild(catalog.state);
    catalog.on('change', (state) => index.rebuild(state));

    const registry = new Registry();
    collectDefaultMetrics({ register: registry });
    const dnsMetrics = new DnsMetrics();
    dnsMetrics.register(registry);
    const forwarding = setupForwarding(config, dnsMetrics, log);
    const resolver = new Resolver({ index, forwarder: forwarding.forwarder, metrics: dnsMetrics });
    const dns = new DnsServer({ host: config.dnsListen.host, port: config.dnsListen.port, resolver, onError: (e) => log.error({ err: e }, 'dns server error') });
    const api = new ApiServer({
      host: config.apiListen.host,
      port: config.apiListen.port,
      catalog,
      info: () => ({ dns: `${config.dnsListen.host}:${dns.port}`, domain: config.domain, dataplane: 'none' }),
      onError: (e) => log.error({ err: e }, 'api handler error'),
    });
    const metrics = new MetricsServer({
      host: config.metricsListen.host,
      port: config.metricsListen.port,
      registry,
      readiness: {
        catalog: () => ({ ok: true, detail: `revision ${catalog.state.revision}` }),
        dns: () => ({ ok: dns.listening, detail: dns.listening ? `listening on ${config.dnsListen.host}:${dns.port} udp+tcp` : 'not listening' }),
      },
    });
    const d = new Daemon(config, catalog, dns, api, metrics, log, forwarding);
    try {
      await dns.start();
      await api.start();
      await metrics.start();
    } catch (e) {
      await d.stop();
      throw e;
    }
    log.info(
      { dns: `${config.dnsListen.host}:${dns.port}`, api: `http://${config.apiListen.host}:${api.port}`, metrics: `http://${config.metricsListen.host}:${metrics.port}`, domain: config.domain },
      'vipdns serving',
    );
    return d;
  }

  async stop(): Promise<void> {
    await Promise.allSettled([this.dns.stop(), this.api.stop(), this.metrics.stop()]);
    this.forwarding.close();
    await this.catalog.close();
    this.log.info('vipdns stopped');
  }
}
