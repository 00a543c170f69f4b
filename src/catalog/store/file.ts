// Embedded store: the whole catalog as one JSON file, replaced atomically
// (write temp file, fsync, rename, fsync directory) so kill -9 at any moment leaves
// either the old or the new file, never a torn one.
import { constants, promises as fs } from 'node:fs';
import { join } from 'node:path';
import { VipdnsError, errorMessage } from '../../errors.js';
import type { CatalogState } from '../model.js';
import type { Store } from './store.js';

const FILE = 'catalog.json';
const LOCK = 'vipdns.pid';
// Data dirs this process holds: a second open in the same process is refused too.
const held = new Set<string>();

export class FileStore implements Store {
  readonly location: string;
  private readonly dir: string;
  private lockHeld = false;
  private lockKey = '';

  private constructor(dir: string) {
    this.dir = dir;
    this.location = join(dir, FILE);
  }

  /** Opens (creating) the data dir and takes its lock so two daemons never share one catalog. */
  static async open(dir: string): Promise<FileStore> {
    const s = new FileStore(dir);
    try {
      await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw new VipdnsError('STORE_FAILED', `cannot create data dir ${dir}: ${errorMessage(e)}`, { cause: e });
    }
    await s.lock();
    return s;
  }

  private async lock(): Promise<void> {
    const path = join(this.dir, LOCK);
    const key = await fs.realpath(this.dir);
    if (held.has(key)) throw new VipdnsError('DATA_DIR_LOCKED', `data dir ${this.dir} is in use by another vipdns (pid ${process.pid}, this process)`);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fh = await fs.open(path, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o600);
        await fh.writeFile(`${process.pid}\n`);
        await fh.close();
        this.lockHeld = true;
        this.lockKey = key;
        held.add(key);
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new VipdnsError('STORE_FAILED', `cannot lock data dir ${this.dir}: ${errorMessage(e)}`, { cause: e });
        }
        const pid = Number((await fs.readFile(path, 'utf8').catch(() => '')).trim());
        // Our own pid in a stale lock is pid reuse (pid 1 in a container), not a live owner.
        if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && (await isVipdnsProcess(pid))) {
          throw new VipdnsError('DATA_DIR_LOCKED', `data dir ${this.dir} is in use by another vipdns (pid ${pid})`);
        }
        // A lock left by a killed daemon: take it over.
        await fs.rm(path, { force: true });
      }
    }
    throw new VipdnsError('DATA_DIR_LOCKED', `cannot take the lock ${path}`);
  }

  async load(): Promise<CatalogState | undefined> {
    let text: string;
    try {
      text = await fs.readFile(this.location, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new VipdnsError('STORE_FAILED', `cannot read ${this.location}: ${errorMessage(e)}`, { cause: e });
    }
    try {
      const state = JSON.parse(text) as CatalogState;
      if (state.version !== 1 || typeof state.networks !== 'object') throw new Error('unknown format');
      return state;
    } catch (e) {
      // Never start on a half-understood catalog: the operator decides what to do with it.
      throw new VipdnsError('STORE_FAILED', `${this.location} is not a vipdns catalog (${errorMessage(e)}); move it aside to start empty`, { cause: e });
    }
  }

  async save(state: CatalogState): Promise<void> {
    const tmp = `${this.location}.tmp`;
    try {
      const fh = await fs.open(tmp, 'w', 0o600);
      try {
        await fh.writeFile(JSON.stringify(state));
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fs.rename(tmp, this.location);
      const dh = await fs.open(this.dir, 'r');
      try {
        await dh.sync();
      } finally {
        await dh.close();
      }
    } catch (e) {
      throw new VipdnsError('STORE_FAILED', `cannot write ${this.location}: ${errorMessage(e)}`, { cause: e });
    }
  }

  async close(): Promise<void> {
    if (!this.lockHeld) return;
    this.lockHeld = false;
    held.delete(this.lockKey);
    await fs.rm(join(this.dir, LOCK), { force: true });
  }
}

/** A live process that looks like a vipdns daemon (a reused pid of some other program is not). */
async function isVipdnsProcess(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const cmdline = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => undefined);
  if (cmdline === undefined) return true; // no procfs: trust the pid
  // argv is NUL-separated: a vipdns daemon is `vipdns serve` or `node .../cli.js serve`.
  const argv = cmdline.split('\0');
  return argv.includes('serve') && argv.some((a) => /vipdns|cli\.js$/.test(a));
}
