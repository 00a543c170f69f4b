// Runs a whole-state store (the embedded file store) as a single-writer replicated store: each
// commit saves the next snapshot, then hands the change to the listener. One writer means no
// conflicts; the revision counts commits.
import { emptyState } from '../model.js';
import type { CatalogState } from '../model.js';
import type { Change } from '../changes.js';
import type { ChangeListener, ReplicatedStore, Store } from './store.js';

export function snapshotLog(inner: Store): ReplicatedStore {
  let listener: ChangeListener = () => undefined;
  let revision = 0;
  return {
    location: inner.location,
    async open(l: ChangeListener): Promise<CatalogState> {
      listener = l;
      const state = (await inner.load()) ?? emptyState();
      revision = state.revision;
      return state;
    },
    async commit(change: Change, next: CatalogState): Promise<number> {
      const rev = revision + 1;
      await inner.save({ ...next, revision: rev });
      revision = rev;
      listener(change, rev);
      return rev;
    },
    close: () => inner.close(),
  };
}
