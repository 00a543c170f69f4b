import test from 'ava';
import { allocate, allocateTop, checkRequested, defaultGateway, excludedBoth, usableCount, type Pool } from '../../src/catalog/ipam.js';
import { parseCidr } from '../../src/net/ip.js';

const pool = (cidr: string): Pool => {
  const prefix = parseCidr(cidr);
  return { name: 'n', prefix, gateway: defaultGateway(prefix) };
};

test('a /24 has 253 usable addresses: network, gateway and broadcast are never handed out', (t) => {
  const p = pool('10.0.9.0/24');
  t.is(usableCount(p), 253n);
  const used = new Set<string>();
  let cursor = 1n;
  for (let i = 0; i < 253; i++) {
    const a = allocate(p, used, cursor);
    t.false(used.has(a.ip));
    used.add(a.ip);
    cursor = a.cursor;
  }
  t.false(used.has('10.0.9.0'));
  t.false(used.has('10.0.9.1'));
  t.false(used.has('10.0.9.255'));
  const err = t.throws(() => allocate(p, used, cursor));
  t.is((err as { code?: string }).code, 'SUBNET_EXHAUSTED');
  t.regex(err!.message, /network "n" \(10\.0\.9\.0\/24\) is exhausted: 253 of its 253 usable addresses are in use \(256 in the subnet, 3 reserved/);
  t.regex(err!.message, /\/23 or shorter/);
});

test('next-fit: a freed address is reused only after the rest of the subnet', (t) => {
  const p = pool('10.1.0.0/29'); // 8 addresses, 5 usable (.2-.6)
  const used = new Set(['10.1.0.2', '10.1.0.3']);
  const a = allocate(p, used, 3n);
  t.is(a.ip, '10.1.0.4');
  used.delete('10.1.0.2');
  used.add(a.ip);
  t.is(allocate(p, used, a.cursor).ip, '10.1.0.5');
});

test('IPv6 and big prefixes allocate without scanning the space', (t) => {
  const p = pool('fd00:1::/64');
  const a = allocate(p, new Set(), 1n);
  t.is(a.ip, 'fd00:1::2');
  const big = pool('10.128.0.0/9');
  t.is(usableCount(big), (1n << 23n) - 3n);
});

test('/31 and /32 keep what RFC 3021 allows', (t) => {
  const p31 = pool('10.2.0.0/31');
  t.is(usableCount(p31), 1n); // gateway takes one
  t.is(allocate(p31, new Set(), 0n).ip, '10.2.0.1');
  t.throws(() => allocate(pool('10.2.0.0/32'), new Set(), 0n), { message: /exhausted/ });
});

test('requested addresses: outside, reserved and in use are refused', (t) => {
  const p = pool('10.0.9.0/24');
  t.is(checkRequested(p, '10.0.9.50', new Set(), 'VIP'), '10.0.9.50');
  t.throws(() => checkRequested(p, '10.0.10.5', new Set(), 'VIP'), { message: 'VIP 10.0.10.5 is outside network "n" (10.0.9.0/24)' });
  t.throws(() => checkRequested(p, '10.0.9.1', new Set(), 'VIP'), { message: /gateway address/ });
  t.throws(() => checkRequested(p, '10.0.9.255', new Set(), 'VIP'), { message: /broadcast address/ });
  t.throws(() => checkRequested(p, '10.0.9.0', new Set(), 'VIP'), { message: /network address/ });
  t.throws(() => checkRequested(p, '10.0.9.50', new Set(['10.0.9.50']), 'task IP'), { message: /already in use/ });
});

test('from the top: the highest free address downwards, never broadcast or gateway', (t) => {
  t.is(allocateTop(pool('10.0.9.0/24'), new Set()), '10.0.9.254');
  const gwTop: Pool = { ...pool('10.0.9.0/24'), gateway: 0x0a0009fen }; // gateway 10.0.9.254
  t.is(allocateTop(gwTop, new Set(['10.0.9.253'])), '10.0.9.252');
  t.is(allocateTop(pool('fd00::/120'), new Set()), 'fd00::ff', 'IPv6 has no broadcast address');
  t.is(allocateTop(pool('10.2.0.0/31'), new Set()), '10.2.0.1');
  // A /30 has one usable address besides the gateway (.2); taken, the pool is exhausted.
  t.throws(() => allocateTop(pool('10.0.0.0/30'), new Set(['10.0.0.2'])), { code: 'SUBNET_EXHAUSTED' } as never);
  const big = pool('fd00:1::/64');
  t.is(allocateTop(big, new Set(['fd00:1::ffff:ffff:ffff:ffff'])), 'fd00:1::ffff:ffff:ffff:fffe', 'a huge pool is not scanned');
});

test('exclusions: both allocators skip addresses held outside the catalog, and say so when they fill the pool', (t) => {
  const p = pool('10.1.0.0/29'); // .2-.6 usable
  t.is(allocateTop(p, new Set(), new Set(['10.1.0.6', '10.1.0.5'])), '10.1.0.4');
  t.is(allocateTop(p, new Set(['10.1.0.6']), new Set(['10.1.0.5', '10.9.9.9'])), '10.1.0.4', 'an exclusion outside the pool is harmless');
  t.deepEqual(allocate(p, new Set(['10.1.0.2']), 1n, new Set(['10.1.0.3', '10.1.0.4'])), { ip: '10.1.0.5', cursor: 5n });
  const err = t.throws(() => allocateTop(p, new Set(['10.1.0.2', '10.1.0.3']), new Set(['10.1.0.4', '10.1.0.5', '10.1.0.6', '10.1.0.3'])));
  t.is((err as { code?: string }).code, 'SUBNET_EXHAUSTED');
  t.regex(err!.message, /2 of its 5 usable addresses are in use and 3 more are held outside the catalog/);
  t.throws(() => allocate(p, new Set(['10.1.0.2']), 1n, new Set(['10.1.0.3', '10.1.0.4', '10.1.0.5', '10.1.0.6'])), { message: /1 of its 5 usable addresses are in use and 4 more/ });
});

test('host addresses and another IPAM\'s are skipped together; exhaustion counts them once', (t) => {
  const p = pool('10.0.9.0/29'); // .2–.6 usable
  const host = new Set(['10.0.9.2', '10.0.9.4', '192.168.1.5']);
  const other = new Set(['10.0.9.3', '10.0.9.4']);
  const ex = excludedBoth(other, host)!;
  t.true(ex.has('10.0.9.2') && ex.has('10.0.9.3'));
  t.deepEqual([...ex].sort(), ['10.0.9.2', '10.0.9.3', '10.0.9.4', '192.168.1.5']);
  const a = allocate(p, new Set(), 1n, ex);
  t.is(a.ip, '10.0.9.5');
  t.is(allocateTop(p, new Set(), ex), '10.0.9.6');
  const e = t.throws(() => allocate(p, new Set(['10.0.9.5', '10.0.9.6']), 1n, ex));
  t.regex(e!.message, /2 of its 5 usable addresses are in use and 3 more are held outside the catalog \(another IPAM, or this host's own addresses\)/);
  t.is(excludedBoth(undefined, host), host);
});
