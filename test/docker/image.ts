// The one-binary busybox image the real-engine tests import (no pulls): busybox-static and its applets.
import { copyFileSync, existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

export const BUSYBOX = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p));

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
