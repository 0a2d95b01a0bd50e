// STAR (docs/algorithm.md): locate the buggy neurons by gradient × activation, solve their patches
// analytically from the semantic steer (minimum-norm least squares), take the direction of each
// entry from the exact gradient, and step. `batch` repairs every target position of one or several
// failures at once the authors' way — a failing position steers, a right one is a zero-steer row,
// the loss covers all target tokens — optionally with zero-steer rows from a regression set that
// the patch must leave alone (specificity-preserving STAR); `iter` walks the target token by token.

import { matrix, minNormLeastSquares, type Matrix } from './linalg';
import { attributionFromGradient, gatherActivations, gradientRows, mostHarmfulLayer, selectNeurons, signAlign, topLayers, type SelectMode } from './locate';
import { steer } from './semantic';
import { assess, checkCancelled, PatchAccumulator, RepairModel, softmaxRow, wholeTargetRight, type Assessment, type RepairControl } from './engine';
import { maskFor, RepairError, type Example } from './teacher';

/** When a repair may stop before its epoch budget. */
export type StopWhen = 'target-right' | 'failing-fixed' | 'never';
export const STOP_WHEN: readonly StopWhen[] = ['target-right', 'failing-fixed', 'never'];

/** Batch mode: what the target positions that are already right do. */
export type RightPositions = 'zero-steer' | 'omit';
export const RIGHT_POSITIONS: readonly RightPositions[] = ['zero-steer', 'omit'];

export interface StarOptions {
  mode: 'iter' | 'batch';
  select: SelectMode;
  epochs: number;
  /** Step size η (docs/algorithm.md "The STAR step"); the `scale` of the paper multiplies it. */
  eta: number;
  /**
   * target-right: stop once every target token of every failure is the argmax (by `margin`);
   * failing-fixed: once the positions failing at the start are (the first variant: a step may
   * break a token that was right); never: the whole budget, as the authors run it.
   */
  stopWhen: StopWhen;
  /** Log-probability lead every target token needs for `target-right` (0: being the argmax is enough). */
  margin: number;
  /** zero-steer: the authors' batch mode (right positions are zero-steer rows and in the loss); omit: the first variant. */
  rightPositions: RightPositions;
  /** `global`: how many neurons over all layers. */
  topK: number;
  /** `one-layer`: fraction ρ of the chosen layer's neurons. */
  fraction: number;
  /** `layer`: the share of layers repaired (the authors: a quarter). */
  layerShare: number;
  /**
   * STAR+ (an extension, not the paper's method): each epoch tries η, 2η, 4η, … (forward passes
   * only) and keeps the smallest step that fixes every target, else the lowest loss.
   */
  lineSearch: boolean;
  /** Specificity-preserving STAR: at most this many positions of the preserve set as zero-steer rows (0: off). */
  preserveRows: number;
}

export const STAR_DEFAULTS: StarOptions = {
  mode: 'batch', select: 'dense', epochs: 10, eta: 0.01, stopWhen: 'target-right', margin: 0, rightPositions: 'zero-steer',
  topK: 64, fraction: 0.05, layerShare: 0.25, lineSearch: false, preserveRows: 0,
};

export interface RepairOutcome {
  method: 'star' | 'mint' | 'sgd';
  acc: PatchAccumulator;
  before: Assessment[];
  after: Assessment[];
  epochs: number;
  losses: number[];
  ms: number;
  /** Layers the method could change. */
  layers: number[];
  /** Wall time of each epoch (probe, solve and step), ms. */
  epochMs: number[];
}

/** A row of the least-squares system: example index, target index k, its input position, y_k. */
interface Row {
  ex: number;
  k: number;
  position: number;
  y: number;
}

function byExample(rows: readonly Row[]): Map<number, Row[]> {
  const out = new Map<number, Row[]>();
  for (const r of rows) {
    const list = out.get(r.ex) ?? [];
    list.push(r);
    out.set(r.ex, list);
  }
  return out;
}

async function assessAll(model: RepairModel, examples: readonly Example[]): Promise<Assessment[]> {
  const out: Assessment[] = [];
  for (const ex of examples) out.push(await assess(model.runtime, ex));
  return out;
}

/** Mean cross-entropy over `rows` (forward only). */
async function rowsLoss(model: RepairModel, examples: readonly Example[], rows: readonly Row[]): Promise<number> {
  let total = 0;
  for (const [ex, list] of byExample(rows)) {
    const e = examples[ex];
    const r = await model.runtime.score(e.ids, e.nextTokens, maskFor(e, list.map((x) => x.position)));
    total += r.loss * list.length;
  }
  return total / rows.length;
}

/**
 * Which neurons may change. Attribution (docs/algorithm.md "Locating neurons") sums over the failing rows; the occlusion of
 * `layer` and `one-layer` measures the loss over every row in the loss.
 */
async function locate(model: RepairModel, examples: readonly Example[], failing: readonly Row[], lossRows: readonly Row[], acc: PatchAccumulator, opts: StarOptions): Promise<Map<number, number[]>> {
  const { layers: L, intermediate: m } = model.config;
  const zeros = () => Array.from({ length: L }, () => new Float64Array(m));
  if (opts.select === 'dense') return selectNeurons(zeros(), 'dense', {});
  if (opts.select === 'layer' || opts.select === 'one-layer') {
    const downs = Array.from({ length: L }, (_, l) => model.downProjection(l, acc));
    // Skipping layer l's MLP = adding minus each of its value vectors (as they are now); bias aside.
    const intact = await rowsLoss(model, examples, lossRows);
    const skipped: number[] = [];
    for (let l = 0; l < L; l++) {
      const trial = acc.clone();
      for (let i = 0; i < m; i++) trial.add(l, i, downs[l].row(i), -1);
      model.apply(trial);
      skipped.push(await rowsLoss(model, examples, lossRows));
    }
    model.apply(acc);
    if (opts.select === 'layer') return selectNeurons(zeros(), 'layer', { layers: topLayers(skipped, intact, opts.layerShare) });
    const layer = mostHarmfulLayer(skipped);
    const scores = zeros();
    await attribute(model, examples, failing, scores, layer);
    return selectNeurons(scores, 'one-layer', { layer, fraction: opts.fraction });
  }
  const scores = zeros();
  model.apply(acc);
  await attribute(model, examples, failing, scores, 0);
  return selectNeurons(scores, 'global', { topK: Math.min(opts.topK, L * m) });
}

/**
 * Adds each failing row's attribution (docs/algorithm.md "Locating neurons") for layers >= fromLayer,
 * from the probe's dL/dz: the runtime computes with base + `acc` here, so its dL/dz is dL/dh times
 * the value vectors as they are now.
 */
async function attribute(model: RepairModel, examples: readonly Example[], failing: readonly Row[], scores: Float64Array[], fromLayer: number): Promise<void> {
  const { layers: L, vocab: V, intermediate: m } = model.config;
  for (const t of failing) {
    const ex = examples[t.ex];
    const probe = await model.runtime.attribution(ex.ids, ex.nextTokens, maskFor(ex, [t.position]), fromLayer);
    const p = softmaxRow(probe.logits, 0, V)[t.y];
    for (let l = fromLayer; l < L; l++) {
      const s = attributionFromGradient(probe.z[l], probe.dz[l], ex.ids.length, m, p);
      for (let i = 0; i < s.length; i++) scores[l][i] += s[i];
    }
  }
}

/** Positions of the preserve set that join the system as zero-steer rows: spread evenly, at most `limit`. */
function preserveRowsOf(preserve: readonly Example[], limit: number): Row[] {
  if (limit <= 0 || preserve.length === 0) return [];
  const out: Row[] = [];
  // Round-robin over the examples, so a long sample cannot take every row.
  for (let k = 0; out.length < limit; k++) {
    let added = false;
    preserve.forEach((e, ex) => {
      if (out.length >= limit || k >= e.targetPositions.length) return;
      out.push({ ex, k, position: e.targetPositions[k], y: e.desired[k] });
      added = true;
    });
    if (!added) break;
  }
  return out;
}

/** Z of the located rows at the given positions of one sequence (a forward pass with a probe). */
async function activationsAt(model: RepairModel, e: Example, rows: readonly Row[], located: Map<number, number[]>, fromLayer: number): Promise<{ z: Map<number, Matrix>; probe: Awaited<ReturnType<RepairModel['runtime']['probe']>> }> {
  const { intermediate: m } = model.config;
  const probe = await model.runtime.probe(e.ids, e.nextTokens, maskFor(e, rows.map((r) => r.position)), fromLayer);
  const z = new Map<number, Matrix>();
  for (const [l, neurons] of located) z.set(l, gatherActivations(probe.z[l], e.ids.length, m, rows.map((r) => r.position), neurons));
  return { z, probe };
}

/**
 * The exact gradient of the loss w.r.t. the located rows of one layer, Σ_e w_e·gradientRows(z_e, dh_e),
 * kept as its terms (each probe's activations and output gradient, T·(m + d) values) while they
 * are smaller than the [k, d] sum, which is formed once they are not. A dense step of a 1.5B model
 * so holds a few probes instead of 28 float64 sums of [8960, 1536] (3.1 GB); the sum is the same,
 * added in the same order.
 */
class RowGradient {
  private terms: { z: Float32Array; dh: Float32Array; T: number; w: number }[] = [];
  private held = 0;
  private sum: Float64Array | null = null;
  constructor(private readonly rows: number[], private readonly m: number, private readonly d: number) {}

  add(z: Float32Array, dh: Float32Array, T: number, w: number): void {
    if (this.sum) return this.addTo(this.sum, z, dh, T, w);
    this.terms.push({ z, dh, T, w });
    this.held += z.length + dh.length;
    if (this.held > this.rows.length * this.d) {
      this.sum = this.value();
      this.terms = [];
    }
  }

  private addTo(G: Float64Array, z: Float32Array, dh: Float32Array, T: number, w: number): void {
    const g = gradientRows(z, dh, this.rows, T, this.m, this.d);
    for (let i = 0; i < g.length; i++) G[i] += w * g[i];
  }

  value(): Float64Array {
    if (this.sum) return this.sum;
    const G = new Float64Array(this.rows.length * this.d);
    for (const t of this.terms) this.addTo(G, t.z, t.dh, t.T, t.w);
    return G;
  }
}

interface Step {
  loss: number;
  /** Layer l's aligned Δ ([rows, d], the located rows' order), solved when asked: one layer's Δ in memory at a time. */
  solve(l: number): Float64Array;
}

/**
 * One STAR epoch: forward + backward over the examples (loss = mean cross-entropy over `lossRows`),
 * Z at every system row (failing rows steer, the others are zero-steer rows), Δ by minimum-norm
 * least squares, sign alignment with the exact gradient of the located rows.
 */
async function starStep(model: RepairModel, examples: readonly Example[], preserve: readonly Example[], system: readonly { row: Row; steer: Float64Array | null; set: 'repair' | 'preserve' }[], lossRows: readonly Row[], located: Map<number, number[]>): Promise<Step> {
  const { intermediate: m, hidden: d } = model.config;
  const fromLayer = Math.min(...located.keys());
  const N = system.length;
  const Z = new Map<number, Matrix>();
  const grads = new Map<number, RowGradient>();
  for (const [l, rows] of located) {
    Z.set(l, matrix(N, rows.length));
    grads.set(l, new RowGradient(rows, m, d));
  }
  const S = matrix(N, d);
  system.forEach((s, n) => s.steer && S.data.set(s.steer, n * d));
  const put = (n: number, z: Map<number, Matrix>, i: number) => {
    for (const [l, rows] of located) Z.get(l)!.data.set(z.get(l)!.data.subarray(i * rows.length, (i + 1) * rows.length), n * rows.length);
  };
  let loss = 0;
  const lossBy = byExample(lossRows);
  // Preserved rows are in the loss too (their labels are the model's own outputs), so the gradient
  // that picks each entry's sign also keeps them, as the zero-steer rows of the target do.
  const preserveCount = system.filter((s) => s.set === 'preserve').length;
  const lossCount = lossRows.length + preserveCount;
  /** System row indices of one set, by example. */
  const rowsBySet = (set: 'repair' | 'preserve') => {
    const out = new Map<number, number[]>();
    system.forEach((s, n) => {
      if (s.set === set) out.set(s.row.ex, [...(out.get(s.row.ex) ?? []), n]);
    });
    return out;
  };
  /** Adds `w` times one probe's exact gradient of the located rows. */
  const addGradient = (probe: { z: Float32Array[]; dh: Float32Array[] }, T: number, w: number) => {
    for (const l of located.keys()) grads.get(l)!.add(probe.z[l], probe.dh[l], T, w);
  };
  const repairIdx = rowsBySet('repair');
  for (const ex of new Set([...lossBy.keys(), ...repairIdx.keys()])) {
    const e = examples[ex];
    const lossPositions = (lossBy.get(ex) ?? []).map((r) => r.position);
    const inSystem = repairIdx.get(ex) ?? [];
    // The probe's mask is the loss; rows in the system but not in the loss (omit mode never has them) still get their z.
    const mask = lossPositions.length ? maskFor(e, lossPositions) : maskFor(e, inSystem.map((n) => system[n].row.position));
    const probe = await model.runtime.probe(e.ids, e.nextTokens, mask, fromLayer);
    if (lossPositions.length) {
      const w = lossPositions.length / lossCount;
      loss += w * probe.loss;
      addGradient(probe, e.ids.length, w);
    }
    for (const [l, rows] of located) {
      const z = gatherActivations(probe.z[l], e.ids.length, m, inSystem.map((n) => system[n].row.position), rows);
      inSystem.forEach((n, i) => Z.get(l)!.data.set(z.data.subarray(i * rows.length, (i + 1) * rows.length), n * rows.length));
    }
  }
  const preserveIdx = rowsBySet('preserve');
  for (const [ex, ns] of preserveIdx) {
    const e = preserve[ex];
    const { z, probe } = await activationsAt(model, e, ns.map((n) => system[n].row), located, fromLayer);
    ns.forEach((n, i) => put(n, z, i));
    const w = ns.length / lossCount;
    loss += w * probe.loss;
    addGradient(probe, e.ids.length, w);
  }
  return { loss, solve: (l) => signAlign(minNormLeastSquares(Z.get(l)!, S).data, grads.get(l)!.value()) };
}

function addInto(acc: PatchAccumulator, update: PatchAccumulator, scale: number): void {
  for (const layer of update.toLayers()) acc.addRows(layer.layer, layer.rows, layer.deltas, scale);
}

function addScaled(acc: PatchAccumulator, update: PatchAccumulator, scale: number): PatchAccumulator {
  const out = acc.clone();
  addInto(out, update, scale);
  return out;
}

/** Every row of `rows` is the argmax under `states`. */
function rowsRight(states: readonly Assessment[], rows: readonly Row[]): number {
  return rows.filter((r) => states[r.ex].correct[r.k]).length;
}

function done(states: readonly Assessment[], initiallyFailing: readonly Row[], opts: StarOptions): boolean {
  if (opts.stopWhen === 'never') return false;
  if (opts.stopWhen === 'failing-fixed') return rowsRight(states, initiallyFailing) === initiallyFailing.length;
  return states.every((a) => wholeTargetRight(a, opts.margin));
}

/**
 * STAR+: the smallest η·2^j (j < 12) after which every example in play is whole-target right,
 * else the η with the lowest mean cross-entropy over all target tokens.
 */
async function searchStep(model: RepairModel, examples: readonly Example[], acc: PatchAccumulator, update: PatchAccumulator, eta0: number, margin: number): Promise<number> {
  let bestEta = eta0;
  let bestLoss = Infinity;
  for (let j = 0; j < 12; j++) {
    const eta = eta0 * 2 ** j;
    model.apply(addScaled(acc, update, eta));
    const states = await assessAll(model, examples);
    if (states.every((a) => wholeTargetRight(a, margin))) return eta;
    const loss = states.reduce((t, a) => t + a.loss, 0) / states.length;
    if (loss < bestLoss) {
      bestLoss = loss;
      bestEta = eta;
    } else if (loss > bestLoss * 1.5) break;
  }
  return bestEta;
}

interface Run {
  acc: PatchAccumulator;
  losses: number[];
  epochMs: number[];
  layers: Set<number>;
}

/**
 * Batch STAR over a set of examples: `all` rows are every target position, the system and the loss
 * are chosen by opts.rightPositions, steers follow the current argmax each epoch (a position that a
 * step broke steers back), and the run stops by opts.stopWhen.
 */
async function repairBatch(model: RepairModel, examples: readonly Example[], preserve: readonly Example[], opts: StarOptions, control: RepairControl, run: Run, before: readonly Assessment[]): Promise<number> {
  const basis = await model.basis();
  const all: Row[] = examples.flatMap((e, ex) => e.desired.map((y, k) => ({ ex, k, position: e.targetPositions[k], y })));
  const failingAtStart = all.filter((r) => !before[r.ex].correct[r.k]);
  const lossRows = opts.rightPositions === 'zero-steer' ? all : failingAtStart;
  const kept = preserveRowsOf(preserve, opts.preserveRows);
  control.onProgress?.({ method: 'star', phase: 'locate', epoch: 0, epochs: opts.epochs, loss: null, positionsFixed: all.length - failingAtStart.length, positionsTotal: all.length });
  const located = await locate(model, examples, failingAtStart, lossRows, run.acc, opts);
  for (const l of located.keys()) run.layers.add(l);
  // The first variant solved against the steers of the start; the authors' mode follows the argmax.
  const fixedSteers = new Map(failingAtStart.map((r) => [r, steer(basis, r.y, before[r.ex].argmax[r.k])]));
  let states = before;
  let epoch = 0;
  while (epoch < opts.epochs && !done(states, failingAtStart, opts)) {
    checkCancelled(control.signal);
    epoch++;
    const t0 = performance.now();
    const system = opts.rightPositions === 'omit'
      ? failingAtStart.map((row) => ({ row, steer: fixedSteers.get(row)!, set: 'repair' as const }))
      : all.map((row) => ({ row, steer: states[row.ex].correct[row.k] ? null : steer(basis, row.y, states[row.ex].argmax[row.k]), set: 'repair' as const }));
    const withKept = [...system, ...kept.map((row) => ({ row, steer: null, set: 'preserve' as const }))];
    const step = await starStep(model, examples, preserve, withKept, lossRows, located);
    run.losses.push(step.loss);
    if (opts.lineSearch) {
      const update = new PatchAccumulator(model.config.hidden);
      for (const [l, rows] of located) update.addRows(l, rows, step.solve(l));
      const eta = await searchStep(model, examples, run.acc, update, opts.eta, opts.margin);
      model.apply(null);
      addInto(run.acc, update, eta);
    } else {
      // The runtime lets go of the accumulator's rows first, so each layer's step is added in place.
      model.apply(null);
      for (const [l, rows] of located) run.acc.addRows(l, rows, step.solve(l), opts.eta);
    }
    model.apply(run.acc);
    states = await assessAll(model, examples);
    run.epochMs.push(performance.now() - t0);
    control.onProgress?.({ method: 'star', phase: 'step', epoch, epochs: opts.epochs, loss: step.loss, positionsFixed: rowsRight(states, all), positionsTotal: all.length });
  }
  return epoch;
}

export async function repairStar(model: RepairModel, examples: Example[], options: Partial<StarOptions> = {}, control: RepairControl = {}, preserve: readonly Example[] = []): Promise<RepairOutcome> {
  const opts: StarOptions = { ...STAR_DEFAULTS, ...options };
  if (!(opts.epochs >= 1) || !(opts.eta > 0)) throw new RepairError('invalid-option', 'epochs must be ≥ 1 and η > 0');
  if (!(opts.margin >= 0) || !(opts.preserveRows >= 0)) throw new RepairError('invalid-option', 'the margin and the number of preserved rows must be ≥ 0');
  const start = performance.now();
  const run: Run = { acc: new PatchAccumulator(model.config.hidden), losses: [], epochMs: [], layers: new Set() };
  model.apply(null);
  const before = await assessAll(model, examples);
  if (before.every((a) => wholeTargetRight(a, opts.margin))) throw new RepairError('already-correct', 'the model already produces the desired completion: there is nothing to repair');
  let epochs = 0;
  if (opts.mode === 'batch') {
    epochs = await repairBatch(model, examples, preserve, opts, control, run, before);
  } else {
    // iter: left to right; each failing position is repaired on its own (a batch of one row),
    // a position already right after earlier patches is skipped.
    for (let ex = 0; ex < examples.length; ex++) {
      const e = examples[ex];
      for (let k = 0; k < e.desired.length; k++) {
        checkCancelled(control.signal);
        const now = await assess(model.runtime, e);
        if (now.correct[k]) continue;
        const single: Example = { ...e, targetPositions: [e.targetPositions[k]], desired: [e.desired[k]], allowed: [e.allowed[k]], alsoRight: [e.alsoRight[k]] };
        const singleBefore = await assess(model.runtime, single);
        epochs += await repairBatch(model, [single], preserve, { ...opts, mode: 'batch', rightPositions: 'omit', stopWhen: opts.stopWhen === 'never' ? 'never' : 'failing-fixed' }, control, run, [singleBefore]);
      }
    }
  }
  const after = await assessAll(model, examples);
  return { method: 'star', acc: run.acc, before, after, epochs, losses: run.losses, ms: performance.now() - start, layers: [...run.layers].sort((a, b) => a - b), epochMs: run.epochMs };
}
