// runWithin (src/model/time-limit.ts) bounds CPU work, not wall time: a call stopped by its
// wall-clock limit is refused only when it got at least half the limit in CPU time; a starved call
// (a busy machine: wall time without CPU time) is run again with a longer wall limit, and stopped as
// 'busy' at a wall cap. Starvation is simulated without timing: Atomics.wait blocks the thread for
// wall time while using no CPU, and an injected CPU clock stands for a thread that got a whole core
// (performance.now) or none (0). Only outcomes are asserted, never durations. Limits are a few
// hundred ms so that incidental CPU work of the test thread (a GC, lazy compilation) stays well
// below the half of the limit that would make an attempt count as computing.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { describe, test } from 'node:test';
import { MAX_ATTEMPTS, TimeLimitExceeded, runWithin, threadCpuMs, wallCapMs } from '../../src/model/time-limit';

const cell = new Int32Array(new SharedArrayBuffer(4));
/** Blocks for `ms` of wall time using no CPU time, as a process the scheduler does not run. */
const starve = (ms: number): void => void Atomics.wait(cell, 0, 0, ms);
/** A regex that backtracks catastrophically: runs for ages on the CPU. */
const backtrack = (): boolean => /(a|aa)+$/.test(`${'a'.repeat(60)}!`);
const wholeCore = (): number => performance.now();
const noCpu = (): number => 0;

function thrown(fn: () => unknown): TimeLimitExceeded {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof TimeLimitExceeded, `expected TimeLimitExceeded, got ${String(e)}`);
    return e;
  }
  assert.fail('expected TimeLimitExceeded, nothing was thrown');
}

describe('a starved call is not mistaken for slow code', () => {
  test('a call that spends longer than the limit starved (wall time without CPU time), then finishes, returns its value', () => {
    let calls = 0;
    const value = runWithin(400, () => {
      calls++;
      if (calls === 1) starve(1200);
      return 'done';
    });
    assert.equal(value, 'done');
    assert.equal(calls, 2);
  });

  test('the retry gets a longer wall limit: a call that needs 3 × the limit of wall time (starved) finishes', () => {
    let calls = 0;
    const value = runWithin(400, () => {
      calls++;
      starve(1200);
      return 42;
    });
    assert.equal(value, 42);
    assert.ok(calls >= 2 && calls <= MAX_ATTEMPTS, `${calls} calls`);
  });

  test('a call that never finishes and never gets CPU time is stopped as busy, after at most MAX_ATTEMPTS calls', () => {
    let calls = 0;
    const e = thrown(() => runWithin(400, () => {
      calls++;
      starve(60_000);
    }, { maxWallMs: 1500 }));
    assert.equal(e.reason, 'busy');
    assert.match(e.message, /too busy/);
    assert.ok(calls >= 2 && calls <= MAX_ATTEMPTS, `${calls} calls`);
  });

  test('the wall cap is the limit plus min(14 × limit, 60 s): 30 s for the 2 s probe', () => {
    assert.equal(wallCapMs(2000), 30_000);
    assert.equal(wallCapMs(12_240), 72_240);
  });
});

describe('code that computes too long is still stopped', () => {
  test('a catastrophic regex on a thread that gets a whole core is refused after one attempt (reason cpu)', () => {
    let calls = 0;
    const e = thrown(() => runWithin(100, () => {
      calls++;
      return backtrack();
    }, { cpuMs: wholeCore }));
    assert.equal(e.reason, 'cpu');
    assert.equal(e.message, 'stopped after 100 ms');
    assert.equal(calls, 1);
  });

  test('a catastrophic regex on a thread that gets no CPU time is stopped at the wall cap (reason busy), never left running', () => {
    let calls = 0;
    const e = thrown(() => runWithin(100, () => {
      calls++;
      return backtrack();
    }, { cpuMs: noCpu, maxWallMs: 500 }));
    assert.equal(e.reason, 'busy');
    assert.ok(calls >= 2 && calls <= MAX_ATTEMPTS, `${calls} calls`);
  });

  test('a catastrophic regex under the real CPU clock is stopped, whatever the load', () => {
    const e = thrown(() => runWithin(100, backtrack));
    assert.ok(e.reason === 'cpu' || e.reason === 'busy');
  });
});

describe('what is not a time limit', () => {
  test('a quick call runs once and returns its value; errors it throws pass through', () => {
    let calls = 0;
    assert.equal(runWithin(1000, () => ++calls), 1);
    assert.throws(() => runWithin(1000, () => { throw new RangeError('mine'); }), RangeError);
  });

  test('the thread CPU clock advances with work done on this thread', () => {
    const before = threadCpuMs();
    let x = 0;
    for (let i = 0; i < 2e7; i++) x += i % 7;
    assert.ok(x > 0);
    assert.ok(threadCpuMs() > before);
  });
});
