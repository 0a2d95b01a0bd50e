// The repair panel's contract: the state the extension shows in the webview, the messages
// that travel each way, and hand-written validators for all of them; and the one wording of the
// model's weights (describeWeights), which the status bar shares. Both the extension
// (src/panel/) and the webview bundle (webview/) import this file, so it must stay free of
// `vscode` and of Node built-ins (the worker protocol's types are imported as types only; the
// weight-format vocabulary, runtime/weight-formats.ts, is plain constants).

import { FAILURE_STATUSES, type FailureStatus } from '../failures/status';
import { bool, fail, field, finite, intIn, list, nullable, numIn, oneOf, optional, ReadError, record, text, type Reader } from '../util/read';
import { WEIGHT_FORMATS, type WeightFormat } from '../runtime/weight-formats';
import type { RepairProgressEvent } from '../worker/protocol';

// ---------------------------------------------------------------------------------------
// State (extension → webview, as full snapshots)
// ---------------------------------------------------------------------------------------

export { FAILURE_STATUSES, type FailureStatus } from '../failures/status';

export interface ModelSummary {
  name: string;
  architecture: string;
  /** Total parameter count of the base model. */
  params: number;
  layers: number;
  /** MLP width m: the number of patchable neurons in each layer. */
  neuronsPerLayer: number;
  /** e.g. 'cpu', 'webgpu', 'cuda', 'dml', 'coreml'. */
  executionProvider: string;
  /** Why a faster provider was not used, shown to the user when present. */
  fallbackReason?: string;
  /** The weights the model runs on; absent when the worker did not say (one older than the field). */
  weights?: WeightsSummary;
  activePatches: number;
}

/** The format in use (what `starRepair.weights` resolved to, never 'auto') and the bytes of the weights held. */
export interface WeightsSummary {
  format: WeightFormat;
  bytes: number;
}

/**
 * How the model's weights read wherever the editor names the model (the panel's Model section,
 * the status bar): "int8 weights, 0.57 GB". The one wording, so the two never disagree.
 */
export function describeWeights(w: WeightsSummary): string {
  const size = w.bytes >= 1e8 ? `${(w.bytes / 1e9).toFixed(2)} GB` : w.bytes >= 1e5 ? `${(w.bytes / 1e6).toFixed(1)} MB` : `${(w.bytes / 1e3).toFixed(1)} kB`;
  return `${w.format} weights, ${size}`;
}

export interface FailureSummary {
  id: string;
  status: FailureStatus;
  languageId: string;
  /** The end of the prompt only: the panel shows context, not whole files. */
  prompt: string;
  /** How many characters of the prompt come before `prompt` (absent: none; 'Open' shows them). */
  promptOmitted?: number;
  /** The completion the user rejected; absent for failures entered by hand. */
  rejected?: string;
  desired: string;
  /** ISO 8601 timestamp. */
  createdAt: string;
  /** Document URI (string form) where the failure happened, for 'open'. */
  uri?: string;
  /** Zero-based line in `uri`. */
  line?: number;
}

/**
 * Incremental progress of the running repair as the panel shows it, folded into
 * `PanelState.repair`: the worker's RepairProgressEvent numbers (`loss` null until the first loss
 * is measured: JSON has no NaN), with the phase told in words instead of named.
 */
export type RepairProgressView = Pick<RepairProgressEvent, 'epoch' | 'epochs' | 'loss' | 'positionsFixed' | 'positionsTotal'> & {
  /** A short line about the current phase, or why the repair stopped. */
  message?: string;
};

/** The running repair in the panel's snapshot: its progress so far, and which failures it repairs how. */
export interface RepairStatus extends RepairProgressView {
  running: boolean;
  failureIds: string[];
  method: string;
}

/** A score in [0, 1]; `before` is null where the metric has no meaning before the patch. */
export interface ScoreBeforeAfter {
  before: number | null;
  after: number;
}

/** The panel's view of a patch's scores, before and after (not the patch record's PatchScores, repair/patch.ts). */
export interface PatchScoresView {
  /** null: not measured (yet). */
  effectiveness: ScoreBeforeAfter | null;
  generalisation: ScoreBeforeAfter | null;
  specificity: ScoreBeforeAfter | null;
}

/** The desired token's probability at one repaired position. */
export interface PositionProbability {
  token: string;
  pBefore: number;
  pAfter: number;
}

/** The neurons a patch changes in one layer: `norms[i]` is the L2 norm of the delta on row `rows[i]`. */
export interface LayerDelta {
  layer: number;
  rows: number[];
  norms: number[];
}

export interface PatchSummary {
  id: string;
  method: string;
  mode: string;
  /** ISO 8601 timestamp. */
  createdAt: string;
  enabled: boolean;
  failureIds: string[];
  neurons: number;
  params: number;
  /** Wall time of the repair in milliseconds. */
  ms: number;
  scores: PatchScoresView;
  positions: PositionProbability[];
  layers: LayerDelta[];
}

export interface PanelState {
  /** null while no model is loaded. */
  model: ModelSummary | null;
  failures: FailureSummary[];
  repair: RepairStatus | null;
  patches: PatchSummary[];
}

/** A token a neuron's delta pushes up (logit > 0) or down (logit < 0), read through the LM head. */
export interface TokenPush {
  token: string;
  logit: number;
}

export interface NeuronDetails {
  patchId: string;
  layer: number;
  neuron: number;
  deltaNorm: number;
  up: TokenPush[];
  down: TokenPush[];
  /** Set when the details could not be computed; the other fields are then best effort. */
  error?: string;
}

// ---------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------

export type ExtensionToWebview =
  | { type: 'state'; state: PanelState }
  | { type: 'repairProgress'; progress: RepairProgressView }
  | { type: 'neuronDetails'; details: NeuronDetails };

export type WebviewToExtension =
  | { type: 'ready' }
  /** Repair each failure on its own (one patch per failure). */
  | { type: 'repair'; failureIds: string[] }
  /** Repair all the failures together (one patch). */
  | { type: 'repairBatch'; failureIds: string[] }
  | { type: 'discard'; failureId: string }
  | { type: 'openFailure'; failureId: string }
  | { type: 'cancelRepair' }
  | { type: 'togglePatch'; patchId: string; enabled: boolean }
  | { type: 'undoPatch'; patchId: string }
  | { type: 'exportPatch'; patchId: string }
  | { type: 'selectNeuron'; patchId: string; layer: number; neuron: number };

export type Validation<T> = { ok: true; value: T } | { ok: false; error: string };

/** Thrown when the extension itself tries to send something that breaks the contract. */
export class PanelMessageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PanelMessageError';
  }
}

// ---------------------------------------------------------------------------------------
// Validation (readers from src/util/read.ts). Each reader returns a fresh value holding only the
// known fields, or throws naming the path of the first bad field. The public validate* functions
// turn that into a Validation result so callers can drop and log.
// ---------------------------------------------------------------------------------------

const MAX_ID = 256;
const MAX_TEXT = 200_000;
const MAX_ITEMS = 1_000_000;

const id: Reader<string> = (v, path) => {
  const s = text(MAX_ID)(v, path);
  if (s.length === 0) fail(path, 'a non-empty id', v);
  return s;
};

const nonNegative: Reader<number> = (v, path) => {
  const n = finite(v, path);
  if (n < 0) fail(path, 'a number ≥ 0', v);
  return n;
};

const count = intIn(0);

const probability = numIn(0, 1);

const timestamp: Reader<string> = (v, path) => {
  const s = text(64)(v, path);
  if (Number.isNaN(Date.parse(s))) fail(path, 'an ISO 8601 timestamp', v);
  return s;
};

/** Copies optional fields only when present, so `exactOptionalPropertyTypes`-style consumers see no `undefined` keys. */
function withOptional<T extends object>(base: T, extras: Partial<T>): T {
  for (const [k, v] of Object.entries(extras)) if (v !== undefined) (base as Record<string, unknown>)[k] = v;
  return base;
}

function uniqueIds<T>(items: T[], key: (t: T) => string, path: string): void {
  const seen = new Set<string>();
  items.forEach((t, i) => {
    const k = key(t);
    if (seen.has(k)) throw new ReadError(`${path}[${i}].id: duplicate id ${JSON.stringify(k)}`);
    seen.add(k);
  });
}


const readWeights: Reader<WeightsSummary> = (v, path) => {
  const o = record(v, path);
  return { format: field(o, 'format', oneOf(WEIGHT_FORMATS), path), bytes: field(o, 'bytes', intIn(1), path) };
};

const readModel: Reader<ModelSummary> = (v, path) => {
  const o = record(v, path);
  const layers = field(o, 'layers', count, path);
  const neuronsPerLayer = field(o, 'neuronsPerLayer', count, path);
  if (layers < 1) fail(`${path}.layers`, 'at least 1 layer', layers);
  if (neuronsPerLayer < 1) fail(`${path}.neuronsPerLayer`, 'at least 1 neuron', neuronsPerLayer);
  return withOptional<ModelSummary>(
    {
      name: field(o, 'name', text(1000), path),
      architecture: field(o, 'architecture', text(1000), path),
      params: field(o, 'params', count, path),
      layers,
      neuronsPerLayer,
      executionProvider: field(o, 'executionProvider', text(100), path),
      activePatches: field(o, 'activePatches', count, path),
    },
    { fallbackReason: optional(o, 'fallbackReason', text(4000), path), weights: optional(o, 'weights', readWeights, path) },
  );
};

const readFailure: Reader<FailureSummary> = (v, path) => {
  const o = record(v, path);
  return withOptional<FailureSummary>(
    {
      id: field(o, 'id', id, path),
      status: field(o, 'status', oneOf(FAILURE_STATUSES), path),
      languageId: field(o, 'languageId', text(200), path),
      prompt: field(o, 'prompt', text(MAX_TEXT), path),
      desired: field(o, 'desired', text(MAX_TEXT), path),
      createdAt: field(o, 'createdAt', timestamp, path),
    },
    {
      rejected: optional(o, 'rejected', text(MAX_TEXT), path),
      promptOmitted: optional(o, 'promptOmitted', count, path),
      uri: optional(o, 'uri', text(8000), path),
      line: optional(o, 'line', count, path),
    },
  );
};

function readProgressFields(o: Record<string, unknown>, path: string): RepairProgressView {
  const epoch = field(o, 'epoch', count, path);
  const epochs = field(o, 'epochs', count, path);
  const positionsFixed = field(o, 'positionsFixed', count, path);
  const positionsTotal = field(o, 'positionsTotal', count, path);
  if (epoch > epochs) fail(`${path}.epoch`, `at most epochs (${epochs})`, epoch);
  if (positionsFixed > positionsTotal) fail(`${path}.positionsFixed`, `at most positionsTotal (${positionsTotal})`, positionsFixed);
  return withOptional<RepairProgressView>(
    { epoch, epochs, loss: field(o, 'loss', nullable(finite), path), positionsFixed, positionsTotal },
    { message: optional(o, 'message', text(4000), path) },
  );
}

const readRepair: Reader<RepairStatus> = (v, path) => {
  const o = record(v, path);
  const progress = readProgressFields(o, path);
  return {
    running: field(o, 'running', bool, path),
    failureIds: field(o, 'failureIds', list(id, MAX_ITEMS), path),
    method: field(o, 'method', text(100), path),
    ...progress,
  };
};

const readScore: Reader<ScoreBeforeAfter> = (v, path) => {
  const o = record(v, path);
  return { before: field(o, 'before', nullable(probability), path), after: field(o, 'after', probability, path) };
};

const readScores: Reader<PatchScoresView> = (v, path) => {
  const o = record(v, path);
  return {
    effectiveness: field(o, 'effectiveness', nullable(readScore), path),
    generalisation: field(o, 'generalisation', nullable(readScore), path),
    specificity: field(o, 'specificity', nullable(readScore), path),
  };
};

const readPosition: Reader<PositionProbability> = (v, path) => {
  const o = record(v, path);
  return {
    token: field(o, 'token', text(1000), path),
    pBefore: field(o, 'pBefore', probability, path),
    pAfter: field(o, 'pAfter', probability, path),
  };
};

const readLayer: Reader<LayerDelta> = (v, path) => {
  const o = record(v, path);
  const rows = field(o, 'rows', list(count, MAX_ITEMS), path);
  const norms = field(o, 'norms', list(nonNegative, MAX_ITEMS), path);
  if (rows.length !== norms.length) {
    throw new ReadError(`${path}: rows (${rows.length}) and norms (${norms.length}) must have the same length`);
  }
  const seen = new Set<number>();
  rows.forEach((r, i) => {
    if (seen.has(r)) throw new ReadError(`${path}.rows[${i}]: neuron ${r} appears twice in this layer`);
    seen.add(r);
  });
  return { layer: field(o, 'layer', count, path), rows, norms };
};

const readPatch: Reader<PatchSummary> = (v, path) => {
  const o = record(v, path);
  const layers = field(o, 'layers', list(readLayer, MAX_ITEMS), path);
  const seen = new Set<number>();
  layers.forEach((l, i) => {
    if (seen.has(l.layer)) throw new ReadError(`${path}.layers[${i}].layer: layer ${l.layer} appears twice in this patch`);
    seen.add(l.layer);
  });
  return {
    id: field(o, 'id', id, path),
    method: field(o, 'method', text(100), path),
    mode: field(o, 'mode', text(100), path),
    createdAt: field(o, 'createdAt', timestamp, path),
    enabled: field(o, 'enabled', bool, path),
    failureIds: field(o, 'failureIds', list(id, MAX_ITEMS), path),
    neurons: field(o, 'neurons', count, path),
    params: field(o, 'params', count, path),
    ms: field(o, 'ms', nonNegative, path),
    scores: field(o, 'scores', readScores, path),
    positions: field(o, 'positions', list(readPosition, MAX_ITEMS), path),
    layers,
  };
};

const readState: Reader<PanelState> = (v, path) => {
  const o = record(v, path);
  const model = field(o, 'model', nullable(readModel), path);
  const failures = field(o, 'failures', list(readFailure, MAX_ITEMS), path);
  const patches = field(o, 'patches', list(readPatch, MAX_ITEMS), path);
  uniqueIds(failures, (f) => f.id, `${path}.failures`);
  uniqueIds(patches, (p) => p.id, `${path}.patches`);
  // The neuron map indexes by (layer, row): out-of-range values would draw outside the map.
  if (model) {
    patches.forEach((p, pi) =>
      p.layers.forEach((l, li) => {
        const at = `${path}.patches[${pi}].layers[${li}]`;
        if (l.layer >= model.layers) fail(`${at}.layer`, `a layer below model.layers (${model.layers})`, l.layer);
        l.rows.forEach((r, ri) => {
          if (r >= model.neuronsPerLayer) fail(`${at}.rows[${ri}]`, `a neuron below model.neuronsPerLayer (${model.neuronsPerLayer})`, r);
        });
      }),
    );
  }
  return { model, failures, repair: field(o, 'repair', nullable(readRepair), path), patches };
};

const readProgress: Reader<RepairProgressView> = (v, path) => readProgressFields(record(v, path), path);

const readTokenPush: Reader<TokenPush> = (v, path) => {
  const o = record(v, path);
  return { token: field(o, 'token', text(1000), path), logit: field(o, 'logit', finite, path) };
};

const readNeuronDetails: Reader<NeuronDetails> = (v, path) => {
  const o = record(v, path);
  return withOptional<NeuronDetails>(
    {
      patchId: field(o, 'patchId', id, path),
      layer: field(o, 'layer', count, path),
      neuron: field(o, 'neuron', count, path),
      deltaNorm: field(o, 'deltaNorm', nonNegative, path),
      up: field(o, 'up', list(readTokenPush, 1000), path),
      down: field(o, 'down', list(readTokenPush, 1000), path),
    },
    { error: optional(o, 'error', text(4000), path) },
  );
};

const readExtensionMessage: Reader<ExtensionToWebview> = (v, path) => {
  const o = record(v, path);
  switch (o['type']) {
    case 'state':
      return { type: 'state', state: field(o, 'state', readState, path) };
    case 'repairProgress':
      return { type: 'repairProgress', progress: field(o, 'progress', readProgress, path) };
    case 'neuronDetails':
      return { type: 'neuronDetails', details: field(o, 'details', readNeuronDetails, path) };
    default:
      return fail(`${path}.type`, 'one of state, repairProgress, neuronDetails', o['type']);
  }
};

const failureIdList: Reader<string[]> = (v, path) => {
  const ids = list(id, 10_000)(v, path);
  if (ids.length === 0) fail(path, 'at least one failure id', v);
  if (new Set(ids).size !== ids.length) fail(path, 'distinct failure ids', v);
  return ids;
};

const readWebviewMessage: Reader<WebviewToExtension> = (v, path) => {
  const o = record(v, path);
  const type = o['type'];
  switch (type) {
    case 'ready':
    case 'cancelRepair':
      return { type };
    case 'repair':
    case 'repairBatch':
      return { type, failureIds: field(o, 'failureIds', failureIdList, path) };
    case 'discard':
    case 'openFailure':
      return { type, failureId: field(o, 'failureId', id, path) };
    case 'undoPatch':
    case 'exportPatch':
      return { type, patchId: field(o, 'patchId', id, path) };
    case 'togglePatch':
      return { type, patchId: field(o, 'patchId', id, path), enabled: field(o, 'enabled', bool, path) };
    case 'selectNeuron':
      return {
        type,
        patchId: field(o, 'patchId', id, path),
        layer: field(o, 'layer', count, path),
        neuron: field(o, 'neuron', count, path),
      };
    default:
      return fail(
        `${path}.type`,
        'one of ready, repair, repairBatch, discard, openFailure, cancelRepair, togglePatch, undoPatch, exportPatch, selectNeuron',
        type,
      );
  }
};

function validate<T>(reader: Reader<T>, v: unknown, root: string): Validation<T> {
  try {
    return { ok: true, value: reader(v, root) };
  } catch (e) {
    if (e instanceof ReadError) return { ok: false, error: e.message };
    throw e;
  }
}

export function validatePanelState(v: unknown): Validation<PanelState> {
  return validate(readState, v, 'state');
}

export function validateRepairProgress(v: unknown): Validation<RepairProgressView> {
  return validate(readProgress, v, 'progress');
}

export function validateNeuronDetails(v: unknown): Validation<NeuronDetails> {
  return validate(readNeuronDetails, v, 'details');
}

/** For the webview: everything the extension may post to it. */
export function validateExtensionMessage(v: unknown): Validation<ExtensionToWebview> {
  return validate(readExtensionMessage, v, 'message');
}

/** For the extension: everything the webview may post to it. */
export function validateWebviewMessage(v: unknown): Validation<WebviewToExtension> {
  return validate(readWebviewMessage, v, 'message');
}

/**
 * Folds a progress event into a snapshot. Progress for a repair that is no longer running
 * (it may arrive after the final snapshot) leaves the state as it is, so it returns null.
 */
export function applyRepairProgress(state: PanelState, progress: RepairProgressView): PanelState | null {
  if (!state.repair || !state.repair.running) return null;
  const repair: RepairStatus = { ...state.repair, ...progress };
  if (progress.message === undefined) delete repair.message;
  return { ...state, repair };
}

/** The empty state the webview starts from before the extension has said anything. */
export function emptyPanelState(): PanelState {
  return { model: null, failures: [], repair: null, patches: [] };
}
