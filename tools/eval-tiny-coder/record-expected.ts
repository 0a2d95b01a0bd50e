// Records what the shipped embedded model does today — fingerprint, shapes, a few greedy
// completions and the loss of a fixed text — into test/fixtures/tiny-coder-expected.json, which
// test/unit/tiny-coder.test.ts replays so that an accidental change to the runtime or the weights
// is caught. Run it once after the final export of models/tiny-coder (and after any intended change):
//
//   node --import tsx tools/eval-tiny-coder/record-expected.ts [--model DIR] [--out FILE]

import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadModelFolder } from '../../src/model';
import { embeddedModelDir } from '../../src/runtime/open';
import { generate } from '../../src/runtime/generate';
import { argmax } from '../../src/model/finite';
import { ModelRuntime } from '../../src/runtime/runtime';
import { REPO_ROOT } from './measure';

export const EXPECTED_FILE = join(REPO_ROOT, 'test', 'fixtures', 'tiny-coder-expected.json');

// Ordinary Python openings written for this file (not taken from the corpus).
const PROMPTS: readonly string[] = [
  // They end before the newline: byte-level BPE joins a newline with the next line's indentation,
  // so the model continues most naturally from the end of a line.
  'def fibonacci(n):',
  'import os\nimport sys\n\n\ndef main():',
  'class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):',
  'for i in range(10):',
  'def read_lines(path):\n    with open(path) as f:',
  'try:\n    import json\nexcept ImportError:',
];
const MAX_TOKENS = 24;
// A greedy step whose two best logits are closer than this could flip on another CPU's float
// rounding; the recorded completion stops before such a step.
const MIN_MARGIN = 0.02;
const SCORE_TEXT = 'def clamp(value, low, high):\n    """Limit value to the range [low, high]."""\n    if value < low:\n        return low\n    if value > high:\n        return high\n    return value\n';

function topTwoMargin(logits: ArrayLike<number>): number {
  let a = -Infinity;
  let b = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    const x = logits[i];
    if (x > a) {
      b = a;
      a = x;
    } else if (x > b) b = x;
  }
  return a - b;
}

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { model: { type: 'string' }, out: { type: 'string' } }, strict: true });
  const dir = values.model ? resolve(values.model) : embeddedModelDir();
  if (!dir) {
    process.stderr.write('record-expected: models/tiny-coder is not there: export the model first (tools/train-tiny-coder)\n');
    return 1;
  }
  const folder = loadModelFolder(dir);
  const runtime = new ModelRuntime(folder.config, folder.weights);
  const tok = folder.tokenizer;
  const completions = [];
  for (const prompt of PROMPTS) {
    // The greedy path of generate(), step by step, to see how decisive each choice is.
    const ids = tok.encode(prompt);
    let step = await runtime.decode(ids);
    const tokens: number[] = [];
    let minMargin = Infinity;
    while (tokens.length < MAX_TOKENS) {
      const margin = topTwoMargin(step.logits);
      const next = argmax(step.logits);
      if (margin < MIN_MARGIN || next === tok.eosId) break;
      minMargin = Math.min(minMargin, margin);
      tokens.push(next);
      step = await runtime.decode([next], step.cache);
    }
    const g = await generate(runtime, tok, prompt, { maxTokens: tokens.length });
    if (g.tokens.join(',') !== tokens.join(',')) throw new Error(`generate() disagrees with step-by-step greedy decoding on ${JSON.stringify(prompt)}`);
    if (tokens.length < MAX_TOKENS) process.stderr.write(`note: completion of ${JSON.stringify(prompt)} recorded to ${tokens.length} tokens (a close call or end of text after that)\n`);
    completions.push({ prompt, maxTokens: tokens.length, tokens, text: g.text, minMargin: tokens.length ? minMargin : null });
  }
  const ids = tok.encode(SCORE_TEXT);
  const s = await runtime.score(ids.slice(0, -1), ids.slice(1), new Array<number>(ids.length - 1).fill(1));
  const c = folder.config;
  const expected = {
    note: 'Written by tools/eval-tiny-coder/record-expected.ts from the shipped models/tiny-coder; replayed by test/unit/tiny-coder.test.ts. Re-record only after an intended change to the model or the runtime.',
    recordedAt: new Date().toISOString(),
    recordedOn: { cpu: cpus()[0]?.model ?? 'unknown', node: process.version, onnxruntime: (require('onnxruntime-node/package.json') as { version: string }).version },
    model: relative(REPO_ROOT, dir),
    fingerprint: folder.fingerprint,
    architecture: c.architecture,
    params: folder.params,
    dtype: folder.dtype,
    config: { layers: c.layers, hidden: c.hidden, intermediate: c.intermediate, heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim, vocab: c.vocab, maxPositions: c.maxPositions, ropeTheta: c.ropeTheta, tiedEmbeddings: c.tiedEmbeddings },
    tokenizerVocab: tok.vocabSize,
    completions,
    score: { text: SCORE_TEXT, tokens: ids.length, loss: s.loss },
  };
  const out = values.out ? resolve(values.out) : EXPECTED_FILE;
  writeFileSync(out, JSON.stringify(expected, null, 1) + '\n');
  for (const x of completions) process.stdout.write(`${JSON.stringify(x.prompt)} → ${JSON.stringify(x.text)}  (min margin ${x.minMargin?.toFixed(3) ?? '-'})\n`);
  process.stdout.write(`score loss ${s.loss.toFixed(5)} over ${ids.length - 1} tokens; fingerprint ${folder.fingerprint}\nwrote ${out}\n`);
  await runtime.release();
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`record-expected: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(1);
    },
  );
}
