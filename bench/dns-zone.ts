// Writes the same N-name zone for each server in the DNS benchmark: a vipdns catalog.json
// (N vip services, one VIP each), a dnsmasq hosts file, an unbound local-data include, and the
// dnsperf query file. Usage: node dist/bench/dns-zone.js OUTDIR [N]
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type CatalogState, emptyState } from '../src/catalog/model.js';

const out = process.argv[2];
const n = Number(process.argv[3] ?? 10_000);
if (!out) throw new Error('usage: dns-zone OUTDIR [N]');
mkdirSync(join(out, 'vipdns-data'), { recursive: true });

const s: CatalogState = emptyState();
s.networks.bench = { id: 'bench', name: 'bench', subnet: '10.64.0.0/16', gateway: '10.64.0.1', attachable: false, createdAt: new Date(0).toISOString(), ipamCursor: String(n + 2) };
const hosts: string[] = [];
const local: string[] = [];
const queries: string[] = [];
for (let i = 0; i < n; i++) {
  const ip = `10.64.${((i + 2) >> 8) & 255}.${(i + 2) & 255}`;
  const name = `s${i}`;
  s.services[name] = { id: `id${i}`, name, aliases: [], endpointMode: 'vip', attachments: [{ network: 'bench', vip: ip }], ports: [], fwmark: 256 + i, createdAt: new Date(0).toISOString() };
  const fq = `${name}.vipdns.internal`;
  hosts.push(`${ip} ${fq}`);
  local.push(`local-data: "${fq}. 60 IN A ${ip}"`);
  queries.push(`${fq} A`);
}
s.nextFwmark = 256 + n;
s.revision = 1;
writeFileSync(join(out, 'vipdns-data', 'catalog.json'), JSON.stringify(s));
writeFileSync(join(out, 'hosts'), `${hosts.join('\n')}\n`);
writeFileSync(join(out, 'unbound-local.conf'), `local-zone: "vipdns.internal." static\n${local.join('\n')}\n`);
writeFileSync(join(out, 'queries'), `${queries.join('\n')}\n`);
console.log(`zone: ${n} names in ${out}`);
