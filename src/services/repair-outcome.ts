// What the user is told during and after a repair, and how a patch and its scores are named in
// messages. Pure (no vscode), so the wording and, above all, which buttons are offered are
// unit-tested: "Undo Patch" only while the patch is still enabled (the guard may already have
// undone it), never a stale offer.

import type { RepairProgressEvent } from '../worker/protocol';

/** The parts of a repair's summary (services/repair-service.ts RepairSummary) the message needs. */
export interface OutcomeInput {
  patch: PatchNameFields & { scores: { generalisation: number | null; specificity: number | null }; stats: { neurons: number; ms: number } };
  /** How many failures the enabled patch fixed in the editor. */
  fixed: number;
  undoneByGuard: boolean;
  keptDisabled: boolean;
  belowThreshold: boolean;
  threshold: number;
  wouldFix: number;
}

export interface PatchNameFields {
  method: string;
  createdAt: string;
  failureIds: readonly string[];
}

export interface Outcome {
  text: string;
  /** A warning (something is left undone or was undone), else information. */
  warn: boolean;
  actions: ('Undo Patch' | 'Show in Panel')[];
}

function shortText(t: string, n = 60): string {
  const one = t.replace(/\n/g, '⏎');
  return one.length > n ? `${one.slice(0, n - 1)}…` : one;
}

export function seconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}

/** What a repair is doing in each phase, in words: the progress notification and the panel say it so. */
export const REPAIR_PHASE_TEXT: Readonly<Record<RepairProgressEvent['phase'], string>> = {
  assess: 'checking what the model predicts now',
  locate: 'locating the neurons responsible',
  step: 'patching',
  evaluate: 'measuring effectiveness, generalisation and specificity',
};

/** The progress notification's line for a repair's progress event: the numbers while it steps, else its phase. */
export function repairProgressText(p: RepairProgressEvent): string {
  if (p.phase !== 'step') return `${REPAIR_PHASE_TEXT[p.phase]}…`;
  return `epoch ${p.epoch}/${p.epochs} · ${p.positionsFixed}/${p.positionsTotal} tokens right${p.loss !== null ? ` · loss ${p.loss.toFixed(3)}` : ''}`;
}

/** A score as every message shows it (the commands' and the log's too): whole percent, '–' where it has no meaning. */
export function pct(x: number | null): string {
  return x === null ? '–' : `${Math.round(x * 100)}%`;
}

/** "STAR patch of 2026-03-04 06:06 (1 failure)": method, local time and failures — ids are for logs. */
export function patchTitle(p: PatchNameFields): string {
  const d = new Date(p.createdAt);
  const pad = (x: number): string => String(x).padStart(2, '0');
  const when = Number.isNaN(d.getTime()) ? p.createdAt : `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
  const n = p.failureIds.length;
  return `${p.method.toUpperCase()} patch of ${when} (${n} failure${n === 1 ? '' : 's'})`;
}

/**
 * The real outcome of a repair: what the editor now shows (fixed counts), the patch's cost and
 * scores, and what the specificity guard did — a warning whenever a failure is left unfixed or the
 * patch broke completions that were right.
 */
export function describeRepair(o: OutcomeInput, failures: readonly { desired: string }[]): Outcome {
  const p = o.patch;
  const what = failures.length === 1 ? `"${shortText(failures[0].desired)}"` : `${failures.length} failures`;
  const scores = `specificity ${pct(p.scores.specificity)} · generalisation ${pct(p.scores.generalisation)}`;
  if (o.undoneByGuard) {
    return {
      text: `Patch undone: it would have fixed ${o.wouldFix} of ${failures.length}, but kept only ${pct(p.scores.specificity)} of the completions that were right (threshold ${pct(o.threshold)}). The model is unchanged; the patch stays in the history, disabled.`,
      warn: true,
      actions: ['Show in Panel'],
    };
  }
  if (o.keptDisabled) {
    return {
      text: `Could not fix ${what} (${p.stats.neurons} neuron(s) tried in ${seconds(p.stats.ms)}). The model is unchanged; the patch stays in the history, disabled.`,
      warn: true,
      actions: ['Show in Panel'],
    };
  }
  const head = o.fixed === failures.length ? `Fixed ${what}` : `Fixed ${o.fixed} of ${failures.length} failures`;
  let text = `${head} — ${p.stats.neurons} neuron(s) changed in ${seconds(p.stats.ms)} · ${scores}.`;
  if (o.belowThreshold) text += ` It keeps only ${pct(p.scores.specificity)} of the completions that were right (threshold ${pct(o.threshold)}).`;
  return { text, warn: o.fixed < failures.length || o.belowThreshold, actions: o.belowThreshold ? ['Undo Patch', 'Show in Panel'] : ['Show in Panel'] };
}
