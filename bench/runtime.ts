// The runtime benchmark (`npm run bench:runtime [-- --ep cpu|webgpu|cuda --config <file>]`): a
// random-weight checkpoint with a real model's shapes (Qwen2.5-Coder-0.5B by default), fp32, run
// through ModelRuntime — decode, prefill, probe, score, peak RSS — with every figure set next to
// the limit ORT itself reaches in the same run (matrix-vector bandwidth, GEMM throughput), and the
// issue's goals printed PASS/MISS; then the same random weights as GGUF through llama.cpp
// (node-llama-cpp, optional: skipped with the reason where missing) against this runtime, each
// in its own process, interleaved (bench/lib/llama-compare.ts; --llama-only skips the first part).
// Writes bench/out/runtime-<ep>.json and a markdown report.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseConfig, type ModelConfig } from '../src/model/config';
import { greedyToken, ModelRuntime, weightArrays } from '../src/runtime/runtime';
import { BenchArgsError, parseRuntimeArgs, RUNTIME_USAGE, type RuntimeBenchArgs } from './lib/args';
import { COMPARE_USAGE, compareMarkdown, parseCompareArgs, runChild, runComparison, type ChildSpec, type CompareReport } from './lib/llama-compare';
import { backwardFlops, forwardFlops } from './lib/flops';
import { chainResult, openModelChain, openSquareChain, type Chain, type ChainResult } from './lib/limits';
import { collectGarbage, cpuSnapshot, loadAverage1m, machineInfo, othersCpuShare, peakRssBytes, type CpuSnapshot, type MachineInfo } from './lib/machine';
import { summarise, type Timing } from './lib/stats';
import { fmtGB, fmtMs, fmtRatio, markdownTable } from './lib/table';
import { randomCanonicalWeights } from '../src/model/synthetic';
import { uniformFiller } from '../src/util/random';
import { weightBytes } from './lib/weights';

// The square chain for the limits: 16 × 4096² fp32 = 1.07 GB of weights per run.
const CHAIN_SIZE = 4096;
const CHAIN_COUNT = 16;
// Decode steps per block, and matrix-vector chain runs of each kind after every block.
const DECODE_BLOCK = 8;
const CHAIN_BLOCK = 3;
const GOALS = { decodePerStream: 1.4, probePerPrefill: 3.5, rssPerWeights: 2.5 } as const;

interface SequenceFigure {
  label: string;
  kind: 'probe' | 'score';
  mask: 'last' | 'all';
  maskedPositions: number;
  timing: Timing;
  flops: number;
}

interface Report {
  machine: MachineInfo;
  args: RuntimeBenchArgs;
  provider: string;
  fallbacks: { provider: string; reason: string }[];
  model: { config: string; architecture: string; layers: number; hidden: number; intermediate: number; vocab: number; params: number; weightBytes: number };
  loadAverage: { start: number; end: number };
  /** Share of all cores other processes used during each phase (null without /proc). */
  interference: Record<string, number | null>;
  setupMs: { weights: number; sessions: number };
  decode: { promptTokens: number; timing: Timing; tokensPerSecond: number };
  prefill: { tokens: number; timing: Timing; tokensPerSecond: number; flops: number };
  probe: SequenceFigure[];
  score: SequenceFigure[];
  peakRss: { decodeAndProbe: number; withScoreToo: number };
  limits: { squareMatvec: ChainResult; squareGemm: ChainResult; modelMatvec: ChainResult; modelGemm: ChainResult };
  derived: {
    /** Weight bytes ÷ the higher of the two matrix-vector bandwidths. */
    streamMs: number;
    streamGbPerS: number;
    decodePerStream: number;
    decodePerSquareChain: number;
    decodePerModelChain: number;
    prefillIdealMs: number;
    probePerPrefill: number[];
    rssPerWeights: number;
  };
  goals: { name: string; value: number; limit: number; pass: boolean }[];
}

function log(msg: string): void {
  process.stderr.write(`[bench:runtime] ${msg}\n`);
}

function randomIds(n: number, vocab: number, seed: number): number[] {
  const fill = uniformFiller(seed);
  return Array.from(fill(n, 0.5, 0.5), (u) => Math.min(vocab - 1, Math.floor(u * vocab)));
}

function loadBenchConfig(path: string): ModelConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new BenchArgsError(`cannot read --config ${path} (${e instanceof Error ? e.message : String(e)}); give the path of a Hugging Face config.json such as bench/configs/qwen2.5-coder-0.5b.json`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new BenchArgsError(`--config ${path} is not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  return parseConfig(json, path);
}

async function timed(step: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await step();
  return performance.now() - t;
}

interface SequenceCase {
  kind: 'probe' | 'score';
  mask: 'last' | 'all';
  n: number;
  run: () => Promise<unknown>;
  runs: number[];
}

async function run(args: RuntimeBenchArgs): Promise<Report> {
  const cfg = loadBenchConfig(args.config);
  const T = args.seq;
  if (T > cfg.maxPositions) throw new BenchArgsError(`--seq ${T} is longer than the model's context (${cfg.maxPositions})`);
  if (args.prompt + 2 * args.tokens + 1 > cfg.maxPositions) throw new BenchArgsError(`--prompt + --tokens exceed the model's context (${cfg.maxPositions})`);
  const machine = machineInfo();
  const loadStart = loadAverage1m();
  const options = { provider: args.ep, threads: args.threads };
  log(`${cfg.architecture} ${cfg.layers}×${cfg.hidden} (vocab ${cfg.vocab}) on ${args.ep}, ${args.threads} threads; ${machine.cpu}, ${machine.cores} cores`);

  let t = performance.now();
  const weights = randomCanonicalWeights(cfg, 1);
  const bytes = weightBytes(weights);
  const weightsMs = performance.now() - t;
  log(`random weights: ${fmtGB(bytes)} in ${fmtMs(weightsMs)}`);

  const rt = new ModelRuntime(cfg, weights, options);
  t = performance.now();
  await rt.warm(['decode', 'probe']);
  const sessionsMs = performance.now() - t;
  log(`decode + probe sessions on ${rt.provider} in ${fmtMs(sessionsMs)}`);

  const interference: Record<string, number | null> = {};
  const phase = async <R>(name: string, what: string, fn: () => Promise<R>): Promise<R> => {
    log(`${what}…`);
    const before: CpuSnapshot = cpuSnapshot();
    const out = await fn();
    const share = othersCpuShare(before, cpuSnapshot(), machine.cores);
    interference[name] = share;
    if (share !== null && share > 0.05) log(`  other processes used ${(100 * share).toFixed(0)}% of the cores meanwhile: timings are disturbed`);
    collectGarbage();
    return out;
  };

  // Sequence-level cases; their warm-up runs are the largest allocations of both sessions, so
  // the peak RSS "with decode + probe loaded" is read right after them, before any other session.
  const ids = randomIds(T, cfg.vocab, 3);
  const targets = [...ids.slice(1), randomIds(1, cfg.vocab, 4)[0]];
  const maskOf = (n: number) => Array.from({ length: T }, (_, i) => (i >= T - n ? 1 : 0));
  const cases: SequenceCase[] = [];
  for (const kind of ['probe', 'score'] as const) {
    for (const [mask, n] of [['last', args.lastMask], ['all', T]] as const) {
      const m = maskOf(n);
      cases.push({ kind, mask, n, runs: [], run: kind === 'probe' ? () => rt.probe(ids, targets, m) : () => rt.score(ids, targets, m) });
    }
  }
  const prefill = { run: () => rt.decode(ids), runs: [] as number[] };
  await phase('warmup', `warm-up: prefill ${T}, probe ${T} (mask last ${args.lastMask}, mask all)`, async () => {
    await prefill.run();
    for (const c of cases) if (c.kind === 'probe') await c.run();
  });
  const rssBoth = peakRssBytes();
  await rt.warm(['score']);
  for (const c of cases) if (c.kind === 'score') await c.run();
  const rssAll = peakRssBytes();

  // Limit chains, opened now so they run interleaved with the model: a burst of load from
  // elsewhere then slows both sides of a ratio alike.
  const arrays = weightArrays(cfg, weights);
  const modelMatvec = await openModelChain(cfg, arrays, 1, options);
  const modelGemm = await openModelChain(cfg, arrays, T, options);
  const squareMatvec = await openSquareChain(CHAIN_SIZE, CHAIN_COUNT, 1, weights.embed, options);
  const squareGemm = await openSquareChain(CHAIN_SIZE, CHAIN_COUNT, T, weights.embed, options);
  const chainRuns = new Map<Chain, number[]>([modelMatvec, modelGemm, squareMatvec, squareGemm].map((c) => [c, []]));
  for (const c of [modelMatvec, squareMatvec, modelMatvec, squareMatvec, modelGemm, squareGemm]) await c.run();

  // Blocks, not single runs, alternate: after a session's run its intra-op threads spin for a
  // while, and on a small machine the first run of another session pays for that; the first run
  // of every block is therefore untimed.
  const decodeSteps = await phase('decode', `decode: ${args.prompt}-token prompt, ${args.tokens} tokens in blocks of ${DECODE_BLOCK}, alternating with matrix-vector chain runs`, async () => {
    const prompt = randomIds(args.prompt, cfg.vocab, 2);
    // A step is the greedy decode, choosing its token included (generate.ts's greedy steps).
    let r = await rt.decode(prompt, undefined, 'greedy');
    const steps: number[] = [];
    while (steps.length < args.tokens) {
      r = await rt.decode([greedyToken(r)], r.cache, 'greedy');
      for (let i = 0; i < DECODE_BLOCK && steps.length < args.tokens; i++) {
        const start = performance.now();
        r = await rt.decode([greedyToken(r)], r.cache, 'greedy');
        steps.push(performance.now() - start);
      }
      for (const chain of [modelMatvec, squareMatvec]) {
        await chain.run();
        for (let i = 0; i < CHAIN_BLOCK; i++) chainRuns.get(chain)!.push(await chain.run());
      }
    }
    return steps;
  });

  await phase('sequence', `${args.repeats} rounds of: prefill ${T}, probe ×2, score ×2, GEMM chains ×2`, async () => {
    for (let r = 0; r < args.repeats; r++) {
      prefill.runs.push(await timed(prefill.run));
      for (const c of cases) c.runs.push(await timed(c.run));
      for (const c of [modelGemm, squareGemm]) chainRuns.get(c)!.push(await c.run());
    }
  });

  const provider = rt.provider;
  const fallbacks = rt.fallbacks;
  for (const c of chainRuns.keys()) await c.release();
  await rt.release();

  const limits = {
    squareMatvec: chainResult(squareMatvec, chainRuns.get(squareMatvec)!),
    squareGemm: chainResult(squareGemm, chainRuns.get(squareGemm)!),
    modelMatvec: chainResult(modelMatvec, chainRuns.get(modelMatvec)!),
    modelGemm: chainResult(modelGemm, chainRuns.get(modelGemm)!),
  };
  const decode = summarise(decodeSteps);
  const prefillTiming = summarise(prefill.runs);
  const figure = (c: SequenceCase): SequenceFigure => ({
    label: `${c.kind === 'probe' ? 'Probe (forward + backward)' : 'Score (forward only)'}, ${T} tokens, mask ${c.mask === 'last' ? `last ${c.n}` : `all ${c.n}`}`,
    kind: c.kind,
    mask: c.mask,
    maskedPositions: c.n,
    timing: summarise(c.runs),
    flops: forwardFlops(cfg, T, T, c.n) + (c.kind === 'probe' ? backwardFlops(cfg, T, c.n) : 0),
  });
  const probe = cases.filter((c) => c.kind === 'probe').map(figure);
  const score = cases.filter((c) => c.kind === 'score').map(figure);

  // The stricter of the two bandwidths sets the weight-streaming time of the goal.
  const streamGbPerS = Math.max(limits.squareMatvec.gbPerS, limits.modelMatvec.gbPerS);
  const streamMs = bytes / (streamGbPerS * 1e6);
  const prefillFlops = forwardFlops(cfg, T, T, 1);
  const derived = {
    streamMs,
    streamGbPerS,
    decodePerStream: decode.medianMs / streamMs,
    decodePerSquareChain: decode.medianMs / (bytes / (limits.squareMatvec.gbPerS * 1e6)),
    decodePerModelChain: decode.medianMs / limits.modelMatvec.timing.medianMs,
    prefillIdealMs: prefillFlops / (Math.max(limits.squareGemm.gflopPerS, limits.modelGemm.gflopPerS) * 1e6),
    probePerPrefill: probe.map((p) => p.timing.medianMs / prefillTiming.medianMs),
    rssPerWeights: rssBoth / bytes,
  };
  const goals = [
    { name: 'decode time per token ≤ 1.4× weight-streaming time', value: derived.decodePerStream, limit: GOALS.decodePerStream },
    ...probe.map((p, i) => ({ name: `probe (mask ${p.mask === 'last' ? `last ${p.maskedPositions}` : 'all'}) ≤ 3.5× prefill of the same ${T} tokens`, value: derived.probePerPrefill[i], limit: GOALS.probePerPrefill })),
    { name: 'peak RSS with decode + probe loaded ≤ 2.5× fp32 weight bytes', value: derived.rssPerWeights, limit: GOALS.rssPerWeights },
  ].map((g) => ({ ...g, pass: g.value <= g.limit }));

  return {
    machine,
    args,
    provider,
    fallbacks,
    model: { config: args.config, architecture: cfg.architecture, layers: cfg.layers, hidden: cfg.hidden, intermediate: cfg.intermediate, vocab: cfg.vocab, params: bytes / 4, weightBytes: bytes },
    loadAverage: { start: loadStart, end: loadAverage1m() },
    interference,
    setupMs: { weights: weightsMs, sessions: sessionsMs },
    decode: { promptTokens: args.prompt, timing: decode, tokensPerSecond: 1000 / decode.medianMs },
    prefill: { tokens: T, timing: prefillTiming, tokensPerSecond: (1000 * T) / prefillTiming.medianMs, flops: prefillFlops },
    probe,
    score,
    peakRss: { decodeAndProbe: rssBoth, withScoreToo: rssAll },
    limits,
    derived,
    goals,
  };
}

function verdict(pass: boolean): string {
  return pass ? 'PASS' : 'MISS';
}

function markdown(r: Report): string {
  const m = r.machine;
  const gemm = Math.max(r.limits.squareGemm.gflopPerS, r.limits.modelGemm.gflopPerS);
  const gflop = (f: number) => `${(f / 1e9).toFixed(0)} GFLOP`;
  const atGemm = (flops: number) => `${gflop(flops)} at ${gemm.toFixed(0)} GFLOP/s: ${fmtMs(flops / (gemm * 1e6))}`;
  const goal = (i: number) => `${r.goals[i].value.toFixed(2)}× (≤ ${r.goals[i].limit}×) ${verdict(r.goals[i].pass)}`;
  const seqRow = (f: SequenceFigure, goalIndex: number | null) => [
    f.label,
    fmtMs(f.timing.medianMs),
    atGemm(f.flops),
    fmtRatio(f.timing.medianMs / (f.flops / (gemm * 1e6))),
    goalIndex === null ? `${fmtRatio(f.timing.medianMs / r.prefill.timing.medianMs)} prefill` : `${goal(goalIndex)} (vs prefill)`,
  ];
  const figures = markdownTable(
    ['Figure', 'Measured (median)', 'ORT limit, same run', 'Measured ÷ limit', 'Goal'],
    [
      [
        `Decode, per token (${r.decode.promptTokens}-token prompt, ${r.args.tokens} tokens)`,
        `${fmtMs(r.decode.timing.medianMs)} (${r.decode.tokensPerSecond.toFixed(1)} tok/s)`,
        `stream ${fmtGB(r.model.weightBytes)} once at ${r.derived.streamGbPerS.toFixed(1)} GB/s: ${fmtMs(r.derived.streamMs)} (${(1000 / r.derived.streamMs).toFixed(1)} tok/s)`,
        fmtRatio(r.derived.decodePerStream),
        goal(0),
      ],
      [
        `Prefill, ${r.prefill.tokens} tokens`,
        `${fmtMs(r.prefill.timing.medianMs)} (${r.prefill.tokensPerSecond.toFixed(0)} tok/s)`,
        atGemm(r.prefill.flops),
        fmtRatio(r.prefill.timing.medianMs / r.derived.prefillIdealMs),
        '—',
      ],
      ...r.probe.map((p, i) => seqRow(p, 1 + i)),
      ...r.score.map((s) => seqRow(s, null)),
      [
        'Peak RSS, decode + probe sessions loaded and run',
        fmtGB(r.peakRss.decodeAndProbe),
        `fp32 weights: ${fmtGB(r.model.weightBytes)}`,
        fmtRatio(r.derived.rssPerWeights),
        goal(r.goals.length - 1),
      ],
      ['Peak RSS, + score session', fmtGB(r.peakRss.withScoreToo), '', fmtRatio(r.peakRss.withScoreToo / r.model.weightBytes), '—'],
    ],
  );
  const limitRow = (c: ChainResult) => [
    `${c.label}, ${c.rows} row${c.rows === 1 ? '' : 's'}`,
    fmtGB(c.bytes),
    fmtMs(c.timing.medianMs),
    c.rows === 1 ? `${c.gbPerS.toFixed(1)} GB/s` : `${c.gflopPerS.toFixed(0)} GFLOP/s`,
  ];
  const limits = markdownTable(['ORT limit (Gemm transB=1, weights as graph inputs)', 'Weights read', 'Median', 'Rate'], [
    limitRow(r.limits.squareMatvec),
    limitRow(r.limits.squareGemm),
    limitRow(r.limits.modelMatvec),
    limitRow(r.limits.modelGemm),
  ]);
  const head = [
    `Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB (${m.platform}); ${m.date.slice(0, 10)}; onnxruntime-node ${m.onnxruntime}; Node ${m.node}; execution provider ${r.provider}; ${r.args.threads} intra-op threads; load average ${r.loadAverage.start.toFixed(2)} → ${r.loadAverage.end.toFixed(2)}.`,
    `Model: ${r.model.architecture} with ${r.model.config}'s shapes (${r.model.layers} layers, hidden ${r.model.hidden}, MLP ${r.model.intermediate}, vocab ${r.model.vocab}), random fp32 weights, ${(r.model.params / 1e6).toFixed(0)}M parameters = ${fmtGB(r.model.weightBytes)}.`,
  ];
  const shares = Object.entries(r.interference).filter((e): e is [string, number] => e[1] !== null);
  if (shares.length > 0) head.push(`Other processes' share of the cores during each phase: ${shares.map(([k, v]) => `${k} ${(100 * v).toFixed(0)}%`).join(', ')}.`);
  if (r.fallbacks.length > 0) head.push(`Fallbacks: ${r.fallbacks.map((f) => `${f.provider}: ${f.reason}`).join('; ')}.`);
  const summary = r.goals.map((g) => `- ${verdict(g.pass)}: ${g.name} — ${g.value.toFixed(2)}×`).join('\n');
  return `${head.join('\n')}\n\n${figures}\n\n${limits}\n\nThe limits are the higher of the two chains' rates. Decode per token ÷ weight-streaming time at the square chain's bandwidth: ${fmtRatio(r.derived.decodePerSquareChain)}; ÷ the model-shaped chain at 1 row: ${fmtRatio(r.derived.decodePerModelChain)}.\n\n${summary}\n`;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--child') {
    // one measurement of the llama.cpp comparison, in its own process (llama-compare.ts spawns it)
    process.stdout.write(`${JSON.stringify(await runChild(JSON.parse(argv[1]) as ChildSpec))}\n`);
    return;
  }
  if (argv.includes('--help') || argv.includes('-h')) throw new BenchArgsError(`${RUNTIME_USAGE}\n${COMPARE_USAGE}`);
  const { compare, rest } = parseCompareArgs(argv);
  const args = parseRuntimeArgs(rest);
  const report = compare.llamaOnly ? null : await run(args);
  let llamaCpp: CompareReport | null = null;
  if (compare.llama) {
    log('llama.cpp comparison (CPU)…');
    llamaCpp = await runComparison(compare, { config: args.config, threads: args.threads, prompt: args.prompt, tokens: args.tokens, seq: args.seq, log });
    if (llamaCpp.skipped) log(`llama.cpp not compared: ${llamaCpp.skipped}`);
  }
  const out = args.out ?? `bench/out/runtime-${compare.llamaOnly ? 'llama' : args.ep}.json`;
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(report ? { ...report, llamaCpp } : { machine: machineInfo(), args, llamaCpp }, null, 2)}\n`);
  if (report) process.stdout.write(markdown(report));
  if (llamaCpp) {
    if (!report) {
      const m = machineInfo();
      process.stdout.write(`Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB (${m.platform}); ${m.date.slice(0, 10)}; onnxruntime-node ${m.onnxruntime}; Node ${m.node}.\n`);
    }
    process.stdout.write(`\n${compareMarkdown(llamaCpp)}`);
  }
  log(`wrote ${out}`);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:runtime: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
