// In-memory stand-ins for the IPVS driver's kernel: an IPVS table behind the IpvsApi, and iptables-save /
// iptables-restore / ip that keep rules and addresses in maps. Enough fidelity for host tests of the
// driver's ordering, ownership and adoption; the real kernel is exercised in test/vm.
import type { Runner } from '../../src/balancer/drivers/exec.js';
import type { IpvsApi } from '../../src/balancer/drivers/ipvs.js';
import { splitArgs } from '../../src/balancer/iptables/save.js';
import { NetlinkError } from '../../src/balancer/netlink/errors.js';
import { isFwmarkKey, serviceId, type Dest, type Service, type ServiceKey } from '../../src/balancer/netlink/ipvs-codec.js';
import type { IpvsOp, OpResult } from '../../src/balancer/netlink/ipvs.js';

const EEXIST = 17;
const ESRCH = 3;
const ENOENT = 2;

export class FakeIpvs implements IpvsApi {
  readonly services = new Map<string, { service: Service; dests: Map<string, Dest> }>();
  readonly log: IpvsOp[] = [];

  private id(k: ServiceKey): string {
    return serviceId(isFwmarkKey(k) ? { fwmark: k.fwmark, family: k.family ?? 4 } : k);
  }
  async listServices(): Promise<Service[]> {
    return [...this.services.values()].map((s) => s.service);
  }
  async getService(k: ServiceKey): Promise<Service | undefined> {
    return this.services.get(this.id(k))?.service;
  }
  async listDests(k: ServiceKey): Promise<Dest[]> {
    const s = this.services.get(this.id(k));
    if (!s) throw new NetlinkError(ESRCH, { op: 'GET_DEST' });
    return [...s.dests.values()];
  }
  close(): void {}
  async batch(ops: readonly IpvsOp[]): Promise<OpResult[]> {
    return ops.map((o) => {
      this.log.push(o);
      try {
        this.apply(o);
        return { ok: true };
      } catch (e) {
        return { ok: false, error: e as NetlinkError };
      }
    });
  }
  private apply(o: IpvsOp): void {
    const id = this.id(o.service);
    const s = this.services.get(id);
    switch (o.op) {
      case 'addService': {
        if (s) throw new NetlinkError(EEXIST);
        const k = o.service;
        const family = isFwmarkKey(k) ? (k.family ?? 4) : k.address.includes(':') ? 6 : 4;
        const key: ServiceKey = isFwmarkKey(k) ? { fwmark: k.fwmark, family } : { protocol: k.protocol, address: k.address, port: k.port };
        this.services.set(id, { service: this.svc(key, family, o.service), dests: new Map() });
        return;
      }
      case 'updateService':
        if (!s) throw new NetlinkError(ESRCH);
        s.service = this.svc(s.service.key, s.service.family, o.service);
        return;
      case 'delService':
        if (!s) throw new NetlinkError(ESRCH);
        this.services.delete(id);
        return;
      default: {
        if (!s) throw new NetlinkError(ESRCH);
        const dk = `${o.dest.address}|${o.dest.port}`;
        const cur = s.dests.get(dk);
        if (o.op === 'delDest') {
          if (!cur) throw new NetlinkError(ENOENT);
          s.dests.delete(dk);
        } else if (o.op === 'addDest') {
          if (cur) throw new NetlinkError(EEXIST);
          s.dests.set(dk, { ...o.dest, upperThreshold: 0, lowerThreshold: 0, family: o.dest.address.includes(':') ? 6 : 4, activeConns: 0, inactiveConns: 0, persistentConns: 0 });
        } else {
          if (!cur) throw new NetlinkError(ENOENT);
          s.dests.set(dk, { ...cur, ...o.dest });
        }
      }
    }
  }
  private svc(key: ServiceKey, family: 4 | 6, o: { scheduler: string; persistence?: { timeout: number; netmask?: number } }): Service {
    return {
      key,
      family,
      scheduler: o.scheduler,
      flags: o.persistence ? 1 : 0,
      ...(o.persistence ? { persistence: { timeout: o.persistence.timeout, netmask: o.persistence.netmask ?? 32 } } : {}),
      netmask: 32,
      timeout: o.persistence?.timeout ?? 0,
    };
  }
  /** Sets connection counters (what traffic would do). */
  conns(fwmark: number, ip: string, port: number, active: number, inactive = 0): void {
    const d = this.services.get(serviceId({ fwmark, family: 4 }))?.dests.get(`${ip}|${port}`);
    if (!d) throw new Error('no such dest');
    d.activeConns = active;
    d.inactiveConns = inactive;
  }
}

const BUILTIN: Record<string, string[]> = { mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'], nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'] };

/** iptables for one family: restore scripts are applied all-or-nothing; save prints like iptables-save. */
export class FakeIptables {
  tables = new Map<string, Map<string, string[][]>>();
  readonly scripts: string[] = [];

  private table(t: string): Map<string, string[][]> {
    let tb = this.tables.get(t);
    if (!tb) this.tables.set(t, (tb = new Map((BUILTIN[t] ?? []).map((c) => [c, []]))));
    return tb;
  }
  /** Runs `cmd` (iptables -t T -A …-like args given as one rule line) directly, outside any transaction. */
  exec(table: string, line: string): void {
    this.restoreText(`*${table}\n${line}\nCOMMIT\n`);
  }
  restoreText(text: string): void {
    const snapshot = new Map([...this.tables].map(([t, m]) => [t, new Map([...m].map(([c, r]) => [c, r.map((x) => [...x])]))]));
    try {
      let tb: Map<string, string[][]> | undefined;
      for (const line of text.split('\n')) {
        if (line.startsWith('*')) tb = this.table(line.slice(1));
        else if (line.startsWith(':')) tb!.set(line.slice(1).split(' ')[0]!, []);
        else if (line === 'COMMIT' || line === '') continue;
        else {
          const [op, chain, ...args] = splitArgs(line);
          const rules = tb!.get(chain!);
          if (!rules) throw new Error(`no chain ${chain}`);
          const same = (r: string[]) => r.join('\0') === args.join('\0');
          if (op === '-A') rules.push(args);
          else if (op === '-I') rules.unshift(args);
          else if (op === '-D') {
            const i = rules.findIndex(same);
            if (i < 0) throw new Error(`-D ${chain}: no such rule`);
            rules.splice(i, 1);
          } else if (op === '-F') rules.length = 0;
          else if (op === '-X') tb!.delete(chain!);
          else throw new Error(`unknown op ${op}`);
        }
      }
    } catch (e) {
      this.tables = snapshot;
      throw e;
    }
  }
  save(table: string): string {
    const tb = this.table(table);
    const q = (a: string) => (/^[A-Za-z0-9_.:/!+=,@%^-]+$/.test(a) && !a.includes(':') ? a : `"${a}"`);
    let out = `# Generated by fake\n*${table}\n`;
    for (const c of tb.keys()) out += `:${c} ${BUILTIN[table]?.includes(c) ? 'ACCEPT' : '-'} [0:0]\n`;
    for (const [c, rules] of tb) for (const r of rules) out += `-A ${c} ${r.map(q).join(' ')}\n`;
    return `${out}COMMIT\n`;
  }
  runner(kind: 'save' | 'restore'): Runner {
    return async (args, input) => {
      this.scripts.push(kind === 'restore' ? (input ?? '') : '');
      if (kind === 'save') return { code: 0, stdout: this.save(args[1]!), stderr: '' };
      try {
        this.restoreText(input ?? '');
        return { code: 0, stdout: '', stderr: '' };
      } catch (e) {
        return { code: 1, stdout: '', stderr: (e as Error).message };
      }
    };
  }
}

export class FakeIp {
  links = new Map<string, Set<string>>();
  runner(): Runner {
    return async (args, input) => {
      const a = args.join(' ');
      let m: RegExpMatchArray | null;
      if ((m = a.match(/^-j address show dev (\S+)$/))) {
        const l = this.links.get(m[1]!);
        if (!l) return { code: 1, stdout: '', stderr: `Device "${m[1]}" does not exist.` };
        return { code: 0, stdout: JSON.stringify([{ ifname: m[1], addr_info: [...l].map((x) => ({ family: 'inet', local: x, scope: 'global' })) }]), stderr: '' };
      }
      // No IPv6 route here: every v6 VIP counts as routed, so no proxy NDP entry is ever wanted.
      if (a === '-6 -j neigh show proxy' || a === '-6 -j route show') return { code: 0, stdout: '[]', stderr: '' };
      if ((m = a.match(/^link add (\S+) type dummy$/))) {
        this.links.set(m[1]!, new Set());
        return { code: 0, stdout: '', stderr: '' };
      }
      if (/^link set \S+ up$/.test(a)) return { code: 0, stdout: '', stderr: '' };
      if ((m = a.match(/^link del (\S+)$/))) {
        const had = this.links.delete(m[1]!);
        return had ? { code: 0, stdout: '', stderr: '' } : { code: 1, stdout: '', stderr: 'Cannot find device' };
      }
      if (a === '-batch -') {
        for (const line of (input ?? '').split('\n').filter(Boolean)) {
          const [, op, pfx, , dev] = line.split(' ');
          const set = this.links.get(dev!);
          if (!set) return { code: 1, stdout: '', stderr: 'Cannot find device' };
          const ip = pfx!.split('/')[0]!;
          if (op === 'add') set.add(ip);
          else set.delete(ip);
        }
        return { code: 0, stdout: '', stderr: '' };
      }
      return { code: 1, stdout: '', stderr: `fake ip: unsupported ${a}` };
    };
  }
}
