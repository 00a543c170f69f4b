// The dataplane that programs nothing: DNS-only operation (non-root, or `--dataplane none`).
import type { ApplyResult, CleanupResult, DataplaneDriver, Diff, ObservedState, ObservedUnit, ProbeResult, Unit } from '../types.js';

export class NoneDriver implements DataplaneDriver {
  readonly name = 'none' as const;
  async probe(): Promise<ProbeResult> {
    return { supported: true };
  }
  expect(u: Unit): ObservedUnit {
    return { id: u.kind === 'vip' ? `vip/${u.vip.key}` : `pub/${u.published.key}`, fingerprint: '-' };
  }
  async observe(): Promise<ObservedState> {
    return { base: 'ok', units: new Map() };
  }
  async apply(_d: Diff): Promise<ApplyResult> {
    return { ops: 0 };
  }
  async cleanup(): Promise<CleanupResult> {
    return { removed: false };
  }
}
