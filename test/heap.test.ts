import test from 'ava';
import { HEAP_GROWING_PERCENT, boundHeapGrowth } from '../src/heap.js';

test('heap growth is bounded unless the operator set it, by flag or NODE_OPTIONS, in either spelling', (t) => {
  t.is(boundHeapGrowth(HEAP_GROWING_PERCENT, ['--enable-source-maps'], '--max-old-space-size=512'), HEAP_GROWING_PERCENT);
  t.is(boundHeapGrowth(HEAP_GROWING_PERCENT, ['--heap-growing-percent=80'], ''), undefined);
  t.is(boundHeapGrowth(HEAP_GROWING_PERCENT, [], '--max-old-space-size=512 --heap_growing_percent=10'), undefined);
});
