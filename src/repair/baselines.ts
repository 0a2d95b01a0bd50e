// The baselines of docs/algorithm.md, on the same runtime and data as STAR, as the authors run them:
//   SGD  — W_l -= η·dL/dW_l on every layer's down projection for E epochs (every neuron changes), the
//          loss over all target tokens;
//   MINT — per failing token, simulate a traction update on each of the top-10 attributed neurons of
//          the upper layers, apply the best, until the token is fixed or 10 neurons are patched;
//          tractions are orthogonalised against every traction used so far in the layer (across
//          tokens) and rescaled to their original norm, and the wrong token is re-read after each edit.
// The first variants (SGD's loss over the positions failing at the start; MINT's per-token history,
// no rescaling, a fixed wrong token) stay available for comparison.

import { attributionFromGradient, gradientRows } from './locate';
import { mintCandidates, mintUpdate, orthogonalise, rescaleTo, traction } from './mint-math';
import { LinalgError } from './linalg';
import { assess, checkCancelled, PatchAccumulator, RepairModel, softmaxRow, wholeTargetRight, type Assessment, type RepairControl } from './engine';
import type { RepairOutcome, StopWhen } from './star';
import { maskFor, RepairError, type Example } from './teacher';

export interface SgdOptions {
  epochs: number;
  eta: number;
  /** As STAR's: the whole target right, the positions failing at the start fixed, or never. */
  stopWhen: StopWhen;
  margin: number;
  /** all: the loss over every target token (the authors); failing: over the positions failing at the start. */
  lossOver: 'all' | 'failing';
}

export const SGD_DEFAULTS: SgdOptions = { epochs: 10, eta: 0.01, stopWhen: 'target-right', margin: 0, lossOver: 'all' };

async function assessAll(model: RepairModel, examples: readonly Example[]): Promise<Assessment[]> {
  const out: Assessment[] = [];
  for (const ex of examples) out.push(await assess(model.runtime, ex));
  return out;
}

export async function repairSgd(model: RepairModel, examples: Example[], options: Partial<SgdOptions> = {}, control: RepairControl = {}): Promise<RepairOutcome> {
  const opts = { ...SGD_DEFAULTS, ...options };
  const start = performance.now();
  const { layers: L, intermediate: m, hidden: d } = model.config;
  const acc = new PatchAccumulator(d);
  model.apply(null);
  const before = await assessAll(model, examples);
  if (before.every((a) => wholeTargetRight(a, opts.margin))) throw new RepairError('already-correct', 'the model already produces the desired completion: there is nothing to repair');
  const failing = before.map((a, ex) => a.correct.flatMap((ok, k) => (ok ? [] : [k])).map((k) => examples[ex].targetPositions[k]));
  const positions = opts.lossOver === 'all' ? examples.map((e) => e.targetPositions) : failing;
  const N = positions.reduce((n, p) => n + p.length, 0);
  const nFailing = failing.reduce((n, p) => n + p.length, 0);
  const all = Array.from({ length: m }, (_, i) => i);
  const losses: number[] = [];
  const epochMs: number[] = [];
  const stop = (states: Assessment[]) => opts.stopWhen === 'never' ? false
    : opts.stopWhen === 'failing-fixed' ? failing.every((ps, ex) => ps.every((p) => states[ex].correct[examples[ex].targetPositions.indexOf(p)]))
      : states.every((a) => wholeTargetRight(a, opts.margin));
  let states = before;
  let epoch = 0;
  while (epoch < opts.epochs && !stop(states)) {
    checkCancelled(control.signal);
    epoch++;
    const t0 = performance.now();
    const grads = Array.from({ length: L }, () => new Float64Array(m * d));
    let loss = 0;
    for (let ex = 0; ex < examples.length; ex++) {
      if (positions[ex].length === 0) continue;
      const e = examples[ex];
      const probe = await model.runtime.probe(e.ids, e.nextTokens, maskFor(e, positions[ex]));
      const w = positions[ex].length / N;
      loss += w * probe.loss;
      for (let l = 0; l < L; l++) {
        const g = gradientRows(probe.z[l], probe.dh[l], all, e.ids.length, m, d);
        for (let i = 0; i < g.length; i++) grads[l][i] += w * g[i];
      }
    }
    losses.push(loss);
    for (let l = 0; l < L; l++) for (let i = 0; i < m; i++) acc.add(l, i, grads[l].subarray(i * d, (i + 1) * d), -opts.eta);
    model.apply(acc);
    states = await assessAll(model, examples);
    epochMs.push(performance.now() - t0);
    const fixed = failing.reduce((n, ps, ex) => n + ps.filter((p) => states[ex].correct[examples[ex].targetPositions.indexOf(p)]).length, 0);
    control.onProgress?.({ method: 'sgd', phase: 'step', epoch, epochs: opts.epochs, loss, positionsFixed: fixed, positionsTotal: nFailing });
  }
  return { method: 'sgd', acc, before, after: states, epochs: epoch, losses, ms: performance.now() - start, layers: Array.from({ length: L }, (_, l) => l), epochMs };
}

export interface MintOptions {
  /** The traction factor f. */
  f: number;
  candidates: number;
  maxNeurons: number;
  /**
   * authors: tractions orthogonalised against the layer's history across all tokens, rescaled to
   * their original norm, and the wrong token re-read after each edit; token-local: the first
   * variant (history per token, no rescaling, the wrong token of the start).
   */
  style: 'authors' | 'token-local';
}

export const MINT_DEFAULTS: MintOptions = { f: 0.01, candidates: 10, maxNeurons: 10, style: 'authors' };

/** P(a) − P(y) at one position under the model as it is now. */
async function margin(model: RepairModel, e: Example, position: number, y: number, a: number): Promise<number> {
  const V = model.config.vocab;
  const r = await model.runtime.score(e.ids, e.nextTokens, maskFor(e, [position]));
  const p = softmaxRow(r.logits, 0, V);
  return p[a] - p[y];
}

/** The traction of a candidate's layer, orthogonalised against the tractions already used there. */
function candidateTraction(diff: Float64Array, layer: number, L: number, used: readonly Float64Array[], rescale: boolean): Float64Array {
  const tau = traction(diff, layer, L);
  try {
    const orth = orthogonalise(tau, [...used]);
    return rescale ? rescaleTo(orth, tau) : orth;
  } catch (err) {
    if (!(err instanceof LinalgError)) throw err; // no direction left in this layer: reuse τ as is
    return tau;
  }
}

export async function repairMint(model: RepairModel, examples: Example[], options: Partial<MintOptions> = {}, control: RepairControl = {}): Promise<RepairOutcome> {
  const opts = { ...MINT_DEFAULTS, ...options };
  const authors = opts.style === 'authors';
  const start = performance.now();
  const { layers: L, hidden: d, vocab: V } = model.config;
  const acc = new PatchAccumulator(d);
  model.apply(null);
  const before = await assessAll(model, examples);
  if (before.every((a) => a.allCorrect)) throw new RepairError('already-correct', 'the model already produces the desired completion: there is nothing to repair');
  const basis = await model.basis();
  const total = before.reduce((n, a) => n + a.correct.filter((c) => !c).length, 0);
  // The tractions used per layer: across the whole repair (authors) or per token (first variant).
  const history = new Map<number, Float64Array[]>();
  const layersTouched = new Set<number>();
  const epochMs: number[] = [];
  let tokens = 0;
  for (let ex = 0; ex < examples.length; ex++) {
    const e = examples[ex];
    for (let k = 0; k < e.desired.length; k++) {
      checkCancelled(control.signal);
      const now = await assess(model.runtime, e);
      if (now.correct[k]) continue;
      const t0 = performance.now();
      tokens++;
      const position = e.targetPositions[k];
      const y = e.desired[k];
      let a = now.argmax[k];
      // Candidates: top neurons by attribution (gradient × activation of P(y)) in the upper layers.
      model.apply(acc);
      const probe = await model.runtime.attribution(e.ids, e.nextTokens, maskFor(e, [position]));
      const p = softmaxRow(probe.logits, 0, V)[y];
      const scores = Array.from({ length: L }, (_, l) => attributionFromGradient(probe.z[l], probe.dz[l], e.ids.length, model.config.intermediate, p));
      const candidates = mintCandidates(scores, opts.candidates);
      const used = authors ? history : new Map<number, Float64Array[]>();
      const checkpoint = acc.clone();
      const usedBefore = new Map([...history].map(([l, list]) => [l, list.slice()]));
      let patched = 0;
      let fixed = false;
      while (patched < opts.maxNeurons) {
        const diff = basis.basisRow(y).map((v, j) => v - basis.basisRow(a)[j]);
        let best: { layer: number; neuron: number; delta: Float64Array; tau: Float64Array; margin: number } | null = null;
        for (const c of candidates) {
          const tau = candidateTraction(diff, c.layer, L, used.get(c.layer) ?? [], authors);
          const v = model.downProjection(c.layer, acc).row(c.neuron);
          const next = mintUpdate(v, tau, opts.f);
          const delta = next.map((x, j) => x - v[j]);
          const trial = acc.clone();
          trial.add(c.layer, c.neuron, delta);
          model.apply(trial);
          const mg = await margin(model, e, position, y, a);
          if (!best || mg < best.margin) best = { layer: c.layer, neuron: c.neuron, delta, tau, margin: mg };
        }
        if (!best) break;
        acc.add(best.layer, best.neuron, best.delta);
        used.set(best.layer, [...(used.get(best.layer) ?? []), best.tau]);
        patched++;
        model.apply(acc);
        const r = await assess(model.runtime, e);
        if (r.correct[k]) {
          fixed = true;
          break;
        }
        if (authors) a = r.argmax[k];
      }
      if (fixed) for (const l of acc.toLayers()) layersTouched.add(l.layer);
      else {
        // Unfixable within the budget: undo this token's edits (and its tractions).
        for (const layer of acc.toLayers()) for (const r of layer.rows) acc.remove(layer.layer, r);
        for (const layer of checkpoint.toLayers()) layer.rows.forEach((r, i) => acc.add(layer.layer, r, layer.deltas.subarray(i * d, (i + 1) * d)));
        if (authors) {
          history.clear();
          for (const [l, list] of usedBefore) history.set(l, list);
        }
        model.apply(acc);
      }
      epochMs.push(performance.now() - t0);
      control.onProgress?.({ method: 'mint', phase: 'step', epoch: tokens, epochs: total, loss: null, positionsFixed: fixed ? 1 : 0, positionsTotal: total });
    }
  }
  return { method: 'mint', acc, before, after: await assessAll(model, examples), epochs: tokens, losses: [], ms: performance.now() - start, layers: [...layersTouched].sort((x, y) => x - y), epochMs };
}
