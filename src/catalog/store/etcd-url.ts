// `--store etcd://host:port[,host:port...][/prefix]` and the TLS/auth settings that go with it.
import { readFileSync } from 'node:fs';
import { VipdnsError, errorMessage } from '../../errors.js';
import { DEFAULT_PREFIX, normalizePrefix } from './etcd-keys.js';
import type { EtcdStoreOptions, StoreLog } from './etcd.js';

export interface EtcdConfig {
  hosts: string[]; // host:port
  prefix: string;
  tls: boolean; // https to etcd: etcds:// or any TLS file given
  ca?: string;
  cert?: string;
  key?: string;
  user?: string;
  password?: string;
  leaseTtlSeconds: number;
}

export const DEFAULT_LEASE_TTL = 10;

export function parseEtcdUrl(url: string): Pick<EtcdConfig, 'hosts' | 'prefix' | 'tls'> {
  const m = /^(etcds?):\/\/([^/]+)(\/.*)?$/.exec(url.trim());
  if (!m) throw new VipdnsError('CONFIG', `store "${url}" is not file or etcd://HOST:PORT[,HOST:PORT...][/PREFIX]`);
  const hosts = m[2]!.split(',').map((h) => h.trim());
  for (const h of hosts) {
    const port = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(h);
    if (!port || Number(port[2]) < 1 || Number(port[2]) > 65535) throw new VipdnsError('CONFIG', `etcd endpoint "${h}" in "${url}" is not HOST:PORT`);
  }
  const path = m[3] && m[3] !== '/' ? normalizePrefix(m[3]) : DEFAULT_PREFIX;
  return { hosts, prefix: path, tls: m[1] === 'etcds' };
}

/** Client options for the store: reads the TLS files now, so a bad path fails at startup. */
export function etcdStoreOptions(c: EtcdConfig, nodeName: string, log?: StoreLog): EtcdStoreOptions {
  const read = (what: string, path: string | undefined): Buffer | undefined => {
    if (path === undefined) return undefined;
    try {
      return readFileSync(path);
    } catch (e) {
      throw new VipdnsError('CONFIG', `${what} ${path}: ${errorMessage(e)}`);
    }
  };
  const tls = c.tls || c.ca !== undefined || c.cert !== undefined || c.key !== undefined;
  if ((c.cert === undefined) !== (c.key === undefined)) throw new VipdnsError('CONFIG', '--etcd-cert and --etcd-key go together');
  if (tls && c.ca === undefined) throw new VipdnsError('CONFIG', 'TLS to etcd needs --etcd-ca (the CA that signed the etcd server certificate)');
  if ((c.user === undefined) !== (c.password === undefined)) throw new VipdnsError('CONFIG', '--etcd-user needs a password (--etcd-password or VIPDNS_ETCD_PASSWORD), and the reverse');
  const opts: EtcdStoreOptions = {
    hosts: c.hosts.map((h) => `${tls ? 'https' : 'http'}://${h}`),
    prefix: c.prefix,
    nodeName,
    leaseTtlSeconds: c.leaseTtlSeconds,
  };
  if (tls) opts.tls = { ca: read('--etcd-ca', c.ca), cert: read('--etcd-cert', c.cert), key: read('--etcd-key', c.key) };
  if (c.user !== undefined && c.password !== undefined) opts.auth = { username: c.user, password: c.password };
  if (log) opts.log = log;
  return opts;
}
