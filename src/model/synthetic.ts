// Synthetic model folders: deterministic random weights for a config, a byte-level BPE
// tokenizer.json built from a merge list, and writing a complete folder (single file or
// sharded). Benchmarks use it for random-weight checkpoints with real shapes; tests use it
// for tiny ones. Nothing here is used when loading a real model.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelConfig } from './config';
import { writeSafetensors, type Dtype, type HostTensor } from './safetensors';
import { toCheckpointTensors, type CanonicalWeights, type Linear, type Norm } from './weights';
import { seededRandom, uniformFiller } from '../util/random';

export { seededRandom };

/**
 * Random weights in canonical layout: linear weights and embeddings uniform with standard
 * deviation `std`, norm weights near 1, biases small — the scale of a freshly initialised model.
 */
export function randomCanonicalWeights(config: ModelConfig, seed = 1, std = 0.02): CanonicalWeights {
  const fill = uniformFiller(seed);
  const half = std * Math.sqrt(3); // uniform on ±half has standard deviation std
  const linear = (out: number, inp: number, bias: boolean): Linear => {
    const l: Linear = { weight: fill(out * inp, 0, half), out, in: inp };
    if (bias) l.bias = fill(out, 0, half);
    return l;
  };
  const gpt2 = config.family === 'gpt2';
  const norm = (): Norm => (gpt2 ? { weight: fill(config.hidden, 1, 0.1), bias: fill(config.hidden, 0, 0.1) } : { weight: fill(config.hidden, 1, 0.1) });
  const d = config.hidden;
  const m = config.intermediate;
  const qDim = config.heads * config.headDim;
  const kvDim = config.kvHeads * config.headDim;
  const embed = fill(config.vocab * d, 0, half);
  const layers = [];
  for (let i = 0; i < config.layers; i++) {
    const layer = {
      attnNorm: norm(),
      q: linear(qDim, d, config.qkvBias),
      k: linear(kvDim, d, config.qkvBias),
      v: linear(kvDim, d, config.qkvBias),
      o: linear(d, qDim, config.oBias),
      mlpNorm: norm(),
      up: linear(m, d, config.mlpBias),
      down: linear(d, m, config.mlpBias),
    };
    layers.push(gpt2 ? layer : { ...layer, gate: linear(m, d, config.mlpBias) });
  }
  const w: CanonicalWeights = {
    embed,
    layers,
    finalNorm: norm(),
    lmHead: config.tiedEmbeddings ? embed : fill(config.vocab * d, 0, half),
  };
  if (gpt2) w.positions = fill(config.maxPositions * d, 0, half);
  return w;
}

/** The 256 printable stand-ins GPT-2's byte-level BPE uses for bytes, indexed by byte. */
export function byteLevelAlphabet(): string[] {
  const direct = (b: number): boolean => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const out: string[] = [];
  let next = 256;
  for (let b = 0; b < 256; b++) out.push(String.fromCodePoint(direct(b) ? b : next++));
  return out;
}

/**
 * A byte-level BPE tokenizer.json (GPT-2 style): the 256 byte tokens, one token per merge in
 * order, then `specialTokens` as added tokens. Merges are pairs of existing token strings in the
 * byte-level alphabet (space is "Ġ").
 */
export function byteLevelTokenizerJson(merges: ReadonlyArray<readonly [string, string]>, specialTokens: readonly string[] = []): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  let id = 0;
  for (const c of byteLevelAlphabet()) vocab[c] = id++;
  for (const [a, b] of merges) {
    if (!(a in vocab) || !(b in vocab)) throw new Error(`merge "${a} ${b}" uses a token that is not in the vocabulary yet`);
    if (!(a + b in vocab)) vocab[a + b] = id++;
  }
  const added = specialTokens.map((content) => ({
    id: id++, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
  }));
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: { ...byteLevel, trim_offsets: false },
    decoder: byteLevel,
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false,
      vocab,
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
}

export interface ModelFolderSpec {
  /** config.json content, written as given. */
  config: Record<string, unknown>;
  tensors: Map<string, HostTensor>;
  tokenizer: Record<string, unknown>;
  tokenizerConfig?: Record<string, unknown>;
  dtype?: Dtype;
  /** Number of shards; more than 1 writes model-0000i-of-0000n.safetensors and the index. */
  shards?: number;
}

/** Writes a Hugging Face model folder (creating `dir`). */
export function writeModelFolder(dir: string, spec: ModelFolderSpec): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(spec.config, null, 2));
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(spec.tokenizer));
  if (spec.tokenizerConfig) writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(spec.tokenizerConfig, null, 2));
  const shards = Math.max(1, Math.floor(spec.shards ?? 1));
  if (shards === 1) {
    writeSafetensors(join(dir, 'model.safetensors'), spec.tensors, { format: 'pt' }, spec.dtype);
    return;
  }
  const names = [...spec.tensors.keys()].sort();
  const pad = (n: number): string => String(n).padStart(5, '0');
  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  for (let s = 0; s < shards; s++) {
    const file = `model-${pad(s + 1)}-of-${pad(shards)}.safetensors`;
    const part = new Map<string, HostTensor>();
    for (let i = s; i < names.length; i += shards) {
      const t = spec.tensors.get(names[i]!)!;
      part.set(names[i]!, t);
      weightMap[names[i]!] = file;
      totalSize += t.data.length * (spec.dtype === 'F16' || spec.dtype === 'BF16' ? 2 : 4);
    }
    writeSafetensors(join(dir, file), part, { format: 'pt' }, spec.dtype);
  }
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2));
}

/** Random HF-layout tensors for `config` (see randomCanonicalWeights). */
export function randomCheckpointTensors(config: ModelConfig, seed = 1, std = 0.02): Map<string, HostTensor> {
  return toCheckpointTensors(config, randomCanonicalWeights(config, seed, std));
}
