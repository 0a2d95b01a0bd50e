// `star-repair repair | eval`: repairing a model on failures from a JSONL file and evaluating a
// patch, with the same engine the extension's worker runs. With --weights int8/int4 the model is
// loaded without an fp32 copy and the engine reads the quantised Ŵ (repair/repair-weights.ts).

import { readFileSync, writeFileSync } from 'node:fs';
import { evaluatePatch } from '../eval/evaluate';
import { parseFailuresJsonl, type Failure } from '../failures/failure';
import { RepairModel } from '../repair/engine';
import { SELECT_MODES, type SelectMode } from '../repair/locate';
import { checkPatchForModel, combinePatches, REPAIR_METHODS, REPAIR_MODES, stringifyPatch, type RepairMethod, type RepairMode } from '../repair/patch';
import { STOP_WHEN, type StopWhen } from '../repair/star';
import { readPatchFile } from '../store/patch-file';
import { methodDefaults, prepareFailures, runRepair } from '../repair/run';
import { openModel } from '../runtime/open';
import { print, UsageError, type Command, type Flags } from './common';

function choice<T extends string>(flags: Flags, name: string, allowed: readonly T[], fallback: T): T {
  const v = flags[name];
  if (v === undefined) return fallback;
  if (!allowed.includes(v as T)) throw new UsageError(`--${name} must be one of ${allowed.join(', ')}, got ${String(v)}`);
  return v as T;
}

function numberFlag(flags: Flags, name: string): number | undefined {
  const v = flags[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--${name} must be a positive number, got ${String(v)}`);
  return n;
}

/** Reads a failures file; malformed lines are reported on stderr with their numbers and skipped. */
export function readFailures(file: string | boolean | undefined, what: string): Failure[] {
  if (typeof file !== 'string') throw new UsageError(`give the ${what} with --${what} F.jsonl`);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read ${file}: ${(e as Error).message}`);
  }
  const { failures, errors } = parseFailuresJsonl(text);
  for (const e of errors) process.stderr.write(`${file}:${e.line}: ${e.message} (line skipped)\n`);
  return failures;
}

export const repairCommands: Record<string, Command> = {
  repair: {
    summary: 'repair the model on failures (STAR, MINT or SGD) and write the patch',
    usage: 'star-repair repair [<modelDir>] --failures F.jsonl [--method star|mint|sgd] [--mode iter|batch] [--select dense|global|layer|one-layer] [--epochs N] [--eta X] [--stop target-right|failing-fixed|never] [--margin X] [--line-search] [--preserve R.jsonl [--preserve-rows N]] [--out patch.json] [--json]',
    options: {
      failures: { type: 'string' }, method: { type: 'string' }, mode: { type: 'string' }, select: { type: 'string' }, epochs: { type: 'string' }, eta: { type: 'string' }, f: { type: 'string' },
      'top-k': { type: 'string' }, fraction: { type: 'string' }, 'line-search': { type: 'boolean' }, stop: { type: 'string' }, margin: { type: 'string' },
      preserve: { type: 'string' }, 'preserve-rows': { type: 'string' }, out: { type: 'string' },
    },
    async run(dir, flags, rt) {
      const failures = readFailures(flags.failures, 'failures');
      const preserveFailures = flags.preserve === undefined ? [] : readFailures(flags.preserve, 'preserve');
      const { folder, runtime, repairWeights } = openModel(dir, rt);
      const defaults = methodDefaults(folder.dir);
      const { prepared, skipped } = prepareFailures(folder.tokenizer, failures, folder.config.maxPositions);
      for (const s of skipped) process.stderr.write(`failure ${s.id}: ${s.message} (skipped)\n`);
      const preserve = prepareFailures(folder.tokenizer, preserveFailures, folder.config.maxPositions).prepared.map((p) => p.example);
      const abort = new AbortController();
      process.once('SIGINT', () => abort.abort());
      const epochs = flags.epochs === undefined ? undefined : Number(flags.epochs);
      if (epochs !== undefined && !(Number.isInteger(epochs) && epochs >= 1)) throw new UsageError('--epochs must be a positive integer');
      const margin = flags.margin === undefined ? undefined : Number(flags.margin);
      if (margin !== undefined && !(margin >= 0 && margin <= 20)) throw new UsageError('--margin must be a number from 0 to 20');
      const preserveRows = flags['preserve-rows'] === undefined ? undefined : Number(flags['preserve-rows']);
      if (preserveRows !== undefined && !(Number.isInteger(preserveRows) && preserveRows >= 0 && preserveRows <= 4096)) throw new UsageError('--preserve-rows must be an integer from 0 to 4096');
      const result = await runRepair(
        new RepairModel(runtime, repairWeights),
        folder.tokenizer,
        folder.fingerprint,
        prepared,
        {
          method: choice<RepairMethod>(flags, 'method', REPAIR_METHODS, defaults.method ?? 'star'),
          mode: flags.mode === undefined ? undefined : choice<RepairMode>(flags, 'mode', REPAIR_MODES, 'batch'),
          select: flags.select === undefined ? undefined : choice<SelectMode>(flags, 'select', SELECT_MODES, 'dense'),
          stopWhen: flags.stop === undefined ? undefined : choice<StopWhen>(flags, 'stop', STOP_WHEN, 'target-right'),
          margin,
          preserveRows,
          epochs,
          eta: numberFlag(flags, 'eta'),
          f: numberFlag(flags, 'f'),
          topK: numberFlag(flags, 'top-k'),
          fraction: numberFlag(flags, 'fraction'),
          lineSearch: flags['line-search'] ? true : undefined,
        },
        defaults,
        { signal: abort.signal },
        { preserve },
      );
      for (const s of result.skipped) process.stderr.write(`failure ${s.id}: ${s.message} (skipped)\n`);
      if (typeof flags.out === 'string') writeFileSync(flags.out, stringifyPatch(result.patch));
      const o = result.outcome;
      const tokens = (as: typeof o.before) => {
        const all = as.flatMap((a) => a.correct);
        return all.filter(Boolean).length / all.length;
      };
      const summary = {
        method: result.patch.method,
        mode: result.patch.mode,
        failures: result.repaired.length,
        /** Failures the editor now completes as desired (same prompt, healing and stop rule). */
        fixed: result.fixed.length,
        fixedIds: result.fixed,
        tokenAccuracyBefore: tokens(o.before),
        tokenAccuracyAfter: tokens(o.after),
        neurons: result.patch.stats.neurons,
        params: result.patch.stats.params,
        layers: o.layers,
        epochs: o.epochs,
        ms: result.patch.stats.ms,
        peakRssMb: result.patch.stats.peakRssMb,
        skipped: [...skipped, ...result.skipped],
        patch: typeof flags.out === 'string' ? flags.out : null,
      };
      print(flags, summary, () =>
        `${summary.method} (${summary.mode}): fixed ${summary.fixed}/${summary.failures} as the editor shows them, token accuracy ${(100 * summary.tokenAccuracyBefore).toFixed(1)}% → ${(100 * summary.tokenAccuracyAfter).toFixed(1)}%, ${summary.neurons} neurons (${summary.params} parameters), ${summary.epochs} epochs, ${summary.ms} ms, peak RSS ${summary.peakRssMb} MB` + (summary.patch ? `\npatch written to ${summary.patch}` : ''),
      );
      await runtime.release();
      return summary;
    },
  },
  eval: {
    summary: 'evaluate a patch: effectiveness, generalisation, specificity',
    usage: 'star-repair eval [<modelDir>] --patch P.json --failures F.jsonl [--heldout H.jsonl] [--regression R.jsonl] [--json]',
    options: { patch: { type: 'string' }, failures: { type: 'string' }, heldout: { type: 'string' }, regression: { type: 'string' } },
    async run(dir, flags, rt) {
      if (typeof flags.patch !== 'string') throw new UsageError('give the patch with --patch P.json');
      const failures = readFailures(flags.failures, 'failures');
      const heldout = flags.heldout === undefined ? [] : readFailures(flags.heldout, 'heldout');
      const regression = flags.regression === undefined ? [] : readFailures(flags.regression, 'regression');
      const { folder, runtime, repairWeights } = openModel(dir, rt);
      const patch = readPatchFile(flags.patch, folder.config.hidden);
      checkPatchForModel(patch, { fingerprint: folder.fingerprint, hiddenSize: folder.config.hidden, numLayers: folder.config.layers, intermediateSize: folder.config.intermediate });
      const examples = (fs: Failure[]) => {
        const { prepared, skipped } = prepareFailures(folder.tokenizer, fs, folder.config.maxPositions);
        for (const s of skipped) process.stderr.write(`failure ${s.id}: ${s.message} (skipped)\n`);
        return prepared;
      };
      const result = await evaluatePatch(new RepairModel(runtime, repairWeights), folder.tokenizer, combinePatches([patch], folder.config.hidden), {
        repaired: examples(failures),
        heldout: examples(heldout),
        regression: examples(regression),
      });
      const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
      print(flags, result, () =>
        [
          `effectiveness: ${result.effectiveness.fixed}/${result.effectiveness.total} fixed (${pct(result.effectiveness.rate)}), token accuracy ${pct(result.effectiveness.tokenAccuracyBefore)} → ${pct(result.effectiveness.tokenAccuracyAfter)}`,
          result.generalisation ? `generalisation: ${result.generalisation.fixed}/${result.generalisation.total} held-out failures fixed (${pct(result.generalisation.rate)}), mean ΔP(desired) ${result.generalisation.meanDeltaP.toFixed(4)}, mean Δrank ${result.generalisation.meanDeltaRank.toFixed(2)}` : 'generalisation: no held-out failures given',
          result.specificity ? `specificity: ${result.specificity.kept}/${result.specificity.total} still right (${pct(result.specificity.rate)}), mean |ΔP(top-1)| ${result.specificity.meanAbsDeltaTopP.toFixed(4)}` : 'specificity: no regression samples given',
        ].join('\n'),
      );
      await runtime.release();
      return result;
    },
  },
};
