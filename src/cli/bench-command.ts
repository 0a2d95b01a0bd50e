// `star-repair bench`: the repair benchmark (STAR, MINT, SGD and STAR's selection-mode ablation)
// on a benchmark data folder, as JSON or a table, in the --weights format (quantised: the engine
// reads Ŵ, repair/repair-weights.ts).

import { benchMethod, BenchContext, loadBenchData, type MethodResult } from '../eval/bench';
import { RepairModel } from '../repair/engine';
import { MAX_PATCH_PARAMS, patchTooLarge, type RepairMethod } from '../repair/patch';
import { methodDefaults, plannedPatch, type RepairRequest } from '../repair/run';
import { openModel } from '../runtime/open';
import { intFlag, print, UsageError, type Command } from './common';

export function formatResults(results: readonly MethodResult[]): string {
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const rows = results.map((r) =>
    [r.name, `${r.effectiveness.fixed}/${r.repaired} (${pct(r.effectiveness.rate)})`, `${pct(r.effectiveness.tokenAccuracyBefore)} → ${pct(r.effectiveness.tokenAccuracyAfter)}`, `${r.generalisation.fixed}/${r.generalisation.total} (${pct(r.generalisation.rate)})`, r.generalisation.meanDeltaP.toFixed(4), `${r.specificity.kept}/${r.specificity.total} (${pct(r.specificity.rate)})`, r.specificity.meanAbsDeltaTopP.toFixed(4), r.msPerFailure.toFixed(0), r.msPerFixed === null ? '–' : r.msPerFixed.toFixed(0), String(r.peakRssMb), r.neurons.toFixed(1), r.params.toFixed(0)].join(' | '),
  );
  return ['| method | effectiveness (exact match) | token accuracy | generalisation (fixed) | gen. mean ΔP(y) | specificity (still right) | spec. mean abs ΔP(top-1) | ms / failure | ms / fixed failure | peak RSS MB | neurons | params |', '|---|---|---|---|---|---|---|---|---|---|---|---|', ...rows.map((r) => `| ${r} |`)].join('\n');
}

export const benchCommand: Command = {
  summary: 'benchmark STAR against MINT and SGD on a benchmark data folder',
  usage: 'star-repair bench [<modelDir>] --data DIR [--methods star,mint,sgd] [--split test|validation] [--per-group N] [--regression N] [--no-ablation] [--json]',
  options: { data: { type: 'string' }, methods: { type: 'string' }, split: { type: 'string' }, 'per-group': { type: 'string' }, regression: { type: 'string' }, 'no-ablation': { type: 'boolean' } },
  async run(dir, flags, rt) {
    if (typeof flags.data !== 'string') throw new UsageError('give the benchmark data folder with --data DIR (see bench/data)');
    const methods = String(flags.methods ?? 'star,mint,sgd').split(',') as RepairMethod[];
    for (const m of methods) if (!['star', 'mint', 'sgd'].includes(m)) throw new UsageError(`unknown method ${m}: use star, mint, sgd`);
    const split = (flags.split ?? 'test') as 'test' | 'validation';
    if (split !== 'test' && split !== 'validation') throw new UsageError('--split must be test or validation');
    const { folder, runtime, repairWeights } = openModel(dir, rt);
    const defaults = methodDefaults(folder.dir);
    const ctx = new BenchContext(new RepairModel(runtime, repairWeights), folder.tokenizer, loadBenchData(flags.data), {
      split,
      perGroup: intFlag(flags, 'per-group', 3),
      regressionSamples: intFlag(flags, 'regression', 40),
      onFailure: flags.json ? undefined : (i, n, name) => process.stderr.write(`\r${name}: ${i + 1}/${n}   `),
    });
    const base: RepairRequest = { method: 'star', mode: 'batch', select: defaults.star.select ?? 'global' };
    // A method whose patch could not be sent or stored on this model (SGD or dense STAR on a real
    // model) is left out, saying why, instead of failing the run.
    const skipped: { name: string; reason: string }[] = [];
    const run = async (name: string, request: RepairRequest, into: MethodResult[]) => {
      const { values } = plannedPatch(folder.config, request, defaults);
      if (values <= MAX_PATCH_PARAMS) into.push(await benchMethod(ctx, name, request, defaults));
      else skipped.push({ name, reason: patchTooLarge(values) });
    };
    const results: MethodResult[] = [];
    for (const m of methods) await run(m, { ...base, method: m }, results);
    const ablation: MethodResult[] = [];
    if (methods.includes('star') && !flags['no-ablation']) {
      for (const select of ['dense', 'global', 'layer'] as const) await run(`star ${select}`, { ...base, select }, ablation);
    }
    for (const s of skipped) process.stderr.write(`\nskipped ${s.name}: ${s.reason}\n`);
    const out = { model: folder.name, executionProvider: runtime.provider, split, methods: results, ablation, skipped };
    print(flags, out, () => `\n${formatResults(results)}\n\nSTAR selection modes:\n${formatResults(ablation)}`);
    await runtime.release();
    return out;
  },
};
