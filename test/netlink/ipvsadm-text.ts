// Renders our decoded IPVS state the way `ipvsadm -Ln` and `ipvsadm -S -n`
// print it, so tests can compare against the real tool's output line by line.
import type { Dest, Service } from '../../src/balancer/netlink/ipvs-codec.js';
import { isFwmarkKey } from '../../src/balancer/netlink/ipvs-codec.js';
import { formatAddress, parseAddress, prefixToMask4 } from '../../src/balancer/netlink/addr.js';

const FWD_LN: Record<Dest['forward'], string> = { masq: 'Masq', local: 'Local', tunnel: 'Tunnel', dr: 'Route', bypass: 'Bypass' };
const FWD_S: Record<Dest['forward'], string> = { masq: '-m', local: '-g', tunnel: '-i', dr: '-g', bypass: '-g' };

const hostPort = (a: string, p: number): string => (a.includes(':') ? `[${a}]:${p}` : `${a}:${p}`);
const mask4 = (prefix: number): string => {
  const m = prefixToMask4(prefix);
  return formatAddress(4, Uint8Array.of(m >>> 24, (m >>> 16) & 0xff, (m >>> 8) & 0xff, m & 0xff));
};

function svcHead(s: Service): { ln: string; save: string } {
  const k = s.key;
  if (isFwmarkKey(k)) {
    return { ln: `FWM  ${k.fwmark} ${s.family === 6 ? 'IPv6 ' : ''}${s.scheduler}`, save: `-f ${k.fwmark}${s.family === 6 ? ' -6' : ''}` };
  }
  const p = k.protocol.toUpperCase();
  const opt = k.protocol === 'tcp' ? '-t' : k.protocol === 'udp' ? '-u' : '--sctp-service';
  return { ln: `${p}  ${hostPort(k.address, k.port)} ${s.scheduler}`, save: `${opt} ${hostPort(k.address, k.port)}` };
}

function persistText(s: Service): string {
  if (!s.persistence) return '';
  let t = ` persistent ${s.persistence.timeout}`;
  if (s.family === 4 && s.persistence.netmask !== 32) t += ` mask ${mask4(s.persistence.netmask)}`;
  if (s.family === 6 && s.persistence.netmask !== 128) t += ` mask ${s.persistence.netmask}`;
  return t;
}

/** Body lines of `ipvsadm -Ln` (after the 3 header lines), whitespace-collapsed. */
export function renderLn(state: { service: Service; dests: Dest[] }[]): string[] {
  const out: string[] = [];
  for (const { service, dests } of state) {
    out.push(`${svcHead(service).ln}${persistText(service)}`);
    for (const d of dests) {
      out.push(`-> ${hostPort(d.address, d.port)} ${FWD_LN[d.forward]} ${d.weight} ${d.activeConns} ${d.inactiveConns}`);
    }
  }
  return out;
}

/** Lines of `ipvsadm -S -n`. */
export function renderSave(state: { service: Service; dests: Dest[] }[]): string[] {
  const out: string[] = [];
  for (const { service, dests } of state) {
    const h = svcHead(service);
    let line = `-A ${h.save} -s ${service.scheduler}`;
    if (service.persistence) {
      line += ` -p ${service.persistence.timeout}`;
      if (service.family === 4 && service.persistence.netmask !== 32) line += ` -M ${mask4(service.persistence.netmask)}`;
      if (service.family === 6 && service.persistence.netmask !== 128) line += ` -M ${service.persistence.netmask}`;
    }
    out.push(line);
    for (const d of dests) out.push(`-a ${h.save} -r ${hostPort(d.address, d.port)} ${FWD_S[d.forward]} -w ${d.weight}`);
  }
  return out;
}

/** ipvsadm output normalized the same way: header lines dropped, runs of spaces collapsed. */
export function normalizeIpvsadm(lines: string[]): string[] {
  return lines
    .map((l) => l.trim().replace(/\s+/g, ' ').replace(/^(TCP|UDP|FWM|SCTP) /, '$1  '))
    .filter((l) => l && !l.startsWith('IP Virtual Server') && !l.startsWith('Prot ') && !l.startsWith('-> RemoteAddress'));
}

const PROTO: Record<string, number> = { tcp: 6, udp: 17, sctp: 132 };
const cmpAddr = (a: string, b: string): number => Buffer.compare(parseAddress(a).bytes, parseAddress(b).bytes);

/** ipvsadm lists services by (fwmark, family, protocol, address, port) and dests by (family, address, port). */
export function sortLikeIpvsadm(state: { service: Service; dests: Dest[] }[]): { service: Service; dests: Dest[] }[] {
  const key = (s: Service): [number, number, number, string, number] =>
    isFwmarkKey(s.key)
      ? [s.key.fwmark, s.family, 0, '::', 0]
      : [0, s.family, PROTO[s.key.protocol] ?? 0, s.key.address, s.key.port];
  return [...state]
    .sort((x, y) => {
      const a = key(x.service);
      const b = key(y.service);
      return a[0] - b[0] || a[1] - b[1] || a[2] - b[2] || cmpAddr(a[3], b[3]) || a[4] - b[4];
    })
    .map(({ service, dests }) => ({
      service,
      dests: [...dests].sort((a, b) => a.family - b.family || cmpAddr(a.address, b.address) || a.port - b.port),
    }));
}
