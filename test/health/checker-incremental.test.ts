// The health checker follows catalog changes incrementally: after every one of thousands of random
// changes (tasks added, removed, moved, readdressed; checks gained, lost, changed; networks attached
// and detached; services removed; health verdicts written back), the probes it runs are exactly what
// a full scan of the catalog would start, probes whose target did not move are not restarted, and no
// change makes it scan every task. Probes never touch the network: the probe function is a fake.
import test from 'ava';
import { EventEmitter } from 'node:events';
import { type AppliedChange, type ChangeKind, applyChange, diffStates } from '../../src/catalog/changes.js';
import { type CatalogState, type Health, type HealthCheckSpec, type Service, type Task, emptyState } from '../../src/catalog/model.js';
import { HealthChecker } from '../../src/health/checker.js';
import { Rng } from '../helpers/fuzz.js';

interface Events {
  change: [state: CatalogState, kinds: Set<ChangeKind>, change: AppliedChange];
}

/** The catalog as the checker sees it: a state, changes applied as the store delivers them, events. */
class FakeCatalog extends EventEmitter<Events> {
  readonly state: CatalogState;
  scans = 0; // full enumerations of state.tasks while a change is being delivered
  private delivering = false;

  constructor(s: CatalogState) {
    super();
    const counted = s.tasks;
    s.tasks = new Proxy(counted, {
      ownKeys: (target) => {
        if (this.delivering) this.scans++;
        return Reflect.ownKeys(target);
      },
    });
    this.state = s;
  }

  /** O(tasks of the service) in the real catalog; here a scan that does not count as the checker's. */
  tasksOf(service: string): Task[] {
    const was = this.delivering;
    this.delivering = false;
    try {
      return Object.values(this.state.tasks).filter((t) => t.service === service);
    } finally {
      this.delivering = was;
    }
  }

  /**
   * Commits `mutate` as one change. `mutate` gets shallow copies of the records and must replace an
   * object before editing it (committed objects are never mutated); only replaced, added and removed
   * objects are diffed, so a step costs little at any catalog size.
   */
  commit(mutate: (s: CatalogState) => void): void {
    const cur = this.state;
    const was = this.delivering;
    this.delivering = false;
    const next: CatalogState = { ...cur, networks: { ...cur.networks }, services: { ...cur.services }, tasks: { ...cur.tasks }, containers: { ...cur.containers } };
    mutate(next);
    next.revision = cur.revision + 1;
    const before = emptyState();
    const after = emptyState();
    for (const k of ['networks', 'services', 'tasks'] as const) {
      const a = cur[k] as Record<string, unknown>;
      const b = next[k] as Record<string, unknown>;
      for (const id of new Set([...Object.keys(a), ...Object.keys(b)])) {
        if (a[id] === b[id]) continue;
        if (id in a) (before[k] as Record<string, unknown>)[id] = a[id];
        if (id in b) (after[k] as Record<string, unknown>)[id] = b[id];
      }
    }
    this.delivering = was;
    const { kinds, applied } = applyChange(cur, diffStates(before, after), next.revision);
    cur.revision = next.revision;
    if (kinds.size === 0) return;
    this.delivering = true;
    try {
      this.emit('change', cur, kinds, applied);
    } finally {
      this.delivering = was;
    }
  }

  async setTaskHealth(id: string, health: Health): Promise<void> {
    if (!Object.hasOwn(this.state.tasks, id) || this.state.tasks[id]!.health === health) return;
    this.commit((s) => (edit(s.tasks, id).health = health));
  }
}

/** Reference: what a full scan wants, written independently of the checker. */
function expected(s: CatalogState): Map<string, { service: string; ip: string; spec: HealthCheckSpec }> {
  const out = new Map<string, { service: string; ip: string; spec: HealthCheckSpec }>();
  for (const t of Object.values(s.tasks)) {
    const svc = s.services[t.service];
    if (!svc?.healthCheck) continue;
    let ip: string | undefined;
    for (const a of svc.attachments) {
      ip = t.addresses[a.network];
      if (ip) break;
    }
    if (ip) out.set(t.id, { service: t.service, ip, spec: svc.healthCheck });
  }
  return out;
}

/** A copy of a committed object, put in its place, to edit. */
function edit<T>(rec: Record<string, T>, id: string): T {
  return (rec[id] = structuredClone(rec[id]!));
}

const NETS = ['n1', 'n2', 'n3'];
const SERVICES = Array.from({ length: 12 }, (_, i) => `s${i}`);

function randomChange(r: Rng, s: CatalogState, seq: { n: number }): void {
  const pick = <T>(xs: T[]): T | undefined => (xs.length ? xs[r.int(xs.length)] : undefined);
  const nets = (): string[] => NETS.filter(() => r.int(2) === 0);
  const check = (): HealthCheckSpec | undefined =>
    r.int(3) === 0 ? undefined : { type: r.int(2) ? 'tcp' : 'http', port: 8000 + r.int(3), intervalMs: 3_600_000, timeoutMs: 100, rise: 1 + r.int(2), fall: 1 + r.int(2), ...(r.int(2) ? { path: '/h' } : {}) };
  const addr = (net: string): string => `10.${NETS.indexOf(net)}.${r.int(4)}.${1 + r.int(250)}`;
  const services = Object.keys(s.services);
  const tasks = Object.keys(s.tasks);
  switch (r.int(12)) {
    case 0: {
      // create (or recreate) a service
      const name = pick(SERVICES)!;
      if (s.services[name]) return;
      const hc = check();
      const svc: Service = { id: name, name, aliases: [], endpointMode: r.int(2) ? 'vip' : 'dnsrr', attachments: nets().map((network) => ({ network })), ports: [], fwmark: 256, createdAt: '', ...(hc ? { healthCheck: hc } : {}) };
      s.services[name] = svc;
      return;
    }
    case 1: {
      // remove a service with its tasks (as the catalog does), or rarely leave them behind
      const name = pick(services);
      if (!name || r.int(3) !== 0) return; // rarer than the rest: it takes every task of the service
      delete s.services[name];
      if (r.int(8) !== 0) for (const id of tasks) if (s.tasks[id]?.service === name) delete s.tasks[id];
      return;
    }
    case 2: {
      // gain, lose or change a check
      const name = pick(services);
      if (!name) return;
      const svc = edit(s.services, name);
      const hc = check();
      if (hc) svc.healthCheck = hc;
      else delete svc.healthCheck;
      return;
    }
    case 3: {
      // attach, detach or reorder networks: moves the probe address
      const name = pick(services);
      if (!name) return;
      const svc = edit(s.services, name);
      const k = r.int(3);
      if (k === 0) svc.attachments = nets().map((network) => ({ network }));
      else if (k === 1) svc.attachments.reverse();
      else svc.attachments.pop();
      return;
    }
    case 4:
    case 5:
    case 6: {
      if (tasks.length > 150) return; // keep each step cheap to check
      // add tasks (to a service that may not exist: the catalog refuses it, the checker must not care)
      const service = r.int(10) === 0 ? 'ghost' : pick(services);
      if (!service) return;
      for (let i = 1 + r.int(3); i > 0; i--) {
        const id = `t${++seq.n}`;
        const addresses: Record<string, string> = {};
        for (const n of nets()) addresses[n] = addr(n);
        s.tasks[id] = { id, name: id, service, slot: seq.n, addresses, health: 'unknown', createdAt: '' };
      }
      return;
    }
    case 7:
    case 8: {
      const id = pick(tasks);
      if (id) delete s.tasks[id];
      return;
    }
    case 9: {
      // readdress a task
      const id = pick(tasks);
      if (!id) return;
      const t = edit(s.tasks, id);
      const n = pick(NETS)!;
      if (r.int(3) === 0) delete t.addresses[n];
      else t.addresses[n] = addr(n);
      return;
    }
    case 10: {
      // move a task to another service, or write its health
      const id = pick(tasks);
      if (!id) return;
      const t = edit(s.tasks, id);
      if (r.int(2)) t.service = pick(services) ?? t.service;
      else t.health = (['healthy', 'unhealthy', 'unknown'] as const)[r.int(3)]!;
      return;
    }
    default: {
      // a network put that only moves the IPAM cursor, or a container: nothing for the checker
      const n = edit(s.networks, pick(NETS)!);
      n.ipamCursor = String(Number(n.ipamCursor) + 1);
      return;
    }
  }
}

function seed(): CatalogState {
  const s = emptyState();
  for (const [i, n] of NETS.entries()) s.networks[n] = { id: n, name: n, subnet: `10.${i}.0.0/16`, gateway: `10.${i}.0.1`, attachable: true, createdAt: '', ipamCursor: '0' };
  return s;
}

function key(x: { service: string; ip: string; spec: HealthCheckSpec }): string {
  return JSON.stringify([x.service, x.ip, x.spec]);
}

for (const s0 of [1, 2, 3]) {
  test(`random changes: tracked probes equal a full scan after every change (seed ${s0})`, async (t) => {
    const r = new Rng(s0 * 7919);
    const cat = new FakeCatalog(seed());
    const seq = { n: 0 };
    // Something to start from: the first full sync sees an existing catalog.
    for (let i = 0; i < 40; i++) cat.commit((s) => randomChange(r, s, seq));
    let probes = 0;
    const checker = new HealthChecker(cat, {}, async () => ({ ok: (probes++ & 3) !== 0, detail: 'fake' }));
    checker.start();
    t.teardown(() => checker.stop());

    let prev = checker.targets();
    let prevWant = expected(cat.state);
    let restartsKept = 0;
    let busy = 0; // steps that ended with probes running
    let peak = 0;
    const check = (step: number): void => {
      const want = expected(cat.state);
      const got = checker.targets();
      const gotPlain = new Map([...got].map(([id, g]) => [id, key(g)]));
      const wantPlain = new Map([...want].map(([id, w]) => [id, key(w)]));
      if (gotPlain.size !== wantPlain.size || [...wantPlain].some(([id, k]) => gotPlain.get(id) !== k)) {
        t.deepEqual(Object.fromEntries(gotPlain), Object.fromEntries(wantPlain), `after step ${step}`);
        throw new Error(`diverged after step ${step}`);
      }
      // A probe whose target did not move keeps running (its counters are not reset).
      for (const [id, g] of got) {
        const before = prev.get(id);
        const w = prevWant.get(id);
        if (before && w && key(w) === key(want.get(id)!)) {
          if (before.started !== g.started) t.fail(`probe of ${id} restarted at step ${step} though its target did not move`);
          restartsKept++;
        }
      }
      prev = got;
      prevWant = want;
      if (got.size > 0) busy++;
      peak = Math.max(peak, got.size);
    };
    check(0);
    const STEPS = 3000;
    for (let i = 1; i <= STEPS; i++) {
      cat.commit((s) => {
        for (let k = 1 + (r.int(4) === 0 ? r.int(3) : 0); k > 0; k--) randomChange(r, s, seq);
      });
      check(i);
      // Now and then let the fake probes finish: their verdicts come back as health-only changes.
      if (i % 25 === 0) {
        await new Promise((res) => setImmediate(res));
        check(i);
      }
    }
    t.is(cat.scans, 0, 'no change made the checker enumerate every task');
    t.true(probes > 100, `the fake probe ran (${probes})`);
    t.true(restartsKept > 1000, `probes were kept across changes (${restartsKept})`);
    t.log(`${busy} steps with probes, up to ${peak}`);
    t.true(busy > STEPS / 2 && peak >= 10, `most steps had probes to compare (${busy} steps, up to ${peak} probes)`);
  });
}
