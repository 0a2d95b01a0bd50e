// A decoder checkpoint (ModelConfig + CanonicalWeights) as a llama.cpp GGUF: the architecture's
// metadata keys, a GPT-2-style byte-level BPE vocabulary, and llama.cpp's tensor names
// (token_embd, blk.N.attn_norm / attn_q / attn_k / attn_v (+ .bias) / attn_output / ffn_norm /
// ffn_gate / ffn_up / ffn_down, output_norm, output), as convert_hf_to_gguf.py writes them.
// Qwen2ForCausalLM maps to llama.cpp's "qwen2" (NeoX RoPE, q/k as in the checkpoint);
// LlamaForCausalLM to "llama", whose rope rotates adjacent pairs, so q/k rows are permuted the
// way the converter's LlamaModel.permute does. Matrices take the chosen type; norms and biases
// stay F32 (llama.cpp's own quantiser keeps 1-D tensors in F32 too).
import type { ModelConfig } from '../../src/model/config';
import type { CanonicalWeights, Linear } from '../../src/model/weights';
import { byteLevelAlphabet } from '../../src/model/synthetic';
import { writeGguf, type GgmlTypeName, type GgufKv, type GgufTensor } from './gguf';

/** llama_token_type (llama.h): what llama.cpp does with each vocabulary entry. */
export const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

/** general.file_type (llama_ftype) for a file whose matrices are all of one type. */
const FILE_TYPE: Record<GgmlTypeName, number> = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 7 };

const GGUF_ARCH: Readonly<Record<string, 'qwen2' | 'llama'>> = { Qwen2ForCausalLM: 'qwen2', LlamaForCausalLM: 'llama' };

/** Why llama.cpp cannot take this config through this writer, or null when it can. */
export function ggufUnsupported(cfg: ModelConfig): string | null {
  const arch = GGUF_ARCH[cfg.architecture];
  if (!arch) return `${cfg.architecture} has no GGUF mapping here (supported: ${Object.keys(GGUF_ARCH).join(', ')})`;
  if (cfg.oBias || cfg.mlpBias) return `${cfg.architecture} with o-projection or MLP biases is not mapped`;
  if (arch === 'llama' && cfg.qkvBias) return 'llama with q/k/v biases is not mapped';
  if (arch === 'qwen2' && !cfg.qkvBias) return 'qwen2 without q/k/v biases is not mapped';
  if (cfg.hidden % 32 !== 0 || cfg.intermediate % 32 !== 0 || (cfg.heads * cfg.headDim) % 32 !== 0) return 'a row length is not a multiple of 32 (the Q8_0/Q4_0 block)';
  return null;
}

export interface GgufVocab {
  tokens: string[];
  types: number[];
  merges: string[];
  eos: number;
  /** llama.cpp's pre-tokenizer name. */
  pre: string;
  source: string;
}

interface TokenizerJson {
  model?: { type?: string; vocab?: Record<string, number>; merges?: (string | [string, string])[] };
  added_tokens?: { id: number; content: string; special?: boolean }[];
}

/**
 * The GGUF vocabulary of a byte-level BPE tokenizer.json, padded to `vocab` entries with unused
 * placeholders (checkpoints often have more embedding rows than tokens); without a
 * tokenizer.json, the 256 byte tokens, placeholders, and an end-of-text token last.
 */
export function ggufVocab(vocab: number, tokenizer: TokenizerJson | null, pre: string, eosId: number | null, source: string): GgufVocab {
  const tokens: (string | undefined)[] = new Array(vocab);
  const types: number[] = new Array(vocab).fill(TOKEN_TYPE.unused);
  let merges: string[] = [];
  let eos = eosId ?? vocab - 1;
  if (tokenizer?.model?.type === 'BPE' && tokenizer.model.vocab) {
    for (const [t, id] of Object.entries(tokenizer.model.vocab)) {
      if (id < vocab) {
        tokens[id] = t;
        types[id] = TOKEN_TYPE.normal;
      }
    }
    for (const a of tokenizer.added_tokens ?? []) {
      if (a.id < vocab) {
        tokens[a.id] = a.content;
        types[a.id] = a.special ? TOKEN_TYPE.control : TOKEN_TYPE.userDefined;
      }
    }
    merges = (tokenizer.model.merges ?? []).map((m) => (typeof m === 'string' ? m : `${m[0]} ${m[1]}`));
  } else {
    source = 'the 256 byte-level tokens and placeholders';
    byteLevelAlphabet().forEach((c, i) => {
      tokens[i] = c;
      types[i] = TOKEN_TYPE.normal;
    });
    eos = vocab - 1;
    tokens[eos] = '<|endoftext|>';
    types[eos] = TOKEN_TYPE.control;
  }
  const seen = new Set<string>();
  const out = Array.from(tokens, (t, i) => {
    const s = t === undefined || seen.has(t) ? `[PAD${i}]` : t;
    if (t === undefined || seen.has(t)) types[i] = TOKEN_TYPE.unused;
    seen.add(s);
    return s;
  });
  return { tokens: out, types, merges, eos, pre, source };
}

/** Rows of a q or k weight [heads·hd, in] reordered from HF's half-split RoPE layout to llama.cpp's interleaved one. */
export function permuteForLlamaRope(w: Float32Array, heads: number, rowLen: number): Float32Array {
  const rows = w.length / rowLen;
  const hd = rows / heads;
  const half = hd / 2;
  const out = new Float32Array(w.length);
  // reshape(heads, 2, half, …).swapaxes(1, 2): new row (h, i, j) ← old row (h, j, i)
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const src = h * hd + j * half + i;
        const dst = h * hd + i * 2 + j;
        out.set(w.subarray(src * rowLen, (src + 1) * rowLen), dst * rowLen);
      }
    }
  }
  return out;
}

/** The same permutation for a bias [heads·hd] (rowLen 1). */
const permuteBias = (b: Float32Array, heads: number) => permuteForLlamaRope(b, heads, 1);

/** Metadata and tensors of the GGUF for `cfg` with `weights`, matrices in `type`. */
export function ggufModel(cfg: ModelConfig, weights: CanonicalWeights, type: GgmlTypeName, vocab: GgufVocab, name: string): { kvs: GgufKv[]; tensors: GgufTensor[] } {
  const why = ggufUnsupported(cfg);
  if (why) throw new Error(why);
  const arch = GGUF_ARCH[cfg.architecture];
  const permute = arch === 'llama';
  const kvs: GgufKv[] = [
    { key: 'general.architecture', type: 'string', value: arch },
    { key: 'general.name', type: 'string', value: name },
    { key: 'general.file_type', type: 'u32', value: FILE_TYPE[type] },
    { key: 'general.alignment', type: 'u32', value: 32 },
    { key: `${arch}.context_length`, type: 'u32', value: cfg.maxPositions },
    { key: `${arch}.embedding_length`, type: 'u32', value: cfg.hidden },
    { key: `${arch}.block_count`, type: 'u32', value: cfg.layers },
    { key: `${arch}.feed_forward_length`, type: 'u32', value: cfg.intermediate },
    { key: `${arch}.attention.head_count`, type: 'u32', value: cfg.heads },
    { key: `${arch}.attention.head_count_kv`, type: 'u32', value: cfg.kvHeads },
    { key: `${arch}.attention.key_length`, type: 'u32', value: cfg.headDim },
    { key: `${arch}.attention.value_length`, type: 'u32', value: cfg.headDim },
    { key: `${arch}.rope.dimension_count`, type: 'u32', value: cfg.headDim },
    { key: `${arch}.rope.freq_base`, type: 'f32', value: cfg.ropeTheta },
    { key: `${arch}.attention.layer_norm_rms_epsilon`, type: 'f32', value: cfg.normEps },
    { key: `${arch}.vocab_size`, type: 'u32', value: cfg.vocab },
    { key: 'tokenizer.ggml.model', type: 'string', value: 'gpt2' },
    { key: 'tokenizer.ggml.pre', type: 'string', value: vocab.pre },
    { key: 'tokenizer.ggml.tokens', type: 'array', itemType: 'string', value: vocab.tokens },
    { key: 'tokenizer.ggml.token_type', type: 'array', itemType: 'i32', value: vocab.types },
    { key: 'tokenizer.ggml.merges', type: 'array', itemType: 'string', value: vocab.merges },
    { key: 'tokenizer.ggml.eos_token_id', type: 'u32', value: vocab.eos },
    { key: 'tokenizer.ggml.bos_token_id', type: 'u32', value: vocab.eos },
    { key: 'tokenizer.ggml.padding_token_id', type: 'u32', value: vocab.eos },
    { key: 'tokenizer.ggml.add_bos_token', type: 'bool', value: false },
  ];
  const d = cfg.hidden;
  const tensors: GgufTensor[] = [];
  const matrix = (n: string, w: Float32Array | (() => Float32Array), out: number, inp: number) => tensors.push({ name: n, dims: [inp, out], type, data: w });
  const vector = (n: string, v: Float32Array | (() => Float32Array), len: number) => tensors.push({ name: n, dims: [len], type: 'F32', data: v });
  const linear = (n: string, l: Linear, heads?: number) => {
    matrix(`${n}.weight`, heads !== undefined ? () => permuteForLlamaRope(l.weight, heads, l.in) : l.weight, l.out, l.in);
    if (l.bias) vector(`${n}.bias`, heads !== undefined ? () => permuteBias(l.bias!, heads) : l.bias, l.out);
  };
  matrix('token_embd.weight', weights.embed, cfg.vocab, d);
  weights.layers.forEach((l, i) => {
    const p = `blk.${i}`;
    vector(`${p}.attn_norm.weight`, l.attnNorm.weight, d);
    linear(`${p}.attn_q`, l.q, permute ? cfg.heads : undefined);
    linear(`${p}.attn_k`, l.k, permute ? cfg.kvHeads : undefined);
    linear(`${p}.attn_v`, l.v);
    linear(`${p}.attn_output`, l.o);
    vector(`${p}.ffn_norm.weight`, l.mlpNorm.weight, d);
    if (!l.gate) throw new Error(`layer ${i} has no gate projection`);
    linear(`${p}.ffn_gate`, l.gate);
    linear(`${p}.ffn_up`, l.up);
    linear(`${p}.ffn_down`, l.down);
  });
  vector('output_norm.weight', weights.finalNorm.weight, d);
  if (!cfg.tiedEmbeddings) matrix('output.weight', weights.lmHead, cfg.vocab, d);
  return { kvs, tensors };
}

/** Writes the GGUF of `cfg` with `weights` in `type` to `path`; returns its size in bytes. */
export function writeModelGguf(path: string, cfg: ModelConfig, weights: CanonicalWeights, type: GgmlTypeName, vocab: GgufVocab, name: string): number {
  const { kvs, tensors } = ggufModel(cfg, weights, type, vocab, name);
  return writeGguf(path, kvs, tensors);
}
