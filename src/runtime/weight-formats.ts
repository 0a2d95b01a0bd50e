// The weight-format vocabulary: the names the setting (settings.ts), the CLI's --weights, the
// worker protocol and the runtime accept, and what 'auto' means on a provider. The block layout
// and accuracy_level chosen by the benchmark live here too (docs/quantised.md says why).
// No Node and no onnxruntime here, so the extension can import it.

export const WEIGHT_SETTINGS = ['auto', 'fp32', 'int8', 'int4'] as const;
export type WeightSetting = (typeof WEIGHT_SETTINGS)[number];
export type WeightFormat = Exclude<WeightSetting, 'auto'>;

/** Values per quantisation block along the input axis (MatMulNBits block_size). */
export const QUANT_BLOCK_SIZE = 32;
/** MatMulNBits accuracy_level of the decode graph: 4 = int8 activations, onnxruntime's fastest CPU kernel. */
export const DECODE_ACCURACY_LEVEL = 4;

export function isWeightSetting(v: unknown): v is WeightSetting {
  return typeof v === 'string' && (WEIGHT_SETTINGS as readonly string[]).includes(v);
}

/**
 * 'auto' is fp32 for now, on every provider; the others are themselves. int8 decodes several
 * times faster on a CPU with 99.3 % top-1 agreement (docs/quantised.md), but until the repair's
 * probe stops rebuilding Ŵ in three full float buffers (3.5× slower and 8.7 GB peak against
 * 2.3 GB at Qwen2.5-Coder-0.5B size) and F16/BF16 checkpoints stop being expanded to fp32 beside
 * the quantised copy (issue 16, item 4), choosing int8 by default would make repairs slower and
 * use more memory than today: int8/int4 are opt-in (`starRepair.weights`, `--weights`).
 */
export function resolveWeightFormat(setting: WeightSetting, _provider: string): WeightFormat {
  return setting === 'auto' ? 'fp32' : setting;
}

/** Bits of a quantised format; null for fp32. */
export function formatBits(format: WeightFormat): 4 | 8 | null {
  return format === 'int8' ? 8 : format === 'int4' ? 4 : null;
}
