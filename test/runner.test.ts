// The shared runner on a fake clock: coalescing, debounce with a cap, min interval, back-off growth,
// cap, jitter bounds and reset, retries, the periodic run, stop(); and withRetries.
import test from 'ava';
import { Backoff, type Clock, Runner, type RunnerOptions, withRetries } from '../src/runner.js';

/** Timers fire only when advance() passes their time; promises settle between timers. */
class FakeClock implements Clock {
  t = 0;
  armed = 0; // timers ever set
  private timers: Array<{ at: number; seq: number; f: () => void }> = [];
  private seq = 0;
  now(): number {
    return this.t;
  }
  setTimer(f: () => void, ms: number): () => void {
    this.armed++;
    const timer = { at: this.t + Math.max(0, ms), seq: this.seq++, f };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((x) => x !== timer);
    };
  }
  get pending(): number {
    return this.timers.length;
  }
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    await settle();
    for (;;) {
      const next = this.timers.filter((x) => x.at <= end).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!next) break;
      this.timers = this.timers.filter((x) => x !== next);
      this.t = next.at;
      next.f();
      await settle();
    }
    this.t = end;
  }
}

const settle = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

/** A runner whose runs are recorded (start time, reason) and fail while `failing` says so. */
function harness<R = string>(o: Partial<RunnerOptions<R>> = {}) {
  const clock = new FakeClock();
  const runs: Array<{ at: number; reason: R }> = [];
  const errors: Array<number | undefined> = [];
  const ctl = { failing: false, hold: undefined as Promise<void> | undefined };
  const runner = new Runner<R>({
    run: async (reason) => {
      runs.push({ at: clock.now(), reason });
      if (ctl.hold) await ctl.hold;
      if (ctl.failing) throw new Error('boom');
    },
    backoff: { initialMs: 100, maxMs: 1000, jitter: 'none' },
    onError: (_e, _r, ms) => errors.push(ms),
    clock,
    ...o,
  });
  runner.start();
  return { clock, runs, errors, ctl, runner };
}

function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

test('a burst of requests within the quiet time is one run, with the reasons merged', async (t) => {
  const { clock, runs, runner } = harness({ debounceMs: 50, maxDelayMs: 1000, merge: (a, b) => (a < b ? b : a) });
  for (const r of ['b', 'c', 'a']) {
    runner.request(r);
    await clock.advance(30);
  }
  t.deepEqual(runs, [], 'each request restarts the quiet time');
  await clock.advance(20); // 50 ms after the last one
  t.deepEqual(runs, [{ at: 110, reason: 'c' }]);
  await clock.advance(1000);
  t.is(runs.length, 1);
  await runner.stop();
});

test('requests that never stop still run after maxDelayMs from the first one of the burst', async (t) => {
  const { clock, runs, runner } = harness({ debounceMs: 50, maxDelayMs: 100 });
  for (let i = 0; i < 25; i++) {
    runner.request('x');
    await clock.advance(10);
  }
  t.deepEqual(
    runs.map((r) => r.at),
    [100, 200],
  );
  await runner.stop();
});

test('with debounce = maxDelay (coalescing) the timer is not moved by every request', async (t) => {
  const { clock, runs, runner } = harness({ debounceMs: 100, maxDelayMs: 100 });
  runner.request('x');
  await clock.advance(40);
  const armed = clock.armed;
  for (let i = 0; i < 100; i++) runner.request('x');
  t.is(clock.armed, armed);
  await clock.advance(60);
  t.deepEqual(runs, [{ at: 100, reason: 'x' }]);
  await runner.stop();
});

test('runs never overlap: calls during a run become one follow-up, and each call resolves after a run that includes it', async (t) => {
  const { clock, runs, ctl, runner } = harness({ merge: (a, b) => a + b });
  const g = gate();
  ctl.hold = g.promise;
  const first = runner.run('a');
  await clock.advance(0);
  t.true(runner.running);
  let followed = 0;
  const calls = ['b', 'c', 'd'].map((r) => runner.run(r).then(() => followed++));
  await clock.advance(10);
  t.deepEqual(runs, [{ at: 0, reason: 'a' }], 'nothing starts while a run is in flight');
  ctl.hold = undefined;
  g.open();
  await first;
  await Promise.all(calls);
  t.is(followed, 3);
  t.deepEqual(runs, [
    { at: 0, reason: 'a' },
    { at: 10, reason: 'bcd' },
  ]);
  await runner.stop();
});

test('run() takes a waiting debounced request along', async (t) => {
  const { clock, runs, runner } = harness({ debounceMs: 50, merge: (a, b) => a + b });
  runner.request('u');
  await clock.advance(10);
  await runner.run('n');
  await clock.advance(1000);
  t.deepEqual(runs, [{ at: 10, reason: 'un' }]);
  await runner.stop();
});

test('minIntervalMs: runs start at least that far apart, however they were asked for', async (t) => {
  const { clock, runs, runner } = harness({ minIntervalMs: 100, debounceMs: 5 });
  void runner.run('a');
  await clock.advance(10);
  void runner.run('b');
  runner.request('c');
  await clock.advance(10);
  void runner.run('d');
  await clock.advance(500);
  runner.request('e'); // long after: only the debounce applies
  await clock.advance(10);
  void runner.run('f'); // gated until 625 ...
  await clock.advance(50);
  await runner.stop(); // ... and cancelled
  t.is(clock.pending, 0);
  await clock.advance(1000);
  t.deepEqual(
    runs.map((r) => [r.at, r.reason]),
    [
      [0, 'a'],
      [100, 'd'],
      [525, 'e'],
    ],
  );
});

test('a failing run is retried with a back-off that doubles up to its cap, with the retry reason', async (t) => {
  const { clock, runs, errors, ctl, runner } = harness({ retryReason: 'retry' });
  ctl.failing = true;
  void runner.run('update');
  await clock.advance(5000);
  t.deepEqual(errors.slice(0, 7), [100, 200, 400, 800, 1000, 1000, 1000]);
  t.deepEqual(
    runs.slice(0, 7).map((r) => r.at),
    [0, 100, 300, 700, 1500, 2500, 3500],
  );
  t.deepEqual([...new Set(runs.slice(1).map((r) => r.reason))], ['retry']);
  await runner.stop();
});

test('the back-off starts over after a success; a success cancels a pending retry', async (t) => {
  const { clock, runs, errors, ctl, runner } = harness();
  ctl.failing = true;
  void runner.run('a');
  await clock.advance(100 + 200 + 50); // fails at 0, 100, 300; next retry due at 700
  t.deepEqual(errors, [100, 200, 400]);
  ctl.failing = false;
  await runner.run('b'); // succeeds at 350
  await clock.advance(1000);
  t.is(runs.length, 4, 'the retry due at 700 did not run');
  ctl.failing = true;
  void runner.run('c');
  await clock.advance(0);
  t.is(errors.at(-1), 100, 'shortest delay again');
  await runner.stop();
});

test('resetOnSuccess: false keeps the back-off growing until resetBackoff(); retry() asks for a run after the next delay', async (t) => {
  const { clock, runs, errors, ctl, runner } = harness<void>({ resetOnSuccess: false });
  ctl.failing = true;
  void runner.run();
  await clock.advance(50);
  ctl.failing = false;
  await clock.advance(100); // the retry at 100 succeeds
  t.deepEqual(errors, [100]);
  t.is(runner.retry(), 200, 'what it started broke later: the next step, not the first');
  t.is(runner.retry(), undefined, 'one retry at a time');
  await clock.advance(200);
  t.is(runs.length, 3);
  runner.resetBackoff();
  t.is(runner.retry(), 100);
  await runner.stop();
});

test('every: a periodic run with its own reason, as well as requested ones', async (t) => {
  let n = 0;
  const { clock, runs, runner } = harness({ every: { ms: 1000, reason: () => `tick${++n}` } });
  await clock.advance(2500);
  void runner.run('now');
  await clock.advance(600);
  t.deepEqual(
    runs.map((r) => [r.at, r.reason]),
    [
      [1000, 'tick1'],
      [2000, 'tick2'],
      [2500, 'now'],
      [3000, 'tick3'],
    ],
  );
  await runner.stop();
});

test('stop() cancels debounced, retried and periodic work, releases waiting callers and waits for the running run', async (t) => {
  const { clock, runs, ctl, runner } = harness({ debounceMs: 50, every: { ms: 300, reason: () => 'tick' } });
  ctl.failing = true;
  void runner.run('fails'); // a retry is due at 100
  await clock.advance(1);
  const g = gate();
  ctl.hold = g.promise;
  ctl.failing = false;
  void runner.run('held'); // running (held) while the retry is still due
  await clock.advance(1);
  t.true(runner.running);
  const waiting = runner.run('queued'); // waits behind it
  runner.request('debounced');
  let stopped = false;
  const stopping = runner.stop().then(() => (stopped = true));
  await clock.advance(0);
  t.false(stopped, 'stop waits for the running run');
  g.open();
  await stopping;
  await waiting;
  const before = runs.length;
  t.is(clock.pending, 0, 'no timer left');
  await clock.advance(10_000);
  t.is(runs.length, before);
  runner.request('after');
  await runner.run('after');
  t.is(runs.length, before, 'a stopped runner does nothing');
  // start() again: a fresh back-off and the periodic run come back.
  runner.start();
  await clock.advance(300);
  t.deepEqual(runs.at(-1)?.reason, 'tick');
  await runner.stop();
});

test('jitter: none is exact, half stays in [d/2, d), full in [0, d), all capped and varying', (t) => {
  const steps = [100, 200, 400, 800, 1000, 1000];
  for (const jitter of ['none', 'half', 'full'] as const) {
    const seen = steps.map(() => new Set<number>());
    for (let i = 0; i < 500; i++) {
      const b = new Backoff({ initialMs: 100, maxMs: 1000, jitter });
      steps.forEach((d, k) => {
        const ms = b.next();
        seen[k]!.add(ms);
        const lo = jitter === 'none' ? d : jitter === 'half' ? d / 2 : 0;
        const hi = jitter === 'none' ? d : d - 1;
        if (ms < lo || ms > hi) t.fail(`${jitter} step ${k}: ${ms} outside [${lo}, ${hi}]`);
      });
    }
    if (jitter === 'none') t.true(seen.every((s) => s.size === 1));
    else t.true(seen.every((s) => s.size > 20), `${jitter} varies`);
  }
  const b = new Backoff({ initialMs: 100, maxMs: 1000, jitter: 'none' });
  b.next();
  b.next();
  b.reset();
  t.is(b.next(), 100);
});

test('withRetries: retries while retryable, pausing on the back-off after beforeRetry; gives up after the attempts', async (t) => {
  const pauses: number[] = [];
  const order: string[] = [];
  const sleep = async (ms: number): Promise<void> => {
    pauses.push(ms);
    order.push('sleep');
  };
  const opts = { backoff: { initialMs: 2, maxMs: 8, jitter: 'none' as const }, sleep, retryable: (e: unknown) => (e as Error).message === 'again', beforeRetry: () => void order.push('caught up') };

  let n = 0;
  t.is(await withRetries(async (attempt) => (++n < 4 ? Promise.reject(new Error('again')) : attempt), { ...opts, attempts: 10 }), 4);
  t.deepEqual(pauses, [2, 4, 8]);
  t.deepEqual(order.slice(0, 2), ['caught up', 'sleep']);

  pauses.length = 0;
  n = 0;
  await t.throwsAsync(withRetries(() => (n++, Promise.reject(new Error('again'))), { ...opts, attempts: 5 }), { message: 'again' });
  t.is(n, 5, 'five attempts in all');
  t.deepEqual(pauses, [2, 4, 8, 8]);

  n = 0;
  await t.throwsAsync(withRetries(() => (n++, Promise.reject(new Error('final'))), { ...opts, attempts: 5 }), { message: 'final' });
  t.is(n, 1, 'not retryable: thrown at once');
});

test('a failed run is retried after the back-off even with no onError listener (the balancer has none)', async (t) => {
  const { clock, runs, ctl, runner } = harness({ onError: undefined as never, retryReason: 'retry' });
  ctl.failing = true;
  void runner.run('update');
  await settle();
  t.deepEqual(runs.map((r) => r.reason), ['update']);
  ctl.failing = false;
  await clock.advance(100);
  await settle();
  t.deepEqual(runs.map((r) => r.reason), ['update', 'retry'], 'retried after the first delay');
  await runner.stop();
});
