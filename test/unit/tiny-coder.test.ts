// The shipped embedded model (models/tiny-coder) through the normal loading path: required shape
// and size, and the fingerprint, greedy completions and loss recorded at export time in
// test/fixtures/tiny-coder-expected.json (so an accidental change to the runtime or the weights
// is caught). Also the pieces of its evaluation tool (tools/eval-tiny-coder) on fixture models.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadModelFolder, parseSafetensorsHeader, type ModelFolder } from '../../src/model';
import { generate } from '../../src/runtime/generate';
import { embeddedModelDir, openModel } from '../../src/runtime/open';
import { ModelRuntime, type KvCache } from '../../src/runtime/runtime';
import { completeLineHealed, documentStart, lineHoles, moduleOf, sampleLines, scoreStream, spanHoles, tokenStream, type Doc } from '../../tools/eval-tiny-coder/measure';

const ROOT = join(__dirname, '..', '..');
const MODEL_DIR = join(ROOT, 'models', 'tiny-coder');
const EXPECTED_FILE = join(ROOT, 'test', 'fixtures', 'tiny-coder-expected.json');
const LLAMA_FIXTURE = join(ROOT, 'test', 'fixtures', 'models', 'llama');

const shippedSkip = existsSync(join(MODEL_DIR, 'config.json'))
  ? false
  : 'models/tiny-coder is not there yet (tools/train-tiny-coder exports it): the shipped-model checks are skipped';
const expectedSkip =
  shippedSkip ||
  (existsSync(EXPECTED_FILE)
    ? false
    : 'test/fixtures/tiny-coder-expected.json is not recorded yet: run `node --import tsx tools/eval-tiny-coder/record-expected.ts` once the final model is exported');

interface Expected {
  fingerprint: string;
  architecture: string;
  params: number;
  dtype: string;
  config: Record<string, number | boolean>;
  tokenizerVocab: number;
  completions: Array<{ prompt: string; maxTokens: number; tokens: number[]; text: string }>;
  score: { text: string; tokens: number; loss: number };
}

let shippedFolder: ModelFolder | undefined;
function shipped(): ModelFolder {
  shippedFolder ??= loadModelFolder(MODEL_DIR);
  return shippedFolder;
}

function expected(): Expected {
  return JSON.parse(readFileSync(EXPECTED_FILE, 'utf8')) as Expected;
}

const STALE = 'models/tiny-coder or the runtime changed since test/fixtures/tiny-coder-expected.json was recorded; if that change is intended, re-run tools/eval-tiny-coder/record-expected.ts and commit the result';

test('shipped model: found as the embedded default, LlamaForCausalLM, ≤ 12 M parameters, context ≥ 512, vocabulary ≤ 8192, ≤ 25 MB', { skip: shippedSkip }, () => {
  assert.equal(embeddedModelDir(), MODEL_DIR);
  const f = shipped();
  const c = f.config;
  assert.equal(c.architecture, 'LlamaForCausalLM');
  assert.ok(f.params <= 12e6, `${f.params} parameters`);
  assert.ok(c.maxPositions >= 512, `context ${c.maxPositions}`);
  assert.ok(c.vocab <= 8192, `vocabulary ${c.vocab}`);
  assert.ok(f.tokenizer.vocabSize <= c.vocab);
  assert.notEqual(f.tokenizer.eosId, null, 'the tokenizer names an end-of-text token');
  const bytes = readdirSync(MODEL_DIR, { recursive: true, encoding: 'utf8' }).reduce((n, name) => {
    const s = statSync(join(MODEL_DIR, name));
    return s.isFile() ? n + s.size : n;
  }, 0);
  assert.ok(bytes <= 25e6, `models/tiny-coder holds ${bytes} bytes`);
  const text = 'def naïve(x):\n\treturn {"π": x ** 2}  # ✓\n';
  assert.equal(f.tokenizer.decode(f.tokenizer.encode(text)), text);
});

test('shipped model: fingerprint and shapes are those recorded at export time', { skip: expectedSkip }, () => {
  const e = expected();
  const f = shipped();
  const c = f.config;
  assert.equal(f.fingerprint, e.fingerprint, STALE);
  assert.equal(c.architecture, e.architecture);
  assert.equal(f.params, e.params);
  assert.equal(f.dtype, e.dtype);
  assert.equal(f.tokenizer.vocabSize, e.tokenizerVocab);
  const actual: Record<string, number | boolean> = { layers: c.layers, hidden: c.hidden, intermediate: c.intermediate, heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim, vocab: c.vocab, maxPositions: c.maxPositions, ropeTheta: c.ropeTheta, tiedEmbeddings: c.tiedEmbeddings };
  assert.deepEqual(actual, e.config);
  for (const [name, w] of [['embed', f.weights.embed], ['lmHead', f.weights.lmHead]] as const) assert.equal(w.length, c.vocab * c.hidden, name);
  for (const layer of f.weights.layers) {
    assert.equal(layer.down.weight.length, c.hidden * c.intermediate);
    assert.equal(layer.q.weight.length, c.heads * c.headDim * c.hidden);
    assert.equal(layer.k.weight.length, c.kvHeads * c.headDim * c.hidden);
  }
});

test('shipped model: greedy completions and the loss of a fixed text are those recorded at export time', { skip: expectedSkip }, async () => {
  const e = expected();
  // openModel(undefined) is what the CLI and the worker do when no model folder is given.
  const { folder, runtime } = openModel(undefined);
  try {
    assert.equal(folder.fingerprint, e.fingerprint, STALE);
    assert.ok(e.completions.length > 0);
    for (const c of e.completions) {
      const g = await generate(runtime, folder.tokenizer, c.prompt, { maxTokens: c.maxTokens });
      assert.deepEqual(g.tokens, c.tokens, `greedy completion of ${JSON.stringify(c.prompt)}: ${JSON.stringify(g.text)}, recorded ${JSON.stringify(c.text)}. ${STALE}`);
      assert.equal(g.text, c.text);
    }
    const ids = folder.tokenizer.encode(e.score.text);
    assert.equal(ids.length, e.score.tokens);
    const s = await runtime.score(ids.slice(0, -1), ids.slice(1), new Array<number>(ids.length - 1).fill(1));
    assert.ok(Math.abs(s.loss - e.score.loss) < 1e-4, `loss ${s.loss}, recorded ${e.score.loss}. ${STALE}`);
  } finally {
    await runtime.release();
  }
});

// --- tools/eval-tiny-coder, on fixtures --------------------------------------------------------

test('eval: module of a stdlib path is its first component, as corpus.py splits', () => {
  assert.equal(moduleOf('copy.py'), 'copy');
  assert.equal(moduleOf(join('lib2to3', 'fixes', 'fix_apply.py')), 'lib2to3');
});

test('eval: the line sample is seeded, distinct, never a first or blank line, and its prompt is the text before the line', () => {
  const docs: Doc[] = [
    { rel: 'a.py', text: 'import os\n\ndef f():\n    return 1\n\n\nclass A:\n    pass\n' },
    { rel: 'b.py', text: 'x = 1\ny = 2\n   \nz = 3' },
    { rel: 'c.py', text: 'only_one_line\n' },
  ];
  const { samples, candidates } = sampleLines(docs, 5, 7);
  assert.equal(candidates, 6); // a.py lines 2, 3, 6, 7; b.py lines 1, 3; c.py none
  assert.equal(samples.length, 5);
  const keys = new Set(samples.map((s) => `${s.rel}:${s.line}`));
  assert.equal(keys.size, 5);
  for (const s of samples) {
    const text = docs.find((d) => d.rel === s.rel)?.text ?? '';
    assert.ok(s.line >= 1);
    assert.notEqual(s.target.trim(), '');
    assert.ok(s.prompt.endsWith('\n'));
    assert.ok(text.startsWith(s.prompt + s.target));
    assert.equal(s.prompt.split('\n').length - 1, s.line);
  }
  assert.deepEqual(sampleLines(docs, 5, 7).samples, samples);
  assert.equal(sampleLines(docs, 100, 7).samples.length, 6);
  const other = [1, 2, 3, 4, 5].map((seed) => sampleLines(docs, 3, seed).samples.map((s) => `${s.rel}:${s.line}`).join());
  assert.ok(new Set(other).size > 1, 'different seeds draw different samples');
});

test('eval: a hole (a line, or a span of a line\'s code) splits its file into prefix, removed text and suffix', () => {
  const docs: Doc[] = [
    { rel: 'a.py', text: 'import os\n\ndef f(x):\n    return print(x, os.sep)\n\n\nclass A:\n    pass\n' },
    { rel: 'b.py', text: 'x = 1\ny = 2\n   \nz = 3' },
  ];
  const lines = lineHoles(docs, 10, 3);
  assert.deepEqual(lines.map((h) => `${h.rel}:${h.line}`), sampleLines(docs, 10, 3).samples.map((s) => `${s.rel}:${s.line}`));
  for (const h of lines) {
    assert.equal(h.prefix + h.target + h.suffix, docs.find((d) => d.rel === h.rel)?.text);
    assert.ok(h.prefix.endsWith('\n') && (h.suffix === '' || h.suffix.startsWith('\n')));
  }
  for (const seed of [1, 2, 3, 4, 5]) {
    const spans = spanHoles(docs, 10, seed);
    assert.equal(spans.length, lines.length, 'every sampled line has code to cut a span from');
    assert.deepEqual(spanHoles(docs, 10, seed), spans);
    for (const h of spans) {
      assert.equal(h.prefix + h.target + h.suffix, docs.find((d) => d.rel === h.rel)?.text);
      const line = h.prefix.slice(h.prefix.lastIndexOf('\n') + 1) + h.target + h.suffix.split('\n')[0];
      assert.ok(h.target.length >= 1 && h.target.length <= 40 && !h.target.includes('\n'));
      assert.ok(h.prefix.slice(h.prefix.lastIndexOf('\n') + 1).length >= line.length - line.trimStart().length, 'the span starts in the code, not the indentation');
    }
  }
});

function referenceLogits(dir: string): { ids: number[]; targets: number[]; logits: Float64Array } {
  const ref = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as { ids: number[]; targets: number[] };
  const buf = readFileSync(join(dir, 'reference.safetensors'));
  const header = parseSafetensorsHeader(buf);
  const t = header.tensors.get('logits');
  if (!t) throw new Error('reference.safetensors lacks logits');
  const bytes = buf.subarray(header.dataOffset + t.begin, header.dataOffset + t.end);
  const logits = new Float64Array(bytes.length / 8);
  for (let i = 0; i < logits.length; i++) logits[i] = bytes.readDoubleLE(i * 8);
  return { ids: ref.ids, targets: ref.targets, logits };
}

test('eval: windowed loss and top-1 accuracy through the runtime match the PyTorch float64 reference', async () => {
  const f = loadModelFolder(LLAMA_FIXTURE);
  const runtime = new ModelRuntime(f.config, f.weights);
  const { ids, targets, logits } = referenceLogits(LLAMA_FIXTURE);
  for (let t = 0; t + 1 < ids.length; t++) assert.equal(targets[t], ids[t + 1], 'reference targets are the next ids');
  const V = f.config.vocab;
  let loss = 0;
  let correct = 0;
  for (let t = 0; t < ids.length; t++) {
    const row = logits.subarray(t * V, (t + 1) * V);
    let max = -Infinity;
    let best = 0;
    for (let v = 0; v < V; v++) if (row[v] > max) [max, best] = [row[v], v];
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(row[v] - max);
    loss += max + Math.log(sum) - row[targets[t]];
    if (best === targets[t]) correct++;
  }
  loss /= ids.length;
  const stream = [...ids, targets[targets.length - 1]];
  const whole = await scoreStream(runtime, stream, ids.length);
  assert.equal(whole.tokens, ids.length);
  assert.equal(whole.windows, 1);
  assert.ok(Math.abs(whole.loss - loss) < 1e-5, `loss ${whole.loss} vs reference ${loss}`);
  assert.equal(whole.correct, correct);
  assert.ok(whole.maxLossDiscrepancy < 1e-4);
  const split = await scoreStream(runtime, stream, 4);
  assert.equal(split.windows, Math.ceil(ids.length / 4));
  assert.equal(split.tokens, ids.length);
  assert.notEqual(split.loss, whole.loss, 'windows restart the context');
  await assert.rejects(scoreStream(runtime, stream, f.config.maxPositions + 1), /longer than the model's context/);
  await runtime.release();
});

test('eval: the token stream is each file followed by end-of-text', () => {
  const tok = loadModelFolder(LLAMA_FIXTURE).tokenizer;
  const docs: Doc[] = [{ rel: 'a.py', text: 'x = 1\n' }, { rel: 'b.py', text: 'def f():\n    pass\n' }];
  assert.notEqual(tok.eosId, null);
  assert.deepEqual(tokenStream(tok, docs), [...tok.encode(docs[0].text), tok.eosId, ...tok.encode(docs[1].text), tok.eosId]);
});

test('eval: the healed protocol is generate() with healing after the end-of-text file start', async () => {
  const tok = loadModelFolder(LLAMA_FIXTURE).tokenizer;
  const [a, nl] = [tok.encode('a'), tok.encode('\n')].map((ids) => ids[0]);
  const V = 288;
  const prompts: number[][] = [];
  let step = 0;
  const fake = {
    config: { maxPositions: 64 },
    async decode(ids: readonly number[], cache?: KvCache) {
      if (!cache) prompts.push([...ids]);
      const logits = new Float32Array(V);
      logits[[a, a, nl][Math.min(step++, 2)]] = 1;
      return { logits, cache: { length: (cache?.length ?? 0) + ids.length, keys: [], values: [] } };
    },
    releaseCache() {},
  } as unknown as ModelRuntime;
  const out = await completeLineHealed(fake, tok, { rel: 't.py', line: 1, prompt: 'y = 1\n', target: '' }, 10);
  assert.equal(documentStart(tok), '<|endoftext|>');
  assert.deepEqual(prompts, [[tok.eosId, ...tok.encode('y = 1')]], 'the file start is marked with end-of-text, the newline taken off');
  assert.equal(out.text, 'a', 'the newline is spelled back first although the model preferred "a"');
  assert.equal(out.stoppedBy, 'stop');
});
