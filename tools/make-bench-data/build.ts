// Builds the repair benchmark's data (bench/data/) from the embedded model's held-out modules:
// line completion samples (prompt = the preceding lines of a file and the new line's indentation,
// as an editor has it when the user starts typing; desired = the rest of the real line; after = the
// line break and the next line), split the editor's way (runtime/completion.ts: token healing, the
// line stop rule, the default budget) into real failures of the shipped model — grouped by the
// wrong→right token pair at the first divergence of the replayed target — and samples it gets right
// (for specificity). A fifth of the first-pass samples is also completed for real, and the stats count any
// sample where the completion and the teacher-forced target disagree (there should be none; every fifth sample is checked).
// Deterministic; run offline:
//   node --import tsx tools/make-bench-data/build.ts [--model DIR] [--out bench/data]
//   … --more-correct --max-correct 400   (a second pass that only adds correct samples)
// It asks /usr/bin/python3 for the held-out files (tools/train-tiny-coder/corpus.py --list).

import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadModelFolder } from '../../src/model';
import { assess } from '../../src/repair/engine';
import { makeExample, RepairError } from '../../src/repair/teacher';
import { DEFAULT_REPLAY, showsDesired } from '../../src/runtime/completion';
import { ModelRuntime } from '../../src/runtime/runtime';
import type { TextTokenizer } from '../../src/model/tokenizer';
import { seededRandom as prng } from '../../src/util/random';

const ROOT = resolve(__dirname, '..', '..');
const { values } = parseArgs({
  options: {
    model: { type: 'string', default: join(ROOT, 'models', 'tiny-coder') },
    out: { type: 'string', default: join(ROOT, 'bench', 'data') },
    'lines-per-file': { type: 'string', default: '120' },
    'max-correct': { type: 'string', default: '600' },
    'more-correct': { type: 'boolean', default: false },
    window: { type: 'string', default: '256' },
  },
});

/** Budget of prompt + desired tokens: half the context, so every repair step stays cheap. */
const WINDOW = Number(values.window);
const LINES_PER_FILE = Number(values['lines-per-file']);
const MIN_GROUP = 5;
const MAX_GROUP = 12;
const MAX_LINE_CHARS = 100;


interface Sample {
  id: string;
  file: string;
  line: number;
  prompt: string;
  desired: string;
  /** The line break and the next line of the file: how the completion's end is tokenised there. */
  after: string;
}

const MAX_AFTER = 256;
const CHECK_EVERY = 5;

/** Line-completion samples of every held-out file: about `perFile` lines each, evenly spread. */
function candidateSamples(root: string, files: readonly string[], tok: TextTokenizer, perFile: number, random: () => number): Sample[] {
  const samples: Sample[] = [];
  for (const rel of files) {
    const lines = readFileSync(join(root, rel), 'utf8').split('\n');
    const candidates = lines.flatMap((l, i) => (i > 0 && l.trim() !== '' && l.length <= MAX_LINE_CHARS ? [i] : []));
    const step = Math.max(1, Math.floor(candidates.length / perFile));
    for (let c = Math.floor(random() * step); c < candidates.length; c += step) {
      const i = candidates[c];
      // The preceding lines, keeping whole lines from the end that fit the window.
      let start = i;
      let tokens = tok.encode(lines[i]).length;
      while (start > 0) {
        const n = tok.encode(lines[start - 1] + '\n').length;
        if (tokens + n > WINDOW - 1) break;
        tokens += n;
        start--;
      }
      if (start === i) continue;
      const indent = lines[i].length - lines[i].trimStart().length;
      const after = ('\n' + (i + 1 < lines.length ? lines[i + 1] : '')).slice(0, MAX_AFTER);
      samples.push({ id: `${rel}:${i + 1}`, file: rel, line: i + 1, prompt: lines.slice(start, i).join('\n') + '\n' + lines[i].slice(0, indent), desired: lines[i].slice(indent).trimEnd(), after });
    }
  }
  return samples;
}

/**
 * --more-correct: the first pass finds too few lines the model gets right, so assess every other
 * eligible line (those the first pass did not sample) and append the correct ones to correct.jsonl.
 */
async function moreCorrect(runtime: ModelRuntime, tok: TextTokenizer, context: number, root: string, files: readonly string[], target: number): Promise<void> {
  const first = new Set(candidateSamples(root, files, tok, LINES_PER_FILE, prng(20261124)).map((s) => s.id));
  const rest = candidateSamples(root, files, tok, Infinity, () => 0).filter((s) => !first.has(s.id));
  const file = join(values.out!, 'correct.jsonl');
  const existing = readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '');
  let count = existing.length;
  process.stderr.write(`${rest.length} more lines to assess; ${count} correct samples so far, target ${target}\n`);
  const added: string[] = [];
  for (let n = 0; n < rest.length && count < target; n++) {
    if (n % 500 === 0) process.stderr.write(`  assessed ${n}/${rest.length}, correct ${count}\n`);
    const s = rest[n];
    let ex;
    try {
      ex = makeExample(tok, s.prompt, s.desired, context, { replay: DEFAULT_REPLAY, after: s.after });
    } catch (e) {
      if (e instanceof RepairError) continue;
      throw e;
    }
    if (!(await assess(runtime, ex)).allCorrect) continue;
    added.push(JSON.stringify({ id: s.id, split: count % 4 === 3 ? 'validation' : 'test', prompt: s.prompt, desired: s.desired, after: s.after }));
    count++;
  }
  writeFileSync(file, [...existing, ...added].join('\n') + '\n');
  const statsFile = join(values.out!, 'stats.json');
  const stats = JSON.parse(readFileSync(statsFile, 'utf8')) as Record<string, unknown>;
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
  const folder = loadModelFolder(values.model!);
  const runtime = new ModelRuntime(folder.config, folder.weights, { threads: 2 });
  const tok = folder.tokenizer;
  const random = prng(20261124);

  // Candidate lines: non-blank, not too long, not the first line, sampled evenly per file.
  const samples = candidateSamples(listing.root, listing.heldout, tok, LINES_PER_FILE, random);
  if (values['more-correct']) {
    await moreCorrect(runtime, tok, folder.config.maxPositions, listing.root, listing.heldout, Number(values['max-correct']));
    await runtime.release();
    return;
  }
  process.stderr.write(`${samples.length} candidate lines from ${listing.heldout.length} held-out files\n`);

  const failures: (Sample & { pair: string; firstWrong: number })[] = [];
  const correct: Sample[] = [];
  let n = 0;
  let disagree = 0;
  let checked = 0;
  for (const s of samples) {
    if (++n % 200 === 0) process.stderr.write(`  assessed ${n}/${samples.length}\n`);
    let ex;
    try {
      ex = makeExample(tok, s.prompt, s.desired, folder.config.maxPositions, { replay: DEFAULT_REPLAY, after: s.after });
    } catch (e) {
      if (e instanceof RepairError) continue;
      throw e;
    }
    const a = await assess(runtime, ex);
    // Every CHECK_EVERY-th sample is also completed for real (all of them would double the build time).
    if (n % CHECK_EVERY === 0) {
      checked++;
      if (a.allCorrect !== (await showsDesired(runtime, tok, s.prompt, s.desired, DEFAULT_REPLAY))) disagree++;
    }
    if (a.allCorrect) {
      correct.push(s);
      continue;
    }
    const k = a.correct.indexOf(false);
    failures.push({ ...s, pair: `${tok.tokenText(a.argmax[k])}→${tok.tokenText(ex.desired[k])}`, firstWrong: k });
  }

  // Groups: failures with the same wrong→right token pair at the first divergence.
  const byPair = new Map<string, typeof failures>();
  for (const f of failures) byPair.set(f.pair, [...(byPair.get(f.pair) ?? []), f]);
  const groups = [...byPair.entries()].filter(([, fs]) => fs.length >= MIN_GROUP).sort((a, b) => b[1].length - a[1].length || (a[0] < b[0] ? -1 : 1));
  // Every fourth group is for validation (tuning step sizes), the rest for the test split.
  const out: object[] = [];
  groups.forEach(([pair, fs], g) => {
    const members = fs.slice().sort((a, b) => (a.id < b.id ? -1 : 1)).slice(0, MAX_GROUP);
    for (const f of members) out.push({ id: f.id, group: `g${String(g).padStart(2, '0')}`, pair, split: g % 4 === 3 ? 'validation' : 'test', prompt: f.prompt, desired: f.desired, after: f.after, firstWrong: f.firstWrong });
  });
  // Correct samples for specificity: an even spread over the files, at most --max-correct.
  const every = Math.max(1, Math.ceil(correct.length / Number(values['max-correct'])));
  const right = correct.filter((_, i) => i % every === 0).map((s, i) => ({ id: s.id, split: i % 4 === 3 ? 'validation' : 'test', prompt: s.prompt, desired: s.desired, after: s.after }));
  mkdirSync(values.out!, { recursive: true });
  writeFileSync(join(values.out!, 'failures.jsonl'), out.map((o) => JSON.stringify(o)).join('\n') + '\n');
  writeFileSync(join(values.out!, 'correct.jsonl'), right.map((o) => JSON.stringify(o)).join('\n') + '\n');
  const stats = {
    model: folder.name,
    modelFingerprint: folder.fingerprint,
    heldoutFiles: listing.heldout.length,
    candidateLines: samples.length,
    replay: DEFAULT_REPLAY,
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

main().catch((e) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
