import test from 'ava';
import { checkPorts } from '../../src/catalog/validate.js';

test('a published target can be named in a separate entry (--publish 8080:80 --port http=80): one port', (t) => {
  t.deepEqual(checkPorts([{ target: 80, published: 8080 }, { target: 80, name: 'http' }]), [{ protocol: 'tcp', target: 80, published: 8080, name: 'http' }]);
  t.deepEqual(checkPorts([{ target: 80, name: 'http' }, { target: 80, published: 8080 }]), [{ protocol: 'tcp', target: 80, published: 8080, name: 'http' }]);
  t.deepEqual(
    checkPorts([{ target: 80, published: 8080 }, { target: 80, published: 8081 }]).map((p) => p.published),
    [8080, 8081],
    'one target on two host ports',
  );
  t.deepEqual(checkPorts([{ target: 53, name: 'dns', protocol: 'udp' }, { target: 53, name: 'dns', protocol: 'tcp' }]).length, 2, 'protocols are distinct ports');
});

test('duplicates that say nothing new, or contradict, are refused', (t) => {
  t.throws(() => checkPorts([{ target: 80 }, { target: 80 }]), { message: 'target port 80/tcp is listed twice' });
  t.throws(() => checkPorts([{ target: 80, name: 'a', published: 8080 }, { target: 80, name: 'b' }]), { message: 'target port 80/tcp has two names, "a" and "b"' });
  t.throws(() => checkPorts([{ target: 80, published: 8080 }, { target: 81, published: 8080 }]), { message: 'published port 8080/tcp is listed twice' });
});
