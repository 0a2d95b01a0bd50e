// Export round-trip: a patched checkpoint written to disk loads back through the normal loading
// path with logits equal to the patched runtime's; the exporter never leaves a half-written folder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModelFolder } from '../../src/model';
import { ModelRuntime, type LayerPatch } from '../../src/runtime/runtime';
import { exportPatchedModel, ExportError } from '../../src/repair/export';

const FIXTURES = join(__dirname, '..', 'fixtures', 'models');

for (const name of ['llama', 'gpt2', 'gpt-bigcode', 'qwen2']) {
  test(`export of a patched ${name} checkpoint loads back with the patched logits (≤ 1e-5)`, async () => {
    const folder = loadModelFolder(join(FIXTURES, name));
    const { hidden: d, intermediate: m, layers } = folder.config;
    const patch = new Map<number, LayerPatch>([
      [0, { rows: [0, 5], deltas: Float32Array.from({ length: 2 * d }, (_, i) => Math.cos(i) * 0.2) }],
      [layers - 1, { rows: [m - 1], deltas: Float32Array.from({ length: d }, (_, i) => (i % 3) * 0.1) }],
    ]);
    const ids = folder.tokenizer.encode('def f(n):\n    return n + 1\n');
    const targets = [...ids.slice(1), 0];
    const mask = ids.map(() => 1);
    const patched = new ModelRuntime(folder.config, folder.weights);
    patched.setPatch(patch);
    const expected = await patched.score(ids, targets, mask);
    const out = join(mkdtempSync(join(tmpdir(), 'star-export-')), 'patched');
    exportPatchedModel(folder, patch, out, { patches: ['test'] });
    const back = loadModelFolder(out);
    assert.notEqual(back.fingerprint, folder.fingerprint, 'a patched model has a new fingerprint');
    const got = await new ModelRuntime(back.config, back.weights).score(ids, targets, mask);
    let err = 0;
    for (let i = 0; i < got.logits.length; i++) err = Math.max(err, Math.abs(got.logits[i] - expected.logits[i]));
    assert.ok(err <= 1e-5, `max abs logit difference ${err}`);
    assert.ok(existsSync(join(out, 'star-repair.json')));
  });
}

test('export refuses a non-empty destination and the source folder, leaving nothing behind', () => {
  const folder = loadModelFolder(join(FIXTURES, 'llama'));
  const root = mkdtempSync(join(tmpdir(), 'star-export-'));
  const busy = join(root, 'busy');
  mkdirSync(busy);
  writeFileSync(join(busy, 'keep.txt'), 'mine');
  assert.throws(() => exportPatchedModel(folder, new Map(), busy), ExportError);
  assert.throws(() => exportPatchedModel(folder, new Map(), folder.dir), ExportError);
  assert.deepEqual(readdirSync(root), ['busy']);
  assert.deepEqual(readdirSync(busy), ['keep.txt']);
});
