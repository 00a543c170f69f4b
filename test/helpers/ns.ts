// Network namespaces owned by one test: unique names, removed even when the test fails.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export function canUseNetns(): { ok: boolean; reason: string } {
  if (process.getuid?.() !== 0) return { ok: false, reason: 'needs root (CI runs as root)' };
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' });
  } catch {
    return { ok: false, reason: 'iproute2 `ip netns` is not available' };
  }
  return { ok: true, reason: '' };
}

export function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export class NetnsSet {
  readonly tag = randomBytes(3).toString('hex');
  private readonly names: string[] = [];

  /** Creates namespace vipdns-t<tag>-<suffix> with loopback up. */
  add(suffix: string): string {
    const name = `vipdns-t${this.tag}-${suffix}`;
    sh('ip', ['netns', 'add', name]);
    this.names.push(name);
    sh('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    return name;
  }

  /** A veth pair between two of our namespaces, each end addressed (CIDR) and up. */
  link(a: string, aIf: string, aAddr: string, b: string, bIf: string, bAddr: string): void {
    sh('ip', ['link', 'add', aIf, 'netns', a, 'type', 'veth', 'peer', 'name', bIf, 'netns', b]);
    sh('ip', ['-n', a, 'addr', 'add', aAddr, 'dev', aIf]);
    sh('ip', ['-n', b, 'addr', 'add', bAddr, 'dev', bIf]);
    sh('ip', ['-n', a, 'link', 'set', aIf, 'up']);
    sh('ip', ['-n', b, 'link', 'set', bIf, 'up']);
  }

  exec(ns: string, cmd: string, args: string[]): string {
    return sh('ip', ['netns', 'exec', ns, cmd, ...args]);
  }

  destroy(): void {
    for (const n of this.names.splice(0)) {
      try {
        // Kill anything left running inside before the namespace goes.
        const pids = sh('ip', ['netns', 'pids', n]).split(/\s+/).filter(Boolean);
        for (const p of pids) process.kill(Number(p), 'SIGKILL');
      } catch {
        /* already gone */
      }
      try {
        sh('ip', ['netns', 'del', n]);
      } catch {
        /* already gone */
      }
    }
  }
}
