// An upstream that is the daemon's own DNS address would loop: which addresses count as "us"
// for a given listen address (issue 16), and the configuration refusing them before start.
import test from 'ava';
import { loadConfig } from '../../../src/config.js';
import { dropSelf } from '../../../src/dns/forward/resolvconf.js';
import { isSelf, localAddresses } from '../../../src/dns/forward/self.js';

const LOCAL = ['127.0.0.1', '::1', '10.0.9.1', '2001:db8::1', 'fe80::1'];
const self = (up: string, upPort: number, listen: string, port: number): boolean => isSelf({ host: up, port: upPort }, { host: listen, port }, LOCAL);

test('a specific listen address: only that address on that port', (t) => {
  t.true(self('127.0.0.1', 1053, '127.0.0.1', 1053));
  t.false(self('127.0.0.1', 53, '127.0.0.1', 1053), 'another port');
  t.false(self('127.0.0.2', 1053, '127.0.0.1', 1053), 'another loopback address is not bound');
  t.false(self('10.0.9.1', 1053, '127.0.0.1', 1053), 'a local address we do not listen on');
  t.true(self('10.0.9.1', 53, '10.0.9.1', 53));
  t.true(self('::ffff:127.0.0.1', 1053, '127.0.0.1', 1053), 'IPv4-mapped');
  t.true(self('0.0.0.0', 1053, '127.0.0.1', 1053), '0.0.0.0 is delivered to loopback');
  t.true(self('::1', 1053, '::1', 1053));
});

test('a wildcard listen address: every address of this host, of the families the socket takes', (t) => {
  for (const up of ['127.0.0.1', '127.0.0.53', '10.0.9.1', '0.0.0.0']) t.true(self(up, 1053, '0.0.0.0', 1053), up);
  t.false(self('10.0.9.2', 1053, '0.0.0.0', 1053), 'not an address of this host');
  t.false(self('::1', 1053, '0.0.0.0', 1053), 'an IPv4 socket does not get IPv6');
  t.false(self('127.0.0.1', 53, '0.0.0.0', 1053), 'another port');
  for (const up of ['::1', '2001:db8::1', '127.0.0.1', '10.0.9.1', '::']) t.true(self(up, 1053, '::', 1053), `${up} on a dual-stack socket`);
  t.false(self('2001:db8::2', 1053, '::', 1053));
});

test('listen port 0 (chosen at bind) cannot be named by an upstream', (t) => {
  t.false(self('127.0.0.1', 53, '127.0.0.1', 0));
});

test('resolv.conf on a wildcard at 53: a local interface address is us too, not only loopback', (t) => {
  t.deepEqual(dropSelf(['10.0.9.1', '127.0.0.53', '192.0.2.53'], { host: '0.0.0.0', port: 53 }, LOCAL), { kept: ['192.0.2.53'], dropped: ['10.0.9.1', '127.0.0.53'] });
  t.deepEqual(dropSelf(['10.0.9.1'], { host: '0.0.0.0', port: 1053 }, LOCAL).dropped, [], 'resolv.conf means port 53');
});

test('localAddresses reads loopback among the interfaces', (t) => {
  t.true(localAddresses().includes('127.0.0.1'));
});

test('config refuses an upstream that is the DNS listen address, naming both, from a flag or the environment', (t) => {
  const e1 = t.throws(() => loadConfig({ flags: { dnsListen: '0.0.0.0:1053', upstream: ['10.0.9.1:1053'] }, localAddresses: LOCAL }));
  t.is(e1?.message, "upstream 10.0.9.1:1053 is this daemon's own DNS address (dns-listen 0.0.0.0:1053): forwarding to it would loop; give another resolver's address, or none to use /etc/resolv.conf");
  const e2 = t.throws(() => loadConfig({ env: { VIPDNS_DNS_LISTEN: '[::1]:53', VIPDNS_UPSTREAM: '192.0.2.53,::1' }, localAddresses: LOCAL }));
  t.regex(e2?.message ?? '', /^upstream \[::1\]:53 is this daemon's own DNS address \(dns-listen \[::1\]:53\)/);
  t.deepEqual(loadConfig({ flags: { dnsListen: '127.0.0.1:1053', upstream: ['127.0.0.1:53', '10.0.9.1:1053'] }, localAddresses: LOCAL }).upstreams, ['127.0.0.1:53', '10.0.9.1:1053']);
  t.throws(() => loadConfig({ flags: { upstream: ['resolver.example'] } }), { message: /upstream "resolver\.example" is not ADDR\[:PORT\]/ });
});
