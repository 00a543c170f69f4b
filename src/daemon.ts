// Wires the modules together. Nothing imports this file but the CLI.
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { hostname } from 'node:os';
import { Counter, Registry } from 'prom-client';
import { ApiServer } from './api/server.js';
import { Balancer, Sandboxes, createDriver, sandboxDrivers, type DataplaneDriver } from './balancer/index.js';
import { leftInKernel, leftoverMessage } from './balancer/cleanup.js';
import { hintFor } from './balancer/hint.js';
import { registerDataplaneMetrics } from './balancer/metrics.js';
import { netlinkUnavailable } from './balancer/netlink/netlink-socket.js';
import { Catalog } from './catalog/catalog.js';
import { registerCatalogMetrics } from './catalog/metrics.js';
import { DockerSource } from './catalog/sources/docker.js';
import { LocalStore } from './catalog/store/local.js';
import type { NodeInfo, ReplicatedStore } from './catalog/store/store.js';
import type { Task } from './catalog/model.js';
import { peersOf } from './catalog/peers.js';
import { SCHEMAS } from './api/schemas.js';
import type { EtcdConfig } from './catalog/store/etcd-url.js';
import { type DaemonConfig, readTls, readToken } from './config.js';
import { AnswerIndex } from './dns/answers.js';
import { type Forwarding, setupForwarding } from './dns/forward/setup.js';
import { DEFAULT_SELFCHECK_MS, IndexSelfCheck } from './dns/index-selfcheck.js';
import { DnsMetrics } from './dns/metrics.js';
import { Resolver } from './dns/resolver.js';
import { DnsServer } from './dns/server.js';
import { udpBatchUnavailable } from './dns/udp-batch.js';
import { DnsWorkers } from './dns/workers.js';
import { HealthChecker } from './health/checker.js';
import { healthMetricsHooks, registerProbedTasks } from './health/metrics.js';
import type { Logger } from './log.js';
import { MetricsServer } from './metrics/http.js';
import { registerBuildInfo } from './metrics/build-info.js';
import { registerProcessMetrics } from './metrics/process.js';
import { VERSION } from './version.js';
import { advertisedAddress, hostAddresses } from './net/host-addresses.js';
import { explain } from './dns/explain.js';
import { listeningPorts } from './net/host-ports.js';

interface Parts {
  config: DaemonConfig;
  catalog: Catalog;
  dns: DnsServer;
  dnsWorkers: DnsWorkers | undefined;
  indexCheck: IndexSelfCheck;
  api: ApiServer;
  metrics: MetricsServer;
  health: HealthChecker;
  forwarding: Forwarding;
  docker: DockerSource | undefined;
  balancer: Balancer | undefined;
  sandboxes: Sandboxes | undefined;
  dataplane: DataplaneDriver;
  log: Logger;
}

export class Daemon {
  private constructor(readonly parts: Parts) {}

  get catalog(): Catalog {
    return this.parts.catalog;
  }

  static async start(config: DaemonConfig, log: Logger): Promise<Daemon> {
    // A first start that fails (a taken port, ...) leaves no empty data dir behind.
    const fresh = config.store.kind !== 'etcd' && !existsSync(config.dataDir);
    const seen = { revision: 0 };
    try {
      return await Daemon.startParts(config, log, seen);
    } catch (e) {
      if (fresh && seen.revision === 0) rmSync(config.dataDir, { recursive: true, force: true });
      throw e;
    }
  }

  private static async startParts(config: DaemonConfig, log: Logger, seen: { revision: number }): Promise<Daemon> {
    // Before anything opens: a missing or weak token file is a start-up error that leaves nothing behind.
    const apiToken = config.apiTokenFile ? readToken(config.apiTokenFile, 'api-token-file') : undefined;
    const apiTls = config.apiTls ? readTls(config.apiTls) : undefined;
    if (config.nodeNameFallback) {
      const f = config.nodeNameFallback;
      log.warn({ hostname: f.hostname, node: f.used }, `the hostname "${f.hostname}" is not a usable node name; using "${f.used}" (set --node-name or VIPDNS_NODE_NAME to choose)`);
    }
    const address = advertisedAddress(config.dnsListen.host);
    const store: ReplicatedStore = config.store.kind === 'etcd' ? await openEtcdStore(config.store, config.nodeName, address, log) : await LocalStore.open(config.dataDir);
    let catalog: Catalog;
    try {
      // Tasks name their host only on a shared store (on one host every task is its own: no bytes per task).
      catalog = await Catalog.open(store, { host: { addresses: hostAddresses(), listening: listeningPorts(), publishRange: config.publishRange, ...(config.store.kind === 'etcd' ? { node: config.nodeName } : {}) } });
    } catch (e) {
      await store.close();
      throw e;
    }
    const st = catalog.state;
    if (store instanceof LocalStore && store.migration) {
      const m = store.migration;
      log.warn({ from: m.from, backup: m.backup, objects: m.objects, ms: m.ms }, 'migrated the catalog file of an older vipdns into the embedded database; the old file is kept as a backup');
    }
    log.info(
      { store: store.location, node: config.nodeName, revision: st.revision, networks: Object.keys(st.networks).length, services: Object.keys(st.services).length, tasks: Object.keys(st.tasks).length },
      'catalog loaded',
    );

    sayMissingAddons(log);
    const registry = new Registry();
    registerProcessMetrics(registry);
    registerBuildInfo(registry);
    registerCatalogMetrics(registry, catalog);

    const indexOptions = { suffix: config.domain, ttl: config.ttl, loopbackSeesAll: config.loopbackSeesAll, othersSeeAll: config.othersSeeAll };
    const index = new AnswerIndex(indexOptions);
    index.rebuild(catalog.state);
    catalog.on('change', (_state, _kinds, change) => index.apply(change));
    const dnsMetrics = new DnsMetrics();
    dnsMetrics.register(registry);
    const forwarding = setupForwarding(config, dnsMetrics, log);
    const resolver = new Resolver({ index, forwarder: forwarding.forwarder, metrics: dnsMetrics });
    // More UDP threads on the same port (SO_REUSEPORT) need the batched UDP addon.
    let dnsThreads = config.dnsWorkers;
    const noBatch = dnsThreads > 1 ? udpBatchUnavailable() : undefined;
    if (noBatch) {
      log.warn({ err: noBatch.message.split('\n')[0] }, `dns-workers ${dnsThreads} needs the batched UDP addon; serving DNS on one thread`);
      dnsThreads = 1;
    }
    const dns = new DnsServer({
      host: config.dnsListen.host,
      port: config.dnsListen.port,
      resolver,
      reusePort: dnsThreads > 1,
      onError: (e) => log.error({ err: e }, 'dns server error'),
      onNotice: (m) => log.warn(m),
    });
    const dnsWorkers =
      dnsThreads > 1
        ? new DnsWorkers({ count: dnsThreads - 1, host: config.dnsListen.host, index: indexOptions, state: () => catalog.state, tasksOf: (svc) => catalog.tasksOf(svc), forwarder: forwarding.forwarder, metrics: dnsMetrics, log })
        : undefined;
    if (dnsWorkers) catalog.on('change', (_state, _kinds, change) => dnsWorkers.publish(change));
    const indexCheck = new IndexSelfCheck({ index, catalog, intervalMs: DEFAULT_SELFCHECK_MS, log, metrics: dnsMetrics, onRepair: (r) => dnsWorkers?.repair(r) });

    // On a shared store each host probes the tasks it registered and writes their health; every
    // host serves it. A task of an older version (no node) is probed everywhere, as it was then.
    const owns = config.store.kind === 'etcd' ? (t: Task) => t.node === undefined || t.node === config.nodeName : undefined;
    const health = new HealthChecker(catalog, healthMetricsHooks(registry, log), undefined, owns);
    registerProbedTasks(registry, () => health.size);

    // Dataplane: `none` (by choice, or not root) runs DNS only; otherwise a reconciler keeps the
    // kernel converged on the catalog, adopting what a previous run left (flows survive restarts).
    let created: Awaited<ReturnType<typeof createDriver>>;
    try {
      created = await createDriver(config.dataplane, { isRoot: process.getuid?.() === 0, logger: log });
    } catch (e) {
      await catalog.close();
      throw e;
    }
    const { driver, reason: dataplaneReason } = created;
    let balancer: Balancer | undefined;
    if (driver.name !== 'none') {
      const dpMetrics = registerDataplaneMetrics(registry, driver.name, () => balancer?.status());
      balancer = new Balancer({
        driver,
        logger: log,
        onSync: (r) => dpMetrics.onSync(r),
      });
      const b = balancer;
      catalog.on('change', (state, _kinds, change) => b.update(state, hintFor(change)));
      b.update(catalog.state);
    }
    // Containers on swarm overlays reach VIPs inside their own namespaces, where the host's rules never
    // see the traffic: where the engine cannot balance it there (no IPVS), vipdns programs each one.
    let sandboxes: Sandboxes | undefined;
    if (config.docker && config.dataplane !== 'none') {
      const sd = await sandboxDrivers({ isRoot: process.getuid?.() === 0 });
      log.info({}, `dataplane in containers on overlays: ${sd.reason}`);
      if (sd.driverFor) {
        const s = (sandboxes = new Sandboxes({ driverFor: sd.driverFor, logger: log }));
        catalog.on('change', (state, _kinds, change) => s.update(state, hintFor(change)));
        s.update(catalog.state);
      }
    }
    const docker = config.docker
      ? new DockerSource({
          url: config.docker,
          ...(config.dockerTlsDir ? { tlsDir: config.dockerTlsDir } : {}),
          catalog,
          ownedFile: join(config.dataDir, 'docker-source.json'),
          log: log.child({ source: 'docker' }),
          registry,
          ...(sandboxes ? { onSandboxes: (list) => sandboxes.set(list) } : {}),
        })
      : undefined;

    // explain answers with a resolver of its own on the same index and forwarder: the same answers as
    // the DNS server's, without counting as DNS traffic in its metrics.
    const explainResolver = new Resolver({ index, forwarder: forwarding.forwarder });
    const explainCtx = {
      index,
      resolver: explainResolver,
      get state() {
        return catalog.state;
      },
      tasksOf: (svc: string) => catalog.tasksOf(svc),
      loopbackSeesAll: config.loopbackSeesAll,
      othersSeeAll: config.othersSeeAll,
      ...(balancer ? { dataplane: async (addrs: string[]) => (await balancer.show()).filter((u) => addrs.includes(u.address)) } : {}),
    };
    const unauthorized = new Counter({ name: 'vipdns_api_unauthorized_requests_total', help: 'Control API requests refused for a missing or wrong bearer token', registers: [registry] });
    const api = new ApiServer({
      listen: config.apiListen,
      catalog,
      ...(apiToken ? { token: apiToken } : {}),
      ...(apiTls ? { tls: apiTls } : {}),
      onUnauthorized: () => unauthorized.inc(),
      info: () => ({ version: VERSION, dns: `${config.dnsListen.host}:${dns.port}`, domain: config.domain, dataplane: driver.name, ...(docker ? { docker: docker.status() } : {}) }),
      onError: (e) => log.error({ err: e }, 'api handler error'),
      ...(driver.limits ? { limits: driver.limits } : {}),
      explain: (req) => explain(explainCtx, req),
      ...(dnsWorkers ? { afterWrite: () => dnsWorkers.settled(2000) } : {}),
    });
    const metrics = new MetricsServer({
      host: config.metricsListen.host,
      port: config.metricsListen.port,
      registry,
      readiness: {
        catalog: () =>
          store.live !== undefined
            ? { ok: store.live, detail: `revision ${catalog.state.revision}, etcd watch ${store.live ? 'connected' : 'lost'}` }
            : { ok: true, detail: `revision ${catalog.state.revision}` },
        dns: () => ({
          ok: dns.listening,
          detail: dns.listening ? `listening on ${config.dnsListen.host}:${dns.port} udp+tcp${dnsWorkers ? `, UDP on ${1 + dnsWorkers.running} threads` : ''}` : 'not listening',
        }),
        dataplane: () => {
          if (!balancer) return { ok: true, detail: dataplaneReason };
          const st = balancer.status();
          return st.syncs > 0
            ? { ok: true, detail: `${st.driver}: ${st.programmed.services} VIP services, ${st.programmed.published} published ports, last sync ${st.lastSyncAt}` }
            : { ok: false, detail: `${st.driver}: first sync not done${st.lastError ? ` (${st.lastError.message})` : ''}` };
        },
        ...(docker ? { docker: () => docker.status() } : {}),
      },
    });
    api.route('GET', '/v1/dataplane', () => ({ driver: driver.name, reason: dataplaneReason, ...(balancer ? { status: balancer.status() } : {}) }));
    // One host alone is its own only node; a shared store lists every live one.
    const nodes = async (): Promise<NodeInfo[]> =>
      store.nodes ? store.nodes() : [{ name: config.nodeName, host: hostname(), ...(address ? { address } : {}), pid: process.pid, heartbeatAgo: 0, tasks: Object.keys(catalog.state.tasks), self: true }];
    api.route('GET', '/v1/nodes', async () => (await nodes()).map(({ tasks, ...n }) => ({ ...n, tasks: tasks.length })));
    api.route('GET', '/v1/networks/:name/peers', async ({ params }) => {
      const net = catalog.network(params.name!);
      return peersOf(net.name, await nodes(), catalog.state.tasks);
    });
    api.route(
      'GET',
      '/v1/dataplane/show',
      async ({ query }) => {
        const svc = query.service;
        if (svc !== undefined) catalog.service(svc); // NOT_FOUND for a service that does not exist
        return { driver: driver.name, units: balancer ? await balancer.show(svc) : [] };
      },
      { summary: 'each VIP and published port as the kernel holds it, checked against the plan', query: SCHEMAS.serviceQuery },
    );
    const d = new Daemon({ config, catalog, dns, dnsWorkers, indexCheck, api, metrics, health, forwarding, docker, balancer, sandboxes, dataplane: driver, log });
    try {
      await balancer?.start();
      await dns.start();
      if (dnsWorkers) {
        await dnsWorkers.start(dns.port);
        dns.spreadUdp(dnsThreads);
      }
      indexCheck.start();
      await api.start();
      await metrics.start();
      health.start();
      await docker?.start(); // returns at once; the source connects and reconnects on its own
    } catch (e) {
      seen.revision = catalog.state.revision;
      await d.stop();
      throw e;
    }
    log.info(
      { dns: `${config.dnsListen.host}:${dns.port}`, dnsThreads: 1 + (dnsWorkers?.running ?? 0), api: api.url, metrics: `http://${config.metricsListen.host}:${metrics.port}`, domain: config.domain, dataplane: driver.name, docker: docker?.url },
      'vipdns serving',
    );
    if (config.apiListen.kind === 'tcp' && !config.apiTokenFile && !config.apiTls) {
      log.warn({ api: api.url }, 'the control API is on TCP without a token: any local user can change the catalog (the default unix socket is mode 0660; or give --api-token-file)');
    }
    return d;
  }

  async stop(): Promise<void> {
    const p = this.parts;
    await p.docker?.stop();
    await p.sandboxes?.stop(); // leaves each container's rules (the next run adopts them); they go with its namespace
    p.health.stop();
    await p.balancer?.stop(); // leaves the kernel programmed: the next run adopts it
    if (p.balancer) await this.sayWhatIsLeft();
    p.indexCheck.stop();
    await p.dnsWorkers?.stop();
    await Promise.allSettled([p.dns.stop(), p.api.stop(), p.metrics.stop()]);
    p.forwarding.close();
    await p.catalog.close();
    p.log.info('vipdns stopped');
  }

  /** One line on the way out naming the kernel state kept for the next start, and how to remove it. */
  private async sayWhatIsLeft(): Promise<void> {
    try {
      const left = await leftInKernel(this.parts.dataplane);
      if (left) this.parts.log.info({ ...left }, leftoverMessage(left));
    } catch (e) {
      this.parts.log.warn({ err: e instanceof Error ? e.message : String(e) }, 'could not read back the dataplane left in the kernel; `vipdns dataplane cleanup` (as root, daemon stopped) removes it');
    }
  }
}

/** The etcd client (grpc) is loaded only when a shared store is configured: ~150 ms of start-up otherwise. */
async function openEtcdStore(config: EtcdConfig, nodeName: string, address: string | undefined, log: Logger): Promise<ReplicatedStore> {
  const [{ EtcdStore }, { etcdStoreOptions }] = await Promise.all([import('./catalog/store/etcd.js'), import('./catalog/store/etcd-url.js')]);
  return new EtcdStore({ ...etcdStoreOptions(config, nodeName, log), ...(address ? { address } : {}) });
}

/** One line when the native addons are not built (no C toolchain at install): what runs slower or not at all. */
function sayMissingAddons(log: Logger): void {
  const missing: string[] = [];
  if (udpBatchUnavailable()) missing.push('vipdns_udp: UDP DNS runs on node:dgram, without batched I/O, on one thread');
  if (netlinkUnavailable()) missing.push('vipdns_netlink: no IPVS dataplane (nftables works)');
  if (missing.length > 0) log.warn({ missing }, `native addons not built, running without them: ${missing.join('; ')}; \`npm run build:native\` builds them (needs python3, make and a C compiler)`);
}

