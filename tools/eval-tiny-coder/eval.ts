// Command line of the embedded model's evaluation: measures a model folder (by default the embedded
// models/tiny-coder) on the held-out stdlib modules through the project's runtime, prints a table
// and writes the figures as JSON. The measurements themselves live in measure.ts.
//
//   node --import tsx tools/eval-tiny-coder/eval.ts [--model DIR] [--json out.json] [--limit-files N]
//        [--lines N] [--max-tokens N] [--seed N] [--window N] [--threads N] [--python PATH] [--no-healed]
//        [--holes N]

import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, platform, release, totalmem } from 'node:os';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { TextTokenizer } from '../../src/model/tokenizer';
import { detectFim, type FimChoice } from '../../src/runtime/fim';
import type { ModelRuntime } from '../../src/runtime/runtime';
import { openModel } from '../../src/runtime/open';
import {
  completeLine,
  completeLineHealed,
  documentStart,
  heldoutCorpus,
  lineHoles,
  REPO_ROOT,
  showAtHole,
  spanHoles,
  sampleLines,
  scoreStream,
  summarise,
  tokenStream,
  trainingHeldoutStream,
  type HoleSample,
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
  --no-healed        skip the token-healed next-line variant
  --holes N          lines and middle spans shown as the extension shows them, prefix-only and
                     in each FIM order the model has (default 300; 0 skips)
  --markdown FILE    also write the figures as a Markdown section body (model card, BENCHMARKS.md)`;

class UsageError extends Error {}

interface Options {
  model?: string;
  json?: string;
  markdown?: string;
  limitFiles?: number;
  lines: number;
  maxTokens: number;
  seed: number;
  window?: number;
  threads: number;
  python: string;
  healed: boolean;
  holes: number;
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
        model: { type: 'string' }, json: { type: 'string' }, markdown: { type: 'string' }, 'limit-files': { type: 'string' }, lines: { type: 'string' },
        'max-tokens': { type: 'string' }, seed: { type: 'string' }, window: { type: 'string' }, threads: { type: 'string' },
        python: { type: 'string' }, 'no-healed': { type: 'boolean' }, holes: { type: 'string' }, help: { type: 'boolean' },
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
    markdown: v.markdown,
    limitFiles: intOption(v, 'limit-files', 1),
    lines: intOption(v, 'lines', 0) ?? 300,
    maxTokens: intOption(v, 'max-tokens', 1) ?? 48,
    seed: intOption(v, 'seed', 0) ?? 2026,
    window: intOption(v, 'window', 1),
    threads: intOption(v, 'threads', 0) ?? 0,
    python: v.python ?? '/usr/bin/python3',
    healed: !v['no-healed'],
    holes: intOption(v, 'holes', 0) ?? 300,
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

interface Figures {
  date: string;
  model: { dir: string; fingerprint: string; params: number };
  data: { files: number; filesInSplit: number; heldoutModules: string[]; tokens: number; sameTokensAsTrainingTool: boolean | null };
  loss: { window: number; windows: number; tokens: number; loss: number; perplexity: number; bitsPerByte: number; top1Accuracy: number; correct: number };
  nextLine: { seed: number; candidates: number; lines: number; maxTokens: number };
  holes: HoleFigures | null;
  runtime: { provider: string };
  machine: { cpu: string; cores: number; memoryGiB: number; os: string; node: string; onnxruntime: string };
  seconds: number;
}

/** One way of prompting: prefix-only, or a FIM order. */
interface HoleMode {
  name: string;
  fim: FimChoice | null;
}

interface HoleFigures {
  protocol: string;
  seed: number;
  maxTokens: number;
  modes: string[];
  /** Per hole kind and mode: hits (shown text = removed text) of the holes. */
  nextLine: { holes: number; hits: Record<string, number> };
  middleSpan: { holes: number; hits: Record<string, number> };
  samples: Array<{ kind: 'line' | 'span'; file: string; line: number; target: string; shown: Record<string, string> }>;
  seconds: number;
}

/** The prompting modes a model has: prefix-only, then each order of its FIM format (if any). */
function holeModes(tokenizer: TextTokenizer): HoleMode[] {
  const f = detectFim(tokenizer);
  return [{ name: 'prefix-only', fim: null }, ...(f ? f.orders.map((order) => ({ name: `FIM ${order.toUpperCase()}`, fim: { format: f.name, order } })) : [])];
}

async function measureHoles(runtime: ModelRuntime, tokenizer: TextTokenizer, lines: HoleSample[], spans: HoleSample[], modes: HoleMode[], o: Options): Promise<HoleFigures> {
  const started = performance.now();
  const samples: HoleFigures['samples'] = [];
  const kinds = [['line', lines], ['span', spans]] as const;
  const hits = { line: {} as Record<string, number>, span: {} as Record<string, number> };
  const total = (lines.length + spans.length) * modes.length;
  const tick = progress('holes', started);
  let done = 0;
  for (const [kind, holes] of kinds) {
    for (const h of holes) {
      const shown: Record<string, string> = {};
      for (const m of modes) {
        const r = await showAtHole(runtime, tokenizer, h, m.fim, o.maxTokens);
        shown[m.name] = r.text;
        hits[kind][m.name] = (hits[kind][m.name] ?? 0) + (r.hit ? 1 : 0);
        tick(++done, total);
      }
      samples.push({ kind, file: h.rel, line: h.line + 1, target: h.target, shown });
    }
  }
  return {
    protocol: 'showCompletion (the extension\'s completion: token healing, line stop rule, clean-suggestion rules with the suffix), greedy; the prompt is the file before the hole (prefix-only) or the FIM layout of the file before and after it; a hit is the shown text equal to the removed text',
    seed: o.seed,
    maxTokens: o.maxTokens,
    modes: modes.map((m) => m.name),
    nextLine: { holes: lines.length, hits: hits.line },
    middleSpan: { holes: spans.length, hits: hits.span },
    samples,
    seconds: (performance.now() - started) / 1000,
  };
}

function holeRows(h: HoleFigures): string[] {
  const cell = (hits: number | undefined, n: number) => `${pct((hits ?? 0) / n)} (${hits ?? 0}/${n})`;
  return h.modes.map((m) => `| ${m} | ${cell(h.nextLine.hits[m], h.nextLine.holes)} | ${cell(h.middleSpan.hits[m], h.middleSpan.holes)} |`);
}

/** The options of this run that differ from the defaults, as command-line arguments. */
function reproduceArgs(o: Options): string {
  const a: string[] = [];
  if (o.model) a.push(`--model ${displayPath(resolve(o.model))}`);
  if (o.limitFiles !== undefined) a.push(`--limit-files ${o.limitFiles}`);
  if (o.lines !== 300) a.push(`--lines ${o.lines}`);
  if (o.maxTokens !== 48) a.push(`--max-tokens ${o.maxTokens}`);
  if (o.seed !== 2026) a.push(`--seed ${o.seed}`);
  if (o.window !== undefined) a.push(`--window ${o.window}`);
  if (o.python !== '/usr/bin/python3') a.push(`--python ${o.python}`);
  if (!o.healed) a.push('--no-healed');
  if (o.holes !== 300) a.push(`--holes ${o.holes}`);
  return a.map((x) => ' ' + x).join('');
}

function groups(m: MatchSummary): string {
  return `${m.matched}/${m.lines}; indented lines ${m.indented.matched}/${m.indented.lines}, unindented ${m.unindented.matched}/${m.unindented.lines}`;
}

/** The figures as the body of a Markdown section, so the model card and BENCHMARKS.md quote the run verbatim. */
function markdown(r: Figures, plain: MatchSummary, healed: MatchSummary | null, subset: boolean, args: string): string {
  const n = (x: number): string => x.toLocaleString('en-US');
  const lines = [
    `Measured by the project's own runtime (\`tools/eval-tiny-coder/eval.ts\`: \`openModel\`, \`ModelRuntime.score\`, \`generate\`; onnxruntime-node ${r.machine.onnxruntime}, ${r.runtime.provider} execution provider, float32) on ${r.date.slice(0, 10)}; machine: ${r.machine.cpu}, ${r.machine.cores} cores, ${r.machine.memoryGiB} GiB, ${r.machine.os}, Node ${r.machine.node}; ${Math.round(r.seconds)} s for the whole run. Model \`${r.model.dir}\`, fingerprint \`${r.model.fingerprint}\`.`,
    ...(subset ? ['', `**Subset only** (\`--limit-files\`): ${r.data.files} of the ${r.data.filesInSplit} held-out files.`] : []),
    '',
    '| metric | value | measured on |',
    '|---|---|---|',
    `| held-out loss | **${r.loss.loss.toFixed(3)}** nats/token (perplexity ${r.loss.perplexity.toFixed(2)}, ${r.loss.bitsPerByte.toFixed(3)} bits/byte) | ${n(r.loss.tokens)} next-token predictions: ${r.data.files} files of the ${r.data.heldoutModules.length} held-out modules, ${r.loss.windows} non-overlapping windows of ${r.loss.window} tokens |`,
    `| next-token top-1 accuracy | **${pct(r.loss.top1Accuracy)}** (${n(r.loss.correct)}) | the same tokens |`,
    `| next-line exact match, plain | **${pct(plain.exactMatch)}** (${groups(plain)}) | ${r.nextLine.lines} lines drawn with seed ${r.nextLine.seed} from the ${n(r.nextLine.candidates)} non-blank, non-first lines |`,
    ...(healed ? [`| next-line exact match, token healing | **${pct(healed.exactMatch)}** (${groups(healed)}) | the same lines |`] : []),
    '',
    `Loss and accuracy: the held-out files (listed by \`tools/train-tiny-coder/corpus.py --list\`, the training tool's own split) are concatenated, each followed by \`<|endoftext|>\`, exactly as the training tool encodes them${r.data.sameTokensAsTrainingTool ? ' (the ids equal its `work/heldout.u16`)' : ''}; every position of every window is scored, so each window's first tokens have little context.`,
    '',
    `Next line: the prompt is the file up to the start of the line (it ends with "\\n"), after \`<|endoftext|>\` as in training; when longer than the context, its end is kept. The completion must equal the whole line, **leading indentation included**; at most ${r.nextLine.maxTokens} tokens. *Plain*: greedy \`generate()\` with stop string "\\n". *Token healing*: \`generate()\` with \`heal: true\`, as the extension completes: the prompt's last token (here its trailing whitespace) is taken off and decoding is constrained to spell it back, then greedy up to the next "\\n". The two differ because the byte-level BPE pre-tokenizer puts a newline and the next line's indentation (except its last space, which goes with the next word) into one token, e.g. "\\n" + 3 spaces, then " return": a prompt that ends in a bare "\\n" token is a context the model rarely saw before an indented line.`,
    ...(r.holes
      ? [
          '',
          `As the extension shows completions (\`showCompletion\`: token healing, the line stop rule, the clean-suggestion rules given the text after the cursor; at most ${r.holes.maxTokens} tokens), at the same ${r.holes.nextLine.holes} lines (the cursor at the line's start, the file after the line as the suffix) and at ${r.holes.middleSpan.holes} middle spans (on each of those lines a span of 1–40 characters of its code removed, drawn with the same seed; the prefix and the suffix are the rest of the file). A hit is the shown text equal to the removed text; no \`<|endoftext|>\` is put before the prompt, as the extension does not.`,
          '',
          '| prompt | exact next line | exact middle span |',
          '|---|---|---|',
          ...holeRows(r.holes),
        ]
      : []),
    '',
    `Reproduce: \`node --import tsx tools/eval-tiny-coder/eval.ts${args} --json eval.json --markdown eval.md\`.`,
  ];
  return lines.join('\n') + '\n';
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
  const start = documentStart(folder.tokenizer);
  const plain = await completeAll('next line', samples.length, (i) => completeLine(runtime, folder.tokenizer, samples[i], o.maxTokens, start));
  const healed = o.healed ? await completeAll('next line (healed)', samples.length, (i) => completeLineHealed(runtime, folder.tokenizer, samples[i], o.maxTokens, start)) : null;
  const modes = holeModes(folder.tokenizer);
  const holes = o.holes > 0 ? await measureHoles(runtime, folder.tokenizer, lineHoles(docs, o.holes, o.seed), spanHoles(docs, o.holes, o.seed), modes, o) : null;
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
      protocol: 'seeded uniform sample of lines that are not a file\'s first line and not blank; prompt = the file before the line (ends with "\\n"), preceded by the end-of-text token as in training; when too long for the context its end is kept; exact match of the whole line, leading indentation included',
      documentStart: start || null, seed: o.seed, candidates, lines: samples.length, maxTokens: o.maxTokens,
      plain: { ...plainSummary, method: 'generate(): greedy, stop string "\\n"', seconds: plain.seconds },
      healed: healed && healedSummary ? { ...healedSummary, method: 'generate() with token healing (heal: true), greedy, stop string "\\n"', seconds: healed.seconds } : null,
      samples: samples.map((s, i) => ({ file: s.rel, line: s.line + 1, target: s.target, plain: plain.outputs[i].text, healed: healed ? healed.outputs[i].text : null })),
    },
    holes,
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
    ...(holes ? holes.modes.map((m) => `${`shown: exact line / span, ${m}`.padEnd(40)} ${pct((holes.nextLine.hits[m] ?? 0) / holes.nextLine.holes).padStart(8)} / ${pct((holes.middleSpan.hits[m] ?? 0) / holes.middleSpan.holes)}`) : []),
    '',
    `time: tokenize ${tokenizeSeconds.toFixed(1)} s, score ${scoreSeconds.toFixed(1)} s, next line ${plain.seconds.toFixed(1)} s${healed ? ` + healed ${healed.seconds.toFixed(1)} s` : ''}, total ${totalSeconds.toFixed(1)} s on ${runtime.provider} (${machine.cpu}, ${machine.cores} cores)`,
  ];
  process.stdout.write(rows.join('\n') + '\n');
  if (o.markdown) {
    const file = resolve(o.markdown);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, markdown(result, plainSummary, healedSummary, o.limitFiles !== undefined, reproduceArgs(o)));
    process.stderr.write(`wrote ${file}\n`);
  }
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
