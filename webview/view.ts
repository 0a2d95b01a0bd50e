// The panel's markup: one Lit template per section, rendered from the PanelModel. No state
// lives here; every user action goes out through `Actions`. Lit escapes all interpolated
// text, so prompts and tokens from the model can never inject markup.

import { html, nothing, svg, type TemplateResult } from 'lit';
import { live } from 'lit/directives/live.js';
import { repeat } from 'lit/directives/repeat.js';
import { describeWeights, type FailureSummary, type NeuronDetails, type PanelState, type PatchSummary, type ScoreBeforeAfter } from '../src/panel/messages';
import { diffLines, type DiffLine, type DiffPart } from './diff';
import { baseName, formatCount, formatLoss, formatMs, formatNorm, formatPercent, formatTime, showToken } from './format';
import { findDetails, type PanelModel } from './store';

export interface Actions {
  selectFailure(id: string, selected: boolean): void;
  repair(ids: string[]): void;
  repairBatch(ids: string[]): void;
  discard(id: string): void;
  open(id: string): void;
  cancelRepair(): void;
  showDiscarded(show: boolean): void;
  selectPatch(id: string): void;
  togglePatch(id: string, enabled: boolean): void;
  undoPatch(id: string): void;
  exportPatch(id: string): void;
}

/** Lines of the prompt shown above the diff; the rest is one click away. */
const CONTEXT_LINES = 3;

export function panelTemplate(model: PanelModel, actions: Actions, now: number): TemplateResult {
  const { state } = model;
  const patch = state.patches.find((p) => p.id === model.ui.patchId);
  const pending = state.failures.filter((f) => f.status === 'pending').length;
  return html`
    <vscode-collapsible heading="Model" open data-section="model" description=${state.model ? state.model.name : 'none loaded'}>
      ${modelSection(state)}
    </vscode-collapsible>
    <vscode-collapsible heading="Failures" open data-section="failures" description=${`${pending} pending`}>
      ${failuresSection(model, actions, now)}
    </vscode-collapsible>
    <vscode-collapsible heading="Repair" open data-section="repair" description=${state.repair?.running ? 'running' : ''}>
      ${repairSection(state, actions)}
    </vscode-collapsible>
    <vscode-collapsible heading="Neurons" open data-section="neurons">
      ${neuronsSection(model, patch, actions, now)}
    </vscode-collapsible>
    <vscode-collapsible heading="Scores" open data-section="scores">
      ${scoresSection(state, patch, now)}
    </vscode-collapsible>
    <vscode-collapsible heading="Patches" open data-section="patches" description=${`${state.patches.length}`}>
      ${patchesSection(model, actions, now)}
    </vscode-collapsible>
  `;
}

function empty(text: string): TemplateResult {
  return html`<p class="empty">${text}</p>`;
}

// --- Model ------------------------------------------------------------------------------

function modelSection(state: PanelState): TemplateResult {
  const m = state.model;
  if (!m) {
    return empty(
      'No model loaded yet. It loads when the extension starts: if this stays empty, check the model folder setting and the "STAR Repair" output channel.',
    );
  }
  return html`
    <dl class="facts">
      <dt>Name</dt>
      <dd data-field="name">${m.name}</dd>
      <dt>Architecture</dt>
      <dd data-field="architecture">${m.architecture}</dd>
      <dt>Parameters</dt>
      <dd data-field="params" title=${m.params.toLocaleString('en-US')}>${formatCount(m.params)}</dd>
      <dt>Layers × neurons</dt>
      <dd data-field="shape">${m.layers} × ${m.neuronsPerLayer.toLocaleString('en-US')}</dd>
      <dt>Execution provider</dt>
      <dd data-field="provider">${m.executionProvider}</dd>
      ${m.weights
        ? html`<dt>In memory</dt>
            <dd data-field="weights" title=${`${m.weights.bytes.toLocaleString('en-US')} bytes`}>${describeWeights(m.weights)}</dd>`
        : nothing}
      <dt>Active patches</dt>
      <dd data-field="activePatches">${m.activePatches}</dd>
    </dl>
    ${m.fallbackReason ? html`<p class="warning" role="status" data-field="fallback">Fell back to ${m.executionProvider}: ${m.fallbackReason}</p>` : nothing}
  `;
}

// --- Failures ---------------------------------------------------------------------------

function failuresSection(model: PanelModel, actions: Actions, now: number): TemplateResult {
  const { state, ui } = model;
  const running = state.repair?.running === true;
  const discarded = state.failures.filter((f) => f.status === 'discarded').length;
  const shown = state.failures
    .filter((f) => ui.showDiscarded || f.status !== 'discarded')
    .sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt));
  const selected = ui.selectedFailures;
  const busy = running ? 'A repair is running: wait for it or cancel it first' : '';
  const toolbar = html`
    <div class="toolbar" role="toolbar" aria-label="Failure actions">
      <vscode-button
        data-action="repair-selected"
        ?disabled=${selected.length === 0 || running}
        title=${busy || 'Repair each selected failure with its own patch'}
        @click=${() => selected.length && !running && actions.repair([...selected])}
        >Repair selected (${selected.length})</vscode-button
      >
      <vscode-button
        data-action="repair-batch"
        secondary
        ?disabled=${selected.length < 2 || running}
        title=${busy || 'Repair the selected failures together with one patch'}
        @click=${() => selected.length >= 2 && !running && actions.repairBatch([...selected])}
        >Repair selected together</vscode-button
      >
      ${discarded
        ? html`<vscode-checkbox
            data-action="show-discarded"
            .checked=${live(ui.showDiscarded)}
            @change=${(e: Event) => actions.showDiscarded((e.target as HTMLInputElement).checked)}
            >Show discarded (${discarded})</vscode-checkbox
          >`
        : nothing}
    </div>
  `;
  if (state.failures.length === 0) {
    return empty("No failures yet: reject an inline completion by typing something else, or select text and run 'Repair model on this failure'.");
  }
  return html`
    ${toolbar}
    ${shown.length === 0 ? empty('Every failure is discarded. Tick "Show discarded" to see them.') : nothing}
    <ul class="failures" aria-label="Failures">
      ${repeat(
        shown,
        (f) => f.id,
        (f) => failureItem(f, selected.includes(f.id), running, actions, now),
      )}
    </ul>
  `;
}

function failureItem(f: FailureSummary, selected: boolean, running: boolean, actions: Actions, now: number): TemplateResult {
  const where = f.uri ? `${baseName(f.uri)}${f.line !== undefined ? `:${f.line + 1}` : ''}` : '';
  const name = `${f.languageId} failure ${where || f.id}`;
  const canRepair = f.status !== 'discarded' && !running;
  return html`
    <li class="failure" data-failure-id=${f.id} aria-label=${name}>
      <div class="failure-head">
        <vscode-checkbox
          data-action="select"
          .checked=${live(selected)}
          ?disabled=${f.status === 'discarded'}
          @change=${(e: Event) => actions.selectFailure(f.id, (e.target as HTMLInputElement).checked)}
          ><span class="sr-only">Select ${name}</span></vscode-checkbox
        >
        <vscode-badge class=${`status status-${f.status}`} data-field="status">${f.status}</vscode-badge>
        <span class="lang">${f.languageId}</span>
        ${where ? html`<span class="where" title=${f.uri ?? ''}>${where}</span>` : nothing}
        <span class="time" title=${f.createdAt}>${formatTime(f.createdAt, now)}</span>
      </div>
      ${failureCode(f)}
      <div class="actions">
        <vscode-button
          data-action="repair"
          aria-label=${`Repair ${name}`}
          ?disabled=${!canRepair}
          @click=${() => canRepair && actions.repair([f.id])}
          >Repair</vscode-button
        >
        ${f.uri
          ? html`<vscode-button data-action="open" secondary aria-label=${`Open ${name} in the editor`} @click=${() => actions.open(f.id)}
              >Open</vscode-button
            >`
          : nothing}
        ${f.status !== 'discarded'
          ? html`<vscode-button data-action="discard" secondary aria-label=${`Discard ${name}`} @click=${() => actions.discard(f.id)}
              >Discard</vscode-button
            >`
          : nothing}
      </div>
    </li>
  `;
}

/**
 * The prompt's last lines, then the line the completion continues as a unified diff: the rejected
 * lines (−) above the desired ones (+), the words that differ marked. Earlier prompt lines fold
 * into a <details> that opens in place; nothing is cut off by a fixed height.
 */
function failureCode(f: FailureSummary): TemplateResult {
  const nl = f.prompt.lastIndexOf('\n');
  // The line the completion continues is diffed with it, so both sides read as the editor showed them.
  const lead = f.prompt.slice(nl + 1);
  const before = nl < 0 ? [] : f.prompt.slice(0, nl).split('\n');
  const shown = before.slice(-CONTEXT_LINES);
  const folded = before.slice(0, before.length - shown.length);
  const lines = f.rejected === undefined ? desiredOnly(lead, f.desired) : diffLines(lead + f.rejected, lead + f.desired);
  const omitted = f.promptOmitted ?? 0;
  const more = folded.length + (omitted ? 1 : 0);
  return html`
    <div class="code" role="group" aria-label="Prompt, rejected and desired completion" data-field="code">
      ${more
        ? html`<details class="context-more" data-field="context-more">
            <summary>${folded.length} earlier line${folded.length === 1 ? '' : 's'}${omitted
              ? ` (and ${omitted.toLocaleString('en-US')} more characters${f.uri ? ': Open shows the file' : ''})`
              : ''}</summary>
            <pre class="context">${omitted ? '…' : ''}${folded.join('\n')}</pre>
          </details>`
        : nothing}
      ${shown.length ? html`<pre class="context" data-field="context">${shown.join('\n')}</pre>` : nothing}
      <div class="diff" data-field="diff">${lines.map(diffLine)}</div>
    </div>
  `;
}

/** A failure entered by hand has no rejected text: the desired lines alone, the prompt's line as context. */
function desiredOnly(lead: string, desired: string): DiffLine[] {
  const lines = diffLines('', lead + desired);
  if (lead && lines.length) {
    const first = lines[0];
    const text = first.parts.map((p) => p.text).join('');
    first.parts = [{ op: 'same', text: lead }, ...(text.length > lead.length ? [{ op: 'added' as const, text: text.slice(lead.length) }] : [])];
  }
  return lines;
}

const SIGN = { same: ' ', removed: '−', added: '+' } as const;
const SIDE = { same: '', removed: 'rejected: ', added: 'desired: ' } as const;

function diffPart(p: DiffPart): TemplateResult {
  return p.op === 'same' ? html`<span>${p.text}</span>` : p.op === 'removed' ? html`<del>${p.text}</del>` : html`<ins>${p.text}</ins>`;
}

function diffLine(l: DiffLine): TemplateResult {
  return html`<div class=${`dl dl-${l.op}`} data-op=${l.op}><span class="sign" aria-hidden="true">${SIGN[l.op]}</span>${SIDE[l.op]
    ? html`<span class="sr-only">${SIDE[l.op]}</span>`
    : nothing}<span class="text">${l.parts.map(diffPart)}${l.eol ? html`<span class="eol" title="line break">⏎</span>` : nothing}</span></div>`;
}

// --- Repair -----------------------------------------------------------------------------

function repairSection(state: PanelState, actions: Actions): TemplateResult {
  const r = state.repair;
  if (!r) {
    return empty(
      "No repair running. Tick failures above and press Repair, or select text in the editor and run 'Repair model on this failure'.",
    );
  }
  const n = r.failureIds.length;
  return html`
    <p class="repair-head" data-field="repair-head">
      ${r.running ? 'Repairing' : 'Last repair:'} ${n} failure${n === 1 ? '' : 's'} with ${r.method}${r.message
        ? html` — <span data-field="repair-message">${r.message}</span>`
        : nothing}
    </p>
    <div class="meter" data-field="epoch">
      <span id="epoch-label">Epoch ${r.epoch} / ${r.epochs}</span>
      <vscode-progress-bar aria-labelledby="epoch-label" .value=${r.epoch} .max=${Math.max(1, r.epochs)}></vscode-progress-bar>
    </div>
    <div class="meter" data-field="positions">
      <span id="positions-label">Positions fixed ${r.positionsFixed} / ${r.positionsTotal}</span>
      <vscode-progress-bar aria-labelledby="positions-label" .value=${r.positionsFixed} .max=${Math.max(1, r.positionsTotal)}></vscode-progress-bar>
    </div>
    <p data-field="loss">Loss <span class="number">${formatLoss(r.loss)}</span></p>
    ${r.running
      ? html`<vscode-button data-action="cancel" secondary @click=${() => actions.cancelRepair()}>Cancel repair</vscode-button>`
      : nothing}
  `;
}

// --- Neurons ----------------------------------------------------------------------------

/** A patch as people tell patches apart: its method, when it was made and what it repaired (never its id). */
export function patchName(p: PatchSummary, now: number): string {
  const n = p.failureIds.length;
  return `${p.method} · ${formatTime(p.createdAt, now)} · ${n} failure${n === 1 ? '' : 's'}`;
}

function patchLabel(p: PatchSummary, now: number): string {
  return `${patchName(p, now)} · ${p.neurons} neurons${p.enabled ? '' : ' (disabled)'}`;
}

function patchPicker(state: PanelState, patch: PatchSummary | undefined, actions: Actions, now: number, id: string): TemplateResult {
  if (state.patches.length < 2) return html``;
  return html`
    <div class="picker">
      <label for=${id}>Patch</label>
      <vscode-single-select
        id=${id}
        label="Patch shown in Neurons and Scores"
        data-action="pick-patch"
        @change=${(e: Event) => actions.selectPatch((e.target as HTMLSelectElement).value)}
      >
        ${state.patches.map((p) => html`<vscode-option value=${p.id} ?selected=${p.id === patch?.id}>${patchLabel(p, now)}</vscode-option>`)}
      </vscode-single-select>
    </div>
  `;
}

function neuronsSection(model: PanelModel, patch: PatchSummary | undefined, actions: Actions, now: number): TemplateResult {
  const { state } = model;
  if (!state.model) return empty('Load a model to see its layers and neurons.');
  if (!patch) return empty('No patches yet: repair a failure and the neurons it changes appear here.');
  const patched = patch.layers.reduce((s, l) => s + l.rows.length, 0);
  const layersTouched = patch.layers.filter((l) => l.rows.length > 0).length;
  const sel = model.ui.neuron;
  const details = sel ? findDetails(model, sel) : undefined;
  return html`
    ${patchPicker(state, patch, actions, now, 'neurons-patch')}
    <p class="summary" data-field="map-summary">
      ${patched} neuron${patched === 1 ? '' : 's'} in ${layersTouched} of ${state.model.layers} layers (${state.model.neuronsPerLayer.toLocaleString('en-US')} per
      layer)
    </p>
    <div class="map-wrap">
      <canvas
        id="neuron-map"
        tabindex="0"
        role="img"
        aria-label=${`Map of the ${patched} neurons the ${patchName(patch, now)} patch changes: one row per layer, neuron index across, colour is the size of the change. Arrow keys move between patched neurons, Enter shows details.`}
        aria-describedby="map-status"
      ></canvas>
    </div>
    <p id="map-tooltip" class="map-readout" data-field="map-readout"></p>
    <p id="map-status" class="sr-only" aria-live="polite"></p>
    ${sel ? neuronDetails(sel.layer, sel.neuron, details) : nothing}
  `;
}

function tokenList(items: NeuronDetails['up'], cls: string): TemplateResult {
  if (items.length === 0) return html`<span class="muted">none</span>`;
  return html`<ol class=${`tokens ${cls}`}>
    ${items.map((t) => html`<li><code>${showToken(t.token)}</code> <span class="number">${t.logit >= 0 ? '+' : ''}${t.logit.toFixed(3)}</span></li>`)}
  </ol>`;
}

export function neuronDetails(layer: number, neuron: number, d: NeuronDetails | undefined): TemplateResult {
  return html`
    <section class="details" aria-label=${`Neuron ${neuron} of layer ${layer}`} data-field="neuron-details">
      <h4>Layer ${layer}, neuron ${neuron}</h4>
      ${!d
        ? html`<p class="muted" data-field="details-loading">Loading details…</p>`
        : html`
            ${d.error ? html`<p class="warning">${d.error}</p>` : nothing}
            <dl class="facts">
              <dt>Delta norm</dt>
              <dd data-field="delta-norm">${formatNorm(d.deltaNorm)}</dd>
            </dl>
            <div class="pushes">
              <div><h5>Pushes up</h5>${tokenList(d.up, 'up')}</div>
              <div><h5>Pushes down</h5>${tokenList(d.down, 'down')}</div>
            </div>
          `}
    </section>
  `;
}

// --- Scores -----------------------------------------------------------------------------

const BAR_W = 100;

function bar(value: number, cls: string): TemplateResult {
  const w = Math.max(0, Math.min(1, value)) * BAR_W;
  return html`<svg class=${`bar ${cls}`} viewBox="0 0 ${BAR_W} 8" preserveAspectRatio="none" aria-hidden="true">
    ${svg`<rect class="track" x="0" y="0" width=${BAR_W} height="8"></rect><rect class="fill" x="0" y="0" width=${w} height="8"></rect>`}
  </svg>`;
}

function scoreRow(name: string, key: string, s: ScoreBeforeAfter | null): TemplateResult {
  if (!s) {
    return html`<div class="score" data-score=${key}><span class="score-name">${name}</span><span class="muted">not measured</span></div>`;
  }
  return html`
    <div class="score" data-score=${key} role="group" aria-label=${`${name}: before ${s.before === null ? 'not applicable' : formatPercent(s.before)}, after ${formatPercent(s.after)}`}>
      <span class="score-name">${name}</span>
      <span class="pair">
        <span class="label">before</span>${s.before === null ? html`<span class="muted bar-na">n/a</span>` : bar(s.before, 'before')}
        <span class="number" data-field="before">${s.before === null ? '—' : formatPercent(s.before)}</span>
      </span>
      <span class="pair">
        <span class="label">after</span>${bar(s.after, 'after')}<span class="number" data-field="after">${formatPercent(s.after)}</span>
      </span>
    </div>
  `;
}

function scoresSection(state: PanelState, patch: PatchSummary | undefined, now: number): TemplateResult {
  if (!patch) return empty('No scores yet: they appear here after the first repair, measured on the failure, similar prompts and unrelated ones.');
  return html`
    <p class="summary" data-field="scores-patch">${patchLabel(patch, now)}${state.patches.length > 1 ? ' (choose another in Neurons or Patches)' : ''}</p>
    <div class="scores" data-field="scores">
      ${scoreRow('Effectiveness', 'effectiveness', patch.scores.effectiveness)}
      ${scoreRow('Generalisation', 'generalisation', patch.scores.generalisation)}
      ${scoreRow('Specificity', 'specificity', patch.scores.specificity)}
    </div>
    ${patch.positions.length === 0
      ? empty('No per-position probabilities for this patch.')
      : html`
          <table class="positions" data-field="positions">
            <caption>
              Desired token probability per repaired position
            </caption>
            <thead>
              <tr><th scope="col">#</th><th scope="col">Token</th><th scope="col">Before</th><th scope="col">After</th></tr>
            </thead>
            <tbody>
              ${patch.positions.map(
                (p, i) => html`<tr>
                  <td class="number">${i + 1}</td>
                  <td><code>${showToken(p.token)}</code></td>
                  <td>${bar(p.pBefore, 'before')}<span class="number">${formatPercent(p.pBefore)}</span></td>
                  <td>${bar(p.pAfter, 'after')}<span class="number">${formatPercent(p.pAfter)}</span></td>
                </tr>`,
              )}
            </tbody>
          </table>
        `}
  `;
}

// --- Patches ----------------------------------------------------------------------------

function shortScore(s: ScoreBeforeAfter | null): string {
  return s ? formatPercent(s.after) : '—';
}

function patchesSection(model: PanelModel, actions: Actions, now: number): TemplateResult {
  const { state, ui } = model;
  if (state.patches.length === 0) return empty('No patches yet. Each repair adds one here; you can turn it off, undo it or export it.');
  const ordered = [...state.patches].sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt));
  return html`
    <ul class="patches" aria-label="Patch history">
      ${repeat(
        ordered,
        (p) => p.id,
        (p) => html`
          <li class=${`patch${p.id === ui.patchId ? ' current' : ''}`} data-patch-id=${p.id} aria-current=${p.id === ui.patchId ? 'true' : 'false'}>
            <div class="patch-head">
              <strong>${p.method}</strong> <span class="muted">${p.mode}</span>
              <span class="time" title=${p.createdAt}>${formatTime(p.createdAt, now)}</span>
            </div>
            <div class="patch-stats" data-field="patch-stats">
              ${p.neurons} neurons · ${formatCount(p.params)} params · ${formatMs(p.ms)} · ${p.failureIds.length}
              failure${p.failureIds.length === 1 ? '' : 's'}
            </div>
            <div class="patch-scores" data-field="patch-scores">
              E ${shortScore(p.scores.effectiveness)} · G ${shortScore(p.scores.generalisation)} · S ${shortScore(p.scores.specificity)}
            </div>
            <div class="actions">
              <vscode-checkbox
                toggle
                data-action="toggle"
                .checked=${live(p.enabled)}
                @change=${(e: Event) => actions.togglePatch(p.id, (e.target as HTMLInputElement).checked)}
                >${p.enabled ? 'Enabled' : 'Disabled'}<span class="sr-only"> (${patchName(p, now)})</span></vscode-checkbox
              >
              <vscode-button data-action="show" secondary ?disabled=${p.id === ui.patchId} aria-label=${`Show the ${patchName(p, now)} patch in Neurons and Scores`} @click=${() => actions.selectPatch(p.id)}
                >Show</vscode-button
              >
              <vscode-button data-action="export" secondary aria-label=${`Export the ${patchName(p, now)} patch`} @click=${() => actions.exportPatch(p.id)}>Export</vscode-button>
              ${p.enabled
                ? html`<vscode-button data-action="undo" secondary aria-label=${`Undo the ${patchName(p, now)} patch`} @click=${() => actions.undoPatch(p.id)}>Undo</vscode-button>`
                : nothing}
            </div>
          </li>
        `,
      )}
    </ul>
  `;
}
