// The embedded store of one host: every catalog object is its own record in an LMDB database
// (`catalog.mdb` in the data dir), so a commit writes what changed and nothing else. LMDB commits
// are atomic and crash-safe (copy-on-write B-tree, meta page switched last); a commit is
// acknowledged only once it is flushed to disk. The write itself runs on LMDB's own thread, so
// the event loop (and DNS) never waits for the disk. A data dir holding the catalog.json of an
// older vipdns is migrated on first open, and the file kept as catalog.json.migrated.
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { type RootDatabase, open as openLmdb } from 'lmdb';
import { VipdnsError, errorMessage } from '../../errors.js';
import { type Change, OBJECT_KINDS, type ObjectKind, COLLECTION } from '../changes.js';
import { type CatalogState, emptyState } from '../model.js';
import { LEGACY_FILE, readLegacyCatalog, retireLegacyCatalog } from './legacy-file.js';
import { type DirLock, lockDataDir } from './lock.js';
import type { ChangeListener, ReplicatedStore } from './store.js';

export const DB_FILE = 'catalog.mdb';
/** The LMDB map: the most the file may grow to (16 GiB of address space, 64-bit only). */
const MAP_SIZE = 16 * 2 ** 30;
const PREFIX: Record<ObjectKind, string> = { network: 'n/', service: 's/', task: 't/', container: 'c/' };
// The byte after '/' ends each kind's key range.
const range = (kind: ObjectKind): { start: string; end: string } => ({ start: PREFIX[kind], end: `${PREFIX[kind].slice(0, -1)}0` });
const META = 'meta';
/**
 * Writes read the B-tree through the map, and each page they touch stays in this process's RSS
 * while the map lives (10,000 services: the whole 36 MB file after a burst of writes, though the
 * daemon never reads the store again after start). After this many objects written and a quiet
 * moment, the map is dropped and opened afresh.
 */
const REMAP_AFTER_OBJECTS = 2000;
const REMAP_QUIET_MS = 1000;

interface MetaRecord {
  version: 1;
  revision: number;
  nextFwmark: number;
}

export interface Migration {
  from: string;
  backup: string;
  objects: number;
  ms: number;
}

export class LocalStore implements ReplicatedStore {
  readonly location: string;
  /** Set when open() migrated a legacy catalog.json. */
  migration: Migration | undefined;
  private listener: ChangeListener = () => undefined;
  private meta: MetaRecord = { version: 1, revision: 0, nextFwmark: emptyState().nextFwmark };
  private closed = false;
  private sinceRemap = 0;
  private inflight = 0;
  private remapTimer: NodeJS.Timeout | undefined;
  private remapping: Promise<void> | undefined;
  private broken: unknown;

  private constructor(
    private db: RootDatabase<unknown, string>,
    private readonly lock: DirLock,
    readonly dir: string,
  ) {
    this.location = join(dir, DB_FILE);
  }

  /** Opens (creating) the data dir, takes its lock, and migrates a legacy catalog.json. */
  static async open(dir: string): Promise<LocalStore> {
    const lock = await lockDataDir(dir);
    let db: RootDatabase<unknown, string>;
    try {
      // A map larger than the file will grow to: LMDB otherwise maps the file at its size and maps it
      // again when it outgrows that, and the old mapping's pages stay resident beside the new one's
      // (measured: 35 MB more RSS after 10,000 writes at 10,000 services). Address space, not memory.
      db = openDb(dir);
    } catch (e) {
      await lock.release();
      throw new VipdnsError('STORE_FAILED', `cannot open ${join(dir, DB_FILE)}: ${errorMessage(e)}`, { cause: e });
    }
    const s = new LocalStore(db, lock, dir);
    try {
      await s.migrate();
    } catch (e) {
      await s.close();
      throw e;
    }
    return s;
  }

  private async migrate(): Promise<void> {
    const stored = this.db.get(META) as MetaRecord | undefined;
    if (stored !== undefined) {
      // A migration that committed but was killed before it renamed the file: finish it.
      if (await exists(join(this.dir, LEGACY_FILE))) await retireLegacyCatalog(this.dir);
      return;
    }
    const legacy = await readLegacyCatalog(this.dir);
    if (!legacy) return;
    const t0 = performance.now();
    let objects = 0;
    await this.write(() => {
      for (const kind of OBJECT_KINDS) {
        for (const [id, value] of Object.entries(legacy[COLLECTION[kind]])) {
          this.db.put(PREFIX[kind] + id, value);
          objects++;
        }
      }
      this.db.put(META, { version: 1, revision: legacy.revision, nextFwmark: legacy.nextFwmark } satisfies MetaRecord);
    });
    const backup = await retireLegacyCatalog(this.dir);
    this.migration = { from: join(this.dir, LEGACY_FILE), backup, objects, ms: Math.round(performance.now() - t0) };
  }

  async open(listener: ChangeListener): Promise<CatalogState> {
    this.listener = listener;
    const state = emptyState();
    const meta = this.db.get(META) as MetaRecord | undefined;
    if (meta) {
      if (meta.version !== 1) throw new VipdnsError('STORE_FAILED', `${this.location} holds catalog format ${String(meta.version)}, which this vipdns does not know`);
      this.meta = meta;
    }
    state.revision = this.meta.revision;
    state.nextFwmark = this.meta.nextFwmark;
    for (const kind of OBJECT_KINDS) {
      const into = state[COLLECTION[kind]] as Record<string, unknown>;
      const skip = PREFIX[kind].length;
      for (const { key, value } of this.db.getRange(range(kind))) {
        // A task's record id is its own id: keyed by that one string, not a second copy of it
        // (100,000 tasks: ~3 MB).
        const own = (value as { id?: unknown }).id;
        into[typeof own === 'string' && own.length === key.length - skip && key.endsWith(own) ? own : key.slice(skip)] = value;
      }
    }
    // The scan above touched every page of the map: map it afresh (REMAP_AFTER_OBJECTS says why).
    await this.remap();
    return state;
  }

  private async remap(): Promise<void> {
    await this.db.close();
    this.db = openDb(this.dir);
    this.sinceRemap = 0;
  }

  /** After many writes, once writes pause: a fresh map, so their pages leave RSS. */
  private scheduleRemap(): void {
    if (this.sinceRemap < REMAP_AFTER_OBJECTS || this.closed) return;
    clearTimeout(this.remapTimer);
    this.remapTimer = setTimeout(() => {
      if (this.inflight > 0 || this.closed || this.remapping) return this.scheduleRemap();
      // A failed reopen leaves no usable map: commits then fail with STORE_FAILED and its reason.
      this.remapping = this.remap()
        .catch((e: unknown) => {
          this.broken = e;
        })
        .finally(() => (this.remapping = undefined));
    }, REMAP_QUIET_MS);
    this.remapTimer.unref();
  }

  async commit(change: Change): Promise<number> {
    if (this.closed) throw new VipdnsError('UNAVAILABLE', 'the store is closed');
    if (this.remapping) await this.remapping;
    if (this.broken !== undefined) throw new VipdnsError('STORE_FAILED', `cannot reopen ${this.location}: ${errorMessage(this.broken)}`);
    const meta: MetaRecord = { version: 1, revision: this.meta.revision + 1, nextFwmark: change.meta?.nextFwmark ?? this.meta.nextFwmark };
    this.inflight++;
    try {
      await this.write(() => {
        for (const p of change.puts) this.db.put(PREFIX[p.kind] + p.id, p.value);
        for (const d of change.deletes) this.db.remove(PREFIX[d.kind] + d.id);
        this.db.put(META, meta);
      });
    } finally {
      this.inflight--;
    }
    this.sinceRemap += change.puts.length + change.deletes.length;
    this.scheduleRemap();
    this.meta = meta;
    this.listener(change, meta.revision);
    return meta.revision;
  }

  /** One LMDB transaction, resolved once it is flushed to disk. */
  private async write(fn: () => void): Promise<void> {
    try {
      const committed = this.db.transaction(fn) as Promise<unknown> & { flushed?: Promise<unknown> };
      await committed;
      await (committed.flushed ?? this.db.flushed);
    } catch (e) {
      throw new VipdnsError('STORE_FAILED', `cannot write ${this.location}: ${errorMessage(e)}`, { cause: e });
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.remapTimer);
    if (this.remapping) await this.remapping;
    try {
      await this.db.close();
    } finally {
      await this.lock.release();
    }
  }
}

function openDb(dir: string): RootDatabase<unknown, string> {
  return openLmdb<unknown, string>({ path: join(dir, DB_FILE), encoding: 'json', compression: false, separateFlushed: true, mapSize: MAP_SIZE });
}

async function exists(path: string): Promise<boolean> {
  return fs.stat(path).then(
    () => true,
    () => false,
  );
}
