// Tests of the benchmark's GGUF writer (bench/lib/gguf.ts, bench/lib/gguf-model.ts): files are
// read back with a parser written here from the GGUF v3 spec (header, typed key/values, tensor
// infos, aligned data) and an independent dequantiser of ggml's Q8_0/Q4_0 blocks; the model
// mapping's names, shapes and q/k permutation; and, where node-llama-cpp is installed, that
// llama.cpp decodes the embedded model's F32 GGUF to the same greedy tokens as this runtime.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fp16Bits, ggufBytes, writeGguf, type GgmlTypeName, type GgufKv, type GgufTensor } from '../../bench/lib/gguf';
import { ggufModel, ggufUnsupported, ggufVocab, permuteForLlamaRope, TOKEN_TYPE } from '../../bench/lib/gguf-model';
import { probeLlamaCpp } from '../../bench/lib/llama-cpp';
import { llamaContextSize, parseCompareArgs } from '../../bench/lib/llama-compare';
import { loadConfig, parseConfig } from '../../src/model/config';
import { readWeightFolder } from '../../src/model/safetensors';
import { canonicalWeights, isIgnoredTensor } from '../../src/model/weights';
import { argmax } from '../../src/model/finite';
import { ModelRuntime } from '../../src/runtime/runtime';
import { randomCanonicalWeights } from '../../src/model/synthetic';
import { uniformFiller } from '../../src/util/random';

// ---- an independent reader ------------------------------------------------------------------

type Value = number | bigint | boolean | string | Value[];

interface Parsed {
  version: number;
  kv: Map<string, { type: number; value: Value }>;
  tensors: { name: string; dims: number[]; type: number; offset: number }[];
  dataStart: number;
  bytes: Uint8Array;
}

function half(h: number): number {
  const s = h >> 15 ? -1 : 1;
  const e = (h >> 10) & 31;
  const m = h & 1023;
  if (e === 0) return (s * m) / 2 ** 24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + m / 1024);
}

function parse(bytes: Uint8Array): Parsed {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let p = 0;
  const u32 = () => ((p += 4), v.getUint32(p - 4, true));
  const u64 = () => ((p += 8), Number(v.getBigUint64(p - 8, true)));
  const str = () => {
    const n = u64();
    p += n;
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(p - n, p));
  };
  const value = (t: number): Value => {
    switch (t) {
      case 0: return ((p += 1), v.getUint8(p - 1));
      case 1: return ((p += 1), v.getInt8(p - 1));
      case 2: return ((p += 2), v.getUint16(p - 2, true));
      case 3: return ((p += 2), v.getInt16(p - 2, true));
      case 4: return u32();
      case 5: return ((p += 4), v.getInt32(p - 4, true));
      case 6: return ((p += 4), v.getFloat32(p - 4, true));
      case 7: {
        const b = v.getUint8(p++);
        assert.ok(b === 0 || b === 1, `bool byte ${b}`);
        return b === 1;
      }
      case 8: return str();
      case 9: {
        const it = u32();
        const n = u64();
        return Array.from({ length: n }, () => value(it));
      }
      case 10: return ((p += 8), v.getBigUint64(p - 8, true));
      case 11: return ((p += 8), v.getBigInt64(p - 8, true));
      case 12: return ((p += 8), v.getFloat64(p - 8, true));
      default: throw new Error(`unknown gguf type ${t} at ${p}`);
    }
  };
  assert.equal(new TextDecoder().decode(bytes.subarray(0, 4)), 'GGUF');
  p = 4;
  const version = u32();
  const nTensors = u64();
  const nKv = u64();
  const kv = new Map<string, { type: number; value: Value }>();
  for (let i = 0; i < nKv; i++) {
    const key = str();
    const type = u32();
    kv.set(key, { type, value: value(type) });
  }
  const tensors: Parsed['tensors'] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = str();
    const nd = u32();
    const dims = Array.from({ length: nd }, u64);
    tensors.push({ name, dims, type: u32(), offset: u64() });
  }
  const alignment = kv.has('general.alignment') ? Number(kv.get('general.alignment')!.value) : 32;
  const dataStart = Math.ceil(p / alignment) * alignment;
  return { version, kv, tensors, dataStart, bytes };
}

/** Size in bytes and dequantiser of each ggml type, from ggml-common.h's block layouts. */
const TYPES: Record<number, { name: string; bytes: (n: number) => number; read: (b: Uint8Array, n: number) => Float64Array }> = {
  0: { name: 'F32', bytes: (n) => 4 * n, read: (b, n) => Float64Array.from(new Float32Array(b.slice(0, 4 * n).buffer)) },
  1: {
    name: 'F16',
    bytes: (n) => 2 * n,
    read: (b, n) => Float64Array.from({ length: n }, (_, i) => half(b[2 * i] | (b[2 * i + 1] << 8))),
  },
  8: {
    name: 'Q8_0',
    bytes: (n) => (n / 32) * 34,
    read: (b, n) => {
      const out = new Float64Array(n);
      for (let k = 0; k < n / 32; k++) {
        const o = 34 * k;
        const d = half(b[o] | (b[o + 1] << 8));
        for (let j = 0; j < 32; j++) out[32 * k + j] = ((b[o + 2 + j] << 24) >> 24) * d;
      }
      return out;
    },
  },
  2: {
    name: 'Q4_0',
    bytes: (n) => (n / 32) * 18,
    read: (b, n) => {
      const out = new Float64Array(n);
      for (let k = 0; k < n / 32; k++) {
        const o = 18 * k;
        const d = half(b[o] | (b[o + 1] << 8));
        for (let j = 0; j < 16; j++) {
          out[32 * k + j] = ((b[o + 2 + j] & 15) - 8) * d;
          out[32 * k + 16 + j] = ((b[o + 2 + j] >> 4) - 8) * d;
        }
      }
      return out;
    },
  },
};

function tensorData(f: Parsed, name: string): { type: string; values: Float64Array } {
  const t = f.tensors.find((x) => x.name === name);
  assert.ok(t, `tensor ${name} is in the file`);
  const n = t.dims.reduce((a, b) => a * b, 1);
  const ty = TYPES[t.type];
  const start = f.dataStart + t.offset;
  return { type: ty.name, values: ty.read(f.bytes.subarray(start, start + ty.bytes(n)), n) };
}

// ---- tests ----------------------------------------------------------------------------------

test('fp16Bits rounds to the nearest binary16, ties to even, with subnormals, overflow and signs', () => {
  const cases: [number, number][] = [
    [0, 0x0000], [-0, 0x8000], [1, 0x3c00], [-2, 0xc000], [0.1, 0x2e66], [65504, 0x7bff], [65520, 0x7c00], [1e6, 0x7c00],
    [2 ** -24, 0x0001], [2 ** -25, 0x0000], [3 * 2 ** -25, 0x0002], [2 ** -14, 0x0400], [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02],
    [Infinity, 0x7c00], [-Infinity, 0xfc00],
  ];
  for (const [x, h] of cases) assert.equal(fp16Bits(x), h, `fp16(${x})`);
  assert.equal(fp16Bits(NaN) & 0x7c00, 0x7c00);
  assert.notEqual(fp16Bits(NaN) & 0x3ff, 0);
  const fill = uniformFiller(5);
  for (const x of fill(2000, 0, 100)) {
    const back = half(fp16Bits(x));
    assert.ok(Math.abs(back - x) <= Math.abs(x) * 2 ** -11 + 2 ** -25, `${x} → ${back}`);
  }
});

test('a GGUF file reads back: header, every key type, aligned tensor offsets, F32/F16 data, Q8_0/Q4_0 within the format error', () => {
  const fill = uniformFiller(9);
  const a = fill(64 * 3, 0, 1); // [3, 64]
  const b = fill(96 * 2, 0.3, 2); // [2, 96], off-centre so the largest-magnitude value is mostly positive
  b[5] = -9; // one block whose extreme value is negative
  const c = fill(7, 0, 1);
  const kvs: GgufKv[] = [
    { key: 'general.architecture', type: 'string', value: 'qwen2' },
    { key: 'general.alignment', type: 'u32', value: 64 },
    { key: 'k.u8', type: 'u8', value: 200 },
    { key: 'k.i16', type: 'i16', value: -300 },
    { key: 'k.f32', type: 'f32', value: 1e-6 },
    { key: 'k.bool', type: 'bool', value: true },
    { key: 'k.u64', type: 'u64', value: 2 ** 40 },
    { key: 'k.f64', type: 'f64', value: Math.PI },
    { key: 'k.strings', type: 'array', itemType: 'string', value: ['Ġa', '<|x|>', 'é'] },
    { key: 'k.ints', type: 'array', itemType: 'i32', value: [1, -2, 3] },
  ];
  const tensors: GgufTensor[] = [
    { name: 'c', dims: [7], type: 'F32', data: c },
    { name: 'a8', dims: [64, 3], type: 'Q8_0', data: a },
    { name: 'b4', dims: [96, 2], type: 'Q4_0', data: b },
    { name: 'a16', dims: [64, 3], type: 'F16', data: () => a },
    { name: 'a32', dims: [64, 3], type: 'F32', data: a },
  ];
  const bytes = ggufBytes(kvs, tensors);
  const f = parse(bytes);
  assert.equal(f.version, 3);
  assert.equal(f.kv.size, kvs.length);
  assert.equal(f.kv.get('general.architecture')!.value, 'qwen2');
  assert.equal(f.kv.get('k.u8')!.value, 200);
  assert.equal(f.kv.get('k.i16')!.value, -300);
  assert.equal(f.kv.get('k.f32')!.value, Math.fround(1e-6));
  assert.equal(f.kv.get('k.bool')!.value, true);
  assert.equal(f.kv.get('k.u64')!.value, 2n ** 40n);
  assert.equal(f.kv.get('k.f64')!.value, Math.PI);
  assert.deepEqual(f.kv.get('k.strings')!.value, ['Ġa', '<|x|>', 'é']);
  assert.deepEqual(f.kv.get('k.ints')!.value, [1, -2, 3]);
  assert.deepEqual(f.tensors.map((t) => [t.name, t.dims, t.type]), [['c', [7], 0], ['a8', [64, 3], 8], ['b4', [96, 2], 2], ['a16', [64, 3], 1], ['a32', [64, 3], 0]]);
  assert.equal(f.dataStart % 64, 0);
  for (const t of f.tensors) assert.equal(t.offset % 64, 0, `${t.name} offset ${t.offset} is aligned`);
  // offsets are increasing and each tensor fits before the next; the file ends with the last one
  const sizes = f.tensors.map((t) => TYPES[t.type].bytes(t.dims.reduce((x, y) => x * y, 1)));
  for (let i = 1; i < f.tensors.length; i++) assert.ok(f.tensors[i].offset >= f.tensors[i - 1].offset + sizes[i - 1]);
  assert.equal(bytes.length, f.dataStart + f.tensors.at(-1)!.offset + sizes.at(-1)!);

  assert.deepEqual(Array.from(tensorData(f, 'c').values), Array.from(c));
  assert.deepEqual(Array.from(tensorData(f, 'a32').values), Array.from(a));
  const h = tensorData(f, 'a16').values;
  a.forEach((x, i) => assert.ok(Math.abs(h[i] - x) <= Math.abs(x) * 2 ** -11 + 2 ** -24, `F16 ${i}`));

  const blockErr = (x: Float32Array, y: Float64Array, bound: (amax: number) => number, what: string) => {
    let worst = 0;
    for (let k = 0; k < x.length / 32; k++) {
      const blk = x.subarray(32 * k, 32 * k + 32);
      const amax = Math.max(...Array.from(blk, Math.abs));
      for (let j = 0; j < 32; j++) {
        const e = Math.abs(y[32 * k + j] - blk[j]);
        assert.ok(e <= bound(amax), `${what} block ${k} element ${j}: ${blk[j]} → ${y[32 * k + j]}`);
        worst = Math.max(worst, e / amax);
      }
    }
    return worst;
  };
  // Q8_0: step d = amax/127, so half a step, plus d's rounding to fp16 (≤ 2^-11 relative, × 127)
  const w8 = blockErr(a, tensorData(f, 'a8').values, (m) => m / 254 + (m / 127) * 2 ** -11 * 127, 'Q8_0');
  // Q4_0: step |d| = amax/8; half a step, but a value near −max·sign clamps at q = 15: one step
  const w4 = blockErr(b, tensorData(f, 'b4').values, (m) => m / 8 + (m / 8) * 2 ** -11 * 8, 'Q4_0');
  assert.ok(w8 > 0 && w4 > w8, 'the quantised tensors are not stored exactly (and Q4_0 is coarser)');
});

test('Q4_0 follows ggml: d = max / −8 keeps the extreme value exact, nibbles low 0..15 / high 16..31', () => {
  const x = new Float32Array(32);
  for (let j = 0; j < 32; j++) x[j] = j < 16 ? (j - 8) * 0.25 : -(j - 24) * 0.25; // steps of d = 0.25
  x[0] = -2.5; // the extreme value: d = -2.5 / -8 = 0.3125
  const f = parse(ggufBytes([], [{ name: 'q', dims: [32], type: 'Q4_0', data: x }]));
  const raw = f.bytes.subarray(f.dataStart, f.dataStart + 18);
  assert.equal(half(raw[0] | (raw[1] << 8)), 0.3125);
  assert.equal(raw[2] & 15, 0, 'element 0 = -8·d is nibble 0 (low nibble of byte 0)');
  const y = tensorData(f, 'q').values;
  assert.equal(y[0], -2.5);
  for (let j = 0; j < 32; j++) assert.ok(Math.abs(y[j] - x[j]) <= 0.3125 / 2 + 1e-7, `element ${j}`);
  // element 16 is +2 (= 6.4 d → q 14), element 31 is -1.75 (q 2): the high nibbles
  assert.equal(raw[2] >> 4, Math.min(15, Math.trunc(x[16] / 0.3125 + 8.5)));
  assert.equal(raw[2 + 15] >> 4, Math.min(15, Math.trunc(x[31] / 0.3125 + 8.5)));
});

test('writeGguf streams the same bytes as ggufBytes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gguf-'));
  try {
    const t: GgufTensor[] = [
      { name: 'x', dims: [32, 2], type: 'Q8_0', data: uniformFiller(3)(64, 0, 1) },
      { name: 'y', dims: [5], type: 'F32', data: () => new Float32Array([1, 2, 3, 4, 5]) },
    ];
    const kvs: GgufKv[] = [{ key: 'general.name', type: 'string', value: 'x' }];
    const size = writeGguf(join(dir, 'm.gguf'), kvs, t);
    const file = readFileSync(join(dir, 'm.gguf'));
    assert.equal(size, file.length);
    assert.deepEqual(new Uint8Array(file), ggufBytes(kvs, t));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad tensors and keys are refused', () => {
  assert.throws(() => ggufBytes([], [{ name: 'q', dims: [48], type: 'Q8_0', data: new Float32Array(48) }]), /multiple of 32/);
  assert.throws(() => ggufBytes([], [{ name: 'q', dims: [4, 2], type: 'F32', data: new Float32Array(7) }]), /7 values/);
  assert.throws(() => ggufBytes([{ key: 'a', type: 'u32', value: 1 }, { key: 'a', type: 'u32', value: 2 }], []), /twice/);
});

function tinyConfig(architecture: 'Qwen2ForCausalLM' | 'LlamaForCausalLM') {
  return parseConfig({
    architectures: [architecture],
    hidden_size: 64,
    intermediate_size: 96,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    num_hidden_layers: 2,
    vocab_size: 300,
    max_position_embeddings: 128,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    tie_word_embeddings: true,
  }, 'tiny');
}

test('the model mapping: llama.cpp tensor names, shapes, qwen2 biases, metadata and a padded vocabulary', () => {
  const cfg = tinyConfig('Qwen2ForCausalLM');
  assert.equal(ggufUnsupported(cfg), null);
  const w = randomCanonicalWeights(cfg, 1);
  const vocab = ggufVocab(cfg.vocab, null, 'qwen2', null, 'none');
  assert.equal(vocab.tokens.length, 300);
  assert.equal(new Set(vocab.tokens).size, 300, 'tokens are distinct');
  assert.equal(vocab.tokens[10], 'Ċ');
  assert.equal(vocab.eos, 299);
  assert.equal(vocab.types[299], TOKEN_TYPE.control);
  assert.equal(vocab.types[280], TOKEN_TYPE.unused);
  const { kvs, tensors } = ggufModel(cfg, w, 'Q8_0', vocab, 'tiny');
  const f = parse(ggufBytes(kvs, tensors));
  const kv = (k: string) => f.kv.get(k)?.value;
  assert.equal(kv('general.architecture'), 'qwen2');
  assert.equal(kv('general.file_type'), 7);
  assert.equal(kv('qwen2.embedding_length'), 64);
  assert.equal(kv('qwen2.block_count'), 2);
  assert.equal(kv('qwen2.feed_forward_length'), 96);
  assert.equal(kv('qwen2.attention.head_count'), 4);
  assert.equal(kv('qwen2.attention.head_count_kv'), 2);
  assert.equal(kv('qwen2.rope.freq_base'), 10000);
  assert.equal(kv('qwen2.attention.layer_norm_rms_epsilon'), Math.fround(1e-6));
  assert.equal((kv('tokenizer.ggml.tokens') as string[]).length, 300);
  const names = f.tensors.map((t) => t.name);
  assert.equal(names[0], 'token_embd.weight');
  assert.ok(!names.includes('output.weight'), 'a tied LM head is token_embd');
  for (const n of ['attn_norm.weight', 'attn_q.weight', 'attn_q.bias', 'attn_k.bias', 'attn_v.bias', 'attn_output.weight', 'ffn_norm.weight', 'ffn_gate.weight', 'ffn_up.weight', 'ffn_down.weight']) assert.ok(names.includes(`blk.1.${n}`), n);
  const shape = (n: string) => f.tensors.find((t) => t.name === n)!;
  assert.deepEqual(shape('token_embd.weight').dims, [64, 300]);
  assert.deepEqual(shape('blk.0.attn_k.weight').dims, [64, 32]);
  assert.deepEqual(shape('blk.0.ffn_down.weight').dims, [96, 64]);
  assert.equal(shape('blk.0.ffn_down.weight').type, 8);
  assert.equal(shape('blk.0.attn_q.bias').type, 0, 'biases stay F32');
  // qwen2 keeps q as it is (NeoX RoPE): the stored q bias is the checkpoint's
  assert.deepEqual(Array.from(tensorData(f, 'blk.0.attn_q.bias').values), Array.from(w.layers[0].q.bias!));
  // the q8 down projection dequantises close to the weights
  const down = tensorData(f, 'blk.1.ffn_down.weight').values;
  const src = w.layers[1].down.weight;
  const amax = Math.max(...Array.from(src, Math.abs));
  src.forEach((x, i) => assert.ok(Math.abs(down[i] - x) <= amax / 127, `down ${i}`));
});

test('llama q/k rows are permuted as convert_hf_to_gguf does: row (h, i, j) ← (h, j, i)', () => {
  const heads = 2;
  const hd = 6;
  const w = Float32Array.from({ length: heads * hd * 3 }, (_, i) => i); // rows of 3, row r holds 3r..3r+2
  const p = permuteForLlamaRope(w, heads, 3);
  const row = (a: Float32Array, r: number) => a[3 * r] / 3;
  // head 0: rows 0..5 = [x0 x1 x2 | y0 y1 y2] → [x0 y0 x1 y1 x2 y2]
  assert.deepEqual(Array.from({ length: 12 }, (_, r) => row(p, r)), [0, 3, 1, 4, 2, 5, 6, 9, 7, 10, 8, 11]);
  const cfg = tinyConfig('LlamaForCausalLM');
  const w2 = randomCanonicalWeights(cfg, 2);
  const { tensors } = ggufModel(cfg, w2, 'F32', ggufVocab(cfg.vocab, null, 'default', null, 'none'), 'tiny');
  const k = tensors.find((t) => t.name === 'blk.0.attn_k.weight')!;
  const stored = typeof k.data === 'function' ? k.data() : k.data;
  assert.deepEqual(stored, permuteForLlamaRope(w2.layers[0].k.weight, cfg.kvHeads, cfg.hidden));
  assert.notDeepEqual(stored, w2.layers[0].k.weight);
  assert.match(ggufUnsupported({ ...cfg, architecture: 'GPT2LMHeadModel' }) ?? '', /no GGUF mapping/);
  assert.match(ggufUnsupported({ ...cfg, intermediate: 100 }) ?? '', /multiple of 32/);
});

test('llama.cpp (node-llama-cpp, where installed) decodes the embedded model\'s F32 GGUF to this runtime\'s greedy tokens', async (t) => {
  const loaded = await probeLlamaCpp();
  if (!loaded.ok) {
    t.skip(loaded.reason);
    return;
  }
  const root = join(__dirname, '..', '..', 'models', 'tiny-coder');
  // weights and config without the tokenizer (its safety probe is timed; the prompt is token ids)
  const config = loadConfig(root);
  const folder = { config, weights: canonicalWeights(config, readWeightFolder(root, { skip: (name) => isIgnoredTensor(config, name) }).tensors, { consume: true }) };
  const tokenizer = JSON.parse(readFileSync(join(root, 'tokenizer.json'), 'utf8'));
  const dir = mkdtempSync(join(tmpdir(), 'gguf-'));
  const type: GgmlTypeName = 'F32';
  try {
    const path = join(dir, 'tiny.gguf');
    const { kvs, tensors } = ggufModel(folder.config, folder.weights, type, ggufVocab(folder.config.vocab, tokenizer, 'default', folder.config.eosTokenId, 'tiny-coder'), 'tiny-coder');
    writeGguf(path, kvs, tensors);
    // tokens the embedded model wrote after "def fibonacci(n):" (test/fixtures/tiny-coder-expected.json)
    const prompt = [264, 384, 970, 271, 656, 429, 962, 305];
    const n = 16;
    const rt = new ModelRuntime(folder.config, folder.weights, { provider: 'cpu', threads: 1 });
    const ours: number[] = [];
    let r = await rt.decode(prompt);
    for (let i = 0; i < n; i++) {
      ours.push(argmax(r.logits));
      r = await rt.decode([ours[i]], r.cache);
    }
    await rt.release();
    const llama = await loaded.llamaCpp.open(1);
    const model = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
    const ctx = await model.createContext({ contextSize: 128, batchSize: 128, threads: 1 });
    const theirs: number[] = [];
    for await (const tok of ctx.getSequence().evaluate(prompt, { temperature: 0, yieldEogToken: true })) {
      theirs.push(tok);
      if (theirs.length >= n) break;
    }
    await ctx.dispose();
    await model.dispose();
    await llama.dispose();
    assert.deepEqual(theirs, ours);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the llama.cpp comparison takes its options out of the runtime benchmark\'s and refuses bad ones', () => {
  const { compare, rest } = parseCompareArgs(['--threads', '2', '--llama-rounds', '4', '--llama-formats', 'Q8_0,F32', '--weights', 'int8', '--llama-mmap', 'off', '--seq', '64']);
  assert.deepEqual(rest, ['--threads', '2', '--seq', '64']);
  assert.equal(compare.rounds, 4);
  assert.deepEqual(compare.llamaFormats, ['Q8_0', 'F32']);
  assert.deepEqual(compare.ourFormats, ['int8']);
  assert.equal(compare.mmap, false);
  assert.equal(compare.llama, true);
  assert.equal(parseCompareArgs(['--no-llama']).compare.llama, false);
  assert.throws(() => parseCompareArgs(['--llama-formats', 'Q5_K']), /F32, F16, Q8_0, Q4_0/);
  assert.throws(() => parseCompareArgs(['--weights', 'int3']), /fp32, int8, int4/);
  assert.throws(() => parseCompareArgs(['--llama-rounds', '0']), /positive/);
  assert.throws(() => parseCompareArgs(['--no-llama', '--llama-only']), /contradict/);
});

test('llama.cpp gets a context of at least 512 tokens: a context exactly 256 long prefilled 256 tokens in 1.6x the time', () => {
  // Measured on the Zen 1 host (3 December 2026): prefill of 256 tokens, Q8_0 at 0.5B shapes, 2
  // threads: 7.4 s with contextSize = batchSize = 256, 4.5 s with 512, 1,057 or 2,048.
  assert.equal(llamaContextSize({ seq: 256, prompt: 16, tokens: 32 }), 512);
  assert.equal(llamaContextSize({ seq: 256, prompt: 1024, tokens: 32 }), 1057);
  assert.equal(llamaContextSize({ seq: 1024, prompt: 16, tokens: 32 }), 1024);
});
