// Command line of the embedded model's evaluation: measures a model folder (by default the embedded
// models/tiny-coder) on the held-out stdlib modules through the project's runtime, prints a table
// and writes the figures as JSON. The measurements themselves live in measure.ts.
//
//   node --import tsx tools/eval-tiny-coder/eval.ts [--model DIR] [--json out.json] [--limit-files N]
//        [--lines N] [--max-tokens N] [--seed N] [--window N] [--threads N] [--python PATH] [--no-healed]

import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, platform, release, totalmem } from 'node:os';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { openModel } from '../../src/runtime/open';
import {
  completeLine,
  completeLineHealed,
  heldoutCorpus,
  REPO_ROOT,
  sampleLines,
  scoreStream,
  summarise,
  tokenStream,
  tokenTexts,
  trainingHeldoutStream,
  type LineCompletion,
  type MatchSummary,
} from './measure';

const USAGE = `usage: node --import tsx tools/eval-tiny-coder/eval.ts [options]
  --model DIR        model folder (default: the embedded models/tiny-coder)
  --json FILE        also write the figures as JSON to FILE
  --limit-files N    only the first N held-out files (quick runs; figures then cover a subset)
  --lines N          next-line samples (default 300)
  --max-tokens N     token budget of one line completion (default 48)
  --seed N           seed of the line sample (default 2026)
  --window N         scoring window in tokens (default: the model's context)
  --threads N        onnxruntime intra-op threads (default: onnxruntime decides)
  --python PATH      Python whose standard library is the corpus (default /usr/bin/python3)
  --no-healed        skip the token-healed next-line variant`;

class UsageError extends Error {}

interface Options {
  model?: string;
  json?: string;
  limitFiles?: number;
  lines: number;
  maxTokens: number;
  seed: number;
  window?: number;
  threads: number;
  python: string;
  healed: boolean;
}

function intOption(values: Record<string, string | boolean | undefined>, name: string, min: number): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== 'string' || !Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer ≥ ${min}, got ${String(v)}`);
  return n;
}

function parseOptions(argv: string[]): Options | null {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        model: { type: 'string' }, json: { type: 'string' }, 'limit-files': { type: 'string' }, lines: { type: 'string' },
        'max-tokens': { type: 'string' }, seed: { type: 'string' }, window: { type: 'string' }, threads: { type: 'string' },
        python: { type: 'string' }, 'no-healed': { type: 'boolean' }, help: { type: 'boolean' },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e));
  }
  const v = parsed.values;
  if (v.help) return null;
  return {
    model: v.model,
    json: v.json,
    limitFiles: intOption(v, 'limit-files', 1),
    lines: intOption(v, 'lines', 0) ?? 300,
    maxTokens: intOption(v, 'max-tokens', 1) ?? 48,
    seed: intOption(v, 'seed', 0) ?? 2026,
    window: intOption(v, 'window', 1),
    threads: intOption(v, 'threads', 0) ?? 0,
    python: v.python ?? '/usr/bin/python3',
    healed: !v['no-healed'],
  };
}

/** Repository-relative when inside the repository (as the model card cites it), else absolute. */
function displayPath(p: string): string {
  const r = relative(REPO_ROOT, p);
  return r === '' ? '.' : r.startsWith('..') || isAbsolute(r) ? p : r;
}

function pct(x: number): string {
  return `${(100 * x).toFixed(1)} %`;
}

function progress(label: string, started: number): (done: number, total: number) => void {
  let last = 0;
  return (done, total) => {
    const now = performance.now();
    if (done < total && now - last < 5000) return;
    last = now;
    const s = (now - started) / 1000;
    const eta = done < total ? `, ~${Math.round((s / done) * (total - done))} s left` : '';
    process.stderr.write(`${label}: ${done}/${total} (${s.toFixed(0)} s${eta})\n`);
  };
}

async function completeAll(
  label: string,
  count: number,
  one: (i: number) => Promise<LineCompletion>,
): Promise<{ outputs: LineCompletion[]; seconds: number }> {
  const started = performance.now();
  const tick = progress(label, started);
  const outputs: LineCompletion[] = [];
  for (let i = 0; i < count; i++) {
    outputs.push(await one(i));
    tick(i + 1, count);
  }
  return { outputs, seconds: (performance.now() - started) / 1000 };
}

function matchRow(name: string, m: MatchSummary): string {
  return `${name.padEnd(40)} ${pct(m.exactMatch).padStart(8)}  (${m.matched}/${m.lines}; indented ${m.indented.matched}/${m.indented.lines}, unindented ${m.unindented.matched}/${m.unindented.lines})`;
}

async function run(o: Options): Promise<void> {
  const t0 = performance.now();
  const { folder, runtime } = openModel(o.model, o.threads > 0 ? { threads: o.threads } : {});
  const cfg = folder.config;
  const window = o.window ?? cfg.maxPositions;
  if (window > cfg.maxPositions) throw new UsageError(`--window ${window} is longer than the model's context (${cfg.maxPositions})`);
  if (o.maxTokens >= cfg.maxPositions) throw new UsageError(`--max-tokens ${o.maxTokens} leaves no room for a prompt in the model's context of ${cfg.maxPositions}`);

  const corpus = heldoutCorpus(o.python);
  const docs = o.limitFiles ? corpus.docs.slice(0, o.limitFiles) : corpus.docs;
  const bytes = docs.reduce((n, d) => n + Buffer.byteLength(d.text, 'utf8'), 0);
  process.stderr.write(`model ${folder.dir}: ${cfg.architecture}, ${(folder.params / 1e6).toFixed(2)} M params, context ${cfg.maxPositions}\n`);
  process.stderr.write(`held-out: ${docs.length}/${corpus.docs.length} files of ${corpus.modules.join(' ')} (${bytes} bytes) from ${corpus.root}\n`);

  const tTok = performance.now();
  const stream = tokenStream(folder.tokenizer, docs);
  const tokenizeSeconds = (performance.now() - tTok) / 1000;
  // The training tool's own encoding, when this is its tokenizer and the whole split: the figures
  // are then over exactly the tokens its PyTorch evaluation saw.
  const trained = o.limitFiles ? null : trainingHeldoutStream();
  const sameAsTraining = trained === null || trained.length === 0 ? null : trained.length === stream.length && stream.every((id, i) => id === trained[i]);

  const tScore = performance.now();
  const score = await scoreStream(runtime, stream, window, progress('scoring windows', tScore));
  const scoreSeconds = (performance.now() - tScore) / 1000;

  const { samples, candidates } = sampleLines(docs, o.lines, o.seed);
  const plain = await completeAll('next line', samples.length, (i) => completeLine(runtime, folder.tokenizer, samples[i], o.maxTokens));
  const texts = o.healed ? tokenTexts(folder.tokenizer, cfg.vocab) : [];
  const healed = o.healed ? await completeAll('next line (healed)', samples.length, (i) => completeLineHealed(runtime, folder.tokenizer, samples[i], o.maxTokens, texts)) : null;
  const plainSummary = summarise(samples, plain.outputs);
  const healedSummary = healed ? summarise(samples, healed.outputs) : null;
  const totalSeconds = (performance.now() - t0) / 1000;

  const cpu = cpus();
  const machine = { cpu: cpu[0]?.model ?? 'unknown', cores: cpu.length, memoryGiB: Math.round(totalmem() / 2 ** 30), os: `${platform()} ${release()}`, node: process.version, onnxruntime: (require('onnxruntime-node/package.json') as { version: string }).version };
  const result = {
    date: new Date().toISOString(),
    model: {
      dir: displayPath(folder.dir), fingerprint: folder.fingerprint, architecture: cfg.architecture, params: folder.params, dtype: folder.dtype,
      layers: cfg.layers, hidden: cfg.hidden, intermediate: cfg.intermediate, vocab: cfg.vocab, context: cfg.maxPositions,
    },
    data: {
      python: o.python, stdlibRoot: corpus.root, heldoutModules: corpus.modules, files: docs.length, filesInSplit: corpus.docs.length,
      bytes, sha256: o.limitFiles ? null : corpus.sha256, tokens: stream.length,
      separator: folder.tokenizer.eosId === null ? 'none' : 'end-of-text token after each file', sameTokensAsTrainingTool: sameAsTraining,
    },
    loss: {
      protocol: 'files concatenated in split order, each followed by end-of-text; non-overlapping windows (the last one shorter); every position scored; runtime.score()',
      window, windows: score.windows, tokens: score.tokens, loss: score.loss, perplexity: Math.exp(score.loss), bitsPerByte: (score.loss * score.tokens) / Math.LN2 / bytes,
      top1Accuracy: score.top1, correct: score.correct, maxLossDiscrepancy: score.maxLossDiscrepancy, seconds: scoreSeconds, tokenizeSeconds,
    },
    nextLine: {
      protocol: 'seeded uniform sample of lines that are not a file\'s first line and not blank; prompt = the file before the line (ends with "\\n"; when too long for the context its end is kept); exact match of the whole line, leading indentation included',
      seed: o.seed, candidates, lines: samples.length, maxTokens: o.maxTokens,
      plain: { ...plainSummary, method: 'generate(): greedy, stop string "\\n"', seconds: plain.seconds },
      healed: healed && healedSummary ? { ...healedSummary, method: 'token healing: prompt without its trailing whitespace, decoding constrained to spell it back, then greedy to the next "\\n"', seconds: healed.seconds } : null,
      samples: samples.map((s, i) => ({ file: s.rel, line: s.line + 1, target: s.target, plain: plain.outputs[i].text, healed: healed ? healed.outputs[i].text : null })),
    },
    runtime: { provider: runtime.provider, threads: o.threads || 'onnxruntime default' },
    machine,
    seconds: totalSeconds,
  };

  const rows = [
    `model             ${result.model.dir} (${cfg.architecture}, ${(folder.params / 1e6).toFixed(2)} M params, ${folder.dtype}, context ${cfg.maxPositions})`,
    `fingerprint       ${folder.fingerprint}`,
    `held-out data     ${docs.length} files of ${corpus.modules.length} modules, ${bytes} bytes, ${stream.length} tokens${sameAsTraining === null ? '' : sameAsTraining ? ' (same ids as the training tool)' : ' (DIFFERENT ids from the training tool)'}`,
    '',
    `${'metric'.padEnd(40)} ${'value'.padStart(8)}`,
    `${'held-out loss (nats/token)'.padEnd(40)} ${score.loss.toFixed(4).padStart(8)}  (${score.tokens} tokens, ${score.windows} windows of ${window})`,
    `${'perplexity'.padEnd(40)} ${Math.exp(score.loss).toFixed(2).padStart(8)}`,
    `${'bits per byte'.padEnd(40)} ${result.loss.bitsPerByte.toFixed(3).padStart(8)}`,
    `${'next-token top-1 accuracy'.padEnd(40)} ${pct(score.top1).padStart(8)}  (${score.correct}/${score.tokens})`,
    matchRow('next-line exact match (generate)', plainSummary),
    ...(healedSummary ? [matchRow('next-line exact match (token healing)', healedSummary)] : []),
    '',
    `time: tokenize ${tokenizeSeconds.toFixed(1)} s, score ${scoreSeconds.toFixed(1)} s, next line ${plain.seconds.toFixed(1)} s${healed ? ` + healed ${healed.seconds.toFixed(1)} s` : ''}, total ${totalSeconds.toFixed(1)} s on ${runtime.provider} (${machine.cpu}, ${machine.cores} cores)`,
  ];
  process.stdout.write(rows.join('\n') + '\n');
  if (o.json) {
    const file = resolve(o.json);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, JSON.stringify(result, null, 1) + '\n');
    process.stderr.write(`wrote ${file}\n`);
  }
  await runtime.release();
}

async function main(argv: string[]): Promise<number> {
  try {
    const o = parseOptions(argv);
    if (!o) {
      process.stdout.write(USAGE + '\n');
      return 0;
    }
    await run(o);
    return 0;
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    process.stderr.write(`eval-tiny-coder: ${message}${e instanceof UsageError ? `\n${USAGE}` : ''}\n`);
    return e instanceof UsageError ? 2 : 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
