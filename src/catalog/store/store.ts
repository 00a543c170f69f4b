// The persistence contracts the catalog needs.
//
// A ReplicatedStore is an ordered log of changes that several daemons may write: the catalog
// proposes a change (the objects it writes or deletes), the store commits it only if nothing
// it was computed from has changed meanwhile (else StoreConflict), and every committed change
// — this daemon's own and other daemons' — comes back through the listener in commit order.
// That listener is the one path by which the catalog's state changes.
import { VipdnsError } from '../../errors.js';
import type { Change } from '../changes.js';
import type { CatalogState } from '../model.js';

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
   * Commits `change`, computed from the state as delivered so far. Resolves with the commit's
   * revision once the listener has been given it; rejects with StoreConflict when another
   * writer changed what the change was computed from, and with a VipdnsError otherwise.
   */
  commit(change: Change): Promise<number>;
  /**
   * Resolves once the listener has delivered every object committed before the call (by any
   * writer): a read-your-writes barrier for a request that found something missing locally.
   */
  sync?(): Promise<void>;
  /** Whether the store is connected (a shared store's watch); absent: always (a local file). */
  readonly live?: boolean;
  /** The hosts sharing this store, read now (a shared store only; one host is the daemon itself). */
  nodes?(): Promise<NodeInfo[]>;
  /** The most objects one commit may write or delete (etcd caps operations per transaction). */
  readonly maxObjectsPerCommit?: number;
  close(): Promise<void>;
}

/** A host of a shared store: its registration, when its lease was last renewed, its tasks. */
export interface NodeInfo {
  name: string;
  host?: string;
  /** The address it gave for itself (its DNS address, or its first non-loopback one). */
  address?: string;
  pid?: number;
  since?: string;
  /** Seconds since its lease was last renewed (a live daemon renews every TTL/3); undefined: unknown. */
  heartbeatAgo?: number;
  ttl?: number;
  /** Ids of the tasks it registered (on its lease). */
  tasks: string[];
  self: boolean;
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
