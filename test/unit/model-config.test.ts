// Tests for src/model/config.ts: parsing real-looking configs of all five architectures,
// transformers' defaults, and a typed, actionable error for each kind of bad config.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { SUPPORTED_ARCHITECTURES, loadConfig, parseConfig } from '../../src/model/index';
import { expectError } from '../helpers/expect-model-error';

const tmp = mkdtempSync(join(tmpdir(), 'model-config-'));
after(() => rmSync(tmp, { recursive: true, force: true }));


// Qwen2.5-Coder-0.5B's config.json.
const qwen25 = {
  architectures: ['Qwen2ForCausalLM'], attention_dropout: 0.0, bos_token_id: 151643, eos_token_id: 151643,
  hidden_act: 'silu', hidden_size: 896, initializer_range: 0.02, intermediate_size: 4864,
  max_position_embeddings: 32768, max_window_layers: 24, model_type: 'qwen2', num_attention_heads: 14,
  num_hidden_layers: 24, num_key_value_heads: 2, rms_norm_eps: 1e-6, rope_scaling: null, rope_theta: 1000000.0,
  sliding_window: 32768, tie_word_embeddings: true, torch_dtype: 'bfloat16', use_cache: true,
  use_sliding_window: false, vocab_size: 151936,
};

const tinyLlama = {
  architectures: ['LlamaForCausalLM'], bos_token_id: 1, eos_token_id: 2, hidden_act: 'silu', hidden_size: 2048,
  initializer_range: 0.02, intermediate_size: 5632, max_position_embeddings: 2048, model_type: 'llama',
  num_attention_heads: 32, num_hidden_layers: 22, num_key_value_heads: 4, rms_norm_eps: 1e-5, rope_scaling: null,
  rope_theta: 10000.0, tie_word_embeddings: false, torch_dtype: 'bfloat16', vocab_size: 32000,
};

const mistral = {
  architectures: ['MistralForCausalLM'], bos_token_id: 1, eos_token_id: 2, hidden_act: 'silu', hidden_size: 4096,
  intermediate_size: 14336, max_position_embeddings: 32768, model_type: 'mistral', num_attention_heads: 32,
  num_hidden_layers: 32, num_key_value_heads: 8, rms_norm_eps: 1e-5, rope_theta: 10000.0, sliding_window: 4096,
  tie_word_embeddings: false, vocab_size: 32000,
};

const gpt2 = {
  activation_function: 'gelu_new', architectures: ['GPT2LMHeadModel'], attn_pdrop: 0.1, bos_token_id: 50256,
  embd_pdrop: 0.1, eos_token_id: 50256, initializer_range: 0.02, layer_norm_epsilon: 1e-5, model_type: 'gpt2',
  n_ctx: 1024, n_embd: 768, n_head: 12, n_inner: null, n_layer: 12, n_positions: 1024, vocab_size: 50257,
};

const bigcode = {
  activation_function: 'gelu_pytorch_tanh', architectures: ['GPTBigCodeForCausalLM'], bos_token_id: 0, eos_token_id: 0,
  layer_norm_epsilon: 1e-5, model_type: 'gpt_bigcode', multi_query: true, n_embd: 768, n_head: 12, n_inner: 3072,
  n_layer: 20, n_positions: 8192, vocab_size: 49152,
};

describe('parseConfig: supported architectures', () => {
  test('lists the five supported architectures', () => {
    assert.deepEqual([...SUPPORTED_ARCHITECTURES].sort(), ['GPT2LMHeadModel', 'GPTBigCodeForCausalLM', 'LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM']);
  });

  test('Qwen2.5-Coder-0.5B', () => {
    const c = parseConfig(qwen25);
    assert.deepEqual({ ...c, raw: undefined }, {
      architecture: 'Qwen2ForCausalLM', family: 'llama', layers: 24, hidden: 896, intermediate: 4864, heads: 14,
      kvHeads: 2, headDim: 64, vocab: 151936, maxPositions: 32768, ropeTheta: 1e6, normEps: 1e-6,
      tiedEmbeddings: true, qkvBias: true, oBias: false, mlpBias: false, activation: 'silu',
      slidingWindow: null, bosTokenId: 151643, eosTokenId: 151643, raw: undefined,
    });
    assert.equal(c.raw['torch_dtype'], 'bfloat16');
    assert.ok(Object.isFrozen(c.raw));
  });

  test('Qwen2 defaults: untied, rope_theta 10000, 32768 positions; sliding windows refused', () => {
    const c = parseConfig({ architectures: ['Qwen2ForCausalLM'], hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 50 });
    assert.equal(c.tiedEmbeddings, false);
    assert.equal(c.ropeTheta, 10000);
    assert.equal(c.maxPositions, 32768);
    assert.equal(c.qkvBias, true);
    assert.equal(c.oBias, false);
    expectError(() => parseConfig({ ...qwen25, use_sliding_window: true }), 'config-invalid', /use_sliding_window/);
  });

  test('TinyLlama (grouped-query attention)', () => {
    const c = parseConfig(tinyLlama);
    assert.equal(c.family, 'llama');
    assert.equal(c.kvHeads, 4);
    assert.equal(c.headDim, 64);
    assert.equal(c.normEps, 1e-5);
    assert.equal(c.tiedEmbeddings, false);
    assert.equal(c.qkvBias, false);
    assert.equal(c.bosTokenId, 1);
    assert.equal(c.eosTokenId, 2);
  });

  test('Llama defaults: kv heads = heads, head_dim = hidden/heads, theta 10000, eps 1e-6, 2048 positions, untied, no biases', () => {
    const c = parseConfig({ architectures: ['LlamaForCausalLM'], hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4, vocab_size: 100 });
    assert.equal(c.kvHeads, 4);
    assert.equal(c.headDim, 16);
    assert.equal(c.ropeTheta, 10000);
    assert.equal(c.normEps, 1e-6);
    assert.equal(c.maxPositions, 2048);
    assert.equal(c.tiedEmbeddings, false);
    assert.deepEqual([c.qkvBias, c.oBias, c.mlpBias], [false, false, false]);
    assert.equal(c.slidingWindow, null);
    assert.equal(c.bosTokenId, null);
    assert.equal(c.eosTokenId, null);
  });

  test('Llama switches: attention_bias, mlp_bias, explicit head_dim, tied, default rope_scaling, EOS list', () => {
    const c = parseConfig({
      architectures: ['LlamaForCausalLM'], hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2,
      num_attention_heads: 4, num_key_value_heads: 2, head_dim: 32, vocab_size: 100, attention_bias: true,
      mlp_bias: true, tie_word_embeddings: true, rope_scaling: { rope_type: 'default' }, eos_token_id: [7, 9],
    });
    assert.equal(c.headDim, 32);
    assert.deepEqual([c.qkvBias, c.oBias, c.mlpBias, c.tiedEmbeddings], [true, true, true, true]);
    assert.equal(c.eosTokenId, 7);
  });

  test('Mistral: sliding window as given, null, or the 4096 default', () => {
    const c = parseConfig(mistral);
    assert.equal(c.architecture, 'MistralForCausalLM');
    assert.equal(c.family, 'llama');
    assert.equal(c.slidingWindow, 4096);
    assert.equal(c.kvHeads, 8);
    assert.equal(c.headDim, 128);
    assert.equal(parseConfig({ ...mistral, sliding_window: null }).slidingWindow, null);
    const { sliding_window: _omit, ...noWindow } = mistral;
    assert.equal(parseConfig(noWindow).slidingWindow, 4096);
    assert.equal(parseConfig({ ...mistral, sliding_window: 1024 }).slidingWindow, 1024);
  });

  test('GPT-2: n_inner null → 4·n_embd, gelu_new → gelu_tanh, tied, biases everywhere', () => {
    const c = parseConfig(gpt2);
    assert.deepEqual({ ...c, raw: undefined }, {
      architecture: 'GPT2LMHeadModel', family: 'gpt2', layers: 12, hidden: 768, intermediate: 3072, heads: 12,
      kvHeads: 12, headDim: 64, vocab: 50257, maxPositions: 1024, ropeTheta: 0, normEps: 1e-5,
      tiedEmbeddings: true, qkvBias: true, oBias: true, mlpBias: true, activation: 'gelu_tanh',
      slidingWindow: null, bosTokenId: 50256, eosTokenId: 50256, raw: undefined,
    });
  });

  test('GPT-2 activations and defaults', () => {
    assert.equal(parseConfig({ ...gpt2, activation_function: 'gelu' }).activation, 'gelu');
    assert.equal(parseConfig({ ...gpt2, activation_function: 'gelu_pytorch_tanh' }).activation, 'gelu_tanh');
    const { activation_function: _a, layer_norm_epsilon: _e, bos_token_id: _b, eos_token_id: _s, n_positions: _p, ...bare } = gpt2;
    const c = parseConfig({ ...bare, vocab_size: 100 });
    assert.equal(c.activation, 'gelu_tanh');
    assert.equal(c.normEps, 1e-5);
    assert.equal(c.maxPositions, 1024); // from n_ctx
    // transformers' default id 50256 cannot exist in a 100-token vocabulary.
    assert.equal(c.eosTokenId, null);
    assert.equal(parseConfig({ ...gpt2, n_inner: 1000 }).intermediate, 1000);
  });

  test('GPTBigCode: multi_query (default true) → one key/value head', () => {
    const c = parseConfig(bigcode);
    assert.equal(c.family, 'gpt2');
    assert.equal(c.kvHeads, 1);
    assert.equal(c.intermediate, 3072);
    assert.equal(c.activation, 'gelu_tanh');
    assert.equal(c.tiedEmbeddings, true);
    assert.equal(c.eosTokenId, 0);
    const { multi_query: _m, activation_function: _a, ...bare } = bigcode;
    assert.equal(parseConfig(bare).kvHeads, 1);
    assert.equal(parseConfig(bare).activation, 'gelu_tanh');
    assert.equal(parseConfig({ ...bigcode, multi_query: false }).kvHeads, 12);
  });

  test('architecture from model_type when "architectures" is absent', () => {
    const { architectures: _a, ...noArch } = bigcode;
    assert.equal(parseConfig(noArch).architecture, 'GPTBigCodeForCausalLM');
    const { architectures: _b, ...noArchQwen } = qwen25;
    assert.equal(parseConfig(noArchQwen).architecture, 'Qwen2ForCausalLM');
  });
});

describe('parseConfig: bad configs', () => {
  test('not an object', () => {
    expectError(() => parseConfig([1, 2]), 'config-invalid', /expected a JSON object/);
    expectError(() => parseConfig(null), 'config-invalid');
    expectError(() => parseConfig('x'), 'config-invalid');
  });

  test('unsupported architecture names it and lists the supported ones', () => {
    const e = expectError(() => parseConfig({ architectures: ['PhiForCausalLM'], hidden_size: 8 }, '/m/config.json'),
      'unsupported-architecture', /PhiForCausalLM/, /LlamaForCausalLM/, /Qwen2ForCausalLM/, /MistralForCausalLM/, /GPT2LMHeadModel/, /GPTBigCodeForCausalLM/);
    assert.equal(e.path, '/m/config.json');
    expectError(() => parseConfig({ model_type: 'phi' }), 'unsupported-architecture', /"phi"/, /Supported architectures/);
  });

  test('no architecture at all', () => {
    expectError(() => parseConfig({ hidden_size: 8 }), 'config-invalid', /architectures/);
    expectError(() => parseConfig({ architectures: [] }), 'config-invalid', /architectures/);
  });

  test('missing and malformed fields name the field', () => {
    const { hidden_size: _h, ...noHidden } = tinyLlama;
    expectError(() => parseConfig(noHidden), 'config-invalid', /"hidden_size"/, /missing/);
    expectError(() => parseConfig({ ...tinyLlama, num_hidden_layers: 2.5 }), 'config-invalid', /"num_hidden_layers" must be a positive integer/);
    expectError(() => parseConfig({ ...tinyLlama, vocab_size: '32000' }), 'config-invalid', /"vocab_size"/);
    expectError(() => parseConfig({ ...tinyLlama, intermediate_size: 0 }), 'config-invalid', /"intermediate_size"/);
    expectError(() => parseConfig({ ...tinyLlama, rms_norm_eps: -1 }), 'config-invalid', /"rms_norm_eps"/);
    expectError(() => parseConfig({ ...tinyLlama, tie_word_embeddings: 'yes' }), 'config-invalid', /"tie_word_embeddings"/);
    expectError(() => parseConfig({ ...tinyLlama, eos_token_id: 'two' }), 'config-invalid', /"eos_token_id"/);
    const { n_embd: _n, ...noEmbd } = gpt2;
    expectError(() => parseConfig(noEmbd), 'config-invalid', /"n_embd"/);
  });

  test('head counts that do not divide', () => {
    expectError(() => parseConfig({ ...tinyLlama, hidden_size: 2050 }), 'config-invalid', /2050 is not divisible by .* 32/);
    expectError(() => parseConfig({ ...tinyLlama, num_key_value_heads: 5 }), 'config-invalid', /32 is not divisible by .* 5/);
    expectError(() => parseConfig({ ...gpt2, n_head: 7 }), 'config-invalid', /not divisible/);
    expectError(() => parseConfig({ ...tinyLlama, head_dim: 63 }), 'config-invalid', /even/);
  });

  test('RoPE scaling, activations and attention variants we do not implement', () => {
    expectError(() => parseConfig({ ...tinyLlama, rope_scaling: { rope_type: 'llama3', factor: 8 } }), 'config-invalid', /rope_scaling/, /not supported/);
    expectError(() => parseConfig({ ...tinyLlama, rope_scaling: { type: 'linear', factor: 2 } }), 'config-invalid', /rope_scaling/);
    expectError(() => parseConfig({ ...tinyLlama, hidden_act: 'gelu' }), 'config-invalid', /hidden_act "gelu"/, /silu/);
    expectError(() => parseConfig({ ...gpt2, activation_function: 'relu' }), 'config-invalid', /"relu"/, /gelu_new/);
    expectError(() => parseConfig({ ...gpt2, scale_attn_by_inverse_layer_idx: true }), 'config-invalid', /scale_attn_by_inverse_layer_idx/);
  });
});

describe('loadConfig', () => {
  test('reads config.json from a folder', () => {
    const dir = join(tmp, 'ok');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir);
    writeFileSync(join(dir, 'config.json'), JSON.stringify(qwen25));
    assert.equal(loadConfig(dir).hidden, 896);
  });

  test('missing folder, missing file, corrupt JSON, a file instead of a folder', () => {
    expectError(() => loadConfig(join(tmp, 'nope')), 'config-missing', /does not exist/);
    const empty = mkdtempSync(join(tmp, 'empty-'));
    const e = expectError(() => loadConfig(empty), 'config-missing', /config\.json/);
    assert.equal(e.path, join(empty, 'config.json'));
    const bad = mkdtempSync(join(tmp, 'bad-'));
    writeFileSync(join(bad, 'config.json'), '{"architectures": ["LlamaForCausalLM"], "hidden_size": 64,');
    expectError(() => loadConfig(bad), 'config-invalid', /not valid JSON/);
    writeFileSync(join(bad, 'config.json'), '');
    expectError(() => loadConfig(bad), 'config-invalid', /not valid JSON/);
    expectError(() => loadConfig(join(bad, 'config.json')), 'config-missing', /not a folder/);
  });
});
