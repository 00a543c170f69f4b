#!/usr/bin/env node
// The vipdns command: `vipdns serve` runs the daemon; every other command is a client of
// its control API. Errors print one line and exit non-zero.
import { Command, Help, Option } from 'commander';
import { ApiClient, DEFAULT_API } from './api/client.js';
import { type PortRequest, type PortSpec, type Protocol, allAddresses, vipsOf } from './catalog/model.js';
import { parseHealthSpec } from './catalog/validate.js';
import { DEFAULT_DOCKER, DEFAULT_LEASE_TTL, DEFAULTS, type HostPort, loadConfig, readTls, readToken } from './config.js';
import { VipdnsError, errorMessage } from './errors.js';
import { VERSION } from './version.js';

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];
const hostPort = (a: HostPort): string => (a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`);

const program = new Command();
program
  .name('vipdns')
  .description('Service-discovery DNS and virtual-IP load balancer for containers')
  .version(VERSION, '-V, --version', 'print the version of vipdns')
  .option('--api <url>', 'control API of the daemon: unix:///PATH or http://HOST:PORT (env VIPDNS_API)', process.env.VIPDNS_API || DEFAULT_API)
  .option('--api-token-file <file>', 'bearer token for a daemon started with --api-token-file (or the token itself in VIPDNS_API_TOKEN)')
  .option('--api-tls-cert <file>', 'client certificate for an https:// API that requires one (env VIPDNS_API_TLS_CERT)')
  .option('--api-tls-key <file>', "its key (env VIPDNS_API_TLS_KEY)")
  .option('--api-tls-ca <file>', "CA that signed the API's server certificate (env VIPDNS_API_TLS_CA)")
  .option('--json', 'machine-readable output')
  // Both settings are made before any subcommand exists: subcommands copy them when created.
  // A repeatable option starts as an empty list: no default worth printing as "(default: [])".
  .configureHelp({
    optionDescription(o) {
      const empty = Array.isArray(o.defaultValue) && o.defaultValue.length === 0;
      return Help.prototype.optionDescription.call(this, empty ? Object.assign(Object.create(o) as Option, { defaultValue: undefined }) : o);
    },
  })
  // Usage errors look like every other error: one line (commander's "Did you mean" folded into it),
  // and a JSON object under --json.
  .configureOutput({
    outputError: (text, write) => {
      const message = text.trim().replace(/^error: /, '').replace(/\n(?=\(Did you mean)/, ' ');
      if (program.opts<{ json?: boolean }>().json) write(`${JSON.stringify({ error: { code: 'BAD_REQUEST', message } })}\n`);
      else write(`vipdns: error: ${message}\n(run with --help for usage)\n`);
    },
  });

const g = (): { api: string; apiTokenFile?: string; apiTlsCert?: string; apiTlsKey?: string; apiTlsCa?: string; json?: boolean } => program.opts();
const client = (): ApiClient => {
  const o = g();
  const file = o.apiTokenFile ?? process.env.VIPDNS_API_TOKEN_FILE;
  const cert = o.apiTlsCert ?? process.env.VIPDNS_API_TLS_CERT;
  const key = o.apiTlsKey ?? process.env.VIPDNS_API_TLS_KEY;
  const ca = o.apiTlsCa ?? process.env.VIPDNS_API_TLS_CA;
  const tls = cert || key || ca ? readTls({ cert: cert ?? '', key: key ?? '', ca: ca ?? '' }) : undefined;
  return new ApiClient(o.api, file ? readToken(file, '--api-token-file') : process.env.VIPDNS_API_TOKEN || undefined, tls);
};

function out(data: unknown, table?: () => string): void {
  if (g().json || !table) process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
  else process.stdout.write(table());
}

function columns(header: string[], rows: string[][]): string {
  const all = [header, ...rows];
  const w = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]! + 3))).join('').trimEnd()).join('\n') + '\n';
}

// ---------- serve ----------
program
  .command('serve')
  .description('run the daemon (DNS, control API, metrics, dataplane)')
  .option('--config <file>', 'JSON config file (keys as the long flags in camelCase)')
  // The defaults live in config.ts (file and environment apply under the flags), so they are
  // written into the help text rather than given to commander, which would print a second one.
  .option('--data-dir <dir>', `where the embedded store keeps the catalog (default: ${DEFAULTS.dataDir})`)
  .option('--dns-listen <addr:port>', `DNS address, UDP and TCP (default: ${hostPort(DEFAULTS.dnsListen)})`)
  .option('--dns-workers <n|auto>', `threads answering UDP on the DNS port (SO_REUSEPORT); auto: one per CPU (default: ${DEFAULTS.dnsWorkers})`)
  .option('--api-listen <unix:///path|addr:port>', `control API: a unix socket (mode 0660) or TCP; TCP beyond loopback needs --api-token-file (default: unix://<data-dir>/api.sock)`)
  .option('--api-token-file <file>', 'every API request must carry this bearer token (first line of the file, 16+ characters)')
  .option('--api-tls-cert <file>', 'serve the TCP API over TLS with this certificate (with --api-tls-key and --api-tls-ca)')
  .option('--api-tls-key <file>', "the API certificate's key")
  .option('--api-tls-ca <file>', 'every API client must present a certificate this CA signed')
  .option('--metrics-listen <addr:port>', `metrics, /healthz and /readyz (default: ${hostPort(DEFAULTS.metricsListen)})`)
  .option('--domain <suffix>', `internal domain suffix (default: ${DEFAULTS.domain})`)
  .option('--upstream <addr[:port]>', `upstream resolver, repeatable (default: the nameservers in ${DEFAULTS.resolvConf})`, collect)
  .addOption(new Option('--dataplane <kind>', `load-balancer dataplane (default: ${DEFAULTS.dataplane})`).choices(['auto', 'ipvs', 'nftables', 'none']))
  .option('--log-level <level>', `fatal, error, warn, info, debug, trace or silent (default: ${DEFAULTS.logLevel})`)
  .option('--log-format <format>', 'pretty (one readable line per event) or json (one object per line) (default: pretty on a terminal, json otherwise)')
  .option('--store <store>', 'file or etcd://HOST:PORT[,HOST:PORT...][/PREFIX] to share the catalog between hosts (default: file)')
  .option('--etcd-ca <file>', 'CA certificate of the etcd servers (enables TLS)')
  .option('--etcd-cert <file>', 'client certificate for etcd')
  .option('--etcd-key <file>', 'client key for etcd')
  .option('--etcd-user <name>', 'etcd user (password: --etcd-password or VIPDNS_ETCD_PASSWORD)')
  .option('--etcd-password <password>', 'etcd password (prefer VIPDNS_ETCD_PASSWORD: flags show in ps)')
  .option('--etcd-lease-ttl <seconds>', `how long a dead host's tasks outlive it (default: ${DEFAULT_LEASE_TTL})`)
  .option('--node-name <name>', 'this host in a shared store (default: the hostname)')
  .option('--publish-range <lo-hi>', `host ports for a --publish without a published port (default: ${DEFAULTS.publishRange.lo}-${DEFAULTS.publishRange.hi})`)
  .option('--docker [socket|url]', `follow a Docker engine: its containers and networks become catalog entries (default: $DOCKER_HOST or ${DEFAULT_DOCKER})`)
  .option('--docker-tls-dir <dir>', 'TLS to a tcp:// engine with the client files ca.pem, cert.pem and key.pem in DIR (default: $DOCKER_CERT_PATH when $DOCKER_TLS_VERIFY is set)')
  .addHelpText('after', '\nExamples:\n  vipdns serve\n  vipdns serve --config /etc/vipdns/vipdns.json\n  vipdns serve --docker --dns-listen 0.0.0.0:53\n  vipdns serve --docker unix:///run/podman/podman.sock --dataplane none\n')
  .action(async (o: Record<string, unknown>) => {
    const config = loadConfig({
      file: o.config as string | undefined,
      env: process.env,
      flags: {
        dataDir: o.dataDir,
        dnsListen: o.dnsListen,
        dnsWorkers: o.dnsWorkers,
        apiListen: o.apiListen,
        metricsListen: o.metricsListen,
        domain: o.domain,
        upstream: o.upstream,
        dataplane: o.dataplane,
        logLevel: o.logLevel,
        logFormat: o.logFormat,
        store: o.store,
        etcdCa: o.etcdCa,
        etcdCert: o.etcdCert,
        etcdKey: o.etcdKey,
        etcdUser: o.etcdUser,
        etcdPassword: o.etcdPassword,
        etcdLeaseTtl: o.etcdLeaseTtl,
        nodeName: o.nodeName,
        publishRange: o.publishRange,
        apiTokenFile: o.apiTokenFile ?? g().apiTokenFile,
        apiTlsCert: o.apiTlsCert ?? g().apiTlsCert,
        apiTlsKey: o.apiTlsKey ?? g().apiTlsKey,
        apiTlsCa: o.apiTlsCa ?? g().apiTlsCa,
        docker: o.docker,
        dockerTlsDir: o.dockerTlsDir,
      },
    });
    const heap = await import('./heap.js');
    heap.boundHeapGrowth(heap.HEAP_GROWING_PERCENT);
    const { createLogger, defaultLogFormat } = await import('./log.js');
    const { Daemon } = await import('./daemon.js');
    const log = createLogger(config.logLevel, config.logFormat ?? defaultLogFormat());
    // Handlers before starting: a signal during start-up (or just after "vipdns serving") still
    // stops the daemon once it is up, rather than killing it mid-way without its last log lines.
    // A second signal exits at once (a start stuck on an unreachable store stays interruptible).
    let stopping = false;
    let started: ReturnType<typeof Daemon.start> | undefined;
    const stop = (sig: string): void => {
      if (!started) return;
      if (stopping) {
        log.warn({ signal: sig }, 'second signal: exiting without finishing the shutdown');
        process.exit(1);
      }
      stopping = true;
      log.info({ signal: sig }, 'shutting down');
      started.then(
        (daemon) =>
          daemon.stop().then(
            () => process.exit(0),
            (e: unknown) => {
              log.error({ err: e }, 'shutdown failed');
              process.exit(1);
            },
          ),
        () => undefined, // a failed start is reported (and exits 1) where it is awaited
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    started = Daemon.start(config, log);
    await started;
  });

// ---------- networks ----------
// ---------- nodes ----------
const node = program.command('node').description('the hosts sharing this catalog');
node
  .command('ls')
  .description('hosts of the shared store: address, last heartbeat (lease renewal), task count; one host alone lists itself')
  .action(async () => {
    const list = await client().call<Array<{ name: string; host?: string; address?: string; heartbeatAgo?: number; ttl?: number; since?: string; tasks: number; self: boolean }>>('GET', '/v1/nodes');
    out(list, () =>
      columns(
        ['NAME', 'ADDRESS', 'HOST', 'HEARTBEAT', 'TASKS', 'UP SINCE'],
        list.map((n) => [`${n.name}${n.self ? ' *' : ''}`, n.address ?? '-', n.host ?? '-', n.heartbeatAgo === undefined ? 'unknown' : `${n.heartbeatAgo}s ago${n.ttl ? ` (ttl ${n.ttl}s)` : ''}`, String(n.tasks), n.since ?? '-']),
      ),
    );
  });

const network = program.command('network').description('manage networks');
network
  .command('create <name>')
  .description('create a network')
  .requiredOption('--subnet <cidr>', 'subnet, IPv4 or IPv6, any prefix length; twice (one IPv4, one IPv6) for a dual-stack network', collect)
  .option('--gateway <ip>', 'gateway address (reserved; default the first address); one per subnet, repeatable', collect, [])
  .option('--attachable', 'standalone containers may join')
  .option('--ingress', 'the ingress network (at most one): published ports reach tasks on their address on it; nothing on it is answered in DNS')
  .action(async (name: string, o: { subnet: string[]; gateway: string[]; attachable?: boolean; ingress?: boolean }) => {
    const body: Record<string, unknown> = { name, subnet: o.subnet.length === 1 ? o.subnet[0] : o.subnet, attachable: o.attachable === true };
    if (o.gateway.length) body.gateway = o.gateway.length === 1 ? o.gateway[0] : o.gateway;
    if (o.ingress) body.ingress = true;
    const n = await client().call<{ name: string }>('POST', '/v1/networks', body);
    out(n, () => `${n.name}\n`);
  });
network
  .command('ls')
  .description('list networks')
  .action(async () => {
    const list = await client().call<Array<{ id: string; name: string; subnet: string; gateway: string; subnet6?: string; gateway6?: string; attachable: boolean; ingress?: boolean }>>('GET', '/v1/networks');
    const both = (a: string, b: string | undefined): string => (b ? `${a},${b}` : a);
    out(list, () => columns(['NETWORK ID', 'NAME', 'SUBNET', 'GATEWAY', 'ATTACHABLE', 'INGRESS'], list.map((n) => [n.id, n.name, both(n.subnet, n.subnet6), both(n.gateway, n.gateway6), String(n.attachable), String(n.ingress === true)])));
  });
network
  .command('inspect <name>')
  .description('show one network, with its peers: the hosts that have tasks on it')
  .action(async (name: string) => {
    const path = `/v1/networks/${encodeURIComponent(name)}`;
    const net = await client().call<Record<string, unknown>>('GET', path);
    out({ ...net, peers: await client().call('GET', `${path}/peers`) });
  });
network
  .command('rm <name...>')
  .description('remove networks')
  .action(async (names: string[]) => {
    for (const n of names) {
      const r = await client().call<{ name: string }>('DELETE', `/v1/networks/${encodeURIComponent(n)}`);
      out(r, () => `${r.name}\n`);
    }
  });

// ---------- services ----------
function parsePort(spec: string, published: boolean): PortRequest {
  // --publish P:T[/udp]   --port [NAME=]T[/udp]
  let rest = spec;
  let name: string | undefined;
  const eq = rest.indexOf('=');
  if (!published && eq > 0) {
    name = rest.slice(0, eq);
    rest = rest.slice(eq + 1);
  }
  let protocol: Protocol = 'tcp';
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const p = rest.slice(slash + 1).toLowerCase();
    if (p !== 'tcp' && p !== 'udp') throw new VipdnsError('BAD_PORT', `"${spec}": protocol must be tcp or udp`);
    protocol = p;
    rest = rest.slice(0, slash);
  }
  const nums = rest.split(':');
  const toPort = (s: string): number => {
    if (!/^\d+$/.test(s)) throw new VipdnsError('BAD_PORT', `"${spec}" is not a port spec (${published ? '[PUBLISHED:]TARGET[/udp]' : '[NAME=]TARGET[/udp]'})`);
    return Number(s);
  };
  if (published) {
    // TARGET alone: the daemon picks the published port from its --publish-range, as Docker does.
    if (nums.length === 1) return { protocol, published: 'auto', target: toPort(nums[0]!) };
    if (nums.length !== 2) throw new VipdnsError('BAD_PORT', `"${spec}": --publish takes [PUBLISHED:]TARGET[/udp], e.g. 8080:80, or 80 for a port from the publish range`);
    return { protocol, published: toPort(nums[0]!), target: toPort(nums[1]!) };
  }
  if (nums.length !== 1) throw new VipdnsError('BAD_PORT', `"${spec}": --port takes [NAME=]TARGET[/udp], e.g. http=80`);
  return name ? { name, protocol, target: toPort(nums[0]!) } : { protocol, target: toPort(nums[0]!) };
}

/** --vip NET=IP, repeatable: one per network, or two (one per family) on a dual-stack network. */
function parseVips(specs: string[]): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const s of specs) {
    const i = s.indexOf('=');
    if (i <= 0) throw new VipdnsError('BAD_REQUEST', `--vip takes NETWORK=IP, got "${s}"`);
    const net = s.slice(0, i);
    m.set(net, [...(m.get(net) ?? []), s.slice(i + 1)]);
  }
  return m;
}

/** --network-alias NET=NAME (repeatable) → aliases per network; each NET must be one of `nets`. */
function parseNetworkAliases(specs: string[], nets: string[], flag: string): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const s of specs) {
    const i = s.indexOf('=');
    if (i <= 0 || i === s.length - 1) throw new VipdnsError('BAD_REQUEST', `--network-alias takes NETWORK=NAME, got "${s}"`);
    const net = s.slice(0, i);
    if (!nets.includes(net)) throw new VipdnsError('BAD_REQUEST', `--network-alias names network "${net}", which is not one of the ${flag} values`);
    m.set(net, [...(m.get(net) ?? []), s.slice(i + 1)]);
  }
  return m;
}

/** One attachment as the API takes it: a bare name when nothing else is given; a second address is the IPv6 one (dual stack). */
function attachment(network: string, addrKey: 'vip' | 'ip', addrs: Array<string | undefined>, aliases: string[] | undefined): string | Record<string, unknown> {
  const given = addrs.filter((a): a is string => !!a);
  if (given.length > 2) throw new VipdnsError('BAD_REQUEST', `${given.length} addresses given for network "${network}": at most one per family`);
  if (!given.length && !aliases) return network;
  return { network, ...(given[0] ? { [addrKey]: given[0] } : {}), ...(given[1] ? { [`${addrKey}6`]: given[1] } : {}), ...(aliases ? { aliases } : {}) };
}

/** An object's addresses per network for a listing: NET=IP, both families on a dual-stack network. */
const addressList = (o: { addresses: Record<string, string>; addresses6?: Record<string, string> }): string =>
  Object.entries(o.addresses)
    .map(([n, ip]) => `${n}=${ip}${o.addresses6?.[n] ? `,${n}=${o.addresses6[n]}` : ''}`)
    .join(',');

interface ServiceRow {
  id: string;
  name: string;
  endpointMode: string;
  attachments: Array<{ network: string; vip?: string; vip6?: string; aliases?: string[] }>;
  ports: PortSpec[];
  replicas: number;
  aliases: string[];
  lb?: string;
  sticky?: number;
}

const LB_HELP = 'scheduler for new connections: rr (round robin), wrr (by task weight), lc (least connections; IPVS only), sh (hash of the client address) (default: rr)';
const STICKY_HELP = 'a client keeps its backend for this many seconds after its last connection (IPVS persistence; on nftables a per-client memory of its slot)';
const WEIGHT_HELP = 'share of new connections under wrr and sh; 0 drains the task (its established connections stay)';

/** A whole number as a number; anything else as given, so the daemon's error shows what was typed. */
function intArg(v: string): number | string {
  return /^-?\d+$/.test(v.trim()) ? Number(v) : v;
}

/** `ports` without those `--publish-rm` names: a published port, else the published ports of a target. */
function withoutPublished(ports: PortSpec[], rm: string[]): PortSpec[] {
  let out = ports;
  for (const spec of rm) {
    const m = /^(\d+)(?:\/(tcp|udp))?$/i.exec(spec.trim());
    if (!m) throw new VipdnsError('BAD_PORT', `--publish-rm takes PORT[/udp], got "${spec}"`);
    const port = Number(m[1]);
    const protocol = (m[2]?.toLowerCase() ?? 'tcp') as Protocol;
    const published = out.filter((p) => p.protocol === protocol && p.published === port);
    const hit = published.length > 0 ? published : out.filter((p) => p.protocol === protocol && p.published !== undefined && p.target === port);
    if (hit.length === 0) throw new VipdnsError('NOT_FOUND', `the service publishes no port ${port}/${protocol} (published or target)`);
    // A named port stays a target port (its SRV records too); only its publication goes.
    out = out.flatMap((p) => (!hit.includes(p) ? [p] : p.name ? [{ name: p.name, protocol: p.protocol, target: p.target }] : []));
  }
  return out;
}

const service = program.command('service').description('manage services');
service
  .command('create <name>')
  .description('create a service')
  .requiredOption('--network <net>', 'network to attach, repeatable', collect)
  .addOption(new Option('--endpoint-mode <mode>', 'vip: one virtual IP; dnsrr: all task IPs').choices(['vip', 'dnsrr']).default('vip'))
  .option('--vip <net=ip>', 'fixed VIP on a network instead of an allocated one (on a dual-stack network one per family), repeatable', collect, [])
  .option('--publish <[p:]t[/udp]>', 'publish a port on every host address (routing mesh); without p, one from the daemon\'s --publish-range; repeatable', collect, [])
  .option('--port <[name=]t[/udp]>', 'a target port (named ports get SRV records), repeatable', collect, [])
  .option('--alias <name>', 'another DNS name, repeatable', collect, [])
  .option('--network-alias <net=name>', 'another DNS name answered only to clients on that network, repeatable', collect, [])
  .option('--health-check <type:port[/path]>', 'active check: tcp:PORT or http:PORT/PATH')
  .addOption(new Option('--health-interval <ms>', 'health check interval').default('2000', '2000 ms'))
  .addOption(new Option('--health-timeout <ms>', 'health check timeout').default('1000', '1000 ms'))
  .option('--lb <scheduler>', LB_HELP)
  .option('--sticky <seconds>', STICKY_HELP)
  .action(async (name: string, o: { network: string[]; endpointMode: string; vip: string[]; publish: string[]; port: string[]; alias: string[]; networkAlias: string[]; healthCheck?: string; healthInterval: string; healthTimeout: string; lb?: string; sticky?: string }) => {
    const vips = parseVips(o.vip);
    for (const n of vips.keys()) if (!o.network.includes(n)) throw new VipdnsError('BAD_REQUEST', `--vip names network "${n}", which is not one of the --network values`);
    const named = parseNetworkAliases(o.networkAlias, o.network, '--network');
    const ports = [...o.publish.map((p) => parsePort(p, true)), ...o.port.map((p) => parsePort(p, false))];
    const body: Record<string, unknown> = {
      name,
      endpointMode: o.endpointMode,
      networks: o.network.map((n) => attachment(n, 'vip', vips.get(n) ?? [], named.get(n))),
      ports,
      aliases: o.alias,
    };
    if (o.healthCheck) body.healthCheck = parseHealth(o.healthCheck, o.healthInterval, o.healthTimeout);
    if (o.lb !== undefined) body.lb = o.lb;
    if (o.sticky !== undefined) body.sticky = intArg(o.sticky);
    const s = await client().call<ServiceRow>('POST', '/v1/services', body);
    out(s, () => `${s.name}\n${s.attachments.flatMap((a) => vipsOf(a).map((v) => `  vip ${v} on ${a.network}\n`)).join('')}`);
  });
service
  .command('update <name>')
  .description('change a service')
  .option('--network-add <net>', 'attach to a network, repeatable', collect, [])
  .option('--network-alias <net=name>', 'a DNS name answered only on a network being added, repeatable', collect, [])
  .option('--network-rm <net>', 'detach from a network, repeatable', collect, [])
  .addOption(new Option('--endpoint-mode <mode>', 'vip or dnsrr').choices(['vip', 'dnsrr']))
  .option('--alias-add <name>', 'add a DNS alias, repeatable', collect, [])
  .option('--alias-rm <name>', 'remove a DNS alias, repeatable', collect, [])
  .option('--lb <scheduler>', LB_HELP)
  .option('--sticky <seconds>', `${STICKY_HELP}; 0 turns it off`)
  .option('--publish-add <[p:]t[/udp]>', 'publish another port (without p: one from the publish range), repeatable', collect, [])
  .option('--publish-rm <p[/udp]>', 'stop publishing this published port (or the published ports of this target), repeatable', collect, [])
  .action(async (name: string, o: { networkAdd: string[]; networkAlias: string[]; networkRm: string[]; endpointMode?: string; aliasAdd: string[]; aliasRm: string[]; lb?: string; sticky?: string; publishAdd: string[]; publishRm: string[] }) => {
    const body: Record<string, unknown> = {};
    const named = parseNetworkAliases(o.networkAlias, o.networkAdd, '--network-add');
    if (o.publishAdd.length || o.publishRm.length) {
      const cur = await client().call<ServiceRow>('GET', `/v1/services/${encodeURIComponent(name)}`);
      body.ports = [...withoutPublished(cur.ports, o.publishRm), ...o.publishAdd.map((p) => parsePort(p, true))];
    }
    if (o.networkAdd.length) body.networkAdd = o.networkAdd.map((n) => attachment(n, 'vip', [], named.get(n)));
    if (o.networkRm.length) body.networkRm = o.networkRm;
    if (o.endpointMode) body.endpointMode = o.endpointMode;
    if (o.aliasAdd.length) body.aliasAdd = o.aliasAdd;
    if (o.aliasRm.length) body.aliasRm = o.aliasRm;
    if (o.lb !== undefined) body.lb = o.lb;
    if (o.sticky !== undefined) body.sticky = intArg(o.sticky);
    if (Object.keys(body).length === 0) throw new VipdnsError('BAD_REQUEST', 'nothing to update: give --network-add, --network-rm, --endpoint-mode, --alias-add, --alias-rm, --lb, --sticky, --publish-add or --publish-rm');
    const s = await client().call<ServiceRow>('PATCH', `/v1/services/${encodeURIComponent(name)}`, body);
    out(s, () => `${s.name}\n`);
  });
service
  .command('ls')
  .description('list services')
  .action(async () => {
    const list = await client().call<ServiceRow[]>('GET', '/v1/services');
    out(list, () =>
      columns(
        ['ID', 'NAME', 'MODE', 'LB', 'REPLICAS', 'NETWORKS', 'VIPS', 'PORTS'],
        list.map((s) => [
          s.id,
          s.name,
          s.endpointMode,
          s.endpointMode === 'dnsrr' ? '-' : `${s.lb ?? 'rr'}${s.sticky ? ` sticky ${s.sticky}s` : ''}`,
          String(s.replicas),
          s.attachments.map((a) => a.network).join(','),
          s.attachments.map((a) => vipsOf(a).join(',') || '-').join(','),
          s.ports.map((p) => (p.published ? `*:${p.published}->${p.target}/${p.protocol}` : `${p.name ? `${p.name}=` : ''}${p.target}/${p.protocol}`)).join(',') || '-',
        ]),
      ),
    );
  });
service
  .command('inspect <name>')
  .description('show one service and its tasks')
  .action(async (name: string) => out(await client().call('GET', `/v1/services/${encodeURIComponent(name)}`)));
service
  .command('rm <name...>')
  .description('remove services and their tasks')
  .action(async (names: string[]) => {
    for (const n of names) {
      const r = await client().call<{ name: string }>('DELETE', `/v1/services/${encodeURIComponent(n)}`);
      out(r, () => `${r.name}\n`);
    }
  });

function parseHealth(spec: string, interval: string, timeout: string): Record<string, unknown> {
  return { ...parseHealthSpec(spec, '--health-check'), intervalMs: Number(interval), timeoutMs: Number(timeout) };
}

// ---------- tasks ----------
interface TaskRow {
  id: string;
  name: string;
  service: string;
  slot: number;
  addresses: Record<string, string>;
  addresses6?: Record<string, string>;
  health: string;
  weight?: number;
  node?: string;
}
const task = program.command('task').description('manage tasks (replicas of a service)');
task
  .command('add <service>')
  .description('add a task; its IPs are allocated unless given')
  .option('--ip <ip>', 'task IP on the network whose subnet holds it, repeatable', collect, [])
  .option('--name <name>', 'task name (default <service>.<slot>.<id>)')
  .option('--weight <n>', `${WEIGHT_HELP} (default: 1)`)
  .action(async (svc: string, o: { ip: string[]; name?: string; weight?: string }) => {
    const t = await client().call<TaskRow>('POST', '/v1/tasks', { service: svc, ips: o.ip, name: o.name, ...(o.weight !== undefined ? { weight: intArg(o.weight) } : {}) });
    out(t, () => `${t.name}\t${allAddresses(t).join(',')}\n`);
  });
task
  .command('update <task>')
  .description('change a task (id, id prefix or name)')
  .requiredOption('--weight <n>', WEIGHT_HELP)
  .action(async (ref: string, o: { weight: string }) => {
    const t = await client().call<TaskRow>('PATCH', `/v1/tasks/${encodeURIComponent(ref)}`, { weight: intArg(o.weight) });
    out(t, () => `${t.name}\tweight ${t.weight ?? 1}\n`);
  });
task
  .command('ls [service]')
  .description('list tasks, of one service or all')
  .action(async (svc?: string) => {
    const list = await client().call<TaskRow[]>('GET', svc ? `/v1/tasks?service=${encodeURIComponent(svc)}` : '/v1/tasks');
    out(list, () =>
      columns(
        ['ID', 'NAME', 'SERVICE', 'NODE', 'HEALTH', 'WEIGHT', 'ADDRESSES'],
        list.map((t) => [t.id, t.name, t.service, t.node ?? '-', t.health, String(t.weight ?? 1), addressList(t)]),
      ),
    );
  });
task
  .command('inspect <task>')
  .description('show one task (id, id prefix or name)')
  .action(async (ref: string) => out(await client().call('GET', `/v1/tasks/${encodeURIComponent(ref)}`)));
task
  .command('rm <task...>')
  .description('remove tasks (id, id prefix or name)')
  .action(async (refs: string[]) => {
    for (const r of refs) {
      const t = await client().call<TaskRow>('DELETE', `/v1/tasks/${encodeURIComponent(r)}`);
      out(t, () => `${t.name}\n`);
    }
  });

// ---------- containers ----------
interface ContainerRow {
  id: string;
  name: string;
  aliases: string[];
  networkAliases?: Record<string, string[]>;
  addresses: Record<string, string>;
  addresses6?: Record<string, string>;
}

/** Aliases for a listing: its own, then each network alias as NAME@NETWORK. */
const aliasList = (own: string[], perNet: Array<[string, string[] | undefined]>): string =>
  [...own, ...perNet.flatMap(([net, list]) => (list ?? []).map((a) => `${a}@${net}`))].join(',') || '-';
const container = program.command('container').description('manage standalone containers on attachable networks');
container
  .command('add <name>')
  .description('add a container')
  .requiredOption('--network <net>', 'attachable network, repeatable', collect)
  .option('--ip <ip>', 'IP on the network whose subnet holds it, repeatable', collect, [])
  .option('--ip6 <ip>', 'IPv6 address on a dual-stack network, paired with --network in order like --ip, repeatable', collect, [])
  .option('--alias <name>', 'another DNS name, repeatable', collect, [])
  .option('--network-alias <net=name>', 'another DNS name answered only to clients on that network, repeatable', collect, [])
  .option('--client-address <ip>', "the container's address on no network of vipdns (e.g. docker_gwbridge): its DNS queries from there see its networks, repeatable", collect, [])
  .action(async (name: string, o: { network: string[]; ip: string[]; ip6: string[]; alias: string[]; networkAlias: string[]; clientAddress: string[] }) => {
    if (o.ip.length > o.network.length) throw new VipdnsError('BAD_REQUEST', 'more --ip values than --network values');
    if (o.ip6.length > o.network.length) throw new VipdnsError('BAD_REQUEST', 'more --ip6 values than --network values');
    const named = parseNetworkAliases(o.networkAlias, o.network, '--network');
    // IPs pair with networks in order, as with `docker network connect --ip`.
    const networks = o.network.map((n, i) => attachment(n, 'ip', [o.ip[i], o.ip6[i]], named.get(n)));
    const body: Record<string, unknown> = { name, networks, aliases: o.alias };
    if (o.clientAddress.length) body.clientAddresses = o.clientAddress;
    const c = await client().call<ContainerRow>('POST', '/v1/containers', body);
    out(c, () => `${c.name}\t${allAddresses(c).join(',')}\n`);
  });
container
  .command('ls')
  .description('list containers')
  .action(async () => {
    const list = await client().call<ContainerRow[]>('GET', '/v1/containers');
    out(list, () =>
      columns(
        ['ID', 'NAME', 'ALIASES', 'ADDRESSES'],
        list.map((c) => [c.id, c.name, aliasList(c.aliases, Object.entries(c.networkAliases ?? {})), addressList(c)]),
      ),
    );
  });
container
  .command('inspect <name>')
  .description('show one container')
  .action(async (name: string) => out(await client().call('GET', `/v1/containers/${encodeURIComponent(name)}`)));
container
  .command('rm <name...>')
  .description('remove containers')
  .action(async (names: string[]) => {
    for (const n of names) {
      const c = await client().call<ContainerRow>('DELETE', `/v1/containers/${encodeURIComponent(n)}`);
      out(c, () => `${c.name}\n`);
    }
  });

// ---------- dataplane ----------
interface ShowOut {
  driver: string;
  units: Array<{
    kind: string;
    service: string;
    network?: string;
    address: string;
    scheduler: string;
    sticky?: number;
    kernel: { present: boolean; scheduler?: string; persistence?: number; where?: string };
    backends: Array<{ task?: string; ip: string; port: number; state: string; weight?: number; health?: string; kernel?: { weight: number; activeConns?: number; inactiveConns?: number } }>;
    differences: string[];
  }>;
}

/** dataplane show's rows: one head line per unit, one per backend, one per difference. */
function showLines(units: ShowOut['units']): string[] {
  const lines: string[] = [];
  for (const u of units) {
    const k = u.kernel;
    const head = u.kind === 'vip' ? `VIP ${u.address}` : `PUB ${u.address}`;
    const kern = k.present ? `kernel: ${k.scheduler ?? '?'}${k.persistence ? ` persistent ${k.persistence}` : ''}${k.where ? ` (${k.where})` : ''}` : 'kernel: absent';
    lines.push(`${head}  ${u.service}${u.network ? ` on ${u.network}` : ''}  ${u.scheduler}${u.sticky ? ` sticky ${u.sticky}s` : ''}  ${kern}`);
    for (const b of u.backends) {
      const addr = `${b.ip.includes(':') ? `[${b.ip}]` : b.ip}:${b.port}`;
      const conns = b.kernel?.activeConns !== undefined ? ` conns ${b.kernel.activeConns} active/${b.kernel.inactiveConns ?? 0} inactive` : '';
      const kw = b.kernel ? `kernel weight ${b.kernel.weight}${conns}` : 'not in kernel';
      lines.push(`  -> ${addr.padEnd(22)} ${b.state.padEnd(11)} ${(b.health ?? '-').padEnd(9)} weight ${b.weight ?? '-'}  ${kw}${b.task ? `  task ${b.task}` : ''}`);
    }
    for (const d of u.differences) lines.push(`  ! ${d}`);
  }
  return lines;
}

// ---------- explain ----------
interface ExplainOut {
  name: string;
  type: string;
  from: string;
  client: { sees: 'all' | string[]; why: string };
  route: string;
  matches: Array<{ object: string; as: string; network: string; addresses: string[]; ttl: number; visible: boolean; hidden?: string; health?: { tasks: number; serving: number; unhealthy: number; failOpen: boolean; note: string } }>;
  notes: string[];
  answer: { rcode: string; answers: Array<{ name: string; type: string; ttl: number; data: string }>; additionals: Array<{ name: string; type: string; ttl: number; data: string }>; authorities: Array<{ name: string; type: string; ttl: number; data: string }> };
  kernel?: ShowOut['units'];
}
program
  .command('explain <name>')
  .description('why NAME does (not) resolve for a client: its networks, the matching catalog objects, what it cannot see and why, health, and the exact answer')
  .requiredOption('--from <ip>', "the client's address (as the DNS server sees it)")
  .option('--type <type>', 'query type: A, AAAA, SRV, PTR, ANY, TXT or MX (default: A)')
  .option('--port <port[/udp]>', "also the kernel's path for a connection to each answered VIP on this port: backends, weights, counters, and where the kernel differs from the plan")
  .addHelpText('after', '\nExamples:\n  vipdns explain web --from 10.0.9.50\n  vipdns explain web --from 10.0.9.50 --port 80\n  vipdns explain tasks.web --from 10.0.9.50\n  vipdns explain 2.9.0.10.in-addr.arpa --from 127.0.0.1 --type PTR\n')
  .action(async (name: string, o: { from: string; type?: string; port?: string }) => {
    const q = new URLSearchParams({ name, from: o.from, ...(o.type ? { type: o.type } : {}), ...(o.port ? { port: o.port } : {}) });
    const e = await client().call<ExplainOut>('GET', `/v1/explain?${q.toString()}`);
    out(e, () => {
      const lines: string[] = [];
      lines.push(`${e.name} ${e.type} from ${e.from}`);
      lines.push(`client: ${e.client.why}; sees ${e.client.sees === 'all' ? 'every network' : e.client.sees.length ? e.client.sees.join(', ') : 'no network'}`);
      if (e.matches.length) {
        lines.push('matches:');
        for (const m of e.matches) {
          const addrs = m.addresses.length ? m.addresses.join(' ') : '(no addresses)';
          lines.push(`  ${m.visible ? 'yes' : 'no '} ${m.object}: ${m.as} on ${m.network}: ${addrs} (ttl ${m.ttl})${m.hidden ? ` -- hidden: ${m.hidden}` : ''}`);
          if (m.health) lines.push(`      health: ${m.health.tasks} task(s), ${m.health.unhealthy} unhealthy; ${m.health.note}`);
        }
      } else lines.push('matches: none');
      for (const n of e.notes) lines.push(`note: ${n}`);
      lines.push(`answer: ${e.answer.rcode}${e.route === 'forwarded' ? ' (from the upstreams)' : ''}`);
      const rr = (r: { name: string; type: string; ttl: number; data: string }) => `  ${r.name}\t${r.ttl}\t${r.type}\t${r.data}`;
      for (const r of e.answer.answers) lines.push(rr(r));
      if (e.answer.additionals.length) lines.push('additional:', ...e.answer.additionals.map(rr));
      if (e.answer.authorities.length) lines.push('authority:', ...e.answer.authorities.map(rr));
      if (e.kernel) lines.push('kernel path:', ...(e.kernel.length ? showLines(e.kernel) : ['  (none)']));
      return lines.join('\n') + '\n';
    });
  });

const dataplane = program.command('dataplane').description('inspect or remove the load-balancer dataplane');
dataplane
  .command('status')
  .description("the daemon's dataplane: driver, last sync, programmed services and backends")
  .action(async () => {
    const r = await client().call<{ driver: string; reason: string; status?: { lastSyncAt?: string; lastSyncMs?: number; syncs: number; errors: number; repairs: number; lastError?: { message: string }; programmed: { services: number; published: number; backends: number; draining: number }; warnings: string[] } }>('GET', '/v1/dataplane');
    out(r, () => {
      const s = r.status;
      if (!s) return `driver: ${r.driver}\n${r.reason}\n`;
      return [
        `driver: ${r.driver}`,
        `why: ${r.reason}`,
        `last sync: ${s.lastSyncAt ?? 'never'}${s.lastSyncMs !== undefined ? ` (${Math.round(s.lastSyncMs)} ms)` : ''}; ${s.syncs} syncs, ${s.errors} errors, ${s.repairs} drift repairs`,
        `programmed: ${s.programmed.services} VIP services, ${s.programmed.published} published ports, ${s.programmed.backends - s.programmed.draining} active + ${s.programmed.draining} draining backends`,
        ...(s.lastError ? [`last error: ${s.lastError.message}`] : []),
        ...s.warnings.map((w) => `warning: ${w}`),
      ].join('\n') + '\n';
    });
  });
dataplane
  .command('show [service]')
  .description('like ipvsadm -Ln for either dataplane: each VIP and published port with its scheduler and backends (weight, health, drain state, connection counts where the kernel keeps them), read from the kernel and checked against the plan')
  .action(async (svc?: string) => {
    const r = await client().call<ShowOut>('GET', `/v1/dataplane/show${svc ? `?service=${encodeURIComponent(svc)}` : ''}`);
    out(r, () => [`driver: ${r.driver}${r.units.length === 0 ? ' (nothing programmed)' : ''}`, ...showLines(r.units)].join('\n') + '\n');
  });
dataplane
  .command('cleanup')
  .description('remove every kernel object vipdns created (nftables table, IPVS services, iptables chains, vipdns0) and nothing else; run with the daemon stopped')
  .option('--force', 'clean up even while a vipdns daemon runs in this network namespace (it re-adds its rules at its next sync)')
  .action(async (o: { force?: boolean }) => {
    if (process.getuid?.() !== 0) throw new VipdnsError('DATAPLANE_UNSUPPORTED', 'dataplane cleanup needs root (CAP_NET_ADMIN)');
    const { daemonsInThisNetns } = await import('./catalog/store/lock.js');
    const running = o.force ? [] : await daemonsInThisNetns();
    if (running.length > 0) {
      throw new VipdnsError('DATAPLANE_BUSY', `a vipdns daemon is running here (pid ${running.join(', ')}): it would re-add what cleanup removes at its next sync; stop it first (or --force)`);
    }
    const { cleanupDataplane } = await import('./balancer/index.js');
    const { IpvsDriver } = await import('./balancer/drivers/ipvs.js');
    const { probeIpvs } = await import('./balancer/drivers/supported.js');
    const extra = (await probeIpvs()).supported ? [new IpvsDriver()] : [];
    const r = await cleanupDataplane({ extra }); // the nftables driver's cleanup takes its VIPs off lo too
    out(r, () => `${r.removed.length ? `removed: ${r.removed.join(', ')}` : 'nothing of vipdns was programmed'}\n${r.errors.map((e) => `error (${e.driver}): ${e.message}\n`).join('')}`);
    if (r.errors.length) process.exitCode = 1;
  });

// Commander checks required options before unknown ones, so `--subnett x` was reported as a missing
// --subnet. Required options are checked here instead, in a hook that runs after the unknown-option
// check (with its "Did you mean"), for every subcommand.
const required = new Map<Command, Option[]>();
(function unmandate(cmd: Command): void {
  const own = cmd.options.filter((o) => o.mandatory);
  for (const o of own) o.mandatory = false;
  if (own.length) required.set(cmd, own);
  cmd.commands.forEach(unmandate);
})(program);
program.hook('preAction', (_program, cmd) => {
  for (const o of required.get(cmd) ?? []) {
    if (cmd.getOptionValue(o.attributeName()) === undefined) cmd.error(`error: required option '${o.flags}' not specified`, { code: 'commander.missingMandatoryOptionValue' });
  }
});

program.parseAsync(process.argv).catch((e: unknown) => {
  if (program.opts<{ json?: boolean }>().json) {
    // Machine output stays machine-readable when it fails, too (still on stderr, exit 1).
    process.stderr.write(`${JSON.stringify({ error: { code: e instanceof VipdnsError ? e.code : 'INTERNAL', message: errorMessage(e) } })}\n`);
    process.exit(1);
  }
  const code = e instanceof VipdnsError ? ` [${e.code}]` : '';
  process.stderr.write(`vipdns: error: ${errorMessage(e)}${code}\n`);
  process.exit(1);
});
