// The completion the extension shows at a place, as ONE rule set: the replay settings a failure
// stores (token healing, stop rule, token budget), showCompletion() — which the worker's inline
// completions and every "is it fixed?" check run — and the form a desired text is compared in.
// "Fixed" everywhere (CLI, bench, panel, status) means: showCompletion(prompt) === shownForm(desired).

import type { TextTokenizer } from '../model/tokenizer';
import { generate, type Generation } from './generate';
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
}

/** Runs the completion exactly as the editor asks for it at the end of `prompt`. */
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
    onText: (t) => {
      if (completionEnd(t, replay.stop, indent) >= 0) ended.abort();
    },
  });
  return { text: finishCompletion(generation.text, replay.stop, indent), generation, ended: ended.signal.aborted };
}

/** Does the editor now show `desired` at the end of `prompt`? */
export async function showsDesired(runtime: ModelRuntime, tokenizer: TextTokenizer, prompt: string, desired: string, replay: CompletionReplay): Promise<boolean> {
  const shown = await showCompletion(runtime, tokenizer, prompt, replay);
  return shown.text === shownForm(desired);
}
