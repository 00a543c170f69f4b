// A DNS worker thread: one more UDP socket on the daemon's DNS address and port (SO_REUSEPORT:
// the kernel spreads client flows over the sockets), with its own answer index and resolver,
// built from the catalog state it starts with and kept current from the changes the main
// thread sends after it. Internal names are answered here;
// forwarding goes to the main thread, which owns the upstreams, their health and the cache.
// Metrics go back as snapshots. Only workers.ts starts this file.
import { parentPort, workerData } from 'node:worker_threads';
import { AnswerIndex } from './answers.js';
import type { ForwardResult } from './forward/forwarder.js';
import { DnsMetrics } from './metrics.js';
import { type Forwarder, Resolver } from './resolver.js';
import { DnsServer } from './server.js';
import type { Query } from './wire.js';
import type { FromWorker, ToWorker, WorkerInit } from './worker-protocol.js';

/** A forward the main thread did not answer in this long is answered SERVFAIL (it never should). */
const FORWARD_DEADLINE_MS = 15_000;

if (!parentPort) throw new Error('dns/worker.js runs only as a worker thread');
const port = parentPort;
const init = workerData as WorkerInit;
const post = (m: FromWorker, transfer?: ArrayBuffer[]): void => port.postMessage(m, transfer);

const index = new AnswerIndex(init.index);
index.rebuild(init.state);
const metrics = new DnsMetrics();

let nextId = 1;
const pending = new Map<number, { resolve: (r: ForwardResult) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
const forwarder: Forwarder = {
  forward(q: Query, maxSize: number): Promise<ForwardResult> {
    const id = nextId++;
    const raw = new Uint8Array(q.raw); // a copy: q.raw may be a view of the whole receive batch
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error('main thread did not answer a forward'));
      }, FORWARD_DEADLINE_MS);
      pending.set(id, { resolve, reject, timer });
      post({ t: 'forward', id, raw, maxSize }, [raw.buffer]);
    });
  },
};

const resolver = new Resolver({ index, forwarder, metrics });
const server = new DnsServer({
  host: init.host,
  port: init.port,
  resolver,
  udpOnly: true,
  reusePort: true,
  udpBatch: true,
  onError: (e) => post({ t: 'log', level: 'error', msg: `dns worker ${init.id}: ${e.message}` }),
});

const sendMetrics = (): void => post({ t: 'metrics', snapshot: metrics.snapshot() });
let timer: NodeJS.Timeout | undefined;

/** Lets the thread end: nothing of ours may keep its event loop alive after this. */
function finish(): void {
  clearInterval(timer);
  for (const p of pending.values()) clearTimeout(p.timer);
  pending.clear(); // their queries go unanswered: the socket is closed, the client retries
  port.close();
}

port.on('message', (m: ToWorker) => {
  switch (m.t) {
    case 'change':
      index.apply(m.change);
      post({ t: 'applied', generation: m.generation });
      break;
    case 'state':
      index.rebuild(m.state);
      post({ t: 'applied', generation: m.generation });
      break;
    case 'repair':
      index.applyRepair(m.repair);
      post({ t: 'applied', generation: m.generation });
      break;
    case 'forwarded': {
      const p = pending.get(m.id);
      if (!p) break;
      pending.delete(m.id);
      clearTimeout(p.timer);
      if (m.result) p.resolve({ reply: Buffer.from(m.result.reply.buffer, m.result.reply.byteOffset, m.result.reply.byteLength), rcode: m.result.rcode, source: m.result.source });
      else p.reject(new Error(m.error ?? 'forward failed'));
      break;
    }
    case 'stop':
      clearInterval(timer);
      void server.stop().then(() => {
        sendMetrics();
        post({ t: 'stopped' });
        finish();
      });
      break;
  }
});

server.start().then(
  () => {
    timer = setInterval(sendMetrics, init.metricsIntervalMs);
    post({ t: 'ready', port: server.port, generation: init.generation });
  },
  (e: unknown) => {
    post({ t: 'failed', error: (e as Error).message, code: (e as NodeJS.ErrnoException).code });
    finish();
  },
);
