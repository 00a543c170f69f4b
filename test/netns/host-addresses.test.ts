// Automatic allocation never hands out an address configured on the host: with 10.77.5.2 and
// 10.77.5.3 on two veth links in the daemon's namespace, the first VIP and task addresses
// of 10.77.5.0/24 skip both (the gateway .1 is reserved as always).
import test from 'ava';
import { removeDir, startDaemon } from '../helpers/daemon.js';
import { NetnsSet, canUseNetns } from '../helpers/ns.js';

const can = canUseNetns();
const rootTest = can.ok ? test.serial : test.skip;
if (!can.ok) console.log(`netns host-address test skipped: ${can.reason}`);

rootTest(`VIPs and task IPs skip the host's own addresses${can.ok ? '' : ` (skipped: ${can.reason})`}`, async (t) => {
  const ns = new NetnsSet();
  t.teardown(() => ns.destroy());
  const host = ns.add('h');
  const peer = ns.add('p');
  ns.link(host, 'to-p', '10.77.5.2/24', peer, 'eth0', '10.77.5.200/24');
  ns.link(host, 'to-p2', '10.77.5.3/32', peer, 'eth1', '10.77.6.1/24');
  const d = await startDaemon({ wrap: ['ip', 'netns', 'exec', host], args: ['--dataplane', 'none'] });
  t.teardown(async () => {
    await d.stop();
    removeDir(d.dataDir);
  });
  const ok = (...a: string[]): Promise<string> => d.ok(...a);
  await ok('network', 'create', 'n', '--subnet', '10.77.5.0/24');
  t.regex(await ok('service', 'create', 'web', '--network', 'n'), /vip 10\.77\.5\.4 on n/, 'the VIP skips .2 and .3');
  t.regex(await ok('task', 'add', 'web'), /\t10\.77\.5\.5\n/);
  const list = JSON.parse(await ok('--json', 'task', 'ls')) as Array<{ addresses: { n: string } }>;
  t.deepEqual(list.map((x) => x.addresses.n), ['10.77.5.5']);
});
