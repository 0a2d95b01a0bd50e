// Export from a model that runs quantised (issue 16): it holds no fp32 copy, so the export reads
// the checkpoint again a layer at a time and folds the patch into the ORIGINAL weights — the file
// written is byte for byte the one the fp32 export writes (original + patch, not Ŵ + patch), for
// every fixture family and dtype, and from the worker; a folder changed on disk since loading is
// refused. The neuron explanation of a quantised worker reads its Ŵ head.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, loadModelFolder, readWeightFolder, writeSafetensors } from '../../src/model';
import { randomCheckpointTensors } from '../../src/model/synthetic';
import type { LayerPatch } from '../../src/runtime/runtime';
import { dequantiseMatrix } from '../../src/model/quantise';
import { lmHeadName } from '../../src/graph/quantised';
import { patchToJson, type Patch } from '../../src/repair/patch';
import { explainNeuronDelta } from '../../src/repair/explain';
import { ExportError, exportPatchedModel } from '../../src/repair/export';
import { loadQuantisedModelFolder } from '../../src/runtime/quantised-weights';
import { ModelHost } from '../../src/worker/host';

const FIXTURES = join(__dirname, '..', 'fixtures', 'models');

function copyFixture(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `qexport-${name}-`));
  for (const f of readdirSync(join(FIXTURES, name))) copyFileSync(join(FIXTURES, name, f), join(dir, f));
  return dir;
}

function patchFor(fingerprint: string, d: number, m: number, layers: number): Patch {
  return {
    id: 'p1', modelFingerprint: fingerprint, method: 'star', mode: 'batch', options: {}, failureIds: ['f'],
    createdAt: '2026-12-02T00:00:00.000Z',
    layers: [
      { layer: 0, rows: [0, 5], deltas: Float32Array.from({ length: 2 * d }, (_, i) => Math.cos(i) * 0.2) },
      { layer: layers - 1, rows: [m - 1], deltas: Float32Array.from({ length: d }, (_, i) => (i % 3) * 0.1) },
    ],
    scores: { effectiveness: null, generalisation: null, specificity: null },
    stats: { ms: 1, peakRssMb: 1, neurons: 3, params: 3 * d },
  };
}

function layerPatch(d: number, m: number, layers: number): Map<number, LayerPatch> {
  const p = patchFor('0'.repeat(64), d, m, layers);
  return new Map(p.layers.map((l) => [l.layer, { rows: l.rows, deltas: l.deltas }]));
}

/** GPT-2 with unprefixed names (as old checkpoints have them) and GPTBigCode with per-head fused q/k/v, in BF16. */
function oddFolders(): [string, string][] {
  const gpt2 = copyFixture('gpt2');
  const tensors = readWeightFolder(gpt2).tensors;
  writeSafetensors(join(gpt2, 'model.safetensors'), new Map([...tensors].map(([n, t]) => [n.replace(/^transformer\./, ''), t])), { format: 'pt' }, 'BF16');
  const big = copyFixture('gpt-bigcode');
  const c = JSON.parse(readFileSync(join(big, 'config.json'), 'utf8')) as Record<string, unknown>;
  c.multi_query = false;
  writeFileSync(join(big, 'config.json'), JSON.stringify(c));
  writeSafetensors(join(big, 'model.safetensors'), randomCheckpointTensors(loadConfig(big), 4), { format: 'pt' }, 'BF16');
  return [['gpt2, unprefixed, BF16', gpt2], ['gpt-bigcode per head, BF16', big]];
}

test('export read again from the checkpoint layer by layer writes the fp32 export\'s bytes', () => {
  const names = ['llama', 'llama-bf16', 'llama-f16', 'llama-sharded', 'llama-tied-hd', 'mistral', 'qwen2', 'gpt2', 'gpt-bigcode'];
  for (const [what, dir] of [...names.map((n): [string, string] => [n, join(FIXTURES, n)]), ...oddFolders()]) {
    const full = loadModelFolder(dir);
    const patch = layerPatch(full.config.hidden, full.config.intermediate, full.config.layers);
    const out = mkdtempSync(join(tmpdir(), 'qexport-out-'));
    exportPatchedModel(full, patch, join(out, 'fp32'));
    const info = { dir: full.dir, config: full.config, fingerprint: full.fingerprint };
    exportPatchedModel(info, patch, join(out, 'streamed'));
    const a = readFileSync(join(out, 'fp32', 'model.safetensors'));
    const b = readFileSync(join(out, 'streamed', 'model.safetensors'));
    assert.ok(a.equals(b), `${what}: the same bytes`);
    assert.notEqual(loadModelFolder(join(out, 'streamed')).fingerprint, full.fingerprint, `${what}: the patch is in`);
  }
});

for (const name of ['llama-bf16', 'gpt2']) {
  test(`export from an int8 worker (${name}) writes the fp32 worker's file: original weights + patch`, async () => {
    const dir = copyFixture(name);
    const full = loadModelFolder(dir);
    const { hidden: d, intermediate: m, layers } = full.config;
    const patch = patchToJson(patchFor(full.fingerprint, d, m, layers));
    const out = mkdtempSync(join(tmpdir(), 'qexport-out-'));
    const written: Buffer[] = [];
    for (const weights of ['fp32', 'int8'] as const) {
      const host = new ModelHost();
      try {
        await host.load({ modelDir: dir, provider: 'cpu', threads: 1, weights });
        const r = host.export({ dir: join(out, weights), patches: [patch] });
        assert.equal(r.neurons, 3);
        written.push(readFileSync(join(out, weights, 'model.safetensors')));
      } finally {
        await host.release();
      }
    }
    assert.ok(written[0]!.equals(written[1]!), 'the same bytes from an fp32 and an int8 worker');
  });
}

test('an int8 worker explains a neuron through its quantised head', async () => {
  const dir = join(FIXTURES, 'qwen2');
  const { folder, model } = loadQuantisedModelFolder(dir, 'int8');
  const head = dequantiseMatrix(model.matrices.get(lmHeadName(folder.config, model.spec))!);
  const delta = Array.from({ length: folder.config.hidden }, (_, j) => Math.cos(j));
  const host = new ModelHost();
  try {
    await host.load({ modelDir: dir, provider: 'cpu', threads: 1, weights: 'int8' });
    const got = host.neuronDetails({ layer: 0, neuron: 1, delta });
    assert.deepEqual(got, explainNeuronDelta(head, folder.config.vocab, delta, (v) => folder.tokenizer.tokenText(v)));
  } finally {
    await host.release();
  }
});

test('export without fp32 weights refuses a folder that changed since it was loaded', () => {
  const dir = copyFixture('llama');
  const { folder } = loadQuantisedModelFolder(dir, 'int8');
  const file = join(dir, 'model.safetensors');
  const bytes = readFileSync(file);
  bytes[bytes.length - 1] ^= 0x01;
  writeFileSync(file, bytes);
  const out = join(mkdtempSync(join(tmpdir(), 'qexport-out-')), 'model');
  assert.throws(() => exportPatchedModel(folder, new Map(), out), (e: unknown) => e instanceof ExportError && /changed on disk since it was loaded/.test(e.message));
  assert.deepEqual(readdirSync(join(out, '..')), [], 'nothing left behind');
});
