// The version is one fact shown in three places: `vipdns --version`, GET /v1/info and the
// vipdns_build_info metric, all from package.json.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, ROOT, removeDir, run, startDaemon } from '../helpers/daemon.js';

const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

test('vipdns --version, /v1/info and vipdns_build_info say the package version', async (t) => {
  for (const flag of ['--version', '-V']) {
    const r = await run(process.execPath, [CLI, flag]);
    t.is(r.code, 0);
    t.is(r.stdout.trim(), version, flag);
  }
  const d = await startDaemon();
  t.teardown(async () => {
    await d.stop();
    removeDir(d.dataDir);
  });
  const info = (await (await fetch(`${d.api}/v1/info`)).json()) as { version: string };
  t.is(info.version, version);
  const metrics = await (await fetch(`${d.metrics}/metrics`)).text();
  t.regex(metrics, new RegExp(`^vipdns_build_info\\{version="${version.replace(/\./g, '\\.')}",nodejs="[^"]+"\\} 1$`, 'm'));
});
