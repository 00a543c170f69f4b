// The catalog's data model: plain JSON-serialisable records, Docker's vocabulary.
// Objects reference each other by name (names are unique per kind and never renamed).

export type EndpointMode = 'vip' | 'dnsrr';
/** How a VIP picks a backend for a new connection: IPVS's schedulers of the same names. */
export type Scheduler = 'rr' | 'wrr' | 'lc' | 'sh';
export const SCHEDULERS: readonly Scheduler[] = ['rr', 'wrr', 'lc', 'sh'];
/** A task's share of new connections under wrr/sh (and lc's weighting); 0 drains it. */
export const MAX_WEIGHT = 10_000;
export const MAX_STICKY_SECONDS = 86_400;
/** Host ports a published port without a number is taken from (Docker's default range). */
export const DEFAULT_PUBLISH_RANGE = { lo: 30000, hi: 32767 } as const;
export type Protocol = 'tcp' | 'udp';
export type Health = 'unknown' | 'healthy' | 'unhealthy';

export interface Network {
  id: string;
  name: string;
  subnet: string; // canonical CIDR
  gateway: string; // reserved, never allocated
  attachable: boolean;
  /**
   * The ingress network (at most one): published-port traffic reaches tasks on their address on it,
   * and nothing on it is answered in DNS (Docker's routing-mesh network). Services on it get no VIP.
   */
  ingress?: boolean;
  createdAt: string;
  /** IPAM next-fit cursor: offset of the last allocated address, so freed addresses are reused last. */
  ipamCursor: string; // bigint as decimal text (JSON has no bigint)
  /**
   * Dual stack: the network's IPv6 subnet beside `subnet`, which is then its IPv4 one (a network of
   * one family keeps it in `subnet`). VIPs and task addresses come from both (`vip6`, `addresses6`).
   */
  subnet6?: string;
  gateway6?: string;
  ipamCursor6?: string;
}

export interface PortSpec {
  name?: string; // for SRV: _name._proto.service
  protocol: Protocol;
  target: number; // port on the tasks
  published?: number; // port on every host address (routing mesh); vip mode only
}

/** A port as a request gives it: "auto" asks for a published port from the publish range. */
export type PortRequest = Omit<PortSpec, 'published'> & { published?: number | 'auto' };

export interface HealthCheckSpec {
  type: 'tcp' | 'http';
  port: number;
  path?: string; // http only
  intervalMs: number;
  timeoutMs: number;
  rise: number; // consecutive successes to become healthy
  fall: number; // consecutive failures to become unhealthy
}

export interface ServiceAttachment {
  network: string;
  vip?: string; // vip mode only: allocated from the network's subnet
  /** On a dual-stack network: its IPv6 VIP, from the network's `subnet6`. */
  vip6?: string;
  /** Network aliases: more names for the service, answered only to clients on this network. */
  aliases?: string[];
}

export interface Service {
  id: string;
  name: string;
  aliases: string[];
  endpointMode: EndpointMode;
  attachments: ServiceAttachment[];
  ports: PortSpec[];
  /** Stable firewall mark for the IPVS dataplane; never reused while the service exists. */
  fwmark: number;
  healthCheck?: HealthCheckSpec;
  /** Scheduler of its VIPs and published ports; absent = rr. */
  lb?: Scheduler;
  /** Seconds a client keeps its backend after its last connection (IPVS persistence); absent = none. */
  sticky?: number;
  createdAt: string;
}

export interface Task {
  id: string;
  name: string; // svc.slot.id unless given
  service: string;
  slot: number;
  addresses: Record<string, string>; // network name -> IP
  /** Network name -> its IPv6 address, on dual-stack networks (from `subnet6`). */
  addresses6?: Record<string, string>;
  health: Health;
  /** Relative share of new connections; absent = 1, 0 = drained (established flows stay). */
  weight?: number;
  /** The host that registered it (its node name): on a shared store, only that host probes it. */
  node?: string;
  /** Its container's addresses on no network of ours (Docker's bridge, docker_gwbridge): a DNS query from one is its. */
  clientAddresses?: string[];
  createdAt: string;
}

export interface Container {
  id: string;
  name: string;
  aliases: string[];
  addresses: Record<string, string>; // network name -> IP
  /** Network name -> its IPv6 address, on dual-stack networks (from `subnet6`). */
  addresses6?: Record<string, string>;
  /** Network aliases (Docker's --network-alias): names answered only to clients on that network. */
  networkAliases?: Record<string, string[]>;
  /** Its addresses on no network of ours (Docker's bridge, docker_gwbridge): a DNS query from one is its. */
  clientAddresses?: string[];
  createdAt: string;
}

export interface CatalogState {
  version: 1;
  revision: number;
  nextFwmark: number;
  networks: Record<string, Network>;
  services: Record<string, Service>;
  tasks: Record<string, Task>; // by id
  containers: Record<string, Container>;
}

export const FWMARK_BASE = 0x100;

/**
 * The key of a network's IPv6 pool in the per-network address indexes (a dual-stack network has two
 * pools; each is counted apart, so one cannot look exhausted by the other's addresses). Network
 * names have no "#".
 */
export const pool6 = (network: string): string => `${network}#6`;

/** The subnets of a network: one, or two (IPv4 then IPv6) on a dual-stack network. */
export function subnetsOf(n: Pick<Network, 'subnet' | 'subnet6'>): string[] {
  return n.subnet6 ? [n.subnet, n.subnet6] : [n.subnet];
}

/** A service's VIPs on one attachment: none (dnsrr, ingress), one, or one per family (dual stack). */
export function vipsOf(a: ServiceAttachment): string[] {
  return a.vip ? (a.vip6 ? [a.vip, a.vip6] : [a.vip]) : a.vip6 ? [a.vip6] : [];
}

/** A task's or container's addresses on one network: one, or one per family on a dual-stack network. */
export function addressesOn(o: { addresses: Record<string, string>; addresses6?: Record<string, string> }, network: string): string[] {
  const a = Object.hasOwn(o.addresses, network) ? o.addresses[network] : undefined;
  const b = o.addresses6 && Object.hasOwn(o.addresses6, network) ? o.addresses6[network] : undefined;
  return a === undefined ? (b === undefined ? [] : [b]) : b === undefined ? [a] : [a, b];
}

/** Every address of a task or container, both families. */
export function allAddresses(o: { addresses: Record<string, string>; addresses6?: Record<string, string> }): string[] {
  const out = Object.values(o.addresses);
  if (o.addresses6) out.push(...Object.values(o.addresses6));
  return out;
}

export function emptyState(): CatalogState {
  return { version: 1, revision: 0, nextFwmark: FWMARK_BASE, networks: {}, services: {}, tasks: {}, containers: {} };
}

/** A task counts as a live endpoint unless a health check has declared it unhealthy. */
export function isTaskServing(t: Task): boolean {
  return t.health !== 'unhealthy';
}

/**
 * The tasks that receive traffic: the serving ones, or, when a health check has failed every
 * one of them, all of them (fail open, like Envoy's panic threshold): a check that is wrong
 * for every replica at once is likelier than every replica being dead, and answering
 * nothing turns a bad check into an outage.
 */
export function servingTasks<T extends Task>(tasks: T[]): T[] {
  const serving = tasks.filter(isTaskServing);
  return serving.length > 0 ? serving : tasks;
}
