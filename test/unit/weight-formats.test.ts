// What `starRepair.weights: auto` resolves to (runtime/weight-formats.ts): int8 on the providers
// the quantised graphs are tested on, for models big enough to notice; fp32 for the embedded model
// and on the other GPU providers; explicit settings are themselves. fp32MatrixBytes is checked
// against the matrices of every fixture checkpoint, counted independently from its weights.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, loadModelFolder, parseConfig } from '../../src/model';
import { AUTO_INT8_MIN_FP32_BYTES, WEIGHT_FORMATS, fp32MatrixBytes, resolveWeightFormat } from '../../src/runtime/weight-formats';

const ROOT = join(__dirname, '..', '..');
const FIXTURES = join(__dirname, '..', 'fixtures', 'models');
const config05b = parseConfig(JSON.parse(readFileSync(join(ROOT, 'bench', 'configs', 'qwen2.5-coder-0.5b.json'), 'utf8')));
const tiny = loadConfig(join(ROOT, 'models', 'tiny-coder'));

test('fp32MatrixBytes counts the embedding, every linear map and an untied head of each fixture', () => {
  for (const name of ['llama', 'qwen2', 'mistral', 'gpt2', 'gpt-bigcode', 'llama-tied-hd']) {
    const f = loadModelFolder(join(FIXTURES, name));
    const w = f.weights;
    let values = w.embed.length + (w.lmHead === w.embed ? 0 : w.lmHead.length);
    for (const l of w.layers) for (const lin of [l.q, l.k, l.v, l.o, l.gate, l.up, l.down]) values += lin ? lin.weight.length : 0;
    assert.equal(fp32MatrixBytes(f.config), 4 * values, name);
  }
});

test('auto: int8 for a 0.5B model on cpu, webgpu and auto; fp32 on cuda, dml and coreml', () => {
  assert.ok(Math.abs(fp32MatrixBytes(config05b) - 1.976e9) < 0.01e9);
  for (const p of ['cpu', 'webgpu', 'auto']) assert.equal(resolveWeightFormat('auto', p, config05b), 'int8', p);
  for (const p of ['cuda', 'dml', 'coreml']) assert.equal(resolveWeightFormat('auto', p, config05b), 'fp32', p);
});

test('auto: the embedded model stays fp32 (below the threshold) on every provider', () => {
  assert.ok(fp32MatrixBytes(tiny) < AUTO_INT8_MIN_FP32_BYTES);
  for (const p of ['cpu', 'webgpu', 'auto', 'cuda']) assert.equal(resolveWeightFormat('auto', p, tiny), 'fp32', p);
});

test('an explicit format is itself on every provider and every size', () => {
  for (const f of WEIGHT_FORMATS) {
    for (const p of ['cpu', 'webgpu', 'cuda']) {
      assert.equal(resolveWeightFormat(f, p, tiny), f);
      assert.equal(resolveWeightFormat(f, p, config05b), f);
    }
  }
});
