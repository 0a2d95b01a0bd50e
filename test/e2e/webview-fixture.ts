// Fixture states for the panel's browser tests and benchmark: a small, hand-checked state
// whose numbers the tests look for on screen, and a generator of large patches.

import type { LayerDelta, PanelState, PatchSummary } from '../../src/panel/messages';
import { seededRandom } from '../../src/util/random';

export const NOW = Date.parse('2025-06-01T12:00:00Z');
const minutesAgo = (m: number): string => new Date(NOW - m * 60_000).toISOString();

export function fixtureState(): PanelState {
  return {
    model: {
      name: 'tiny-coder',
      architecture: 'LlamaForCausalLM',
      params: 28_311_552,
      layers: 8,
      neuronsPerLayer: 1536,
      executionProvider: 'cpu',
      fallbackReason: 'WebGPU adapter not found (no Vulkan driver)',
      weights: { format: 'int8', bytes: 29_884_416 },
      activePatches: 1,
    },
    failures: [
      {
        id: 'f-sum',
        status: 'pending',
        languageId: 'python',
        prompt: 'def total(xs):\n    return ',
        rejected: 'len(xs)',
        desired: 'sum(xs)',
        createdAt: minutesAgo(5),
        uri: 'file:///work/demo/stats.py',
        line: 41,
      },
      {
        id: 'f-join',
        status: 'pending',
        languageId: 'typescript',
        prompt: 'const line = parts.',
        rejected: 'concat(", ")',
        desired: 'join(", ")',
        createdAt: minutesAgo(3),
        uri: 'file:///work/demo/format.ts',
        line: 7,
      },
      {
        id: 'f-manual',
        status: 'unfixed',
        languageId: 'rust',
        prompt: 'let v: Vec<u8> = ',
        desired: 'Vec::with_capacity(n)',
        createdAt: minutesAgo(90),
      },
      {
        id: 'f-old',
        status: 'discarded',
        languageId: 'go',
        prompt: 'fmt.',
        rejected: 'Print(x)',
        desired: 'Println(x)',
        createdAt: minutesAgo(600),
      },
    ],
    repair: {
      running: true,
      failureIds: ['f-sum', 'f-join'],
      method: 'STAR',
      epoch: 3,
      epochs: 10,
      loss: 0.4821,
      positionsFixed: 2,
      positionsTotal: 5,
      message: 'solving layer 5',
    },
    patches: [
      {
        id: 'p-older',
        method: 'MINT',
        mode: 'single',
        createdAt: minutesAgo(120),
        enabled: false,
        failureIds: ['f-manual'],
        neurons: 3,
        params: 3 * 512,
        ms: 950,
        scores: {
          effectiveness: { before: 0, after: 0.5 },
          generalisation: null,
          specificity: { before: 1, after: 0.97 },
        },
        positions: [{ token: 'Vec', pBefore: 0.2, pAfter: 0.6 }],
        layers: [{ layer: 2, rows: [5, 6, 7], norms: [0.5, 0.25, 0.125] }],
      },
      {
        id: 'p-star',
        method: 'STAR',
        mode: 'batch',
        createdAt: minutesAgo(30),
        enabled: true,
        failureIds: ['f-sum', 'f-join'],
        neurons: 7,
        params: 7 * 512,
        ms: 2345,
        scores: {
          effectiveness: { before: 0, after: 1 },
          generalisation: { before: 0.125, after: 0.75 },
          specificity: { before: 1, after: 0.984 },
        },
        positions: [
          { token: 'sum', pBefore: 0.031, pAfter: 0.912 },
          { token: '(', pBefore: 0.8, pAfter: 0.97 },
          { token: ' join', pBefore: 0.045, pAfter: 0.66 },
        ],
        layers: [
          { layer: 1, rows: [12, 700], norms: [0.2, 1.5] },
          { layer: 3, rows: [700, 701, 1535], norms: [0.9, 0.1, 0.6] },
          { layer: 7, rows: [0, 1024], norms: [0.05, 2.25] },
        ],
      },
    ],
  };
}

export { seededRandom };

/** `neurons` distinct patched neurons spread over `layers` layers of width `width`. */
export function largeLayers(neurons: number, layers: number, width: number, seed: number): LayerDelta[] {
  const rand = seededRandom(seed);
  const perLayer: Set<number>[] = Array.from({ length: layers }, () => new Set<number>());
  let placed = 0;
  while (placed < neurons) {
    const l = Math.floor(rand() * layers);
    const r = Math.floor(rand() * width);
    if (perLayer[l].has(r)) continue;
    perLayer[l].add(r);
    placed++;
  }
  return perLayer.map((rows, layer) => {
    const sorted = [...rows].sort((a, b) => a - b);
    return { layer, rows: sorted, norms: sorted.map(() => Math.exp(rand() * 4 - 3)) };
  });
}

/** A state with `patches` large patches, as the benchmark and the stress test use. */
export function largeState(neurons: number, layers: number, width: number, patches = 1): PanelState {
  const base = fixtureState();
  const list: PatchSummary[] = [];
  for (let i = 0; i < patches; i++) {
    const ls = largeLayers(neurons, layers, width, 1000 + i);
    list.push({
      ...base.patches[1],
      id: `big-${i}`,
      createdAt: new Date(NOW - (patches - i) * 60_000).toISOString(),
      neurons,
      params: neurons * 2048,
      layers: ls,
    });
  }
  return {
    ...base,
    model: { ...base.model!, name: 'large', layers, neuronsPerLayer: width, params: 7_000_000_000, activePatches: patches },
    patches: list,
  };
}
