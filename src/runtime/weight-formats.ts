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

/** 'auto' is int8 on the CPU and fp32 on a GPU provider (not measured there yet); the others are themselves. */
export function resolveWeightFormat(setting: WeightSetting, provider: string): WeightFormat {
  if (setting !== 'auto') return setting;
  return provider === 'cpu' ? 'int8' : 'fp32';
}

/** Bits of a quantised format; null for fp32. */
export function formatBits(format: WeightFormat): 4 | 8 | null {
  return format === 'int8' ? 8 : format === 'int4' ? 4 : null;
}
