// Teacher forcing (STAR.md §1): a failure (prompt, desired) becomes one token sequence, the
// positions that predict the desired tokens, and — after a forward pass — which of them fail.

import type { TextTokenizer } from '../model/tokenizer';
import { promptTokenCount } from '../model/tokenizer';

export type RepairErrorCode = 'empty-prompt' | 'empty-desired' | 'boundary' | 'too-long' | 'already-correct' | 'cancelled' | 'invalid-option';

/** A problem with a failure or a repair request that the user can fix. */
export class RepairError extends Error {
  readonly code: RepairErrorCode;
  constructor(code: RepairErrorCode, message: string) {
    super(message);
    this.name = 'RepairError';
    this.code = code;
  }
}

/** One teacher-forced sequence: input ids with, for each desired token, the position predicting it. */
export interface Example {
  /** Input tokens (the prompt and all desired tokens but the last). */
  ids: number[];
  /** Next-token targets per input position (ids shifted by one; positions outside the target repeat 0). */
  nextTokens: number[];
  /** Input positions whose next token is a desired token, in order: position `targetPositions[k]` predicts y_k. */
  targetPositions: number[];
  /** y_1..y_n. */
  desired: number[];
  /** Tokens of the prompt that were dropped from the left to fit the context. */
  truncated: number;
}

export function makeExample(tokenizer: TextTokenizer, prompt: string, desired: string, context: number): Example {
  if (prompt.length === 0) throw new RepairError('empty-prompt', 'the prompt is empty: the model needs some text before the completion to learn from');
  if (desired.length === 0) throw new RepairError('empty-desired', 'the desired completion is empty: give the text the model should have produced');
  const all = tokenizer.encode(prompt + desired);
  const np = promptTokenCount(tokenizer, prompt, all);
  if (np === 0) throw new RepairError('boundary', 'the first token of the prompt runs into the desired text, so no token of the prompt stands on its own: add some text before the completion');
  if (np >= all.length) throw new RepairError('boundary', 'the desired text adds no token of its own after the prompt: the tokenizer merges it into the prompt\'s last token');
  const n = all.length - np;
  if (n + 1 > context) throw new RepairError('too-long', `the desired completion is ${n} tokens, longer than the model's context of ${context}: shorten it`);
  // Keep the end of a long prompt: the tokens right before the completion matter most.
  const drop = Math.max(0, all.length - 1 - context);
  const seq = all.slice(drop);
  const ids = seq.slice(0, -1);
  const nextTokens = seq.slice(1);
  const first = np - drop - 1;
  const targetPositions = Array.from({ length: n }, (_, k) => first + k);
  return { ids, nextTokens, targetPositions, desired: all.slice(np), truncated: drop };
}

export function maskFor(example: Example, positions: readonly number[]): number[] {
  const mask = new Array<number>(example.ids.length).fill(0);
  for (const p of positions) mask[p] = 1;
  return mask;
}
