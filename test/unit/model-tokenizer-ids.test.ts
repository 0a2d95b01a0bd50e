// Token ids in tokenizer.json (issue 17, defect 8): an id of 1e9 used to cost 43 s (the library
// builds an array up to the largest id) before any error. Ids in model.vocab and added_tokens are
// now checked in the JSON, against MAX_TOKEN_ID, before the tokenizer is built.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { MAX_TOKEN_ID, checkTokenIds, loadTokenizer } from '../../src/model/index';
import { byteLevelTokenizerJson } from '../../src/model/synthetic';
import { expectError } from '../helpers/expect-model-error';
import { loadInChild } from '../helpers/load-in-child';

const tmp = mkdtempSync(join(tmpdir(), 'model-tok-ids-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
let counter = 0;

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const base = (): Json => byteLevelTokenizerJson([['d', 'e']], ['<|endoftext|>']);

function folder(json: Json): string {
  const dir = join(tmp, `t${counter++}`);
  mkdirSync(dir);
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json));
  return dir;
}

describe('token ids are checked before the tokenizer is built', () => {
  test('a vocabulary id of 1e9 is refused at once, naming the token, the id and the limit', () => {
    const json = base();
    json['model']['vocab']['huge'] = 1e9;
    const r = loadInChild('tokenizer', folder(json), 20_000);
    assert.equal(r.timedOut, false, r.message);
    assert.equal(r.code, 'tokenizer-invalid', r.message);
    assert.match(r.message ?? '', /model\.vocab: token "huge" has id 1000000000, above the limit of 4194303/);
    assert.match(r.message ?? '', /docs\/limits\.md/);
    assert.ok(r.ms < 2000, `took ${r.ms} ms`);
  });

  test('an added token with a huge, negative, fractional or missing id', () => {
    for (const [id, shown] of [[1e9, '1000000000'], [-1, '-1'], [2.5, '2.5'], ['7', '"7"'], [undefined, 'undefined']] as const) {
      const json = base();
      json['added_tokens'][0]['id'] = id;
      expectError(() => loadTokenizer(folder(json)), 'tokenizer-invalid', new RegExp(`added_tokens\\[0\\] \\("<\\|endoftext\\|>"\\) has id ${shown.replace(/[.]/g, '\\.')}`));
    }
  });

  test('vocabulary ids that are not integers are refused', () => {
    const json = base();
    json['model']['vocab']['x'] = 'seven';
    expectError(() => loadTokenizer(folder(json)), 'tokenizer-invalid', /token "x" has id "seven"/, /restore it/);
  });

  test('the largest allowed id loads, and a real vocabulary passes the check', () => {
    const json = base();
    json['model']['vocab']['last'] = MAX_TOKEN_ID;
    assert.doesNotThrow(() => checkTokenIds(json, 'tokenizer.json'));
    json['model']['vocab']['last'] = MAX_TOKEN_ID + 1;
    expectError(() => checkTokenIds(json, 'tokenizer.json'), 'tokenizer-invalid', /above the limit/);
    assert.equal(loadTokenizer(folder(base())).vocabSize, 258);
  });

  test('a Unigram vocabulary (a list: ids are positions) is not an id problem', () => {
    assert.doesNotThrow(() => checkTokenIds({ model: { type: 'Unigram', vocab: [['a', -1], ['b', -2]] }, added_tokens: [] }, 'tokenizer.json'));
  });
});
