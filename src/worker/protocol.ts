// The worker protocol: every message between the extension host and the model worker
// process, with request ids, progress, cancellation, typed errors, and hand-written runtime
// validators for both directions (a message that breaks the contract is refused with a
// message naming the bad field, never half-used). No vscode and no onnxruntime here: the
// client, the worker and the tests all import it.

import type { RepairProgress } from '../repair/engine';
import { SELECT_SETTINGS } from '../repair/locate';
import { MAX_PATCH_PARAMS, REPAIR_METHODS, REPAIR_MODES, base64Chars, type PatchJson, type PatchScores, type RepairChoice, type RepairMethod, type RepairMode } from '../repair/patch';
import { PROVIDERS, type ProviderName } from '../runtime/provider-names';
import { WEIGHT_FORMATS, WEIGHT_SETTINGS, type WeightFormat, type WeightSetting } from '../runtime/weight-formats';
import { STOP_RULES, type StopRule } from '../runtime/stop-rules';
import { readFimChoice, readIndent, readReplay, type CompletionReplay } from '../runtime/replay';
import type { IndentStyle } from '../runtime/clean';
import { FIM_ORDER_SETTINGS, FIM_SETTINGS, type FimChoice, type FimOrderSetting, type FimSetting } from '../runtime/fim';
import { MAX_AFTER_CHARS } from '../failures/failure';
import { bool, fail, field, finite, intIn, list, nullable, numIn, object, oneOf, optional, ReadError, record, text, type Reader } from '../util/read';

export const PROTOCOL_VERSION = 1;

// ---------------------------------------------------------------------------------------
// Shared shapes
// ---------------------------------------------------------------------------------------

export { STOP_RULES, type StopRule };

export interface ProviderFallback {
  provider: string;
  reason: string;
}

/** The loaded model as the worker's `load` reply describes it. */
export type ModelInfo = ModelFacts & ModelWeights;

export interface ModelFacts {
  name: string;
  dir: string;
  architecture: string;
  layers: number;
  /** MLP width m: patchable neurons per layer. */
  neurons: number;
  hidden: number;
  vocab: number;
  context: number;
  params: number;
  dtype: string;
  executionProvider: string;
  fallbacks: ProviderFallback[];
  fingerprint: string;
  /** The FIM format found in the model's tokenizer (runtime/fim.ts), or null: prefix-only prompts. Absent from older workers. */
  fim?: string | null;
}

/**
 * The weights the model runs on: the format in use (what `starRepair.weights` resolved to, never
 * 'auto') and the bytes of the weights the runtime holds; both, or neither (a worker older than
 * these fields).
 */
export type ModelWeights =
  | { weights: WeightFormat; weightBytes: number }
  | { weights?: undefined; weightBytes?: undefined };


/** A failure as the worker needs it: the text before the completion, what should follow, and how the editor completed there. */
export interface Sample {
  id: string;
  prompt: string;
  desired: string;
  /** What followed the desired text in the document (see Failure.after). */
  after?: string;
  /** The text after the cursor the model saw (see Failure.suffix). */
  suffix?: string;
  /** The completion settings the editor used there (absent: DEFAULT_REPLAY). */
  replay?: CompletionReplay;
}

/** The engine's progress report, as it travels to the host. */
export type RepairProgressEvent = RepairProgress;

export interface SkippedFailure {
  id: string;
  /** RepairError code, e.g. 'already-correct', 'boundary', 'too-long'. */
  code: string;
  message: string;
}

export interface PositionProbabilityReport {
  failureId: string;
  token: string;
  pBefore: number;
  pAfter: number;
}

/** Scores before the patch, where the metric has a meaning then (the panel shows before → after). */
export interface ScoresBefore {
  effectiveness: number | null;
  generalisation: number | null;
  specificity: number | null;
}

export interface EvaluationCounts {
  effectiveness: { fixed: number; total: number; tokenAccuracyBefore: number; tokenAccuracyAfter: number };
  generalisation: { fixed: number; total: number; meanDeltaP: number } | null;
  specificity: { kept: number; total: number; meanAbsDeltaTopP: number } | null;
}

// ---------------------------------------------------------------------------------------
// Methods: params and results
// ---------------------------------------------------------------------------------------

export interface LoadParams {
  /** Empty: the embedded model next to the worker bundle. */
  modelDir: string;
  provider: ProviderName;
  threads: number;
  /** The provider guard (docs/gpu.md, "A provider choice that cannot crash completions"); absent: GPU providers are still checked, verdicts are not kept. */
  guard?: ProviderGuardParams;
  /** Format of the weights (starRepair.weights; runtime/weight-formats.ts); absent: fp32. */
  weights?: WeightSetting;
}

/** A GPU provider that crashed the worker for a model (the extension's provider memory): the worker does not use it for that model. */
export interface AvoidedProvider {
  provider: string;
  fingerprint: string;
  reason: string;
}

export interface ProviderGuardParams {
  /** provider-memory.json in the extension's global storage, where check verdicts are kept; null: kept in the worker only. */
  memoryFile: string | null;
  avoid: AvoidedProvider[];
}

export interface CompleteParams {
  /** The text before the cursor (the worker keeps the nearest part within `prefixTokens`). */
  prompt: string;
  maxTokens: number;
  stop: string[];
  /** 'line': end of line; 'block': a blank line or a dedent below the cursor line's indentation. */
  stopRule: StopRule;
  temperature: number;
  /** The text after the cursor (the worker keeps the nearest part within `suffixTokens`); absent: none. */
  suffix?: string;
  /** FIM format: detected ('auto'), none ('off'), or forced; absent: 'auto'. */
  fim?: FimSetting;
  fimOrder?: FimOrderSetting;
  /** Token budgets of the prompt window (runtime/prompt.ts windowPrompt); absent: the context decides. */
  prefixTokens?: number;
  suffixTokens?: number;
  /** Time caps in ms (0 or absent: none): past the prompt cap nothing is shown, past the generation cap what is there. */
  promptMs?: number;
  generationMs?: number;
  /** The editor's indentation (clean-suggestion rules). */
  indent?: IndentStyle;
  /** More than 1: an explicit request; up to this many different completions come back in `alternatives`. */
  alternatives?: number;
}

export interface CompleteResult {
  text: string;
  tokens: number;
  promptTokens: number;
  stoppedBy: string;
  ms: number;
  /** Characters the worker dropped from the start of `prompt`, and kept of `suffix`: the prompt the model saw (a failure stores it). */
  prefixStart?: number;
  suffixKept?: number;
  /** The FIM format and order the prompt was built with (null: prefix only); a failure's replay keeps it. */
  fim?: FimChoice | null;
  /** Prompt tokens run through the model, and reused from the prompt cache. */
  prefilled?: number;
  reused?: number;
  /** ms to the first generated token (null: none). */
  firstTokenMs?: number | null;
  /** With `alternatives`: the other completions, best first (the first is `text`). */
  alternatives?: string[];
}

export interface SetPatchesParams {
  patches: PatchJson[];
}

export interface SetPatchesResult {
  applied: string[];
  neurons: number;
}

export interface PredictParams {
  prompt: string;
  desired: string;
  after?: string;
  suffix?: string;
  replay?: CompletionReplay;
}

export interface PredictResult {
  /** The model's greedy completion now (with the committed patches), about as long as `desired`. */
  prediction: string;
  /** Desired tokens as text, and whether the model (teacher-forced) predicts each one. */
  desiredTokens: string[];
  correct: boolean[];
  pDesired: number[];
  allCorrect: boolean;
}

export interface RepairParams extends RepairChoice {
  failures: Sample[];
  /** Similar failures not repaired here: the generalisation set, taken as given (RepairService leaves out `failures`). */
  heldout: Sample[];
  /** Completions the model got right (accepted by the user); the worker adds its built-in set. */
  regression: Sample[];
}

export interface RepairResult {
  patch: PatchJson;
  fixed: string[];
  unfixed: string[];
  skipped: SkippedFailure[];
  scoresBefore: ScoresBefore;
  evaluation: EvaluationCounts;
  positions: PositionProbabilityReport[];
  epochs: number;
  losses: number[];
}

export interface EvaluateItem {
  patch: PatchJson;
  failures: Sample[];
  heldout: Sample[];
}

export interface EvaluateParams {
  items: EvaluateItem[];
  regression: Sample[];
}

export interface EvaluateResult {
  results: { patchId: string; scores: PatchScores; scoresBefore: ScoresBefore; evaluation: EvaluationCounts }[];
}

export interface NeuronDetailsParams {
  layer: number;
  neuron: number;
  /** The patch's delta for this neuron (length = hidden size). */
  delta: number[];
}

export interface TokenPushReport {
  token: string;
  logit: number;
}

export interface NeuronDetailsResult {
  deltaNorm: number;
  up: TokenPushReport[];
  down: TokenPushReport[];
}

export interface ExportParams {
  dir: string;
  patches: PatchJson[];
}

export interface ExportResult {
  dir: string;
  neurons: number;
}

export interface Methods {
  load: { params: LoadParams; result: ModelInfo };
  complete: { params: CompleteParams; result: CompleteResult };
  setPatches: { params: SetPatchesParams; result: SetPatchesResult };
  predict: { params: PredictParams; result: PredictResult };
  repair: { params: RepairParams; result: RepairResult };
  evaluate: { params: EvaluateParams; result: EvaluateResult };
  neuronDetails: { params: NeuronDetailsParams; result: NeuronDetailsResult };
  export: { params: ExportParams; result: ExportResult };
}

export type Method = keyof Methods;
export type ParamsOf<M extends Method> = Methods[M]['params'];
export type ResultOf<M extends Method> = Methods[M]['result'];

/** What a running request gets besides its params: cancellation, and a progress channel (repair, evaluate). */
export interface JobControl {
  signal: AbortSignal;
  onProgress?: (p: RepairProgressEvent) => void;
}

/**
 * The worker's handler table: one handler per method, typed from `Methods` (method → params →
 * result). ModelHost implements it (the compiler refuses a method without its handler) and
 * main.ts dispatches every request through it.
 */
export type WorkerHandlers = { [M in Method]: (params: ParamsOf<M>, job: JobControl) => ResultOf<M> | Promise<ResultOf<M>> };

// ---------------------------------------------------------------------------------------
// Envelopes
// ---------------------------------------------------------------------------------------

/** An error as it crosses the process boundary: the class name, a machine code, the message. */
export interface WireError {
  name: string;
  code: string;
  message: string;
}

export type HostMessage =
  | { type: 'request'; id: number; method: Method; params: unknown }
  | { type: 'cancel'; id: number };

export type WorkerMessage =
  | { type: 'ready'; pid: number; protocol: number }
  | { type: 'response'; id: number; ok: true; result: unknown }
  | { type: 'response'; id: number; ok: false; error: WireError }
  | { type: 'progress'; id: number; progress: RepairProgressEvent }
  | { type: 'log'; message: string }
  | ProviderNotice;

/**
 * Sent before the worker runs anything on a provider for a model (a GPU provider as soon as it
 * passed the check, before its first session; the final choice after every load), so a crash
 * can be put down to the provider the worker was on.
 */
export interface ProviderNotice {
  type: 'provider';
  provider: string;
  fingerprint: string;
}

/** A message broke the protocol; the text names the path of the first bad field. */
export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

// ---------------------------------------------------------------------------------------
// Readers (src/util/read.ts): each returns a fresh value holding only the known fields. The
// exported parse functions turn the ReadError of the first bad field into a ProtocolError.
// ---------------------------------------------------------------------------------------

const MAX_TEXT = 4_000_000;
const MAX_ITEMS = 100_000;
const count = intIn(0);

function asProtocolError<T>(read: () => T): T {
  try {
    return read();
  } catch (e) {
    if (e instanceof ReadError) throw new ProtocolError(e.message);
    throw e;
  }
}

/** JSON itself is checked by patchFromJson where it is used; here only the envelope of a patch. */
const patchJson: Reader<PatchJson> = object((o, path) => {
  field(o, 'id', text(256, 1), path);
  field(o, 'modelFingerprint', text(256, 1), path);
  field(o, 'layers', list(object((l, lp) => {
    field(l, 'layer', count, lp);
    field(l, 'rows', list(count, 10_000_000), lp);
    field(l, 'deltas', text(base64Chars(MAX_PATCH_PARAMS)), lp);
    return l;
  }), MAX_ITEMS), path);
  return structuredClone(o) as unknown as PatchJson;
});

/** `o` without the keys whose value is undefined: optional fields that were absent stay absent. */
function defined<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}

const sample: Reader<Sample> = object((o, path) => defined({
  id: field(o, 'id', text(256, 1), path),
  prompt: field(o, 'prompt', text(MAX_TEXT), path),
  desired: field(o, 'desired', text(MAX_TEXT), path),
  after: optional(o, 'after', text(MAX_AFTER_CHARS), path),
  suffix: optional(o, 'suffix', text(MAX_TEXT), path),
  replay: optional(o, 'replay', readReplay, path),
}));

const methodReader = oneOf<RepairMethod>(REPAIR_METHODS);
const modeReader = oneOf<RepairMode>(REPAIR_MODES);

const fallback: Reader<ProviderFallback> = object((o, path) => ({ provider: field(o, 'provider', text(100), path), reason: field(o, 'reason', text(4000), path) }));

const scoresOrNull = (path: string, o: Record<string, unknown>): { effectiveness: number | null; generalisation: number | null; specificity: number | null } => ({
  effectiveness: field(o, 'effectiveness', nullable(numIn(0, 1)), path),
  generalisation: field(o, 'generalisation', nullable(numIn(0, 1)), path),
  specificity: field(o, 'specificity', nullable(numIn(0, 1)), path),
});

const scores: Reader<PatchScores> = object((o, path) => scoresOrNull(path, o));

const evaluationCounts: Reader<EvaluationCounts> = object((o, path) => ({
  effectiveness: field(o, 'effectiveness', object((e, p) => ({
    fixed: field(e, 'fixed', count, p),
    total: field(e, 'total', count, p),
    tokenAccuracyBefore: field(e, 'tokenAccuracyBefore', numIn(0, 1), p),
    tokenAccuracyAfter: field(e, 'tokenAccuracyAfter', numIn(0, 1), p),
  })), path),
  generalisation: field(o, 'generalisation', nullable(object((e, p) => ({
    fixed: field(e, 'fixed', count, p),
    total: field(e, 'total', count, p),
    meanDeltaP: field(e, 'meanDeltaP', finite, p),
  }))), path),
  specificity: field(o, 'specificity', nullable(object((e, p) => ({
    kept: field(e, 'kept', count, p),
    total: field(e, 'total', count, p),
    meanAbsDeltaTopP: field(e, 'meanAbsDeltaTopP', finite, p),
  }))), path),
}));

const tokenPush: Reader<TokenPushReport> = object((o, path) => ({ token: field(o, 'token', text(1000), path), logit: field(o, 'logit', finite, path) }));

const providerGuard: Reader<ProviderGuardParams> = object((g, gp) => ({
  memoryFile: field(g, 'memoryFile', nullable(text(4096, 1)), gp),
  avoid: field(g, 'avoid', list(object((a, ap) => ({
    provider: field(a, 'provider', text(32, 1), ap),
    fingerprint: field(a, 'fingerprint', text(256, 1), ap),
    reason: field(a, 'reason', text(4000), ap),
  })), 1000), gp),
}));

const PARAMS: { [M in Method]: Reader<ParamsOf<M>> } = {
  load: object((o, p) => {
    const params: LoadParams = {
      modelDir: field(o, 'modelDir', text(4096), p),
      provider: field(o, 'provider', oneOf(PROVIDERS), p),
      threads: field(o, 'threads', intIn(0, 1024), p),
    };
    const guard = optional(o, 'guard', providerGuard, p);
    const weights = optional(o, 'weights', oneOf(WEIGHT_SETTINGS), p);
    return { ...params, ...(guard ? { guard } : {}), ...(weights ? { weights } : {}) };
  }),
  complete: object((o, p) => defined({
    prompt: field(o, 'prompt', text(MAX_TEXT, 1), p),
    maxTokens: field(o, 'maxTokens', intIn(1, 4096), p),
    stop: field(o, 'stop', list(text(100, 1), 32), p),
    stopRule: field(o, 'stopRule', oneOf(STOP_RULES), p),
    temperature: field(o, 'temperature', numIn(0, 10), p),
    suffix: optional(o, 'suffix', text(MAX_TEXT), p),
    fim: optional(o, 'fim', oneOf(FIM_SETTINGS), p),
    fimOrder: optional(o, 'fimOrder', oneOf(FIM_ORDER_SETTINGS), p),
    prefixTokens: optional(o, 'prefixTokens', intIn(16, 1_000_000), p),
    suffixTokens: optional(o, 'suffixTokens', intIn(0, 1_000_000), p),
    promptMs: optional(o, 'promptMs', intIn(0, 600_000), p),
    generationMs: optional(o, 'generationMs', intIn(0, 600_000), p),
    indent: optional(o, 'indent', readIndent, p),
    alternatives: optional(o, 'alternatives', intIn(1, 8), p),
  })),
  setPatches: object((o, p) => ({ patches: field(o, 'patches', list(patchJson, 10_000), p) })),
  predict: object((o, p) => defined({
    prompt: field(o, 'prompt', text(MAX_TEXT, 1), p),
    desired: field(o, 'desired', text(MAX_TEXT, 1), p),
    after: optional(o, 'after', text(MAX_AFTER_CHARS), p),
    suffix: optional(o, 'suffix', text(MAX_TEXT), p),
    replay: optional(o, 'replay', readReplay, p),
  })),
  repair: object((o, p) => {
    const failures = field(o, 'failures', list(sample, 10_000), p);
    if (failures.length === 0) fail(`${p}.failures`, 'at least one failure', failures);
    return {
      method: field(o, 'method', methodReader, p),
      mode: field(o, 'mode', modeReader, p),
      select: field(o, 'select', oneOf(SELECT_SETTINGS), p),
      epochs: field(o, 'epochs', intIn(1, 1000), p),
      eta: field(o, 'eta', nullable(numIn(Number.MIN_VALUE, 1e6)), p),
      preserveRows: field(o, 'preserveRows', nullable(intIn(0, 4096)), p),
      failures,
      heldout: field(o, 'heldout', list(sample, 10_000), p),
      regression: field(o, 'regression', list(sample, 10_000), p),
    };
  }),
  evaluate: object((o, p) => ({
    items: field(o, 'items', list(object((i, ip) => ({
      patch: field(i, 'patch', patchJson, ip),
      failures: field(i, 'failures', list(sample, 10_000), ip),
      heldout: field(i, 'heldout', list(sample, 10_000), ip),
    })), 10_000), p),
    regression: field(o, 'regression', list(sample, 10_000), p),
  })),
  neuronDetails: object((o, p) => ({
    layer: field(o, 'layer', count, p),
    neuron: field(o, 'neuron', count, p),
    // A patch's deltas are float32: anything beyond ±1e30 is not one, and would overflow the norm.
    delta: field(o, 'delta', list(numIn(-1e30, 1e30), 1_000_000), p),
  })),
  export: object((o, p) => ({ dir: field(o, 'dir', text(4096, 1), p), patches: field(o, 'patches', list(patchJson, 10_000), p) })),
};

const RESULTS: { [M in Method]: Reader<ResultOf<M>> } = {
  load: object((o, p) => {
    const facts: ModelFacts = defined({
      name: field(o, 'name', text(1000), p),
      dir: field(o, 'dir', text(4096), p),
      architecture: field(o, 'architecture', text(200), p),
      layers: field(o, 'layers', intIn(1), p),
      neurons: field(o, 'neurons', intIn(1), p),
      hidden: field(o, 'hidden', intIn(1), p),
      vocab: field(o, 'vocab', intIn(1), p),
      context: field(o, 'context', intIn(1), p),
      params: field(o, 'params', count, p),
      dtype: field(o, 'dtype', text(100), p),
      executionProvider: field(o, 'executionProvider', text(100), p),
      fallbacks: field(o, 'fallbacks', list(fallback, 100), p),
      fingerprint: field(o, 'fingerprint', text(256, 1), p),
      fim: optional(o, 'fim', nullable(text(100)), p),
    });
    const weights = optional(o, 'weights', oneOf(WEIGHT_FORMATS), p);
    const weightBytes = optional(o, 'weightBytes', intIn(1), p);
    if (weights === undefined && weightBytes === undefined) return facts;
    if (weights === undefined) return fail(`${p}.weights`, 'the weight format beside weightBytes', weights);
    if (weightBytes === undefined) return fail(`${p}.weightBytes`, 'the bytes of the weights beside weights', weightBytes);
    return { ...facts, weights, weightBytes };
  }),
  complete: object((o, p) => defined({
    text: field(o, 'text', text(MAX_TEXT), p),
    tokens: field(o, 'tokens', count, p),
    promptTokens: field(o, 'promptTokens', count, p),
    stoppedBy: field(o, 'stoppedBy', text(100), p),
    ms: field(o, 'ms', finite, p),
    prefixStart: optional(o, 'prefixStart', count, p),
    suffixKept: optional(o, 'suffixKept', count, p),
    fim: optional(o, 'fim', nullable(readFimChoice), p),
    prefilled: optional(o, 'prefilled', count, p),
    reused: optional(o, 'reused', count, p),
    firstTokenMs: optional(o, 'firstTokenMs', nullable(finite), p),
    alternatives: optional(o, 'alternatives', list(text(MAX_TEXT), 8), p),
  })),
  setPatches: object((o, p) => ({ applied: field(o, 'applied', list(text(256), MAX_ITEMS), p), neurons: field(o, 'neurons', count, p) })),
  predict: object((o, p) => {
    const desiredTokens = field(o, 'desiredTokens', list(text(MAX_TEXT), MAX_ITEMS), p);
    const correct = field(o, 'correct', list(bool, MAX_ITEMS), p);
    const pDesired = field(o, 'pDesired', list(numIn(0, 1), MAX_ITEMS), p);
    if (correct.length !== desiredTokens.length || pDesired.length !== desiredTokens.length) {
      throw new ProtocolError(`${p}: desiredTokens, correct and pDesired differ in length`);
    }
    return { prediction: field(o, 'prediction', text(MAX_TEXT), p), desiredTokens, correct, pDesired, allCorrect: field(o, 'allCorrect', bool, p) };
  }),
  repair: object((o, p) => ({
    patch: field(o, 'patch', patchJson, p),
    fixed: field(o, 'fixed', list(text(256), MAX_ITEMS), p),
    unfixed: field(o, 'unfixed', list(text(256), MAX_ITEMS), p),
    skipped: field(o, 'skipped', list(object((s, sp) => ({ id: field(s, 'id', text(256), sp), code: field(s, 'code', text(100), sp), message: field(s, 'message', text(4000), sp) })), MAX_ITEMS), p),
    scoresBefore: field(o, 'scoresBefore', object((s, sp) => scoresOrNull(sp, s)), p),
    evaluation: field(o, 'evaluation', evaluationCounts, p),
    positions: field(o, 'positions', list(object((s, sp) => ({
      failureId: field(s, 'failureId', text(256), sp),
      token: field(s, 'token', text(1000), sp),
      pBefore: field(s, 'pBefore', numIn(0, 1), sp),
      pAfter: field(s, 'pAfter', numIn(0, 1), sp),
    })), MAX_ITEMS), p),
    epochs: field(o, 'epochs', count, p),
    losses: field(o, 'losses', list(finite, MAX_ITEMS), p),
  })),
  evaluate: object((o, p) => ({
    results: field(o, 'results', list(object((r, rp) => ({
      patchId: field(r, 'patchId', text(256, 1), rp),
      scores: field(r, 'scores', scores, rp),
      scoresBefore: field(r, 'scoresBefore', object((s, sp) => scoresOrNull(sp, s)), rp),
      evaluation: field(r, 'evaluation', evaluationCounts, rp),
    })), MAX_ITEMS), p),
  })),
  neuronDetails: object((o, p) => ({
    deltaNorm: field(o, 'deltaNorm', numIn(0, Number.MAX_VALUE), p),
    up: field(o, 'up', list(tokenPush, 100), p),
    down: field(o, 'down', list(tokenPush, 100), p),
  })),
  export: object((o, p) => ({ dir: field(o, 'dir', text(4096, 1), p), neurons: field(o, 'neurons', count, p) })),
};

const progressReader: Reader<RepairProgressEvent> = object((o, p) => {
  const progress: RepairProgressEvent = {
    method: field(o, 'method', text(100), p),
    phase: field(o, 'phase', oneOf(['assess', 'locate', 'step', 'evaluate'] as const), p),
    epoch: field(o, 'epoch', count, p),
    epochs: field(o, 'epochs', count, p),
    loss: field(o, 'loss', nullable(finite), p),
    positionsFixed: field(o, 'positionsFixed', count, p),
    positionsTotal: field(o, 'positionsTotal', count, p),
  };
  if (progress.positionsFixed > progress.positionsTotal) fail(`${p}.positionsFixed`, `at most positionsTotal (${progress.positionsTotal})`, progress.positionsFixed);
  return progress;
});

const wireError: Reader<WireError> = object((o, p) => ({
  name: field(o, 'name', text(200), p),
  code: field(o, 'code', text(200), p),
  message: field(o, 'message', text(100_000), p),
}));

const requestId = intIn(1);

/** Every method, in the order of the tables (PARAMS and RESULTS must each have an entry for every `Methods` key). */
export const METHODS = Object.keys(PARAMS) as readonly Method[];

function readParamsOf<M extends Method>(method: M, v: unknown, path: string): ParamsOf<M> {
  return (PARAMS[method] as Reader<ParamsOf<M>>)(v, path);
}

/** Worker side: checks a message from the host, including the params of its method. */
export function parseHostMessage(raw: unknown): HostMessage {
  return asProtocolError(() => readHostMessage(raw));
}

function readHostMessage(raw: unknown): HostMessage {
  const o = record(raw, 'message');
  switch (o.type) {
    case 'request': {
      const id = field(o, 'id', requestId, 'message');
      const method = field(o, 'method', oneOf(METHODS), 'message');
      return { type: 'request', id, method, params: readParamsOf(method, o.params, `${method}.params`) };
    }
    case 'cancel':
      return { type: 'cancel', id: field(o, 'id', requestId, 'message') };
    default:
      return fail('message.type', 'request or cancel', o.type);
  }
}

/** Host side: checks the envelope of a message from the worker (results are checked per method by parseResult). */
export function parseWorkerMessage(raw: unknown): WorkerMessage {
  return asProtocolError(() => readWorkerMessage(raw));
}

function readWorkerMessage(raw: unknown): WorkerMessage {
  const o = record(raw, 'message');
  switch (o.type) {
    case 'ready':
      return { type: 'ready', pid: field(o, 'pid', intIn(1), 'message'), protocol: field(o, 'protocol', intIn(1), 'message') };
    case 'response': {
      const id = field(o, 'id', requestId, 'message');
      if (field(o, 'ok', bool, 'message')) return { type: 'response', id, ok: true, result: o.result };
      return { type: 'response', id, ok: false, error: field(o, 'error', wireError, 'message') };
    }
    case 'progress':
      return { type: 'progress', id: field(o, 'id', requestId, 'message'), progress: field(o, 'progress', progressReader, 'message') };
    case 'log':
      return { type: 'log', message: field(o, 'message', text(100_000), 'message') };
    case 'provider':
      return { type: 'provider', provider: field(o, 'provider', text(32, 1), 'message'), fingerprint: field(o, 'fingerprint', text(256, 1), 'message') };
    default:
      return fail('message.type', 'ready, response, progress, log or provider', o.type);
  }
}

export function parseParams<M extends Method>(method: M, v: unknown): ParamsOf<M> {
  return asProtocolError(() => readParamsOf(method, v, `${method}.params`));
}

export function parseResult<M extends Method>(method: M, v: unknown): ResultOf<M> {
  return asProtocolError(() => (RESULTS[method] as Reader<ResultOf<M>>)(v, `${method}.result`));
}

/** Turns anything thrown in the worker into a WireError (code from a typed error when it has one). */
export function toWireError(e: unknown): WireError {
  if (e instanceof Error) {
    const code = (e as Error & { code?: unknown }).code;
    return { name: e.name, code: typeof code === 'string' ? code : e.name, message: e.message };
  }
  return { name: 'Error', code: 'Error', message: String(e) };
}
