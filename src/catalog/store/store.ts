// The persistence contract the catalog needs. The file store implements it now; an etcd store later.
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
