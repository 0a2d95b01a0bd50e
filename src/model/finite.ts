// Finite-value checks: weights are checked as they are read (a NaN or infinity in a checkpoint is
// refused at load, naming the tensor and file), and logits before a token is chosen from them (a
// model that computes NaN never yields a token: argmax, the greedy choice, applies that rule).
import { ModelError } from './errors';

/** Index of the first NaN or ±Infinity in `a[from..to)`, or -1. One tight pass, no allocation. */
export function firstNonFinite(a: ArrayLike<number>, from = 0, to = a.length): number {
  for (let i = from; i < to; i++) {
    const v = a[i]!;
    if (v - v !== 0) return i; // NaN - NaN and Inf - Inf are NaN; every finite v gives 0
  }
  return -1;
}

function describeValue(v: number): string {
  return Number.isNaN(v) ? 'NaN' : v > 0 ? '+Infinity' : '-Infinity';
}

/**
 * Throws `weights-not-finite` when tensor `name` of `file` holds a NaN or infinity in `data[from..to)`;
 * `data` holds the tensor's elements from `base` on (a range read), so the message names the
 * element's index in the whole tensor.
 */
export function checkFiniteWeights(data: Float32Array, name: string, file: string, from = 0, to = data.length, base = 0): void {
  const i = firstNonFinite(data, from, to);
  if (i < 0) return;
  throw new ModelError(
    'weights-not-finite',
    `${file}: tensor "${name}" holds ${describeValue(data[i]!)} at element ${base + i}; a usable checkpoint has only finite weights — the file is damaged or was saved from a diverged training run: download or export it again`,
    file,
  );
}

/**
 * Throws `logits-not-finite` unless every logit is finite or -Infinity (a masked token) and at
 * least one is finite: NaN or +Infinity means the model's arithmetic broke down.
 */
export function checkFiniteLogits(logits: ArrayLike<number>): void {
  let finite = false;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i]!;
    if (v - v === 0) finite = true;
    else if (v !== -Infinity) throw nonFiniteLogits(`${describeValue(v)} for token ${i}`);
  }
  if (!finite) throw nonFiniteLogits(logits.length === 0 ? 'no logits at all' : 'only -Infinity');
}

function nonFiniteLogits(what: string): ModelError {
  return new ModelError(
    'logits-not-finite',
    `the model produced non-finite logits (${what}), so no token can be chosen; its weights or an applied patch are broken — undo the last patch, or check the model with \`star-repair info\``,
  );
}

/**
 * The greedy token: the index of the largest logit, the first of equals; throws ModelError
 * 'logits-not-finite' for NaN or +Infinity (or nothing but −Infinity), never returns a token for them.
 */
export function argmax(logits: ArrayLike<number>): number {
  // One pass that also sees what checkFiniteLogits refuses (NaN, +Infinity, nothing but −Infinity),
  // which then says why: at a 150k-token vocabulary a second pass cost as much as the search.
  let best = -1;
  let bestValue = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i];
    if (v > bestValue) {
      best = i;
      bestValue = v;
    } else if (v !== v) checkFiniteLogits(logits);
  }
  if (best < 0 || bestValue === Infinity) checkFiniteLogits(logits);
  return best;
}
