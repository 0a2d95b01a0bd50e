// Regexes in tokenizer.json (issue 17, defect 7): a Split pattern such as (a+)+$ backtracks
// catastrophically and used to block the process for minutes on a short input. Three defences,
// each tested here with a hostile tokenizer.json: nested quantifiers are refused at load; a timed
// probe encode of crafted strings refuses what backtracks on them; and every encode is stopped
// after a time bound, so no input can block the worker longer than that. The bounds are on CPU
// time: a tokenizer that only waits for a busy machine (wall time without CPU time) is not refused.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { performance } from 'node:perf_hooks';
import { PROBE_TIME_MS, encodeTimeLimitMs, loadTokenizer, nestedQuantifier, probeTokenizer, tokenizerRegexes } from '../../src/model/index';
import { byteLevelTokenizerJson } from '../../src/model/synthetic';
import { expectError } from '../helpers/expect-model-error';
import { loadInChild } from '../helpers/load-in-child';

const tmp = mkdtempSync(join(tmpdir(), 'model-tok-re-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
let counter = 0;

/** A byte-level tokenizer whose pre-tokenizer first splits on `regex`. */
function withSplit(regex: string): string {
  const json = byteLevelTokenizerJson([['d', 'e']], ['<|endoftext|>']);
  json['pre_tokenizer'] = {
    type: 'Sequence',
    pretokenizers: [
      { type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
    ],
  };
  const dir = join(tmp, `t${counter++}`);
  mkdirSync(dir);
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json));
  return dir;
}

const GPT2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
const LLAMA3 = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const O200K = "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

describe('nested quantifiers are refused at load', () => {
  test('(a+)+$ as a Split pattern: refused at once instead of blocking on "aaa…!"', () => {
    const r = loadInChild('tokenizer', withSplit('(a+)+$'), 20_000, `${'a'.repeat(40)}!`);
    assert.equal(r.timedOut, false, `blocked: ${r.message}`);
    assert.equal(r.code, 'tokenizer-unsafe', r.message);
    assert.match(r.message ?? '', /pre_tokenizer\.pretokenizers\[0\]\.pattern\.Regex/);
    assert.match(r.message ?? '', /"\(a\+\)\+"/);
    assert.match(r.message ?? '', /nested quantifier/);
    assert.match(r.message ?? '', /use the tokenizer\.json that came with the model/);
    assert.ok(r.ms < 3000, `took ${r.ms} ms`);
  });

  test('nestedQuantifier finds a repeated group holding an unbounded quantifier, and nothing in real patterns', () => {
    for (const [re, frag] of [['(a+)+$', '(a+)+'], ['x(?:a*)*', '(?:a*)*'], ['(a{2,})+', '(a{2,})+'], ['((ab)+c)*', '((ab)+c)*'],
      ['(\\s+|x){2,5}', '(\\s+|x){2,5}'], ['(?<w>[a-z]+\\d*)+', '(?<w>[a-z]+\\d*)+'], ['((a+))+', '((a+))+']] as const) {
      assert.equal(nestedQuantifier(re), frag, re);
    }
    for (const re of [GPT2, LLAMA3, O200K, '\\(a+\\)+', '[(a+)]+', '(a+)?', '(a+){1}', '(?:\\r?\\n)+', '(?:ab|cd)+', '\\p{N}{1,3}', '\\x{41}+']) {
      assert.equal(nestedQuantifier(re), null, re);
    }
  });

  test('regexes are found in the normalizer, the pre-tokenizer and the decoder, nested sequences included', () => {
    const json = {
      normalizer: { type: 'Sequence', normalizers: [{ type: 'Replace', pattern: { Regex: ' {2,}' }, content: ' ' }] },
      pre_tokenizer: { type: 'Split', pattern: { Regex: GPT2 } },
      decoder: { type: 'Replace', pattern: { String: 'x' } },
      model: { vocab: { Regex: 1 } },
    };
    assert.deepEqual(tokenizerRegexes(json), [
      { where: 'normalizer.normalizers[0].pattern.Regex', pattern: ' {2,}' },
      { where: 'pre_tokenizer.pattern.Regex', pattern: GPT2 },
    ]);
  });

  test('real pre-tokenizer patterns load and encode', () => {
    for (const re of [GPT2, LLAMA3, O200K]) {
      const tok = loadTokenizer(withSplit(re));
      assert.equal(tok.decode(tok.encode("def f(x):\n    return x's 12345")), "def f(x):\n    return x's 12345");
    }
  });
});

describe('what the static check cannot see is bounded in time', () => {
  test('(a|aa)+$ (no nested quantifier) is refused by the timed probe at load', () => {
    // The child is given more than the probe's wall cap (30 s): on a machine so busy that the
    // process gets a few % of a core, the probe is retried and may end as "too busy to check" —
    // refused all the same, and never left running. The cpu-bound outcome is pinned down below with
    // a simulated CPU clock.
    const r = loadInChild('tokenizer', withSplit('(a|aa)+$'), 90_000, `${'a'.repeat(40)}!`);
    assert.equal(r.timedOut, false, `blocked: ${r.message}`);
    assert.equal(r.code, 'tokenizer-unsafe', r.message);
    assert.match(r.message ?? '', /took more than \d+ ms to encode test strings.*backtracks|could not be checked.*too busy/);
  });

  test('a probe whose encode is starved past PROBE_TIME_MS (wall time without CPU time) is not refused', () => {
    const cell = new Int32Array(new SharedArrayBuffer(4));
    let encodes = 0;
    const encode = (text: string): number[] => {
      // The first encode waits, using no CPU, for longer than the limit: a busy machine not running
      // this process. The wall-clock-only check refused the tokenizer here.
      if (++encodes === 1) Atomics.wait(cell, 0, 0, PROBE_TIME_MS + 1000);
      return [...text].map((c) => c.codePointAt(0)!);
    };
    assert.doesNotThrow(() => probeTokenizer(encode, (ids) => String.fromCodePoint(...ids), 'starved/tokenizer.json'));
    assert.ok(encodes > 1);
  });

  test('a probe that backtracks on a thread given a whole core is refused as backtracking', () => {
    const encode = (text: string): number[] => (/(a|aa)+$/.test(text) ? [1] : [0]);
    const threadGotAllTheTime = (): number => performance.now();
    expectError(() => probeTokenizer(encode, () => '', 'bad/tokenizer.json', { cpuMs: threadGotAllTheTime }),
      'tokenizer-unsafe', /bad\/tokenizer\.json took more than 2000 ms to encode test strings/, /backtracks catastrophically/, /use the tokenizer\.json that came with the model/);
  });

  test('a probe that gets no CPU time until the wall cap is refused as "too busy to check", not as backtracking', () => {
    const cell = new Int32Array(new SharedArrayBuffer(4));
    const encode = (): number[] => { Atomics.wait(cell, 0, 0, 600_000); return []; };
    const e = expectError(() => probeTokenizer(encode, () => '', 'busy/tokenizer.json', { cpuMs: () => 0, maxWallMs: PROBE_TIME_MS + 500 }),
      'tokenizer-unsafe', /busy\/tokenizer\.json could not be checked/, /too busy/, /says nothing against the tokenizer/);
    assert.doesNotMatch(e.message, /backtracks/);
  });

  test('(q|qq)+$ passes the probe, but encoding "qqq…!" stops at the time bound with a typed error; the tokenizer still works after', () => {
    const tok = loadTokenizer(withSplit('(q|qq)+$'));
    const start = Date.now();
    expectError(() => tok.encode(`${'q'.repeat(60)}!`), 'tokenizer-unsafe', /encoding a text of 61 characters took more than \d+ ms/, /use the tokenizer\.json that came with the model/);
    // Not before the bound; how long after depends on the machine's load (a starved encode is retried).
    const ms = Date.now() - start;
    assert.ok(ms >= encodeTimeLimitMs(61), `stopped after ${ms} ms`);
    assert.deepEqual(tok.decode(tok.encode('def')), 'def');
  });

  test('the bound grows with the text: 2 s plus 10 ms per KiB', () => {
    assert.equal(encodeTimeLimitMs(0), 2000);
    assert.equal(encodeTimeLimitMs(1024), 2010);
    assert.equal(encodeTimeLimitMs(1 << 20), 12_240);
  });
});
