#!/usr/bin/env node
// npm's install step for the native addons (binding.gyp: batched UDP with IP_PKTINFO, and the
// netlink socket the IPVS driver uses). They make vipdns faster and enable IPVS, but it runs
// without them, so a machine without a C toolchain still installs: this prints one line saying
// what is missing and exits 0. With a toolchain the addons are built; a failed build is shown in
// full and, unless VIPDNS_REQUIRE_ADDONS=1 (CI sets it: its tests use the addons), still lets the
// install finish. `npm run build:native` builds them later.
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

const required = process.env.VIPDNS_REQUIRE_ADDONS === '1';

function onPath(name) {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return true;
    } catch {
      /* not here */
    }
  }
  return false;
}

/** What node-gyp needs and this machine lacks. */
function missingTools() {
  const missing = [];
  if (!onPath('python3') && !onPath('python')) missing.push('python3');
  if (!onPath('make')) missing.push('make');
  const cc = process.env.CC;
  if (!(cc ? onPath(cc) || cc.includes('/') : ['cc', 'gcc', 'clang'].some(onPath))) missing.push('a C compiler (gcc or clang)');
  return missing;
}

const SKIPPED =
  'vipdns: native addons not built; vipdns runs without them: UDP DNS on node:dgram (no batched I/O, one DNS thread) and no IPVS dataplane (nftables works)';

const missing = missingTools();
if (missing.length > 0) {
  const line = `${SKIPPED}. Missing: ${missing.join(', ')}; install them, then run \`npm run build:native\``;
  console.error(line);
  process.exit(required ? 1 : 0);
}

// npm hands its own node-gyp to install scripts (npm_config_node_gyp); otherwise the one on PATH.
const gyp = process.env.npm_config_node_gyp;
const r = gyp ? spawnSync(process.execPath, [gyp, 'rebuild'], { stdio: 'inherit' }) : spawnSync('node-gyp', ['rebuild'], { stdio: 'inherit' });
if (r.status === 0) process.exit(0);
console.error(`${SKIPPED}: the build failed (${r.error ? r.error.message : `node-gyp exited ${r.status ?? r.signal}`}, output above); fix it, then run \`npm run build:native\``);
process.exit(required ? 1 : 0);
