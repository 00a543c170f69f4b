// The sysctls IPVS needs, per network namespace (they live under /proc/sys/net of the namespace we run in).
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { VipdnsError } from '../../errors.js';

/** name → wanted value, with why. */
export const IPVS_SYSCTLS: readonly { name: string; want: string; why: string }[] = [
  // Keep conntrack entries for IPVS connections, so the nat POSTROUTING masquerade applies to them.
  { name: 'net.ipv4.vs.conntrack', want: '1', why: 'masquerade IPVS traffic (conntrack entries for IPVS connections)' },
  // A packet of a connection whose destination was deleted expires the entry and is rescheduled at once,
  // instead of being dropped until the entry times out (UDP would blackhole for the whole UDP timeout).
  { name: 'net.ipv4.vs.expire_nodest_conn', want: '1', why: 'reschedule flows of deleted destinations (no UDP blackhole)' },
  // A new connection reusing a client port of an old entry is rescheduled, not glued to a drained backend.
  { name: 'net.ipv4.vs.conn_reuse_mode', want: '1', why: 'reschedule reused client ports (drained backends get no new connections)' },
  // Persistence templates pointing at a weight-0 destination expire, so persistent clients move on.
  { name: 'net.ipv4.vs.expire_quiescent_template', want: '1', why: 'persistent clients leave drained backends' },
];

export interface SysctlState {
  name: string;
  want: string;
  have: string | undefined; // undefined: not present (no IPVS in this namespace)
  ok: boolean;
}

const path = (root: string, name: string): string => join(root, ...name.split('.'));

export async function readSysctls(root = '/proc/sys'): Promise<SysctlState[]> {
  return Promise.all(
    IPVS_SYSCTLS.map(async ({ name, want }) => {
      let have: string | undefined;
      try {
        have = (await readFile(path(root, name), 'utf8')).trim();
      } catch {
        have = undefined;
      }
      return { name, want, have, ok: have === want };
    }),
  );
}

/** Sets every sysctl that differs; returns the state afterwards. */
export async function ensureSysctls(root = '/proc/sys'): Promise<SysctlState[]> {
  for (const s of await readSysctls(root)) {
    if (s.ok) continue;
    try {
      await writeFile(path(root, s.name), `${s.want}\n`);
    } catch (e) {
      throw new VipdnsError('DATAPLANE_FAILED', `cannot set ${s.name}=${s.want}: ${(e as Error).message}`, { cause: e });
    }
  }
  return readSysctls(root);
}
