// The quantised-weight cache (src/runtime/quant-cache.ts, quantiseModelCached): the first open
// quantises and writes the file atomically (no temp file left), the second reads it back bit for
// bit; a truncated, corrupted (checksum), foreign-fingerprint or garbage file is not used — the
// model is quantised again, the reason is given, and the file is rewritten valid.
import { test } from 'node:test';
import { quantBlockSize } from '../../src/runtime/weight-formats';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, truncateSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canonicalWeights, isIgnoredTensor, loadConfig, readWeightFolder } from '../../src/model';
import { quantiseModel, quantiseModelCached, type QuantisedModel } from '../../src/runtime/quantised-weights';
import { quantCacheFile, readQuantCache } from '../../src/runtime/quant-cache';

const qwen = join(__dirname, '..', 'fixtures', 'models', 'qwen2');
const FP = 'ab'.repeat(32);

function load() {
  const config = loadConfig(qwen);
  const folder = readWeightFolder(qwen, { skip: (n) => isIgnoredTensor(config, n) });
  return { config, weights: canonicalWeights(config, folder.tensors) };
}

function sameMatrices(a: QuantisedModel, b: QuantisedModel): void {
  assert.deepEqual([...a.matrices.keys()], [...b.matrices.keys()]);
  for (const [name, m] of a.matrices) {
    const o = b.matrices.get(name)!;
    assert.deepEqual([o.n, o.k, o.bits, o.blockSize], [m.n, m.k, m.bits, m.blockSize]);
    assert.deepEqual(o.codes, m.codes, `${name} codes`);
    assert.deepEqual(o.scales, m.scales, `${name} scales`);
    assert.deepEqual(o.zeroPoints, m.zeroPoints, `${name} zero points`);
  }
}

for (const format of ['int8', 'int4'] as const) {
  test(`weight cache ${format}: written atomically, read back exactly, damaged files requantised`, () => {
    const { config, weights } = load();
    const dir = mkdtempSync(join(tmpdir(), 'qcache-'));
    const fresh = quantiseModel(config, weights, format);
    const first = quantiseModelCached(config, weights, format, { dir, fingerprint: FP });
    assert.equal(first.source, 'quantised');
    assert.match(first.reason ?? '', /no cached weights yet/);
    assert.deepEqual(readdirSync(dir), [`${FP}-${format}-b${quantBlockSize(format)}.qweights`], 'one file, no temp file left');
    const second = quantiseModelCached(config, weights, format, { dir, fingerprint: FP });
    assert.equal(second.source, 'cache');
    sameMatrices(fresh, second.model);
    assert.deepEqual([...second.model.floats.keys()], [...fresh.floats.keys()]);

    const file = quantCacheFile(dir, FP, format, quantBlockSize(format));
    const good = readFileSync(file);
    const damage: [string, () => void, RegExp][] = [
      ['truncated', () => truncateSync(file, statSync(file).size - 5), /truncated/],
      ['a flipped byte', () => { const b = Buffer.from(good); b[b.length - 100] ^= 0xff; writeFileSync(file, b); }, /checksum/],
      ['garbage', () => writeFileSync(file, 'not a cache at all'), /damaged header|truncated/],
      ['an extra byte', () => writeFileSync(file, Buffer.concat([good, Buffer.from([0])])), /too many/],
    ];
    for (const [what, spoil, reason] of damage) {
      writeFileSync(file, good);
      spoil();
      const r = quantiseModelCached(config, weights, format, { dir, fingerprint: FP });
      assert.equal(r.source, 'quantised', what);
      assert.match(r.reason ?? '', reason, what);
      sameMatrices(fresh, r.model);
      assert.ok('matrices' in readQuantCache(dir, FP, format, { bits: format === 'int8' ? 8 : 4, blockSize: quantBlockSize(format) }), `${what}: the file is rewritten valid`);
    }
    // Another model's file under this name is not used.
    const other = 'cd'.repeat(32);
    writeFileSync(quantCacheFile(dir, other, format, quantBlockSize(format)), good);
    assert.match(('reason' in readQuantCache(dir, other, format, { bits: 8, blockSize: quantBlockSize(format) }) ? (readQuantCache(dir, other, format, { bits: 8, blockSize: quantBlockSize(format) }) as { reason: string }).reason : ''), /another model/);
  });
}

test('weight cache: a fingerprint that is not hex is refused', () => {
  assert.throws(() => quantCacheFile('/tmp', '../etc', 'int8', 32), /hex fingerprint/);
});
