// The Neurons section's map: one row per layer, neuron index on x (bucketed into columns when
// the MLP is wider than the canvas), colour = L2 norm of the patch's delta. Painting goes
// through one ImageData so 10 000 neurons over 48 layers redraw in well under a frame; the
// pure parts (grid, layout, hit test, colours and their contrast) are exported for tests in Node.

import type { LayerDelta } from '../src/panel/messages';

export interface NeuronGrid {
  layers: number;
  neurons: number;
  columns: number;
  /** Neurons per column: ceil(neurons / columns). */
  bucket: number;
  /** Per cell (layer * columns + column): the largest norm, or 0. */
  maxNorm: Float32Array;
  /** Per cell: the neuron with the largest norm, or -1 for an empty cell. */
  top: Int32Array;
  /** Per cell: how many patched neurons fall in it. */
  count: Uint32Array;
  /** The largest norm in the grid (the top of the colour scale). */
  peak: number;
  /** Patched neurons drawn. */
  total: number;
}

export function buildNeuronGrid(deltas: readonly LayerDelta[], layers: number, neurons: number, maxColumns: number): NeuronGrid {
  const cap = Math.max(1, Math.floor(maxColumns));
  const bucket = Math.max(1, Math.ceil(neurons / cap));
  const columns = Math.max(1, Math.ceil(neurons / bucket));
  const cells = layers * columns;
  const maxNorm = new Float32Array(cells);
  const top = new Int32Array(cells).fill(-1);
  const count = new Uint32Array(cells);
  let peak = 0;
  let total = 0;
  for (const d of deltas) {
    if (d.layer >= layers) continue;
    const base = d.layer * columns;
    for (let i = 0; i < d.rows.length; i++) {
      const row = d.rows[i];
      if (row >= neurons) continue;
      const norm = d.norms[i];
      const cell = base + Math.floor(row / bucket);
      count[cell]++;
      total++;
      if (top[cell] < 0 || norm > maxNorm[cell]) {
        maxNorm[cell] = norm;
        top[cell] = row;
      }
      if (norm > peak) peak = norm;
    }
  }
  return { layers, neurons, columns, bucket, maxNorm, top, count, peak, total };
}

export interface MapLayout {
  cssWidth: number;
  cssHeight: number;
  /** Left gutter for layer labels, CSS px. */
  gridX: number;
  gridY: number;
  gridWidth: number;
  gridHeight: number;
  rowHeight: number;
  /** Top of the legend strip, CSS px. */
  legendY: number;
}

const GUTTER = 30;
const TOP = 4;
const AXIS = 16;
const LEGEND = 22;

/** Rows shrink with depth so a 48-layer model still fits a sidebar without scrolling. */
export function layoutNeuronMap(cssWidth: number, layers: number): MapLayout {
  const rowHeight = Math.max(3, Math.min(14, Math.round(288 / Math.max(1, layers))));
  const gridWidth = Math.max(16, Math.floor(cssWidth) - GUTTER - 6);
  const gridHeight = rowHeight * layers;
  const legendY = TOP + gridHeight + AXIS;
  return {
    cssWidth: gridWidth + GUTTER + 6,
    cssHeight: legendY + LEGEND,
    gridX: GUTTER,
    gridY: TOP,
    gridWidth,
    gridHeight,
    rowHeight,
    legendY,
  };
}

export interface MapCell {
  layer: number;
  column: number;
  /** The neuron with the largest delta in the cell, or -1 if none is patched there. */
  neuron: number;
  norm: number;
  count: number;
  firstNeuron: number;
  lastNeuron: number;
}

export function cellAt(grid: NeuronGrid, layer: number, column: number): MapCell {
  const cell = layer * grid.columns + column;
  const firstNeuron = column * grid.bucket;
  return {
    layer,
    column,
    neuron: grid.top[cell],
    norm: grid.maxNorm[cell],
    count: grid.count[cell],
    firstNeuron,
    lastNeuron: Math.min(grid.neurons, firstNeuron + grid.bucket) - 1,
  };
}

/** The cell under a point in CSS px relative to the canvas, or null outside the grid. */
export function hitTest(grid: NeuronGrid, layout: MapLayout, x: number, y: number): MapCell | null {
  const gx = x - layout.gridX;
  const gy = y - layout.gridY;
  if (gx < 0 || gy < 0 || gx >= layout.gridWidth || gy >= layout.gridHeight) return null;
  const layer = Math.min(grid.layers - 1, Math.floor(gy / layout.rowHeight));
  const column = Math.min(grid.columns - 1, Math.floor((gx / layout.gridWidth) * grid.columns));
  return cellAt(grid, layer, column);
}

/** The CSS-px rectangle of a cell, for outlines and tooltips. */
export function cellRect(grid: NeuronGrid, layout: MapLayout, layer: number, column: number): { x: number; y: number; w: number; h: number } {
  const x0 = layout.gridX + (column / grid.columns) * layout.gridWidth;
  const x1 = layout.gridX + ((column + 1) / grid.columns) * layout.gridWidth;
  return { x: x0, y: layout.gridY + layer * layout.rowHeight, w: Math.max(1, x1 - x0), h: layout.rowHeight };
}

/** The next patched cell from (layer, column) going `step` columns at a time, or null. */
export function nextPatchedInLayer(grid: NeuronGrid, layer: number, column: number, step: 1 | -1): number | null {
  for (let c = column + step; c >= 0 && c < grid.columns; c += step) {
    if (grid.top[layer * grid.columns + c] >= 0) return c;
  }
  return null;
}

/** The patched cell in `layer` nearest to `column`, or null if the layer has none. */
export function nearestPatchedInLayer(grid: NeuronGrid, layer: number, column: number): number | null {
  for (let d = 0; d < grid.columns; d++) {
    const l = column - d;
    const r = column + d;
    if (l >= 0 && grid.top[layer * grid.columns + l] >= 0) return l;
    if (r < grid.columns && grid.top[layer * grid.columns + r] >= 0) return r;
  }
  return null;
}

export type Rgba = [number, number, number, number];

/** Reads the two forms a canvas normalises `fillStyle` to: '#rrggbb' and 'rgba(r, g, b, a)'. */
export function parseCanvasColor(s: string): Rgba | null {
  const hex = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(s.trim());
  if (hex) return [parseInt(hex[1], 16), parseInt(hex[2], 16), parseInt(hex[3], 16), 1];
  const fn = /^rgba?\(\s*([\d.]+)[,\s]+([\d.]+)[,\s]+([\d.]+)(?:[,\s/]+([\d.]+))?\s*\)$/i.exec(s.trim());
  if (fn) return [Number(fn[1]), Number(fn[2]), Number(fn[3]), fn[4] === undefined ? 1 : Number(fn[4])];
  return null;
}

/** `top` drawn over an opaque `bottom`. */
export function over(top: Rgba, bottom: Rgba): Rgba {
  const a = top[3];
  return [top[0] * a + bottom[0] * (1 - a), top[1] * a + bottom[1] * (1 - a), top[2] * a + bottom[2] * (1 - a), 1];
}

export function mix(a: Rgba, b: Rgba, t: number): Rgba {
  return [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t, 1];
}

/** WCAG relative luminance of an sRGB colour (alpha ignored). */
export function luminance(c: Rgba): number {
  const lin = (v: number): number => {
    const x = Math.min(255, Math.max(0, v)) / 255;
    return x <= 0.04045 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * lin(c[0]) + 0.7152 * lin(c[1]) + 0.0722 * lin(c[2]);
}

/** WCAG contrast ratio, 1 to 21. */
export function contrastRatio(a: Rgba, b: Rgba): number {
  const la = luminance(a);
  const lb = luminance(b);
  return (Math.max(la, lb) + 0.05) / (Math.min(la, lb) + 0.05);
}

/** The text and the patched cells must read against the background at least this well (WCAG AA). */
export const MIN_CONTRAST = 4.5;
/** The largest delta stands out further still. */
export const PEAK_CONTRAST = 7;

/** Rounded to whole channel values, as the canvas stores them. */
function rounded(c: Rgba): Rgba {
  return [Math.round(c[0]), Math.round(c[1]), Math.round(c[2]), 1];
}

/**
 * `c` if it already contrasts with `background` by `ratio`, else the nearest colour towards white
 * (on a dark background) or black (on a light one) that does; the hue of the theme's token is
 * kept as long as possible. Measured on the rounded colour the canvas will draw.
 */
export function ensureContrast(c: Rgba, background: Rgba, ratio: number): Rgba {
  const start = rounded(c);
  if (contrastRatio(start, background) >= ratio) return start;
  const dark = luminance(background) < 0.18;
  const target: Rgba = dark ? [255, 255, 255, 1] : [0, 0, 0, 1];
  return rounded(mix(start, target, leastMixReaching(start, target, background, ratio)));
}

/**
 * The smallest share t of `to` (bisected to 2^-24) for which mix(from, to, t) reaches `ratio`
 * against `background`; 1 when only `to` itself does.
 */
function leastMixReaching(from: Rgba, to: Rgba, background: Rgba, ratio: number): number {
  let lo = 0;
  let hi = 1;
  for (let i = 0; i < 24; i++) {
    const mid = (lo + hi) / 2;
    if (contrastRatio(rounded(mix(from, to, mid)), background) >= ratio) hi = mid;
    else lo = mid;
  }
  return hi;
}

/**
 * The colour scale of the map from a theme's tokens: the accent (`charts-orange`) raised to
 * PEAK_CONTRAST is the largest delta; the smallest is the point between the background and it
 * where the contrast reaches MIN_CONTRAST. Every colour between is at least MIN_CONTRAST too.
 */
export function mapRamp(background: Rgba, accent: Rgba): { low: Rgba; high: Rgba } {
  const high = ensureContrast(accent, background, PEAK_CONTRAST);
  const low = mix(background, high, leastMixReaching(background, high, background, MIN_CONTRAST));
  return { low: ensureContrast(low, background, MIN_CONTRAST), high };
}

/** The colour at ramp position t in [0, 1], never below MIN_CONTRAST against the background. */
export function rampColor(theme: MapTheme, t: number): Rgba {
  return ensureContrast(mix(theme.low, theme.high, t), theme.background, MIN_CONTRAST);
}

export interface MapTheme {
  background: Rgba;
  /** Cells with no patched neuron. */
  empty: Rgba;
  /** The colour of the smallest and the largest delta. */
  low: Rgba;
  high: Rgba;
  text: string;
  focus: string;
  font: string;
}

/** Square-root scale, so a few large deltas do not wash out the rest. */
export function rampPosition(norm: number, peak: number): number {
  return peak > 0 ? Math.sqrt(Math.min(1, Math.max(0, norm / peak))) : 0;
}

const RAMP_STEPS = 256;

function packRgba(c: Rgba): number {
  // ImageData is RGBA bytes; on little-endian machines a Uint32 view reads them as ABGR.
  return ((255 << 24) | (Math.round(c[2]) << 16) | (Math.round(c[1]) << 8) | Math.round(c[0])) >>> 0;
}

const littleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

export interface Highlight {
  layer: number;
  column: number;
}

/** Owns one canvas: lays it out for its width, paints the grid, outlines hovered/selected cells. */
export class NeuronMapCanvas {
  private grid: NeuronGrid | null = null;
  private layout: MapLayout | null = null;
  private image: ImageData | null = null;
  private ramp = new Uint32Array(RAMP_STEPS);
  private dpr = 1;

  constructor(private readonly canvas: HTMLCanvasElement) {}

  get currentGrid(): NeuronGrid | null {
    return this.grid;
  }

  get currentLayout(): MapLayout | null {
    return this.layout;
  }

  /** Rebuilds the grid for new data or a new width. */
  setData(deltas: readonly LayerDelta[], layers: number, neurons: number, cssWidth: number, dpr: number): void {
    this.dpr = Math.max(1, dpr);
    this.layout = layoutNeuronMap(cssWidth, layers);
    // At least one device pixel per column, so no patched neuron can vanish between pixels.
    const maxColumns = Math.floor(this.layout.gridWidth * this.dpr);
    this.grid = buildNeuronGrid(deltas, layers, neurons, maxColumns);
    const w = Math.round(this.layout.cssWidth * this.dpr);
    const h = Math.round(this.layout.cssHeight * this.dpr);
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
    }
    this.canvas.style.width = `${this.layout.cssWidth}px`;
    this.canvas.style.height = `${this.layout.cssHeight}px`;
  }

  /** Paints everything. Returns false when there is nothing to paint yet. */
  paint(theme: MapTheme, hover: Highlight | null, selected: Highlight | null): boolean {
    const grid = this.grid;
    const layout = this.layout;
    const ctx = this.canvas.getContext('2d');
    if (!grid || !layout || !ctx) return false;
    const dpr = this.dpr;
    for (let i = 0; i < RAMP_STEPS; i++) this.ramp[i] = packRgbaFor(rampColor(theme, i / (RAMP_STEPS - 1)));
    const emptyPx = packRgbaFor(theme.empty);
    const backgroundPx = packRgbaFor(theme.background);

    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = cssColor(theme.background);
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);

    const gx = Math.round(layout.gridX * dpr);
    const gy = Math.round(layout.gridY * dpr);
    const gw = Math.max(1, Math.round(layout.gridWidth * dpr));
    const gh = Math.max(1, Math.round(layout.gridHeight * dpr));
    if (!this.image || this.image.width !== gw || this.image.height !== gh) this.image = ctx.createImageData(gw, gh);
    const px = new Uint32Array(this.image.data.buffer);
    const rowPx = new Uint32Array(gw);
    // Column c covers device pixels [edge[c], edge[c+1]).
    const edge = new Int32Array(grid.columns + 1);
    for (let c = 0; c <= grid.columns; c++) edge[c] = Math.floor((c * gw) / grid.columns);
    // A one-pixel gap between rows keeps layers apart once rows are tall enough to afford it.
    const gap = layout.rowHeight * dpr >= 5 ? 1 : 0;
    for (let l = 0; l < grid.layers; l++) {
      const base = l * grid.columns;
      for (let c = 0; c < grid.columns; c++) {
        const cell = base + c;
        const v = grid.top[cell] < 0 ? emptyPx : this.ramp[Math.round(rampPosition(grid.maxNorm[cell], grid.peak) * (RAMP_STEPS - 1))];
        rowPx.fill(v, edge[c], edge[c + 1]);
      }
      const y0 = Math.floor((l * gh) / grid.layers);
      const y1 = Math.floor(((l + 1) * gh) / grid.layers) - gap;
      for (let y = y0; y < Math.max(y0 + 1, y1); y++) px.set(rowPx, y * gw);
      if (gap) px.fill(backgroundPx, Math.max(y0 + 1, y1) * gw, Math.floor(((l + 1) * gh) / grid.layers) * gw);
    }
    ctx.putImageData(this.image, gx, gy);

    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    this.paintAxes(ctx, grid, layout, theme);
    for (const [h, width, dash] of [
      [hover, 1, true],
      [selected, 2, false],
    ] as const) {
      if (!h || h.layer >= grid.layers || h.column >= grid.columns) continue;
      const r = cellRect(grid, layout, h.layer, h.column);
      ctx.strokeStyle = theme.focus;
      ctx.lineWidth = width;
      ctx.setLineDash(dash ? [2, 2] : []);
      ctx.strokeRect(r.x - width / 2 - 0.5, r.y - width / 2 - 0.5, r.w + width + 1, r.h + width + 1);
    }
    ctx.setLineDash([]);
    return true;
  }

  private paintAxes(ctx: CanvasRenderingContext2D, grid: NeuronGrid, layout: MapLayout, theme: MapTheme): void {
    ctx.fillStyle = theme.text;
    ctx.font = theme.font;
    ctx.textBaseline = 'middle';
    ctx.textAlign = 'right';
    // Label about every 14 px of height; always the first and last layer.
    const every = Math.max(1, Math.ceil(14 / layout.rowHeight));
    for (let l = 0; l < grid.layers; l += every) {
      ctx.fillText(String(l), layout.gridX - 4, layout.gridY + (l + 0.5) * layout.rowHeight);
    }
    const last = grid.layers - 1;
    if (last % every !== 0 && (last % every) * layout.rowHeight >= 12) {
      ctx.fillText(String(last), layout.gridX - 4, layout.gridY + (last + 0.5) * layout.rowHeight);
    }
    ctx.textBaseline = 'top';
    const axisY = layout.gridY + layout.gridHeight + 3;
    ctx.textAlign = 'left';
    ctx.fillText('0', layout.gridX, axisY);
    ctx.textAlign = 'right';
    ctx.fillText(String(grid.neurons - 1), layout.gridX + layout.gridWidth, axisY);
    ctx.textAlign = 'center';
    ctx.fillText(grid.bucket > 1 ? `neuron (${grid.bucket} per column)` : 'neuron', layout.gridX + layout.gridWidth / 2, axisY);

    // Legend: the colour ramp from 0 to the peak norm.
    const ly = layout.legendY + 4;
    const lw = Math.min(120, layout.gridWidth / 2);
    const steps = 32;
    for (let i = 0; i < steps; i++) {
      ctx.fillStyle = cssColor(rampColor(theme, i / (steps - 1)));
      ctx.fillRect(layout.gridX + (i * lw) / steps, ly, lw / steps + 0.5, 8);
    }
    ctx.fillStyle = theme.text;
    ctx.textAlign = 'left';
    ctx.textBaseline = 'middle';
    ctx.fillText(`‖Δ‖ 0 – ${grid.peak.toPrecision(3)} (√ scale)`, layout.gridX + lw + 6, ly + 4);
  }
}

function packBigEndian(c: Rgba): number {
  return ((Math.round(c[0]) << 24) | (Math.round(c[1]) << 16) | (Math.round(c[2]) << 8) | 255) >>> 0;
}

function packRgbaFor(c: Rgba): number {
  return littleEndian ? packRgba(c) : packBigEndian(c);
}

export function cssColor(c: Rgba): string {
  return `rgb(${Math.round(c[0])}, ${Math.round(c[1])}, ${Math.round(c[2])})`;
}
