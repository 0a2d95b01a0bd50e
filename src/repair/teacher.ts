// Teacher forcing (docs/algorithm.md "Targets"): a failure (prompt, desired) becomes one token
// sequence, the positions that predict the target tokens, and — after a forward pass — which of
// them fail. With a replay (the product's way) the sequence is exactly the one the editor's
// completion walks: the healed prompt, the tokens that spell the healed text back (each limited to
// the tokens healing may choose there), the desired text, and the token that ends the completion
// under the stop rule, as the model tokenises it in context. So "every target token is the
// argmax" is the same statement as "the editor shows the desired text" (runtime/completion.ts).
// A failure captured with a FIM prompt (replay.fim, its suffix) is teacher-forced over that same
// prompt (runtime/prompt.ts builds it for both): the format's prefix/suffix/middle tokens, the
// prefix, and a target that ends with the format's stop token where the model ends a middle.

import type { TextTokenizer } from '../model/tokenizer';
import { promptTokenCount } from '../model/tokenizer';
import type { CompletionReplay } from '../runtime/completion';
import { cleanSuggestion, DEFAULT_INDENT } from '../runtime/clean';
import { FimError } from '../runtime/fim';
import { healingCandidates, tokenTexts } from '../runtime/generate';
import { preparePrompt, type PreparedPrompt } from '../runtime/prompt';
import { completionEnd, cursorLineIndent, finishCompletion, trimShownEnd, type StopRule } from '../runtime/stop-rules';

export type RepairErrorCode = 'empty-prompt' | 'empty-desired' | 'boundary' | 'too-long' | 'multi-line' | 'already-correct' | 'cancelled' | 'invalid-option' | 'patch-too-large';

/** A problem with a failure or a repair request that the user can fix. */
export class RepairError extends Error {
  readonly code: RepairErrorCode;
  constructor(code: RepairErrorCode, message: string) {
    super(message);
    this.name = 'RepairError';
    this.code = code;
  }
}

/** One teacher-forced sequence: input ids with, for each target token, the position predicting it. */
export interface Example {
  /** Input tokens (the prompt and all target tokens but the last). */
  ids: number[];
  /** Next-token targets per input position (ids shifted by one). */
  nextTokens: number[];
  /** Input positions whose next token is a target token, in order: position `targetPositions[k]` predicts y_k. */
  targetPositions: number[];
  /** y_1..y_n: the target tokens (with a replay: healing tokens, the desired text, the end). */
  desired: number[];
  /** Per target token: the ids decoding may choose from there (token healing), or null for the whole vocabulary. */
  allowed: (readonly number[] | null)[];
  /**
   * Per target token: other ids that are just as right there, or null. At the token that ends the
   * completion, any token that ends it with the same shown text (another line break, trailing
   * blanks, end-of-text) is as good as the one the document has.
   */
  alsoRight: (readonly number[] | null)[];
  /** Tokens of the prompt that were dropped from the left to fit the context. */
  truncated: number;
}

export interface ExampleOptions {
  /** Build the target the editor's way (healing, stop rule, budget); null or absent: plain teacher forcing of prompt + desired. */
  replay?: CompletionReplay | null;
  /**
   * What followed the desired text in the document (a line break and the next line, say). It
   * decides how the model tokenises the completion's end in context. Default: the end the stop
   * rule needs and nothing more ('\n' for a line, a blank line for a block).
   */
  after?: string;
  /** The text after the cursor when the failure was captured: the FIM prompt's suffix (with replay.fim) and the clean rules' context. */
  suffix?: string;
}

function checkTexts(prompt: string, desired: string): void {
  if (prompt.length === 0) throw new RepairError('empty-prompt', 'the prompt is empty: the model needs some text before the completion to learn from');
  if (desired.length === 0) throw new RepairError('empty-desired', 'the desired completion is empty: give the text the model should have produced');
}

function sequence(head: number[], target: number[], allowed: Example['allowed'], context: number, alsoRight: Example['alsoRight'] = target.map(() => null)): Example {
  const n = target.length;
  if (n + 1 > context) throw new RepairError('too-long', `the desired completion is ${n} tokens, longer than the model's context of ${context}: shorten it`);
  // Keep the end of a long prompt: the tokens right before the completion matter most.
  const drop = Math.max(0, head.length + n - 1 - context);
  const seq = [...head.slice(drop), ...target];
  const first = head.length - drop - 1;
  return {
    ids: seq.slice(0, -1),
    nextTokens: seq.slice(1),
    targetPositions: Array.from({ length: n }, (_, k) => first + k),
    desired: target,
    allowed,
    alsoRight,
    truncated: drop,
  };
}

/** docs/algorithm.md "Targets" as written: prompt + desired tokenised as one string, no healing, no end token. */
function plainExample(tokenizer: TextTokenizer, prompt: string, desired: string, context: number): Example {
  const all = tokenizer.encode(prompt + desired);
  const np = promptTokenCount(tokenizer, prompt, all);
  if (np === 0) throw new RepairError('boundary', 'the first token of the prompt runs into the desired text, so no token of the prompt stands on its own: add some text before the completion');
  if (np >= all.length) throw new RepairError('boundary', 'the desired text adds no token of its own after the prompt: the tokenizer merges it into the prompt\'s last token');
  const target = all.slice(np);
  return sequence(all.slice(0, np), target, target.map(() => null), context);
}

function defaultEnd(stop: StopRule): string {
  return stop === 'line' ? '\n' : stop === 'block' ? '\n\n' : '';
}

function startsWith(a: readonly number[], prefix: readonly number[]): boolean {
  if (prefix.length > a.length) return false;
  for (let i = 0; i < prefix.length; i++) if (a[i] !== prefix[i]) return false;
  return true;
}

/**
 * Every other token that, in place of the target's last one, also ends the completion with the
 * shown text `want`: the editor cannot tell them apart, so neither may "fixed".
 */
function otherEnds(tokenizer: TextTokenizer, target: readonly number[], owed: string, want: string, replay: CompletionReplay, indent: string, stopIds: readonly number[] = []): number[] {
  const before = tokenizer.decode(target.slice(0, -1));
  const last = target[target.length - 1];
  const out: number[] = [];
  const texts = tokenTexts(tokenizer, tokenizer.vocabSize);
  texts.forEach((t, id) => {
    if (id === last || t === '') return;
    const full = before + t;
    if (full.length < owed.length) return;
    const text = full.slice(owed.length);
    if (completionEnd(text, replay.stop, indent) >= 0 && finishCompletion(text, replay.stop, indent) === want) out.push(id);
  });
  // End-of-text right after the desired text ends the completion there too.
  if (trimShownEnd(before.slice(owed.length)) === want) {
    for (const id of new Set([...(tokenizer.eosId !== null && tokenizer.eosId !== undefined ? [tokenizer.eosId] : []), ...stopIds])) {
      if (id !== last && !out.includes(id)) out.push(id);
    }
  }
  return out;
}

/**
 * The sequence the editor's completion walks (runtime/completion.ts): generate()'s healing cut,
 * its prompt truncation, and the target tokens up to the one where the stop rule ends the
 * completion — or where the budget does.
 */
function replayExample(tokenizer: TextTokenizer, prompt: string, desired: string, context: number, replay: CompletionReplay, after: string, suffix: string | undefined): Example {
  let prepared: PreparedPrompt;
  try {
    prepared = preparePrompt(tokenizer, prompt, { heal: replay.heal, suffix, fim: replay.fim ?? null, maxTokens: replay.maxTokens, context });
  } catch (e) {
    if (e instanceof FimError) throw new RepairError('boundary', e.message);
    if (!(e instanceof Error && e.message.startsWith('the prompt is empty'))) throw e;
    throw new RepairError('empty-prompt', 'the prompt has no tokens: the model needs some text before the completion to learn from');
  }
  const { head, headIds, owed } = prepared;
  const fim = prepared.fim;
  // In a PSM prompt the middle follows the middle token: it is tokenised on its own, as in training,
  // and ends with the format's stop token. Otherwise it continues the prefix's text.
  const alone = fim !== null && fim.choice.order === 'psm';
  const rest = owed + desired + (fim ? '' : after);
  const all = alone ? [] : tokenizer.encode(head + rest);
  // In context when the prompt's tokens stay whole (healing cuts at a token boundary for this reason).
  const tail = !alone && startsWith(all, headIds) ? all.slice(headIds.length) : tokenizer.encode(rest);
  const indent = cursorLineIndent(prompt);
  const target: number[] = [];
  const allowed: Example['allowed'] = [];
  let healing = 0;
  let text = '';
  let byBudget = false;
  let byRule = false;
  for (const id of tail) {
    const spelled = target.length ? tokenizer.decode(target) : '';
    if (spelled.length < owed.length) {
      allowed.push(healingCandidates(tokenizer, owed.slice(spelled.length)));
      healing++;
    } else allowed.push(null);
    target.push(id);
    const full = tokenizer.decode(target);
    text = full.length >= owed.length ? full.slice(owed.length) : '';
    if (completionEnd(text, replay.stop, indent) >= 0) {
      byRule = true;
      break;
    }
    if (target.length - healing >= replay.maxTokens) {
      byBudget = true;
      break;
    }
  }
  let byStop = false;
  if (fim && !byRule && !byBudget && trimShownEnd(text) === trimShownEnd(desired)) {
    // The middle is complete: the model ends it with the format's stop token.
    target.push(fim.stops[0]);
    allowed.push(null);
    byStop = true;
  }
  const shown = finishCompletion(text, replay.stop, indent);
  const want = trimShownEnd(desired);
  if (shown !== want) {
    if (replay.stop === 'line' && want.includes('\n')) {
      throw new RepairError('multi-line', 'the desired text spans several lines, but completions stop at the end of the line: repair one line at a time, or set starRepair.completions.stop to "block"');
    }
    if (byBudget) {
      throw new RepairError('too-long', `the desired completion needs more than ${replay.maxTokens} tokens, the completion budget: raise starRepair.completions.maxTokens or shorten it`);
    }
    throw new RepairError('boundary', `the editor could not show this text as a completion here (it would end as ${JSON.stringify(shown)}): check where the desired text ends`);
  }
  if (!byRule && !byBudget && !byStop) throw new RepairError('boundary', `the text after the desired completion (${JSON.stringify(after)}) does not end it under the "${replay.stop}" stop rule: give the line break that follows it`);
  const cleaned = cleanSuggestion(shown, { prefix: prompt, suffix: suffix ?? '', indent: replay.indent ?? DEFAULT_INDENT, tokenizer });
  if (cleaned !== want) {
    throw new RepairError('boundary', `the editor would not show ${JSON.stringify(want)} here: its clean-suggestion rules make it ${JSON.stringify(cleaned)} (it glues onto a word, repeats the text after the cursor, breaks the indentation or repeats the next lines)`);
  }
  const alsoRight: Example['alsoRight'] = target.map(() => null);
  if (byRule || byStop) {
    const stopIds = fim ? fim.stops : [];
    alsoRight[target.length - 1] = otherEnds(tokenizer, target, owed, want, replay, indent, stopIds);
  }
  // generate() keeps the prompt as runtime/prompt.ts cuts it; the same ids keep positions aligned.
  return sequence(prepared.ids, target, allowed, context, alsoRight);
}

export function makeExample(tokenizer: TextTokenizer, prompt: string, desired: string, context: number, options: ExampleOptions = {}): Example {
  checkTexts(prompt, desired);
  if (!options.replay) return plainExample(tokenizer, prompt, desired, context);
  const end = options.after ?? (/\n[ \t]*$/.test(desired) ? '' : defaultEnd(options.replay.stop));
  return replayExample(tokenizer, prompt, desired, context, options.replay, end, options.suffix);
}

export function maskFor(example: Example, positions: readonly number[]): number[] {
  const mask = new Array<number>(example.ids.length).fill(0);
  for (const p of positions) mask[p] = 1;
  return mask;
}
