// Tests for src/model/tokenizer.ts: a byte-level BPE tokenizer.json built here (a few merges)
// loads offline; encode adds no special tokens; decode keeps text exactly; promptTokenCount
// handles straddling tokens and multi-byte characters split across byte-level tokens.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { loadTokenizer, promptTokenCount, type TextTokenizer } from '../../src/model/index';
import { byteLevelAlphabet, byteLevelTokenizerJson } from '../../src/model/synthetic';
import { expectError } from '../helpers/expect-model-error';

const tmp = mkdtempSync(join(tmpdir(), 'model-tok-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
let counter = 0;

function folder(tokenizer: unknown, tokenizerConfig?: unknown): string {
  const dir = join(tmp, `t${counter++}`);
  mkdirSync(dir);
  if (tokenizer !== undefined) writeFileSync(join(dir, 'tokenizer.json'), typeof tokenizer === 'string' ? tokenizer : JSON.stringify(tokenizer));
  if (tokenizerConfig !== undefined) writeFileSync(join(dir, 'tokenizer_config.json'), typeof tokenizerConfig === 'string' ? tokenizerConfig : JSON.stringify(tokenizerConfig));
  return dir;
}


const alphabet = byteLevelAlphabet();
const byteId = (b: number): number => b; // the byte tokens come first, in byte order
// Merges (ids 256..): "de", "def", "Ġf", "oo", "Ġfoo", "lÃ" (l + first byte of é), "Ã©" (é).
const merges: Array<[string, string]> = [['d', 'e'], ['de', 'f'], ['Ġ', 'f'], ['o', 'o'], ['Ġf', 'oo'], ['l', 'Ã'], ['Ã', '©']];
const EOS = '<|endoftext|>';
let tok: TextTokenizer;

describe('loadTokenizer', () => {
  test('byte-level alphabet is GPT-2\'s', () => {
    assert.equal(alphabet.length, 256);
    assert.equal(new Set(alphabet).size, 256);
    assert.equal(alphabet[0x20], 'Ġ');
    assert.equal(alphabet[0x0a], 'Ċ');
    assert.equal(alphabet[0x41], 'A');
    assert.equal(alphabet[0xc3], 'Ã');
    assert.equal(alphabet[0xa9], '©');
  });

  test('loads a byte-level BPE tokenizer and applies its merges', () => {
    tok = loadTokenizer(folder(byteLevelTokenizerJson(merges, [EOS]), { eos_token: EOS, clean_up_tokenization_spaces: true }));
    assert.equal(tok.vocabSize, 256 + merges.length + 1);
    assert.equal(tok.eosId, 263);
    assert.deepEqual(tok.encode('def foo'), [257, 260]);
    assert.equal(tok.tokenText(260), ' foo');
    assert.equal(tok.tokenText(tok.eosId!), EOS);
    assert.deepEqual(tok.encode('hellé'), [byteId(0x68), byteId(0x65), byteId(0x6c), 261, byteId(0xa9)]);
    assert.deepEqual(tok.encode(''), []);
    assert.equal(tok.decode([]), '');
  });

  test('decode(encode(text)) is the text, exactly', () => {
    for (const text of ['def foo():\n\treturn  "héllo" ;', 'x😀y', 'a , b . c', '  leading and trailing  ', `a${EOS}b`, 'naïve café — ünïcödé']) {
      assert.equal(tok.decode(tok.encode(text)), text, JSON.stringify(text));
    }
    // The special token in text is recognised as one token and kept on decode.
    assert.deepEqual(tok.encode(`a${EOS}b`), [0x61, 263, 0x62]);
  });

  test('encode adds no BOS/EOS even when the post-processor would', () => {
    const json = byteLevelTokenizerJson(merges, ['<s>']);
    json['post_processor'] = {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [263], tokens: ['<s>'] } },
    };
    const t = loadTokenizer(folder(json, { bos_token: '<s>', add_bos_token: true }));
    assert.deepEqual(t.encode('def'), [257]);
    assert.equal(t.eosId, null);
  });

  test('ids outside the vocabulary decode to nothing (padding rows of a larger embedding)', () => {
    assert.equal(tok.decode([0x61, 5000, 0x62]), 'ab');
    assert.equal(tok.tokenText(99999), '');
    assert.equal(tok.tokenText(-1), '');
  });

  test('missing, corrupt and unusable tokenizer files', () => {
    expectError(() => loadTokenizer(folder(undefined)), 'tokenizer-missing', /tokenizer\.json/, /save_pretrained/);
    expectError(() => loadTokenizer(folder('{"model": ')), 'tokenizer-invalid', /not valid JSON/);
    expectError(() => loadTokenizer(folder({ version: '1.0' })), 'tokenizer-invalid', /no "model"/);
    expectError(() => loadTokenizer(folder([1, 2])), 'tokenizer-invalid');
    const bogus = byteLevelTokenizerJson(merges);
    bogus['model'] = { type: 'NoSuchModel' };
    expectError(() => loadTokenizer(folder(bogus)), 'tokenizer-invalid', /could not be loaded/, /NoSuchModel/);
    bogus['model'] = { type: 'NoSuchModel', vocab: {} };
    expectError(() => loadTokenizer(folder(bogus)), 'tokenizer-invalid', /empty vocabulary/);
    expectError(() => loadTokenizer(folder(byteLevelTokenizerJson(merges), '{ nope')), 'tokenizer-invalid', /tokenizer_config\.json is not valid JSON/);
    expectError(() => loadTokenizer(folder(byteLevelTokenizerJson(merges), '[]')), 'tokenizer-invalid', /not a JSON object/);
  });

  test('a tokenizer.json without added_tokens or null components still loads', () => {
    const json = byteLevelTokenizerJson(merges);
    delete json['added_tokens'];
    delete json['normalizer'];
    const t = loadTokenizer(folder(json));
    assert.deepEqual(t.encode('def'), [257]);
  });
});

describe('promptTokenCount (docs/algorithm.md "Targets")', () => {
  const count = (prompt: string, desired: string): number => promptTokenCount(tok, prompt, tok.encode(prompt + desired));

  test('tokens wholly inside the prompt are counted; a token that straddles the boundary is not', () => {
    // "def foo" → ["def", " foo"].
    assert.equal(count('def', ' foo'), 1);
    // " foo" straddles "def " | "foo": it belongs to the target.
    assert.equal(count('def ', 'foo'), 1);
    // "def" straddles "de" | "f".
    assert.equal(count('de', 'f foo'), 0);
    assert.equal(count('def foo', '()'), 2);
    assert.equal(count('', 'def'), 0);
    assert.equal(count('def foo', ''), 2);
  });

  test('multi-byte characters split across byte-level tokens', () => {
    // "hellé" → h e l "l+0xC3" 0xA9: the fourth token holds "l" and the first byte of "é".
    assert.equal(count('hell', 'é'), 3);
    assert.equal(count('hellé', 'o'), 5);
    assert.equal(count('hel', 'lé'), 3);
    // "é" alone is the merged token "Ã©".
    assert.deepEqual(tok.encode('xé'), [0x78, 262]);
    assert.equal(count('x', 'é'), 1);
    assert.equal(count('xé', '!'), 2);
    // A 4-byte emoji is four byte tokens, none decodable alone.
    assert.equal(tok.encode('x😀y').length, 6);
    assert.equal(count('x', '😀y'), 1);
    assert.equal(count('x😀', 'y'), 5);
    // Counting JS string lengths instead of bytes would get these wrong: "é" is 1 UTF-16 unit, 2 bytes.
    assert.equal(count('éé', 'x'), 2);
    assert.equal(count('a😀😀', 'b'), 9);
  });

  test('a prompt that is altered by normalisation falls back to the prompt\'s own tokenisation', () => {
    const json = byteLevelTokenizerJson(merges);
    json['normalizer'] = { type: 'Lowercase' };
    const lower = loadTokenizer(folder(json));
    const ids = lower.encode('DEF foo');
    assert.deepEqual(ids, [257, 260]);
    assert.equal(promptTokenCount(lower, 'DEF', ids), 1);
    assert.equal(promptTokenCount(lower, 'DE', ids), 0);
  });
});
