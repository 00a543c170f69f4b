// The default upstreams: the host's /etc/resolv.conf nameservers, minus the daemon itself
// (a container's resolv.conf pointing at 127.0.0.11 while we listen there would loop).
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';

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

/** resolv.conf nameservers always use port 53; one is us when we listen on it at port 53. */
export function dropSelf(nameservers: string[], listen: Listen): { kept: string[]; dropped: string[] } {
  const kept: string[] = [];
  const dropped: string[] = [];
  const wildcard = listen.host === '0.0.0.0' || listen.host === '::';
  for (const ns of nameservers) {
    const loopback = ns.startsWith('127.') || ns === '::1';
    const self = listen.port === 53 && (ns === listen.host || (wildcard && loopback));
    (self ? dropped : kept).push(ns);
  }
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
