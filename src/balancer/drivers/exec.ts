// Runs a dataplane tool (nft), optionally inside a named network namespace, feeding a script on stdin.
// The only place that spawns processes for drivers, so tests and the bench can see every call.
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { VipdnsError } from '../../errors.js';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Runner {
  (args: string[], input?: string): Promise<RunResult>;
}

const SYSTEM_DIRS = ['/usr/sbin', '/sbin', '/usr/bin', '/bin', '/usr/local/sbin'];

/**
 * Absolute path of a system tool. npm puts node_modules/.bin first on PATH, and an npm package may ship
 * a binary of the same name (@vercel/nft ships `nft`), so those directories are never searched.
 */
export function resolveTool(tool: string, path = process.env['PATH'] ?? ''): string {
  const dirs = [...path.split(delimiter).filter((d) => d && !d.includes('node_modules')), ...SYSTEM_DIRS];
  for (const d of dirs) {
    const p = join(d, tool);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // keep looking
    }
  }
  return tool; // spawn reports ENOENT → code 127
}

/** A hung tool must not freeze the reconciler (syncs are serialised) or shutdown. */
export const TOOL_TIMEOUT_MS = 60_000;

/**
 * `nft ARGS`, `ip netns exec NS nft ARGS` for a named namespace, or `nsenter --net=PATH nft ARGS` for a
 * namespace by path (a container's /proc/PID/ns/net); a missing binary becomes code 127, a hung one
 * 124, each with a clear stderr.
 */
export function toolRunner(tool: string, netns?: string, timeoutMs = TOOL_TIMEOUT_MS): Runner {
  const bin = resolveTool(tool);
  const argv0 = !netns ? [bin] : netns.startsWith('/') ? [resolveTool('nsenter'), `--net=${netns}`, bin] : [resolveTool('ip'), 'netns', 'exec', netns, bin];
  return (args, input) =>
    new Promise((resolve) => {
      const child = spawn(argv0[0]!, [...argv0.slice(1), ...args], { stdio: ['pipe', 'pipe', 'pipe'], timeout: timeoutMs, killSignal: 'SIGKILL' });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (b: Buffer) => out.push(b));
      child.stderr.on('data', (b: Buffer) => err.push(b));
      child.on('error', (e: NodeJS.ErrnoException) =>
        resolve({ code: e.code === 'ENOENT' ? 127 : 126, stdout: '', stderr: `${argv0[0]}: ${e.message}` }),
      );
      child.on('close', (code, signal) =>
        resolve(
          code === null && signal === 'SIGKILL'
            ? { code: 124, stdout: Buffer.concat(out).toString('utf8'), stderr: `${bin} ${args.join(' ')}: killed after ${timeoutMs} ms without finishing` }
            : { code: code ?? 1, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') },
        ),
      );
      child.stdin.on('error', () => {}); // the process may exit before reading everything; 'close' reports it
      child.stdin.end(input ?? '');
    });
}

/** A failed tool call as a coded error whose message carries the first lines of the tool's stderr. */
export function toolError(what: string, r: RunResult): VipdnsError {
  const lines = r.stderr.trim().split('\n').filter(Boolean);
  const head = lines.slice(0, 6).join(' | ');
  const err = new VipdnsError('DATAPLANE_FAILED', `${what} failed (exit ${r.code}): ${head || 'no output'}`);
  (err as VipdnsError & { stderr?: string }).stderr = r.stderr;
  return err;
}
