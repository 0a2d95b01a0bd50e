// Checks of a parsed tokenizer.json made before the tokenizer library sees it, for what the
// library would take minutes over: token ids far beyond any real vocabulary (it builds an array up
// to the largest id), and regexes that backtrack catastrophically (see ./regex-safety.ts).
import { ModelError } from './errors';

/**
 * Largest token id accepted (2^22 − 1, about 4.2 M ids): the largest real vocabularies have about
 * 260 k tokens; the library builds an array up to the largest id, so 1e9 would take minutes.
 */
export const MAX_TOKEN_ID = 4_194_303;

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function badId(file: string, where: string, id: unknown): ModelError {
  const problem = typeof id === 'number' && Number.isInteger(id) && id > MAX_TOKEN_ID
    ? `above the limit of ${MAX_TOKEN_ID} (docs/limits.md); no real vocabulary is that large`
    : 'not a token id (a non-negative integer)';
  const shown = id === undefined ? 'undefined' : JSON.stringify(id);
  return new ModelError('tokenizer-invalid', `${file}: ${where} has id ${shown}, ${problem} — the file is damaged: restore it from the original model`, file);
}

const validId = (id: unknown): boolean => typeof id === 'number' && Number.isInteger(id) && id >= 0 && id <= MAX_TOKEN_ID;

/**
 * Throws `tokenizer-invalid` unless every id in model.vocab (a token → id object; a Unigram list
 * has positions for ids and needs no check) and in added_tokens is an integer in [0, MAX_TOKEN_ID].
 */
export function checkTokenIds(json: Record<string, unknown>, file: string): void {
  const model = json['model'];
  const vocab = isObject(model) ? model['vocab'] : undefined;
  if (isObject(vocab)) {
    for (const [token, id] of Object.entries(vocab)) {
      if (!validId(id)) throw badId(file, `model.vocab: token ${JSON.stringify(token)}`, id);
    }
  }
  const added = json['added_tokens'];
  if (Array.isArray(added)) {
    added.forEach((t: unknown, i) => {
      const id = isObject(t) ? t['id'] : undefined;
      if (!validId(id)) {
        const content = isObject(t) && typeof t['content'] === 'string' ? ` (${JSON.stringify(t['content'])})` : '';
        throw badId(file, `added_tokens[${i}]${content}`, id);
      }
    });
  }
}
