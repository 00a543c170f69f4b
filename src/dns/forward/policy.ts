// Which upstream to try first (CoreDNS forward's policies): healthy upstreams in policy order,
// then the unhealthy ones as a last resort, so a query still has a chance when all look down.
export type PolicyName = 'random' | 'round_robin' | 'sequential';

export class Policy {
  private next = 0;
  constructor(readonly name: PolicyName = 'random') {}

  order<T extends { readonly healthy: boolean }>(list: readonly T[]): T[] {
    let base: T[];
    if (this.name === 'random') {
      base = [...list];
      for (let i = base.length - 1; i > 0; i--) {
        const j = Math.floor(Math.random() * (i + 1));
        [base[i], base[j]] = [base[j]!, base[i]!];
      }
    } else if (this.name === 'round_robin') {
      const k = list.length === 0 ? 0 : this.next++ % list.length;
      base = [...list.slice(k), ...list.slice(0, k)];
    } else base = [...list];
    return [...base.filter((u) => u.healthy), ...base.filter((u) => !u.healthy)];
  }
}
