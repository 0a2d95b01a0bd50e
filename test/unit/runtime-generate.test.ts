// generate() (src/runtime/generate.ts) against a scripted model: each decode call returns the next
// row of preferences, so greedy choice, stop strings, the token budget and token healing are
// checked exactly, independent of any trained weights. The tokenizer is the Llama fixture's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadModelFolder } from '../../src/model';
import { generate, healLength, type GenerateOptions } from '../../src/runtime/generate';
import type { KvCache, ModelRuntime } from '../../src/runtime/runtime';

const tok = loadModelFolder(join(__dirname, '..', 'fixtures', 'models', 'llama')).tokenizer;
const V = 288;

function id(s: string): number {
  const ids = tok.encode(s);
  assert.equal(ids.length, 1, `${JSON.stringify(s)} is one token of the fixture tokenizer`);
  return ids[0];
}

/** A model whose step k prefers the tokens of script[k] (the last row repeats); records the prefilled prompts. */
function scripted(script: Array<Record<number, number>>) {
  let step = 0;
  const prompts: number[][] = [];
  /** Every cache decode() returned, and those given to releaseCache(), in order. */
  const made: KvCache[] = [];
  const released: KvCache[] = [];
  const runtime = {
    config: { maxPositions: 64 },
    async decode(ids: readonly number[], cache?: KvCache) {
      if (!cache) {
        prompts.push([...ids]);
        step = 0;
      }
      const logits = new Float32Array(V);
      for (const [k, v] of Object.entries(script[Math.min(step++, script.length - 1)])) logits[Number(k)] = v;
      const next = { length: (cache?.length ?? 0) + ids.length, keys: [], values: [] };
      made.push(next);
      return { logits, cache: next };
    },
    releaseCache(cache: KvCache) {
      released.push(cache);
    },
  } as unknown as ModelRuntime;
  return { runtime, prompts, made, released };
}

async function run(prompt: string, script: Array<Record<number, number>>, options: Partial<GenerateOptions> = {}) {
  const m = scripted(script);
  const g = await generate(m.runtime, tok, prompt, { maxTokens: 10, ...options });
  return { g, prompts: m.prompts };
}

const [x, a, b, nl] = [id('x'), id('a'), id('b'), id('\n')];

test('generate: greedy tokens until the stop string, which is cut off', async () => {
  const { g, prompts } = await run('y = 1', [{ [a]: 2 }, { [b]: 2 }, { [nl]: 2 }, { [x]: 2 }], { stop: ['\n'] });
  assert.deepEqual(prompts, [tok.encode('y = 1')]);
  assert.equal(g.text, 'ab');
  assert.equal(g.stoppedBy, 'stop');
  assert.equal(g.healed, '');
});

test('generate: end-of-text ends the completion; the budget ends one that never ends', async () => {
  assert.equal((await run('y', [{ [a]: 2 }, { [tok.eosId as number]: 2 }])).g.stoppedBy, 'eos');
  const { g } = await run('y', [{ [a]: 2 }], { maxTokens: 7 });
  assert.equal(g.text, 'a'.repeat(7));
  assert.equal(g.stoppedBy, 'max-tokens');
});

test('healLength: the last token, or all the trailing whitespace when longer; nothing after end-of-text', () => {
  assert.equal(healLength(tok, 'y = 1\n', tok.encode('y = 1\n')), 1);
  assert.equal(healLength(tok, 'y = 1\n\n   ', tok.encode('y = 1\n\n   ')), 5);
  const last = tok.tokenText(tok.encode('y = 1').at(-1) as number);
  assert.equal(healLength(tok, 'y = 1', tok.encode('y = 1')), last.length);
  assert.equal(healLength(tok, 'x', tok.encode('x')), 0, 'a one-token prompt keeps its token');
  assert.equal(healLength(tok, 'x<|endoftext|>', tok.encode('x<|endoftext|>')), 0);
});

test('generate with healing: the prompt loses its trailing newline, which decoding must spell back first', async () => {
  // The model would rather go on with "x" on the same line: healing forces the newline first.
  const one = await run('y = 1\n', [{ [x]: 9, [nl]: 5 }, { [a]: 3 }, { [b]: 3 }, { [nl]: 3 }], { stop: ['\n'], heal: true });
  assert.deepEqual(one.prompts, [tok.encode('y = 1')]);
  assert.equal(one.g.healed, '\n');
  assert.equal(one.g.text, 'ab', 'the completion is what follows the healed text; the stop string applies to it alone');
  assert.equal(one.g.stoppedBy, 'stop');
  assert.deepEqual(one.g.tokens, [nl, a, b, nl]);
  assert.equal(one.g.healingTokens, 1);
  // After a blank line both newlines are owed before the line can start.
  const two = await run('y = 1\n\n', [{ [nl]: 5, [a]: 9 }, { [x]: 9, [nl]: 1 }, { [b]: 3 }, { [nl]: 3 }], { stop: ['\n'], heal: true });
  assert.deepEqual(two.prompts, [tok.encode('y = 1')]);
  assert.equal(two.g.text, 'b');
  // Healing tokens do not count against the budget.
  const three = await run('y = 1\n', [{ [nl]: 5 }, { [a]: 3 }], { maxTokens: 4, heal: true });
  assert.equal(three.g.text, 'aaaa');
  assert.equal(three.g.tokens.length - three.g.healingTokens, 4);
  assert.equal(three.g.stoppedBy, 'max-tokens');
});

test('generate with healing: a token longer than the owed text carries the completion on', async () => {
  // Any merged token of the fixture vocabulary: the prompt ends with its first character.
  const long = Array.from({ length: V }, (_, i) => i).find((i) => /^[a-z]{2,}$/.test(tok.tokenText(i)));
  assert.ok(long !== undefined, 'the fixture vocabulary has a merged lowercase token');
  const word = tok.tokenText(long);
  const { g, prompts } = await run(`y = ${word[0]}`, [{ [long]: 5 }, { [nl]: 5 }], { stop: ['\n'], heal: true });
  assert.equal(g.healed, word[0]);
  assert.deepEqual(prompts, [tok.encode('y = ')]);
  assert.equal(g.text, word.slice(1));
});

test('generate with healing falls back to plain decoding when no token spells the owed text', async () => {
  // A tokenizer that lists no token texts: the newline taken off cannot be spelled back, so
  // generation starts again on the whole prompt.
  const blind = { ...tok, vocabSize: 0 };
  const m = scripted([{ [a]: 2 }, { [nl]: 2 }]);
  const g = await generate(m.runtime, blind, 'y = 1\n', { maxTokens: 10, stop: ['\n'], heal: true });
  assert.deepEqual(m.prompts, [tok.encode('y = 1'), tok.encode('y = 1\n')]);
  assert.equal(g.healed, '');
  assert.equal(g.text, 'a');
});

test('generate releases its last KV cache when the generation ends, however it ends (GPU caches are freed at once)', async () => {
  // decode() spends the cache it is given; only the last one is left for generate() to release.
  const cases: [string, Array<Record<number, number>>, Partial<GenerateOptions>][] = [
    ['stop', [{ [a]: 2 }, { [nl]: 2 }], { stop: ['\n'] }],
    ['eos', [{ [a]: 2 }, { [tok.eosId as number]: 2 }], {}],
    ['max-tokens', [{ [a]: 2 }], { maxTokens: 3 }],
  ];
  for (const [why, script, options] of cases) {
    const m = scripted(script);
    const g = await generate(m.runtime, tok, 'y = 1', { maxTokens: 10, ...options });
    assert.equal(g.stoppedBy, why);
    assert.deepEqual(m.released, [m.made.at(-1)], `${why}: the last cache, once`);
  }
  // Cancelled after the first token.
  const ac = new AbortController();
  const c = scripted([{ [a]: 2 }]);
  const g = await generate(c.runtime, tok, 'y = 1', { maxTokens: 10, signal: ac.signal, onText: () => ac.abort() });
  assert.equal(g.stoppedBy, 'cancelled');
  assert.deepEqual(c.released, [c.made.at(-1)]);
  // Healing that cannot spell the owed text starts over: the first attempt's cache is released too.
  const blind = { ...tok, vocabSize: 0 };
  const h = scripted([{ [a]: 2 }, { [nl]: 2 }]);
  await generate(h.runtime, blind, 'y = 1\n', { maxTokens: 10, stop: ['\n'], heal: true });
  assert.equal(h.made.length, 3, 'one prefill for the healed try, then the unhealed prefill and one step');
  assert.deepEqual(new Set(h.released), new Set([h.made[0], h.made[2]]));
  // A generation that throws (non-finite logits) still releases its cache.
  const bad = scripted([{ [a]: NaN }]);
  await assert.rejects(generate(bad.runtime, tok, 'y = 1', { maxTokens: 4 }), /not finite|NaN/i);
  assert.deepEqual(bad.released, [bad.made.at(-1)]);
});
