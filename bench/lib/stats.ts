// Timing helpers for benchmarks: run a step a few times after warm-up and summarise with the
// median (robust to the odd slow run on a shared machine), plus the spread for the record.

export interface Timing {
  /** Median wall time of the timed runs, milliseconds. */
  medianMs: number;
  minMs: number;
  maxMs: number;
  runs: number[];
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new RangeError('median of no values');
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

export function summarise(runs: readonly number[]): Timing {
  return { medianMs: median(runs), minMs: Math.min(...runs), maxMs: Math.max(...runs), runs: [...runs] };
}

/** Runs `step` `warmup` times untimed, then `repeats` times timed. */
export async function timeRuns(step: () => Promise<unknown>, repeats: number, warmup = 1): Promise<Timing> {
  for (let i = 0; i < warmup; i++) await step();
  const runs: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t = performance.now();
    await step();
    runs.push(performance.now() - t);
  }
  return summarise(runs);
}
