// Dataplanes inside containers' own network namespaces ("sandboxes"), for traffic that never enters
// the host's: a container on a swarm overlay reaches a VIP of that overlay through the overlay's own
// bridge and VXLAN, so the host's rules never see it. Docker balances such traffic with IPVS in each
// container's namespace; where the kernel has no IPVS that fails ("Native loadbalancing will not
// work"), and vipdns programs the same in each sandbox with its own reconciler: one Balancer per
// sandbox, planning only the VIPs of the sandbox's networks, no published ports, nothing on lo.
// Sandboxes on the same networks share one plan per catalog state (SharedPlans) and, through the
// driver factory, what its units render to: a container costs its kernel writes and a few maps,
// not a copy of the plan.
import type { CatalogState } from '../catalog/model.js';
import { SharedPlans } from './plan.js';
import { Balancer, type BalancerOptions, type ChangeHint } from './reconcile.js';
import type { DataplaneDriver, Logger } from './types.js';

export interface Sandbox {
  /** The container's ID. */
  id: string;
  /** Its network namespace, as a path (/proc/PID/ns/net). */
  netns: string;
  /** The catalog networks it is on whose VIPs it must reach from inside (sorted). */
  networks: string[];
}

export interface SandboxesOptions {
  /** A driver programming the namespace at this path. */
  driverFor: (netns: string) => DataplaneDriver;
  logger: Logger;
  /** Reconciler settings for every sandbox (tests shorten the intervals). */
  balancer?: Omit<BalancerOptions, 'driver' | 'logger' | 'plan' | 'plans'>;
}

interface Running {
  sandbox: Sandbox;
  balancer: Balancer;
}

const sameSandbox = (a: Sandbox, b: Sandbox): boolean => a.netns === b.netns && a.networks.join('\n') === b.networks.join('\n');

export class Sandboxes {
  private readonly running = new Map<string, Running>();
  /** One shared plan per set of networks. */
  private readonly plans = new Map<string, SharedPlans>();
  private state: CatalogState | undefined;
  private stopped = false;

  constructor(private readonly o: SandboxesOptions) {}

  /**
   * The sandboxes that should be programmed now (from the Docker source's latest pass). New ones start
   * (adopting what the namespace holds, then syncing); gone ones stop — their namespace went with the
   * container, so there is nothing to clean. One whose namespace or networks changed is restarted.
   */
  async set(list: Sandbox[]): Promise<void> {
    if (this.stopped) return;
    const want = new Map(list.map((s) => [s.id, s]));
    const stops: Promise<void>[] = [];
    for (const [id, r] of this.running) {
      const w = want.get(id);
      if (w && sameSandbox(w, r.sandbox)) continue;
      this.running.delete(id);
      stops.push(r.balancer.stop());
    }
    await Promise.all(stops);
    // Shared plans of network sets no sandbox is on any more.
    const used = new Set(list.map((s) => s.networks.join('\n')));
    for (const k of this.plans.keys()) if (!used.has(k)) this.plans.delete(k);
    const starts: Promise<void>[] = [];
    for (const s of want.values()) {
      if (this.running.has(s.id) || s.networks.length === 0) continue;
      const balancer = new Balancer({
        ...this.o.balancer,
        driver: this.o.driverFor(s.netns),
        logger: this.o.logger,
        plans: this.plansFor(s.networks),
      });
      this.running.set(s.id, { sandbox: s, balancer });
      if (this.state) balancer.update(this.state);
      this.o.logger.info({ container: s.id.slice(0, 12), networks: s.networks }, 'dataplane: programming the VIPs of a container namespace');
      starts.push(balancer.start().catch(() => undefined)); // a failed start retries on its own
    }
    await Promise.all(starts);
  }

  /** A committed catalog change, for every sandbox (each re-plans only what it touches, once per network set). */
  update(state: CatalogState, hint?: ChangeHint): void {
    this.state = state;
    for (const p of this.plans.values()) p.update(state, hint ? (hint.tasks ?? []) : undefined);
    for (const r of this.running.values()) r.balancer.update(state, hint);
  }

  private plansFor(networks: string[]): SharedPlans {
    const key = networks.join('\n');
    let p = this.plans.get(key);
    if (!p) this.plans.set(key, (p = new SharedPlans({ published: false, networks: new Set(networks) })));
    return p;
  }

  /** The sandbox programmed for a container, for tests and `dataplane show`. */
  balancerOf(id: string): Balancer | undefined {
    return this.running.get(id)?.balancer;
  }

  get size(): number {
    return this.running.size;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const all = [...this.running.values()];
    this.running.clear();
    await Promise.all(all.map((r) => r.balancer.stop()));
  }
}
