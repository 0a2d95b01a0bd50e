// STAR (STAR.md §2–6): locate the buggy neurons by gradient × activation, solve their patches
// analytically from the semantic steer (minimum-norm least squares), take the direction of each
// entry from the exact gradient, and step; `iter` walks the target token by token, `batch` repairs
// all failing positions of one or several failures at once.

import { matrix, minNormLeastSquares, type Matrix } from './linalg';
import { attributionScores, gatherActivations, gradientRows, mostHarmfulLayer, selectNeurons, signAlign, type SelectMode } from './locate';
import { steer } from './semantic';
import { assess, checkCancelled, PatchAccumulator, RepairModel, softmaxRow, type Assessment, type RepairControl } from './engine';
import { maskFor, RepairError, type Example } from './teacher';

export interface StarOptions {
  mode: 'iter' | 'batch';
  select: SelectMode;
  epochs: number;
  /** Step size η (STAR.md §5); the `scale` of the paper multiplies it. */
  eta: number;
  /** Stop as soon as every targeted position is fixed. */
  earlyStop: boolean;
  /** `global`: how many neurons over all layers. */
  topK: number;
  /** `layer`: fraction ρ of the chosen layer's neurons. */
  fraction: number;
  /**
   * STAR+ (an extension, not the paper's method): each epoch tries η, 2η, 4η, … (forward passes
   * only) and keeps the smallest step that fixes every targeted position, else the lowest loss.
   */
  lineSearch: boolean;
}

export const STAR_DEFAULTS: StarOptions = { mode: 'batch', select: 'global', epochs: 10, eta: 0.01, earlyStop: true, topK: 64, fraction: 0.05, lineSearch: false };

export interface RepairOutcome {
  method: 'star' | 'mint' | 'sgd';
  acc: PatchAccumulator;
  before: Assessment[];
  after: Assessment[];
  epochs: number;
  losses: number[];
  ms: number;
}

/** A failing position in play: example index, target index k, its input position, y_k and a_k. */
interface Target {
  ex: number;
  k: number;
  position: number;
  y: number;
  a: number;
}

async function locate(model: RepairModel, examples: Example[], targets: Target[], acc: PatchAccumulator, opts: StarOptions): Promise<Map<number, number[]>> {
  const { layers: L, intermediate: m, vocab: V } = model.config;
  if (opts.select === 'dense') return selectNeurons(Array.from({ length: L }, () => new Float64Array(m)), 'dense', {});
  // Attribution of each target position on its own: dP(y_k)/dh = -P · dL_k/dh (STAR.md §3).
  const scores = Array.from({ length: L }, () => new Float64Array(m));
  const downs = Array.from({ length: L }, (_, l) => model.downProjection(l, acc));
  for (const t of targets) {
    const ex = examples[t.ex];
    const probe = await model.runtime.probe(ex.ids, ex.nextTokens, maskFor(ex, [t.position]));
    const p = softmaxRow(probe.logits, 0, V)[t.y];
    for (let l = 0; l < L; l++) {
      const dPdh = probe.dh[l].map((g) => -p * g);
      const s = attributionScores(probe.z[l], dPdh, downs[l], ex.ids.length);
      for (let i = 0; i < m; i++) scores[l][i] += s[i];
    }
  }
  if (opts.select === 'global') return selectNeurons(scores, 'global', { topK: Math.min(opts.topK, L * m) });
  // 'layer': the layer whose MLP, zero-ablated, raises the loss of the targets most.
  const ablated: number[] = [];
  for (let l = 0; l < L; l++) {
    // Adding minus each value vector (as it is now) zeroes the layer's MLP output (bias aside).
    const trial = acc.clone();
    for (let i = 0; i < m; i++) trial.add(l, i, downs[l].row(i), -1);
    model.apply(trial);
    ablated.push(await targetLoss(model, examples, targets));
  }
  model.apply(acc);
  return selectNeurons(scores, 'layer', { layer: mostHarmfulLayer(ablated), fraction: opts.fraction });
}

/** Mean cross-entropy over the targets (forward only). */
async function targetLoss(model: RepairModel, examples: Example[], targets: Target[]): Promise<number> {
  let total = 0;
  for (const [ex, positions] of byExample(targets)) {
    const e = examples[ex];
    const r = await model.runtime.score(e.ids, e.nextTokens, maskFor(e, positions));
    total += r.loss * positions.length;
  }
  return total / targets.length;
}

function byExample(targets: Target[]): Map<number, number[]> {
  const out = new Map<number, number[]>();
  for (const t of targets) {
    const list = out.get(t.ex) ?? [];
    list.push(t.position);
    out.set(t.ex, list);
  }
  return out;
}

/**
 * One STAR epoch (STAR.md §5): forward + backward, Z and the exact gradient of the located rows,
 * Δ by least squares against the fixed steers S, sign alignment. Returns the update (not applied)
 * and the loss before it.
 */
async function starUpdate(model: RepairModel, examples: Example[], targets: Target[], S: Matrix, located: Map<number, number[]>): Promise<{ update: PatchAccumulator; loss: number }> {
  const { intermediate: m, hidden: d } = model.config;
  const N = targets.length;
  const Z = new Map<number, Matrix>();
  const grads = new Map<number, Float64Array>();
  for (const [l, rows] of located) {
    Z.set(l, matrix(N, rows.length));
    grads.set(l, new Float64Array(rows.length * d));
  }
  let loss = 0;
  for (const [ex, positions] of byExample(targets)) {
    const e = examples[ex];
    const T = e.ids.length;
    const probe = await model.runtime.probe(e.ids, e.nextTokens, maskFor(e, positions));
    // The probe's loss is the mean over this example's positions; the batch loss is the mean over all.
    const w = positions.length / N;
    loss += w * probe.loss;
    const rowsOf = targets.flatMap((t, n) => (t.ex === ex ? [n] : []));
    for (const [l, rows] of located) {
      const z = gatherActivations(probe.z[l], T, m, targets.filter((t) => t.ex === ex).map((t) => t.position), rows);
      const Zl = Z.get(l)!;
      rowsOf.forEach((n, i) => Zl.data.set(z.data.subarray(i * rows.length, (i + 1) * rows.length), n * rows.length));
      const g = gradientRows(probe.z[l], probe.dh[l], rows, T, m, d);
      const Gl = grads.get(l)!;
      for (let i = 0; i < g.length; i++) Gl[i] += w * g[i];
    }
  }
  const update = new PatchAccumulator(d);
  for (const [l, rows] of located) {
    const delta = minNormLeastSquares(Z.get(l)!, S);
    const aligned = signAlign(delta.data, grads.get(l)!);
    rows.forEach((r, i) => update.add(l, r, aligned.subarray(i * d, (i + 1) * d)));
  }
  return { update, loss };
}

function addScaled(acc: PatchAccumulator, update: PatchAccumulator, scale: number): PatchAccumulator {
  const out = acc.clone();
  addInto(out, update, scale);
  return out;
}

function addInto(acc: PatchAccumulator, update: PatchAccumulator, scale: number): void {
  for (const layer of update.toLayers()) layer.rows.forEach((r, i) => acc.add(layer.layer, r, layer.deltas.subarray(i * acc.d, (i + 1) * acc.d), scale));
}

async function targetsFixed(model: RepairModel, examples: Example[], targets: Target[]): Promise<number> {
  let fixed = 0;
  for (const [ex, positions] of byExample(targets)) {
    const a = await assess(model.runtime, examples[ex]);
    for (const p of positions) {
      const k = examples[ex].targetPositions.indexOf(p);
      if (a.correct[k]) fixed++;
    }
  }
  return fixed;
}

/** Runs STAR epochs on a fixed set of targets, accumulating into `acc` (applied to the runtime). */
async function repairTargets(model: RepairModel, examples: Example[], targets: Target[], acc: PatchAccumulator, opts: StarOptions, control: RepairControl, losses: number[]): Promise<number> {
  const basis = await model.basis();
  const d = model.config.hidden;
  // The steers are fixed for the whole repair (STAR.md §5: "resolve Δ with the same S").
  const S = matrix(targets.length, d);
  targets.forEach((t, n) => S.data.set(steer(basis, t.y, t.a), n * d));
  control.onProgress?.({ method: 'star', phase: 'locate', epoch: 0, epochs: opts.epochs, loss: null, positionsFixed: 0, positionsTotal: targets.length });
  const located = await locate(model, examples, targets, acc, opts);
  let epoch = 0;
  while (epoch < opts.epochs) {
    checkCancelled(control.signal);
    epoch++;
    const { update, loss } = await starUpdate(model, examples, targets, S, located);
    losses.push(loss);
    let eta = opts.eta;
    if (opts.lineSearch) eta = await searchStep(model, examples, targets, acc, update, opts.eta);
    addInto(acc, update, eta);
    model.apply(acc);
    const fixed = await targetsFixed(model, examples, targets);
    control.onProgress?.({ method: 'star', phase: 'step', epoch, epochs: opts.epochs, loss, positionsFixed: fixed, positionsTotal: targets.length });
    if (opts.earlyStop && fixed === targets.length) break;
  }
  return epoch;
}

/**
 * STAR+: the smallest η·2^j (j < 12) after which every example in play is completed exactly (all
 * its desired tokens, not only the failing ones: a step that breaks a token that was right is not
 * a fix), else the η with the lowest mean cross-entropy over all desired tokens.
 */
async function searchStep(model: RepairModel, examples: Example[], targets: Target[], acc: PatchAccumulator, update: PatchAccumulator, eta0: number): Promise<number> {
  const inPlay = [...byExample(targets).keys()].map((ex) => examples[ex]);
  let bestEta = eta0;
  let bestLoss = Infinity;
  for (let j = 0; j < 12; j++) {
    const eta = eta0 * 2 ** j;
    model.apply(addScaled(acc, update, eta));
    const states = [];
    for (const ex of inPlay) states.push(await assess(model.runtime, ex));
    if (states.every((a) => a.allCorrect)) return eta;
    const loss = states.reduce((t, a) => t + a.loss, 0) / states.length;
    if (loss < bestLoss) {
      bestLoss = loss;
      bestEta = eta;
    } else if (loss > bestLoss * 1.5) break;
  }
  return bestEta;
}

export async function repairStar(model: RepairModel, examples: Example[], options: Partial<StarOptions> = {}, control: RepairControl = {}): Promise<RepairOutcome> {
  const opts: StarOptions = { ...STAR_DEFAULTS, ...options };
  if (!(opts.epochs >= 1) || !(opts.eta > 0)) throw new RepairError('invalid-option', 'epochs must be ≥ 1 and η > 0');
  const start = performance.now();
  const acc = new PatchAccumulator(model.config.hidden);
  model.apply(null);
  const before: Assessment[] = [];
  for (const ex of examples) before.push(await assess(model.runtime, ex));
  if (before.every((a) => a.allCorrect)) throw new RepairError('already-correct', 'the model already produces the desired completion: there is nothing to repair');
  const losses: number[] = [];
  let epochs = 0;
  if (opts.mode === 'batch') {
    const targets: Target[] = [];
    before.forEach((a, ex) => a.correct.forEach((ok, k) => ok || targets.push({ ex, k, position: examples[ex].targetPositions[k], y: examples[ex].desired[k], a: a.argmax[k] })));
    epochs = await repairTargets(model, examples, targets, acc, opts, control, losses);
  } else {
    // iter: left to right; a position already right after earlier patches is skipped.
    for (let ex = 0; ex < examples.length; ex++) {
      const e = examples[ex];
      for (let k = 0; k < e.desired.length; k++) {
        checkCancelled(control.signal);
        const now = await assess(model.runtime, e);
        if (now.correct[k]) continue;
        const target: Target = { ex, k, position: e.targetPositions[k], y: e.desired[k], a: now.argmax[k] };
        epochs += await repairTargets(model, examples, [target], acc, opts, control, losses);
      }
    }
  }
  const after: Assessment[] = [];
  for (const ex of examples) after.push(await assess(model.runtime, ex));
  return { method: 'star', acc, before, after, epochs, losses, ms: performance.now() - start };
}
