// A catalog of N vip services × T tasks in today's on-disk format (catalog.json, version 1:
// the whole state as one JSON document), built directly, without the API: the input of the
// migration phase, and a fast way to preload a data dir.
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type CatalogState, FWMARK_BASE, emptyState } from '../../src/catalog/model.js';

/** One /8 holds 16 M addresses: room for 10,000 × 10 and every write the bench adds. */
export const NETWORK = 'bench';
export const SUBNET = '10.0.0.0/8';
export const serviceName = (i: number): string => `svc-${i}`;

const ip = (offset: number): string => `10.${(offset >> 16) & 255}.${(offset >> 8) & 255}.${offset & 255}`;
const id = (): string => randomBytes(6).toString('hex');

/** The state today's Catalog would hold after creating the network, then each service and its tasks. */
export function generateCatalog(services: number, tasksPer: number): CatalogState {
  const s = emptyState();
  const createdAt = new Date().toISOString();
  // Offsets 0 (network) and 1 (gateway) are reserved; allocation is next-fit from the cursor.
  let offset = 1;
  for (let i = 0; i < services; i++) {
    const name = serviceName(i);
    s.services[name] = {
      id: id(),
      name,
      aliases: [],
      endpointMode: 'vip',
      attachments: [{ network: NETWORK, vip: ip(++offset) }],
      ports: [{ name: 'http', protocol: 'tcp', target: 80 }],
      fwmark: FWMARK_BASE + i,
      createdAt,
    };
    for (let slot = 1; slot <= tasksPer; slot++) {
      const tid = id();
      s.tasks[tid] = { id: tid, name: `${name}.${slot}.${tid}`, service: name, slot, addresses: { [NETWORK]: ip(++offset) }, health: 'unknown', createdAt };
    }
  }
  s.networks[NETWORK] = { id: id(), name: NETWORK, subnet: SUBNET, gateway: '10.0.0.1', attachable: false, createdAt, ipamCursor: String(offset) };
  s.nextFwmark = FWMARK_BASE + services;
  // Today's store counts one revision per commit: network, services, tasks.
  s.revision = 1 + services + services * tasksPer;
  return s;
}

/** Writes the catalog where the file store of `dataDir` reads it. */
export function writeCatalogFile(dataDir: string, state: CatalogState): string {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const path = join(dataDir, 'catalog.json');
  writeFileSync(path, JSON.stringify(state), { mode: 0o600 });
  return path;
}
