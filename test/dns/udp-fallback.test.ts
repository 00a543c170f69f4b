// Without the native addon the DNS server says so once and serves UDP through node:dgram.
// (Its own file: ava runs each file in a fresh process, and the addon load is cached.)
import test from 'ava';
import * as dgram from 'node:dgram';
import * as packet from 'dns-packet';

test('missing addon: one notice, node:dgram answers', async (t) => {
  process.env.VIPDNS_UDP_ADDON = '/nonexistent/vipdns_udp.node';
  const { DnsServer } = await import('../../src/dns/server.js');
  const { Resolver } = await import('../../src/dns/resolver.js');
  const { AnswerIndex, DEFAULT_TTL } = await import('../../src/dns/answers.js');
  const { emptyState } = await import('../../src/catalog/model.js');
  const index = new AnswerIndex({ suffix: 'vipdns.internal', ttl: DEFAULT_TTL, loopbackSeesAll: true, othersSeeAll: false });
  index.rebuild(emptyState());
  const notices: string[] = [];
  const server = new DnsServer({ host: '127.0.0.1', port: 0, resolver: new Resolver({ index }), onNotice: (m) => notices.push(m) });
  await server.start();
  t.teardown(() => server.stop());
  t.is(notices.length, 1);
  t.regex(notices[0]!, /batched UDP unavailable.*node:dgram/);
  const c = dgram.createSocket('udp4');
  t.teardown(() => c.close());
  const reply = new Promise<packet.Packet>((res) => c.on('message', (m) => res(packet.decode(m))));
  c.send(packet.encode({ id: 5, type: 'query', questions: [{ name: 'nope.vipdns.internal', type: 'A', class: 'IN' }] }), server.port, '127.0.0.1');
  t.is((await reply).id, 5);
});
