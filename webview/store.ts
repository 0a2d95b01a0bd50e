// What the webview knows: the last snapshot from the extension, the user's selections, and
// the neuron details received so far. Pure functions over plain data, so the same logic
// restores a reloaded view (from VS Code's getState) and is unit-tested in Node.

import {
  applyRepairProgress,
  emptyPanelState,
  validateNeuronDetails,
  validatePanelState,
  type ExtensionToWebview,
  type NeuronDetails,
  type PanelState,
} from '../src/panel/messages';

export interface NeuronRef {
  patchId: string;
  layer: number;
  neuron: number;
}

export interface UiState {
  /** Failures ticked for "repair selected". */
  selectedFailures: string[];
  /** The patch shown in Neurons and Scores. */
  patchId: string | null;
  /** The neuron whose details are shown under the map. */
  neuron: NeuronRef | null;
  showDiscarded: boolean;
}

export interface PanelModel {
  state: PanelState;
  ui: UiState;
  /** Most recent first, at most DETAILS_KEPT. */
  details: NeuronDetails[];
}

const PERSIST_VERSION = 1;
const DETAILS_KEPT = 64;

export function initialModel(): PanelModel {
  return { state: emptyPanelState(), ui: { selectedFailures: [], patchId: null, neuron: null, showDiscarded: false }, details: [] };
}

/**
 * Keeps selections that still point at something, and shows the newest patch by default — and
 * whenever a newer one than before arrives (a repair just finished: its result is what to see).
 */
export function reconcileUi(ui: UiState, state: PanelState, previous?: PanelState): UiState {
  const live = new Set(state.failures.filter((f) => f.status !== 'discarded').map((f) => f.id));
  const patchIds = new Set(state.patches.map((p) => p.id));
  const newest = newestPatch(state)?.id ?? null;
  const arrived = previous !== undefined && newest !== null && !previous.patches.some((p) => p.id === newest);
  const patchId = !arrived && ui.patchId && patchIds.has(ui.patchId) ? ui.patchId : newest;
  const neuron = ui.neuron && ui.neuron.patchId === patchId ? ui.neuron : null;
  return { ...ui, selectedFailures: ui.selectedFailures.filter((id) => live.has(id)), patchId, neuron };
}

export function newestPatch(state: PanelState): PanelState['patches'][number] | undefined {
  let best: PanelState['patches'][number] | undefined;
  for (const p of state.patches) if (!best || Date.parse(p.createdAt) >= Date.parse(best.createdAt)) best = p;
  return best;
}

export type Applied = { ok: true; model: PanelModel } | { ok: false; reason: string };

/** Applies a validated message from the extension. */
export function applyMessage(model: PanelModel, message: ExtensionToWebview): Applied {
  switch (message.type) {
    case 'state':
      return { ok: true, model: { ...model, state: message.state, ui: reconcileUi(model.ui, message.state, model.state) } };
    case 'repairProgress': {
      const state = applyRepairProgress(model.state, message.progress);
      if (!state) return { ok: false, reason: 'repair progress arrived while no repair is running' };
      return { ok: true, model: { ...model, state } };
    }
    case 'neuronDetails': {
      const d = message.details;
      const rest = model.details.filter((x) => !(x.patchId === d.patchId && x.layer === d.layer && x.neuron === d.neuron));
      return { ok: true, model: { ...model, details: [d, ...rest].slice(0, DETAILS_KEPT) } };
    }
  }
}

export function findDetails(model: PanelModel, ref: NeuronRef): NeuronDetails | undefined {
  return model.details.find((d) => d.patchId === ref.patchId && d.layer === ref.layer && d.neuron === ref.neuron);
}

export function persistable(model: PanelModel): unknown {
  return { version: PERSIST_VERSION, state: model.state, ui: model.ui, details: model.details };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Rebuilds the model from what VS Code kept for the view. Whatever does not validate (an
 * older version, a corrupted value) is replaced by the empty model: the extension re-sends
 * the real state on `ready` anyway.
 */
export function restoreModel(saved: unknown): PanelModel {
  const model = initialModel();
  if (!isRecord(saved) || saved['version'] !== PERSIST_VERSION) return model;
  const state = validatePanelState(saved['state']);
  if (!state.ok) return model;
  const ui = isRecord(saved['ui']) ? saved['ui'] : {};
  const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
  const ref = ui['neuron'];
  const neuron: NeuronRef | null =
    isRecord(ref) && typeof ref['patchId'] === 'string' && Number.isSafeInteger(ref['layer']) && Number.isSafeInteger(ref['neuron'])
      ? { patchId: ref['patchId'], layer: ref['layer'] as number, neuron: ref['neuron'] as number }
      : null;
  const restoredUi: UiState = {
    selectedFailures: strings(ui['selectedFailures']),
    patchId: typeof ui['patchId'] === 'string' ? ui['patchId'] : null,
    neuron,
    showDiscarded: ui['showDiscarded'] === true,
  };
  const details: NeuronDetails[] = [];
  for (const d of Array.isArray(saved['details']) ? saved['details'] : []) {
    const v = validateNeuronDetails(d);
    if (v.ok) details.push(v.value);
  }
  return { state: state.value, ui: reconcileUi(restoredUi, state.value), details: details.slice(0, DETAILS_KEPT) };
}
