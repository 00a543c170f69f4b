// Client for the VM suite, run in the client namespace: N fresh TCP connections (or UDP datagrams from
// fresh sockets) to HOST:PORT, a few at a time and with a generous timeout (TCG is slow), then one JSON
// line {"counts":{backend:n},"errors":k}. Backends greet with their name (test/netns/fixtures/echo-server).
//   node burst.js tcp|udp HOST PORT N
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';

const [proto, host = '', portText = '0', nText = '1'] = process.argv.slice(2);
const port = Number(portText);
const TIMEOUT_MS = 10_000;

function once(): Promise<string> {
  return new Promise((resolve, reject) => {
    let abort = (): void => undefined;
    // A timed-out socket is closed: a TCP one left open would retry its SYN for two minutes and keep us alive.
    const timer = setTimeout(() => (abort(), reject(new Error('timeout'))), TIMEOUT_MS);
    if (proto === 'udp') {
      const s = createSocket('udp4');
      abort = () => s.close();
      s.on('message', (m) => (clearTimeout(timer), s.close(), resolve(m.toString())));
      s.on('error', (e) => (clearTimeout(timer), s.close(), reject(e)));
      s.send('hi', port, host);
      return;
    }
    const s = connect({ host, port });
    abort = () => s.destroy();
    let buf = '';
    s.on('data', (b) => {
      buf += b.toString();
      const i = buf.indexOf('\n');
      if (i < 0) return;
      clearTimeout(timer);
      s.end();
      resolve(buf.slice(0, i));
    });
    s.on('error', (e) => (clearTimeout(timer), reject(e)));
  });
}

const counts: Record<string, number> = {};
let errors = 0;
let left = Number(nText);
const worker = async (): Promise<void> => {
  while (left > 0) {
    left--;
    try {
      const who = await once();
      counts[who] = (counts[who] ?? 0) + 1;
    } catch {
      errors++;
    }
  }
};
await Promise.all(Array.from({ length: 4 }, worker));
console.log(JSON.stringify({ counts, errors }));
process.exit(0);
