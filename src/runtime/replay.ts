// The completion settings that decide what the editor showed at a place, besides prompt and
// suffix: token healing, the stop rule and the token budget. A failure stores them so a repair and
// every "is it fixed?" check replay the same completion (runtime/completion.ts). Pure data and its
// reader: the extension host, the worker and the CLI import it without any model code.

import { bool, field, intIn, object, oneOf, type Reader } from '../util/read';
import { STOP_RULES, type StopRule } from './stop-rules';

export interface CompletionReplay {
  /** Token healing (generate's `heal`): the prompt's last token is taken off and spelled back. */
  heal: boolean;
  /** Where the completion ends (stop-rules.ts). */
  stop: StopRule;
  /** Most generated tokens, healing ones not counted. */
  maxTokens: number;
}

/** The extension's defaults (settings `starRepair.completions.*`), used for failures stored before replay settings were. */
export const DEFAULT_REPLAY: Readonly<CompletionReplay> = { heal: true, stop: 'line', maxTokens: 32 };

export const MAX_REPLAY_TOKENS = 256;

export const readReplay: Reader<CompletionReplay> = object((o, path) => ({
  heal: field(o, 'heal', bool, path),
  stop: field(o, 'stop', oneOf(STOP_RULES), path),
  maxTokens: field(o, 'maxTokens', intIn(1, MAX_REPLAY_TOKENS), path),
}));
