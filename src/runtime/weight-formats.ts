// The weight-format vocabulary: the names the setting (settings.ts), the CLI's --weights, the
// worker protocol and the runtime accept, and what 'auto' means on a provider. The block layout
// and accuracy_level chosen by the benchmark live here too (docs/quantised.md says why).
// No Node and no onnxruntime here, so the extension can import it.

import type { ModelConfig } from '../model/config';

export const WEIGHT_SETTINGS = ['auto', 'fp32', 'int8', 'int4'] as const;
export type WeightSetting = (typeof WEIGHT_SETTINGS)[number];
export type WeightFormat = Exclude<WeightSetting, 'auto'>;
/** The formats a loaded model can be in: the settings less 'auto', which the worker resolves. */
export const WEIGHT_FORMATS: readonly WeightFormat[] = WEIGHT_SETTINGS.filter((s): s is WeightFormat => s !== 'auto');

/**
 * Values per quantisation block along the input axis (MatMulNBits block_size), per format, as the
 * benchmark chose (docs/quantised.md "Choosing block size"): int8 at 128 decodes ~15 % faster than
 * at 32 on Qwen2.5-Coder-0.5B shapes and holds 0.06 GB less, at 99.26 % top-1 agreement with fp32
 * on the embedded model (99.34 % at 32); int4 at 128 decodes 6–11 % faster than at 32 and holds
 * 0.06 GB less, at 88.8 % agreement against 90.0 % (int4 is for speed; auto never picks it).
 */
export const QUANT_BLOCK_SIZES: Readonly<Record<Exclude<WeightFormat, 'fp32'>, number>> = { int8: 128, int4: 128 };

export function quantBlockSize(format: Exclude<WeightFormat, 'fp32'>): number {
  return QUANT_BLOCK_SIZES[format];
}
/** MatMulNBits accuracy_level of the decode graph: 4 = int8 activations, onnxruntime's fastest CPU kernel. */
export const DECODE_ACCURACY_LEVEL = 4;

export function isWeightSetting(v: unknown): v is WeightSetting {
  return typeof v === 'string' && (WEIGHT_SETTINGS as readonly string[]).includes(v);
}

/** Providers on which the quantised graphs are tested (CPU; WebGPU on lavapipe) — and 'auto', which picks among them or falls back to the CPU. */
const QUANTISED_PROVIDERS: readonly string[] = ['cpu', 'webgpu', 'auto'];

/**
 * Below this many bytes of fp32 weights 'auto' keeps fp32: such a model decodes in a few
 * milliseconds either way (the embedded 13.6 MB tiny-coder: 3.7–4.6 ms fp32, 2.1–2.5 ms int8 per
 * token), so int8 would save the user nothing they notice while changing the function its
 * benchmarks, bench data and tuned repair defaults were measured on. Every real code model
 * (Qwen2.5-Coder-0.5B is 1.98 GB in fp32) is far above it.
 */
export const AUTO_INT8_MIN_FP32_BYTES = 100e6;

/** The shapes resolveWeightFormat needs (a type-only import: nothing of model/ is loaded). */
export type WeightShapes = Pick<ModelConfig, 'family' | 'layers' | 'hidden' | 'intermediate' | 'heads' | 'kvHeads' | 'headDim' | 'vocab' | 'tiedEmbeddings'>;

/** Bytes of a model's matrices in fp32 (embedding, every linear map, an untied head; norms and biases left out). */
export function fp32MatrixBytes(c: WeightShapes): number {
  const d = c.hidden;
  const perLayer = 2 * d * c.heads * c.headDim + 2 * d * c.kvHeads * c.headDim + (c.family === 'gpt2' ? 2 : 3) * d * c.intermediate;
  return 4 * (c.vocab * d * (c.tiedEmbeddings ? 1 : 2) + c.layers * perLayer);
}

/**
 * The format a setting runs in. 'auto' is int8 where int8 is tested and pays: a provider setting
 * of cpu, webgpu or auto (docs/quantised.md: on Qwen2.5-Coder-0.5B shapes int8 decodes ~2.7×
 * faster than fp32 on the CPU and holds 0.51 GB instead of 1.98; 99.3 % top-1 agreement with fp32
 * on the embedded model's held-out text; repairs fix as many failures), and the model is big
 * enough to notice (AUTO_INT8_MIN_FP32_BYTES); fp32 elsewhere (CUDA, DirectML, CoreML: the
 * quantised graphs are untested there). int4 is never automatic: 90 % agreement is too far from
 * fp32. The other settings are themselves.
 */
export function resolveWeightFormat(setting: WeightSetting, provider: string, shapes: WeightShapes): WeightFormat {
  if (setting !== 'auto') return setting;
  return QUANTISED_PROVIDERS.includes(provider) && fp32MatrixBytes(shapes) >= AUTO_INT8_MIN_FP32_BYTES ? 'int8' : 'fp32';
}

/** Bits of a quantised format; null for fp32. */
export function formatBits(format: WeightFormat): 4 | 8 | null {
  return format === 'int8' ? 8 : format === 'int4' ? 4 : null;
}
