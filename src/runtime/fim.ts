// Fill-in-the-middle prompt formats (issue 15, item 1): ONE table of the families' FIM tokens, the
// detection of a model's format from its tokenizer's special tokens, the choice a setting can
// override (format, PSM/SPM order), and the prompt's token layout. A model whose tokenizer has no
// FIM tokens gets null, and completions keep prefix-only prompts. Pure: no onnxruntime here.

import type { TextTokenizer } from '../model/tokenizer';

export type FimFormatName = 'qwen' | 'starcoder' | 'codellama' | 'deepseek';
export const FIM_FORMAT_NAMES: readonly FimFormatName[] = ['qwen', 'starcoder', 'codellama', 'deepseek'];
/** PSM: prefix, suffix, then the middle is generated. SPM: suffix before prefix, so the prefix runs straight into the middle. */
export type FimOrder = 'psm' | 'spm';
export const FIM_ORDERS: readonly FimOrder[] = ['psm', 'spm'];

export interface FimFormat {
  name: FimFormatName;
  /** Who uses it, for messages. */
  family: string;
  prefix: string;
  suffix: string;
  middle: string;
  /** The orders the family was trained on, the preferred one first (the one completions use unless a setting says otherwise). */
  orders: readonly FimOrder[];
  /** Tokens that end a middle (end-of-text, end-of-turn, file separator): decoding stops there. Those the tokenizer lacks are skipped. */
  stops: readonly string[];
  /** Repository-level context tokens (Qwen2.5-Coder's `<|file_sep|>`), informational. */
  context?: readonly string[];
}

/**
 * The table. SPM is listed first where the family was trained on both: typing changes only the
 * end of the prefix, and in SPM the prefix is the end of the prompt, so the prompt cache keeps
 * everything before the cursor (measured in BENCHMARKS.md, "Completions while typing").
 */
export const FIM_FORMATS: readonly FimFormat[] = [
  {
    name: 'qwen', family: 'Qwen2.5-Coder', prefix: '<|fim_prefix|>', suffix: '<|fim_suffix|>', middle: '<|fim_middle|>',
    orders: ['psm'], stops: ['<|endoftext|>', '<|fim_pad|>', '<|file_sep|>', '<|repo_name|>', '<|im_end|>', '<|fim_prefix|>', '<|fim_suffix|>', '<|fim_middle|>'],
    context: ['<|repo_name|>', '<|file_sep|>'],
  },
  {
    name: 'starcoder', family: 'StarCoder, StarCoder2, SantaCoder', prefix: '<fim_prefix>', suffix: '<fim_suffix>', middle: '<fim_middle>',
    orders: ['spm', 'psm'], stops: ['<|endoftext|>', '<fim_pad>', '<file_sep>', '<fim_prefix>', '<fim_suffix>', '<fim_middle>'],
    context: ['<repo_name>', '<file_sep>'],
  },
  {
    name: 'codellama', family: 'CodeLlama', prefix: '<PRE>', suffix: '<SUF>', middle: '<MID>',
    orders: ['spm', 'psm'], stops: ['<EOT>', '</s>', '<PRE>', '<SUF>', '<MID>'],
  },
  {
    name: 'deepseek', family: 'DeepSeek-Coder', prefix: '<｜fim▁begin｜>', suffix: '<｜fim▁hole｜>', middle: '<｜fim▁end｜>',
    orders: ['psm'], stops: ['<|EOT|>', '<｜end▁of▁sentence｜>', '<｜fim▁begin｜>', '<｜fim▁hole｜>', '<｜fim▁end｜>'],
  },
];

/** What a completion was built with: stored in a failure's replay so repair and "fixed" checks rebuild the same prompt. */
export interface FimChoice {
  format: FimFormatName;
  order: FimOrder;
}

/** The setting: 'auto' detects from the tokenizer, 'off' forces prefix-only prompts, a name forces that format. */
export type FimSetting = 'auto' | 'off' | FimFormatName;
export const FIM_SETTINGS: readonly FimSetting[] = ['auto', 'off', ...FIM_FORMAT_NAMES];
export type FimOrderSetting = 'auto' | FimOrder;
export const FIM_ORDER_SETTINGS: readonly FimOrderSetting[] = ['auto', ...FIM_ORDERS];

/** A FIM format was asked for that the model's tokenizer cannot express. */
export class FimError extends Error {
  readonly code = 'fim-unsupported';
  constructor(message: string) {
    super(message);
    this.name = 'FimError';
  }
}

export function fimFormat(name: FimFormatName): FimFormat {
  const f = FIM_FORMATS.find((x) => x.name === name);
  if (!f) throw new FimError(`unknown FIM format "${name}": use one of ${FIM_FORMAT_NAMES.join(', ')}`);
  return f;
}

/** The id of a special token: the tokenizer must encode its text as exactly one token that spells it back. */
export function specialId(tokenizer: TextTokenizer, text: string): number | null {
  let ids: number[];
  try {
    ids = tokenizer.encode(text);
  } catch {
    return null;
  }
  return ids.length === 1 && tokenizer.tokenText(ids[0]) === text ? ids[0] : null;
}

/** The token ids a prompt in this format needs. */
export interface FimIds {
  choice: FimChoice;
  prefix: number;
  suffix: number;
  middle: number;
  /** Ids that end the middle (the format's stop tokens the tokenizer has, and its end-of-text). */
  stops: number[];
}

function idsOf(tokenizer: TextTokenizer, f: FimFormat): Omit<FimIds, 'choice'> | null {
  const prefix = specialId(tokenizer, f.prefix);
  const suffix = specialId(tokenizer, f.suffix);
  const middle = specialId(tokenizer, f.middle);
  if (prefix === null || suffix === null || middle === null) return null;
  const stops = new Set<number>();
  for (const s of f.stops) {
    const id = specialId(tokenizer, s);
    if (id !== null) stops.add(id);
  }
  if (tokenizer.eosId !== null) stops.add(tokenizer.eosId);
  return { prefix, suffix, middle, stops: [...stops] };
}

/** The first format of the table whose three tokens the tokenizer has as special tokens, or null. */
export function detectFim(tokenizer: TextTokenizer): FimFormat | null {
  return FIM_FORMATS.find((f) => idsOf(tokenizer, f) !== null) ?? null;
}

/**
 * The FIM choice for a model under the settings: null = prefix-only prompts (no FIM tokens, or
 * 'off'). A forced format the tokenizer lacks is refused with a FimError saying what to set.
 */
export function resolveFim(tokenizer: TextTokenizer, setting: FimSetting = 'auto', order: FimOrderSetting = 'auto'): FimChoice | null {
  if (setting === 'off') return null;
  const f = setting === 'auto' ? detectFim(tokenizer) : fimFormat(setting);
  if (!f) return null;
  if (!idsOf(tokenizer, f)) {
    throw new FimError(`the model's tokenizer has no ${f.family} FIM tokens (${f.prefix} ${f.suffix} ${f.middle}): set starRepair.completions.fim to "auto" or "off"`);
  }
  return { format: f.name, order: order === 'auto' ? f.orders[0] : order };
}

const idCache = new WeakMap<TextTokenizer, Map<string, FimIds>>();

/** The ids of `choice` for this tokenizer (cached). Throws FimError when it lacks them (a failure stored for another tokenizer). */
export function fimIds(tokenizer: TextTokenizer, choice: FimChoice): FimIds {
  let per = idCache.get(tokenizer);
  if (!per) idCache.set(tokenizer, (per = new Map()));
  const key = `${choice.format}/${choice.order}`;
  let ids = per.get(key);
  if (!ids) {
    const f = fimFormat(choice.format);
    const found = idsOf(tokenizer, f);
    if (!found) throw new FimError(`this completion was made with ${f.family} FIM tokens, which the model's tokenizer lacks: it belongs to another model`);
    ids = { choice, ...found };
    per.set(key, ids);
  }
  return ids;
}

/** Where the FIM prompt's parts lie: the ids, and the index of the prefix's first token. */
export interface FimLayout {
  ids: number[];
  prefixAt: number;
}

/**
 * The prompt's token layout: PSM `<pre> prefix <suf> suffix <mid> middle`, where `middle` is the
 * middle's forced start (runtime/prompt.ts fimText: the typed part of the cursor's line); SPM
 * `<pre> <suf> suffix <mid> prefix` (StarCoder's and CodeLlama's SPM: the middle continues the
 * prefix directly, so there is no separate forced start).
 */
export function fimLayout(ids: FimIds, prefix: readonly number[], suffix: readonly number[], middle: readonly number[] = []): FimLayout {
  if (ids.choice.order === 'psm') return { ids: [ids.prefix, ...prefix, ids.suffix, ...suffix, ids.middle, ...middle], prefixAt: 1 };
  if (middle.length) throw new FimError('an SPM prompt has no forced middle: its prefix ends the prompt');
  return { ids: [ids.prefix, ids.suffix, ...suffix, ids.middle, ...prefix], prefixAt: 3 + suffix.length };
}

/** The format's name and family for `info`: null when the tokenizer has no FIM tokens. */
export function describeFim(tokenizer: TextTokenizer): { format: FimFormatName; family: string; orders: FimOrder[]; tokens: string[] } | null {
  const f = detectFim(tokenizer);
  return f ? { format: f.name, family: f.family, orders: [...f.orders], tokens: [f.prefix, f.suffix, f.middle] } : null;
}
