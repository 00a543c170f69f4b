// Daemon configuration: embedded defaults, then a JSON config file, then VIPDNS_* environment
// variables, then command-line flags; each later source overrides the earlier.
import { readFileSync } from 'node:fs';
import { availableParallelism, hostname } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_PUBLISH_RANGE as MODEL_PUBLISH_RANGE } from './catalog/model.js';
import { DEFAULT_LEASE_TTL, type EtcdConfig, parseEtcdUrl } from './catalog/store/etcd-url.js';
import { VipdnsError, errorMessage } from './errors.js';
import { DEFAULT_TTL, type TtlOptions } from './dns/answers.js';
import { isLoopback, parseIp, tryParseIp } from './net/ip.js';
import { parseDockerUrl } from './catalog/sources/docker-api.js';
import { endpointText, parseUpstream } from './dns/forward/address.js';
import { isSelf, localAddresses } from './dns/forward/self.js';

export type DataplaneKind = 'auto' | 'ipvs' | 'nftables' | 'none';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
export const LOG_FORMATS = ['pretty', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface HostPort {
  host: string;
  port: number;
}

/** Where the control API listens: a unix socket (the default, under the data dir) or TCP. */
export type ApiEndpoint = { kind: 'unix'; path: string } | ({ kind: 'tcp' } & HostPort);

export const API_SOCKET = 'api.sock';
export const DEFAULT_DATA_DIR = './vipdns-data';

export interface DaemonConfig {
  dataDir: string;
  dnsListen: HostPort;
  /** Default: the socket api.sock under the data dir. */
  apiListen: ApiEndpoint;
  /** File holding the bearer token every API request must carry (read at start); required for non-loopback TCP. */
  apiTokenFile?: string;
  /** TLS for a TCP API, with client certificates signed by `ca` required (files, read at start). */
  apiTls?: { cert: string; key: string; ca: string };
  metricsListen: HostPort;
  domain: string;
  ttl: TtlOptions;
  loopbackSeesAll: boolean;
  othersSeeAll: boolean;
  dataplane: DataplaneKind;
  upstreams: string[]; // empty: the host's /etc/resolv.conf
  resolvConf: string; // where the default upstreams come from
  forward: ForwardConfig;
  logLevel: string;
  /** pretty: one readable line per event; json: one object per line. Unset: pretty on a terminal. */
  logFormat?: LogFormat;
  /** Where the catalog lives: the data dir's file (single host) or a shared etcd. */
  store: { kind: 'file' } | ({ kind: 'etcd' } & EtcdConfig);
  /** This host's identity in a shared store (its lease and node record). */
  nodeName: string;
  /** Host ports a published port without a number is taken from (Docker's 30000-32767). */
  publishRange: PortRange;
  /** Set when the hostname was not a usable node name and a cleaned-up form is used (logged at start). */
  nodeNameFallback?: { hostname: string; used: string };
  /** Threads answering UDP DNS on the one port (SO_REUSEPORT); 1: the main thread only. */
  dnsWorkers: number;
  /** Docker engine to follow (unix:///..., /path or tcp://host:port); undefined: no Docker source. */
  docker?: string;
  /** TLS client files for a TCP engine (ca.pem, cert.pem, key.pem), as Docker's DOCKER_CERT_PATH. */
  dockerTlsDir?: string;
}

export interface PortRange {
  lo: number;
  hi: number;
}

export const DEFAULT_PUBLISH_RANGE: PortRange = { ...MODEL_PUBLISH_RANGE };

/** "LO-HI", both 1-65535, LO <= HI. */
export function parsePortRange(text: string, what: string): PortRange {
  const m = /^\s*(\d{1,5})\s*-\s*(\d{1,5})\s*$/.exec(text);
  const lo = m ? Number(m[1]) : NaN;
  const hi = m ? Number(m[2]) : NaN;
  if (!m || lo < 1 || hi > 65535) throw new VipdnsError('CONFIG', `${what} takes LO-HI with ports from 1 to 65535 (e.g. 30000-32767), got "${text}"`);
  if (lo > hi) throw new VipdnsError('CONFIG', `${what} "${text}" is inverted: the low port comes first (${hi}-${lo})`);
  return { lo, hi };
}

export interface ForwardConfig {
  policy: 'random' | 'round_robin' | 'sequential';
  hedgeMs: number; // start the next upstream after this long without an answer
  maxConcurrent: number; // distinct forwards in flight; over it: REFUSED (counted)
  cacheEntries: number; // 0: no cache
  cacheBytes: number;
  serveStale: number; // seconds an expired answer may be served while every upstream fails; 0: off
}

export const DEFAULTS: DaemonConfig = {
  dataDir: DEFAULT_DATA_DIR,
  dnsListen: { host: '127.0.0.1', port: 1053 },
  dnsWorkers: 1,
  publishRange: DEFAULT_PUBLISH_RANGE,
  apiListen: { kind: 'unix', path: join(DEFAULT_DATA_DIR, API_SOCKET) },
  metricsListen: { host: '127.0.0.1', port: 9153 },
  domain: 'vipdns.internal',
  ttl: DEFAULT_TTL,
  loopbackSeesAll: true,
  othersSeeAll: false,
  dataplane: 'auto',
  upstreams: [],
  resolvConf: '/etc/resolv.conf',
  forward: { policy: 'random', hedgeMs: 150, maxConcurrent: 1000, cacheEntries: 10_000, cacheBytes: 32 << 20, serveStale: 0 },
  logLevel: 'info',
  store: { kind: 'file' },
  nodeName: hostname(),
};

export { DEFAULT_LEASE_TTL }; // for the CLI's help text

/** Where `--docker` without a value points: $DOCKER_HOST, else Docker's default socket. */
export const DEFAULT_DOCKER = 'unix:///var/run/docker.sock';

/** "ADDR:PORT", "[V6]:PORT" or ":PORT" (all addresses of loopback's family stay explicit). */
const NODE_NAME = /^[A-Za-z0-9]([A-Za-z0-9._-]{0,62})$/;

/** A usable node name from any hostname: invalid characters become "-", trimmed to 63; "vipdns" if nothing is left. */
export function sanitizeNodeName(hostname: string): string {
  const s = hostname
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '')
    .slice(0, 63)
    .replace(/[^A-Za-z0-9]+$/, '');
  return s === '' ? 'vipdns' : s;
}

/** unix:///PATH (or unix:PATH) for a socket, else ADDR:PORT. */
export function parseApiEndpoint(text: string, what: string): ApiEndpoint {
  if (/^unix:/i.test(text)) {
    const path = text.replace(/^unix:(\/\/)?/i, '');
    if (path === '') throw new VipdnsError('CONFIG', `${what}: "${text}" names no socket path (unix:///run/vipdns/api.sock)`);
    return { kind: 'unix', path };
  }
  return { kind: 'tcp', ...parseHostPort(text, what) };
}

function isLoopbackHost(host: string): boolean {
  if (host === 'localhost') return true;
  const a = tryParseIp(host);
  return a !== undefined && isLoopback(a);
}

/** A token file's first line; an empty or unreadable file is refused (no token would mean no check). */
export function readToken(file: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new VipdnsError('CONFIG', `${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const token = (text.split('\n')[0] ?? '').trim();
  if (token.length < 16) throw new VipdnsError('CONFIG', `${what} ${file} must hold a token of at least 16 characters on its first line`);
  return token;
}

/** The API's TLS files, read: a missing or unreadable one is a one-line start-up error. */
export function readTls(t: { cert: string; key: string; ca: string }): { cert: Buffer; key: Buffer; ca: Buffer } {
  const read = (what: string, file: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (e) {
      throw new VipdnsError('CONFIG', `${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  };
  return { cert: read('api-tls-cert', t.cert), key: read('api-tls-key', t.key), ca: read('api-tls-ca', t.ca) };
}

export function parseHostPort(text: string, what: string, defaultPort?: number): HostPort {
  const s = text.trim();
  let host: string;
  let portText: string | undefined;
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  if (v6) {
    host = v6[1]!;
    portText = v6[2];
  } else if ((s.match(/:/g) ?? []).length > 1) {
    host = s; // bare IPv6 address, no port
  } else {
    const i = s.lastIndexOf(':');
    host = i >= 0 ? s.slice(0, i) : s;
    portText = i >= 0 ? s.slice(i + 1) : undefined;
  }
  if (host === '') host = '0.0.0.0';
  try {
    parseIp(host);
  } catch {
    throw new VipdnsError('CONFIG', `${what}: "${text}" is not ADDR:PORT (ADDR must be an IP address, e.g. 127.0.0.1:1053 or [::1]:1053)`);
  }
  const port = portText === undefined ? defaultPort : Number(portText);
  if (port === undefined || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new VipdnsError('CONFIG', `${what}: "${text}" needs a port from 0 to 65535`);
  }
  return { host, port };
}

export interface ConfigSources {
  file?: string;
  env?: NodeJS.ProcessEnv;
  flags?: Partial<Record<keyof FlagValues, unknown>>;
  /** This host's addresses (tests); default: read from the interfaces. */
  localAddresses?: string[];
}

/** Flat, string-valued view shared by the config file keys, env names and flags. */
export interface FlagValues {
  dataDir: string;
  dnsListen: string;
  dnsWorkers: string | number;
  apiListen: string;
  metricsListen: string;
  domain: string;
  dataplane: string;
  upstream: string[];
  logLevel: string;
  logFormat: string;
  loopbackSeesAll: string | boolean;
  othersSeeAll: string | boolean;
  ttlVip: string | number;
  ttlDnsrr: string | number;
  ttlTasks: string | number;
  ttlContainer: string | number;
  store: string;
  etcdCa: string;
  etcdCert: string;
  etcdKey: string;
  etcdUser: string;
  etcdPassword: string;
  etcdLeaseTtl: string | number;
  nodeName: string;
  docker: string | boolean;
  dockerTlsDir: string;
  resolvConf: string;
  forwardPolicy: string;
  hedgeMs: string | number;
  maxForwards: string | number;
  cacheEntries: string | number;
  cacheBytes: string | number;
  serveStale: string | number;
  publishRange: string;
  apiTokenFile: string;
  apiTlsCert: string;
  apiTlsKey: string;
  apiTlsCa: string;
}

const ENV: Record<keyof FlagValues, string> = {
  dataDir: 'VIPDNS_DATA_DIR',
  dnsListen: 'VIPDNS_DNS_LISTEN',
  dnsWorkers: 'VIPDNS_DNS_WORKERS', // a number, or "auto": one per CPU
  apiListen: 'VIPDNS_API_LISTEN',
  metricsListen: 'VIPDNS_METRICS_LISTEN',
  domain: 'VIPDNS_DOMAIN',
  dataplane: 'VIPDNS_DATAPLANE',
  upstream: 'VIPDNS_UPSTREAM', // comma-separated
  logLevel: 'VIPDNS_LOG_LEVEL',
  logFormat: 'VIPDNS_LOG_FORMAT',
  loopbackSeesAll: 'VIPDNS_LOOPBACK_SEES_ALL',
  othersSeeAll: 'VIPDNS_OTHERS_SEE_ALL',
  ttlVip: 'VIPDNS_TTL_VIP',
  ttlDnsrr: 'VIPDNS_TTL_DNSRR',
  ttlTasks: 'VIPDNS_TTL_TASKS',
  ttlContainer: 'VIPDNS_TTL_CONTAINER',
  store: 'VIPDNS_STORE',
  etcdCa: 'VIPDNS_ETCD_CA',
  etcdCert: 'VIPDNS_ETCD_CERT',
  etcdKey: 'VIPDNS_ETCD_KEY',
  etcdUser: 'VIPDNS_ETCD_USER',
  etcdPassword: 'VIPDNS_ETCD_PASSWORD',
  etcdLeaseTtl: 'VIPDNS_ETCD_LEASE_TTL',
  nodeName: 'VIPDNS_NODE_NAME',
  docker: 'VIPDNS_DOCKER', // true/false, or the engine's socket or URL
  dockerTlsDir: 'VIPDNS_DOCKER_TLS_DIR',
  resolvConf: 'VIPDNS_RESOLV_CONF',
  forwardPolicy: 'VIPDNS_FORWARD_POLICY',
  hedgeMs: 'VIPDNS_HEDGE_MS',
  maxForwards: 'VIPDNS_MAX_FORWARDS',
  cacheEntries: 'VIPDNS_CACHE_ENTRIES',
  cacheBytes: 'VIPDNS_CACHE_BYTES',
  serveStale: 'VIPDNS_SERVE_STALE',
  publishRange: 'VIPDNS_PUBLISH_RANGE',
  apiTokenFile: 'VIPDNS_API_TOKEN_FILE',
  apiTlsCert: 'VIPDNS_API_TLS_CERT',
  apiTlsKey: 'VIPDNS_API_TLS_KEY',
  apiTlsCa: 'VIPDNS_API_TLS_CA',
};

/** Every setting's config-file key and its environment variable (docs and examples are tested against it). */
export const SETTINGS: Readonly<Record<keyof FlagValues, string>> = ENV;

/** An upstream that is our own DNS address would loop every forwarded query back to us: refuse it. */
function refuseSelfUpstreams(upstreams: string[], dnsListen: HostPort, local: string[]): void {
  for (const text of upstreams) {
    const u = parseUpstream(text); // a malformed one is refused here too, before anything opens
    if (isSelf(u, dnsListen, local)) {
      throw new VipdnsError(
        'CONFIG',
        `upstream ${endpointText(u)} is this daemon's own DNS address (dns-listen ${endpointText(dnsListen)}): forwarding to it would loop; give another resolver's address, or none to use ${DEFAULTS.resolvConf}`,
      );
    }
  }
}

export function loadConfig(src: ConfigSources): DaemonConfig {
  const merged: Partial<Record<keyof FlagValues, unknown>> = {};
  if (src.file) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(src.file, 'utf8'));
    } catch (e) {
      throw new VipdnsError('CONFIG', `config file ${src.file}: ${errorMessage(e)}`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new VipdnsError('CONFIG', `config file ${src.file}: must be a JSON object`);
    for (const [k, v] of Object.entries(parsed)) {
      if (!(k in ENV)) throw new VipdnsError('CONFIG', `config file ${src.file}: unknown key "${k}" (known: ${Object.keys(ENV).join(', ')})`);
      merged[k as keyof FlagValues] = v;
    }
  }
  const env = src.env ?? {};
  for (const [k, name] of Object.entries(ENV) as Array<[keyof FlagValues, string]>) {
    const v = env[name];
    if (v !== undefined && v !== '') merged[k] = k === 'upstream' ? v.split(',').map((x) => x.trim()).filter(Boolean) : v;
  }
  for (const [k, v] of Object.entries(src.flags ?? {})) {
    if (v !== undefined && !(Array.isArray(v) && v.length === 0)) merged[k as keyof FlagValues] = v;
  }

  const c: DaemonConfig = { ...DEFAULTS, ttl: { ...DEFAULTS.ttl }, forward: { ...DEFAULTS.forward } };
  const str = (k: keyof FlagValues): string | undefined => (merged[k] === undefined ? undefined : String(merged[k]));
  const bool = (k: keyof FlagValues): boolean | undefined => {
    const v = merged[k];
    if (v === undefined) return undefined;
    if (v === true || v === 'true' || v === '1' || v === 'yes') return true;
    if (v === false || v === 'false' || v === '0' || v === 'no') return false;
    throw new VipdnsError('CONFIG', `${k} must be true or false, got "${String(v)}"`);
  };
  const ttl = (k: keyof FlagValues): number | undefined => {
    const v = merged[k];
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0 || n > 86400) throw new VipdnsError('CONFIG', `${k} must be a whole number of seconds from 0 to 86400`);
    return n;
  };
  c.dataDir = str('dataDir') ?? c.dataDir;
  if (str('dnsListen')) c.dnsListen = parseHostPort(str('dnsListen')!, 'dns-listen', 53);
  const apiListen = str('apiListen');
  c.apiListen = apiListen ? parseApiEndpoint(apiListen, 'api-listen') : { kind: 'unix', path: join(c.dataDir, API_SOCKET) };
  const tokenFile = str('apiTokenFile');
  if (tokenFile !== undefined) c.apiTokenFile = tokenFile;
  const tls = { cert: str('apiTlsCert'), key: str('apiTlsKey'), ca: str('apiTlsCa') };
  const given = Object.values(tls).filter((v) => v !== undefined).length;
  if (given > 0) {
    if (given < 3) throw new VipdnsError('CONFIG', 'API TLS needs all three of --api-tls-cert, --api-tls-key and --api-tls-ca (the CA that signs the clients\' certificates)');
    if (c.apiListen.kind !== 'tcp') throw new VipdnsError('CONFIG', 'API TLS is for a TCP --api-listen ADDR:PORT; the unix socket is guarded by its file mode');
    c.apiTls = tls as { cert: string; key: string; ca: string };
  }
  if (c.apiListen.kind === 'tcp' && !c.apiTokenFile && !c.apiTls && !isLoopbackHost(c.apiListen.host)) {
    throw new VipdnsError(
      'CONFIG',
      `api-listen ${c.apiListen.host}:${c.apiListen.port} is not a loopback address, and the API changes the catalog: give --api-token-file FILE (clients send the token) or --api-tls-cert/--api-tls-key/--api-tls-ca (clients present a certificate), or listen on a unix socket (the default) or a loopback address`,
    );
  }
  if (str('metricsListen')) c.metricsListen = parseHostPort(str('metricsListen')!, 'metrics-listen');
  c.domain = (str('domain') ?? c.domain).replace(/^\.+|\.+$/g, '').toLowerCase();
  if (c.domain !== '' && !/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(c.domain)) {
    throw new VipdnsError('CONFIG', `domain "${c.domain}" is not a DNS name`);
  }
  const dp = str('dataplane') ?? c.dataplane;
  if (!['auto', 'ipvs', 'nftables', 'none'].includes(dp)) throw new VipdnsError('CONFIG', `dataplane must be auto, ipvs, nftables or none, got "${dp}"`);
  c.dataplane = dp as DataplaneKind;
  const up = merged.upstream;
  if (up !== undefined) c.upstreams = (Array.isArray(up) ? up : [up]).map(String);
  refuseSelfUpstreams(c.upstreams, c.dnsListen, src.localAddresses ?? localAddresses());
  c.logLevel = str('logLevel') ?? c.logLevel;
  if (!LOG_LEVELS.includes(c.logLevel)) throw new VipdnsError('CONFIG', `log level must be one of ${LOG_LEVELS.join(', ')}, got "${c.logLevel}"`);
  const logFormat = str('logFormat');
  if (logFormat !== undefined) {
    if (!(LOG_FORMATS as readonly string[]).includes(logFormat)) throw new VipdnsError('CONFIG', `log format must be pretty or json, got "${logFormat}"`);
    c.logFormat = logFormat as LogFormat;
  }
  c.loopbackSeesAll = bool('loopbackSeesAll') ?? c.loopbackSeesAll;
  c.othersSeeAll = bool('othersSeeAll') ?? c.othersSeeAll;
  c.ttl.vip = ttl('ttlVip') ?? c.ttl.vip;
  c.ttl.dnsrr = ttl('ttlDnsrr') ?? c.ttl.dnsrr;
  c.ttl.tasks = ttl('ttlTasks') ?? c.ttl.tasks;
  c.ttl.container = ttl('ttlContainer') ?? c.ttl.container;
  const nodeName = str('nodeName');
  if (nodeName !== undefined) {
    if (!NODE_NAME.test(nodeName)) throw new VipdnsError('CONFIG', `node name "${nodeName}" must be 1-63 letters, digits, '.', '_' or '-'`);
    c.nodeName = nodeName;
  } else if (!NODE_NAME.test(c.nodeName)) {
    // The hostname is not ours to refuse (a minimal VM says "(none)"): use a cleaned-up form of it.
    c.nodeNameFallback = { hostname: c.nodeName, used: sanitizeNodeName(c.nodeName) };
    c.nodeName = c.nodeNameFallback.used;
  }
  const store = str('store') ?? 'file';
  if (store !== 'file') {
    const leaseTtl = Number(merged.etcdLeaseTtl ?? DEFAULT_LEASE_TTL);
    if (!Number.isInteger(leaseTtl) || leaseTtl < 2 || leaseTtl > 3600) throw new VipdnsError('CONFIG', 'etcd-lease-ttl must be a whole number of seconds from 2 to 3600');
    const etcd: { kind: 'etcd' } & EtcdConfig = { kind: 'etcd', ...parseEtcdUrl(store), leaseTtlSeconds: leaseTtl };
    for (const k of ['etcdCa', 'etcdCert', 'etcdKey', 'etcdUser', 'etcdPassword'] as const) {
      const v = str(k);
      if (v !== undefined) etcd[({ etcdCa: 'ca', etcdCert: 'cert', etcdKey: 'key', etcdUser: 'user', etcdPassword: 'password' } as const)[k]] = v;
    }
    c.store = etcd;
  }
  const docker = merged.docker;
  // As the docker CLI: DOCKER_TLS_VERIFY with DOCKER_CERT_PATH asks for TLS when no flag does.
  const tlsDir = str('dockerTlsDir') ?? (env.DOCKER_TLS_VERIFY && env.DOCKER_CERT_PATH ? env.DOCKER_CERT_PATH : undefined);
  if (docker === true || docker === 'true' || docker === '1' || docker === 'yes') c.docker = env.DOCKER_HOST || DEFAULT_DOCKER;
  else if (docker === undefined || docker === false || docker === 'false' || docker === '0' || docker === 'no' || docker === '') delete c.docker;
  else if (typeof docker === 'string') c.docker = docker;
  else throw new VipdnsError('CONFIG', `docker must be true, false or the engine's socket or URL, got ${JSON.stringify(docker)}`);
  if (c.docker !== undefined) {
    const ep = parseDockerUrl(c.docker, tlsDir); // refuse a bad URL or unreadable TLS files before anything opens
    c.docker = ep.url;
    if (ep.tls) c.dockerTlsDir = tlsDir;
  }
  const int = (k: keyof FlagValues, min: number, max: number): number | undefined => {
    const v = merged[k];
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new VipdnsError('CONFIG', `${k} must be a whole number from ${min} to ${max}, got "${String(v)}"`);
    return n;
  };
  const publishRange = str('publishRange');
  if (publishRange !== undefined) c.publishRange = parsePortRange(publishRange, 'publish-range');
  const workers = str('dnsWorkers');
  if (workers !== undefined) c.dnsWorkers = workers === 'auto' ? Math.min(64, availableParallelism()) : int('dnsWorkers', 1, 64)!;
  c.resolvConf = str('resolvConf') ?? c.resolvConf;
  const pol = str('forwardPolicy') ?? c.forward.policy;
  if (!['random', 'round_robin', 'sequential'].includes(pol)) throw new VipdnsError('CONFIG', `forwardPolicy must be random, round_robin or sequential, got "${pol}"`);
  c.forward.policy = pol as ForwardConfig['policy'];
  c.forward.hedgeMs = int('hedgeMs', 1, 10_000) ?? c.forward.hedgeMs;
  c.forward.maxConcurrent = int('maxForwards', 1, 1_000_000) ?? c.forward.maxConcurrent;
  c.forward.cacheEntries = int('cacheEntries', 0, 10_000_000) ?? c.forward.cacheEntries;
  c.forward.cacheBytes = int('cacheBytes', 4096, 2 ** 40) ?? c.forward.cacheBytes;
  c.forward.serveStale = int('serveStale', 0, 7 * 86400) ?? c.forward.serveStale;
  return c;
}
