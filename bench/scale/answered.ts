// Polling a daemon's DNS until a name is answered: how the benches see a write arrive.
import { createSocket } from 'node:dgram';
import * as packet from 'dns-packet';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Asks `name` A over UDP until it has an answer; ms from start, or undefined after `timeoutMs`. */
export async function untilAnswered(port: number, name: string, timeoutMs: number): Promise<number | undefined> {
  const sock = createSocket('udp4');
  const t0 = performance.now();
  try {
    let id = 0;
    for (;;) {
      id = (id + 1) & 0xffff;
      const q = packet.encode({ type: 'query', id, flags: packet.RECURSION_DESIRED, questions: [{ type: 'A', name }] });
      const answer = await new Promise<Buffer | undefined>((resolve) => {
        const timer = setTimeout(() => {
          sock.off('message', on);
          resolve(undefined);
        }, 50);
        const on = (m: Buffer): void => {
          if (m.readUInt16BE(0) !== id) return;
          clearTimeout(timer);
          sock.off('message', on);
          resolve(m);
        };
        sock.on('message', on);
        sock.send(q, port, '127.0.0.1');
      });
      if (answer && (answer[3]! & 0x0f) === 0 && answer.readUInt16BE(6) > 0) return performance.now() - t0;
      if (performance.now() - t0 > timeoutMs) return undefined;
      await sleep(1);
    }
  } finally {
    sock.close();
  }
}

