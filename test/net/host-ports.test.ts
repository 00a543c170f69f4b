import test from 'ava';
import { createServer } from 'node:net';
import { listeningPorts, parseProcNet } from '../../src/net/host-ports.js';
import { parsePortRange } from '../../src/config.js';

const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0277 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:9C40 0100007F:0277 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
`;

test('/proc/net: TCP counts listening sockets only; UDP every bound one', (t) => {
  t.deepEqual(parseProcNet(TCP, 'tcp'), [0x277]);
  t.deepEqual(parseProcNet(TCP, 'udp'), [0x277, 0x9c40]);
});

test('a real listener on this host is seen', async (t) => {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => srv.close());
  const port = (srv.address() as { port: number }).port;
  t.true(listeningPorts(0)('tcp').has(port));
});

test('--publish-range: LO-HI within 1-65535, not inverted', (t) => {
  t.deepEqual(parsePortRange('30000-30001', 'publish-range'), { lo: 30000, hi: 30001 });
  t.throws(() => parsePortRange('32767-30000', 'publish-range'), { message: 'publish-range "32767-30000" is inverted: the low port comes first (30000-32767)' });
  t.throws(() => parsePortRange('0-100', 'publish-range'), { message: /ports from 1 to 65535/ });
  t.throws(() => parsePortRange('30000-70000', 'publish-range'), { message: /ports from 1 to 65535/ });
  t.throws(() => parsePortRange('30000', 'publish-range'), { message: /takes LO-HI/ });
});
