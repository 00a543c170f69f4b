// What the real-engine tests (podman, dockerd) share: the one-binary busybox image they import (no
// pulls), and whether a command is installed.
import { copyFileSync, existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

export const BUSYBOX = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p));

export function has(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Writes DIR/rootfs.tar: /bin/busybox with `applets` linked to it, and the usual empty dirs. */
export function busyboxImageTar(dir: string, applets = ['sh', 'sleep', 'httpd', 'hostname']): string {
  const rootfs = join(dir, 'rootfs');
  mkdirSync(join(rootfs, 'bin'), { recursive: true });
  for (const d of ['etc', 'tmp', 'www']) mkdirSync(join(rootfs, d), { recursive: true });
  copyFileSync(BUSYBOX!, join(rootfs, 'bin/busybox'));
  for (const a of applets) symlinkSync('busybox', join(rootfs, 'bin', a));
  const tar = join(dir, 'rootfs.tar');
  execFileSync('tar', ['-C', rootfs, '-cf', tar, '.']);
  return tar;
}
