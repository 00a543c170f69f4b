// The daemon's V8 heap policy. Its heap is mostly long-lived catalog and index data (about
// 100 MB at 10,000 services x 10 tasks); V8 by default lets old space grow to 2-4x the live
// size before its next full collection, so after a burst of writes most of the RSS was garbage
// (measured: 340 MB after 20,000 writes, 270 MB with growth bounded to 30%). Bounding growth is
// Go's GOGC=30 for this process: full collections come sooner, and they are incremental and
// concurrent, so pauses stay short. It applies from the start: set only once start-up had built
// the indexes, the start was ~0.2 s shorter but the first burst of writes grew RSS 30 MB more.
// A value the operator sets (NODE_OPTIONS or a node flag) wins.
import { setFlagsFromString } from 'node:v8';

export const HEAP_GROWING_PERCENT = 30;
const FLAG = 'heap-growing-percent';

/** Bounds growth to `percent` unless the operator chose a value; returns the value applied, if any. */
export function boundHeapGrowth(percent: number, execArgv: readonly string[] = process.execArgv, nodeOptions = process.env.NODE_OPTIONS ?? ''): number | undefined {
  const given = [...execArgv, ...nodeOptions.split(/\s+/)].some((a) => a.replace(/_/g, '-').startsWith(`--${FLAG}`));
  if (given) return undefined;
  // Read by V8 each time it sets the next full collection's limit, so it applies from now on.
  setFlagsFromString(`--${FLAG}=${percent}`);
  return percent;
}
