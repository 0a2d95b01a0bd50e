// The baselines of STAR.md, on the same runtime and data as STAR:
//   SGD  — W_l -= η·dL/dW_l on every layer's down projection for E epochs (every neuron changes);
//   MINT — per failing token, simulate a traction update on each of the top-10 attributed neurons of
//          the upper layers, apply the best, until the token is fixed or 10 neurons are patched.

import { attributionScores, gradientRows } from './locate';
import { mintCandidates, mintUpdate, orthogonalise, traction } from './mint-math';
import { LinalgError } from './linalg';
import { assess, checkCancelled, PatchAccumulator, RepairModel, softmaxRow, type Assessment, type RepairControl } from './engine';
import type { RepairOutcome } from './star';
import { maskFor, RepairError, type Example } from './teacher';

export interface SgdOptions {
  epochs: number;
  eta: number;
  earlyStop: boolean;
}

export const SGD_DEFAULTS: SgdOptions = { epochs: 10, eta: 0.01, earlyStop: true };

async function assessAll(model: RepairModel, examples: Example[]): Promise<Assessment[]> {
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
  // The same loss as STAR: the desired tokens at the positions failing before the repair.
  const positions = before.map((a, ex) => a.correct.flatMap((ok, k) => (ok ? [] : [examples[ex].targetPositions[k]])));
  const N = positions.reduce((n, p) => n + p.length, 0);
  if (N === 0) throw new RepairError('already-correct', 'the model already produces the desired completion: there is nothing to repair');
  const all = Array.from({ length: m }, (_, i) => i);
  const losses: number[] = [];
  let epoch = 0;
  while (epoch < opts.epochs) {
    checkCancelled(control.signal);
    epoch++;
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
    const now = await assessAll(model, examples);
    const fixed = positions.reduce((n, ps, ex) => n + ps.filter((p) => now[ex].correct[examples[ex].targetPositions.indexOf(p)]).length, 0);
    control.onProgress?.({ method: 'sgd', phase: 'step', epoch, epochs: opts.epochs, loss, positionsFixed: fixed, positionsTotal: N });
    if (opts.earlyStop && fixed === N) break;
  }
  return { method: 'sgd', acc, before, after: await assessAll(model, examples), epochs: epoch, losses, ms: performance.now() - start };
}

export interface MintOptions {
  /** The traction factor f. */
  f: number;
  candidates: number;
  maxNeurons: number;
}

export const MINT_DEFAULTS: MintOptions = { f: 0.01, candidates: 10, maxNeurons: 10 };

/** P(a) − P(y) at one position under the model as it is now. */
async function margin(model: RepairModel, e: Example, position: number, y: number, a: number): Promise<number> {
  const V = model.config.vocab;
  const r = await model.runtime.score(e.ids, e.nextTokens, maskFor(e, [position]));
  const p = softmaxRow(r.logits, 0, V);
  return p[a] - p[y];
}

export async function repairMint(model: RepairModel, examples: Example[], options: Partial<MintOptions> = {}, control: RepairControl = {}): Promise<RepairOutcome> {
  const opts = { ...MINT_DEFAULTS, ...options };
  const start = performance.now();
  const { layers: L, hidden: d, vocab: V } = model.config;
  const acc = new PatchAccumulator(d);
  model.apply(null);
  const before = await assessAll(model, examples);
  if (before.every((a) => a.allCorrect)) throw new RepairError('already-correct', 'the model already produces the desired completion: there is nothing to repair');
  const basis = await model.basis();
  const total = before.reduce((n, a) => n + a.correct.filter((c) => !c).length, 0);
  let tokens = 0;
  for (let ex = 0; ex < examples.length; ex++) {
    const e = examples[ex];
    for (let k = 0; k < e.desired.length; k++) {
      checkCancelled(control.signal);
      const now = await assess(model.runtime, e);
      if (now.correct[k]) continue;
      tokens++;
      const position = e.targetPositions[k];
      const y = e.desired[k];
      const a = now.argmax[k];
      // Candidates: top neurons by attribution (gradient × activation of P(y)) in the upper layers.
      const probe = await model.runtime.probe(e.ids, e.nextTokens, maskFor(e, [position]));
      const p = softmaxRow(probe.logits, 0, V)[y];
      const scores = Array.from({ length: L }, (_, l) => attributionScores(probe.z[l], probe.dh[l].map((g) => -p * g), model.downProjection(l, acc), e.ids.length));
      const candidates = mintCandidates(scores, opts.candidates);
      const diff = basis.basisRow(y).map((v, j) => v - basis.basisRow(a)[j]);
      const used = new Map<number, Float64Array[]>();
      const checkpoint = acc.clone();
      let patched = 0;
      let fixed = false;
      while (patched < opts.maxNeurons) {
        let best: { layer: number; neuron: number; delta: Float64Array; tau: Float64Array; margin: number } | null = null;
        for (const c of candidates) {
          let tau = traction(diff, c.layer, L);
          try {
            tau = orthogonalise(tau, used.get(c.layer) ?? []);
          } catch (err) {
            if (!(err instanceof LinalgError)) throw err; // no direction left in this layer: reuse τ as is
          }
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
      }
      if (!fixed) {
        // Unfixable within the budget: undo this token's edits.
        for (const layer of acc.toLayers()) for (const r of layer.rows) acc.remove(layer.layer, r);
        for (const layer of checkpoint.toLayers()) layer.rows.forEach((r, i) => acc.add(layer.layer, r, layer.deltas.subarray(i * d, (i + 1) * d)));
        model.apply(acc);
      }
      control.onProgress?.({ method: 'mint', phase: 'step', epoch: tokens, epochs: total, loss: null, positionsFixed: fixed ? 1 : 0, positionsTotal: total });
    }
  }
  return { method: 'mint', acc, before, after: await assessAll(model, examples), epochs: tokens, losses: [], ms: performance.now() - start };
}
