// Which catalog entries the Docker source created, kept in a small JSON file beside the store
// (one per host: with a shared etcd store every host's source owns only its own entries).
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { VipdnsError, errorMessage } from '../../errors.js';
import { type Owned, emptyOwned } from './docker-plan.js';

export async function loadOwned(file: string): Promise<Owned> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return emptyOwned();
    throw new VipdnsError('STORE_FAILED', `docker source: cannot read ${file}: ${errorMessage(e)}`);
  }
  try {
    const j = JSON.parse(text) as { version?: number; owned?: Partial<Owned> };
    const o = emptyOwned();
    for (const k of Object.keys(o) as Array<keyof Owned>) {
      const v = j.owned?.[k];
      if (v && typeof v === 'object') for (const [n, id] of Object.entries(v)) if (typeof id === 'string') o[k][n.toLowerCase()] = id;
    }
    return o;
  } catch (e) {
    throw new VipdnsError('STORE_FAILED', `docker source: ${file} is not valid JSON (${errorMessage(e)}); move it away to start over (entries it listed are then left for you to remove)`);
  }
}

/** Temp file + rename: a crash leaves the old or the new file, never half of one. */
export async function saveOwned(file: string, owned: Owned): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.tmp`;
  await writeFile(tmp, `${JSON.stringify({ version: 1, owned }, null, 1)}\n`);
  await rename(tmp, file);
}
