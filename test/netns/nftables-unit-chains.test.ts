// rr/wrr units' own chains (their own round-robin counters) against a real kernel, in one namespace
// this test creates (no traffic): a chain per unit, moved in the transaction that changes the unit's
// slot count, deleted with the unit, a backend change touching elements only, an orphaned chain
// removed as a stray, and a new driver re-adopting the table without writing anything.
import test from 'ava';
import { diff, isEmpty } from '../../src/balancer/diff.js';
import { resolveTool } from '../../src/balancer/drivers/exec.js';
import { NftablesDriver } from '../../src/balancer/drivers/nftables.js';
import { classComment, unitHash } from '../../src/balancer/drivers/nftables-render.js';
import { plan } from '../../src/balancer/plan.js';
import type { DesiredState } from '../../src/balancer/types.js';
import { CatalogBuilder } from '../helpers/catalog.js';
import { netnsUnavailable, sh, sweepStale, track, uniquePrefix, untrack } from '../helpers/netns.js';

const why = await netnsUnavailable();
const NFT = resolveTool('nft');

if (why) {
  test.skip(`netns nftables unit chains skipped: ${why}`, () => {});
} else {
  const ns = `${uniquePrefix()}-u`;
  const nft = (...a: string[]) => sh('ip', ['netns', 'exec', ns, NFT, ...a]);
  /** Our chains that are not the scaffolding, sorted; a round-robin class's slot chains (-n<s>) apart. */
  const allChains = async (): Promise<string[]> => {
    const j = JSON.parse(await nft('-j', 'list', 'chains', 'inet')) as { nftables: { chain?: { table: string; name: string } }[] };
    return j.nftables.flatMap((x) => (x.chain?.table === 'vipdns' && x.chain.name.startsWith('c-') && x.chain.name !== 'c-none' ? [x.chain.name] : [])).sort();
  };
  const chains = async (): Promise<string[]> => (await allChains()).filter((c) => !/-n\d+$/.test(c));
  const own = (vip: string, w: number) => `c-v4-tcp-k${w}-u${unitHash('vips4', `${vip} . tcp . 80`)}`;

  /** web (10.0.9.2) and api (10.0.9.3), rr, with `n` tasks each; `lb` for api. */
  function desired(web: number, api: number, apiLb: 'rr' | 'sh' = 'rr', first = 11): DesiredState {
    const c = new CatalogBuilder().network('n', '10.0.9.0/24');
    c.service({ name: 'web', vips: { n: '10.0.9.2' }, ports: [{ protocol: 'tcp', target: 80 }] });
    c.service({ name: 'api', vips: { n: '10.0.9.3' }, ports: [{ protocol: 'tcp', target: 80 }], lb: apiLb });
    for (let i = 0; i < web; i++) c.task('web', { n: `10.0.9.${first + i}` });
    for (let i = 0; i < api; i++) c.task('api', { n: `10.0.9.${100 + i}` });
    return plan(c.state);
  }

  test.before(async () => {
    await sweepStale();
    track(ns);
    await sh('ip', ['netns', 'add', ns]);
  });
  test.after.always(async () => {
    await sh('ip', ['netns', 'del', ns]).catch(() => {});
    untrack(ns);
  });

  test.serial('a chain per rr unit: moved when its slot count changes, deleted with it, untouched by a backend change; strays removed; re-adopted as is', async (t) => {
    const driver = new NftablesDriver({ netns: ns });
    const sync = async (want: DesiredState) => {
      const d = diff(want, await driver.observe(), driver);
      await driver.apply(d);
      t.true(isEmpty(diff(want, await driver.observe(), driver)), 'read back as planned');
      return d;
    };
    const [web, api] = ['10.0.9.2', '10.0.9.3'];

    await sync(desired(2, 2));
    t.deepEqual(await chains(), [own(web, 2), own(api, 2)].sort(), 'two units of one slot count, two chains');
    t.regex(await nft('list', 'chain', 'inet', 'vipdns', own(api, 2)), /numgen inc mod 2 vmap @g-v4-tcp-k2 comment "k:/);
    t.deepEqual((await allChains()).filter((c) => /-n\d+$/.test(c)), ['c-v4-tcp-k2-n0', 'c-v4-tcp-k2-n1'], 'the class\'s slot chains, once');
    t.regex(await nft('list', 'chain', 'inet', 'vipdns', 'c-v4-tcp-k2-n1'), /dnat ip to ip daddr \. meta l4proto \. th dport \. numgen inc mod 1 offset 1 map @t-v4-tcp-k2/);

    // A backend replaced, same slot count: elements only, the chains (and their counters) stay.
    const handles = await nft('-a', 'list', 'chain', 'inet', 'vipdns', own(web, 2));
    await sync(desired(2, 2, 'rr', 21));
    t.is(await nft('-a', 'list', 'chain', 'inet', 'vipdns', own(web, 2)), handles, 'the same rule, not a rewritten one');

    // Scaled to 3: the unit's new chain in, its old one out, in the same transaction.
    await sync(desired(3, 2));
    t.deepEqual(await chains(), [own(web, 3), own(api, 2)].sort());
    // To sh: the shared hash chain; back to rr: its own again.
    await sync(desired(3, 2, 'sh'));
    t.deepEqual(await chains(), [own(web, 3), 'c-v4-tcp-h2'].sort());
    await sync(desired(3, 2));
    t.deepEqual(await chains(), [own(web, 3), own(api, 2), 'c-v4-tcp-h2'].sort(), 'the shared sh chain stays, as before');
    // No backend: c-none, and no chain; then removed altogether.
    await sync(desired(3, 0));
    t.deepEqual(await chains(), [own(web, 3), 'c-v4-tcp-h2'].sort());
    await sync(desired(3, 2));
    const removed = desired(3, 2);
    removed.services = removed.services.filter((s) => s.vip !== api);
    await sync(removed);
    t.deepEqual(await chains(), [own(web, 3), 'c-v4-tcp-h2'].sort());

    // Orphans (a unit chain whose element is gone, a shared rr chain of the old layout): strays.
    const orphan = own('10.0.9.9', 2);
    const comment = classComment({ kind: 'v4', proto: 'tcp', w: 2, pick: 'inc' }, driver.options);
    for (const c of [orphan, 'c-v4-tcp-k2']) {
      await nft('add', 'chain', 'inet', 'vipdns', c);
      await nft('add', 'rule', 'inet', 'vipdns', c, 'counter', 'comment', `"${comment}"`);
    }
    const d = await sync(removed);
    t.deepEqual(d.remove.map((r) => r.id).sort(), [`chain|${orphan}`, 'chain|c-v4-tcp-k2'].sort());
    t.deepEqual(await chains(), [own(web, 3), 'c-v4-tcp-h2'].sort());

    // A fresh driver (a restart) adopts the table: nothing to write, and a forced resync rewrites
    // the scaffolding and every chain in use in one transaction.
    const again = new NftablesDriver({ netns: ns });
    t.true(isEmpty(diff(removed, await again.observe(), again)));
    const forced = diff(removed, await again.observe(), again, { force: true });
    await again.apply(forced);
    t.true(isEmpty(diff(removed, await again.observe(), again)));
    t.deepEqual(await chains(), [own(web, 3), 'c-v4-tcp-h2'].sort());
    await again.cleanup();
  });
}
