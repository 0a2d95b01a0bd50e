// The repair panel's snapshot (src/panel/messages.ts PanelState) built from the extension's state:
// the loaded model (with the provider and the weights it runs on), the failures, the running
// repair and the patch history with each patch's report. Pure (no vscode), so its mapping is
// unit-tested.

import type { Failure } from '../failures/failure';
import type { PanelState, PatchSummary, RepairProgressView, ScoreBeforeAfter } from '../panel/messages';
import type { PatchEntry } from '../repair/patch-store';
import type { ModelInfo, RepairProgressEvent } from '../worker/protocol';
import { REPAIR_PHASE_TEXT } from './repair-outcome';
import type { PatchReport } from './side-stores';

/** The panel shows context, not whole files: the card shows the last lines and expands to this much. */
export const PROMPT_TAIL_CHARS = 2000;

export interface PanelInput {
  info: ModelInfo | null;
  failures: readonly Failure[];
  patches: readonly PatchEntry[];
  report: (patchId: string) => PatchReport | undefined;
  running: { failureIds: string[]; method: string; progress: RepairProgressEvent | null } | null;
}

export function progressForPanel(p: RepairProgressEvent | null): RepairProgressView {
  if (!p) return { epoch: 0, epochs: 0, loss: null, positionsFixed: 0, positionsTotal: 0, message: 'starting' };
  const epochs = Math.max(p.epochs, p.epoch);
  return {
    epoch: p.epoch,
    epochs,
    loss: p.loss !== null && Number.isFinite(p.loss) ? p.loss : null,
    positionsFixed: Math.min(p.positionsFixed, p.positionsTotal),
    positionsTotal: p.positionsTotal,
    message: REPAIR_PHASE_TEXT[p.phase],
  };
}

function score(after: number | null, before: number | null): ScoreBeforeAfter | null {
  if (after === null) return null;
  const clamp = (x: number) => Math.min(1, Math.max(0, x));
  return { before: before === null ? null : clamp(before), after: clamp(after) };
}

export function patchSummary(entry: PatchEntry, report: PatchReport | undefined): PatchSummary {
  const p = entry.patch;
  let neurons = 0;
  let params = 0;
  const layers = p.layers.map((l) => {
    const d = l.rows.length ? l.deltas.length / l.rows.length : 0;
    neurons += l.rows.length;
    params += l.deltas.length;
    const norms = l.rows.map((_, i) => {
      let s = 0;
      for (let j = i * d; j < (i + 1) * d; j++) s += l.deltas[j] * l.deltas[j];
      return Math.sqrt(s);
    });
    return { layer: l.layer, rows: [...l.rows], norms };
  });
  const before = report?.scoresBefore;
  return {
    id: p.id,
    method: p.method,
    mode: p.mode,
    createdAt: p.createdAt,
    enabled: entry.enabled,
    failureIds: [...p.failureIds],
    neurons,
    params,
    ms: Math.max(0, p.stats.ms),
    scores: {
      effectiveness: score(p.scores.effectiveness, before?.effectiveness ?? null),
      generalisation: score(p.scores.generalisation, before?.generalisation ?? null),
      specificity: score(p.scores.specificity, before?.specificity ?? null),
    },
    positions: (report?.positions ?? []).map((x) => ({ token: x.token, pBefore: x.pBefore, pAfter: x.pAfter })),
    layers,
  };
}

export function buildPanelState(input: PanelInput): PanelState {
  const { info } = input;
  const fallbackReason = info?.fallbacks.length ? info.fallbacks.map((f) => `${f.provider}: ${f.reason}`).join('; ') : undefined;
  const model = info
    ? {
      name: info.name,
      architecture: info.architecture,
      params: info.params,
      layers: info.layers,
      neuronsPerLayer: info.neurons,
      executionProvider: info.executionProvider,
      activePatches: input.patches.filter((e) => e.enabled).length,
      ...(fallbackReason ? { fallbackReason } : {}),
      ...(info.weights !== undefined ? { weights: { format: info.weights, bytes: info.weightBytes } } : {}),
    }
    : null;
  // Newest first: the failure just captured is the one the user looks for.
  const failures = [...input.failures].reverse().map((f) => ({
    id: f.id,
    status: f.status,
    languageId: f.languageId,
    prompt: f.prompt.length > PROMPT_TAIL_CHARS ? f.prompt.slice(-PROMPT_TAIL_CHARS) : f.prompt,
    ...(f.prompt.length > PROMPT_TAIL_CHARS ? { promptOmitted: f.prompt.length - PROMPT_TAIL_CHARS } : {}),
    desired: f.desired,
    createdAt: f.createdAt,
    ...(f.rejected !== undefined ? { rejected: f.rejected } : {}),
    ...(f.uri !== undefined ? { uri: f.uri } : {}),
    ...(f.line !== undefined ? { line: f.line } : {}),
  }));
  const patches = [...input.patches].reverse()
    // A patch outside the loaded model's shape cannot be drawn on its neuron map (and is never applied).
    .filter((e) => !info || e.patch.layers.every((l) => l.layer < info.layers && l.rows.every((r) => r < info.neurons)))
    .map((e) => patchSummary(e, input.report(e.patch.id)));
  const repair = input.running
    ? { running: true, failureIds: [...input.running.failureIds], method: input.running.method, ...progressForPanel(input.running.progress) }
    : null;
  return { model, failures, repair, patches };
}
