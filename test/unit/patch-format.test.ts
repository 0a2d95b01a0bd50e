// Patch format: JSON round trip with base64 LE float32 deltas, validation,
// fingerprint check, stacking and negation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  combinePatches, negatePatch, patchFromJson, patchToJson, stringifyPatch, validatePatch, checkPatchForModel,
  encodeFloat32Base64, decodeFloat32Base64, patchSize, InvalidPatchError, PatchMismatchError, type Patch,
  MAX_PATCH_PARAMS, base64Chars,
} from '../../src/repair/patch';

const FP = '0123456789abcdef'.repeat(4);
const OTHER = 'fedcba9876543210'.repeat(4);

function makePatch(layers: { layer: number; rows: number[]; values: number[] }[], id = 'p1', fp = FP): Patch {
  return {
    id, modelFingerprint: fp, method: 'star', mode: 'iter',
    options: { epochs: 10, eta: 0.01, select: 'global', nested: { k: [1, 2] } },
    failureIds: ['f1', 'f2'], createdAt: '2024-02-03T04:05:06.000Z',
    layers: layers.map((l) => ({ layer: l.layer, rows: l.rows, deltas: Float32Array.from(l.values) })),
    scores: { effectiveness: 1, generalisation: null, specificity: 0.98 },
    stats: { ms: 1234.5, peakRssMb: 321, neurons: 3, params: 6 },
  };
}

function problems(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof InvalidPatchError, `expected InvalidPatchError, got ${String(err)}`);
    return err.problems.join('\n');
  }
  assert.fail('expected InvalidPatchError');
}

test('base64 float32 is little-endian and exact', () => {
  const v = Float32Array.from([1, -2.5, 3.4028234663852886e38, 1.401298464324817e-45, -0]);
  const b64 = encodeFloat32Base64(v);
  const bytes = Buffer.from(b64, 'base64');
  assert.equal(bytes.length, 20);
  assert.deepEqual([...bytes.subarray(0, 4)], [0x00, 0x00, 0x80, 0x3f], '1.0f little-endian');
  assert.deepEqual([...bytes.subarray(4, 8)], [0x00, 0x00, 0x20, 0xc0], '-2.5f little-endian');
  const back = decodeFloat32Base64(b64);
  assert.deepEqual([...back], [...v]);
  assert.ok(Object.is(back[4], -0));
  // A view into a larger buffer encodes only its own range.
  const big = Float32Array.from([9, 8, 7, 6]);
  assert.deepEqual([...decodeFloat32Base64(encodeFloat32Base64(big.subarray(1, 3)))], [8, 7]);
  assert.throws(() => decodeFloat32Base64(Buffer.from([1, 2, 3]).toString('base64')), /not a whole number of float32/);
  assert.throws(() => decodeFloat32Base64('%%%'), /not base64/);
});

test('JSON round trip keeps every field and the exact deltas', () => {
  const p = makePatch([{ layer: 0, rows: [1, 5], values: [0.1, 0.2, 0.3, 0.4] }, { layer: 3, rows: [7], values: [-1e-7, 5] }]);
  const json = patchToJson(p);
  assert.equal(typeof json.layers[0]!.deltas, 'string');
  const text = stringifyPatch(p);
  const back = patchFromJson(text, 2);
  assert.deepEqual(back, p);
  assert.ok(back.layers[1]!.deltas instanceof Float32Array);
  assert.deepEqual(patchFromJson(JSON.parse(text)), p, 'an already parsed object works too');
  assert.deepEqual(patchSize(p), { neurons: 3, params: 6 });
});

test('validation: rows sorted unique ints, deltas = rows × d, finite values, known enums', () => {
  const ok = makePatch([{ layer: 0, rows: [1, 5], values: [0, 0, 0, 0] }]);
  assert.doesNotThrow(() => validatePatch(ok, 2));
  assert.match(problems(() => validatePatch(ok, 3)), /4 delta values, expected rows × d = 2 × 3 = 6/);
  assert.match(problems(() => validatePatch(makePatch([{ layer: 0, rows: [5, 1], values: [0, 0] }]))), /sorted ascending without repeats/);
  assert.match(problems(() => validatePatch(makePatch([{ layer: 0, rows: [1, 1], values: [0, 0] }]))), /without repeats/);
  assert.match(problems(() => validatePatch(makePatch([{ layer: 0, rows: [1.5], values: [0] }]))), /rows\[0\] is 1.5, not a non-negative integer/);
  assert.match(problems(() => validatePatch(makePatch([{ layer: 0, rows: [-1], values: [0] }]))), /not a non-negative integer/);
  assert.match(problems(() => validatePatch(makePatch([{ layer: 0, rows: [], values: [] }]))), /"rows" is empty/);
  assert.match(problems(() => validatePatch(makePatch([{ layer: 0, rows: [1, 2], values: [0, 0, 0] }]))), /not a positive multiple of 2 rows/);
  assert.match(problems(() => validatePatch(makePatch([{ layer: 0, rows: [1], values: [NaN, 0] }]))), /delta value #0 is NaN/);
  assert.match(problems(() => validatePatch(makePatch([{ layer: 0, rows: [1], values: [Infinity] }]))), /finite numbers only/);
  assert.match(problems(() => validatePatch(makePatch([{ layer: 1, rows: [1], values: [0, 0] }, { layer: 1, rows: [2], values: [0, 0] }]))), /layer 1 appears twice/);
  assert.match(problems(() => validatePatch(makePatch([{ layer: 0, rows: [1], values: [0, 0] }, { layer: 1, rows: [2], values: [0, 0, 0] }]))), /expected rows × d = 1 × 2/, 'layers must agree on d');
  const bad = { ...ok, method: 'adam', mode: 'x', scores: { effectiveness: 'high' }, stats: {}, failureIds: [1], createdAt: 'never' } as unknown as Patch;
  const text = problems(() => validatePatch(bad));
  for (const needle of ['"method" must be one of star, mint, sgd', '"mode" must be one of iter, batch', '"scores"', '"stats"', '"failureIds"', '"createdAt"']) {
    assert.ok(text.includes(needle), `missing ${needle}`);
  }
});

test('patchFromJson reports malformed JSON and bad deltas', () => {
  assert.match(problems(() => patchFromJson('{oops')), /not valid JSON/);
  assert.match(problems(() => patchFromJson('[]')), /must be a JSON object/);
  const json = patchToJson(makePatch([{ layer: 0, rows: [1], values: [1, 2] }]));
  assert.match(problems(() => patchFromJson({ ...json, layers: [{ layer: 0, rows: [1], deltas: [1, 2] }] })), /"deltas" must be a base64 string/);
  assert.match(problems(() => patchFromJson({ ...json, layers: [{ layer: 0, rows: [1], deltas: 'AAA=' }] })), /not a whole number of float32/);
  assert.match(problems(() => patchFromJson({ ...json, layers: 'x' })), /"layers" must be an array/);
});

test('a patch holds at most MAX_PATCH_PARAMS values: more is refused, and from JSON before decoding', () => {
  const d = 64;
  const sized = (rows: number): Patch => ({ ...makePatch([]), layers: [{ layer: 3, rows: Array.from({ length: rows }, (_, i) => i), deltas: new Float32Array(rows * d) }] });
  assert.doesNotThrow(() => validatePatch(sized(MAX_PATCH_PARAMS / d), d));
  assert.match(problems(() => validatePatch(sized(MAX_PATCH_PARAMS / d + 1), d)), /a patch of 8,388,672 delta values is more than the 8,388,608 one patch may hold/);
  assert.equal(base64Chars(3), encodeFloat32Base64(new Float32Array(3)).length);
  const json = patchToJson(makePatch([{ layer: 0, rows: [1], values: [1, 2] }]));
  // Not base64 at all: refused on its length, so it was never decoded.
  const huge = { ...json, layers: [{ layer: 0, rows: [1], deltas: '!'.repeat(base64Chars(MAX_PATCH_PARAMS) + 8) }] };
  assert.match(problems(() => patchFromJson(huge)), /is more than the 8,388,608 one patch may hold/);
});

test('a patch for another model is refused with the message the user needs', () => {
  const p = makePatch([{ layer: 0, rows: [1], values: [1, 2] }], 'p1', OTHER);
  assert.throws(() => checkPatchForModel(p, { fingerprint: FP, hiddenSize: 2 }), (e: unknown) => {
    assert.ok(e instanceof PatchMismatchError);
    assert.equal(e.message, 'this patch was made for model fedcba98…, the loaded model is 01234567…: load that model or discard the patch');
    return true;
  });
  const q = makePatch([{ layer: 3, rows: [1, 40], values: [1, 2, 3, 4] }]);
  assert.doesNotThrow(() => checkPatchForModel(q, { fingerprint: FP, hiddenSize: 2, numLayers: 4, intermediateSize: 41 }));
  assert.match(problems(() => checkPatchForModel(q, { fingerprint: FP, hiddenSize: 2, numLayers: 3 })), /layer 3 does not exist: the model has 3 layers/);
  assert.match(problems(() => checkPatchForModel(q, { fingerprint: FP, hiddenSize: 2, intermediateSize: 40 })), /neuron 40 does not exist/);
  assert.match(problems(() => checkPatchForModel(q, { fingerprint: FP, hiddenSize: 4 })), /expected rows × d = 2 × 4/);
});

test('combinePatches sums deltas of the same (layer, row) and unions rows in order', () => {
  const d = 3;
  const a = makePatch([
    { layer: 2, rows: [1, 4], values: [1, 2, 3, 10, 20, 30] },
    { layer: 0, rows: [7], values: [0.5, 0.5, 0.5] },
  ], 'a');
  const b = makePatch([{ layer: 2, rows: [0, 4], values: [-1, -1, -1, 1, 1, 1] }], 'b');
  const c = combinePatches([a, b], d);
  assert.deepEqual([...c.keys()], [0, 2]);
  assert.deepEqual(c.get(2)!.rows, [0, 1, 4]);
  assert.deepEqual([...c.get(2)!.deltas], [-1, -1, -1, 1, 2, 3, 11, 21, 31]);
  assert.deepEqual(c.get(0)!.rows, [7]);
  assert.deepEqual([...c.get(0)!.deltas], [0.5, 0.5, 0.5]);
  assert.equal(combinePatches([], d).size, 0);
  assert.throws(() => combinePatches([a], 2), InvalidPatchError);
  assert.throws(() => combinePatches([a], 0), RangeError);
  // Inputs are not modified.
  assert.deepEqual([...a.layers[0]!.deltas], [1, 2, 3, 10, 20, 30]);
});

test('negatePatch undoes a patch when stacked on it', () => {
  const p = makePatch([{ layer: 1, rows: [2, 3], values: [1.5, -2, 0.25, 4] }]);
  const n = negatePatch(p);
  assert.equal(n.id, 'p1-negated');
  assert.equal(negatePatch(p, 'undo-1').id, 'undo-1');
  assert.deepEqual([...n.layers[0]!.deltas], [-1.5, 2, -0.25, -4]);
  assert.deepEqual(n.layers[0]!.rows, [2, 3]);
  assert.notEqual(n.layers[0]!.rows, p.layers[0]!.rows);
  const sum = combinePatches([p, n], 2).get(1)!;
  assert.deepEqual([...sum.deltas].map(Math.abs), [0, 0, 0, 0]);
  assert.deepEqual([...p.layers[0]!.deltas], [1.5, -2, 0.25, 4], 'the original is untouched');
});
