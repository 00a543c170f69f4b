// The balancer's vocabulary, shared by the planner, the reconciler and every dataplane driver.
// Nothing here does I/O; drivers translate these records into kernel objects.
import type { Protocol, Scheduler } from '../catalog/model.js';
import type { Family } from '../net/ip.js';

export type { Protocol, Family, Scheduler };

export interface Backend {
  task: string; // task id, for logs and drain bookkeeping
  ip: string; // canonical text
  port: number;
  /** Relative share of new connections; 0 = never chosen for new ones (draining). */
  weight: number;
  /** True while a departed task is kept for its established flows. */
  draining: boolean;
  /** Epoch ms at which a draining backend is finally removed (reconciler bookkeeping; drivers ignore it). */
  drainUntil?: number;
}

/**
 * One VIP:port:protocol on one network. The VIP listens on the target port (Docker semantics), so
 * backends use the same port. IPVS maps this 1:1 to a TCP/UDP virtual service, or groups all ports of a
 * (fwmark, family) into one fwmark service.
 */
export interface VirtualService {
  key: string; // `${network}/${service}/${protocol}/${port}`, stable across restarts
  service: string;
  network: string;
  /** The service's catalog fwmark: stable, unique per service, shared by its ports and networks. */
  fwmark: number;
  family: Family;
  vip: string;
  protocol: Protocol;
  port: number;
  scheduler: Scheduler;
  /** Client affinity in seconds (IPVS persistence); absent or 0 = none. */
  persistence?: number;
  backends: Backend[]; // sorted by ip then port
}

/** A published port: every local (non-loopback) host address, DNAT to the service's tasks' target port. */
export interface PublishedPort {
  key: string; // `${protocol}/${port}`
  service: string;
  fwmark: number;
  protocol: Protocol;
  port: number; // published port on the host
  targetPort: number;
  scheduler: Scheduler;
  /** Client affinity in seconds; absent or 0 = none. */
  persistence?: number;
  backends: Backend[]; // both families; drivers pick the family matching the packet
}

export interface DesiredState {
  services: VirtualService[]; // sorted by key
  published: PublishedPort[]; // sorted by key
}

/** What a driver programs as one unit: it is written, compared and removed as a whole. */
export type Unit = { kind: 'vip'; vip: VirtualService } | { kind: 'published'; published: PublishedPort };

/** A unit as read back from the kernel. `native` is the driver's own record (element keys, handles…). */
export interface ObservedUnit {
  id: string;
  fingerprint: string; // '' when drifted beyond recognition: always rewritten
  native?: unknown;
}

export interface ObservedState {
  /** The driver's fixed scaffolding (tables, hooks, maps): 'ok', or 'missing'/'drifted' to (re)create it. */
  base: 'ok' | 'missing' | 'drifted';
  units: Map<string, ObservedUnit>; // by driver unit id
}

export interface Diff {
  base: boolean; // (re)write the scaffolding
  add: Unit[];
  change: { unit: Unit; observed: ObservedUnit }[];
  remove: ObservedUnit[];
  unchanged: number;
}

export interface ProbeResult {
  supported: boolean;
  reason?: string; // why not, in one line, for the log
}

export interface ApplyResult {
  ops: number; // kernel operations sent (nft commands, netlink messages)
}

export interface CleanupResult {
  removed: boolean; // false when there was nothing of ours
}

export type DriverName = 'nftables' | 'ipvs' | 'none';

/**
 * A dataplane. Drivers own only their own kernel objects (table, chains, fwmark range) and apply diffs;
 * they keep no model of the catalog. `expect` is pure, so the diff is computed outside.
 */
export interface DataplaneDriver {
  readonly name: DriverName;
  /**
   * What this dataplane cannot program, by service setting: a reason per unsupported scheduler, and
   * for sticky sessions. The API refuses such a service with the reason instead of planning it wrong.
   */
  readonly limits?: DriverLimits;
  probe(): Promise<ProbeResult>;
  /**
   * Pure: what observe() would report for this unit once it is programmed — its kernel-side id (nft chain
   * name, IPVS service key), a fingerprint that changes exactly when what the driver programs changes, and
   * the driver's native record. The reconciler caches these after each apply, so a change is diffed without
   * reading the kernel back.
   */
  expect(unit: Unit): ObservedUnit;
  observe(): Promise<ObservedState>;
  /** One atomic transaction where the kernel allows it. */
  apply(diff: Diff): Promise<ApplyResult>;
  /** Removes everything this driver made, and nothing else. */
  cleanup(): Promise<CleanupResult>;
  /** Reads these units back from the kernel, with counters where the kernel keeps them. */
  inspect?(units: Unit[]): Promise<KernelUnit[]>;
}

/** A unit as the kernel holds it now, for `vipdns dataplane show` (read, never inferred from the plan). */
export interface KernelUnit {
  id: string;
  present: boolean;
  /** The kernel's own words for how it picks: IPVS's scheduler, or nftables' pick (counter/hash). */
  scheduler?: string;
  persistence?: number;
  /** Where it lives: "FWM 0x40010100" (IPVS), "goto c-v4-tcp-k3" (nftables). */
  where?: string;
  /** exact: backend weights are the planned ones (IPVS); slots: in proportion, weight-0 ones absent (nftables). */
  weights: 'exact' | 'slots';
  backends: KernelBackend[];
}

export interface KernelBackend {
  ip: string;
  port: number;
  /** IPVS: the destination's weight; nftables: its slots in the unit's map. */
  weight: number;
  activeConns?: number;
  inactiveConns?: number;
}

export interface DriverLimits {
  schedulers?: Partial<Record<Scheduler, string>>;
  sticky?: string;
}

export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug?(obj: object, msg?: string): void;
}
