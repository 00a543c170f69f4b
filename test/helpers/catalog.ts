// Small CatalogState builder for balancer tests and the bench.
import type { CatalogState, Health, PortSpec, Service, Task } from '../../src/catalog/model.js';
import { emptyState } from '../../src/catalog/model.js';

export interface SvcSpec {
  name: string;
  vips: Record<string, string>; // network -> VIP
  ports?: PortSpec[];
  endpointMode?: 'vip' | 'dnsrr';
  fwmark?: number;
  lb?: Service['lb'];
  sticky?: number;
}

export class CatalogBuilder {
  readonly state: CatalogState = emptyState();
  private seq = 0;

  network(name: string, subnet: string): this {
    this.state.networks[name] = { id: `n-${name}`, name, subnet, gateway: '', attachable: true, createdAt: '', ipamCursor: '0' };
    return this;
  }

  service(s: SvcSpec): this {
    const svc: Service = {
      id: `s-${s.name}`,
      name: s.name,
      aliases: [],
      endpointMode: s.endpointMode ?? 'vip',
      attachments: Object.entries(s.vips).map(([network, vip]) => ({ network, vip })),
      ports: s.ports ?? [{ protocol: 'tcp', target: 80 }],
      fwmark: s.fwmark ?? this.state.nextFwmark++,
      ...(s.lb ? { lb: s.lb } : {}),
      ...(s.sticky ? { sticky: s.sticky } : {}),
      createdAt: '',
    };
    this.state.services[s.name] = svc;
    return this;
  }

  task(service: string, addresses: Record<string, string>, health: Health = 'healthy', id?: string): this {
    const n = ++this.seq;
    const t: Task = { id: id ?? `t${n}`, name: `${service}.${n}`, service, slot: n, addresses, health, createdAt: '' };
    this.state.tasks[t.id] = t;
    return this;
  }

  removeTask(id: string): this {
    delete this.state.tasks[id];
    return this;
  }

  /** A deep copy with a bumped revision, as the catalog would publish. */
  snapshot(): CatalogState {
    const s = structuredClone(this.state);
    s.revision = ++this.state.revision;
    return s;
  }
}
