// The default upstreams: the host's /etc/resolv.conf nameservers, minus the daemon itself
// (a container's resolv.conf pointing at 127.0.0.11 while we listen there would loop).
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { isSelf, localAddresses } from './self.js';

export function parseResolvConf(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const m = /^nameserver\s+(\S+)/.exec(line);
    if (!m) continue;
    const addr = m[1]!.replace(/%.*$/, ''); // drop an IPv6 zone
    if (isIP(addr)) out.push(addr);
  }
  return out;
}

export interface Listen {
  host: string;
  port: number;
}

/**
 * resolv.conf nameservers always use port 53; one is us when we listen on port 53 at its address, or
 * on a wildcard and it is any address of this host (loopback or an interface's).
 */
export function dropSelf(nameservers: string[], listen: Listen, local: readonly string[] = localAddresses()): { kept: string[]; dropped: string[] } {
  const kept: string[] = [];
  const dropped: string[] = [];
  for (const ns of nameservers) (isSelf({ host: ns, port: 53 }, listen, local) ? dropped : kept).push(ns);
  return { kept, dropped };
}

export function defaultUpstreams(path: string, listen: Listen): { upstreams: string[]; dropped: string[]; error?: string } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    return { upstreams: [], dropped: [], error: `${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}` };
  }
  const { kept, dropped } = dropSelf(parseResolvConf(text), listen);
  return { upstreams: kept, dropped };
}
