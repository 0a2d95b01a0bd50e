// Entry point of the panel's webview (bundled by esbuild into dist/webview.js): restores the
// last state VS Code kept, listens for the extension's messages (validated; malformed ones
// are dropped and logged), renders the sections and drives the neuron map's mouse and
// keyboard interaction.

import '@vscode-elements/elements/dist/vscode-badge/index.js';
import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-checkbox/index.js';
import '@vscode-elements/elements/dist/vscode-collapsible/index.js';
import '@vscode-elements/elements/dist/vscode-option/index.js';
import '@vscode-elements/elements/dist/vscode-progress-bar/index.js';
import '@vscode-elements/elements/dist/vscode-single-select/index.js';
import { render } from 'lit';
import { validateExtensionMessage, type WebviewToExtension } from '../src/panel/messages';
import { formatNorm, showToken } from './format';
import {
  cellAt,
  hitTest,
  nearestPatchedInLayer,
  nextPatchedInLayer,
  NeuronMapCanvas,
  type Highlight,
  type MapCell,
  type NeuronGrid,
} from './neuron-map';
import { applyMessage, findDetails, persistable, reconcileUi, restoreModel, type PanelModel, type UiState } from './store';
import { onThemeChange, readMapTheme } from './theme';
import { panelTemplate, type Actions } from './view';
import { connectHost } from './vscode-api';

const LOG = '[star-repair panel]';
const host = connectHost();
const app = document.getElementById('app') ?? document.body.appendChild(document.createElement('main'));

let model: PanelModel = restoreModel(host.load());
let theme = readMapTheme();
let map: NeuronMapCanvas | null = null;
let mapCanvas: HTMLCanvasElement | null = null;
let mapKey = '';
/** The layers the grid was built from: every new snapshot brings new (validated) objects. */
let mapLayers: unknown = null;
/** The cell under the mouse or the keyboard cursor. */
let hover: MapCell | null = null;
let saveTimer: ReturnType<typeof setTimeout> | undefined;

function post(message: WebviewToExtension): void {
  host.post(message);
}

function save(): void {
  clearTimeout(saveTimer);
  saveTimer = undefined;
  host.save(persistable(model));
}

/** Progress can arrive many times a second; VS Code need not serialise every one. */
function saveSoon(): void {
  saveTimer ??= setTimeout(save, 300);
}

function setUi(change: Partial<UiState>): void {
  model = { ...model, ui: reconcileUi({ ...model.ui, ...change }, model.state) };
  save();
  draw();
}

const actions: Actions = {
  selectFailure(id, selected) {
    const rest = model.ui.selectedFailures.filter((x) => x !== id);
    setUi({ selectedFailures: selected ? [...rest, id] : rest });
  },
  repair(ids) {
    post({ type: 'repair', failureIds: ids });
    setUi({ selectedFailures: model.ui.selectedFailures.filter((x) => !ids.includes(x)) });
  },
  repairBatch(ids) {
    post({ type: 'repairBatch', failureIds: ids });
    setUi({ selectedFailures: model.ui.selectedFailures.filter((x) => !ids.includes(x)) });
  },
  discard(id) {
    post({ type: 'discard', failureId: id });
  },
  open(id) {
    post({ type: 'openFailure', failureId: id });
  },
  cancelRepair() {
    post({ type: 'cancelRepair' });
  },
  showDiscarded(show) {
    setUi({ showDiscarded: show });
  },
  selectPatch(id) {
    if (id === model.ui.patchId) return;
    hover = null;
    setUi({ patchId: id, neuron: null });
  },
  togglePatch(id, enabled) {
    post({ type: 'togglePatch', patchId: id, enabled });
  },
  undoPatch(id) {
    post({ type: 'undoPatch', patchId: id });
  },
  exportPatch(id) {
    post({ type: 'exportPatch', patchId: id });
  },
};

function selectNeuron(layer: number, neuron: number): void {
  const patchId = model.ui.patchId;
  if (!patchId) return;
  const ref = { patchId, layer, neuron };
  setUi({ neuron: ref });
  const cached = findDetails(model, ref);
  if (!cached || cached.error) post({ type: 'selectNeuron', ...ref });
}

function draw(): void {
  render(panelTemplate(model, actions, Date.now()), app);
  syncMap();
}

// --- Neuron map ---------------------------------------------------------------------------

function currentPatch(): PanelModel['state']['patches'][number] | undefined {
  return model.state.patches.find((p) => p.id === model.ui.patchId);
}

function selectedHighlight(grid: NeuronGrid): Highlight | null {
  const n = model.ui.neuron;
  return n ? { layer: n.layer, column: Math.floor(n.neuron / grid.bucket) } : null;
}

function syncMap(): void {
  const canvas = app.querySelector<HTMLCanvasElement>('#neuron-map');
  const patch = currentPatch();
  const m = model.state.model;
  if (!canvas || !patch || !m) {
    map = null;
    mapCanvas = null;
    return;
  }
  if (canvas !== mapCanvas) {
    mapCanvas = canvas;
    map = new NeuronMapCanvas(canvas);
    mapKey = '';
    hover = null;
    wireMap(canvas);
  }
  const width = canvas.parentElement?.clientWidth ?? 300;
  const dpr = window.devicePixelRatio || 1;
  const key = `${patch.id}|${m.layers}|${m.neuronsPerLayer}|${width}|${dpr}`;
  if ((key !== mapKey || patch.layers !== mapLayers) && map) {
    map.setData(patch.layers, m.layers, m.neuronsPerLayer, width, dpr);
    mapKey = key;
    mapLayers = patch.layers;
    // The hovered cell belonged to the old grid.
    hover = null;
    showTooltip(null, 'mouse');
  }
  paintMap();
}

function paintMap(): void {
  const grid = map?.currentGrid;
  if (!map || !grid) return;
  map.paint(theme, hover ? { layer: hover.layer, column: hover.column } : null, selectedHighlight(grid));
}

function describeCell(cell: MapCell, grid: NeuronGrid): string {
  const range = grid.bucket > 1 ? `neurons ${cell.firstNeuron}–${cell.lastNeuron}` : `neuron ${cell.firstNeuron}`;
  if (cell.neuron < 0) return `Layer ${cell.layer}, ${range}: not patched`;
  const patchId = model.ui.patchId ?? '';
  const d = findDetails(model, { patchId, layer: cell.layer, neuron: cell.neuron });
  let s = `Layer ${cell.layer}, neuron ${cell.neuron}`;
  if (grid.bucket > 1) s += ` (largest of ${cell.count} patched in ${range})`;
  s += `. Delta norm ${formatNorm(cell.norm)}.`;
  if (d) {
    if (d.up.length) s += ` Up: ${d.up.slice(0, 3).map((t) => showToken(t.token)).join(' ')}.`;
    if (d.down.length) s += ` Down: ${d.down.slice(0, 3).map((t) => showToken(t.token)).join(' ')}.`;
  } else {
    s += ' Click or press Enter for the tokens it pushes.';
  }
  return s;
}

/** What the readout under the map says while no cell is hovered. */
const MAP_HINT = 'Hover a cell for its numbers; click it (or Enter) for the tokens it pushes.';

/**
 * The hovered (or keyboard-focused) cell's numbers, in the readout under the map: it never
 * covers a row. Keyboard moves are also announced through the polite live region.
 */
function showTooltip(cell: MapCell | null, anchor: 'mouse' | 'keyboard'): void {
  const tip = app.querySelector<HTMLElement>('#map-tooltip');
  const status = app.querySelector<HTMLElement>('#map-status');
  const grid = map?.currentGrid;
  if (!tip || !grid) return;
  const text = cell ? describeCell(cell, grid) : MAP_HINT;
  tip.textContent = text;
  tip.classList.toggle('idle', !cell);
  if (anchor === 'keyboard' && status) status.textContent = cell ? text : '';
}

function setHover(cell: MapCell | null): void {
  const same = hover && cell && hover.layer === cell.layer && hover.column === cell.column;
  if (same || (!hover && !cell)) return;
  hover = cell;
  paintMap();
}

function firstPatched(grid: NeuronGrid, fromLayer: number, step: 1 | -1): MapCell | null {
  for (let l = fromLayer; l >= 0 && l < grid.layers; l += step) {
    const c = step === 1 ? nextPatchedInLayer(grid, l, -1, 1) : nextPatchedInLayer(grid, l, grid.columns, -1);
    if (c !== null) return cellAt(grid, l, c);
  }
  return null;
}

function moveCursor(grid: NeuronGrid, key: string): MapCell | null {
  const at = hover ?? (model.ui.neuron ? cellAt(grid, model.ui.neuron.layer, Math.floor(model.ui.neuron.neuron / grid.bucket)) : null);
  if (!at) return firstPatched(grid, 0, 1);
  switch (key) {
    case 'ArrowRight':
    case 'ArrowLeft': {
      const c = nextPatchedInLayer(grid, at.layer, at.column, key === 'ArrowRight' ? 1 : -1);
      return c === null ? at : cellAt(grid, at.layer, c);
    }
    case 'ArrowDown':
    case 'ArrowUp': {
      const step = key === 'ArrowDown' ? 1 : -1;
      for (let l = at.layer + step; l >= 0 && l < grid.layers; l += step) {
        const c = nearestPatchedInLayer(grid, l, at.column);
        if (c !== null) return cellAt(grid, l, c);
      }
      return at;
    }
    case 'Home':
      return firstPatched(grid, 0, 1) ?? at;
    case 'End':
      return firstPatched(grid, grid.layers - 1, -1) ?? at;
    default:
      return at;
  }
}

function wireMap(canvas: HTMLCanvasElement): void {
  /** The map cell under the pointer (null: none), or undefined while no map is drawn. */
  const cellAt = (e: MouseEvent) => {
    const grid = map?.currentGrid;
    const layout = map?.currentLayout;
    if (!grid || !layout) return undefined;
    const r = canvas.getBoundingClientRect();
    return hitTest(grid, layout, e.clientX - r.left, e.clientY - r.top);
  };
  canvas.addEventListener('mousemove', (e) => {
    const cell = cellAt(e);
    if (cell === undefined) return;
    setHover(cell);
    showTooltip(cell, 'mouse');
  });
  canvas.addEventListener('mouseleave', () => {
    setHover(null);
    showTooltip(null, 'mouse');
  });
  canvas.addEventListener('click', (e) => {
    const cell = cellAt(e);
    if (cell && cell.neuron >= 0) selectNeuron(cell.layer, cell.neuron);
  });
  canvas.addEventListener('keydown', (e) => {
    const grid = map?.currentGrid;
    if (!grid) return;
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      const cell = hover ?? moveCursor(grid, '');
      if (cell && cell.neuron >= 0) selectNeuron(cell.layer, cell.neuron);
      return;
    }
    if (e.key === 'Escape') {
      setHover(null);
      showTooltip(null, 'keyboard');
      return;
    }
    if (!['ArrowRight', 'ArrowLeft', 'ArrowUp', 'ArrowDown', 'Home', 'End'].includes(e.key)) return;
    e.preventDefault();
    const cell = moveCursor(grid, e.key);
    setHover(cell);
    showTooltip(cell, 'keyboard');
  });
  canvas.addEventListener('blur', () => {
    setHover(null);
    showTooltip(null, 'keyboard');
  });
}

// --- Wiring -------------------------------------------------------------------------------

window.addEventListener('message', (event: MessageEvent) => {
  const v = validateExtensionMessage(event.data);
  if (!v.ok) {
    console.warn(`${LOG} dropped a malformed message from the extension: ${v.error}`);
    return;
  }
  const applied = applyMessage(model, v.value);
  if (!applied.ok) {
    console.warn(`${LOG} dropped ${v.value.type}: ${applied.reason}`);
    return;
  }
  model = applied.model;
  if (v.value.type === 'repairProgress') saveSoon();
  else save();
  draw();
});

onThemeChange(() => {
  theme = readMapTheme();
  paintMap();
});

new ResizeObserver(() => syncMap()).observe(app);
// Relative times ("5 min ago") age while the view stays open.
setInterval(draw, 60_000);

draw();
post({ type: 'ready' });
