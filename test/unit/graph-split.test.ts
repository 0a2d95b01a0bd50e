// Weights above a tensor-size limit are split into row blocks in the graph (issue 14, part 3): the
// embedding Gather runs per block, every linear layer and the LM head (tied or not) are a Concat of
// per-block products along the output axis. These tests need no GPU: on the CPU, in float64, the
// split graphs must give the unsplit graphs' logits, loss, z and dL/dh (and decoding's logits and
// KV cache) up to summation order, on every family.
import { test } from 'node:test';
import { protoFields, protoText } from '../helpers/onnx-fields';
import { compareArrays } from '../../src/runtime/provider-check';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { buildDecodeGraph, buildProbeGraph, MAX_JOIN, weightBlockName, weightBlocks, weightInputs } from '../../src/graph/architectures/decoder';
import { loadModelFolder, type ModelFolder } from '../../src/model';
import { tensorByteLimit, WEBGPU_BINDING_LIMIT, ORT_INITIALIZER_LIMIT } from '../../src/runtime/providers';
import { ModelRuntime } from '../../src/runtime/runtime';

const FIXTURES = join(__dirname, '..', 'fixtures', 'models');

/** Graph inputs (GraphProto field 11, ValueInfoProto name = field 1) and initializer names (field 5, name = 8) of a ModelProto. */
function graphNames(model: Uint8Array): { inputs: string[]; initializers: string[]; nodes: { opType: string; inputs: string[]; outputs: string[] }[] } {
  const fields = protoFields;
  const text = protoText;
  const graph = fields(fields(model).find(([f]) => f === 7)![1]!);
  const named = (field: number, nameField: number) => graph.filter(([f]) => f === field).map(([, b]) => text(fields(b!).find(([f]) => f === nameField)![1]!));
  const nodes = graph
    .filter(([f]) => f === 1)
    .map(([, node]) => {
      const nf = fields(node!);
      return { opType: text(nf.find(([f]) => f === 4)![1]!), inputs: nf.filter(([f]) => f === 1).map(([, b]) => text(b!)), outputs: nf.filter(([f]) => f === 2).map(([, b]) => text(b!)) };
    });
  return { inputs: named(11, 1), initializers: named(5, 8), nodes };
}

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  const { abs, scale } = compareArrays(a, b);
  return abs / Math.max(scale, 1e-300);
}

test('weightBlocks: no limit keeps every weight whole, under its own name', () => {
  const cfg = loadModelFolder(join(FIXTURES, 'qwen2')).config;
  const blocks = weightBlocks(cfg, null);
  assert.deepEqual(
    blocks.map((b) => [b.name, b.shape]),
    weightInputs(cfg).map((wi) => [wi.name, wi.shape]),
  );
  assert.ok(blocks.every((b) => b.rowStart === 0 && b.rows === b.shape[0]));
});

test('weightBlocks: a matrix over the limit becomes contiguous row blocks under it, of one size but the last', () => {
  const cfg = loadModelFolder(join(FIXTURES, 'llama')).config;
  const limit = 1000; // bytes; a float32 row of the embedding is 4·d
  for (const floatType of ['float32', 'float64'] as const) {
    const bytes = floatType === 'float64' ? 8 : 4;
    const blocks = weightBlocks(cfg, limit, floatType);
    for (const wi of weightInputs(cfg)) {
      const mine = blocks.filter((b) => b.weight === wi.name);
      const size = wi.shape.reduce((a, b) => a * b, bytes);
      if (size <= limit) {
        assert.deepEqual(mine.map((b) => b.name), [wi.name]);
        continue;
      }
      assert.ok(mine.length > 1, `${wi.name} was not split`);
      let next = 0;
      mine.forEach((b, k) => {
        assert.equal(b.name, weightBlockName(wi.name, k));
        assert.equal(b.rowStart, next);
        assert.deepEqual(b.shape, [b.rows, wi.shape[1]]);
        assert.ok(b.rows * wi.shape[1] * bytes <= limit, `${b.name} is over the limit`);
        if (k < mine.length - 1) assert.equal(b.rows, mine[0].rows);
        next += b.rows;
      });
      assert.equal(next, wi.shape[0]);
    }
    const embed = blocks.filter((b) => b.weight === 'embed');
    assert.ok(embed.length >= 2);
  }
});

test('weightBlocks: a limit below one row is an error, not a silent unsplit weight', () => {
  const cfg = loadModelFolder(join(FIXTURES, 'llama')).config;
  assert.throws(() => weightBlocks(cfg, 4 * cfg.hidden - 4), /below one row/);
  assert.throws(() => weightBlocks(cfg, 0), /positive/);
});

test('the split limit comes from the provider: none on the CPU, WebGPU’s binding limit, onnxruntime’s initializer limit elsewhere', () => {
  assert.equal(tensorByteLimit('cpu', 'inputs'), null);
  assert.equal(tensorByteLimit('webgpu', 'initializers'), WEBGPU_BINDING_LIMIT);
  assert.equal(tensorByteLimit('webgpu', 'inputs'), WEBGPU_BINDING_LIMIT);
  assert.equal(WEBGPU_BINDING_LIMIT, 128 * 2 ** 20);
  assert.equal(tensorByteLimit('cuda', 'initializers'), ORT_INITIALIZER_LIMIT);
  assert.equal(tensorByteLimit('cpu', 'initializers'), ORT_INITIALIZER_LIMIT);
  assert.equal(ORT_INITIALIZER_LIMIT, 2 ** 31);
  // A 151936×1536 float32 embedding (933 MB) is over WebGPU's limit: 7 blocks of 21 705 rows.
  const big = { ...loadModelFolder(join(FIXTURES, 'qwen2')).config, vocab: 151936, hidden: 1536 };
  const embed = weightBlocks(big, WEBGPU_BINDING_LIMIT).filter((b) => b.weight === 'embed');
  assert.equal(embed.length, 7);
  assert.ok(embed.every((b) => b.rows * 1536 * 4 <= WEBGPU_BINDING_LIMIT));
});

test('ModelRuntime builds for its provider’s limit unless told one', () => {
  const folder = loadModelFolder(join(FIXTURES, 'qwen2'));
  const limit = (options: ConstructorParameters<typeof ModelRuntime>[2]) => new ModelRuntime(folder.config, folder.weights, options).maxTensorBytes;
  assert.equal(limit({ provider: 'cpu' }), null);
  assert.equal(limit({ provider: 'cpu', weights: 'initializers' }), ORT_INITIALIZER_LIMIT);
  assert.equal(limit({ provider: 'webgpu' }), WEBGPU_BINDING_LIMIT);
  assert.equal(limit({ provider: 'webgpu', maxTensorBytes: 4096 }), 4096);
  assert.equal(limit({ provider: 'webgpu', maxTensorBytes: null }), null);
});

test('split graphs read the blocks: the embedding Gather and the LM head never see a whole matrix over the limit', () => {
  for (const name of ['qwen2', 'llama', 'gpt2']) {
    const cfg = loadModelFolder(join(FIXTURES, name)).config;
    const limit = 2048;
    const blocks = weightBlocks(cfg, limit);
    assert.ok(blocks.filter((b) => b.weight === 'embed').length > MAX_JOIN, 'too few blocks to need a tree of Concats');
    const split = new Set(blocks.filter((b) => b.name !== b.weight).map((b) => b.weight));
    assert.ok(split.has('embed'), `${name}: embed not split at ${limit} bytes`);
    for (const [kind, model] of [
      ['decode', buildDecodeGraph(cfg, 'float32', 'inputs', { maxTensorBytes: limit })],
      ['probe', buildProbeGraph(cfg, { maxTensorBytes: limit })],
      ['score', buildProbeGraph(cfg, { maxTensorBytes: limit, backward: false })],
      ['decode (initializers)', buildDecodeGraph(cfg, 'float32', 'initializers', { maxTensorBytes: limit })],
    ] as const) {
      const g = graphNames(model);
      const weights = new Set([...g.inputs, ...g.initializers]);
      for (const b of blocks) assert.ok(weights.has(b.name), `${name} ${kind}: no weight ${b.name}`);
      for (const w of split) assert.ok(!weights.has(w), `${name} ${kind}: the whole ${w} is still there`);
      const gathers = g.nodes.filter((n) => n.opType === 'Gather' && n.inputs[0].startsWith('embed'));
      assert.equal(gathers.length, blocks.filter((b) => b.weight === 'embed').length, `${name} ${kind}: one Gather per embedding block`);
      // WebGPU binds every input and output of a node as a storage buffer, at most 8 per shader by
      // default (a Split of 17 blocks' gradients failed on lavapipe): blocks are joined in groups.
      for (const n of g.nodes) {
        if (n.opType === 'Concat') assert.ok(n.inputs.length <= MAX_JOIN, `${name} ${kind}: a Concat of ${n.inputs.length}`);
        if (n.opType === 'Split') assert.ok(n.outputs.length <= MAX_JOIN, `${name} ${kind}: a Split into ${n.outputs.length}`);
      }
    }
  }
});

const PROMPT_TARGETS = (folder: ModelFolder) => {
  const ids = folder.tokenizer.encode('def f(n):\n    return n + 1\n');
  return { ids, targets: [...ids.slice(1), 0], mask: ids.map((_, i) => (i >= 1 && i < ids.length - 1 ? 1 : 0)) };
};

// float64: the split and unsplit graphs differ only in summation order.
const EXACT = 1e-12;

for (const name of ['qwen2', 'llama', 'gpt2', 'gpt-bigcode']) {
  test(`${name}: a split graph gives the unsplit logits, loss, z and dL/dh on the CPU (float64), and the same decoding`, async () => {
    const folder = loadModelFolder(join(FIXTURES, name));
    const cfg = folder.config;
    // Small enough to split the embedding, the LM head and the MLP matrices into uneven blocks.
    const limit = 8 * cfg.hidden * 5 + 8;
    const whole = new ModelRuntime(cfg, folder.weights, { provider: 'cpu', floatType: 'float64' });
    const split = new ModelRuntime(cfg, folder.weights, { provider: 'cpu', floatType: 'float64', maxTensorBytes: limit });
    try {
      assert.equal(whole.maxTensorBytes, null);
      assert.equal(split.maxTensorBytes, limit);
      const { ids, targets, mask } = PROMPT_TARGETS(folder);
      const a = await split.probe(ids, targets, mask);
      const b = await whole.probe(ids, targets, mask);
      assert.ok(Math.abs(a.loss - b.loss) <= EXACT * Math.abs(b.loss), `loss ${a.loss} vs ${b.loss}`);
      assert.ok(relErr(a.logits, b.logits) <= EXACT, 'logits');
      for (let l = 0; l < cfg.layers; l++) {
        assert.ok(relErr(a.z[l], b.z[l]) <= EXACT, `z layer ${l}`);
        assert.ok(relErr(a.dh[l], b.dh[l]) <= EXACT, `dL/dh layer ${l}: ${relErr(a.dh[l], b.dh[l])}`);
      }
      const sa = await split.score(ids, targets, mask);
      assert.ok(relErr(sa.logits, b.logits) <= EXACT, 'score logits');
      let da = await split.decode(ids.slice(0, 5));
      let db = await whole.decode(ids.slice(0, 5));
      for (let step = 0; step < 3; step++) {
        assert.ok(relErr(da.logits, db.logits) <= EXACT, `decode logits, step ${step}`);
        const [ca, cb] = [await split.readCache(da.cache), await whole.readCache(db.cache)];
        for (let l = 0; l < cfg.layers; l++) assert.ok(relErr(ca.keys[l], cb.keys[l]) <= EXACT && relErr(ca.values[l], cb.values[l]) <= EXACT, `cache layer ${l}`);
        da = await split.decode([ids[5 + step]], da.cache);
        db = await whole.decode([ids[5 + step]], db.cache);
      }
    } finally {
      await whole.release();
      await split.release();
    }
  });
}
