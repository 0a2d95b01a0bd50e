// One repair request, end to end, as the CLI and the worker run it: failures → examples (bad ones
// reported, not fatal), already-correct failures set aside, the chosen method, and a Patch record
// with provenance and cost. Per-model step sizes come from the model folder's `star-repair.json`
// (written by the tuning sweep of the benchmark) and fall back to STAR.md's defaults.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Failure } from '../failures/failure';
import type { TextTokenizer } from '../model/tokenizer';
import { assess, type RepairControl, type RepairModel } from './engine';
import type { SelectMode } from './locate';
import { newPatchId, patchSize, type JsonValue, type Patch, type RepairMethod, type RepairMode } from './patch';
import { repairMint, repairSgd } from './baselines';
import { repairStar, type RepairOutcome } from './star';
import { makeExample, RepairError, type Example } from './teacher';

export interface RepairRequest {
  method: RepairMethod;
  mode: RepairMode;
  /** undefined = the model's tuned default (MethodDefaults.star.select), else 'global'. */
  select?: SelectMode;
  epochs?: number;
  /** STAR's η or SGD's learning rate; undefined = the model's tuned default. */
  eta?: number;
  earlyStop?: boolean;
  topK?: number;
  fraction?: number;
  lineSearch?: boolean;
  /** MINT's traction factor. */
  f?: number;
}

export interface MethodDefaults {
  star: { eta: number; lineSearch?: boolean; select?: SelectMode; topK?: number; fraction?: number };
  sgd: { eta: number };
  mint: { f: number };
}

export const PAPER_DEFAULTS: MethodDefaults = { star: { eta: 0.01 }, sgd: { eta: 0.01 }, mint: { f: 0.01 } };

/** The tuned per-model defaults in `<modelDir>/star-repair.json`, else the paper's. */
export function methodDefaults(modelDir: string): MethodDefaults {
  const file = join(modelDir, 'star-repair.json');
  if (!existsSync(file)) return PAPER_DEFAULTS;
  try {
    const j = JSON.parse(readFileSync(file, 'utf8')) as Partial<MethodDefaults>;
    return { star: { ...PAPER_DEFAULTS.star, ...j.star }, sgd: { ...PAPER_DEFAULTS.sgd, ...j.sgd }, mint: { ...PAPER_DEFAULTS.mint, ...j.mint } };
  } catch {
    return PAPER_DEFAULTS;
  }
}

export interface Prepared {
  failure: Pick<Failure, 'id' | 'prompt' | 'desired'>;
  example: Example;
}

export interface Skipped {
  id: string;
  code: string;
  message: string;
}

export function prepareFailures(tokenizer: TextTokenizer, failures: readonly Pick<Failure, 'id' | 'prompt' | 'desired'>[], context: number): { prepared: Prepared[]; skipped: Skipped[] } {
  const prepared: Prepared[] = [];
  const skipped: Skipped[] = [];
  for (const failure of failures) {
    try {
      prepared.push({ failure, example: makeExample(tokenizer, failure.prompt, failure.desired, context) });
    } catch (e) {
      if (!(e instanceof RepairError)) throw e;
      skipped.push({ id: failure.id, code: e.code, message: e.message });
    }
  }
  return { prepared, skipped };
}

export interface RepairResult {
  patch: Patch;
  outcome: RepairOutcome;
  repaired: Prepared[];
  skipped: Skipped[];
}

export async function runRepair(model: RepairModel, fingerprint: string, items: readonly Prepared[], request: RepairRequest, defaults: MethodDefaults = PAPER_DEFAULTS, control: RepairControl = {}): Promise<RepairResult> {
  const start = performance.now();
  model.apply(null);
  const skipped: Skipped[] = [];
  const todo: Prepared[] = [];
  for (const item of items) {
    if ((await assess(model.runtime, item.example)).allCorrect) skipped.push({ id: item.failure.id, code: 'already-correct', message: 'the model already produces the desired completion: nothing to repair' });
    else todo.push(item);
  }
  if (todo.length === 0) throw new RepairError('already-correct', items.length ? 'every failure is already completed correctly: nothing to repair' : 'no failure to repair');
  const examples = todo.map((t) => t.example);
  const epochs = request.epochs ?? 10;
  const options: Record<string, JsonValue> = { epochs };
  let outcome: RepairOutcome;
  if (request.method === 'star') {
    const o = {
      mode: request.mode,
      select: request.select ?? defaults.star.select ?? 'global',
      epochs,
      eta: request.eta ?? defaults.star.eta,
      earlyStop: request.earlyStop ?? true,
      topK: request.topK ?? defaults.star.topK ?? 64,
      fraction: request.fraction ?? defaults.star.fraction ?? 0.05,
      lineSearch: request.lineSearch ?? defaults.star.lineSearch ?? false,
    };
    Object.assign(options, o);
    outcome = await repairStar(model, examples, o, control);
  } else if (request.method === 'sgd') {
    const o = { epochs, eta: request.eta ?? defaults.sgd.eta, earlyStop: request.earlyStop ?? true };
    Object.assign(options, o);
    outcome = await repairSgd(model, examples, o, control);
  } else {
    const o = { f: request.f ?? defaults.mint.f, candidates: 10, maxNeurons: 10 };
    Object.assign(options, o);
    outcome = await repairMint(model, examples, o, control);
  }
  const layers = outcome.acc.toLayers();
  const size = patchSize({ layers });
  const patch: Patch = {
    id: newPatchId(),
    modelFingerprint: fingerprint,
    method: request.method,
    mode: request.method === 'star' ? request.mode : request.method === 'sgd' ? 'batch' : 'iter',
    options,
    failureIds: todo.map((t) => t.failure.id),
    createdAt: new Date().toISOString(),
    layers,
    scores: { effectiveness: outcome.after.filter((a) => a.allCorrect).length / outcome.after.length, generalisation: null, specificity: null },
    stats: { ms: Math.round(performance.now() - start), peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024), neurons: size.neurons, params: size.params },
  };
  return { patch, outcome, repaired: todo, skipped };
}
