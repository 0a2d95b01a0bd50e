// One repair request, end to end, as the CLI, the worker and the bench run it: failures →
// examples built the editor's way (bad ones reported, not fatal), failures the editor already
// completes right set aside, the chosen method (options from the request, else the model's tuned
// defaults, else the paper's), and a Patch record with provenance and cost. "Fixed" is decided by
// running the completion the editor would show (runtime/completion.ts), never by a score alone.

import type { Failure } from '../failures/failure';
import type { ModelConfig } from '../model/config';
import type { TextTokenizer } from '../model/tokenizer';
import { DEFAULT_REPLAY, showsDesired, type CompletionReplay } from '../runtime/completion';
import { assess, type RepairControl, type RepairModel } from './engine';
import { fittingSelect, selectionRows, type SelectionSizing, type SelectMode } from './locate';
import { PAPER_DEFAULTS, type MethodDefaults } from './model-defaults';
import { MAX_PATCH_PARAMS, newPatchId, patchSize, patchTooLarge, type JsonValue, type Patch, type RepairMethod, type RepairMode } from './patch';
import { repairMint, repairSgd } from './baselines';
import { repairStar, STAR_DEFAULTS, type RepairOutcome, type RightPositions, type StopWhen } from './star';
import { makeExample, RepairError, type Example } from './teacher';

export { methodDefaults, PAPER_DEFAULTS, type MethodDefaults } from './model-defaults';

export interface RepairRequest {
  method: RepairMethod;
  /** undefined = the model's tuned mode, else batch. */
  mode?: RepairMode;
  /** undefined = the model's tuned selection, else the first of dense, layer, global whose patch fits (MAX_PATCH_PARAMS). */
  select?: SelectMode;
  epochs?: number;
  /** STAR's η or SGD's learning rate; undefined = the model's tuned default. */
  eta?: number;
  stopWhen?: StopWhen;
  margin?: number;
  rightPositions?: RightPositions;
  topK?: number;
  fraction?: number;
  layerShare?: number;
  lineSearch?: boolean;
  /** STAR's specificity-preserving rows (0: off); undefined = the model's tuned default. */
  preserveRows?: number;
  /** MINT's traction factor. */
  f?: number;
  mintStyle?: 'authors' | 'token-local';
  sgdLoss?: 'all' | 'failing';
}

/** What a repair needs of a failure: the text, and how the editor completed there. */
export type RepairTarget = Pick<Failure, 'id' | 'prompt' | 'desired'> & { replay?: CompletionReplay; after?: string; suffix?: string };

export interface Prepared {
  failure: RepairTarget;
  replay: CompletionReplay;
  example: Example;
}

export interface Skipped {
  id: string;
  code: string;
  message: string;
}

/** The example of a failure the editor's way: its replay settings, else the extension's defaults. */
export function exampleOf(tokenizer: TextTokenizer, t: Omit<RepairTarget, 'id'>, context: number): Example {
  return makeExample(tokenizer, t.prompt, t.desired, context, { replay: t.replay ?? DEFAULT_REPLAY, after: t.after, suffix: t.suffix });
}

export function prepareFailures(tokenizer: TextTokenizer, failures: readonly RepairTarget[], context: number): { prepared: Prepared[]; skipped: Skipped[] } {
  const prepared: Prepared[] = [];
  const skipped: Skipped[] = [];
  for (const failure of failures) {
    try {
      prepared.push({ failure, replay: failure.replay ?? DEFAULT_REPLAY, example: exampleOf(tokenizer, failure, context) });
    } catch (e) {
      if (!(e instanceof RepairError)) throw e;
      skipped.push({ id: failure.id, code: e.code, message: e.message });
    }
  }
  return { prepared, skipped };
}

/** MINT edits at most this many neurons per repair. */
const MINT_MAX_NEURONS = 10;

/**
 * What a request will locate, from the model's shape alone (before any work): STAR's selection
 * (the request's, else the model's tuned one, else the first that fits, locate.ts fittingSelect)
 * and the most delta values its patch can hold (SGD changes every neuron; MINT at most 10).
 */
export function plannedPatch(config: Pick<ModelConfig, 'layers' | 'hidden' | 'intermediate'>, request: RepairRequest, defaults: MethodDefaults = PAPER_DEFAULTS): { select: SelectMode; sizing: SelectionSizing; values: number } {
  const { hidden: d, layers, intermediate } = config;
  const tuned = defaults.star;
  const sizing: SelectionSizing = {
    layers, intermediate,
    topK: request.topK ?? tuned.topK ?? STAR_DEFAULTS.topK,
    fraction: request.fraction ?? tuned.fraction ?? STAR_DEFAULTS.fraction,
    layerShare: request.layerShare ?? STAR_DEFAULTS.layerShare,
  };
  const select = request.select ?? tuned.select ?? fittingSelect(sizing, d, MAX_PATCH_PARAMS);
  const rows = request.method === 'sgd' ? layers * intermediate : request.method === 'mint' ? Math.min(MINT_MAX_NEURONS, layers * intermediate) : selectionRows(select, sizing);
  return { select, sizing, values: rows * d };
}

function tooLarge(values: number, why: string): RepairError {
  return new RepairError('patch-too-large', `${why}: ${patchTooLarge(values)}`);
}

/** What runRepair returns inside the worker (the wire's RepairResult, worker/protocol.ts, is built from it). */
export interface RepairRunResult {
  patch: Patch;
  outcome: RepairOutcome;
  repaired: Prepared[];
  skipped: Skipped[];
  /** Ids of the repaired failures whose completion in the editor is now the desired text. */
  fixed: string[];
}

/** Which of `items` the editor now completes as desired, under the runtime's current patch. */
export async function shownFixed(model: RepairModel, tokenizer: TextTokenizer, items: readonly Pick<Prepared, 'failure' | 'replay'>[]): Promise<boolean[]> {
  const out: boolean[] = [];
  for (const it of items) out.push(await showsDesired(model.runtime, tokenizer, it.failure.prompt, it.failure.desired, it.replay, it.failure.suffix));
  return out;
}

export interface RepairExtras {
  /** Examples whose outputs specificity-preserving STAR keeps (zero-steer rows). */
  preserve?: readonly Example[];
}

export async function runRepair(
  model: RepairModel, tokenizer: TextTokenizer, fingerprint: string, items: readonly Prepared[], request: RepairRequest,
  defaults: MethodDefaults = PAPER_DEFAULTS, control: RepairControl = {}, extras: RepairExtras = {},
): Promise<RepairRunResult> {
  const start = performance.now();
  const tunedStar = defaults.star;
  const { select, sizing, values } = plannedPatch(model.config, request, defaults);
  // Before any work: a patch too large to send and store is refused, not computed.
  if (values > MAX_PATCH_PARAMS) throw tooLarge(values, request.method === 'sgd' ? 'SGD changes every neuron' : `the ${select} selection changes up to ${(values / model.config.hidden).toLocaleString('en-US')} neurons`);
  model.apply(null);
  const skipped: Skipped[] = [];
  const todo: Prepared[] = [];
  let nearTie = false;
  for (const item of items) {
    const rightByScore = (await assess(model.runtime, item.example)).allCorrect;
    // By construction a right teacher-forced target is a right completion; a near tie between the
    // scoring and the decoding graph's rounding can still part them, so the editor has the last word.
    const shown = rightByScore ? (await shownFixed(model, tokenizer, [item]))[0] : false;
    if (shown) skipped.push({ id: item.failure.id, code: 'already-correct', message: 'the editor already completes this as desired: nothing to repair' });
    else {
      todo.push(item);
      if (rightByScore) nearTie = true;
    }
  }
  if (todo.length === 0) throw new RepairError('already-correct', items.length ? 'every failure is already completed as desired: nothing to repair' : 'no failure to repair');
  const examples = todo.map((t) => t.example);
  const epochs = request.epochs ?? 10;
  const options: Record<string, JsonValue> = { epochs };
  // A near tie needs a lead, not just the argmax, to survive the decoding graph's rounding.
  const margin = Math.max(request.margin ?? tunedStar.margin ?? 0, nearTie ? 0.05 : 0);
  let outcome: RepairOutcome;
  const method = request.method;
  if (method === 'star') {
    const o = {
      mode: request.mode ?? tunedStar.mode ?? 'batch',
      select,
      epochs,
      eta: request.eta ?? tunedStar.eta,
      stopWhen: request.stopWhen ?? tunedStar.stopWhen ?? 'target-right',
      margin,
      rightPositions: request.rightPositions ?? 'zero-steer',
      topK: sizing.topK,
      fraction: sizing.fraction,
      layerShare: sizing.layerShare,
      lineSearch: request.lineSearch ?? tunedStar.lineSearch ?? false,
      preserveRows: extras.preserve?.length ? (request.preserveRows ?? tunedStar.preserveRows ?? 0) : 0,
    };
    Object.assign(options, o);
    outcome = await repairStar(model, examples, o, control, extras.preserve ?? []);
  } else if (method === 'sgd') {
    const o = { epochs, eta: request.eta ?? defaults.sgd.eta, stopWhen: request.stopWhen ?? 'target-right', margin, lossOver: request.sgdLoss ?? 'all' };
    Object.assign(options, o);
    outcome = await repairSgd(model, examples, o, control);
  } else {
    const o = { f: request.f ?? defaults.mint.f, candidates: 10, maxNeurons: MINT_MAX_NEURONS, style: request.mintStyle ?? 'authors' };
    Object.assign(options, o);
    outcome = await repairMint(model, examples, o, control);
  }
  // The runtime now computes with base + this repair's patch: what the editor shows once it is committed.
  const shown = await shownFixed(model, tokenizer, todo);
  const fixed = todo.filter((_, i) => shown[i]).map((t) => t.failure.id);
  const patchLayers = outcome.acc.toLayers();
  const size = patchSize({ layers: patchLayers });
  // Steps that located different rows add up: the union is checked too.
  if (size.params > MAX_PATCH_PARAMS) throw tooLarge(size.params, `its steps changed ${size.neurons.toLocaleString('en-US')} neurons`);
  const patch: Patch = {
    id: newPatchId(),
    modelFingerprint: fingerprint,
    method,
    mode: method === 'star' ? (options.mode as RepairMode) : method === 'sgd' ? 'batch' : 'iter',
    options,
    failureIds: todo.map((t) => t.failure.id),
    createdAt: new Date().toISOString(),
    layers: patchLayers,
    scores: { effectiveness: fixed.length / todo.length, generalisation: null, specificity: null },
    stats: { ms: Math.round(performance.now() - start), peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024), neurons: size.neurons, params: size.params },
  };
  return { patch, outcome, repaired: todo, skipped, fixed };
}
