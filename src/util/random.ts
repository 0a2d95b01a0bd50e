// The project's seeded random generators: sampling, synthetic weights and data sampling must be
// reproducible from a seed and never depend on Math.random. mulberry32 for single draws; a
// xorshift32 filler for bulk arrays (random weights of a 0.5B-parameter shape in about a second).

/** Deterministic uniform generator on [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Fills a new array with uniform values centre ± spread (xorshift32); each call continues one stream. */
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
