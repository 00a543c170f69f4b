// The request engine against a scripted transport: batching, reply matching,
// dumps, errors, timeouts. No kernel needed.
import test from 'ava';
import { NetlinkChannel, type Transport } from '../../src/balancer/netlink/channel.js';
import { NetlinkError, NetlinkTimeoutError } from '../../src/balancer/netlink/errors.js';
import {
  NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_MULTI, NLM_F_REQUEST, encodeNlMsg, parseNlMsgs,
  type NlMsg,
} from '../../src/balancer/netlink/nlmsg.js';

type Responder = (req: NlMsg) => Buffer[];

/** Answers each request message through `respond`; replies become readable datagrams. */
class ScriptedTransport implements Transport {
  readonly portId = 77;
  readonly datagrams: Buffer[] = [];
  private readonly queue: Buffer[] = [];
  constructor(private readonly respond: Responder) {}
  send(d: Uint8Array): void {
    this.datagrams.push(Buffer.from(d));
    for (const m of parseNlMsgs(Buffer.from(d))) this.queue.push(...this.respond(m));
  }
  recv(): Buffer | null {
    return this.queue.shift() ?? null;
  }
  async waitReadable(timeoutMs: number): Promise<boolean> {
    if (this.queue.length) return true;
    await new Promise((r) => setTimeout(r, Math.min(timeoutMs, 5)));
    return this.queue.length > 0;
  }
  close(): void {}
  push(d: Buffer): void {
    this.queue.push(d);
  }
}

const ack = (req: NlMsg, errno = 0): Buffer => {
  const body = Buffer.alloc(20);
  body.writeInt32LE(-errno, 0);
  body.writeUInt32LE(16 + req.payload.length, 4);
  body.writeUInt16LE(req.type, 8);
  body.writeUInt16LE(req.flags, 10);
  body.writeUInt32LE(req.seq, 12);
  body.writeUInt32LE(req.pid, 16);
  return encodeNlMsg({ type: NLMSG_ERROR, flags: 0x100, seq: req.seq, pid: req.pid }, body);
};
const data = (req: NlMsg, v: number, flags = 0): Buffer =>
  encodeNlMsg({ type: req.type, flags, seq: req.seq, pid: req.pid }, Buffer.from([v, 1, 0, 0]));
const done = (req: NlMsg, errno = 0): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32LE(-errno, 0);
  return encodeNlMsg({ type: NLMSG_DONE, flags: NLM_F_MULTI, seq: req.seq, pid: req.pid }, b);
};
const req = (v: number, dump = false) => ({ type: 0x20, payload: Buffer.from([v, 1, 0, 0]), op: `op${v}`, dump });

test('a batch goes out as one datagram; per-request outcomes come back in order', async (t) => {
  const tr = new ScriptedTransport((m) => [ack(m, m.payload[0] === 2 ? 17 : 0)]);
  const ch = new NetlinkChannel(tr, { seq: 100 });
  const out = await ch.batch([req(1), req(2), req(3)]);
  t.is(tr.datagrams.length, 1);
  const sent = parseNlMsgs(tr.datagrams[0]!);
  t.deepEqual(sent.map((m) => m.seq), [101, 102, 103]);
  t.true(sent.every((m) => m.flags === (NLM_F_REQUEST | NLM_F_ACK) && m.pid === 77));
  t.true(out[0]?.ok);
  t.false(out[1]?.ok);
  t.true(out[2]?.ok);
  const e = out[1]?.ok === false ? out[1].error : undefined;
  t.true(e instanceof NetlinkError);
  t.is(e?.code, 'EEXIST');
  t.is(e?.op, 'op2');
});

test('maxBatch splits big batches into several datagrams', async (t) => {
  const tr = new ScriptedTransport((m) => [ack(m)]);
  const ch = new NetlinkChannel(tr, { maxBatch: 4 });
  const out = await ch.batch(Array.from({ length: 10 }, (_, i) => req(i)));
  t.is(out.length, 10);
  t.true(out.every((o) => o.ok));
  t.deepEqual(tr.datagrams.map((d) => parseNlMsgs(d).length), [4, 4, 2]);
});

test('replies may arrive out of order and coalesced; they are matched by sequence number', async (t) => {
  const pending: NlMsg[] = [];
  const tr = new ScriptedTransport((m) => {
    pending.push(m);
    if (pending.length < 2) return [];
    const [a, b] = pending as [NlMsg, NlMsg];
    return [Buffer.concat([data(b, 9), ack(b)]), Buffer.concat([data(a, 8), ack(a, 3)])];
  });
  const ch = new NetlinkChannel(tr);
  const [ra, rb] = await ch.batch([req(1), req(2)]);
  t.false(ra?.ok);
  t.is(ra?.ok === false ? ra.error.code : '', 'ESRCH');
  t.true(rb?.ok);
  t.is(rb?.ok ? rb.messages[0]?.payload[0] : -1, 9);
});

test('dumps collect multipart messages until NLMSG_DONE, across datagrams', async (t) => {
  const tr = new ScriptedTransport((m) => {
    t.is(m.flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP);
    return [Buffer.concat([data(m, 1, NLM_F_MULTI), data(m, 2, NLM_F_MULTI)]), Buffer.concat([data(m, 3, NLM_F_MULTI), done(m)])];
  });
  const msgs = await new NetlinkChannel(tr).request(req(4, true));
  t.deepEqual(msgs.map((m) => m.payload[0]), [1, 2, 3]);
});

test('a dump failing midway (errno in NLMSG_DONE) or flagged DUMP_INTR rejects', async (t) => {
  const failing = new NetlinkChannel(new ScriptedTransport((m) => [data(m, 1, NLM_F_MULTI), done(m, 90)]));
  await t.throwsAsync(failing.request(req(4, true)), { instanceOf: NetlinkError, code: 'EMSGSIZE' } as never);
  const intr = new NetlinkChannel(new ScriptedTransport((m) => [data(m, 1, NLM_F_MULTI | NLM_F_DUMP_INTR), done(m)]));
  const e = await t.throwsAsync(intr.request(req(4, true)));
  t.is((e as NetlinkError).code, 'EINTR');
});

test('no reply before the deadline: ETIMEDOUT; a late reply is dropped and the channel keeps working', async (t) => {
  let silent = true;
  let late: NlMsg | undefined;
  const tr = new ScriptedTransport((m) => {
    if (silent) {
      late = m;
      return [];
    }
    return [ack(m)];
  });
  const ch = new NetlinkChannel(tr, { timeoutMs: 20 });
  const e = await t.throwsAsync(ch.request(req(1)));
  t.true(e instanceof NetlinkTimeoutError);
  t.is((e as NetlinkError).code, 'ETIMEDOUT');
  silent = false;
  tr.push(ack(late!, 17)); // the stale answer shows up before the next reply
  await t.notThrowsAsync(ch.request(req(2)));
});

test('concurrent callers are serialized and each gets its own reply', async (t) => {
  const tr = new ScriptedTransport((m) => [data(m, m.payload[0]!), ack(m)]);
  const ch = new NetlinkChannel(tr);
  const res = await Promise.all([1, 2, 3, 4].map((v) => ch.request(req(v))));
  t.deepEqual(res.map((r) => r[0]?.payload[0]), [1, 2, 3, 4]);
});

test('requests after close() fail with EBADF', async (t) => {
  const ch = new NetlinkChannel(new ScriptedTransport((m) => [ack(m)]));
  ch.close();
  const e = await t.throwsAsync(ch.request(req(1)));
  t.is((e as NetlinkError).code, 'EBADF');
});
