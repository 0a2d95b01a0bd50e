// NaN and infinity (issue 17, defect 1): a checkpoint holding a non-finite weight is refused at
// load with the tensor and file named (F32, F16 and BF16, single and sharded), and a model that
// produces NaN logits never yields a token: argmax, sampling and generate() throw a typed error.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { argmax, checkFiniteLogits, firstNonFinite, loadModelFolder, parseConfig, readSafetensors, type Dtype } from '../../src/model/index';
import { byteLevelTokenizerJson, randomCheckpointTensors, writeModelFolder } from '../../src/model/synthetic';
import { generate } from '../../src/runtime/generate';
import type { KvCache, ModelRuntime } from '../../src/runtime/runtime';
import { expectError } from '../helpers/expect-model-error';

const tmp = mkdtempSync(join(tmpdir(), 'model-finite-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
let counter = 0;

const tokenizer = byteLevelTokenizerJson([['d', 'e']], ['<|endoftext|>']);
const llamaJson = {
  architectures: ['LlamaForCausalLM'], hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2,
  num_attention_heads: 4, vocab_size: 258, max_position_embeddings: 64, tie_word_embeddings: false,
};

/** A Llama folder whose tensor `name` has `value` at element `index`. */
function poisoned(name: string, index: number, value: number, dtype: Dtype = 'F32', shards = 1): string {
  const tensors = randomCheckpointTensors(parseConfig(llamaJson), 3);
  tensors.get(name)!.data[index] = value;
  const dir = join(tmp, `m${counter++}`);
  writeModelFolder(dir, { config: llamaJson, tensors, tokenizer, dtype, shards });
  return dir;
}

describe('non-finite weights are refused at load', () => {
  test('a NaN in q_proj (F32) names the tensor, the element and the file', () => {
    const dir = poisoned('model.layers.0.self_attn.q_proj.weight', 7, NaN);
    const e = expectError(() => loadModelFolder(dir), 'weights-not-finite',
      /model\.safetensors: tensor "model\.layers\.0\.self_attn\.q_proj\.weight" holds NaN at element 7/, /download or export it again/);
    assert.equal(e.path, join(dir, 'model.safetensors'));
  });

  test('+Infinity in the embeddings (BF16) and -Infinity in a norm of a sharded F16 checkpoint', () => {
    expectError(() => loadModelFolder(poisoned('model.embed_tokens.weight', 100, Infinity, 'BF16')), 'weights-not-finite', /"model\.embed_tokens\.weight" holds \+Infinity at element 100/);
    expectError(() => loadModelFolder(poisoned('model.layers.1.post_attention_layernorm.weight', 15, -Infinity, 'F16', 3)), 'weights-not-finite', /model-0000\d-of-00003\.safetensors: tensor "model\.layers\.1\.post_attention_layernorm\.weight" holds -Infinity at element 15/);
  });

  test('a finite value that overflows F16 on export is caught on reading it back', () => {
    expectError(() => loadModelFolder(poisoned('lm_head.weight', 3, 1e6, 'F16')), 'weights-not-finite', /"lm_head\.weight" holds \+Infinity/);
  });

  test('readSafetensors refuses them too unless asked to keep them', () => {
    const file = join(poisoned('model.norm.weight', 0, NaN), 'model.safetensors');
    expectError(() => readSafetensors(file), 'weights-not-finite', /"model\.norm\.weight" holds NaN at element 0/);
    assert.ok(Number.isNaN(readSafetensors(file, { allowNonFinite: true }).get('model.norm.weight')!.data[0]));
  });

  test('firstNonFinite finds the first NaN or infinity in a range', () => {
    const a = Float32Array.from([0, -0, 3.4e38, -1e-45, NaN, Infinity]);
    assert.equal(firstNonFinite(a), 4);
    assert.equal(firstNonFinite(a, 0, 4), -1);
    assert.equal(firstNonFinite(a, 5), 5);
    assert.equal(firstNonFinite([-Infinity]), 0);
  });
});

describe('non-finite logits never yield a token', () => {
  test('argmax throws for NaN anywhere (token 0 included) and for +Infinity; -Infinity is a masked token', () => {
    expectError(() => argmax(Float32Array.from([NaN, 1, 2])), 'logits-not-finite', /non-finite logits \(NaN for token 0\)/, /undo the last patch/);
    expectError(() => argmax(Float32Array.from([1, 2, NaN])), 'logits-not-finite', /NaN for token 2/);
    expectError(() => argmax(Float32Array.from([1, Infinity])), 'logits-not-finite', /\+Infinity for token 1/);
    expectError(() => argmax(Float32Array.from([-Infinity, -Infinity])), 'logits-not-finite', /only -Infinity/);
    assert.equal(argmax(Float32Array.from([-Infinity, -3, -Infinity, -1])), 3);
    assert.doesNotThrow(() => checkFiniteLogits([0, -Infinity]));
  });

  test('argmax (one pass) is the first index of the largest logit; a NaN after +Infinity or the maximum still throws', () => {
    assert.equal(argmax([2, 5, 5, -Infinity, 1]), 1);
    assert.equal(argmax(Float64Array.from([-Infinity, -Infinity, 0])), 2);
    expectError(() => argmax([]), 'logits-not-finite', /no logits at all/);
    expectError(() => argmax(Float32Array.from([9, 1, NaN])), 'logits-not-finite', /NaN for token 2/);
    expectError(() => argmax(Float32Array.from([Infinity, NaN])), 'logits-not-finite', /\+Infinity for token 0/);
    // Against the two-pass definition on random logits.
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) * 20 - 10;
    for (let n = 1; n < 200; n += 13) {
      const xs = Float32Array.from({ length: n }, () => Math.round(rand()));
      let best = 0;
      for (let i = 1; i < n; i++) if (xs[i] > xs[best]) best = i;
      assert.equal(argmax(xs), best);
    }
  });

  test('generate() rejects, greedy or sampling, instead of printing token 0', async () => {
    const folder = loadModelFolder(join(__dirname, '..', 'fixtures', 'models', 'llama'));
    const runtime = {
      config: { maxPositions: 64 },
      async decode(ids: readonly number[], cache?: KvCache) {
        const logits = new Float32Array(folder.config.vocab).fill(NaN);
        return { logits, cache: { length: (cache?.length ?? 0) + ids.length, keys: [], values: [] } };
      },
      releaseCache() {},
    } as unknown as ModelRuntime;
    for (const temperature of [0, 0.8]) {
      await assert.rejects(generate(runtime, folder.tokenizer, 'def f(n):', { maxTokens: 8, temperature }), (e: unknown) => {
        assert.equal((e as { code?: string }).code, 'logits-not-finite', String(e));
        return true;
      });
    }
  });
});
