// `npm run bench:repair`: the repair benchmark on the embedded model, "fixed" meaning what the
// editor shows (runtime/completion.ts).
//  1. tunes STAR (selection × η, then preserved rows on the best), SGD's learning rate and MINT's f
//     on the VALIDATION split, same epoch budget, and writes the winners to
//     models/tiny-coder/star-repair.json: the configuration that fixes the most while keeping
//     specificity ≥ 0.98 (else the most specific);
//  2. on the TEST split, most important first (the report is rewritten after each run, so a
//     time-boxed run keeps what it reached): STAR, MINT and SGD tuned on single failures; 20
//     failures of the two largest groups at once; STAR with/without preserved rows; batches of 5
//     and 10; the authors' no-early-stop, the first batch variant, the paper's η, SGD's first
//     variant; the selection ablation;
//  3. time per epoch of each method on the Qwen2.5-Coder-0.5B-shaped random model (or the figures
//     of an earlier `--only-speed` run with `--skip-speed`);
//  4. writes the tables to BENCHMARKS.md (between the bench:repair markers) and JSON to bench/out/.
// Each sample is replayed as the extension completes there (its suffix and replay, FIM included:
// src/eval/bench.ts); a model with FIM tokens needs data built for it (npm run bench:data).
// Options: --ep cpu|webgpu|cuda, --data DIR, --model DIR, --groups N, --val-groups N,
//          --regression N, --preserve N, --skip-tuning, --skip-speed, --only-speed, --threads N,
//          --out DIR (JSON, default bench/out), --report FILE (default BENCHMARKS.md; a smoke run
//          points both elsewhere), --resume (go on with a time-boxed run: the tuning, the speed
//          figures and every result of the last run's JSON in --out are kept, and only the runs it
//          did not reach are measured; refused when that run was for another model or tuning),
//          --weights fp32|int8|int4 (the format the model runs in, default fp32; a quantised run
//          never tunes — it measures the fp32-tuned defaults of star-repair.json — and reports
//          between its own markers, bench:repair:<provider>-<format>, and into repair-<provider>-<format>.json).

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { BenchContext, benchMethod, loadBenchData, type MethodResult } from '../src/eval/bench';
import { parseConfig } from '../src/model/config';
import { randomCanonicalWeights } from '../src/model/synthetic';
import { RepairModel } from '../src/repair/engine';
import { resolveFim } from '../src/runtime/fim';
import type { SelectMode } from '../src/repair/locate';
import { methodDefaults, type MethodDefaults, type RepairRequest } from '../src/repair/run';
import { repairMint, repairSgd } from '../src/repair/baselines';
import { repairStar } from '../src/repair/star';
import type { Example } from '../src/repair/teacher';
import { openModel } from '../src/runtime/open';
import type { ProviderName } from '../src/runtime/providers';
import { WEIGHT_FORMATS, type WeightFormat } from '../src/runtime/weight-formats';
import { ModelRuntime } from '../src/runtime/runtime';
import { seededRandom } from '../src/util/random';
import { machineInfo } from './lib/machine';

const ROOT = resolve(__dirname, '..', '..');
const { values } = parseArgs({
  options: {
    ep: { type: 'string', default: 'cpu' },
    data: { type: 'string', default: join(ROOT, 'bench', 'data') },
    model: { type: 'string' },
    groups: { type: 'string', default: '12' },
    'val-groups': { type: 'string', default: '8' },
    regression: { type: 'string', default: '20' },
    preserve: { type: 'string', default: '8' },
    'skip-tuning': { type: 'boolean', default: false },
    weights: { type: 'string', default: 'fp32' },
    'skip-speed': { type: 'boolean', default: false },
    'only-speed': { type: 'boolean', default: false },
    resume: { type: 'boolean', default: false },
    threads: { type: 'string', default: '0' },
    out: { type: 'string', default: join(ROOT, 'bench', 'out') },
    report: { type: 'string', default: join(ROOT, 'BENCHMARKS.md') },
  },
});
const OUT = values.out!;

const SPECIFICITY_FLOOR = 0.98;
/** Counted rounds of the speed section. */
const ROUNDS = 2;
const STAR_ETAS = [0.1, 1];
const STAR_SELECTS: SelectMode[] = ['dense', 'layer'];
const PRESERVE_ROWS = [0, 128];
const SGD_ETAS = [0.1, 1];
const MINT_FS = [1];

function log(line: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

/** The product rule: most fixed among those keeping specificity ≥ the floor; else the most specific. Ties: generalisation, then specificity. */
function better(a: MethodResult, b: MethodResult | null): boolean {
  if (!b) return true;
  const safe = (r: MethodResult) => (r.specificity.rate >= SPECIFICITY_FLOOR ? 1 : 0);
  const key = (r: MethodResult) => [safe(r), safe(r) ? r.effectiveness.rate : r.specificity.rate, r.generalisation.rate, r.specificity.rate];
  const ka = key(a);
  const kb = key(b);
  for (let i = 0; i < ka.length; i++) if (Math.abs(ka[i] - kb[i]) > 1e-9) return ka[i] > kb[i];
  return false;
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const mean = (xs: readonly number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);

function resultsTable(results: readonly MethodResult[]): string {
  const head = '| method | fixed in the editor | token accuracy (authors\' ExactMatch) | generalisation (fixed) | single-token gen. | specificity (still right) | single-token spec. | epochs / repair | ms / epoch | ms / failure | ms / fixed | neurons | params |';
  const rows = results.map((r) => `| ${r.name} | ${r.effectiveness.fixed}/${r.repaired} (${pct(r.effectiveness.rate)}) | ${pct(r.effectiveness.tokenAccuracyBefore)} → ${pct(r.effectiveness.tokenAccuracyAfter)} | ${r.generalisation.fixed}/${r.generalisation.total} (${pct(r.generalisation.rate)}) | ${r.authors.generalisation.fixed}/${r.authors.generalisation.total} | ${r.specificity.kept}/${r.specificity.total} (${pct(r.specificity.rate)}) | ${r.authors.specificity.kept}/${r.authors.specificity.total} | ${r.epochsPerRepair.toFixed(1)} | ${r.msPerEpoch.toFixed(0)} | ${r.msPerFailure.toFixed(0)} | ${r.msPerFixed === null ? '–' : r.msPerFixed.toFixed(0)} | ${r.neurons.toFixed(0)} | ${r.params.toFixed(0)} |`);
  return [head, '|---|---|---|---|---|---|---|---|---|---|---|---|---|', ...rows].join('\n');
}

interface SpeedRow {
  method: string;
  layers: number;
  msPerEpoch: number[];
}

/** Time per epoch on the 0.5B-shaped random model: one synthetic failure of 8 target tokens after 56 prompt tokens. */
async function speed(provider: ProviderName, threads: number): Promise<{ rows: SpeedRow[]; config: string }> {
  const file = join(ROOT, 'bench', 'configs', 'qwen2.5-coder-0.5b.json');
  const config = parseConfig(JSON.parse(readFileSync(file, 'utf8')), file);
  const weights = randomCanonicalWeights(config, 7);
  const runtime = new ModelRuntime(config, weights, { provider, threads });
  const model = new RepairModel(runtime, weights);
  const random = seededRandom(11);
  const T = 64;
  const seq = Array.from({ length: T + 1 }, () => Math.floor(random() * 32000));
  const targets = Array.from({ length: 8 }, (_, k) => T - 8 + k);
  const ex: Example = { ids: seq.slice(0, T), nextTokens: seq.slice(1), targetPositions: targets, desired: targets.map((p) => seq[p + 1]), allowed: targets.map(() => null), alsoRight: targets.map(() => null), truncated: 0 };
  // Rounds interleave the methods (one epoch each per round), so a busy machine slows them alike;
  // a first round builds the sessions (full and truncated probe) and is not counted.
  const rows: SpeedRow[] = [
    { method: 'STAR batch, dense (every layer)', layers: 0, msPerEpoch: [] },
    { method: 'STAR batch, layer (top quarter of layers, backward stops there)', layers: 0, msPerEpoch: [] },
    { method: 'SGD (every layer)', layers: 0, msPerEpoch: [] },
    { method: 'MINT (one token, 2 neurons tried)', layers: 0, msPerEpoch: [] },
  ];
  const one: Example = { ...ex, targetPositions: [targets[0]], desired: [ex.desired[0]], allowed: [null], alsoRight: [null] };
  for (let round = 0; round <= ROUNDS; round++) {
    log(`speed: round ${round}/${ROUNDS}`);
    const runs = [
      () => repairStar(model, [ex], { mode: 'batch', select: 'dense', epochs: 1, eta: 0.01, stopWhen: 'never' }),
      () => repairStar(model, [ex], { mode: 'batch', select: 'layer', epochs: 1, eta: 0.01, stopWhen: 'never' }),
      () => repairSgd(model, [ex], { epochs: 1, eta: 0.01, stopWhen: 'never' }),
      () => repairMint(model, [one], { f: 0.01, maxNeurons: 2 }),
    ];
    for (let i = 0; i < runs.length; i++) {
      const o = await runs[i]();
      if (round === 0) continue;
      rows[i].msPerEpoch.push(...o.epochMs);
      rows[i].layers = i === 3 ? config.layers - Math.floor(config.layers / 2) : o.layers.length;
    }
  }
  await runtime.release();
  return { rows, config: 'Qwen2.5-Coder-0.5B shapes (24 layers, d 896, 4864 neurons, vocabulary 151,936), random weights, fp32' };
}

/** JSON with sorted keys: equal settings compare equal whatever order their keys were written in. */
function canonical(x: unknown): string {
  return JSON.stringify(x, (_k, v: unknown) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b))) : v));
}

interface SavedRun {
  model?: string;
  tuned: MethodDefaults;
  sweep: { method: string; setting: string; result: MethodResult }[];
  main: MethodResult[];
  variants: MethodResult[];
  ablation: MethodResult[];
  batches: MethodResult[];
  largest: MethodResult[];
  speed: { rows: SpeedRow[]; config: string } | null;
}

/**
 * The last run's JSON for --resume, checked against this model and its tuned defaults. A JSON
 * written before it recorded the model is accepted when it comes from the run that tuned this
 * model's star-repair.json (same start time, that file's fingerprint is this model's).
 */
function resumeFrom(file: string, modelDir: string, fingerprint: string, tuned: MethodDefaults): SavedRun & { results: MethodResult[] } {
  if (!existsSync(file)) throw new Error(`--resume: ${file} does not exist (run the benchmark without --resume first)`);
  const saved = JSON.parse(readFileSync(file, 'utf8')) as SavedRun & { started?: string };
  if (saved.model === undefined) {
    const defaultsFile = join(modelDir, 'star-repair.json');
    const d = existsSync(defaultsFile) ? (JSON.parse(readFileSync(defaultsFile, 'utf8')) as { tunedAt?: string; modelFingerprint?: string }) : {};
    if (d.modelFingerprint === fingerprint && d.tunedAt !== undefined && d.tunedAt === saved.started) saved.model = fingerprint;
  }
  if (saved.model !== fingerprint) throw new Error(`--resume: ${file} was measured on another model (${String(saved.model).slice(0, 12)}…, this one is ${fingerprint.slice(0, 12)}…)`);
  if (canonical(saved.tuned) !== canonical(tuned)) throw new Error(`--resume: ${file} was measured with other repair defaults than the model folder's star-repair.json`);
  return { ...saved, results: [...saved.main, ...saved.variants, ...saved.ablation, ...saved.batches, ...saved.largest] };
}

async function main(): Promise<void> {
  const started = new Date();
  const threads = Number(values.threads);
  if (values['only-speed']) {
    const r = await speed(values.ep as ProviderName, threads);
    mkdirSync(OUT, { recursive: true });
    writeFileSync(join(OUT, 'repair-speed.json'), JSON.stringify({ started, machine: machineInfo(), ...r }, null, 2));
    process.stdout.write(JSON.stringify(r, null, 2) + '\n');
    return;
  }
  if (!WEIGHT_FORMATS.includes(values.weights as WeightFormat)) throw new Error(`--weights takes ${WEIGHT_FORMATS.join(', ')}; got "${values.weights}"`);
  const format = values.weights as WeightFormat;
  const { folder, runtime, repairWeights } = openModel(values.model, { provider: values.ep as ProviderName, threads, weights: format });
  const model = new RepairModel(runtime, repairWeights);
  /** What names this run's JSON and report block: the provider, and the format when not fp32. */
  const runName = format === 'fp32' ? runtime.provider : `${runtime.provider}-${format}`;
  const data = loadBenchData(values.data!);
  // The data must replay the prompt the extension builds for this model (FIM when it has the tokens).
  const modelFim = resolveFim(folder.tokenizer);
  const dataFim = data.failures.find((f) => f.replay?.fim)?.replay?.fim ?? null;
  const fimText = dataFim ? `FIM prompt (${dataFim.format}, ${dataFim.order.toUpperCase()}) with the text after the line` : 'prefix-only prompt';
  if (JSON.stringify(modelFim) !== JSON.stringify(dataFim)) {
    log(`WARNING: ${values.data} was built with a ${fimText}, but the extension completes with ${modelFim ? `FIM ${modelFim.format} ${modelFim.order}` : 'prefix-only'} prompts on this model: rebuild it (npm run bench:data -- --model DIR)`);
  }
  const progress = (i: number, n: number, name: string) => {
    if (i % 6 === 0) log(`${name}: ${i}/${n}`);
  };
  const regressionSamples = Number(values.regression);
  const preserveSamples = Number(values.preserve);
  const ctxOptions = { perGroup: 1, regressionSamples, preserveSamples, onFailure: progress };
  const val = new BenchContext(model, folder.tokenizer, data, { ...ctxOptions, split: 'validation', maxGroups: Number(values['val-groups']) });
  const test = new BenchContext(model, folder.tokenizer, data, { ...ctxOptions, split: 'test', maxGroups: Number(values.groups) });
  for (const [name, c] of [['validation', val], ['test', test]] as const) {
    if (c.skipped.length) log(`${name}: ${c.skipped.length} samples the editor cannot show as a completion on this model are left out (${c.skipped.slice(0, 3).join(', ')}${c.skipped.length > 3 ? ', …' : ''})`);
  }
  const paper: MethodDefaults = { star: { eta: 0.01 }, sgd: { eta: 0.01 }, mint: { f: 0.01 } };
  const star = (o: Partial<RepairRequest>): RepairRequest => ({ method: 'star', mode: 'batch', select: 'dense', preserveRows: 0, ...o });

  // 1. Tuning on the validation split (or, with --resume, the last run's).
  let tuned = methodDefaults(folder.dir);
  const previous = values.resume ? resumeFrom(join(OUT, `repair-${runName}.json`), folder.dir, folder.fingerprint, tuned) : null;
  const sweep: { method: string; setting: string; result: MethodResult }[] = previous?.sweep ?? [];
  if (!values['skip-tuning'] && !previous && format === 'fp32') {
    let bestStar: { r: MethodResult; req: RepairRequest } | null = null;
    for (const select of STAR_SELECTS) for (const eta of STAR_ETAS) {
      const req = star({ eta, select, preserveRows: 0 });
      const r = await benchMethod(val, `star ${select} η=${eta}`, req, paper);
      sweep.push({ method: 'star', setting: `${select}, η=${eta}, preserve 0`, result: r });
      if (better(r, bestStar?.r ?? null)) bestStar = { r, req };
    }
    // Preserved rows cost a probe per preserved sample per epoch: tried on the best plain setting.
    for (const preserveRows of PRESERVE_ROWS.filter((x) => x > 0)) {
      const req = { ...bestStar!.req, preserveRows };
      const r = await benchMethod(val, `star ${req.select} η=${req.eta} rows=${preserveRows}`, req, paper);
      sweep.push({ method: 'star', setting: `${req.select}, η=${req.eta}, preserve ${preserveRows}`, result: r });
      if (better(r, bestStar!.r)) bestStar = { r, req };
    }
    let bestSgd: { r: MethodResult; eta: number } | null = null;
    for (const eta of SGD_ETAS) {
      const r = await benchMethod(val, `sgd η=${eta}`, { method: 'sgd', eta }, paper);
      sweep.push({ method: 'sgd', setting: `η=${eta}`, result: r });
      if (better(r, bestSgd?.r ?? null)) bestSgd = { r, eta };
    }
    let bestMint: { r: MethodResult; f: number } | null = null;
    for (const f of MINT_FS) {
      const r = await benchMethod(val, `mint f=${f}`, { method: 'mint', f }, paper);
      sweep.push({ method: 'mint', setting: `f=${f}`, result: r });
      if (better(r, bestMint?.r ?? null)) bestMint = { r, f };
    }
    const b = bestStar!.req;
    tuned = {
      star: { eta: b.eta!, mode: 'batch', select: b.select!, preserveRows: b.preserveRows!, stopWhen: 'target-right', lineSearch: false },
      sgd: { eta: bestSgd!.eta },
      mint: { f: bestMint!.f },
    };
    writeFileSync(
      join(folder.dir, 'star-repair.json'),
      JSON.stringify({ ...tuned, note: 'Per-model repair defaults, tuned on the validation split of bench/data by `npm run bench:repair` (see BENCHMARKS.md): the most failures fixed in the editor with specificity ≥ 0.98.', tunedAt: started.toISOString(), modelFingerprint: folder.fingerprint }, null, 2) + '\n',
    );
    log(`tuned: ${JSON.stringify(tuned)}`);
    mkdirSync(OUT, { recursive: true });
    writeFileSync(join(OUT, 'repair-tuning.json'), JSON.stringify({ started, tuned, sweep }, null, 2));
  }

  // 2. The test split, single failures.
  const t = tuned.star;
  const starTuned = star({ eta: t.eta, select: t.select ?? 'dense', preserveRows: t.preserveRows ?? 0 });
  const main: MethodResult[] = [...(previous?.main ?? [])];
  const variants: MethodResult[] = [...(previous?.variants ?? [])];
  const ablation: MethodResult[] = [...(previous?.ablation ?? [])];
  const speedRun = previous ? previous.speed : values['skip-speed'] ? null : await speed(values.ep as ProviderName, threads);
  // 3. Several failures at once; the report is rewritten after every run, so an interrupted run keeps what it measured.
  const batches: MethodResult[] = [...(previous?.batches ?? [])];
  const largest: MethodResult[] = [...(previous?.largest ?? [])];
  /** A run of the plan, unless --resume found it measured already (same name and request). */
  const measured = (ctx: BenchContext, name: string, req: RepairRequest, t: MethodDefaults, batch?: number): Promise<MethodResult> => {
    const kept = previous?.results.find((r) => r.name === name && canonical(r.request) === canonical(req));
    return kept ? Promise.resolve(kept) : benchMethod(ctx, name, req, t, batch);
  };
  const report = async (): Promise<void> => {
    // 4. Time per epoch at a real model's size (or the figures of an earlier --only-speed run).
    const speedFile = join(OUT, 'repair-speed.json');
    const speedResult = speedRun ? speedRun
      : existsSync(speedFile) ? (JSON.parse(readFileSync(speedFile, 'utf8')) as { rows: SpeedRow[]; config: string; started: string }) : null;

    // 5. Report.
    const machine = machineInfo();
    const [s, ...base] = main;
    const fastest = Math.min(...base.map((r) => r.msPerFixed ?? Infinity));
    const goals = main.length < 3 ? ['(not measured yet)'] : [
      `STAR fixes ${pct(s.effectiveness.rate)} of single failures in the editor (goal ≥ 90%) with specificity ${pct(s.specificity.rate)} (goal ≥ 98%): ${s.effectiveness.rate >= 0.9 && s.specificity.rate >= 0.98 ? 'PASS' : 'MISS'}`,
      `STAR effectiveness ${base.every((b) => s.effectiveness.rate >= b.effectiveness.rate) ? '≥' : '<'} MINT and SGD; generalisation ${base.every((b) => s.generalisation.rate >= b.generalisation.rate) ? '≥' : '< at least one of'} them; specificity ${base.every((b) => s.specificity.rate >= b.specificity.rate) ? 'equal or better' : 'worse than at least one'}`,
      `STAR time per fixed failure ${s.msPerFixed === null ? '–' : s.msPerFixed.toFixed(0)} ms vs the faster baseline ${Number.isFinite(fastest) ? fastest.toFixed(0) : '–'} ms: ${s.msPerFixed !== null && Number.isFinite(fastest) ? (fastest / s.msPerFixed).toFixed(2) : '–'}× (goal ≥ 2×)`,
    ];
    if (largest.length) goals.push(`20 failures at once (two largest groups): STAR fixes ${largest[0].effectiveness.fixed}/${largest[0].repaired} (goal ≥ 15) with specificity ${pct(largest[0].specificity.rate)} (goal ≥ 95%)`);
    const sweepTable = ['| method | setting | fixed | generalisation | specificity | ms / failure |', '|---|---|---|---|---|---|', ...sweep.map((x) => `| ${x.method} | ${x.setting} | ${x.result.effectiveness.fixed}/${x.result.repaired} | ${x.result.generalisation.fixed}/${x.result.generalisation.total} | ${x.result.specificity.kept}/${x.result.specificity.total} (${pct(x.result.specificity.rate)}) | ${x.result.msPerFailure.toFixed(0)} |`)].join('\n');
    const speedTable = speedResult
      ? [`${speedResult.config}; one failure of 8 target tokens after 56 prompt tokens; ${ROUNDS} rounds, each method one epoch per round, interleaved${'started' in speedResult ? ` (measured ${String(speedResult.started).slice(0, 16)} by \`--only-speed\`)` : ''}.`, '', '| method | layers changed | ms per epoch (each round) | vs SGD |', '|---|---|---|---|', ...speedResult.rows.map((r) => `| ${r.method} | ${r.layers} | ${r.msPerEpoch.map((x) => x.toFixed(0)).join(', ')} | ${(mean(speedResult.rows[2].msPerEpoch) / mean(r.msPerEpoch)).toFixed(2)}× faster |`)].join('\n')
      : '(skipped)';
    const stats = existsSync(join(values.data!, 'stats.json')) ? (JSON.parse(readFileSync(join(values.data!, 'stats.json'), 'utf8')) as { groupedFailures: number; groups: number; correctSamples?: number; completionTeacherDisagreements?: number }) : null;
    const section = [
      `## Repair (${runtime.provider.toUpperCase()}${format === 'fp32' ? '' : `, ${format} weights`})`,
      '',
      `Measured by \`npm run bench:repair -- --ep ${values.ep}${format === 'fp32' ? '' : ` --weights ${format}`}\` on ${started.toISOString().slice(0, 10)}: ${machine.cpu}, ${machine.cores} cores, Node ${machine.node}, onnxruntime-node ${machine.onnxruntime}, execution provider ${runtime.provider}. Model: ${folder.name} (${folder.fingerprint.slice(0, 12)}…). Data: ${resolve(values.data!) === join(ROOT, 'bench', 'data') ? 'bench/data' : values.data}${stats ? ` (${stats.groupedFailures} failures in ${stats.groups} groups, ${stats.correctSamples} correct samples; completion and teacher-forced target disagreed on ${stats.completionTeacherDisagreements ?? '?'} samples)` : ''}. "Fixed" = the completion the extension shows at that place (${fimText}, token healing, line stop rule, 32-token budget) equals the desired line; specificity is measured on ${regressionSamples} correct samples, and specificity-preserving STAR keeps ${preserveSamples} other ones. Single failures: the first failure of each of the ${values.groups} largest test groups, each repaired on its own from the unpatched model; generalisation on the other failures of the group. Tuned on the validation split (first failure of the ${values['val-groups']} largest groups), 10-epoch budget.`,
      '',
      '### STAR vs MINT vs SGD (test split, single failures, tuned)',
      '',
      resultsTable(main),
      '',
      ...goals.map((g) => `- ${g}`),
      '',
      '### Variants (test split, single failures)',
      '',
      resultsTable(variants),
      '',
      '### STAR neuron selection (test split)',
      '',
      resultsTable(ablation),
      '',
      '### Several failures in one repair (test split)',
      '',
      resultsTable([...batches, ...largest]),
      '',
      '### Time per epoch at Qwen2.5-Coder-0.5B size',
      '',
      speedTable,
      '',
      sweep.length === 0 ? '' : `### Tuning sweep (validation split)\n\n${sweepTable}\n\nChosen: ${JSON.stringify(tuned)} (written to \`${join('models', folder.name, 'star-repair.json')}\`).`,
    ].join('\n');
    mkdirSync(OUT, { recursive: true });
    writeFileSync(join(OUT, `repair-${runName}.json`), JSON.stringify({ started, model: folder.fingerprint, tuned, sweep, main, variants, ablation, batches, largest, speed: speedResult }, null, 2));
    const file = values.report!;
    const start = `<!-- bench:repair:${runName}:start -->`;
    const end = `<!-- bench:repair:${runName}:end -->`;
    let md = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n';
    const block = `${start}\n${section}\n${end}`;
    md = md.includes(start) ? md.slice(0, md.indexOf(start)) + block + md.slice(md.indexOf(end) + end.length) : `${md.trimEnd()}\n\n${block}\n`;
    writeFileSync(file, md);
    process.stdout.write(section + '\n');

  };
  // Most important first: whatever a time-boxed run reaches is reported.
  const twoGroups = new BenchContext(model, folder.tokenizer, data, { ...ctxOptions, split: 'test', perGroup: 12, maxGroups: 2, maxFailures: 20 });
  const plan: [MethodResult[], () => Promise<MethodResult>][] = [
    [main, () => measured(test, `STAR (η=${t.eta}, ${starTuned.select}, preserve ${starTuned.preserveRows})`, starTuned, tuned)],
    [main, () => measured(test, `MINT (f=${tuned.mint.f})`, { method: 'mint', f: tuned.mint.f }, tuned)],
    [main, () => measured(test, `SGD (η=${tuned.sgd.eta})`, { method: 'sgd', eta: tuned.sgd.eta }, tuned)],
    [largest, () => measured(twoGroups, 'STAR, the 20 first failures of the two largest groups', starTuned, tuned, 20)],
    [variants, () => (starTuned.preserveRows ?? 0) > 0
      ? measured(test, 'STAR without preserving rows (plain STAR)', { ...starTuned, preserveRows: 0 }, tuned)
      : measured(test, 'STAR preserving 64 rows', { ...starTuned, preserveRows: 64 }, tuned)],
    [batches, () => measured(test, 'STAR, 5 at once', starTuned, tuned, 5)],
    [batches, () => measured(test, 'STAR, 10 at once', starTuned, tuned, 10)],
    [batches, () => measured(test, 'SGD, 5 at once', { method: 'sgd', eta: tuned.sgd.eta }, tuned, 5)],
    [batches, () => measured(test, 'SGD, 10 at once', { method: 'sgd', eta: tuned.sgd.eta }, tuned, 10)],
    [largest, () => measured(twoGroups, 'SGD, the same 20', { method: 'sgd', eta: tuned.sgd.eta }, tuned, 20)],
    [variants, () => measured(test, 'STAR, first batch variant (right positions left out, stop when the first failing ones are fixed)', { ...starTuned, rightPositions: 'omit', stopWhen: 'failing-fixed' }, tuned)],
    [variants, () => measured(test, 'SGD, loss over the failing positions only', { method: 'sgd', eta: tuned.sgd.eta, sgdLoss: 'failing' }, tuned)],
    ...(['dense', 'layer', 'global'] as const).filter((x) => x !== starTuned.select).map((select): [MethodResult[], () => Promise<MethodResult>] => [ablation, () => measured(test, `STAR select=${select}`, { ...starTuned, select }, tuned)]),
    // The two that run every repair to the full epoch budget come last: they take the longest.
    [variants, () => measured(test, 'STAR, no early stopping (the authors)', { ...starTuned, stopWhen: 'never' }, tuned)],
    [variants, () => measured(test, 'STAR, paper η=0.01', { ...starTuned, eta: 0.01 }, tuned)],
  ];
  await report();
  for (const [into, run] of plan) {
    const r = await run();
    if (!into.includes(r)) {
      into.push(r);
      await report();
    }
  }
  await runtime.release();
}

main().catch((e) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
