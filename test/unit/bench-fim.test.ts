// The repair benchmark's samples carry the prompt the extension builds (issue 15, item 3): for a
// model with FIM tokens, the text after the line (cut as the editor's window cuts it) and the
// replay with the FIM choice (tools/make-bench-data/samples.ts), read back by src/eval/bench.ts and
// replayed as a captured failure is; a model without FIM tokens gets the prefix-only records of
// before, and data written before FIM still loads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BenchContext, loadBenchData } from '../../src/eval/bench';
import { assess, RepairModel } from '../../src/repair/engine';
import { makeExample } from '../../src/repair/teacher';
import { DEFAULT_REPLAY, showCompletion } from '../../src/runtime/completion';
import { fimIds } from '../../src/runtime/fim';
import { preparePrompt } from '../../src/runtime/prompt';
import { ModelRuntime } from '../../src/runtime/runtime';
import { correctRecord, failureRecord, fileSamples, sampleExample, sampleSetup, sampleShown, type LineSample } from '../../tools/make-bench-data/samples';
import { fimModelFolder as makeFolder } from './fim-helpers';
import type { ModelFolder } from '../../src/model';

const folders = new Map<string, ModelFolder>();
/** One synthetic folder per format and seed for the whole file (each load probes the tokenizer). */
function fimModelFolder(format: 'starcoder' | null, seed = 3): ModelFolder {
  const key = `${format}/${seed}`;
  if (!folders.has(key)) folders.set(key, makeFolder(format, seed));
  return folders.get(key)!;
}

const FILE = 'import os\ndef f(x):\n    return x\n';
const STARCODER_SPM = { format: 'starcoder', order: 'spm' } as const;

/** A Python module long enough that the suffix budget cuts it. */
function longFile(): string {
  const lines = ['import sys', ''];
  for (let i = 0; i < 40; i++) lines.push(`def f${i}(a, b):`, `    total = a * ${i} + b`, `    print(total, file=sys.stderr)`, '    return total', '');
  return lines.join('\n');
}

function writeData(failures: readonly object[], correct: readonly object[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'bench-fim-'));
  writeFileSync(join(dir, 'failures.jsonl'), failures.map((o) => JSON.stringify(o)).join('\n') + '\n');
  writeFileSync(join(dir, 'correct.jsonl'), correct.map((o) => JSON.stringify(o)).join('\n') + '\n');
  return dir;
}

test('a model without FIM tokens: prefix-only samples and exactly the records of before (no suffix, no replay, same keys in the same order)', () => {
  const tok = fimModelFolder(null).tokenizer;
  const setup = sampleSetup(tok, 256, 256);
  assert.equal(setup.fim, null);
  assert.equal(setup.replay, DEFAULT_REPLAY);
  const samples = fileSamples('m.py', FILE, tok, 120, () => 0, setup);
  assert.deepEqual(samples, [
    { id: 'm.py:2', file: 'm.py', line: 2, prompt: 'import os\n', desired: 'def f(x):', after: '\n    return x' },
    { id: 'm.py:3', file: 'm.py', line: 3, prompt: 'import os\ndef f(x):\n    ', desired: 'return x', after: '\n' },
  ]);
  assert.equal(JSON.stringify(correctRecord(samples[0], 'test')), '{"id":"m.py:2","split":"test","prompt":"import os\\n","desired":"def f(x):","after":"\\n    return x"}');
  assert.equal(JSON.stringify(failureRecord(samples[1], 'g00', 'a→b', 'validation', 1)), '{"id":"m.py:3","group":"g00","pair":"a→b","split":"validation","prompt":"import os\\ndef f(x):\\n    ","desired":"return x","after":"\\n","firstWrong":1}');
  // The example is the one the benchmark built before: DEFAULT_REPLAY and the next line.
  assert.deepEqual(sampleExample(tok, samples[1], 256), makeExample(tok, samples[1].prompt, samples[1].desired, 256, { replay: DEFAULT_REPLAY, after: samples[1].after }));
});

test('a FIM model: each sample carries the text after the line, cut at line starts within the worker\'s suffix budget, and DEFAULT_REPLAY + the FIM choice', () => {
  const tok = fimModelFolder('starcoder').tokenizer;
  const setup = sampleSetup(tok, 256, 256);
  assert.deepEqual(setup.fim, STARCODER_SPM, 'StarCoder tokens, SPM first (the editor\'s default order)');
  assert.deepEqual(setup.replay, { ...DEFAULT_REPLAY, fim: STARCODER_SPM });
  // The worker's budget: min(starRepair.completions.suffixTokens = 128, (256 − 32 − 4) / 2).
  assert.equal(setup.suffixTokens, 110);
  const [a, b] = fileSamples('m.py', FILE, tok, 120, () => 0, setup);
  assert.equal(a.suffix, '\n    return x\n');
  assert.equal(b.suffix, '\n');
  assert.equal(b.prompt, 'import os\ndef f(x):\n    ');
  assert.deepEqual(b.replay, setup.replay);
  const text = longFile();
  const lines = text.split('\n');
  const samples = fileSamples('long.py', text, tok, 120, () => 0, setup);
  const early = samples.find((s) => s.line === 4)!;
  const rest = '\n' + lines.slice(4).join('\n');
  assert.ok(early.suffix!.length < rest.length, 'a long rest of the file is cut');
  assert.ok(rest.startsWith(early.suffix!) && early.suffix!.endsWith('\n'), 'at a line start');
  assert.ok(tok.encode(early.suffix!).length <= setup.suffixTokens, `${tok.encode(early.suffix!).length} tokens`);
  assert.ok(tok.encode(rest.slice(0, rest.indexOf('\n', early.suffix!.length) + 1)).length > setup.suffixTokens, 'and one more line would not fit');
});

test('bench data with suffix and FIM replay round-trips through loadBenchData and is replayed as a captured failure; data without them still loads', () => {
  const folder = fimModelFolder('starcoder');
  const tok = folder.tokenizer;
  const setup = sampleSetup(tok, folder.config.maxPositions, 256);
  const [s] = fileSamples('m.py', FILE, tok, 120, () => 0, setup).filter((x) => x.line === 3);
  const old = { id: 'old', split: 'test', prompt: 'x = 1\ny = ', desired: 'x + 1', after: '\n' };
  const dir = writeData([failureRecord(s, 'g00', 'a→b', 'test', 0)], [correctRecord(s, 'test'), old]);
  const data = loadBenchData(dir);
  assert.equal(data.failures[0].suffix, '\n');
  assert.deepEqual(data.failures[0].replay, { ...DEFAULT_REPLAY, fim: STARCODER_SPM });
  assert.deepEqual(data.correct[0].replay, data.failures[0].replay);
  assert.equal(data.correct[1].suffix, undefined);
  assert.equal(data.correct[1].replay, undefined);
  const ctx = new BenchContext(new RepairModel(new ModelRuntime(folder.config, folder.weights), folder.weights), tok, data, { split: 'test', perGroup: 1, regressionSamples: 10 });
  const [fc] = ctx.failures;
  assert.equal(fc.failure.suffix, '\n');
  assert.deepEqual(fc.replay.fim, STARCODER_SPM);
  // Teacher forcing runs over the prompt the completion feeds: <pre> <suf> suffix <mid> prefix.
  const prompt = preparePrompt(tok, s.prompt, { heal: true, suffix: '\n', fim: STARCODER_SPM, maxTokens: 32, context: folder.config.maxPositions });
  assert.deepEqual(fc.example.ids.slice(0, prompt.ids.length), prompt.ids);
  const oldCase = ctx.regression.find((c) => c.failure.id === 'old')!;
  assert.equal(oldCase.failure.suffix, undefined);
  assert.deepEqual(oldCase.replay, DEFAULT_REPLAY);
  assert.deepEqual(oldCase.example, makeExample(tok, old.prompt, old.desired, folder.config.maxPositions, { replay: DEFAULT_REPLAY, after: '\n' }));
  // A malformed replay is refused with its place.
  const bad = writeData([{ ...old, group: 'g00', replay: { heal: true, stop: 'line', maxTokens: 32, fim: { format: 'nope', order: 'spm' } } }], []);
  assert.throws(() => loadBenchData(bad), /failures\.jsonl:1: replay\.fim\.format/);
  // FIM data on a model that lacks the tokens belongs to another model: refused, not silently skipped.
  const plain = fimModelFolder(null);
  assert.throws(() => new BenchContext(new RepairModel(new ModelRuntime(plain.config, plain.weights), plain.weights), plain.tokenizer, data, { split: 'test', perGroup: 1, regressionSamples: 10 }), /FIM prompt, which this model's tokenizer cannot express/);
});

test('a FIM sample\'s teacher-forced target and the completion the extension shows (with the suffix) agree, and the benchmark\'s "shown" is that completion', async () => {
  // Its own folder (the head is changed): random weights whose head only ever picks printable
  // ASCII, a line break or a FIM stop token — half a UTF-8 character is a text no sample can ask for.
  const folder = makeFolder('starcoder', 3);
  const tok = folder.tokenizer;
  const setup = sampleSetup(tok, folder.config.maxPositions, 256);
  // The fixture's context is 256: the window leaves room for the suffix and the completion.
  assert.equal(setup.window, 256 - 32 - 110 - 3 - 16);
  const stops = new Set(fimIds(tok, setup.fim!).stops);
  const d = folder.config.hidden;
  for (let id = 0; id < folder.config.vocab; id++) {
    const keep = stops.has(id) || /^[\x20-\x7e\n]+$/.test(tok.decode([id]));
    for (let j = 0; j < d; j++) folder.weights.lmHead[id * d + j] = keep ? 10 * folder.weights.lmHead[id * d + j] : 0;
  }
  const runtime = new ModelRuntime(folder.config, folder.weights);
  const agreeing: LineSample[] = [];
  for (const s of fileSamples('long.py', longFile(), tok, 12, () => 0, setup)) {
    // The model's own completion there, with the sample's suffix and FIM replay, is what it gets right.
    const shown = await showCompletion(runtime, tok, s.prompt, s.replay!, { suffix: s.suffix });
    assert.ok(!shown.text.includes('\uFFFD'));
    if (shown.text.trim() === '') continue;
    const right = { ...s, desired: shown.text };
    let ex;
    try {
      ex = sampleExample(tok, right, folder.config.maxPositions);
    } catch {
      continue; // a text the clean rules would change there
    }
    assert.equal((await assess(runtime, ex)).allCorrect, true, `${s.id}: the teacher-forced target is the completion`);
    assert.equal(await sampleShown(runtime, tok, right), true);
    // Another line there: neither the target nor the completion has it.
    const wrong = { ...s, desired: shown.text.trim() === 'pass' ? 'return 0' : 'pass' };
    assert.equal((await assess(runtime, sampleExample(tok, wrong, folder.config.maxPositions))).allCorrect, false);
    assert.equal(await sampleShown(runtime, tok, wrong), false);
    agreeing.push(right);
  }
  assert.ok(agreeing.length >= 2, `${agreeing.length} samples`);
  // The benchmark's before-state of those samples is what the extension shows with the suffix.
  const data = loadBenchData(writeData([], agreeing.map((s) => correctRecord(s, 'test'))));
  const ctx = new BenchContext(new RepairModel(runtime, folder.weights), tok, data, { split: 'test', perGroup: 1, regressionSamples: 100 });
  const states = await ctx.states(ctx.regression);
  assert.equal(ctx.regression.length, agreeing.length);
  assert.ok(states.every((st) => st.shown && st.assessment.allCorrect));
});
