// Builds the repair benchmark's data (bench/data/) from the embedded model's held-out modules:
// line completion samples (tools/make-bench-data/samples.ts: prompt = the preceding lines of a file
// and the new line's indentation, as an editor has it when the user starts typing; desired = the
// rest of the real line; after = the line break and the next line; for a model with FIM tokens also
// the suffix = the text after the cursor as the editor's window keeps it, and replay = the
// defaults + the model's FIM choice, as a captured failure carries them), split the editor's way
// (runtime/completion.ts: FIM prompt, token healing, the line stop rule, the default budget, the
// clean rules) into real failures of the shipped model — grouped by the wrong→right token pair at
// the first divergence of the replayed target — and samples it gets right (for specificity). Every
// fifth first-pass sample is also completed for real, and the stats count any sample where the
// completion and the teacher-forced target disagree (there should be none). A model without FIM
// tokens gets exactly the prefix-only records of before.
// Deterministic; run offline:
//   node --import tsx tools/make-bench-data/build.ts [--model DIR] [--out bench/data]
//   … --more-correct --max-correct 400   (a second pass that only adds correct samples)
//   … --max-files N --lines-per-file N   (a smaller set, for a smoke run)
// It asks /usr/bin/python3 for the held-out files (tools/train-tiny-coder/corpus.py --list).

import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadModelFolder } from '../../src/model';
import { assess } from '../../src/repair/engine';
import { RepairError, type Example } from '../../src/repair/teacher';
import { ModelRuntime } from '../../src/runtime/runtime';
import type { TextTokenizer } from '../../src/model/tokenizer';
import { seededRandom as prng } from '../../src/util/random';
import { candidateSamples, correctRecord, failureRecord, sampleExample, sampleSetup, sampleShown, type LineSample, type SampleSetup } from './samples';

const ROOT = resolve(__dirname, '..', '..');
const { values } = parseArgs({
  options: {
    model: { type: 'string', default: join(ROOT, 'models', 'tiny-coder') },
    out: { type: 'string', default: join(ROOT, 'bench', 'data') },
    'lines-per-file': { type: 'string', default: '120' },
    'max-correct': { type: 'string', default: '600' },
    'more-correct': { type: 'boolean', default: false },
    window: { type: 'string', default: '256' },
    'max-files': { type: 'string' },
    threads: { type: 'string', default: '2' },
  },
});

/** Budget of prompt + desired tokens: half the context, so every repair step stays cheap. */
const WINDOW = Number(values.window);
const LINES_PER_FILE = Number(values['lines-per-file']);
const MIN_GROUP = 5;
const MAX_GROUP = 12;
const CHECK_EVERY = 5;

/** The sample's example the extension's way, or null where the editor could not show its desired text. */
function exampleOrNull(tok: TextTokenizer, s: LineSample, context: number): Example | null {
  try {
    return sampleExample(tok, s, context);
  } catch (e) {
    if (e instanceof RepairError) return null;
    throw e;
  }
}

/**
 * --more-correct: the first pass finds too few lines the model gets right, so assess every other
 * eligible line (those the first pass did not sample) and append the correct ones to correct.jsonl.
 */
async function moreCorrect(runtime: ModelRuntime, tok: TextTokenizer, context: number, setup: SampleSetup, files: readonly string[], read: (rel: string) => string, target: number): Promise<void> {
  const statsFile = join(values.out!, 'stats.json');
  const stats = JSON.parse(readFileSync(statsFile, 'utf8')) as Record<string, unknown>;
  // The first pass's samples were cut and split with this model's prompt: the second pass must be too.
  const firstFim = (stats.replay as { fim?: unknown } | undefined)?.fim ?? null;
  if (JSON.stringify(firstFim) !== JSON.stringify(setup.fim)) {
    throw new Error(`${values.out} was built with FIM ${JSON.stringify(firstFim)}, this model resolves ${JSON.stringify(setup.fim)}: rebuild the first pass with this model`);
  }
  const first = new Set(candidateSamples(files, read, tok, LINES_PER_FILE, prng(20261124), setup).map((s) => s.id));
  const rest = candidateSamples(files, read, tok, Infinity, () => 0, setup).filter((s) => !first.has(s.id));
  const file = join(values.out!, 'correct.jsonl');
  const existing = readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '');
  let count = existing.length;
  process.stderr.write(`${rest.length} more lines to assess; ${count} correct samples so far, target ${target}\n`);
  const added: string[] = [];
  const t0 = performance.now();
  for (let n = 0; n < rest.length && count < target; n++) {
    if (n % 500 === 0) process.stderr.write(`  assessed ${n}/${rest.length}, correct ${count} (${((performance.now() - t0) / 1000).toFixed(0)} s)\n`);
    const s = rest[n];
    const ex = exampleOrNull(tok, s, context);
    if (!ex) continue;
    if (!(await assess(runtime, ex)).allCorrect) continue;
    added.push(JSON.stringify(correctRecord(s, count % 4 === 3 ? 'validation' : 'test')));
    count++;
  }
  writeFileSync(file, [...existing, ...added].join('\n') + '\n');
  stats.correctSamples = count;
  stats.secondPassLines = rest.length;
  writeFileSync(statsFile, JSON.stringify(stats, null, 2) + '\n');
  process.stderr.write(`added ${added.length} correct samples (${count} in all)\n`);
}

async function main(): Promise<void> {
  const corpus = JSON.parse(execFileSync('/usr/bin/python3', [join(ROOT, 'tools', 'train-tiny-coder', 'corpus.py'), '--list'], { encoding: 'utf8', maxBuffer: 64 << 20 })) as { root: string; train: string[]; heldout: string[] };
  // The held-out modules are the ones the model was trained without (the committed list); the
  // split corpus.py computes here depends on which stdlib packages this machine has installed.
  const heldoutModules = new Set(readFileSync(join(ROOT, 'tools', 'train-tiny-coder', 'heldout-modules.txt'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')));
  const moduleOf = (rel: string) => rel.split('/')[0].replace(/\.py$/, '');
  const listing = { root: corpus.root, heldout: [...corpus.train, ...corpus.heldout].filter((rel) => heldoutModules.has(moduleOf(rel))).sort() };
  const files = values['max-files'] ? evenly(listing.heldout, Number(values['max-files'])) : listing.heldout;
  const read = (rel: string) => readFileSync(join(listing.root, rel), 'utf8');
  const folder = loadModelFolder(values.model!);
  const runtime = new ModelRuntime(folder.config, folder.weights, { threads: Number(values.threads) });
  const tok = folder.tokenizer;
  const context = folder.config.maxPositions;
  const random = prng(20261124);
  // The prompt the extension builds for this model: FIM (with the suffix) when its tokenizer has the tokens.
  const setup = sampleSetup(tok, context, WINDOW);
  process.stderr.write(`${folder.name}: ${setup.fim ? `FIM ${setup.fim.format} ${setup.fim.order}, suffix ≤ ${setup.suffixTokens} tokens` : 'no FIM tokens: prefix-only prompts'}\n`);

  // Candidate lines: non-blank, not too long, not the first line, sampled evenly per file.
  const samples = candidateSamples(files, read, tok, LINES_PER_FILE, random, setup);
  if (values['more-correct']) {
    await moreCorrect(runtime, tok, context, setup, files, read, Number(values['max-correct']));
    await runtime.release();
    return;
  }
  process.stderr.write(`${samples.length} candidate lines from ${files.length} held-out files\n`);

  const failures: (LineSample & { pair: string; firstWrong: number })[] = [];
  const correct: LineSample[] = [];
  let n = 0;
  let disagree = 0;
  let checked = 0;
  let skipped = 0;
  const t0 = performance.now();
  for (const s of samples) {
    if (++n % 200 === 0) process.stderr.write(`  assessed ${n}/${samples.length} (${((performance.now() - t0) / 1000).toFixed(0)} s)\n`);
    const ex = exampleOrNull(tok, s, context);
    if (!ex) {
      skipped++;
      continue;
    }
    const a = await assess(runtime, ex);
    // Every CHECK_EVERY-th sample is also completed for real (all of them would double the build time).
    if (n % CHECK_EVERY === 0) {
      checked++;
      if (a.allCorrect !== (await sampleShown(runtime, tok, s))) disagree++;
    }
    if (a.allCorrect) {
      correct.push(s);
      continue;
    }
    const k = a.correct.indexOf(false);
    failures.push({ ...s, pair: `${tok.tokenText(a.argmax[k])}→${tok.tokenText(ex.desired[k])}`, firstWrong: k });
  }
  process.stderr.write(`first pass: ${samples.length} lines in ${((performance.now() - t0) / 1000).toFixed(1)} s (${skipped} the editor could not show as a completion)\n`);

  // Groups: failures with the same wrong→right token pair at the first divergence.
  const byPair = new Map<string, typeof failures>();
  for (const f of failures) byPair.set(f.pair, [...(byPair.get(f.pair) ?? []), f]);
  const groups = [...byPair.entries()].filter(([, fs]) => fs.length >= MIN_GROUP).sort((a, b) => b[1].length - a[1].length || (a[0] < b[0] ? -1 : 1));
  // Every fourth group is for validation (tuning step sizes), the rest for the test split.
  const out: object[] = [];
  groups.forEach(([pair, fs], g) => {
    const members = fs.slice().sort((a, b) => (a.id < b.id ? -1 : 1)).slice(0, MAX_GROUP);
    for (const f of members) out.push(failureRecord(f, `g${String(g).padStart(2, '0')}`, pair, g % 4 === 3 ? 'validation' : 'test', f.firstWrong));
  });
  // Correct samples for specificity: an even spread over the files, at most --max-correct.
  const every = Math.max(1, Math.ceil(correct.length / Number(values['max-correct'])));
  const right = correct.filter((_, i) => i % every === 0).map((s, i) => correctRecord(s, i % 4 === 3 ? 'validation' : 'test'));
  mkdirSync(values.out!, { recursive: true });
  writeFileSync(join(values.out!, 'failures.jsonl'), out.map((o) => JSON.stringify(o)).join('\n') + '\n');
  writeFileSync(join(values.out!, 'correct.jsonl'), right.map((o) => JSON.stringify(o)).join('\n') + '\n');
  const stats = {
    model: folder.name,
    modelFingerprint: folder.fingerprint,
    heldoutFiles: files.length,
    candidateLines: samples.length,
    replay: setup.replay,
    ...(setup.fim ? { suffixTokens: setup.suffixTokens } : {}),
    ...(values['max-files'] ? { maxFiles: files.length } : {}),
    failingLines: failures.length,
    completionTeacherChecked: checked,
    completionTeacherDisagreements: disagree,
    correctLines: correct.length,
    correctSamples: right.length,
    groups: groups.length,
    groupedFailures: out.length,
    groupSizes: groups.map(([pair, fs]) => ({ pair, size: Math.min(fs.length, MAX_GROUP) })),
    window: WINDOW,
    linesPerFile: LINES_PER_FILE,
  };
  writeFileSync(join(values.out!, 'stats.json'), JSON.stringify(stats, null, 2) + '\n');
  process.stderr.write(`${failures.length} failing, ${correct.length} correct; ${groups.length} groups of ≥ ${MIN_GROUP} holding ${out.length} failures\n`);
  await runtime.release();
}

/** `n` of `xs`, evenly spread (all of them when n ≥ their number). */
function evenly<T>(xs: readonly T[], n: number): T[] {
  if (!(n > 0) || n >= xs.length) return [...xs];
  return Array.from({ length: n }, (_, k) => xs[Math.floor((k * xs.length) / n)]);
}

main().catch((e) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
