import test from 'ava';
import { initialCounters, step } from '../../src/health/state.js';

test('health changes only after rise successes or fall failures in a row', (t) => {
  let c = initialCounters('unknown');
  c = step(c, true, 2, 3);
  t.is(c.health, 'unknown');
  c = step(c, true, 2, 3);
  t.is(c.health, 'healthy');
  c = step(c, false, 2, 3);
  c = step(c, false, 2, 3);
  t.is(c.health, 'healthy', 'two failures < fall');
  c = step(c, true, 2, 3);
  c = step(c, false, 2, 3);
  c = step(c, false, 2, 3);
  t.is(c.health, 'healthy', 'a success in between resets the count');
  c = step(c, false, 2, 3);
  t.is(c.health, 'unhealthy');
  c = step(c, true, 2, 3);
  t.is(c.health, 'unhealthy');
  c = step(c, true, 2, 3);
  t.is(c.health, 'healthy');
});
