// The data dir's pid lock: one daemon per data dir, and a lock left by a killed daemon is
// taken over (a reused pid of some other program does not count as the owner).
import { constants, promises as fs } from 'node:fs';
import { join } from 'node:path';
import { VipdnsError, errorMessage } from '../../errors.js';

const LOCK = 'vipdns.pid';
// Data dirs this process holds: a second open in the same process is refused too.
const held = new Set<string>();

export interface DirLock {
  release(): Promise<void>;
}

/** Creates the data dir (0700) when missing and takes its lock. */
export async function lockDataDir(dir: string): Promise<DirLock> {
  try {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new VipdnsError('STORE_FAILED', `cannot create data dir ${dir}: ${errorMessage(e)}`, { cause: e });
  }
  const path = join(dir, LOCK);
  const key = await fs.realpath(dir);
  if (held.has(key)) throw new VipdnsError('DATA_DIR_LOCKED', `data dir ${dir} is in use by another vipdns (pid ${process.pid}, this process)`);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await fs.open(path, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o600);
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      held.add(key);
      let released = false;
      return {
        async release(): Promise<void> {
          if (released) return;
          released = true;
          held.delete(key);
          await fs.rm(path, { force: true });
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new VipdnsError('STORE_FAILED', `cannot lock data dir ${dir}: ${errorMessage(e)}`, { cause: e });
      }
      const pid = Number((await fs.readFile(path, 'utf8').catch(() => '')).trim());
      // Our own pid in a stale lock is pid reuse (pid 1 in a container), not a live owner.
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && (await isVipdnsProcess(pid))) {
        throw new VipdnsError('DATA_DIR_LOCKED', `data dir ${dir} is in use by another vipdns (pid ${pid})`);
      }
      // A lock left by a killed daemon: take it over.
      await fs.rm(path, { force: true });
    }
  }
  throw new VipdnsError('DATA_DIR_LOCKED', `cannot take the lock ${path}`);
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
  return looksLikeDaemon(cmdline);
}

/** A /proc/PID/cmdline (NUL-separated) of a vipdns daemon: `vipdns serve` or `node .../cli.js serve`. */
export function looksLikeDaemon(cmdline: string): boolean {
  const argv = cmdline.split('\0');
  return argv.includes('serve') && argv.some((a) => /vipdns|cli\.js$/.test(a));
}

/**
 * Daemons running in this network namespace, other than this process: what would re-program the
 * kernel right after a cleanup. Empty where /proc cannot tell.
 */
export async function daemonsInThisNetns(): Promise<number[]> {
  const ours = await fs.readlink('/proc/self/ns/net').catch(() => undefined);
  if (ours === undefined) return [];
  const out: number[] = [];
  for (const name of await fs.readdir('/proc').catch(() => [] as string[])) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const cmdline = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (!looksLikeDaemon(cmdline)) continue;
    if ((await fs.readlink(`/proc/${pid}/ns/net`).catch(() => undefined)) === ours) out.push(pid);
  }
  return out;
}
