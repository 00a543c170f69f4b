import test from 'ava';
import { canonicalIp, contains, formatCidr, isLoopback, overlaps, parseCidr, parseIp, parseReverseName, prefixSize, reverseName, unmapV4 } from '../../src/net/ip.js';

test('IPv4 and IPv6 parse and format canonically', (t) => {
  t.is(canonicalIp('10.0.9.1'), '10.0.9.1');
  t.is(canonicalIp('FD00:0:0:0:0:0:0:1'), 'fd00::1');
  t.is(canonicalIp('2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1');
  t.is(canonicalIp('::ffff:1.2.3.4'), '::ffff:102:304');
  t.is(canonicalIp('::'), '::');
  t.is(canonicalIp('1:2:3:4:5:6:7:8'), '1:2:3:4:5:6:7:8');
  t.throws(() => parseIp('10.0.0.256'), { message: /not an IPv4 or IPv6/ });
  t.throws(() => parseIp('fe80::1%eth0'));
});

test('CIDR parsing rejects garbage and host bits with a suggestion', (t) => {
  t.is(formatCidr(parseCidr('10.0.9.0/24')), '10.0.9.0/24');
  t.is(formatCidr(parseCidr('fd00:9::/64')), 'fd00:9::/64');
  t.throws(() => parseCidr('10.0.9.0'), { code: 'BAD_CIDR', message: /not a CIDR/ } as never);
  t.throws(() => parseCidr('10.0.9.0/33'), { message: /longer than 32 bits/ });
  t.throws(() => parseCidr('10.0.9.7/24'), { message: /did you mean 10\.0\.9\.0\/24/ });
  t.throws(() => parseCidr('banana/8'), { message: /not an IP address/ });
  t.is(prefixSize(parseCidr('10.0.0.0/8')), 16777216n);
  t.is(prefixSize(parseCidr('fd00::/64')), 1n << 64n);
});

test('containment and overlap', (t) => {
  const a = parseCidr('10.0.9.0/24');
  t.true(contains(a, parseIp('10.0.9.255')));
  t.false(contains(a, parseIp('10.0.10.0')));
  t.false(contains(a, parseIp('::1')));
  t.true(overlaps(a, parseCidr('10.0.0.0/16')));
  t.false(overlaps(a, parseCidr('10.0.10.0/24')));
  t.false(overlaps(a, parseCidr('fd00::/8')));
});

test('loopback, mapped addresses and reverse names', (t) => {
  t.true(isLoopback(parseIp('127.0.0.1')));
  t.true(isLoopback(parseIp('::1')));
  t.true(isLoopback(parseIp('::ffff:127.0.0.1')));
  t.false(isLoopback(parseIp('10.0.0.1')));
  t.is(unmapV4(parseIp('::ffff:10.1.2.3')).family, 4);
  t.is(reverseName(parseIp('10.0.9.2')), '2.9.0.10.in-addr.arpa');
  const v6 = parseIp('fd00::1');
  t.is(parseReverseName(reverseName(v6))?.value, v6.value);
  t.is(parseReverseName('2.9.0.10.in-addr.arpa.')?.value, parseIp('10.0.9.2').value);
  t.is(parseReverseName('9.0.10.in-addr.arpa'), undefined);
  t.is(parseReverseName('300.9.0.10.in-addr.arpa'), undefined);
});
