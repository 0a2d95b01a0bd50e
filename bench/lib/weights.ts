// Random-weight checkpoints for benchmarks: canonical weights with a real config's shapes, filled
// by a fast seeded generator (xorshift32, uniform) so a 0.5B model is ready in about a second and
// nothing has to be committed. Values have the scale of a freshly initialised model: linear
// weights and embeddings with standard deviation `std`, norm weights near 1.
import type { ModelConfig } from '../../src/model/config';
import type { CanonicalWeights, LayerWeights, Linear, Norm } from '../../src/model/weights';

/** Fills a new array with uniform values centre ± spread; each call continues one stream. */
export function uniformFiller(seed: number): (n: number, centre: number, spread: number) => Float32Array {
  let s = seed >>> 0 || 0x9e3779b9;
  return (n, centre, spread) => {
    const a = new Float32Array(n);
    const scale = (2 * spread) / 4294967296;
    const base = centre - spread;
    for (let i = 0; i < n; i++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      a[i] = base + (s >>> 0) * scale;
    }
    return a;
  };
}

export function randomWeights(cfg: ModelConfig, seed = 1, std = 0.02): CanonicalWeights {
  const fill = uniformFiller(seed);
  const half = std * Math.sqrt(3); // uniform on ±half has standard deviation std
  const linear = (out: number, inp: number, bias: boolean): Linear => {
    const l: Linear = { weight: fill(out * inp, 0, half), out, in: inp };
    if (bias) l.bias = fill(out, 0, half);
    return l;
  };
  const gpt2 = cfg.family === 'gpt2';
  const norm = (): Norm => (gpt2 ? { weight: fill(cfg.hidden, 1, 0.1), bias: fill(cfg.hidden, 0, 0.1) } : { weight: fill(cfg.hidden, 1, 0.1) });
  const d = cfg.hidden;
  const qDim = cfg.heads * cfg.headDim;
  const kvDim = cfg.kvHeads * cfg.headDim;
  const embed = fill(cfg.vocab * d, 0, half);
  const layers: LayerWeights[] = [];
  for (let i = 0; i < cfg.layers; i++) {
    const layer: LayerWeights = {
      attnNorm: norm(),
      q: linear(qDim, d, cfg.qkvBias),
      k: linear(kvDim, d, cfg.qkvBias),
      v: linear(kvDim, d, cfg.qkvBias),
      o: linear(d, qDim, cfg.oBias),
      mlpNorm: norm(),
      up: linear(cfg.intermediate, d, cfg.mlpBias),
      down: linear(d, cfg.intermediate, cfg.mlpBias),
    };
    if (!gpt2) layer.gate = linear(cfg.intermediate, d, cfg.mlpBias);
    layers.push(layer);
  }
  const w: CanonicalWeights = { embed, layers, finalNorm: norm(), lmHead: cfg.tiedEmbeddings ? embed : fill(cfg.vocab * d, 0, half) };
  if (gpt2) w.positions = fill(cfg.maxPositions * d, 0, half);
  return w;
}

/** Bytes of distinct weight arrays (a tied LM head is the embedding and counts once). */
export function weightBytes(w: CanonicalWeights): number {
  const seen = new Set<Float32Array>();
  const add = (a: Float32Array | undefined) => {
    if (a) seen.add(a);
  };
  add(w.embed);
  add(w.positions);
  add(w.lmHead);
  add(w.finalNorm.weight);
  add(w.finalNorm.bias);
  for (const l of w.layers) {
    for (const n of [l.attnNorm, l.mlpNorm]) {
      add(n.weight);
      add(n.bias);
    }
    for (const lin of [l.q, l.k, l.v, l.o, l.gate, l.up, l.down]) {
      add(lin?.weight);
      add(lin?.bias);
    }
  }
  let bytes = 0;
  for (const a of seen) bytes += a.byteLength;
  return bytes;
}
