// Running synchronous code with a time bound. JavaScript cannot interrupt a running function, but
// V8 can terminate a script run through node:vm with a timeout — including a regular expression
// that is backtracking — so the function is called from a one-line script run that way. The cost is
// a watchdog thread per call (about 0.1 ms), so it wraps coarse calls (one encode), not inner loops.
//
// The bound is meant for CPU work (a regex that backtracks), but node:vm's timeout counts wall-clock
// time. On a busy machine (load average 13 on 2 cores, this process getting 3–4 % of a core) a normal
// tokenizer needs more than 2 s of wall time for a few ms of CPU work, and a wall-clock bound alone
// took that for catastrophic backtracking and refused the model. So when the wall-clock limit stops
// a call, the CPU time the calling thread actually got during that attempt decides:
//  - at least half the limit (CPU_SHARE_DECISIVE) in CPU time: the call really computed that long
//    without finishing — hundreds of times what a normal encode needs — so it is stopped for good
//    (TimeLimitExceeded, reason 'cpu'). Half rather than all of it, so that a backtracking regex on
//    a moderately busy machine (50–100 % of a core) is still refused after the first attempt;
//  - less: the machine was busy, not the code. The call is run again (from the start — a stopped
//    call cannot be resumed, so `fn` must be safe to repeat) with a wall limit long enough to give it
//    the whole limit in CPU time at the share of a core it got (limit ÷ share), at least twice the
//    previous one, at most MAX_ATTEMPTS attempts and never past the wall cap: the limit plus
//    min(14 × limit, 60 s) in all (30 s for a 2 s limit). What still has not finished then, having
//    got too little CPU to judge, is stopped with reason 'busy', so callers can say the machine was
//    too busy rather than blame the code. Nothing runs longer than the cap, whatever the load; on an
//    idle machine a backtracking regex is stopped after the limit, as before.
// CPU time is the calling thread's own (process.threadCpuUsage where Node has it, else Linux's
// /proc/thread-self/schedstat), not process.cpuUsage(): that counts every thread of the process —
// an inference thread pool, other workers, GC helpers — and would make a starved call that shares
// the process with busy threads look like one that used its budget. Where neither exists (macOS and
// Windows on Node < 23.9) the process's CPU time is used; it can only overstate the call's share, so
// the fallback errs toward the plain wall-clock behaviour, never toward letting a regex run longer.
import { closeSync, openSync, readSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Script, createContext } from 'node:vm';

/** Share of the limit a stopped attempt must have had in CPU time to be refused as too slow. */
export const CPU_SHARE_DECISIVE = 0.5;
/** Attempts at most (the first under the plain limit, then longer ones after starved attempts). */
export const MAX_ATTEMPTS = 3;

/** Default wall-clock cap over all attempts: the limit plus min(14 × limit, 60 s). */
export function wallCapMs(ms: number): number {
  return ms + Math.min(14 * ms, 60_000);
}

export type TimeLimitReason = 'cpu' | 'busy';

export class TimeLimitExceeded extends Error {
  /**
   * `ms`: the limit. `reason`: 'cpu' when the call used its CPU time without finishing (the code is
   * too slow); 'busy' when it was stopped at the wall cap having got too little CPU time to tell.
   * `wallMs` and `cpuMs`: wall time of all attempts and CPU time of the last.
   */
  constructor(readonly ms: number, readonly reason: TimeLimitReason = 'cpu', readonly wallMs = ms, readonly cpuMs = ms) {
    super(reason === 'cpu'
      ? `stopped after ${ms} ms`
      : `stopped after ${Math.round(wallMs)} ms of wall time, in which it got only ${Math.round(cpuMs)} ms of CPU time: the machine was too busy to tell whether it finishes within ${ms} ms`);
    this.name = 'TimeLimitExceeded';
  }
}

export interface RunWithinOptions {
  /** CPU time of the calling thread in ms, read before and after an attempt (tests simulate load with it). */
  cpuMs?: () => number;
  /** Wall-clock cap over all attempts (default wallCapMs(ms)). */
  maxWallMs?: number;
}

const SCHEDSTAT = '/proc/thread-self/schedstat';
const statBuffer = Buffer.alloc(96);
let schedstatWorks = process.platform === 'linux';

function processCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** CPU time of the calling thread in ms (see the header for the fallbacks). */
export function threadCpuMs(): number {
  const threadCpuUsage = (process as { threadCpuUsage?: () => NodeJS.CpuUsage }).threadCpuUsage;
  if (typeof threadCpuUsage === 'function') {
    const u = threadCpuUsage.call(process);
    return (u.user + u.system) / 1000;
  }
  if (schedstatWorks) {
    // "<ns on the CPU> <ns waiting to run> <timeslices>" of this thread; opened per read because the
    // path names the thread that opens it.
    try {
      const fd = openSync(SCHEDSTAT, 'r');
      let n: number;
      try {
        n = readSync(fd, statBuffer, 0, statBuffer.length, 0);
      } finally {
        closeSync(fd);
      }
      const ns = Number(statBuffer.toString('latin1', 0, n).split(' ', 1)[0]);
      if (Number.isFinite(ns)) return ns / 1e6;
    } catch {
      // not mounted or not readable here: fall back for the rest of the process
    }
    schedstatWorks = false;
  }
  return processCpuMs();
}

const script = new Script('run()');
const idle = (): undefined => undefined;
const context = createContext({ run: idle });

/** One attempt: `fn()`, or null when node:vm stopped it after `ms` of wall time. */
function attempt<T>(ms: number, fn: () => T): { value: T } | null {
  const previous = context['run'];
  context['run'] = fn;
  try {
    return { value: script.runInContext(context, { timeout: Math.max(1, Math.ceil(ms)) }) as T };
  } catch (e) {
    if ((e as { code?: unknown }).code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') return null;
    throw e;
  } finally {
    context['run'] = previous;
  }
}

/**
 * `fn()`, or TimeLimitExceeded if it computes for longer than about `ms` (see the header for the
 * rule); errors `fn` throws pass through as they are. `fn` may be called more than once — after an
 * attempt stopped while the machine was too busy to run it — so it must be safe to repeat.
 */
export function runWithin<T>(ms: number, fn: () => T, options: RunWithinOptions = {}): T {
  const cpuMs = options.cpuMs ?? threadCpuMs;
  const cap = Math.max(ms, options.maxWallMs ?? wallCapMs(ms));
  const start = performance.now();
  let wall = ms;
  for (let n = 1; ; n++) {
    const cpuBefore = cpuMs();
    const wallBefore = performance.now();
    const done = attempt(wall, fn);
    if (done) return done.value;
    const cpu = Math.max(0, cpuMs() - cpuBefore);
    if (cpu >= CPU_SHARE_DECISIVE * ms) throw new TimeLimitExceeded(ms, 'cpu', performance.now() - start, cpu);
    const now = performance.now();
    const left = cap - (now - start);
    if (n >= MAX_ATTEMPTS || left < 1) throw new TimeLimitExceeded(ms, 'busy', now - start, cpu);
    const share = cpu / Math.max(1, now - wallBefore);
    wall = Math.min(left, Math.max(2 * wall, share > 0 ? ms / share : Infinity));
  }
}
