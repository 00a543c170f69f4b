// Pure parts of the etcd store: key layout, transaction plan, change diff/apply, --store parsing.
import test from 'ava';
import { applyChange, diffStates } from '../../src/catalog/changes.js';
import { type CatalogState, emptyState } from '../../src/catalog/model.js';
import { DEFAULT_PREFIX, MAX_TXN_OPS, changeFromEvents, chunksOf, decodeState, fitsOneTxn, parseKey, planTxn, stagedPlan } from '../../src/catalog/store/etcd-keys.js';
import { parseEtcdUrl } from '../../src/catalog/store/etcd-url.js';
import { loadConfig } from '../../src/config.js';

const P = DEFAULT_PREFIX;

function withTask(s: CatalogState, id: string, health: 'unknown' | 'healthy' = 'unknown'): CatalogState {
  const n = structuredClone(s);
  n.tasks[id] = { id, name: `web.1.${id}`, service: 'web', slot: 1, addresses: { front: '10.0.9.3' }, health, createdAt: 'x' };
  return n;
}

test('keys: objects, meta and nodes under the prefix; anything else is not ours', (t) => {
  t.deepEqual(parseKey(P, `${P}tasks/abc`), { type: 'object', kind: 'task', id: 'abc' });
  t.deepEqual(parseKey(P, `${P}networks/front`), { type: 'object', kind: 'network', id: 'front' });
  t.deepEqual(parseKey(P, `${P}meta`), { type: 'meta' });
  t.deepEqual(parseKey(P, `${P}nodes/h1`), { type: 'node', name: 'h1' });
  t.deepEqual(parseKey(P, `${P}tasks/a/b`), { type: 'other' });
  t.deepEqual(parseKey(P, '/elsewhere/tasks/a'), { type: 'other' });
});

test('diff: a new task is serial and goes on our lease; a health change is not serial and keeps its lease', (t) => {
  const base = emptyState();
  const one = withTask(base, 't1');
  const add = diffStates(base, one);
  t.true(add.serial);
  const plan = planTxn(P, add, { nextFwmark: 256 }, () => 0, 'c1');
  t.deepEqual(plan.compares, [{ key: `${P}tasks/t1`, modRevision: 0 }, { key: `${P}meta`, modRevision: 0 }]);
  t.is(plan.ops[0]!.type === 'put' && plan.ops[0]!.lease, 'own');
  t.regex(plan.ops[1]!.type === 'put' ? plan.ops[1]!.value : '', /"commit":"c1"/);

  const healthy = withTask(one, 't1', 'healthy');
  const h = diffStates(one, healthy);
  t.false(h.serial, 'health updates do not serialize against the whole catalog');
  const hp = planTxn(P, h, { nextFwmark: 256 }, (k) => (k.endsWith('t1') ? 7 : 3), 'c2');
  t.deepEqual(hp.compares, [{ key: `${P}tasks/t1`, modRevision: 7 }]);
  t.is(hp.ops[0]!.type === 'put' && hp.ops[0]!.lease, 'keep');

  const gone = diffStates(healthy, base);
  t.deepEqual(gone.deletes, [{ kind: 'task', id: 't1' }]);
  t.true(gone.serial);
});

test('apply: the kinds of a change, and a watch event round trip', (t) => {
  const base = emptyState();
  const next = withTask(base, 't1');
  const s = structuredClone(base);
  t.deepEqual([...applyChange(s, diffStates(base, next)).kinds], ['task']);
  t.deepEqual(s.tasks, next.tasks);
  const healthy = withTask(next, 't1', 'healthy');
  t.deepEqual([...applyChange(s, diffStates(next, healthy)).kinds], ['health']);
  const ev = changeFromEvents(P, [
    { type: 'put', key: `${P}tasks/t2`, value: JSON.stringify(withTask(base, 't2').tasks.t2) },
    { type: 'delete', key: `${P}tasks/t1` },
    { type: 'put', key: `${P}meta`, value: '{"nextFwmark":300,"commit":"x"}' },
    { type: 'put', key: `${P}nodes/h1`, value: '{}' },
  ]);
  applyChange(s, ev);
  t.deepEqual(Object.keys(s.tasks), ['t2']);
  t.is(s.nextFwmark, 300);
  const st = decodeState(P, [{ key: `${P}meta`, value: '{"nextFwmark":301}', modRevision: 4 }], 9);
  t.is(st.revision, 9);
  t.is(st.nextFwmark, 301);
  t.throws(() => changeFromEvents(P, [{ type: 'put', key: `${P}tasks/x`, value: 'not json' }]), { message: /does not hold JSON/ });
});

test('--store etcd://… parsing and the etcd flags', (t) => {
  t.deepEqual(parseEtcdUrl('etcd://127.0.0.1:2379'), { hosts: ['127.0.0.1:2379'], prefix: P, tls: false });
  t.deepEqual(parseEtcdUrl('etcds://a:1,b:2/team/x'), { hosts: ['a:1', 'b:2'], prefix: '/team/x/', tls: true });
  t.throws(() => parseEtcdUrl('etcd://nohost'), { message: /not HOST:PORT/ });
  t.throws(() => parseEtcdUrl('consul://x:1'), { message: /file or etcd/ });
  const c = loadConfig({ env: { VIPDNS_ETCD_PASSWORD: 'pw' }, flags: { store: 'etcd://127.0.0.1:2379', etcdUser: 'u', nodeName: 'h1', etcdLeaseTtl: '5' } });
  t.is(c.nodeName, 'h1');
  t.like(c.store, { kind: 'etcd', hosts: ['127.0.0.1:2379'], user: 'u', password: 'pw', leaseTtlSeconds: 5 });
  t.is(loadConfig({}).store.kind, 'file');
  t.throws(() => loadConfig({ flags: { store: 'etcd://h:1', etcdLeaseTtl: '1' } }), { message: /lease-ttl/ });
  t.throws(() => loadConfig({ flags: { nodeName: 'bad/name' } }), { message: /node name/ });
});

test('staged: a change over one transaction is one batch key with meta, then chunks that each fit; readers lay a pending batch over the keys', (t) => {
  let before = emptyState();
  before.networks.front = { id: 'f', name: 'front', subnet: '10.0.9.0/24', gateway: '10.0.9.1', attachable: false, createdAt: 'x', ipamCursor: '1' };
  let after = before;
  for (let i = 0; i < 300; i++) after = withTask(after, `t${i}`);
  const change = diffStates(before, after);
  const plan = planTxn(P, change, { nextFwmark: 256 }, () => 0, 'c1');
  t.false(fitsOneTxn(plan));
  const staged = stagedPlan(P, plan, 'c1', '42');
  t.true(staged.head.compares.length <= MAX_TXN_OPS && staged.head.ops.length === 2);
  t.deepEqual(staged.head.compares[0], { key: `${P}batch`, modRevision: 0 }, 'the batch key must not exist');
  t.true(staged.head.compares.some((c) => c.key === `${P}meta`), 'meta is compared: no serial change slips in');
  t.deepEqual(staged.head.ops.map((o) => o.key), [`${P}batch`, `${P}meta`]);
  const chunks = chunksOf(staged.batch.ops);
  t.deepEqual(chunks.map((c) => c.length), [120, 120, 60]);
  t.is(staged.batch.lease, '42');
  t.is(staged.batch.ops.length, 300);
  // A reader that reads the keys while only the first chunk is written sees all 300 tasks.
  const kvs = [
    { key: `${P}networks/front`, value: JSON.stringify(before.networks.front), modRevision: 2 },
    { key: `${P}batch`, value: staged.head.ops[0]!.type === 'put' ? staged.head.ops[0]!.value : '', modRevision: 3 },
    ...chunks[0]!.map((o) => ({ key: o.key, value: o.type === 'put' ? o.value : '', modRevision: 4 })),
  ];
  t.is(Object.keys(decodeState(P, kvs, 4).tasks).length, 300);
  before = after;
  t.throws(() => stagedPlan(P, { compares: [], ops: Array.from({ length: 5000 }, (_, i) => ({ type: 'put', key: `${P}tasks/${i}`, value: 'x'.repeat(400), lease: 'none' })) }, 'c2', undefined), { message: /more than one etcd request carries.*smaller steps/ });
});
