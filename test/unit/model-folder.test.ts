// Tests for src/model/index.ts and fingerprint.ts: loading whole synthetic model folders of
// each family (single file, sharded, BF16), the fingerprint's stability and what it is
// sensitive to, and that every kind of broken folder yields a typed ModelError.
import assert from 'node:assert/strict';
import { closeSync, cpSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  fingerprint, loadModelFolder, parseConfig, readSafetensorsHeader, writeSafetensors, type HostTensor,
} from '../../src/model/index';
import { byteLevelTokenizerJson, randomCheckpointTensors, writeModelFolder, type ModelFolderSpec } from '../../src/model/synthetic';
import { expectError } from '../helpers/expect-model-error';

const tmp = mkdtempSync(join(tmpdir(), 'model-folder-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
let counter = 0;
const fresh = (name = 'm'): string => join(tmp, `${name}${counter++}`);


const tokenizer = byteLevelTokenizerJson([['d', 'e'], ['de', 'f']], ['<|endoftext|>']);
const VOCAB = 256 + 2 + 1 + 5; // five padding rows, as real checkpoints often have

const qwenJson = {
  architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2,
  num_attention_heads: 4, num_key_value_heads: 2, vocab_size: VOCAB, rope_theta: 1e6, rms_norm_eps: 1e-6,
  tie_word_embeddings: true, max_position_embeddings: 64, eos_token_id: 258, use_sliding_window: false,
};
const gpt2Json = {
  architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', n_embd: 16, n_layer: 2, n_head: 2, n_positions: 32,
  n_inner: null, vocab_size: VOCAB, activation_function: 'gelu_new', layer_norm_epsilon: 1e-5,
};

function makeFolder(configJson: Record<string, unknown>, extra: Partial<ModelFolderSpec> = {}): { dir: string; tensors: Map<string, HostTensor> } {
  const dir = fresh();
  const tensors = extra.tensors ?? randomCheckpointTensors(parseConfig(configJson), 5);
  writeModelFolder(dir, { config: configJson, tensors, tokenizer, tokenizerConfig: { eos_token: '<|endoftext|>' }, ...extra });
  return { dir, tensors };
}

/** Overwrites one byte of tensor `name` in a safetensors file, in place. */
function flipByte(file: string, name: string, index = 0): void {
  const h = readSafetensorsHeader(file);
  const at = h.dataOffset + h.tensors.get(name)!.begin + index;
  const fd = openSync(file, 'r+');
  const b = Buffer.alloc(1);
  readSync(fd, b, 0, 1, at);
  b[0] = b[0]! ^ 0x01;
  writeSync(fd, b, 0, 1, at);
  closeSync(fd);
}

describe('loadModelFolder', () => {
  test('Qwen2-style folder: config, canonical weights, tokenizer, dtype, params, fingerprint', () => {
    const { dir, tensors } = makeFolder(qwenJson);
    const m = loadModelFolder(dir);
    assert.equal(m.dir, dir);
    assert.equal(m.name, dir.split('/').pop());
    assert.equal(m.config.architecture, 'Qwen2ForCausalLM');
    assert.equal(m.dtype, 'F32');
    assert.equal(m.weights.layers.length, 2);
    assert.equal(m.weights.lmHead, m.weights.embed);
    assert.deepEqual([...m.weights.layers[1]!.down.weight], [...tensors.get('model.layers.1.mlp.down_proj.weight')!.data]);
    // Parameters counted independently from the shapes: embedding once (tied), per layer
    // 2 norms + q,k,v (with bias) + o + gate, up, down; final norm.
    const d = 16, m_ = 24, kv = 8;
    const perLayer = 2 * d + (d * d + d) + 2 * (kv * d + kv) + d * d + 3 * d * m_;
    assert.equal(m.params, VOCAB * d + 2 * perLayer + d);
    assert.equal(m.tokenizer.eosId, 258);
    assert.deepEqual(m.tokenizer.encode('def'), [257]);
    assert.match(m.fingerprint, /^[0-9a-f]{64}$/);
    assert.equal(m.fingerprint, fingerprint(dir, m.config));
  });

  test('GPT-2 folder in BF16, sharded into three files, with the attention-mask buffers present', () => {
    const c = parseConfig(gpt2Json);
    const tensors = randomCheckpointTensors(c, 9);
    tensors.set('transformer.h.0.attn.bias', { shape: [1, 1, 32, 32], data: new Float32Array(1024).fill(1) });
    const { dir } = makeFolder(gpt2Json, { tensors, dtype: 'BF16', shards: 3 });
    const m = loadModelFolder(dir);
    assert.equal(m.dtype, 'BF16');
    assert.equal(m.config.family, 'gpt2');
    assert.ok(m.weights.positions);
    const src = tensors.get('transformer.h.1.mlp.c_proj.weight')!.data; // Conv1D [m=64, d=16]
    const down = m.weights.layers[1]!.down; // [16, 64]
    for (const [r, c_] of [[0, 0], [3, 17], [15, 63]] as const) {
      const want = src[c_ * 16 + r]!;
      assert.ok(Math.abs(down.weight[r * 64 + c_]! - want) <= Math.abs(want) / 128, `down[${r},${c_}]`);
    }
    const d = 16, m_ = 64;
    const perLayer = 4 * d + 4 * (d * d + d) + (d * m_ + m_) + (m_ * d + d);
    assert.equal(m.params, VOCAB * d + 32 * d + 2 * perLayer + 2 * d);
  });

  test('an unsupported dtype in the folder names the tensor and the supported dtypes', () => {
    const { dir } = makeFolder(qwenJson);
    const header = { 'model.extra.q': { dtype: 'I8', shape: [4], data_offsets: [0, 4] } };
    const json = Buffer.from(JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    unlinkSync(join(dir, 'model.safetensors'));
    writeSafetensors(join(dir, 'a.safetensors'), randomCheckpointTensors(parseConfig(qwenJson), 5));
    writeFileSync(join(dir, 'b.safetensors'), Buffer.concat([len, json, Buffer.alloc(4)]));
    expectError(() => loadModelFolder(dir), 'unsupported-dtype', /"model\.extra\.q" has dtype I8/, /F32, F16, BF16/);
  });

  test('broken folders: each problem is a typed ModelError, never a crash', () => {
    expectError(() => loadModelFolder(join(tmp, 'does-not-exist')), 'config-missing', /does not exist/);

    const noConfig = makeFolder(qwenJson).dir;
    unlinkSync(join(noConfig, 'config.json'));
    expectError(() => loadModelFolder(noConfig), 'config-missing', /config\.json/);

    const badConfig = makeFolder(qwenJson).dir;
    writeFileSync(join(badConfig, 'config.json'), '{"architectures": ["Qwen2ForCausalLM"');
    expectError(() => loadModelFolder(badConfig), 'config-invalid', /not valid JSON/);

    const otherArch = makeFolder(qwenJson).dir;
    writeFileSync(join(otherArch, 'config.json'), JSON.stringify({ ...qwenJson, architectures: ['Gemma2ForCausalLM'] }));
    expectError(() => loadModelFolder(otherArch), 'unsupported-architecture', /Gemma2ForCausalLM/, /Qwen2ForCausalLM/);

    const noTokenizer = makeFolder(qwenJson).dir;
    unlinkSync(join(noTokenizer, 'tokenizer.json'));
    expectError(() => loadModelFolder(noTokenizer), 'tokenizer-missing', /tokenizer\.json/);

    const smallVocab = makeFolder(qwenJson).dir;
    writeFileSync(join(smallVocab, 'config.json'), JSON.stringify({ ...qwenJson, vocab_size: 200 }));
    expectError(() => loadModelFolder(smallVocab), 'tokenizer-invalid', /259 tokens/, /200/);

    const wrongShape = makeFolder(qwenJson).dir;
    writeFileSync(join(wrongShape, 'config.json'), JSON.stringify({ ...qwenJson, intermediate_size: 32 }));
    expectError(() => loadModelFolder(wrongShape), 'shape-mismatch', /gate_proj\.weight/, /\[24, 16\]/, /\[32, 16\]/);

    const moreLayers = makeFolder(qwenJson).dir;
    writeFileSync(join(moreLayers, 'config.json'), JSON.stringify({ ...qwenJson, num_hidden_layers: 3 }));
    expectError(() => loadModelFolder(moreLayers), 'tensor-missing', /model\.layers\.2\./);

    // A hostile layer count fails on the first missing layer without planning every layer
    // (the fuzz's num_hidden_layers 1e9 used to allocate a plan per layer and never answer).
    const hugeLayers = makeFolder(qwenJson).dir;
    writeFileSync(join(hugeLayers, 'config.json'), JSON.stringify({ ...qwenJson, num_hidden_layers: 1e9 }));
    expectError(() => loadModelFolder(hugeLayers), 'tensor-missing', /model\.layers\.2\./, /layers 1000000000/);

    const noWeights = makeFolder(qwenJson).dir;
    unlinkSync(join(noWeights, 'model.safetensors'));
    expectError(() => loadModelFolder(noWeights), 'weights-missing', /safetensors/);

    const truncated = makeFolder(qwenJson).dir;
    const bytes = readFileSync(join(truncated, 'model.safetensors'));
    writeFileSync(join(truncated, 'model.safetensors'), bytes.subarray(0, bytes.length - 100));
    expectError(() => loadModelFolder(truncated), 'safetensors-invalid', /truncated/);

    const garbage = makeFolder(qwenJson).dir;
    writeFileSync(join(garbage, 'model.safetensors'), Buffer.from('this is not a safetensors file at all'));
    expectError(() => loadModelFolder(garbage), 'safetensors-invalid', /runs past the end/);

    const tensors = randomCheckpointTensors(parseConfig(qwenJson), 5);
    tensors.delete('model.norm.weight');
    const missing = makeFolder(qwenJson, { tensors }).dir;
    expectError(() => loadModelFolder(missing), 'tensor-missing', /"model\.norm\.weight"/);
  });
});

describe('fingerprint', () => {
  test('stable across loads and copies; sensitive to config, down projections and other weight bytes', () => {
    const { dir } = makeFolder(qwenJson);
    const c = parseConfig(qwenJson);
    const fp = fingerprint(dir, c);
    assert.equal(fingerprint(dir, c), fp);
    const copy = fresh('copy');
    cpSync(dir, copy, { recursive: true });
    assert.equal(fingerprint(copy, c), fp, 'the folder\'s location is not part of the fingerprint');

    const file = join(copy, 'model.safetensors');
    flipByte(file, 'model.embed_tokens.weight', 5);
    assert.notEqual(fingerprint(copy, c), fp, 'the embeddings are hashed (whole, being small)');
    flipByte(file, 'model.embed_tokens.weight', 5);
    flipByte(file, 'model.layers.0.mlp.up_proj.weight', 2);
    assert.notEqual(fingerprint(copy, c), fp, 'up_proj is hashed');
    flipByte(file, 'model.layers.0.mlp.up_proj.weight', 2);
    assert.equal(fingerprint(copy, c), fp);

    flipByte(file, 'model.layers.1.mlp.down_proj.weight', 123);
    const changed = fingerprint(copy, c);
    assert.notEqual(changed, fp);
    flipByte(file, 'model.layers.1.mlp.down_proj.weight', 123);
    assert.equal(fingerprint(copy, c), fp, 'restoring the byte restores the fingerprint');

    writeFileSync(join(copy, 'config.json'), JSON.stringify({ ...qwenJson, rope_theta: 1e4 }));
    assert.notEqual(fingerprint(copy, c), fp);
  });

  test('covers every shard\'s header and finds GPT-2 down projections with or without the "transformer." prefix', () => {
    const c = parseConfig(gpt2Json);
    const tensors = randomCheckpointTensors(c, 2);
    const { dir } = makeFolder(gpt2Json, { tensors, shards: 2 });
    const fp = fingerprint(dir, c);
    const bare = new Map([...tensors].map(([n, t]) => [n.replace(/^transformer\./, ''), t]));
    const { dir: bareDir } = makeFolder(gpt2Json, { tensors: bare, shards: 2 });
    const fpBare = fingerprint(bareDir, c);
    assert.match(fpBare, /^[0-9a-f]{64}$/);
    assert.notEqual(fpBare, fp, 'tensor names are part of the headers');
    assert.equal(loadModelFolder(bareDir).fingerprint, fpBare);
    // Renaming a shard's tensor changes that shard's header and so the fingerprint.
    const renamed = new Map(tensors);
    renamed.set('transformer.h.0.ln_1.weight2', renamed.get('transformer.h.0.ln_1.weight')!);
    const { dir: renamedDir } = makeFolder(gpt2Json, { tensors: renamed, shards: 2 });
    assert.notEqual(fingerprint(renamedDir, c), fp);
  });

  test('a hostile layer count in config.json is a tensor-missing error before a name per layer is made', () => {
    const c = parseConfig({ ...qwenJson, num_hidden_layers: 1e9 });
    const dir = fresh();
    mkdirSync(dir);
    writeFileSync(join(dir, 'config.json'), JSON.stringify(qwenJson));
    writeSafetensors(join(dir, 'model.safetensors'), randomCheckpointTensors(parseConfig(qwenJson), 5));
    expectError(() => fingerprint(dir, c), 'tensor-missing', /model\.layers\.2\./, /layers 1000000000/);
  });

  test('a missing down projection is a tensor-missing error', () => {
    const c = parseConfig(qwenJson);
    const tensors = randomCheckpointTensors(c, 5);
    tensors.delete('model.layers.1.mlp.down_proj.weight');
    const dir = fresh();
    mkdirSync(dir);
    writeFileSync(join(dir, 'config.json'), JSON.stringify(qwenJson));
    writeSafetensors(join(dir, 'model.safetensors'), tensors);
    expectError(() => fingerprint(dir, c), 'tensor-missing', /model\.layers\.1\.mlp\.down_proj\.weight/);
  });
});
