// The catalog file of vipdns <= 0.1 (one JSON document, `catalog.json` in the data dir): read
// once to migrate it into the embedded database, then kept beside it as a backup.
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { VipdnsError, errorMessage } from '../../errors.js';
import type { CatalogState } from '../model.js';

export const LEGACY_FILE = 'catalog.json';
/** What a migrated catalog.json is renamed to: nothing reads it again, the operator may. */
export const LEGACY_BACKUP = 'catalog.json.migrated';

/** The legacy catalog in `dir`, or undefined when there is none. */
export async function readLegacyCatalog(dir: string): Promise<CatalogState | undefined> {
  const path = join(dir, LEGACY_FILE);
  let text: string;
  try {
    text = await fs.readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new VipdnsError('STORE_FAILED', `cannot read ${path}: ${errorMessage(e)}`, { cause: e });
  }
  try {
    const state = JSON.parse(text) as CatalogState;
    if (state.version !== 1 || typeof state.networks !== 'object' || typeof state.services !== 'object' || typeof state.tasks !== 'object' || typeof state.containers !== 'object') {
      throw new Error('unknown format');
    }
    return state;
  } catch (e) {
    // Never start on a half-understood catalog: the operator decides what to do with it.
    throw new VipdnsError('STORE_FAILED', `${path} is not a vipdns catalog (${errorMessage(e)}); move it aside to start empty`, { cause: e });
  }
}

/** Keeps the migrated file as a backup under a name nothing loads. */
export async function retireLegacyCatalog(dir: string): Promise<string> {
  const to = join(dir, LEGACY_BACKUP);
  await fs.rename(join(dir, LEGACY_FILE), to);
  return to;
}
