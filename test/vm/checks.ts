// The VM suites' tiny harness: one boot runs many checks, each printed as PASS/FAIL with its
// time, and the process exits non-zero on any failure (or when nothing passed).

export class Checks {
  passed = 0;
  failed = 0;
  private readonly t0 = performance.now();

  async check(name: string, fn: () => unknown): Promise<void> {
    const start = performance.now();
    try {
      await fn();
      this.passed++;
      console.log(`PASS ${name} (${(performance.now() - start).toFixed(0)} ms)`);
    } catch (e) {
      this.fail(name, e);
    }
  }

  fail(name: string, e: unknown): void {
    this.failed++;
    console.log(`FAIL ${name}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  }

  /** Prints "<label>: N passed, N failed, S s" and returns the exit code. */
  summary(label: string): number {
    console.log(`${label}: ${this.passed} passed, ${this.failed} failed, ${((performance.now() - this.t0) / 1000).toFixed(1)} s in the VM`);
    return this.failed === 0 && this.passed > 0 ? 0 : 1;
  }
}

export function eq<T>(actual: T, expected: T, what = 'value'): void {
  const a = JSON.stringify(actual);
  const b = JSON.stringify(expected);
  if (a !== b) throw new Error(`${what} differs\n  actual:   ${a}\n  expected: ${b}`);
}
