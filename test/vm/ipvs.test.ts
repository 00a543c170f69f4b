// The IPVS driver suite on a real IPVS kernel: boots test/vm/vm.sh (Debian's kernel in QEMU) once
// and runs dist/test/vm/ipvs-suite.js inside it. Fails (never skips) when the VM cannot boot, so CI
// notices a broken test bed; vm.sh names the packages it lacks (.ci/run installs them). IPVS_VM
// points at another runner with the same arguments.
import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..'); // dist/test/vm → repo
const vm = process.env['IPVS_VM'] ?? join(root, 'test', 'vm', 'vm.sh');

test('IPVS driver suite inside a VM with an IPVS kernel (real kernel, namespaces, traffic)', async (t) => {
  t.timeout(9 * 60_000);
  if (!existsSync(vm)) return t.fail(`the VM runner ${vm} does not exist (IPVS_VM names another)`);
  const t0 = Date.now();
  const { code, out } = await new Promise<{ code: number; out: string }>((done) => {
    const c = spawn(vm, ['--timeout', '480', '--', 'node', 'dist/test/vm/ipvs-suite.js'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (b: Buffer) => (out += b.toString()));
    c.stderr.on('data', (b: Buffer) => (out += b.toString()));
    c.on('error', (e) => done({ code: 125, out: `${out}\nspawn ${vm}: ${e.message}` }));
    c.on('close', (code) => done({ code: code ?? 1, out }));
  });
  const lines = out.split('\n').filter((l) => /^(PASS|FAIL|ipvs suite:|kernel )/.test(l));
  for (const l of lines) t.log(l);
  t.log(`VM wall time ${((Date.now() - t0) / 1000).toFixed(1)} s, exit ${code}`);
  if (code === 125) return t.fail(`the VM could not start (exit 125):\n${out.split('\n').slice(-30).join('\n')}`);
  if (code === 124) return t.fail(`the VM run timed out:\n${out.split('\n').slice(-30).join('\n')}`);
  t.true(lines.some((l) => l.startsWith('PASS')), `no check passed:\n${out.split('\n').slice(-40).join('\n')}`);
  t.deepEqual(lines.filter((l) => l.startsWith('FAIL')), [], out.split('\n').filter((l) => !l.startsWith('PASS')).join('\n'));
  t.is(code, 0, 'suite exit code');
});
