// DNS load generator, run as a worker thread so that the bench's own HTTP work does not delay
// it: A queries over UDP at a paced rate for a fixed time, names drawn at random from a list,
// latency per answer; a query without an answer after `lostAfterMs` counts as lost.
import { createSocket } from 'node:dgram';
import { parentPort, workerData } from 'node:worker_threads';
import * as packet from 'dns-packet';

export interface DnsLoadInput {
  host: string;
  port: number;
  names: string[];
  qps: number;
  seconds: number;
  lostAfterMs: number;
}

export interface DnsLoadResult {
  sent: number;
  /** answered within lostAfterMs, latency in ms */
  latencies: Float64Array;
  lost: number;
  /** answers with an rcode other than NOERROR, or no answer record */
  bad: number;
}

export function runDnsLoad(input: DnsLoadInput, onStart?: () => void): Promise<DnsLoadResult> {
  const { host, port, names, qps, seconds, lostAfterMs } = input;
  const queries = names.map((name) => packet.encode({ type: 'query', id: 0, flags: packet.RECURSION_DESIRED, questions: [{ type: 'A', name }] }));
  const sock = createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
  const sentAt = new Float64Array(65536);
  const inFlight = new Uint8Array(65536);
  const latencies = new Float64Array(Math.ceil(qps * seconds) + 16);
  let answered = 0;
  let sent = 0;
  let lost = 0;
  let bad = 0;
  let nextId = 0;
  sock.on('message', (msg) => {
    if (msg.length < 12) return;
    const id = msg.readUInt16BE(0);
    if (!inFlight[id]) return; // already counted lost
    inFlight[id] = 0;
    const ms = performance.now() - sentAt[id]!;
    if (ms > lostAfterMs) {
      lost++;
      return;
    }
    latencies[answered++] = ms;
    const rcode = msg[3]! & 0x0f;
    const ancount = msg.readUInt16BE(6);
    if (rcode !== 0 || ancount === 0) bad++;
  });
  return new Promise((resolve, reject) => {
    sock.once('error', reject);
    const t0 = performance.now();
    const end = t0 + seconds * 1000;
    const pace = (): void => {
      const now = performance.now();
      const due = Math.min(Math.ceil(qps * seconds), Math.floor(((now - t0) / 1000) * qps));
      while (sent < due) {
        const id = nextId;
        nextId = (nextId + 1) & 0xffff;
        if (inFlight[id]) lost++; // id reused: its query has waited 65,536 queries
        // A copy: send() reads the buffer later, after more queries have been stamped.
        const q = Buffer.from(queries[Math.floor(Math.random() * queries.length)]!);
        q.writeUInt16BE(id, 0);
        sentAt[id] = performance.now();
        inFlight[id] = 1;
        sock.send(q, port, host);
        sent++;
      }
      if (now < end) setTimeout(pace, 1);
      else
        setTimeout(() => {
          for (let id = 0; id < 65536; id++) if (inFlight[id]) lost++;
          sock.close();
          resolve({ sent, latencies: latencies.slice(0, answered), lost, bad });
        }, lostAfterMs + 50);
    };
    onStart?.();
    pace();
  });
}

if (parentPort && (workerData as { dnsLoad?: DnsLoadInput } | undefined)?.dnsLoad) {
  const port = parentPort;
  runDnsLoad((workerData as { dnsLoad: DnsLoadInput }).dnsLoad, () => port.postMessage('started')).then(
    (r) => port.postMessage(r),
    (e: Error) => port.postMessage({ error: e.message }),
  );
}
