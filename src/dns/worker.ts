// A DNS worker thread: one more UDP socket on the daemon's DNS address and port (SO_REUSEPORT:
// the kernel spreads client flows over the sockets), with its own answer index and resolver,
// built here from the catalog state the main thread sends in parts (with the changes committed
// meanwhile) and kept current from the changes it sends after. It binds its socket only once
// its index is built. Internal names are answered here;
// forwarding goes to the main thread, which owns the upstreams, their health and the cache.
// Metrics go back as snapshots. Only workers.ts starts this file.
import { parentPort, workerData } from 'node:worker_threads';
import type { AppliedChange } from '../catalog/changes.js';
import { type CatalogState, emptyState } from '../catalog/model.js';
import { AnswerIndex } from './answers.js';
import type { ForwardResult } from './forward/forwarder.js';
import { DnsMetrics } from './metrics.js';
import { type Forwarder, Resolver } from './resolver.js';
import { DnsServer } from './server.js';
import type { Query } from './wire.js';
import type { FromWorker, LoadPart, ToWorker, WorkerInit } from './worker-protocol.js';

/** A forward the main thread did not answer in this long is answered SERVFAIL (it never should). */
const FORWARD_DEADLINE_MS = 15_000;

if (!parentPort) throw new Error('dns/worker.js runs only as a worker thread');
const port = parentPort;
const init = workerData as WorkerInit;
const post = (m: FromWorker, transfer?: ArrayBuffer[]): void => port.postMessage(m, transfer);

const index = new AnswerIndex(init.index);
/** The state being loaded (parts plus the changes sent meanwhile), until 'loaded'. */
let staging: CatalogState | undefined = emptyState();
/** The index was built from a complete load: it answers, and takes changes itself. */
let built = false;
let serving = false;
let stopping = false;
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

/** A change into the state being loaded: its objects replace (or remove) what parts brought. */
function stage(s: CatalogState, change: AppliedChange): void {
  for (const p of change.puts) (s[`${p.kind}s`] as Record<string, unknown>)[p.id] = p.value;
  for (const d of change.deletes) delete (s[`${d.kind}s`] as Record<string, unknown>)[d.id];
}

port.on('message', (m: ToWorker) => {
  switch (m.t) {
    case 'change':
      if (staging) stage(staging, m.change);
      if (built) {
        index.apply(m.change);
        post({ t: 'applied', generation: m.generation });
      }
      break;
    case 'load-begin':
      staging = emptyState();
      break;
    case 'load': {
      const part = JSON.parse(m.part) as LoadPart;
      if (staging) for (const k of ['networks', 'services', 'tasks', 'containers'] as const) Object.assign(staging[k], part[k]);
      break;
    }
    case 'loaded':
      if (!staging) break;
      staging.revision = m.revision;
      index.rebuild(staging);
      staging = undefined;
      built = true;
      post({ t: 'applied', generation: m.generation });
      if (!serving && !stopping) serve(m.generation);
      break;
    case 'repair':
      // A worker still loading gets the repaired objects with its load.
      if (built) {
        index.applyRepair(m.repair);
        post({ t: 'applied', generation: m.generation });
      }
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
      stopping = true;
      clearInterval(timer);
      void server.stop().then(() => {
        sendMetrics();
        post({ t: 'stopped' });
        finish();
      });
      break;
  }
});

/** Binds the socket: only once the index answers, so no query meets an empty one. */
function serve(generation: number): void {
  serving = true;
  server.start().then(
    () => {
      timer = setInterval(sendMetrics, init.metricsIntervalMs);
      post({ t: 'ready', port: server.port, generation });
    },
    (e: unknown) => {
      post({ t: 'failed', error: (e as Error).message, code: (e as NodeJS.ErrnoException).code });
      finish();
    },
  );
}
