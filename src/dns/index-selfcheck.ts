// The answer index's self-check, a rolling one: every step (1 s by default) compares a few
// owners (services with their tasks, containers) as the index holds them with what the
// catalog derives for them now, and walks a few index entries checking that their owner
// exists and lists them. One pass covers every owner and entry over intervalMs; no step
// does more than maxOwnersPerStep + maxEntriesPerStep, so DNS on the main thread never
// waits on a whole build. A difference is a bug in the incremental path: log it, count it,
// and repair that owner (here and, through onRepair, in the DNS workers).
import type { Logger } from '../log.js';
import { type AnswerIndex, type CatalogView, type IndexRepair, type KeyWalk, type OwnerTruth, indexOwners, ownerTruth } from './answers.js';
import type { DnsMetrics } from './metrics.js';

export interface IndexSelfCheckOptions {
  index: AnswerIndex;
  /** The catalog (its committed state and tasks by service): the truth the index is checked against. */
  catalog: CatalogView;
  /** One pass over every owner and entry spans about this long. */
  intervalMs: number;
  /** Between two steps. */
  stepMs?: number;
  /** Caps on one step, whatever the catalog's size (a huge catalog's pass then takes longer than intervalMs). */
  maxOwnersPerStep?: number;
  maxEntriesPerStep?: number;
  log: Pick<Logger, 'error'>;
  metrics?: DnsMetrics;
  /** After a repair: whatever else derives from the same changes (DNS workers) repairs the same owners. */
  onRepair?: (repair: IndexRepair) => void;
}

/** What one step did: owners compared, index entries walked, keys found wrong, and whether a pass ended. */
export interface StepReport {
  owners: number;
  entries: number;
  mismatches: number;
  passDone: boolean;
}

export const DEFAULT_SELFCHECK_MS = 10 * 60_000;
const DEFAULT_STEP_MS = 1000;
// ~15 µs an owner and ~1 µs an entry: a capped step stays around 5 ms.
const MAX_OWNERS_PER_STEP = 200;
const MAX_ENTRIES_PER_STEP = 2000;
const SAMPLE = 10;

interface Pass {
  owners: string[];
  next: number;
  walk: KeyWalk;
  ownersPerStep: number;
  entriesPerStep: number;
}

export class IndexSelfCheck {
  private timer: NodeJS.Timeout | undefined;
  private pass: Pass | undefined;

  constructor(private readonly opts: IndexSelfCheckOptions) {}

  start(): void {
    this.timer ??= setInterval(() => this.step(), this.stepMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private get stepMs(): number {
    return this.opts.stepMs ?? DEFAULT_STEP_MS;
  }

  /** One step of the rolling pass (a new pass starts when none is under way). */
  step(): StepReport {
    const { index, catalog } = this.opts;
    const found: string[] = [];
    const repaired: OwnerTruth[] = [];
    let networks: IndexRepair['networks'];
    let pass = this.pass;
    if (!pass) {
      pass = this.pass = this.begin();
      // Networks are few: compared whole at the start of every pass.
      const wrong = index.auditScopes(catalog.state.networks);
      if (wrong.length > 0) {
        networks = { ...catalog.state.networks };
        index.repairScopes(networks);
        found.push(...wrong);
      }
    }
    const end = Math.min(pass.owners.length, pass.next + pass.ownersPerStep);
    const owners = end - pass.next;
    for (; pass.next < end; pass.next++) {
      const truth = ownerTruth(pass.owners[pass.next]!, catalog);
      const r = index.auditOwner(truth);
      if (r.keys.length === 0 && !r.mirror) continue;
      found.push(...(r.keys.length > 0 ? r.keys : [`mirror ${truth.owner.slice(1)}`]));
      index.repairOwner(truth);
      repaired.push(truth);
    }
    const walked = index.auditKeys(pass.walk, pass.entriesPerStep, catalog.state);
    const strays = new Map<string, string[]>();
    for (const s of walked.strays) {
      if (s.owner === '') found.push(s.key); // no owner at all: dropped by the walk already
      else (strays.get(s.owner) ?? strays.set(s.owner, []).get(s.owner)!).push(s.key);
    }
    for (const [owner, keys] of strays) {
      const truth: OwnerTruth = { ...ownerTruth(owner, catalog), strays: keys };
      const listed = index.auditOwner(truth).keys.filter((k) => !keys.includes(k));
      found.push(...keys, ...listed);
      index.repairOwner(truth);
      repaired.push(truth);
    }
    const passDone = pass.next >= pass.owners.length && pass.walk.done;
    if (passDone) {
      this.pass = undefined;
      if (this.opts.metrics) this.opts.metrics.indexSelfcheck.runs++;
    }
    if (found.length > 0) {
      if (this.opts.metrics) this.opts.metrics.indexSelfcheck.mismatches += found.length;
      this.opts.log.error(
        { mismatches: found.length, sample: found.slice(0, SAMPLE), owners: repaired.map((o) => o.owner.slice(1)).slice(0, SAMPLE), revision: index.revision },
        'dns answer index differed from the catalog; repaired those owners from it',
      );
      this.opts.onRepair?.({ owners: repaired, ...(networks ? { networks } : {}) });
    }
    return { owners, entries: walked.checked, mismatches: found.length, passDone };
  }

  /** Runs a whole pass now, step after step (a pass under way is dropped); returns the keys found wrong. */
  check(): number {
    this.pass = undefined;
    let n = 0;
    for (;;) {
      const r = this.step();
      n += r.mismatches;
      if (r.passDone) return n;
    }
  }

  /** A new pass: the owners as of now, and each step's share of them and of the index's entries. */
  private begin(): Pass {
    const owners = indexOwners(this.opts.catalog.state);
    const steps = Math.max(1, Math.floor(this.opts.intervalMs / this.stepMs));
    const share = (n: number, max: number): number => Math.max(1, Math.min(max, Math.ceil(n / steps)));
    return {
      owners,
      next: 0,
      walk: this.opts.index.keyWalk(),
      ownersPerStep: share(owners.length, this.opts.maxOwnersPerStep ?? MAX_OWNERS_PER_STEP),
      // A little ahead of the owners: some keys have several owners' entries.
      entriesPerStep: share(Math.ceil(this.opts.index.keyCount * 1.25), this.opts.maxEntriesPerStep ?? MAX_ENTRIES_PER_STEP),
    };
  }
}
