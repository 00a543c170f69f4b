// The nftables driver against a real kernel, in one namespace this test creates (no traffic):
// round trip, drift repair, and that foreign nftables tables, iptables rules and lo addresses stay
// byte-for-byte. The driver owns the IPv4 VIPs of its units on lo, labelled lo:vipdns.
import test from 'ava';
import { cleanupDataplane } from '../../src/balancer/cleanup.js';
import { diff, isEmpty } from '../../src/balancer/diff.js';
import { resolveTool } from '../../src/balancer/drivers/exec.js';
import { NftablesDriver } from '../../src/balancer/drivers/nftables.js';
import { unitHash } from '../../src/balancer/drivers/nftables-render.js';
import { plan } from '../../src/balancer/plan.js';
import { Balancer } from '../../src/balancer/reconcile.js';
import { CatalogBuilder } from '../helpers/catalog.js';
import { netnsUnavailable, sh, sweepStale, track, uniquePrefix, untrack } from '../helpers/netns.js';

const why = await netnsUnavailable();
const NFT = resolveTool('nft');
// svc0's VIP ports' own chains (rr: one chain, one round-robin counter, per unit).
const K3V4 = `c-v4-tcp-k3-u${unitHash('vips4', '10.0.9.2 . tcp . 80')}`;
const K3V6 = `c-v6-tcp-k3-u${unitHash('vips6', 'fd00:9::2 . tcp . 80')}`;

const FOREIGN_NFT = `table ip foreign {
	chain input {
		type filter hook input priority filter; policy accept;
		tcp dport 9999 accept
	}
}
table inet other {
	map vips4 {
		type ipv4_addr . inet_proto . inet_service : verdict
	}
	chain services {
		ip daddr 192.0.2.1 accept
	}
}
`;

if (why) {
  test.skip(`netns nftables driver suite skipped: ${why}`, () => {});
} else {
  const ns = `${uniquePrefix()}-d`;
  const nft = (...a: string[]) => sh('ip', ['netns', 'exec', ns, NFT, ...a]);
  const nftIn = (text: string) => sh('ip', ['netns', 'exec', ns, NFT, '-f', '-'], text);

  /** Our labelled addresses on lo, sorted. */
  async function ours(): Promise<string[]> {
    const out = await sh('ip', ['-n', ns, '-4', '-o', 'addr', 'show', 'dev', 'lo', 'label', 'lo:vipdns']);
    return [...out.matchAll(/inet (\S+)\/32 /g)].map((m) => m[1]!).sort();
  }
  const VIPS = ['10.0.9.2', '10.0.9.3', '10.0.9.4', '10.0.9.5', '10.0.9.6'];

  /** Everything in the namespace that is not ours, as text: other nft tables, iptables-save output, lo's other addresses. */
  async function foreign(): Promise<string> {
    // iptables' filter tables are compared through iptables-save, without our VIPDNS-FORWARD chain and jump.
    const skip = new Set(['table inet vipdns', 'table ip filter', 'table ip6 filter']);
    const tables = (await nft('list', 'tables')).split('\n').filter((l) => l && !skip.has(l));
    let text = '';
    for (const l of tables) text += await nft('list', ...l.split(' '));
    for (const tool of ['iptables-save', 'ip6tables-save']) {
      const out = await sh('ip', ['netns', 'exec', ns, resolveTool(tool)]);
      text += out.split('\n').filter((l) => !l.startsWith('#') && !l.includes('VIPDNS-FORWARD')).join('\n'); // drop the timestamp lines
    }
    const lo = await sh('ip', ['-n', ns, '-4', '-o', 'addr', 'show', 'dev', 'lo']);
    text += lo.split('\n').filter((l) => !l.includes('lo:vipdns')).join('\n');
    return text;
  }

  function catalog(): CatalogBuilder {
    const c = new CatalogBuilder().network('n', '10.0.9.0/24').network('six', 'fd00:9::/64');
    for (let i = 0; i < 5; i++) {
      // svc3 and svc4 are sticky (sh and rr): their VIP and published-port classes, v4 and v6, read back too.
      const balancing = i === 4 ? { sticky: 60 } : i === 3 ? { sticky: 30, lb: 'sh' as const } : {};
      c.service({ name: `svc${i}`, vips: { n: `10.0.9.${2 + i}`, six: `fd00:9::${2 + i}` }, ports: [{ protocol: 'tcp', target: 80, published: 8080 + i }, { protocol: 'udp', target: 53 }], ...balancing });
      for (let j = 0; j < 3; j++) c.task(`svc${i}`, { n: `10.0.9.${100 + i * 10 + j}`, six: `fd00:9::${100 + i * 10 + j}` });
    }
    return c;
  }

  const driver = new NftablesDriver({ netns: ns });
  const quiet = { info() {}, warn() {}, error() {} };

  test.before(async () => {
    await sweepStale();
    track(ns);
    await sh('ip', ['netns', 'add', ns]);
    await nftIn(FOREIGN_NFT);
    const ipt = (...a: string[]) => sh('ip', ['netns', 'exec', ns, resolveTool('iptables'), ...a]);
    await ipt('-t', 'nat', '-A', 'POSTROUTING', '-s', '192.0.2.0/24', '-j', 'MASQUERADE');
    await ipt('-A', 'INPUT', '-p', 'tcp', '--dport', '9998', '-j', 'DROP');
    await ipt('-t', 'mangle', '-A', 'PREROUTING', '-d', '10.0.9.2', '-j', 'MARK', '--set-mark', '0x100');
    // Foreign addresses on lo: one with a label like ours, one unlabelled that is also a VIP.
    await sh('ip', ['-n', ns, 'addr', 'add', '10.0.9.250/32', 'dev', 'lo', 'label', 'lo:vipdnsx']);
    await sh('ip', ['-n', ns, 'addr', 'add', '10.0.9.6/32', 'dev', 'lo']);
  });

  test.after.always(async () => {
    await sh('ip', ['netns', 'del', ns]).catch(() => {});
    untrack(ns);
  });

  test.serial('probe: the kernel has everything the driver needs', async (t) => {
    t.deepEqual(await driver.probe(), { supported: true });
    t.false((await nft('list', 'tables')).includes('vipdns-probe'), 'the probe is a dry run');
  });

  test.serial('sync, drift repair, full resync and cleanup leave foreign tables and iptables rules byte-for-byte', async (t) => {
    const before = await foreign();
    t.true(before.includes('MASQUERADE') && before.includes('table ip foreign'));
    const c = catalog();
    const b = new Balancer({ driver, logger: quiet, resyncIntervalMs: 0 });
    b.update(c.snapshot());
    await b.start();
    t.is(b.status().lastError, undefined);
    t.is(b.status().programmed.services, 20);
    t.is(await foreign(), before, 'after sync');
    t.deepEqual(await ours(), VIPS.slice(0, 4), 'the IPv4 VIPs are on lo; 10.0.9.6 already was, unlabelled, and stays someone else\'s');
    t.deepEqual(driver.loopbackVips(), VIPS);

    // Round trip: what the kernel holds reads back as exactly the plan.
    const desired = plan(c.state);
    t.true(isEmpty(diff(desired, await driver.observe(), driver)));

    // Drift 1: a backend element and a dispatch element deleted, a unit's chain flushed, a foreign rule in
    // our base chain, a stray chain in our table.
    await nft('delete', 'element', 'inet', 'vipdns', 't-v4-tcp-k3', '{ 10.0.9.3 . tcp . 80 . 1 }');
    await nft('delete', 'element', 'inet', 'vipdns', 'vips4', '{ 10.0.9.4 . udp . 53 }');
    await nft('flush', 'chain', 'inet', 'vipdns', K3V6);
    await nft('add', 'rule', 'inet', 'vipdns', 'services', 'tcp', 'dport', '1', 'drop');
    await nft('add', 'chain', 'inet', 'vipdns', 'intruder');
    // and on lo: one of our VIPs deleted, a stray labelled address added.
    await sh('ip', ['-n', ns, 'addr', 'del', '10.0.9.3/32', 'dev', 'lo']);
    await sh('ip', ['-n', ns, 'addr', 'add', '10.0.9.77/32', 'dev', 'lo', 'label', 'lo:vipdns']);
    t.false(isEmpty(diff(desired, await driver.observe(), driver)));
    await b.resync();
    t.is(b.status().repairs, 1, JSON.stringify(b.status().lastError));
    t.true(isEmpty(diff(desired, await driver.observe(), driver)), 'repaired');
    const table = await nft('list', 'table', 'inet', 'vipdns');
    t.false(table.includes('intruder'));
    t.false(table.includes('dport 1 drop'));
    t.deepEqual(await ours(), VIPS.slice(0, 4), 'lo repaired: the VIP is back, the stray gone');

    // A lo repair alone (no nft drift) is a repair too.
    await sh('ip', ['-n', ns, 'addr', 'del', '10.0.9.2/32', 'dev', 'lo']);
    await b.resync();
    t.is(b.status().repairs, 2);
    t.deepEqual(await ours(), VIPS.slice(0, 4));

    // Drift 2: a backend element rewritten in place is seen (elements are read back exactly).
    await nftIn('delete element inet vipdns t-v4-tcp-k3 { 10.0.9.2 . tcp . 80 . 0 }\nadd element inet vipdns t-v4-tcp-k3 { 10.0.9.2 . tcp . 80 . 0 : 192.0.2.99 . 80 }\n');
    await b.resync();
    t.is(b.status().repairs, 3);
    t.false((await nft('list', 'map', 'inet', 'vipdns', 't-v4-tcp-k3')).includes('192.0.2.99'));

    // Drift 3: the whole table deleted.
    await nft('delete', 'table', 'inet', 'vipdns');
    await b.resync();
    t.true(isEmpty(diff(desired, await driver.observe(), driver)), 'recreated');
    t.deepEqual(await ours(), VIPS.slice(0, 4), 'the addresses were kept, not removed and re-added');

    // A service removed: its VIP leaves lo in the same sync; the others stay.
    const fewer = catalog();
    delete fewer.state.services['svc1'];
    b.update(fewer.snapshot(), { services: ['svc1'] });
    await b.syncNow();
    t.deepEqual(await ours(), ['10.0.9.2', '10.0.9.4', '10.0.9.5']);
    b.update(c.snapshot(), { services: ['svc1'] });
    await b.syncNow();
    t.deepEqual(await ours(), VIPS.slice(0, 4));

    // Drift 4: a class rule replaced behind our comment is invisible to a normal resync, and repaired
    // by the full one.
    const l2 = JSON.parse(await nft('-j', '-a', 'list', 'chain', 'inet', 'vipdns', K3V4)) as { nftables: { rule?: { handle: number; comment: string } }[] };
    const r2 = l2.nftables.find((x) => x.rule)!.rule!;
    await nft('replace', 'rule', 'inet', 'vipdns', K3V4, 'handle', String(r2.handle), 'meta', 'l4proto', 'tcp', 'dnat', 'ip', 'to', '192.0.2.99', 'comment', `"${r2.comment}"`);
    await b.resync();
    t.true((await nft('list', 'chain', 'inet', 'vipdns', K3V4)).includes('192.0.2.99'), 'normal resync trusts the comment');
    await b.resync(true);
    t.false((await nft('list', 'chain', 'inet', 'vipdns', K3V4)).includes('192.0.2.99'), 'full resync rewrites it');
    t.true(isEmpty(diff(desired, await driver.observe(), driver)));

    t.is(await foreign(), before, 'after drift repairs');
    await b.stop();
    t.deepEqual(await cleanupDataplane({ netns: ns }), { removed: ['nftables'], errors: [] });
    t.is(await foreign(), before, 'after cleanup');
    t.false((await nft('list', 'ruleset')).includes('vipdns'));
    t.deepEqual(await ours(), [], 'cleanup removed our addresses');
    t.deepEqual(await cleanupDataplane({ netns: ns }), { removed: [], errors: [] }, 'a second cleanup finds nothing');
  });

  test.serial('a failed transaction changes nothing and reports nft stderr with a code', async (t) => {
    const c = new CatalogBuilder().network('n', '10.0.9.0/24').service({ name: 'web', vips: { n: '10.0.9.2' } }).task('web', { n: '10.0.9.11' });
    const b = new Balancer({ driver, logger: quiet, resyncIntervalMs: 0 });
    b.update(c.snapshot());
    await b.start();
    const before = await nft('list', 'table', 'inet', 'vipdns');
    // Hand the driver a diff the kernel must refuse (an element that does not exist).
    const bogus = { id: 'vip|192.0.2.1 . tcp . 1', fingerprint: '', native: { elements: [{ map: 'vips4', key: '192.0.2.1 . tcp . 1', value: 'goto c-none' }] } };
    const err = await t.throwsAsync(driver.apply({ base: false, add: [], change: [], remove: [bogus], unchanged: 0 }));
    t.is((err as { code?: string }).code, 'DATAPLANE_FAILED');
    t.regex(err!.message, /nft -f .*No such file or directory/);
    t.is(await nft('list', 'table', 'inet', 'vipdns'), before);
    await b.stop();
    await cleanupDataplane({ netns: ns });
  });
}
