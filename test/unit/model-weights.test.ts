// Tests for src/model/weights.ts: the canonical view of each family's checkpoint, GPT-2's
// Conv1D transpose and c_attn split and GPTBigCode's fused q/k/v with hand-known values,
// name/shape validation, and toCheckpointTensors as the exact inverse.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  canonicalWeights, downProjectionNames, isIgnoredTensor, parseConfig, toCheckpointTensors,
  type CanonicalWeights, type HostTensor, type ModelConfig,
} from '../../src/model/index';
import { randomCheckpointTensors } from '../../src/model/synthetic';
import { expectError } from '../helpers/expect-model-error';


/** Tensor whose element i is base + i, so every value says where it came from. */
const ramp = (shape: number[], base = 0): HostTensor => {
  const n = shape.reduce((a, b) => a * b, 1);
  return { shape, data: Float32Array.from({ length: n }, (_, i) => base + i) };
};

const configs: Record<string, ModelConfig> = {
  llama: parseConfig({ architectures: ['LlamaForCausalLM'], hidden_size: 8, intermediate_size: 12, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 11, tie_word_embeddings: false }),
  llamaBias: parseConfig({ architectures: ['LlamaForCausalLM'], hidden_size: 8, intermediate_size: 12, num_hidden_layers: 1, num_attention_heads: 2, head_dim: 6, vocab_size: 11, attention_bias: true, mlp_bias: true, tie_word_embeddings: true }),
  qwen2: parseConfig({ architectures: ['Qwen2ForCausalLM'], hidden_size: 8, intermediate_size: 12, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 1, vocab_size: 11, tie_word_embeddings: true }),
  mistral: parseConfig({ architectures: ['MistralForCausalLM'], hidden_size: 8, intermediate_size: 12, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, vocab_size: 11 }),
  gpt2: parseConfig({ architectures: ['GPT2LMHeadModel'], n_embd: 8, n_layer: 2, n_head: 2, n_positions: 5, vocab_size: 11 }),
  bigcodeMQ: parseConfig({ architectures: ['GPTBigCodeForCausalLM'], n_embd: 8, n_layer: 2, n_head: 2, n_positions: 5, n_inner: 12, vocab_size: 11 }),
  bigcodeMHA: parseConfig({ architectures: ['GPTBigCodeForCausalLM'], n_embd: 8, n_layer: 1, n_head: 2, n_positions: 5, n_inner: 12, vocab_size: 11, multi_query: false }),
};

function assertSameWeights(a: CanonicalWeights, b: CanonicalWeights): void {
  assert.deepEqual([...a.embed], [...b.embed]);
  assert.deepEqual(a.positions && [...a.positions], b.positions && [...b.positions]);
  assert.deepEqual([...a.lmHead], [...b.lmHead]);
  assert.deepEqual([...a.finalNorm.weight], [...b.finalNorm.weight]);
  assert.equal(a.layers.length, b.layers.length);
  a.layers.forEach((la, i) => {
    const lb = b.layers[i]!;
    for (const key of ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] as const) {
      const x = la[key];
      const y = lb[key];
      assert.equal(x === undefined, y === undefined, `layer ${i} ${key}`);
      if (!x || !y) continue;
      assert.deepEqual([x.out, x.in], [y.out, y.in], `layer ${i} ${key}`);
      assert.deepEqual([...x.weight], [...y.weight], `layer ${i} ${key}`);
      assert.deepEqual(x.bias && [...x.bias], y.bias && [...y.bias], `layer ${i} ${key} bias`);
    }
    assert.deepEqual([...la.attnNorm.weight], [...lb.attnNorm.weight]);
    assert.deepEqual(la.mlpNorm.bias && [...la.mlpNorm.bias], lb.mlpNorm.bias && [...lb.mlpNorm.bias]);
  });
}

describe('Llama family', () => {
  test('canonical weights share the checkpoint arrays and have the configured shapes', () => {
    const c = configs['llama']!;
    const tensors = randomCheckpointTensors(c, 3);
    assert.ok(tensors.has('lm_head.weight'));
    const w = canonicalWeights(c, tensors);
    assert.equal(w.layers.length, 2);
    assert.equal(w.embed, tensors.get('model.embed_tokens.weight')!.data);
    assert.equal(w.lmHead, tensors.get('lm_head.weight')!.data);
    assert.notEqual(w.lmHead, w.embed);
    const l = w.layers[1]!;
    assert.equal(l.down.weight, tensors.get('model.layers.1.mlp.down_proj.weight')!.data);
    assert.deepEqual([l.q.out, l.q.in, l.k.out, l.v.out, l.o.out, l.o.in], [8, 8, 4, 4, 8, 8]);
    assert.deepEqual([l.gate!.out, l.up.out, l.down.out, l.down.in], [12, 12, 8, 12]);
    assert.equal(l.q.bias, undefined);
    assert.equal(w.positions, undefined);
    assert.equal(w.finalNorm.bias, undefined);
  });

  test('Qwen2: q/k/v biases, no o bias, tied head is the embedding array; a stray lm_head is ignored', () => {
    const c = configs['qwen2']!;
    const tensors = randomCheckpointTensors(c, 4);
    assert.ok(tensors.has('model.layers.0.self_attn.q_proj.bias'));
    assert.ok(!tensors.has('model.layers.0.self_attn.o_proj.bias'));
    assert.ok(!tensors.has('lm_head.weight'));
    tensors.set('lm_head.weight', ramp([3, 3]));
    assert.ok(isIgnoredTensor(c, 'lm_head.weight'));
    const w = canonicalWeights(c, tensors);
    assert.equal(w.lmHead, w.embed);
    assert.deepEqual([...w.layers[0]!.k.bias!], [...tensors.get('model.layers.0.self_attn.k_proj.bias')!.data]);
    assert.equal(w.layers[0]!.o.bias, undefined);
    tensors.delete('model.layers.1.self_attn.v_proj.bias');
    expectError(() => canonicalWeights(c, tensors), 'tensor-missing', /"model\.layers\.1\.self_attn\.v_proj\.bias"/, /\[2\]/);
  });

  test('Llama with attention_bias, mlp_bias and an explicit head_dim', () => {
    const c = configs['llamaBias']!;
    const w = canonicalWeights(c, randomCheckpointTensors(c, 5));
    const l = w.layers[0]!;
    assert.deepEqual([l.q.out, l.q.in, l.o.out, l.o.in], [12, 8, 8, 12]);
    assert.ok(l.o.bias && l.down.bias && l.gate!.bias);
  });

  test('missing tensor, wrong shape, extra layer: each error names the tensor and both shapes', () => {
    const c = configs['mistral']!;
    const tensors = randomCheckpointTensors(c, 6);
    const down = 'model.layers.0.mlp.down_proj.weight';
    const saved = tensors.get(down)!;
    tensors.set(down, { shape: [12, 8], data: saved.data });
    expectError(() => canonicalWeights(c, tensors), 'shape-mismatch', /"model\.layers\.0\.mlp\.down_proj\.weight"/, /has shape \[12, 8\]/, /implies \[8, 12\]/);
    tensors.set(down, { shape: [8, 12, 1], data: saved.data });
    expectError(() => canonicalWeights(c, tensors), 'shape-mismatch', /\[8, 12, 1\]/);
    tensors.delete(down);
    expectError(() => canonicalWeights(c, tensors), 'tensor-missing', /"model\.layers\.0\.mlp\.down_proj\.weight"/, /expected shape \[8, 12\]/);
    tensors.set(down, saved);
    tensors.set('model.layers.1.mlp.up_proj.weight', ramp([12, 8]));
    expectError(() => canonicalWeights(c, tensors), 'shape-mismatch', /layer 1/, /1 layers/);
    tensors.delete('model.layers.1.mlp.up_proj.weight');
    tensors.set('model.embed_tokens.weight', ramp([12, 8]));
    expectError(() => canonicalWeights(c, tensors), 'shape-mismatch', /embed_tokens/, /\[11, 8\]/);
  });
});

describe('GPT-2 family', () => {
  // d = 2, one head, m = 3, V = 4, P = 3: small enough to write every expected value by hand.
  const tiny = parseConfig({ architectures: ['GPT2LMHeadModel'], n_embd: 2, n_layer: 1, n_head: 1, n_positions: 3, n_inner: 3, vocab_size: 4 });
  const gpt2Tensors = (prefix: string): Map<string, HostTensor> => new Map([
    [`${prefix}wte.weight`, ramp([4, 2], 1000)],
    [`${prefix}wpe.weight`, ramp([3, 2], 2000)],
    [`${prefix}h.0.ln_1.weight`, ramp([2], 10)], [`${prefix}h.0.ln_1.bias`, ramp([2], 20)],
    // Conv1D [in = 2, out = 6]: element (i, o) = 6i + o.
    [`${prefix}h.0.attn.c_attn.weight`, ramp([2, 6])],
    [`${prefix}h.0.attn.c_attn.bias`, ramp([6], 100)],
    [`${prefix}h.0.attn.c_proj.weight`, ramp([2, 2], 200)], [`${prefix}h.0.attn.c_proj.bias`, ramp([2], 210)],
    [`${prefix}h.0.attn.bias`, ramp([1, 1, 3, 3])], [`${prefix}h.0.attn.masked_bias`, ramp([])],
    [`${prefix}h.0.ln_2.weight`, ramp([2], 30)], [`${prefix}h.0.ln_2.bias`, ramp([2], 40)],
    // Conv1D [in = 2, out = 3] and [in = 3, out = 2].
    [`${prefix}h.0.mlp.c_fc.weight`, ramp([2, 3], 300)], [`${prefix}h.0.mlp.c_fc.bias`, ramp([3], 310)],
    [`${prefix}h.0.mlp.c_proj.weight`, ramp([3, 2], 400)], [`${prefix}h.0.mlp.c_proj.bias`, ramp([2], 410)],
    [`${prefix}ln_f.weight`, ramp([2], 50)], [`${prefix}ln_f.bias`, ramp([2], 60)],
  ]);

  for (const prefix of ['transformer.', '']) {
    test(`Conv1D weights are transposed and c_attn is split into q, k, v (prefix "${prefix}")`, () => {
      const w = canonicalWeights(tiny, gpt2Tensors(prefix));
      const l = w.layers[0]!;
      // q = rows o = 0..1 of the transposed [6, 2] matrix: (o, i) = 6i + o.
      assert.deepEqual([...l.q.weight], [0, 6, 1, 7]);
      assert.deepEqual([...l.k.weight], [2, 8, 3, 9]);
      assert.deepEqual([...l.v.weight], [4, 10, 5, 11]);
      assert.deepEqual([[...l.q.bias!], [...l.k.bias!], [...l.v.bias!]], [[100, 101], [102, 103], [104, 105]]);
      assert.deepEqual([l.q.out, l.q.in, l.k.out, l.v.out], [2, 2, 2, 2]);
      assert.deepEqual([...l.o.weight], [200, 202, 201, 203]);
      // c_fc [2, 3] → up [3, 2]; c_proj [3, 2] → down [2, 3].
      assert.deepEqual([...l.up.weight], [300, 303, 301, 304, 302, 305]);
      assert.deepEqual([l.up.out, l.up.in], [3, 2]);
      assert.deepEqual([...l.down.weight], [400, 402, 404, 401, 403, 405]);
      assert.deepEqual([l.down.out, l.down.in], [2, 3]);
      assert.deepEqual([...l.down.bias!], [410, 411]);
      assert.equal(l.gate, undefined);
      assert.deepEqual([...l.attnNorm.bias!], [20, 21]);
      assert.deepEqual([...l.mlpNorm.weight], [30, 31]);
      assert.deepEqual([...w.finalNorm.bias!], [60, 61]);
      assert.deepEqual([...w.positions!], [2000, 2001, 2002, 2003, 2004, 2005]);
      assert.equal(w.lmHead, w.embed);
      assert.deepEqual(downProjectionNames(tiny, gpt2Tensors(prefix)), [`${prefix}h.0.mlp.c_proj.weight`]);
    });
  }

  test('a Conv1D weight stored in Linear layout is a shape mismatch', () => {
    const tensors = gpt2Tensors('transformer.');
    tensors.set('transformer.h.0.attn.c_attn.weight', ramp([6, 2]));
    expectError(() => canonicalWeights(tiny, tensors), 'shape-mismatch', /c_attn\.weight/, /\[6, 2\]/, /implies \[2, 6\]/);
    tensors.delete('transformer.h.0.attn.c_attn.weight');
    expectError(() => canonicalWeights(tiny, tensors), 'tensor-missing', /"transformer\.h\.0\.attn\.c_attn\.weight"/);
  });

  test('GPTBigCode multi-query: c_attn rows are [q (d); k (head dim); v (head dim)] in Linear layout', () => {
    const c = parseConfig({ architectures: ['GPTBigCodeForCausalLM'], n_embd: 4, n_layer: 1, n_head: 2, n_positions: 3, n_inner: 3, vocab_size: 4 });
    assert.equal(c.kvHeads, 1);
    const tensors = randomCheckpointTensors(c, 7);
    tensors.set('transformer.h.0.attn.c_attn.weight', ramp([8, 4]));
    tensors.set('transformer.h.0.attn.c_attn.bias', ramp([8], 100));
    tensors.set('transformer.h.0.mlp.c_fc.weight', ramp([3, 4], 300));
    const l = canonicalWeights(c, tensors).layers[0]!;
    assert.deepEqual([...l.q.weight], Array.from({ length: 16 }, (_, i) => i));
    assert.deepEqual([...l.k.weight], [16, 17, 18, 19, 20, 21, 22, 23]);
    assert.deepEqual([...l.v.weight], [24, 25, 26, 27, 28, 29, 30, 31]);
    assert.deepEqual([[...l.q.bias!], [...l.k.bias!], [...l.v.bias!]], [[100, 101, 102, 103], [104, 105], [106, 107]]);
    assert.deepEqual([l.k.out, l.k.in], [2, 4]);
    // nn.Linear layout: no transpose.
    assert.deepEqual([...l.up.weight], Array.from({ length: 12 }, (_, i) => 300 + i));
  });

  test('GPTBigCode without multi-query fuses q/k/v per head: rows [q_h; k_h; v_h] for each head', () => {
    const c = parseConfig({ architectures: ['GPTBigCodeForCausalLM'], n_embd: 4, n_layer: 1, n_head: 2, n_positions: 3, n_inner: 3, vocab_size: 4, multi_query: false });
    const tensors = randomCheckpointTensors(c, 8);
    // [12, 4]; row r holds 10r .. 10r + 3.
    tensors.set('transformer.h.0.attn.c_attn.weight', { shape: [12, 4], data: Float32Array.from({ length: 48 }, (_, i) => 10 * Math.floor(i / 4) + (i % 4)) });
    tensors.set('transformer.h.0.attn.c_attn.bias', ramp([12], 100));
    const l = canonicalWeights(c, tensors).layers[0]!;
    const rowsOf = (w: Float32Array): number[] => Array.from({ length: w.length / 4 }, (_, r) => w[4 * r]! / 10);
    assert.deepEqual(rowsOf(l.q.weight), [0, 1, 6, 7]);
    assert.deepEqual(rowsOf(l.k.weight), [2, 3, 8, 9]);
    assert.deepEqual(rowsOf(l.v.weight), [4, 5, 10, 11]);
    assert.deepEqual([...l.k.bias!], [102, 103, 108, 109]);
  });
});

describe('toCheckpointTensors is the inverse of canonicalWeights', () => {
  for (const [name, c] of Object.entries(configs)) {
    test(name, () => {
      const original = randomCheckpointTensors(c, 11);
      const w = canonicalWeights(c, original);
      const back = toCheckpointTensors(c, w);
      assert.deepEqual([...back.keys()].sort(), [...original.keys()].sort());
      for (const [n, t] of original) {
        assert.deepEqual(back.get(n)!.shape, t.shape, n);
        assert.deepEqual([...back.get(n)!.data], [...t.data], n);
      }
      assertSameWeights(canonicalWeights(c, back), w);
      assert.deepEqual(downProjectionNames(c).every((n) => back.has(n)), true);
    });
  }

  test('hand-known GPT-2 tensors survive canonical → checkpoint unchanged', () => {
    const tiny = parseConfig({ architectures: ['GPT2LMHeadModel'], n_embd: 2, n_layer: 1, n_head: 1, n_positions: 3, n_inner: 3, vocab_size: 4 });
    const tensors = randomCheckpointTensors(tiny, 1);
    tensors.set('transformer.h.0.attn.c_attn.weight', ramp([2, 6]));
    const back = toCheckpointTensors(tiny, canonicalWeights(tiny, tensors));
    assert.deepEqual([...back.get('transformer.h.0.attn.c_attn.weight')!.data], [...ramp([2, 6]).data]);
  });

  test('inconsistent canonical weights are refused', () => {
    const c = configs['llama']!;
    const w = canonicalWeights(c, randomCheckpointTensors(c, 2));
    w.layers[0]!.down = { ...w.layers[0]!.down, out: 12, in: 8 };
    expectError(() => toCheckpointTensors(c, w), 'shape-mismatch', /down_proj/);
  });
});

test('consume removes each taken tensor from the map and leaves the rest', () => {
  const c = configs['gpt2']!;
  const tensors = randomCheckpointTensors(c, 12);
  tensors.set('transformer.h.1.attn.bias', ramp([1, 1, 5, 5]));
  const copy = new Map(tensors);
  const w = canonicalWeights(c, tensors, { consume: true });
  assert.deepEqual([...tensors.keys()], ['transformer.h.1.attn.bias']);
  assertSameWeights(w, canonicalWeights(c, copy));
  assert.equal(copy.size, 1 + randomCheckpointTensors(c, 12).size, 'without consume the map is untouched');
});

test('downProjectionNames lists every layer in order', () => {
  assert.deepEqual(downProjectionNames(configs['llama']!), ['model.layers.0.mlp.down_proj.weight', 'model.layers.1.mlp.down_proj.weight']);
  assert.deepEqual(downProjectionNames(configs['gpt2']!), ['transformer.h.0.mlp.c_proj.weight', 'transformer.h.1.mlp.c_proj.weight']);
});
