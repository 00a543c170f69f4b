// The persistence contracts the catalog needs.
//
// A ReplicatedStore is an ordered log of changes that several daemons may write: the catalog
// proposes a change (the objects it writes or deletes), the store commits it only if nothing
// it was computed from has changed meanwhile (else StoreConflict), and every committed change
// — this daemon's own and other daemons' — comes back through the listener in commit order.
// That listener is the one path by which the catalog's state changes.
//
// A Store (the embedded file store) only loads and saves whole states; the catalog wraps it
// with snapshotLog() (./snapshot.ts) so both kinds run through the same code.
import { VipdnsError } from '../../errors.js';
import type { Change } from '../changes.js';
import type { CatalogState } from '../model.js';

export interface Store {
  /** Human-readable location, for logs. */
  readonly location: string;
  /** The last committed state, or undefined for a new store. */
  load(): Promise<CatalogState | undefined>;
  /** Durably replaces the stored state. Resolves only once the state survives a crash. */
  save(state: CatalogState): Promise<void>;
  close(): Promise<void>;
}

/** Receives each committed change with the store revision it was committed at. */
export type ChangeListener = (change: Change, revision: number) => void;

export interface ReplicatedStore {
  readonly location: string;
  /**
   * Loads the current state (its `revision` is the store's) and from then on delivers every
   * later change to `listener`, in order, without gaps: after a lost connection it resumes
   * from the last revision it delivered.
   */
  open(listener: ChangeListener): Promise<CatalogState>;
  /**
   * Commits `change`, computed from the state as delivered so far (`next` is that state with
   * the change applied, for stores that write whole snapshots). Resolves with the commit's
   * revision once the listener has been given it; rejects with StoreConflict when another
   * writer changed what the change was computed from, and with a VipdnsError otherwise.
   */
  commit(change: Change, next: CatalogState): Promise<number>;
  /**
   * Resolves once the listener has delivered every object committed before the call (by any
   * writer): a read-your-writes barrier for a request that found something missing locally.
   */
  sync?(): Promise<void>;
  /** The most objects one commit may write or delete (etcd caps operations per transaction). */
  readonly maxObjectsPerCommit?: number;
  close(): Promise<void>;
}

export function isReplicated(s: Store | ReplicatedStore): s is ReplicatedStore {
  return typeof (s as ReplicatedStore).commit === 'function';
}

/**
 * Another writer got there first. `caughtUp` resolves once the listener has delivered what
 * beat us, so a retry computes from fresh state.
 */
export class StoreConflict extends VipdnsError {
  readonly caughtUp: Promise<void>;
  constructor(message: string, caughtUp: Promise<void>) {
    super('CONFLICT', message);
    this.name = 'StoreConflict';
    this.caughtUp = caughtUp;
  }
}
