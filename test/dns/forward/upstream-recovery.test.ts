import test from 'ava';
import { join } from 'node:path';
import { ROOT } from '../../helpers/daemon.js';
import { NetnsSet, canUseNetns } from '../../helpers/ns.js';

const can = canUseNetns();
const rootTest = can.ok ? test : test.skip;

rootTest(`an upstream whose first connect fails (no network yet) recovers once the network is up${can.ok ? '' : ` (skipped: ${can.reason})`}`, (t) => {
  const ns = new NetnsSet();
  t.teardown(() => ns.destroy());
  const n = ns.add('u');
  ns.exec(n, 'ip', ['link', 'set', 'lo', 'down']);
  const out = JSON.parse(ns.exec(n, process.execPath, [join(ROOT, 'test/fixtures/upstream-recovery.mjs'), join(ROOT, 'dist')])) as { before: string[]; after: string };
  t.deepEqual(out.before, ['UPSTREAM_UNREACHABLE', 'UPSTREAM_UNREACHABLE', 'UPSTREAM_UNREACHABLE'], 'fails fast while there is no network');
  t.is(out.after, 'answered', 'and answers once there is');
});
