// Running synchronous code with a wall-clock bound. JavaScript cannot interrupt a running function,
// but V8 can terminate a script run through node:vm with a timeout — including a regular expression
// that is backtracking — so the function is called from a one-line script run that way. The cost is
// a watchdog thread per call (about 0.1 ms), so it wraps coarse calls (one encode), not inner loops.
import { Script, createContext } from 'node:vm';

export class TimeLimitExceeded extends Error {
  constructor(readonly ms: number) {
    super(`stopped after ${ms} ms`);
    this.name = 'TimeLimitExceeded';
  }
}

const script = new Script('run()');
const idle = (): undefined => undefined;
const context = createContext({ run: idle });

/** `fn()`, or TimeLimitExceeded if it runs longer than `ms`; errors `fn` throws pass through as they are. */
export function runWithin<T>(ms: number, fn: () => T): T {
  const previous = context['run'];
  context['run'] = fn;
  try {
    return script.runInContext(context, { timeout: Math.max(1, Math.ceil(ms)) }) as T;
  } catch (e) {
    if ((e as { code?: unknown }).code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') throw new TimeLimitExceeded(ms);
    throw e;
  } finally {
    context['run'] = previous;
  }
}
