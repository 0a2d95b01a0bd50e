// Matrix-multiply FLOP counts of the decoder graphs (src/graph/architectures/decoder.ts), so a
// measured time can be set against the GEMM throughput ORT reaches on this machine. Only the
// matrix products are counted (2 FLOP per multiply-add); norms, RoPE and softmax are noise next
// to them. Attention is counted as the graph computes it: the full [T, S] score matrix, masked.
import type { ModelConfig } from '../../src/model/config';

/** Multiply-adds per token of one layer's linear maps (q, k, v, o, gate, up, down). */
export function linearParamsPerLayer(cfg: ModelConfig): number {
  const { hidden: d, intermediate: m, heads: H, kvHeads: KV, headDim: hd } = cfg;
  const attn = d * H * hd + 2 * d * KV * hd + H * hd * d;
  const mlp = (cfg.family === 'llama' ? 3 : 2) * d * m;
  return attn + mlp;
}

/** Forward FLOPs of one layer for T new positions attending over S keys. */
function layerForward(cfg: ModelConfig, T: number, S: number): number {
  return 2 * T * linearParamsPerLayer(cfg) + 4 * cfg.heads * cfg.headDim * T * S;
}

function headFlops(cfg: ModelConfig, logitRows: number): number {
  return 2 * logitRows * cfg.vocab * cfg.hidden;
}

/**
 * Forward pass: `T` positions over `S` keys (S = T without a cache), logits for `logitRows`
 * positions (1 for a decode step or prefill, the mask's count for probe and score).
 */
export function forwardFlops(cfg: ModelConfig, T: number, S: number, logitRows: number): number {
  return cfg.layers * layerForward(cfg, T, S) + headFlops(cfg, logitRows);
}

/**
 * Backward pass of the probe graph: gradients of activations only (weights are constants), from
 * the loss down to dL/dh of layer 0 — so through the LM head and every layer but the first.
 * Linear maps cost as much backward as forward (dX = dY·W); attention twice as much (dP, dV, dQ, dK).
 */
export function backwardFlops(cfg: ModelConfig, T: number, logitRows: number): number {
  const perLayer = 2 * T * linearParamsPerLayer(cfg) + 8 * cfg.heads * cfg.headDim * T * T;
  return (cfg.layers - 1) * perLayer + headFlops(cfg, logitRows);
}
