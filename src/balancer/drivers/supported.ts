// Kernel probes: can this machine (or namespace) run a dataplane? Checked without changing anything:
// nftables by `nft --check` of a throwaway table using every feature we rely on; IPVS by its proc file.
import { access, readFile } from 'node:fs/promises';
import { release } from 'node:os';
import type { ProbeResult } from '../types.js';
import type { Runner } from './exec.js';

const PROBE_SCRIPT = `add table inet vipdns-probe
add map inet vipdns-probe m { type ipv4_addr . inet_proto . inet_service : verdict ; }
add map inet vipdns-probe t { typeof ip daddr . meta l4proto . th dport . numgen inc mod 2 : ip daddr . tcp dport ; }
add chain inet vipdns-probe pre { type nat hook prerouting priority -100 ; policy accept ; }
add chain inet vipdns-probe post { type nat hook postrouting priority 100 ; policy accept ; }
add chain inet vipdns-probe svc
add rule inet vipdns-probe pre ip daddr . meta l4proto . th dport vmap @m
add rule inet vipdns-probe pre ip daddr != 127.0.0.0/8 fib daddr type local counter
add rule inet vipdns-probe svc meta mark set meta mark | 0x4000 ct mark set ct mark | 0x4000 dnat ip to ip daddr . meta l4proto . th dport . numgen inc mod 2 map @t comment "probe"
add rule inet vipdns-probe svc dnat ip to ip daddr . meta l4proto . th dport . jhash ip saddr mod 2 seed 0x1 map @t
add rule inet vipdns-probe post meta mark & 0x4000 == 0x4000 masquerade fully-random
add element inet vipdns-probe m { 192.0.2.10 . tcp . 80 : goto svc }
add element inet vipdns-probe t { 192.0.2.10 . tcp . 80 . 0 : 192.0.2.1 . 80 }
`;

/** nftables with numgen, nat via typeof maps, verdict maps, fib and masquerade — as a dry run (`nft -c`). */
export async function probeNftables(nft: Runner): Promise<ProbeResult> {
  const r = await nft(['-c', '-f', '-'], PROBE_SCRIPT);
  if (r.code === 0) return { supported: true };
  if (r.code === 127) return { supported: false, reason: 'nft is not installed' };
  const first = r.stderr.trim().split('\n')[0] ?? '';
  if (/Operation not permitted/i.test(r.stderr)) return { supported: false, reason: 'not permitted to program nftables (needs root / CAP_NET_ADMIN)' };
  return { supported: false, reason: `kernel or nft lacks a feature vipdns needs: ${first}` };
}

/** IPVS is usable when its proc file exists (module loaded) — modprobe is the operator's decision. */
export async function probeIpvs(procFile = '/proc/net/ip_vs'): Promise<ProbeResult> {
  try {
    await access(procFile);
    return { supported: true };
  } catch {
    return { supported: false, reason: `kernel has no IPVS (${procFile} missing; is ip_vs loaded?)` };
  }
}

/**
 * Whether the kernel has IPVS scheduler `name` (ip_vs_<name>): loaded, built in, or installed as a
 * module the kernel loads on first use. Read-only, like probeIpvs.
 */
export async function ipvsSchedulerAvailable(name: string, root = '/'): Promise<boolean> {
  const mod = `ip_vs_${name}`;
  if (await exists(`${root}sys/module/${mod}`)) return true;
  const dir = `${root}lib/modules/${release()}`;
  for (const ext of ['.ko', '.ko.xz', '.ko.zst', '.ko.gz']) if (await exists(`${dir}/kernel/net/netfilter/ipvs/${mod}${ext}`)) return true;
  const builtin = await readFile(`${dir}/modules.builtin`, 'utf8').catch(() => '');
  return builtin.includes(`/${mod}.ko`);
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}
