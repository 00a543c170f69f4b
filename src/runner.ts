// Doing work again, in one place: the back-off (cockatiel's ExponentialBackoff), a retry loop for
// one operation, and a bounded-frequency runner (after kube-proxy's BoundedFrequencyRunner) for
// work that is requested often, must never overlap, and is retried when it fails. The reconciler,
// the Docker source, the DNS worker pool and the catalog's commit queue all use these.
import { ExponentialBackoff, type IBackoff, fullJitterGenerator, halfJitterGenerator, noJitterGenerator } from 'cockatiel';

/** Timers and time, injectable so tests can drive a runner with a fake clock. */
export interface Clock {
  now(): number;
  /** Calls f after ms; returns a function that cancels it. */
  setTimer(f: () => void, ms: number): () => void;
}

/** Background upkeep never holds the process open: the real clock's timers are unref'd. */
export const realClock: Clock = {
  now: () => performance.now(),
  setTimer(f, ms) {
    const t = setTimeout(f, ms).unref();
    return () => clearTimeout(t);
  },
};

/**
 * none: initialMs · 2ⁿ capped at maxMs. half: uniform in [d/2, d) — spread out, never hot.
 * full: uniform in [0, d) — for peers racing for the same thing (they should take turns).
 */
export type Jitter = 'none' | 'half' | 'full';

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** Default 'half'. */
  jitter?: Jitter;
}

const GENERATORS = { none: noJitterGenerator, half: halfJitterGenerator, full: fullJitterGenerator } as const;

/** Growing delays: each next() is the following step; reset() starts over. */
export class Backoff {
  private readonly factory: ExponentialBackoff<number>;
  private step: IBackoff<unknown> | undefined;

  constructor(o: BackoffOptions) {
    this.factory = new ExponentialBackoff({ initialDelay: o.initialMs, maxDelay: o.maxMs, generator: GENERATORS[o.jitter ?? 'half'] });
  }

  next(): number {
    this.step = this.step ? this.step.next(undefined) : this.factory.next();
    return this.step.duration;
  }

  reset(): void {
    this.step = undefined;
  }
}

export interface RetryOptions {
  /** Attempts in all, the first included. */
  attempts: number;
  backoff: BackoffOptions;
  /** Whether this failure is worth another attempt; anything else is thrown at once. */
  retryable: (e: unknown) => boolean;
  /** Runs before the pause, e.g. to wait until what caused the failure has been caught up with. */
  beforeRetry?: (e: unknown) => Promise<unknown> | void;
  /** The pause (tests replace it); default a real timer, which keeps the process alive: someone awaits it. */
  sleep?: (ms: number) => Promise<void>;
}

/** Runs fn until it succeeds, fails with an error that is not retryable, or has had every attempt. */
export async function withRetries<T>(fn: (attempt: number) => Promise<T>, o: RetryOptions): Promise<T> {
  let backoff: Backoff | undefined; // made on the first failure: most calls succeed at once
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (e) {
      if (attempt >= o.attempts || !o.retryable(e)) throw e;
      await o.beforeRetry?.(e);
      await sleep((backoff ??= new Backoff(o.backoff)).next());
    }
  }
}

export interface RunnerOptions<R> {
  /** The work. Runs never overlap. A throw is a failure: it runs again after the next back-off delay. */
  run: (reason: R) => Promise<void>;
  /** request() waits this long after the latest request for more to arrive. Default 0. */
  debounceMs?: number;
  /** ... but never longer than this after the first request of a burst. Default debounceMs. */
  maxDelayMs?: number;
  /** Runs start at least this far apart, however they were asked for. Default 0. */
  minIntervalMs?: number;
  /** Also run this often, whatever else happens (a safety net); reason() names each such run. */
  every?: { ms: number; reason: () => R };
  backoff: BackoffOptions;
  /** The back-off starts over after a successful run (default), or only on resetBackoff(). */
  resetOnSuccess?: boolean;
  /** What a retry runs with; default the failed run's reason. */
  retryReason?: R;
  /** Two reasons waiting for the same run become one. Default: the later. */
  merge?: (a: R, b: R) => R;
  /** A run failed; retryInMs is undefined when a retry was already due (or the runner is stopped). */
  onError?: (e: unknown, reason: R, retryInMs: number | undefined) => void;
  clock?: Clock;
}

interface Wanted<R> {
  reason: R;
  done: Promise<void>;
  resolve: () => void;
}

/**
 * Runs one job at most once at a time and at most every minIntervalMs; requests made meanwhile
 * collapse into one follow-up run (their reasons merged). Failed runs are retried with an
 * exponential back-off. Does nothing before start() and after stop().
 */
export class Runner<R = void> {
  private readonly clock: Clock;
  private readonly backoff: Backoff;
  private readonly merge: (a: R, b: R) => R;
  private active = false;
  private inflight: Promise<void> | undefined;
  private wanted: Wanted<R> | undefined; // the next run, asked for while one ran or minInterval had not passed
  private lastStart = -Infinity;
  private debounce: { reason: R; first: number; due: number; cancel: () => void } | undefined;
  private gate: (() => void) | undefined; // waiting out minIntervalMs
  private retryTimer: (() => void) | undefined;
  private periodic: (() => void) | undefined;

  constructor(private readonly o: RunnerOptions<R>) {
    this.clock = o.clock ?? realClock;
    this.backoff = new Backoff(o.backoff);
    this.merge = o.merge ?? ((_a, b) => b);
  }

  get running(): boolean {
    return this.inflight !== undefined;
  }

  start(): void {
    if (this.active) return;
    this.active = true;
    this.backoff.reset();
    const every = this.o.every;
    if (every && every.ms > 0) {
      const tick = (): void => {
        this.periodic = this.clock.setTimer(tick, every.ms);
        void this.run(every.reason());
      };
      this.periodic = this.clock.setTimer(tick, every.ms);
    }
  }

  /** Cancels every pending run and timer, and waits for the running one. */
  async stop(): Promise<void> {
    this.active = false;
    for (const cancel of [this.debounce?.cancel, this.gate, this.retryTimer, this.periodic]) cancel?.();
    this.debounce = this.gate = this.retryTimer = this.periodic = undefined;
    const w = this.wanted;
    this.wanted = undefined;
    w?.resolve();
    await this.inflight;
  }

  /** A run soon: after debounceMs of quiet, at most maxDelayMs after the first request of a burst. */
  request(reason: R): void {
    if (!this.active) return;
    const now = this.clock.now();
    const d = this.debounce;
    const first = d?.first ?? now;
    const due = Math.min(now + (this.o.debounceMs ?? 0), first + (this.o.maxDelayMs ?? this.o.debounceMs ?? 0));
    const merged = d ? this.merge(d.reason, reason) : reason;
    if (d && d.due === due) {
      d.reason = merged; // the timer already fires then: no need to move it
      return;
    }
    d?.cancel();
    const cancel = this.clock.setTimer(() => {
      const fired = this.debounce!;
      this.debounce = undefined;
      void this.run(fired.reason);
    }, due - now);
    this.debounce = { reason: merged, first, due, cancel };
  }

  /**
   * A run as soon as allowed; resolves when a run that started after this call has finished,
   * failed or not (failures go to onError and are retried). A debounced request waiting is
   * taken along.
   */
  run(reason: R): Promise<void> {
    if (!this.active) return Promise.resolve();
    const d = this.debounce;
    if (d) {
      d.cancel();
      this.debounce = undefined;
      reason = this.merge(d.reason, reason);
    }
    if (this.wanted) this.wanted.reason = this.merge(this.wanted.reason, reason);
    else {
      let resolve!: () => void;
      const done = new Promise<void>((r) => (resolve = r));
      this.wanted = { reason, done, resolve };
    }
    const done = this.wanted.done;
    this.pump();
    return done;
  }

  /**
   * Schedules a run after the next back-off delay, as after a failed run: for work whose result
   * broke later (a connection that dropped, a thread that died). Returns the delay, or undefined
   * when a retry is already due or the runner is stopped.
   */
  retry(reason: R): number | undefined {
    if (!this.active || this.retryTimer) return undefined;
    const ms = this.backoff.next();
    const again = this.o.retryReason !== undefined ? this.o.retryReason : reason;
    this.retryTimer = this.clock.setTimer(() => {
      this.retryTimer = undefined;
      void this.run(again);
    }, ms);
    return ms;
  }

  /** What was retried is healthy again: the next failure waits the shortest delay. */
  resetBackoff(): void {
    this.backoff.reset();
  }

  private pump(): void {
    if (!this.active || this.inflight || !this.wanted || this.gate) return;
    const wait = this.lastStart + (this.o.minIntervalMs ?? 0) - this.clock.now();
    if (wait > 0) {
      this.gate = this.clock.setTimer(() => {
        this.gate = undefined;
        this.pump();
      }, wait);
      return;
    }
    const w = this.wanted;
    this.wanted = undefined;
    this.lastStart = this.clock.now();
    this.inflight = this.once(w.reason).finally(() => {
      this.inflight = undefined;
      w.resolve();
      this.pump();
    });
  }

  private async once(reason: R): Promise<void> {
    try {
      await this.o.run(reason);
    } catch (e) {
      // Scheduled first, not as an argument: `onError?.(…, this.retry())` skips the retry itself
      // when there is no onError (the balancer's failed syncs were never retried).
      const retryIn = this.retry(reason);
      this.o.onError?.(e, reason, retryIn);
      return;
    }
    if (this.o.resetOnSuccess ?? true) this.backoff.reset();
    // A success covers what a pending retry would have redone.
    this.retryTimer?.();
    this.retryTimer = undefined;
  }
}
