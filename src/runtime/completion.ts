// The completion the extension shows at a place, as ONE rule set: the replay settings a failure
// stores (token healing, stop rule, token budget, FIM format, indentation), showCompletion() —
// which the worker's inline completions and every "is it fixed?" check run — and the form a
// desired text is compared in. It builds the prompt (prefix, or the FIM layout of prefix and
// suffix: runtime/prompt.ts), decodes, applies the stop rule, then the clean-suggestion rules
// (runtime/clean.ts). "Fixed" everywhere (CLI, bench, panel, status) means:
// showCompletion(prompt, suffix) === shownForm(desired).

import type { TextTokenizer } from '../model/tokenizer';
import { cleanSuggestion, DEFAULT_INDENT } from './clean';
import { generate, type Generation } from './generate';
import type { PromptCache } from './prompt-cache';
import type { ModelRuntime } from './runtime';
import type { CompletionReplay } from './replay';
import { completionEnd, cursorLineIndent, finishCompletion, trimShownEnd } from './stop-rules';

export { DEFAULT_REPLAY, readReplay, type CompletionReplay } from './replay';

/** The desired text in the form the editor shows a completion: without the blanks and line breaks it ends in. */
export function shownForm(desired: string): string {
  return trimShownEnd(desired);
}

export interface ShownCompletion {
  /** The ghost text. */
  text: string;
  generation: Generation;
  /** The stop rule ended it (rather than the budget, end-of-text or cancellation). */
  ended: boolean;
}

export interface ShowOptions {
  signal?: AbortSignal;
  temperature?: number;
  /** Extra stop strings. */
  stop?: readonly string[];
  /** The text after the cursor (a failure's `suffix`): in the FIM prompt, and read by the clean rules. */
  suffix?: string;
  /** Reuse prompt KV caches (the worker's inline completions). */
  promptCache?: PromptCache;
  /** Time caps (ms): past the prompt cap nothing is shown, past the generation cap what is there. */
  promptMs?: number;
  generationMs?: number;
  /** The first token after the healed text (an alternative, completionAlternatives). */
  forceFirst?: number;
  /** Report this many likely first tokens in generation.firstChoices. */
  firstChoices?: number;
}

/** Runs the completion exactly as the editor asks for it at the end of `prompt` (and before `options.suffix`). */
export async function showCompletion(runtime: ModelRuntime, tokenizer: TextTokenizer, prompt: string, replay: CompletionReplay, options: ShowOptions = {}): Promise<ShownCompletion> {
  const indent = cursorLineIndent(prompt);
  // The stop rule is checked on every new token; reaching the end stops decoding at once.
  const ended = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, ended.signal]) : ended.signal;
  const generation = await generate(runtime, tokenizer, prompt, {
    maxTokens: replay.maxTokens,
    temperature: options.temperature ?? 0,
    stop: options.stop ?? [],
    heal: replay.heal,
    signal,
    suffix: options.suffix,
    fim: replay.fim ?? null,
    promptCache: options.promptCache,
    promptMs: options.promptMs,
    generationMs: options.generationMs,
    forceFirst: options.forceFirst,
    firstChoices: options.firstChoices,
    onText: (t) => {
      if (completionEnd(t, replay.stop, indent) >= 0) ended.abort();
    },
  });
  const finished = finishCompletion(generation.text, replay.stop, indent);
  const text = cleanSuggestion(finished, { prefix: prompt, suffix: options.suffix ?? '', indent: replay.indent ?? DEFAULT_INDENT, tokenizer });
  return { text, generation, ended: ended.signal.aborted };
}

/**
 * Up to `count` completions for an explicit request (Alt+\): the greedy one first, then one per
 * next most likely first token (each continued greedily), without repeats or empty ones. The
 * prompt cache makes each alternative cost its own tokens only.
 */
export async function completionAlternatives(runtime: ModelRuntime, tokenizer: TextTokenizer, prompt: string, replay: CompletionReplay, count: number, options: ShowOptions = {}): Promise<ShownCompletion[]> {
  const first = await showCompletion(runtime, tokenizer, prompt, replay, { ...options, firstChoices: Math.max(1, count) });
  const out = first.text ? [first] : [];
  const greedyFirst = first.generation.tokens[first.generation.healingTokens];
  for (const id of first.generation.firstChoices) {
    if (out.length >= count || options.signal?.aborted) break;
    if (id === greedyFirst) continue;
    const alt = await showCompletion(runtime, tokenizer, prompt, replay, { ...options, forceFirst: id });
    if (alt.text && !out.some((o) => o.text === alt.text)) out.push(alt);
  }
  return out;
}

/** Does the editor now show `desired` at the end of `prompt` (before `suffix`)? */
export async function showsDesired(runtime: ModelRuntime, tokenizer: TextTokenizer, prompt: string, desired: string, replay: CompletionReplay, suffix?: string): Promise<boolean> {
  const shown = await showCompletion(runtime, tokenizer, prompt, replay, { suffix });
  return shown.text === shownForm(desired);
}
