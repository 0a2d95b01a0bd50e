// The completion settings that decide what the editor showed at a place, besides prompt and
// suffix: token healing, the stop rule, the token budget, the FIM format the prompt was built
// with (issue 15, item 3) and the editor's indentation (the clean-suggestion rules, runtime/clean.ts). A failure stores them so a repair and
// every "is it fixed?" check replay the same completion (runtime/completion.ts). Pure data and its
// reader: the extension host, the worker and the CLI import it without any model code.

import { bool, field, intIn, nullable, object, oneOf, optional, type Reader } from '../util/read';
import type { IndentStyle } from './clean';
import { FIM_FORMAT_NAMES, FIM_ORDERS, type FimChoice } from './fim';
import { STOP_RULES, type StopRule } from './stop-rules';

export interface CompletionReplay {
  /** Token healing (generate's `heal`): the prompt's last token is taken off and spelled back. */
  heal: boolean;
  /** Where the completion ends (stop-rules.ts). */
  stop: StopRule;
  /** Most generated tokens, healing ones not counted. */
  maxTokens: number;
  /** The FIM format and order the prompt was built with; null or absent: the text before the cursor alone (failures stored before FIM). */
  fim?: FimChoice | null;
  /** The editor's indentation there; absent: 4 spaces (DEFAULT_INDENT). */
  indent?: IndentStyle;
}

/** The extension's defaults (settings `starRepair.completions.*`), used for failures stored before replay settings were. */
export const DEFAULT_REPLAY: Readonly<CompletionReplay> = { heal: true, stop: 'line', maxTokens: 32 };

export const MAX_REPLAY_TOKENS = 256;

export const readFimChoice: Reader<FimChoice> = object((o, path) => ({
  format: field(o, 'format', oneOf(FIM_FORMAT_NAMES), path),
  order: field(o, 'order', oneOf(FIM_ORDERS), path),
}));

export const readIndent: Reader<IndentStyle> = object((o, path) => ({
  insertSpaces: field(o, 'insertSpaces', bool, path),
  tabSize: field(o, 'tabSize', intIn(1, 16), path),
}));

export const readReplay: Reader<CompletionReplay> = object((o, path) => {
  const replay: CompletionReplay = {
    heal: field(o, 'heal', bool, path),
    stop: field(o, 'stop', oneOf(STOP_RULES), path),
    maxTokens: field(o, 'maxTokens', intIn(1, MAX_REPLAY_TOKENS), path),
  };
  const fim = optional(o, 'fim', nullable(readFimChoice), path);
  if (fim) replay.fim = fim;
  const indent = optional(o, 'indent', readIndent, path);
  if (indent) replay.indent = indent;
  return replay;
});
