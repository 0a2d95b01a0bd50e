// The streaming quantised load (runtime/quantised-weights.ts loadQuantisedModelFolder, issue 16):
// a model folder loaded straight into int8/int4 a layer at a time equals
// quantiseModel(loadModelFolder(…)) exactly — codes, scales, zero points, float vectors and their
// order — for Llama, Mistral, Qwen2, GPT-2, GPTBigCode (multi-query and per-head fused q/k/v),
// tied and untied heads, F32/F16/BF16 and sharded checkpoints; the folder's fingerprint, dtype and
// parameter count are loadModelFolder's; a broken folder gets loadModelFolder's error; with a
// valid cache only the float vectors are read from the checkpoint (every read is heard through
// onRead); the repair engine's weights of a quantised model are dequantiseMatrix's Ŵ, and the
// neuron explanation and semantic basis over a head read block by block match the whole head's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ModelError, isIgnoredTensor, loadConfig, loadModelFolder, openModelFolder, planTensors, readWeightFolder, writeSafetensors, type HostTensor,
} from '../../src/model';
import { randomCheckpointTensors } from '../../src/model/synthetic';
import { dequantiseMatrix, dequantiseColumn, dequantiseRows } from '../../src/model/quantise';
import { lmHeadName } from '../../src/graph/quantised';
import { loadQuantisedModelFolder, quantiseModel, type QuantisedModel } from '../../src/runtime/quantised-weights';
import { explainNeuronDelta } from '../../src/repair/explain';
import { canonicalRepairWeights, explainDelta, quantisedRepairWeights, type RepairWeights } from '../../src/repair/repair-weights';
import { RepairModel } from '../../src/repair/engine';
import { ModelRuntime } from '../../src/runtime/runtime';

const FIXTURES = join(__dirname, '..', 'fixtures', 'models');
const FORMATS = ['int8', 'int4'] as const;

function sameModel(got: QuantisedModel, want: QuantisedModel, what: string): void {
  assert.deepEqual([...got.matrices.keys()], [...want.matrices.keys()], `${what}: matrix names and order`);
  for (const [name, m] of want.matrices) {
    const o = got.matrices.get(name)!;
    assert.deepEqual([o.n, o.k, o.bits, o.blockSize, o.kBlocks], [m.n, m.k, m.bits, m.blockSize, m.kBlocks], `${what}: ${name} sizes`);
    assert.ok(Buffer.from(o.codes).equals(Buffer.from(m.codes)), `${what}: ${name} codes`);
    assert.deepEqual(o.scales, m.scales, `${what}: ${name} scales`);
    assert.ok(Buffer.from(o.zeroPoints).equals(Buffer.from(m.zeroPoints)), `${what}: ${name} zero points`);
  }
  assert.deepEqual([...got.floats.keys()], [...want.floats.keys()], `${what}: float names and order`);
  for (const [name, f] of want.floats) assert.deepEqual(got.floats.get(name), f, `${what}: ${name}`);
  assert.deepEqual([got.format, got.spec], [want.format, want.spec]);
}

/** A copy of fixture `name` with its tensors rewritten by `edit` (config and tokenizer copied as they are, or `config` edited). */
function variant(name: string, edit: (t: Map<string, HostTensor>) => void, options: { dtype?: 'F32' | 'F16' | 'BF16'; config?: (c: Record<string, unknown>) => void } = {}): string {
  const src = join(FIXTURES, name);
  const dir = mkdtempSync(join(tmpdir(), `qload-${name}-`));
  for (const f of readdirSync(src)) if (f.endsWith('.json') && !f.startsWith('reference')) copyFileSync(join(src, f), join(dir, f));
  if (options.config) {
    const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    options.config(c);
    writeFileSync(join(dir, 'config.json'), JSON.stringify(c));
  }
  const tensors = readWeightFolder(src).tensors;
  edit(tensors);
  writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' }, options.dtype ?? 'F32');
  return dir;
}

/** GPTBigCode without multi-query (q/k/v fused per head), random weights, BF16. */
function bigCodePerHead(): string {
  const dir = variant('gpt-bigcode', () => undefined, { config: (c) => { c.multi_query = false; } });
  const config = loadConfig(dir);
  assert.equal(config.kvHeads, config.heads);
  writeSafetensors(join(dir, 'model.safetensors'), randomCheckpointTensors(config, 3), { format: 'pt' }, 'BF16');
  return dir;
}

const folders: [string, string][] = [
  ...['llama', 'llama-bf16', 'llama-f16', 'llama-sharded', 'llama-tied-hd', 'mistral', 'qwen2', 'gpt2', 'gpt-bigcode'].map((n): [string, string] => [n, join(FIXTURES, n)]),
  ['gpt2 in BF16', variant('gpt2', () => undefined, { dtype: 'BF16' })],
  ['gpt-bigcode per-head q/k/v, BF16', bigCodePerHead()],
];

for (const [name, dir] of folders) {
  test(`streamed quantised load of ${name} equals quantiseModel(loadModelFolder) exactly, int8 and int4`, () => {
    const full = loadModelFolder(dir);
    for (const format of FORMATS) {
      const got = loadQuantisedModelFolder(dir, format);
      assert.equal(got.source, 'quantised');
      sameModel(got.model, quantiseModel(full.config, full.weights, format), `${name} ${format}`);
      assert.deepEqual(got.folder.config, full.config);
      for (const key of ['dir', 'name', 'fingerprint', 'dtype', 'params'] as const) assert.equal(got.folder[key], full[key], `${name}: ${key}`);
      assert.equal(got.folder.tokenizer.vocabSize, full.tokenizer.vocabSize);
    }
  });
}

test('a cache hit reads only the float vectors from the checkpoint; a miss reads every tensor once', () => {
  for (const name of ['qwen2', 'gpt2', 'llama-bf16']) {
    const dir = join(FIXTURES, name);
    const cacheDir = mkdtempSync(join(tmpdir(), 'qload-cache-'));
    const { checkpoint } = openModelFolder(dir);
    const all = planTensors(checkpoint.plan);
    checkpoint.close();
    const vectors = all.filter((t) => !t.matrix).map((t) => t.name).sort();
    for (const format of FORMATS) {
      const missReads: string[] = [];
      const miss = loadQuantisedModelFolder(dir, format, { cacheDir, onRead: (n) => missReads.push(n) });
      assert.equal(miss.source, 'quantised');
      assert.match(miss.reason ?? '', /no cached weights yet/);
      // Rows of the embedding (and an untied head) come in chunks: each name at least once, no other name.
      assert.deepEqual([...new Set(missReads)].sort(), all.map((t) => t.name).sort(), `${name} ${format}: a miss reads the whole checkpoint`);
      const hitReads: string[] = [];
      const hit = loadQuantisedModelFolder(dir, format, { cacheDir, onRead: (n) => hitReads.push(n) });
      assert.equal(hit.source, 'cache');
      assert.equal(hit.reason, undefined);
      assert.deepEqual(hitReads.sort(), vectors, `${name} ${format}: a hit reads each float vector once and no matrix`);
      sameModel(hit.model, miss.model, `${name} ${format} cache`);
    }
  }
});

test('a broken folder gets the same ModelError from the streamed load as from loadModelFolder', () => {
  const config = loadConfig(join(FIXTURES, 'llama'));
  const broken: [string, string][] = [
    ['a tensor missing', variant('llama', (t) => t.delete('model.layers.1.mlp.up_proj.weight'))],
    ['a wrong shape', variant('llama', (t) => {
      const w = t.get('model.layers.0.mlp.gate_proj.weight')!;
      t.set('model.layers.0.mlp.gate_proj.weight', { shape: [w.shape[0]! - 1, w.shape[1]!], data: w.data.slice(w.shape[1]!) });
    })],
    ['an extra layer', variant('llama', (t) => t.set(`model.layers.${config.layers}.input_layernorm.weight`, { shape: [config.hidden], data: new Float32Array(config.hidden) }))],
    ['a NaN in a BF16 down projection', variant('llama', (t) => { t.get('model.layers.1.mlp.down_proj.weight')!.data[77] = NaN; }, { dtype: 'BF16' })],
    ['a hostile layer count (1e9)', variant('llama', () => {}, { config: (c) => { c.num_hidden_layers = 1e9; } })],
    ['an infinity in the embedding', variant('llama', (t) => { t.get('model.embed_tokens.weight')!.data[5 * config.hidden + 3] = Infinity; })],
  ];
  for (const [what, dir] of broken) {
    let want: ModelError | undefined;
    try {
      loadModelFolder(dir);
    } catch (e) {
      want = e as ModelError;
    }
    assert.ok(want instanceof ModelError, `${what}: loadModelFolder refuses it`);
    for (const format of FORMATS) {
      assert.throws(() => loadQuantisedModelFolder(dir, format), (e: unknown) => {
        assert.ok(e instanceof ModelError, `${what}: ${String(e)}`);
        assert.equal(e.code, want!.code, what);
        assert.equal(e.message, want!.message, what);
        return true;
      });
    }
  }
});

/** A weight source whose head is read in blocks of `rows` (as a large quantised head is). */
const inBlocks = (w: RepairWeights, rows: number): RepairWeights => ({ config: w.config, down: (l) => w.down(l), headRows: (f, c) => w.headRows(f, c), headBlockRows: rows });

for (const format of FORMATS) {
  for (const name of ['qwen2', 'llama']) {
    test(`the repair engine's weights of a ${format} ${name} are dequantiseMatrix's Ŵ; block-wise head reads match the whole head`, async () => {
      const { folder, model } = loadQuantisedModelFolder(join(FIXTURES, name), format);
      const cfg = folder.config;
      const w = quantisedRepairWeights(cfg, model);
      for (let l = 0; l < cfg.layers; l++) {
        const down = dequantiseMatrix(model.matrices.get(`l${l}.down.weight`)!);
        const p = w.down(l);
        for (let i = 0; i < cfg.intermediate; i++) {
          const col = Float64Array.from({ length: cfg.hidden }, (_, r) => down[r * cfg.intermediate + i]!);
          assert.deepEqual(p.row(i), col, `layer ${l} neuron ${i}`);
        }
      }
      const headMatrix = model.matrices.get(lmHeadName(cfg, model.spec))!;
      const head = dequantiseMatrix(headMatrix);
      assert.deepEqual(w.headRows(0, cfg.vocab), head);
      assert.deepEqual(w.headRows(7, 5), head.slice(7 * cfg.hidden, 12 * cfg.hidden));
      assert.deepEqual(dequantiseRows(headMatrix, 3, 2), head.slice(3 * cfg.hidden, 5 * cfg.hidden));
      assert.deepEqual(dequantiseColumn(headMatrix, 9), Float64Array.from({ length: cfg.vocab }, (_, r) => head[r * cfg.hidden + 9]!));

      const tokenText = (v: number) => `t${v}`;
      const delta = Float32Array.from({ length: cfg.hidden }, (_, j) => Math.sin(j + 1));
      for (const d of [delta, new Float32Array(cfg.hidden)]) { // a zero delta: every logit ties
        const whole = explainNeuronDelta(head, cfg.vocab, d, tokenText, 7);
        assert.deepEqual(explainDelta(w, d, tokenText, 7), whole);
        assert.deepEqual(explainDelta(inBlocks(w, 50), d, tokenText, 7), whole, 'in blocks of 50 rows');
      }

      // The semantic basis over the head read whole and in blocks: the same rows, G summed by block.
      const runtime = new ModelRuntime(cfg, model, { threads: 1 });
      const one = await new RepairModel(runtime, w).basis();
      const blocks = await new RepairModel(runtime, inBlocks(w, 64)).basis();
      for (const t of [0, 5, cfg.vocab - 1]) {
        const a = one.basisRow(t);
        const b = blocks.basisRow(t);
        const scale = Math.max(...a.map(Math.abs));
        for (let j = 0; j < a.length; j++) assert.ok(Math.abs(a[j]! - b[j]!) <= 1e-4 * scale, `token ${t}: ${a[j]} vs ${b[j]}`);
      }
      await runtime.release();
    });
  }
}

test('the engine\'s fp32 weights are views of the canonical weights', () => {
  const folder = loadModelFolder(join(FIXTURES, 'llama'));
  const w = canonicalRepairWeights(folder.config, folder.weights);
  assert.equal(w.headRows(0, folder.config.vocab).buffer, folder.weights.lmHead.buffer);
  assert.equal(w.headBlockRows, folder.config.vocab);
  const { intermediate: m, hidden: d } = folder.config;
  const down = folder.weights.layers[1]!.down.weight;
  assert.deepEqual(w.down(1).row(3), Float64Array.from({ length: d }, (_, r) => down[r * m + 3]!));
  assert.throws(() => w.down(folder.config.layers), RangeError);
  assert.throws(() => w.headRows(folder.config.vocab, 1), RangeError);
});

test('a tied checkpoint that also carries lm_head.weight: the copy is not read, the load equals loadModelFolder\'s', () => {
  const dir = variant('qwen2', (t) => t.set('lm_head.weight', { shape: [...t.get('model.embed_tokens.weight')!.shape], data: new Float32Array(t.get('model.embed_tokens.weight')!.data.length).fill(NaN) }));
  const config = loadConfig(dir);
  assert.ok(config.tiedEmbeddings && isIgnoredTensor(config, 'lm_head.weight'));
  const full = loadModelFolder(dir);
  for (const format of FORMATS) {
    const reads: string[] = [];
    const got = loadQuantisedModelFolder(dir, format, { onRead: (n) => reads.push(n) });
    assert.ok(!reads.includes('lm_head.weight'));
    sameModel(got.model, quantiseModel(full.config, full.weights, format), `tied qwen2 with a stray head, ${format}`);
  }
});
