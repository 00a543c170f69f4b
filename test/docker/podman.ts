// A real Docker-compatible engine for tests: podman's API service (Debian's podman + runc),
// confined to a private network namespace (its bridges and firewall rules stay there) and
// private storage/network-config dirs, with a one-binary busybox image imported locally (no pulls).
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DockerClient, parseDockerUrl } from '../../src/catalog/sources/docker-api.js';
import { removeDir, tempDir } from '../helpers/daemon.js';
import { NetnsSet, canUseNetns } from '../helpers/ns.js';
import { BUSYBOX, busyboxImageTar, has } from './image.js';

export const IMAGE = 'localhost/vipdns-test-busybox:1';

/** Whether a real engine can run here, and why not. */
export function podmanAvailable(): { ok: boolean; reason: string } {
  const ns = canUseNetns();
  if (!ns.ok) return ns;
  for (const c of ['podman', 'runc', 'conmon']) if (!has(c)) return { ok: false, reason: `${c} is not installed (apt-get install podman runc)` };
  if (!existsSync('/usr/lib/podman/netavark')) return { ok: false, reason: 'netavark is not installed' };
  if (!BUSYBOX) return { ok: false, reason: 'busybox-static is not installed' };
  return { ok: true, reason: '' };
}

export interface Podman {
  socket: string;
  api: DockerClient;
  stop(): Promise<void>;
}

export async function startPodman(): Promise<Podman> {
  const dir = tempDir('vipdns-podman-');
  const nsSet = new NetnsSet();
  const ns = nsSet.add('pm');
  // Settings this sandbox needs: runc (crun refuses hybrid cgroups), cgroupfs, and rlimits within ours.
  writeFileSync(
    join(dir, 'containers.conf'),
    ['[containers]', 'default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]', '[engine]', 'runtime = "runc"', 'cgroup_manager = "cgroupfs"', 'events_logger = "file"', ''].join('\n'),
  );
  const env = { ...process.env, CONTAINERS_CONF: join(dir, 'containers.conf') };
  const base = ['--root', join(dir, 'root'), '--runroot', join(dir, 'run'), '--network-config-dir', join(dir, 'net'), '--tmpdir', join(dir, 'tmp'), '--storage-driver', 'vfs'];
  execFileSync('podman', [...base, 'import', busyboxImageTar(dir), IMAGE], { env, stdio: 'ignore' });
  const socket = join(dir, 'podman.sock');
  // nsenter, not `ip netns exec`: the latter remounts /sys, hiding the cgroup mounts runc needs.
  const proc: ChildProcess = spawn('nsenter', [`--net=/run/netns/${ns}`, 'podman', ...base, 'system', 'service', '--time=0', `unix://${socket}`], { env, stdio: 'ignore' });
  const api = new DockerClient(parseDockerUrl(socket));
  const end = Date.now() + 20_000;
  for (;;) {
    try {
      await api.request('GET', '/version');
      break;
    } catch (e) {
      if (Date.now() > end || proc.exitCode !== null) throw new Error(`podman system service did not come up: ${String(e)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    socket,
    api,
    stop: async () => {
      // Containers outlive the API service (conmon), so remove them first.
      try {
        const list = await api.request<Array<{ Id: string }>>('GET', '/containers/json?all=true');
        for (const c of list) await api.request('DELETE', `/containers/${c.Id}?force=true`).catch(() => undefined);
      } catch {
        /* service already gone */
      }
      proc.kill('SIGTERM');
      await new Promise((r) => (proc.exitCode !== null ? r(null) : proc.once('exit', r)));
      try {
        execFileSync('podman', [...base, 'rm', '-af'], { env, stdio: 'ignore' });
      } catch {
        /* nothing left */
      }
      nsSet.destroy();
      removeDir(dir);
    },
  };
}

/** docker run -d --name NAME --network NET [--network-alias A] --label K=V IMAGE sleep 600 */
export async function run(api: DockerClient, name: string, net: string, labels: Record<string, string> = {}, aliases: string[] = []): Promise<string> {
  const body = {
    Image: IMAGE,
    Cmd: ['sleep', '600'],
    Labels: labels,
    HostConfig: { NetworkMode: net },
    NetworkingConfig: { EndpointsConfig: { [net]: { Aliases: aliases } } },
  };
  const r = await api.request<{ Id: string }>('POST', `/containers/create?name=${encodeURIComponent(name)}`, body);
  await api.request('POST', `/containers/${r.Id}/start`);
  return r.Id;
}
