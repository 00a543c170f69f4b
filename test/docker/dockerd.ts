// A real Docker engine for tests: Debian's dockerd (docker.io) in a network namespace of the test's
// own, started with nsenter (`ip netns exec` remounts /sys and hides the cgroups dockerd needs), with
// private data and exec roots, vfs storage and a locally imported busybox image, so its bridges,
// iptables rules, overlay namespaces and containers stay inside. Optionally a one-node swarm, and a
// TLS TCP endpoint with client certificates. stop() removes everything it made, pass or fail, and a
// later run sweeps what a killed run left (names carry the creating pid).
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { removeDir, tempDir } from '../helpers/daemon.js';
import { BUSYBOX, busyboxImageTar, has } from './image.js';

const pexec = promisify(execFile);
export const DOCKER = '/usr/bin/docker';
export const IMAGE = 'vipdns-test-busybox:1';
const TAG = /^vipdns-tdk([0-9a-z]+)-/;

/** Whether a real dockerd can run here, and why not. */
export function dockerdAvailable(): { ok: boolean; reason: string } {
  if (process.getuid?.() !== 0) return { ok: false, reason: 'needs root (CI runs as root)' };
  for (const c of ['dockerd', 'containerd', 'runc', 'nsenter', 'openssl', 'ip']) if (!has(c)) return { ok: false, reason: `${c} is not installed (apt-get install docker.io)` };
  if (!existsSync(DOCKER)) return { ok: false, reason: `${DOCKER} is missing (apt-get install docker.io)` };
  if (!BUSYBOX) return { ok: false, reason: 'busybox-static is not installed' };
  return { ok: true, reason: '' };
}

export interface Dockerd {
  ns: string;
  socket: string;
  /** With `tls`: the engine's TLS endpoint inside the namespace, and a client's ca/cert/key directory. */
  tcp?: { url: string; tlsDir: string };
  docker(...args: string[]): Promise<string>;
  /** A container's init pid: `nsenter -t PID -n` runs a command in its network namespace. */
  pid(container: string): Promise<number>;
  /** The engine's log so far (for failure messages). */
  log(): string;
  stop(): Promise<void>;
}

function rmdirQuiet(d: string): void {
  try {
    rmdirSync(d);
  } catch {
    /* not empty, or gone */
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Unmounts everything under `dir` (dockerd's netns bind mounts, vfs layers), deepest first. */
function unmountUnder(dir: string): void {
  const mounts = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1] ?? '')
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) {
    try {
      execFileSync('umount', ['-l', m], { stdio: 'ignore' });
    } catch {
      /* already gone */
    }
  }
}

function killIn(ns: string): void {
  try {
    for (const p of execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split(/\s+/).filter(Boolean)) process.kill(Number(p), 'SIGKILL');
  } catch {
    /* gone */
  }
}

/** Leftovers of runs that were killed: their namespace, processes, mounts and directories. */
function sweep(): void {
  for (const ns of execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]!)) {
    const m = TAG.exec(ns);
    if (!m || alive(parseInt(m[1]!, 36))) continue;
    killIn(ns);
    execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  }
  for (const d of readdirSync(tmpdir())) {
    const m = /^vipdns-dockerd-([0-9a-z]+)-/.exec(d);
    if (!m || alive(parseInt(m[1]!, 36))) continue;
    unmountUnder(join(tmpdir(), d));
    removeDir(join(tmpdir(), d));
  }
}

/** A CA, a server certificate for 127.0.0.1 and a client certificate, as `docker --tlsverify` uses them. */
function makeCerts(dir: string): { server: string[]; clientDir: string } {
  const f = (n: string): string => join(dir, n);
  const ssl = (...a: string[]): void => void execFileSync('openssl', a, { cwd: dir, stdio: 'pipe' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=test-ca', '-keyout', f('ca-key.pem'), '-out', f('ca.pem'));
  const leaf = (name: string, ext: string): void => {
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}`, '-keyout', f(`${name}-key.pem`), '-out', f(`${name}.csr`));
    writeFileSync(f(`${name}.ext`), ext);
    ssl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca-key.pem'), '-CAcreateserial', '-days', '2', '-extfile', f(`${name}.ext`), '-out', f(`${name}.pem`));
  };
  leaf('server', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  leaf('client', 'extendedKeyUsage=clientAuth\n');
  const clientDir = f('client');
  execFileSync('mkdir', [clientDir]);
  execFileSync('cp', [f('ca.pem'), join(clientDir, 'ca.pem')]);
  execFileSync('cp', [f('client.pem'), join(clientDir, 'cert.pem')]);
  execFileSync('cp', [f('client-key.pem'), join(clientDir, 'key.pem')]);
  return { server: ['--tlsverify', '--tlscacert', f('ca.pem'), '--tlscert', f('server.pem'), '--tlskey', f('server-key.pem')], clientDir };
}

export async function startDockerd(opts: { swarm?: boolean; tls?: boolean } = {}): Promise<Dockerd> {
  sweep();
  const tag = `${process.pid.toString(36)}-${Math.random().toString(16).slice(2, 6)}`;
  const dir = tempDir(`vipdns-dockerd-${tag}-`);
  const ns = `vipdns-tdk${tag}`;
  const socket = join(dir, 'docker.sock');
  let proc: ChildProcess | undefined;
  let logText = '';
  const hadRunDocker = existsSync('/run/docker');
  const docker = async (...args: string[]): Promise<string> => {
    try {
      return (await pexec(DOCKER, ['-H', `unix://${socket}`, ...args], { maxBuffer: 64 << 20 })).stdout;
    } catch (e) {
      throw new Error(`docker ${args.join(' ')}: ${(e as { stderr?: string }).stderr ?? String(e)}`);
    }
  };
  const stop = async (): Promise<void> => {
    if (proc && proc.exitCode === null) {
      // SIGKILL the containers first: their init (sleep, httpd) ignores SIGTERM, and dockerd would wait 10 s each.
      if (opts.swarm) await docker('swarm', 'leave', '--force').catch(() => '');
      const ids = (await docker('ps', '-aq').catch(() => '')).split(/\s+/).filter(Boolean);
      if (ids.length) await docker('rm', '-f', ...ids).catch(() => '');
      proc.kill('SIGTERM');
      const exited = new Promise((r) => proc!.once('exit', r));
      const t = setTimeout(() => proc!.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(t);
    }
    killIn(ns); // containerd and shims, if dockerd died without them
    unmountUnder(dir);
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      /* never made */
    }
    removeDir(dir);
    // dockerd makes /run/docker/plugins in the shared filesystem; leave the host as it was (rmdir:
    // only while empty, another engine may be using it).
    if (!hadRunDocker) for (const d of ['/run/docker/plugins', '/run/docker']) rmdirQuiet(d);
  };
  try {
    execFileSync('ip', ['netns', 'add', ns]);
    execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    const tls = opts.tls ? makeCerts(dir) : undefined;
    const args = ['--data-root', join(dir, 'data'), '--exec-root', join(dir, 'exec'), '-H', `unix://${socket}`, '--pidfile', join(dir, 'dockerd.pid'), '--storage-driver', 'vfs'];
    if (tls) args.push('-H', 'tcp://127.0.0.1:2376', ...tls.server);
    proc = spawn('nsenter', [`--net=/run/netns/${ns}`, 'dockerd', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout!.on('data', (b) => (logText += b));
    proc.stderr!.on('data', (b) => (logText += b));
    const end = Date.now() + 30_000;
    while (!(existsSync(socket) && (await docker('version').then(() => true, () => false)))) {
      if (Date.now() > end || proc.exitCode !== null) throw new Error(`dockerd did not come up:\n${logText.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await pexec('sh', ['-c', `${DOCKER} -H unix://${socket} import - ${IMAGE} < ${busyboxImageTar(dir)}`]);
    if (opts.swarm) await docker('swarm', 'init', '--advertise-addr', '127.0.0.1');
    return {
      ns,
      socket,
      ...(tls ? { tcp: { url: 'tcp://127.0.0.1:2376', tlsDir: tls.clientDir } } : {}),
      docker,
      pid: async (c) => Number((await docker('inspect', '-f', '{{.State.Pid}}', c)).trim()),
      log: () => logText,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Runs a command in a container's network namespace (the host's binaries: dig, node, curl). */
export async function inContainer(pid: number, cmd: string, args: string[]): Promise<string> {
  return (await pexec('nsenter', ['-t', String(pid), '-n', cmd, ...args], { maxBuffer: 16 << 20 })).stdout;
}
