// An upstream's address as written (`ADDR`, `ADDR:PORT`, `[V6]:PORT`): parsed without opening
// anything, so the configuration can refuse a bad one before the daemon starts. No I/O.
import { isIP, isIPv6 } from 'node:net';
import { VipdnsError } from '../../errors.js';

export interface Endpoint {
  host: string;
  port: number;
}

export function parseUpstream(text: string): Endpoint {
  const s = text.trim();
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  let host: string;
  let port = 53;
  if (v6) {
    host = v6[1]!;
    if (v6[2]) port = Number(v6[2]);
  } else if (isIPv6(s)) host = s;
  else {
    const [h, p] = s.split(':');
    host = h ?? '';
    if (p !== undefined) port = Number(p);
  }
  if (!isIP(host) || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new VipdnsError('CONFIG', `upstream "${text}" is not ADDR[:PORT] with an IP address (e.g. 192.0.2.53 or [2001:db8::53]:5353)`);
  }
  return { host, port };
}

/** `host:port`, IPv6 in brackets: how logs and errors name an upstream or a listen address. */
export function endpointText(e: Endpoint): string {
  return e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}
