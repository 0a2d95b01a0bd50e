// The prompt cache (runtime/prompt-cache.ts, issue 15 item 4) on a real onnxruntime session (the
// Llama fixture): only the tokens after the longest common token prefix are prefilled, the
// completion is the one an uncached run gives, a patch change invalidates it, and a prompt time
// cap ends the request with nothing while keeping what was prefilled for the next one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadModelFolder } from '../../src/model';
import { generate } from '../../src/runtime/generate';
import { PromptCache } from '../../src/runtime/prompt-cache';
import { ModelRuntime } from '../../src/runtime/runtime';

const folder = loadModelFolder(join(__dirname, '..', 'fixtures', 'models', 'llama'));
const tok = folder.tokenizer;
const runtime = new ModelRuntime(folder.config, folder.weights);

const text = 'def add(a, b):\n    return a + b\n\ndef sub(a, b):\n    return a - b\n';

test('typing on: the second prompt prefills only its new tokens and completes as an uncached run does', async () => {
  const cache = new PromptCache();
  const first = await generate(runtime, tok, text, { maxTokens: 6, promptCache: cache });
  assert.equal(first.reused, 0);
  assert.equal(first.prefilled, first.promptTokens);
  const typed = text + 'def mul(a';
  const second = await generate(runtime, tok, typed, { maxTokens: 6, promptCache: cache });
  const plain = await generate(runtime, tok, typed, { maxTokens: 6 });
  assert.ok(second.reused >= tok.encode(text).length - 1, `reused ${second.reused}`);
  assert.equal(second.prefilled, second.promptTokens - second.reused);
  assert.deepEqual(second.tokens, plain.tokens);
  assert.equal(cache.stats.hits, 1);
  // An edit in the middle reuses the tokens before it.
  const edited = text.replace('sub', 'minus') + 'def mul(a';
  const third = await generate(runtime, tok, edited, { maxTokens: 6, promptCache: cache });
  assert.ok(third.reused > 0 && third.reused < tok.encode(text).length - 3, `reused ${third.reused}`);
  assert.deepEqual(third.tokens, (await generate(runtime, tok, edited, { maxTokens: 6 })).tokens);
});

test('a patch change (setPatch: a repair, an undo, a toggle) invalidates every cached prompt', async () => {
  const cache = new PromptCache();
  await generate(runtime, tok, text, { maxTokens: 2, promptCache: cache });
  assert.ok((await generate(runtime, tok, text + 'x', { maxTokens: 2, promptCache: cache })).reused > 0);
  runtime.setPatch(new Map([[0, { rows: [1], deltas: new Float32Array(folder.config.hidden).fill(0.5) }]]));
  try {
    const after = await generate(runtime, tok, text + 'x', { maxTokens: 2, promptCache: cache });
    assert.equal(after.reused, 0);
    assert.equal(cache.stats.entries, 1, 'only the prompt computed under the new patch is kept');
  } finally {
    runtime.setPatch(new Map());
  }
});

test('prompt time cap: nothing is shown, and what was prefilled is kept so the next request goes on from there', async () => {
  const cache = new PromptCache();
  const long = text.repeat(3);
  const capped = await generate(runtime, tok, long, { maxTokens: 4, promptCache: cache, promptMs: 1e-6 });
  assert.equal(capped.stoppedBy, 'time');
  assert.equal(capped.text, '');
  assert.ok(capped.prefilled > 0 && capped.prefilled < capped.promptTokens);
  const next = await generate(runtime, tok, long, { maxTokens: 4, promptCache: cache });
  assert.equal(next.reused, capped.prefilled);
  // The generation cap ends with what is there.
  const gen = await generate(runtime, tok, long, { maxTokens: 20, promptCache: cache, generationMs: 1e-6 });
  assert.equal(gen.stoppedBy, 'time');
  assert.equal(gen.tokens.length, 1);
});
