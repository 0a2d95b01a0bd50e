// Tokenizer of a model folder (tokenizer.json + optional tokenizer_config.json) through
// @huggingface/tokenizers, which is built from parsed JSON objects and so never touches the
// network; and the prompt/target split of teacher forcing (docs/algorithm.md).
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { ModelError, errorText } from './errors';
import { SIDE_JSON_LIMIT, TOKENIZER_JSON_LIMIT, readRegularFile } from './files';
import { checkTokenIds } from './tokenizer-check';
import { checkTokenizerRegexes, encodeTimeLimitMs, probeTokenizer } from './regex-safety';
import { TimeLimitExceeded, runWithin } from './time-limit';

export interface TextTokenizer {
  /** Token ids of `text`, with no special tokens added (no BOS). */
  encode(text: string): number[];
  /** Text of `ids` exactly as the tokens spell it: special tokens kept, no space clean-up. */
  decode(ids: readonly number[]): string;
  /** One more than the largest token id the tokenizer knows (added tokens included). */
  readonly vocabSize: number;
  readonly eosId: number | null;
  /** Display text of a single token (decode of [id]); '' for an id the tokenizer lacks. */
  tokenText(id: number): string;
}

function readJson(file: string, what: string, required: boolean, limit: number): unknown {
  let text: string;
  try {
    text = readRegularFile(file, what, limit, 'tokenizer-invalid').toString('utf8');
  } catch (e) {
    if (e instanceof ModelError) throw e;
    if (!required && (e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ModelError(
      'tokenizer-missing',
      `no readable ${what} at ${file} (${errorText(e)}); the model folder needs the tokenizer.json that comes with the model (for a tokenizer saved only as vocab.json/merges.txt or tokenizer.model, re-save it with transformers' AutoTokenizer.from_pretrained(...).save_pretrained(dir))`,
      file,
      { cause: e },
    );
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ModelError('tokenizer-invalid', `${file} is not valid JSON (${errorText(e)}); restore it from the original model`, file, { cause: e });
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** rawEncode(text) under encodeTimeLimitMs: a regex that backtracks is stopped with a typed error. */
function encodeWithin(rawEncode: (text: string) => unknown, text: string, file: string): unknown {
  const ms = encodeTimeLimitMs(text.length);
  try {
    return runWithin(ms, () => rawEncode(text));
  } catch (e) {
    if (!(e instanceof TimeLimitExceeded)) throw e;
    if (e.reason === 'busy') {
      throw new ModelError(
        'tokenizer-unsafe',
        `${file}: encoding a text of ${text.length} characters was stopped after ${Math.round(e.wallMs / 1000)} s of wall time in which this process got only ${Math.round(e.cpuMs)} ms of CPU time — the machine is too busy (other programs take the CPU), which says nothing against the tokenizer; try again when it is less busy`,
        file,
      );
    }
    throw new ModelError(
      'tokenizer-unsafe',
      `${file}: encoding a text of ${text.length} characters took more than ${ms} ms and was stopped: a regex of its normalizer or pre-tokenizer backtracks catastrophically on it — use the tokenizer.json that came with the model`,
      file,
    );
  }
}

function specialTokenContent(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (isObject(v) && typeof v['content'] === 'string') return v['content'];
  return undefined;
}

export function loadTokenizer(dir: string): TextTokenizer {
  const file = join(dir, 'tokenizer.json');
  const json = readJson(file, 'tokenizer.json', true, TOKENIZER_JSON_LIMIT);
  const configFile = join(dir, 'tokenizer_config.json');
  const config = readJson(configFile, 'tokenizer_config.json', false, SIDE_JSON_LIMIT) ?? {};
  if (!isObject(json) || !isObject(json['model'])) {
    throw new ModelError('tokenizer-invalid', `${file} is not a Hugging Face tokenizer.json (no "model" object); restore it from the original model`, file);
  }
  if (!isObject(config)) {
    throw new ModelError('tokenizer-invalid', `${configFile} is not a JSON object; restore it from the original model`, configFile);
  }
  checkTokenIds(json, file);
  checkTokenizerRegexes(json, file);
  // The library requires these keys; older files omit the ones that are null.
  const full: Record<string, unknown> = {
    normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null,
    ...json,
    added_tokens: Array.isArray(json['added_tokens']) ? json['added_tokens'] : [],
  };
  let tok: Tokenizer;
  try {
    tok = new Tokenizer(full, config);
  } catch (e) {
    throw new ModelError('tokenizer-invalid', `${file} could not be loaded (${errorText(e)}); it may use a tokenizer component this version does not support, or be damaged`, file, { cause: e });
  }

  let vocabSize = 0;
  for (const id of tok.get_vocab(true).values()) vocabSize = Math.max(vocabSize, id + 1);
  if (vocabSize === 0) throw new ModelError('tokenizer-invalid', `${file} has an empty vocabulary`, file);

  const eosText = specialTokenContent(config['eos_token']);
  const eosId = eosText === undefined ? null : tok.token_to_id(eosText) ?? null;
  const known = (id: number): boolean => Number.isInteger(id) && id >= 0 && tok.id_to_token(id) !== undefined;

  const decode = (ids: readonly number[]): string => {
    // Ids the vocabulary lacks (e.g. padding rows of a larger embedding) spell nothing.
    const kept = ids.filter(known);
    if (kept.length === 0) return '';
    return tok.decode(kept, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  };
  const rawEncode = (text: string): unknown => tok.encode(text, { add_special_tokens: false }).ids;
  probeTokenizer((text) => rawEncode(text) as number[], decode, file);

  return {
    vocabSize,
    eosId,
    encode(text: string): number[] {
      // The library's .d.ts files do not resolve fully under NodeNext, so check the ids' type here.
      const ids = encodeWithin(rawEncode, text, file);
      if (!Array.isArray(ids) || !ids.every((id) => Number.isInteger(id))) {
        throw new ModelError('tokenizer-invalid', `the text contains characters ${file} cannot represent and it defines no unknown-token id`, file);
      }
      return ids as number[];
    },
    decode,
    tokenText: (id: number): string => decode([id]),
  };
}

function longestCommonPrefix(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}

/**
 * docs/algorithm.md (teacher forcing): how many leading tokens of `ids` (= encode(prompt + desired)) lie wholly inside
 * `prompt`; a token straddling the boundary belongs to the target.
 *
 * Works on decoded prefixes. If decode(ids[0..k]) is a prefix of the full decoded text, its length
 * is exact. If it is not, token k ends inside a multi-byte character that the decoder could only
 * render as U+FFFD; the first position where the two texts differ is the start of that character,
 * and the token lies inside the prompt exactly when that whole character does. Since the prompt
 * ends on a character boundary, this compares UTF-8 byte extents without ever splitting a
 * character. Being monotone in k, the count is found by binary search.
 */
export function promptTokenCount(tok: TextTokenizer, prompt: string, ids: readonly number[]): number {
  if (ids.length === 0 || prompt.length === 0) return 0;
  const full = tok.decode(ids);
  if (!full.startsWith(prompt)) {
    // A normaliser changed the text (lowercasing, NFKC, ...): byte positions cannot be
    // compared, so count the leading tokens the prompt's own tokenisation shares.
    const alone = tok.encode(prompt);
    let k = 0;
    while (k < alone.length && k < ids.length && alone[k] === ids[k]) k++;
    return k;
  }
  const inside = (k: number): boolean => {
    const part = tok.decode(ids.slice(0, k));
    if (full.startsWith(part)) return part.length <= prompt.length;
    return longestCommonPrefix(part, full) < prompt.length;
  };
  let lo = 0; // inside(lo) holds
  let hi = ids.length + 1; // inside(hi) fails or is out of range
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (inside(mid)) lo = mid;
    else hi = mid;
  }
  return lo;
}
