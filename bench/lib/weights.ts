// The size of a benchmark's weights in bytes. The random-weight checkpoints themselves (a real
// config's shapes, nothing committed) come from src/model/synthetic.ts.
import type { CanonicalWeights } from '../../src/model/weights';


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
