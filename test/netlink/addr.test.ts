import test from 'ava';
import { formatAddress, mask4ToPrefix, parseAddress, prefixToMask4 } from '../../src/balancer/netlink/addr.js';

const roundTrip = (s: string): string => {
  const { family, bytes } = parseAddress(s);
  return formatAddress(family, bytes);
};

test('IPv4 parses into the first 4 of 16 bytes', (t) => {
  const { family, bytes } = parseAddress('10.0.1.2');
  t.is(family, 4);
  t.is(bytes.length, 16);
  t.deepEqual([...bytes], [10, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  t.is(roundTrip('255.255.255.255'), '255.255.255.255');
});

test('IPv6 round-trips to RFC 5952 form', (t) => {
  t.is(roundTrip('2001:db8::1'), '2001:db8::1');
  t.is(roundTrip('2001:0DB8:0:0:0:0:0:0001'), '2001:db8::1');
  t.is(roundTrip('::'), '::');
  t.is(roundTrip('::1'), '::1');
  t.is(roundTrip('fe80::'), 'fe80::');
  t.is(roundTrip('1:0:0:2:0:0:0:3'), '1:0:0:2::3');
  t.is(roundTrip('1:2:3:4:5:6:7:8'), '1:2:3:4:5:6:7:8');
  t.is(roundTrip('::ffff:10.0.0.1'), '::ffff:a00:1');
  t.deepEqual([...parseAddress('2001:db8::2').bytes.subarray(0, 4)], [0x20, 0x01, 0x0d, 0xb8]);
});

test('invalid addresses are rejected', (t) => {
  for (const bad of ['', '10.0.0', '10.0.0.256', '01.2.3.4', '1::2::3', '1:2:3:4:5:6:7:8:9', 'g::1', 'fe80::1%eth0', 'abc']) {
    t.throws(() => parseAddress(bad), { instanceOf: RangeError }, bad);
  }
});

test('IPv4 netmask prefix conversion', (t) => {
  t.is(prefixToMask4(24), 0xffffff00);
  t.is(prefixToMask4(32), 0xffffffff);
  t.is(prefixToMask4(0), 0);
  t.is(mask4ToPrefix(0xffffff00), 24);
  t.is(mask4ToPrefix(0xffffffff), 32);
  t.throws(() => prefixToMask4(33));
});
