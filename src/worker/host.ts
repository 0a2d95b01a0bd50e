// What the worker process does for each request, apart from the messaging (main.ts): it holds
// one loaded model with TWO runtimes over the same weight arrays — one serving completions with
// only the committed patches, one for repairs and evaluations with the patch in progress — so
// completions stay fast and unaffected while a repair runs. Jobs on the repair runtime run one at
// a time (a queue); completions never wait for them. Completions build the prompt the editor's
// way (the window of the file within token budgets, FIM when the model has it) and reuse the
// prompt cache, which any patch change invalidates (runtime/prompt-cache.ts). A GPU provider is used only once it has
// passed the provider vetting (provider-vetting.ts), and onProvider hears of it before anything
// runs there, so a crash can be put down to it. In a quantised format the model is loaded
// straight from the checkpoint into int8/int4 (runtime/quantised-weights.ts) and no fp32 copy is
// held: repairs and neuron explanations read the quantised Ŵ (repair/repair-weights.ts), and an
// export reads the checkpoint again to fold the patch into the original weights.

import { dirname, join } from 'node:path';
import { loadConfig, type ModelFolderInfo } from '../model';
import { caseStates, evaluatePatch, type Case, type Evaluation } from '../eval/evaluate';
import { assess, RepairModel, type RepairControl } from '../repair/engine';
import { exportPatchedModel } from '../repair/export';
import { canonicalRepairWeights, explainDelta, quantisedRepairWeights, type RepairWeights } from '../repair/repair-weights';
import { checkPatchForModel, combinePatches, patchFromJson, patchToJson, type Patch, type PatchJson } from '../repair/patch';
import { exampleOf, methodDefaults, prepareFailures, runRepair, type MethodDefaults, type Prepared } from '../repair/run';
import { RepairError } from '../repair/teacher';
import { completionAlternatives, DEFAULT_REPLAY, showCompletion, type CompletionReplay } from '../runtime/completion';
import { describeFim, resolveFim } from '../runtime/fim';
import { PromptCache } from '../runtime/prompt-cache';
import { windowBudget, windowPrompt } from '../runtime/prompt';
import { embeddedModelDir, loadFolderAs } from '../runtime/open';
import { ModelRuntime, type LayerPatch } from '../runtime/runtime';
import type { QuantisedModel } from '../runtime/quantised-weights';
import type { CanonicalWeights } from '../model/weights';
import { resolveWeightFormat } from '../runtime/weight-formats';
import type {
  CompleteParams, CompleteResult, EvaluateParams, EvaluateResult, EvaluationCounts, ExportParams, ExportResult, JobControl, LoadParams, ModelInfo,
  NeuronDetailsParams, NeuronDetailsResult, PredictParams, PredictResult, RepairParams, RepairProgressEvent, RepairResult, Sample,
  ScoresBefore, SetPatchesParams, SetPatchesResult, WorkerHandlers,
} from './protocol';
import { BUILTIN_REGRESSION_PROMPTS, BUILTIN_REGRESSION_TOKENS } from './regression-samples';
import type { ProviderVetting } from './provider-vetting';

export interface ModelHostOptions {
  /** Vets GPU providers before their first session (absent: providers are used as onnxruntime makes them). */
  vetting?: ProviderVetting;
  /** Hears which provider the worker is about to run on, for which model (ProviderNotice). */
  onProvider?: (provider: string, fingerprint: string) => void;
}

/** A request the worker cannot serve in its current state; the message says what to do. */
export class WorkerStateError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'WorkerStateError';
    this.code = code;
  }
}

interface Loaded {
  key: string;
  folder: ModelFolderInfo;
  /** The checkpoint's fp32 weights when the format is fp32 (export folds into them); null when quantised. */
  fp32: CanonicalWeights | null;
  /** What the repair engine and the neuron explanations read: the fp32 weights or the quantised Ŵ. */
  repairWeights: RepairWeights;
  completion: ModelRuntime;
  repair: ModelRuntime;
  /** The model's tuned repair defaults, or why its star-repair.json was refused (repairs then say so; completions go on). */
  defaults: MethodDefaults | RepairError;
  info: ModelInfo;
  /** KV caches of recent completion prompts on the completion runtime. */
  promptCache: PromptCache;
}

export type { JobControl } from './protocol';

function evaluationCounts(e: Evaluation): EvaluationCounts {
  return {
    effectiveness: {
      fixed: e.effectiveness.fixed,
      total: e.effectiveness.total,
      tokenAccuracyBefore: e.effectiveness.tokenAccuracyBefore,
      tokenAccuracyAfter: e.effectiveness.tokenAccuracyAfter,
    },
    generalisation: e.generalisation ? { fixed: e.generalisation.fixed, total: e.generalisation.total, meanDeltaP: e.generalisation.meanDeltaP } : null,
    specificity: e.specificity ? { kept: e.specificity.kept, total: e.specificity.total, meanAbsDeltaTopP: e.specificity.meanAbsDeltaTopP } : null,
  };
}

function scoresOf(e: Evaluation): { effectiveness: number | null; generalisation: number | null; specificity: number | null } {
  // A set with nothing to measure (no held-out failure failing before, no sample right before) has no score.
  return {
    effectiveness: e.effectiveness.total ? e.effectiveness.rate : null,
    generalisation: e.generalisation?.total ? e.generalisation.rate : null,
    specificity: e.specificity?.total ? e.specificity.rate : null,
  };
}

function fractionShown(states: readonly { shown: boolean }[]): number | null {
  return states.length ? states.filter((s) => s.shown).length / states.length : null;
}

/** The built-in samples' completions are read under the extension's defaults, short. */
const BUILTIN_REPLAY: CompletionReplay = { ...DEFAULT_REPLAY, maxTokens: BUILTIN_REGRESSION_TOKENS };

function loadDefaults(dir: string): MethodDefaults | RepairError {
  try {
    return methodDefaults(dir);
  } catch (e) {
    if (e instanceof RepairError) return e;
    throw e;
  }
}

function clampProbability(p: number): number {
  return Number.isFinite(p) ? Math.min(1, Math.max(0, p)) : 0;
}

/** The worker's handler table (WorkerHandlers): one method per protocol method, named after it. */
export class ModelHost implements WorkerHandlers {
  private loaded: Loaded | null = null;
  private committed: Patch[] = [];
  private committedMap: Map<number, LayerPatch> = new Map();
  /** The repair runtime's queue: each job starts when the previous one has settled. */
  private repairQueue: Promise<unknown> = Promise.resolve();
  private builtin: { key: string; cases: Prepared[] } | null = null;

  constructor(private readonly log: (line: string) => void = () => {}, private readonly options: ModelHostOptions = {}) {}

  /** The vet hook for a load: the vetting's verdict, and the notice before a GPU provider's first session. */
  private vetFor(folder: ModelFolderInfo, p: LoadParams): ((provider: string) => Promise<string | null>) | undefined {
    const { vetting, onProvider } = this.options;
    if (!vetting) return undefined;
    return async (provider) => {
      const reason = await vetting.vet({
        modelDir: folder.dir, fingerprint: folder.fingerprint, model: folder.name, provider, threads: p.threads,
        avoid: p.guard?.avoid ?? [], memoryFile: p.guard?.memoryFile ?? null,
      });
      if (reason === null) onProvider?.(provider, folder.fingerprint);
      return reason;
    };
  }

  private model(): Loaded {
    if (!this.loaded) throw new WorkerStateError('not-loaded', 'no model is loaded in the worker yet: wait for the model to finish loading (or select a model folder)');
    return this.loaded;
  }

  private onRepairRuntime<T>(job: () => Promise<T>): Promise<T> {
    const run = this.repairQueue.then(job, job);
    this.repairQueue = run.catch(() => undefined);
    return run;
  }

  async load(p: LoadParams): Promise<ModelInfo> {
    const dir = p.modelDir || embeddedModelDir();
    if (!dir) throw new WorkerStateError('no-model', 'no model folder is set and the embedded model (models/tiny-coder) is not installed: set starRepair.modelPath to a Hugging Face model folder');
    const key = JSON.stringify([dir, p.provider, p.threads, p.guard ?? null, p.weights ?? 'fp32']);
    if (this.loaded?.key === key) return this.loaded.info;
    const start = performance.now();
    // Quantised straight from the checkpoint, a layer at a time, with no fp32 copy; both runtimes
    // share the codes as they share fp32 arrays, and the repair engine reads the same Ŵ
    // (docs/quantised.md). The quantised-weight cache lives next to the provider memory, in the
    // extension's global storage.
    const format = resolveWeightFormat(p.weights ?? 'fp32', p.provider, loadConfig(dir));
    const cacheDir = p.guard?.memoryFile ? join(dirname(p.guard.memoryFile), 'quantised-weights') : undefined;
    const loadedAs = loadFolderAs(dir, format, cacheDir);
    let folder: ModelFolderInfo;
    let weights: CanonicalWeights | QuantisedModel;
    let fp32: CanonicalWeights | null = null;
    let repairWeights: RepairWeights;
    if ('fp32' in loadedAs) {
      folder = loadedAs.fp32;
      weights = fp32 = loadedAs.fp32.weights;
      repairWeights = canonicalRepairWeights(folder.config, fp32);
    } else {
      const q = loadedAs.quantised;
      if (q.reason) this.log(`[model] ${format} weights quantised now: ${q.reason}`);
      folder = q.folder;
      weights = q.model;
      repairWeights = quantisedRepairWeights(folder.config, q.model);
    }
    const options = { provider: p.provider, threads: p.threads, vet: this.vetFor(folder, p) };
    const completion = new ModelRuntime(folder.config, weights, options);
    // onnxruntime's Tensor wraps the same Float32Array, so the second runtime costs no weight copy.
    const repair = new ModelRuntime(folder.config, weights, options);
    try {
      await completion.warm(['decode']);
    } catch (e) {
      await Promise.allSettled([completion.release(), repair.release()]);
      if (this.loaded) this.options.onProvider?.(this.loaded.info.executionProvider, this.loaded.info.fingerprint);
      throw e;
    }
    this.options.onProvider?.(completion.provider, folder.fingerprint);
    const previous = this.loaded;
    const c = folder.config;
    const info: ModelInfo = {
      name: folder.name,
      dir: folder.dir,
      architecture: c.architecture,
      layers: c.layers,
      neurons: c.intermediate,
      hidden: c.hidden,
      vocab: c.vocab,
      context: c.maxPositions,
      params: folder.params,
      dtype: folder.dtype,
      executionProvider: completion.provider,
      fallbacks: completion.fallbacks.map((f) => ({ provider: f.provider, reason: f.reason })),
      fingerprint: folder.fingerprint,
      fim: describeFim(folder.tokenizer)?.format ?? null,
      weights: completion.weightFormat,
      weightBytes: completion.weightBytes,
    };
    const defaults = loadDefaults(folder.dir);
    if (defaults instanceof RepairError) this.log(`[repair] ${defaults.message} (repairs are refused until it is fixed; completions are not affected)`);
    this.loaded = { key, folder, fp32, repairWeights, completion, repair, defaults, info, promptCache: new PromptCache() };
    this.committed = [];
    this.committedMap = new Map();
    this.builtin = null;
    if (previous) await this.onRepairRuntime(() => Promise.allSettled([previous.completion.release(), previous.repair.release()]));
    this.log(`loaded ${folder.name} (${c.architecture}, ${(folder.params / 1e6).toFixed(2)} M parameters, ${format} weights: ${(completion.weightBytes / 1e6).toFixed(1)} MB) on ${completion.provider} in ${Math.round(performance.now() - start)} ms`);
    return info;
  }

  async complete(p: CompleteParams, { signal }: JobControl): Promise<CompleteResult> {
    const m = this.model();
    const tok = m.folder.tokenizer;
    const fim = resolveFim(tok, p.fim ?? 'auto', p.fimOrder ?? 'auto');
    // The nearest text within the budgets, cut at line starts (runtime/prompt.ts); the context caps both.
    const win = windowPrompt(tok, p.prompt, p.suffix ?? '', windowBudget(m.info.context, p.maxTokens, p, fim !== null));
    const prompt = win.prefix.length > 0 ? win.prefix : p.prompt;
    const prefixStart = win.prefix.length > 0 ? win.prefixStart : 0;
    // Without FIM the suffix is not in the prompt; its first line still feeds the clean rules.
    const suffix = fim ? win.suffix : (p.suffix ?? '').split('\n', 2).join('\n');
    const replay: CompletionReplay = { heal: true, stop: p.stopRule, maxTokens: p.maxTokens, fim, ...(p.indent ? { indent: p.indent } : {}) };
    const options = { signal, temperature: p.temperature, stop: p.stop, suffix, promptCache: m.promptCache, promptMs: p.promptMs || undefined, generationMs: p.generationMs || undefined };
    const list = p.alternatives && p.alternatives > 1
      ? await completionAlternatives(m.completion, tok, prompt, replay, p.alternatives, options)
      : [await showCompletion(m.completion, tok, prompt, replay, options)];
    if (signal.aborted) throw new WorkerStateError('cancelled', 'the completion was cancelled');
    const shown = list[0] ?? await showCompletion(m.completion, tok, prompt, replay, options);
    const g = shown.generation;
    return {
      text: shown.text,
      tokens: g.tokens.length - g.healingTokens,
      promptTokens: g.promptTokens,
      stoppedBy: shown.ended ? 'stop' : g.stoppedBy,
      ms: g.ms,
      prefixStart,
      suffixKept: suffix.length,
      fim,
      prefilled: g.prefilled,
      reused: g.reused,
      firstTokenMs: g.firstTokenMs,
      ...(p.alternatives && p.alternatives > 1 ? { alternatives: list.map((x) => x.text) } : {}),
    };
  }

  private parsePatches(list: readonly PatchJson[]): Patch[] {
    const m = this.model();
    const target = { fingerprint: m.info.fingerprint, hiddenSize: m.info.hidden, numLayers: m.info.layers, intermediateSize: m.info.neurons };
    return list.map((j) => {
      const patch = patchFromJson(j, m.info.hidden);
      checkPatchForModel(patch, target);
      return patch;
    });
  }

  setPatches(p: SetPatchesParams): SetPatchesResult {
    const m = this.model();
    const patches = this.parsePatches(p.patches);
    const combined = combinePatches(patches, m.info.hidden);
    this.committed = patches;
    this.committedMap = combined;
    m.completion.setPatch(this.committedMap);
    let neurons = 0;
    for (const c of combined.values()) neurons += c.rows.length;
    return { applied: patches.map((x) => x.id), neurons };
  }

  async predict(p: PredictParams): Promise<PredictResult> {
    const m = this.model();
    const tok = m.folder.tokenizer;
    const replay = p.replay ?? DEFAULT_REPLAY;
    const ex = exampleOf(tok, p, m.info.context);
    const a = await assess(m.completion, ex);
    const shown = await showCompletion(m.completion, tok, p.prompt, replay, { suffix: p.suffix });
    return {
      prediction: shown.text,
      desiredTokens: ex.desired.map((id) => tok.tokenText(id)),
      correct: a.correct,
      pDesired: a.pDesired.map(clampProbability),
      allCorrect: a.allCorrect,
    };
  }

  private cases(samples: readonly Sample[]): Prepared[] {
    const m = this.model();
    return prepareFailures(m.folder.tokenizer, samples, m.info.context).prepared;
  }

  /** The built-in regression samples: the model's own completions under the committed patches, as the editor shows them. */
  private async builtinRegression(model: RepairModel): Promise<Prepared[]> {
    const m = this.model();
    const key = this.committed.map((p) => p.id).join(',');
    if (this.builtin?.key === key) return this.builtin.cases;
    model.apply(null);
    const samples: Sample[] = [];
    for (const [i, prompt] of BUILTIN_REGRESSION_PROMPTS.entries()) {
      const shown = await showCompletion(model.runtime, m.folder.tokenizer, prompt, BUILTIN_REPLAY);
      if (shown.text.trim().length === 0) continue;
      const raw = shown.generation.text;
      samples.push({ id: `builtin-${i}`, prompt, desired: shown.text, after: raw.startsWith(shown.text) ? raw.slice(shown.text.length).slice(0, 64) || undefined : undefined, replay: BUILTIN_REPLAY });
    }
    const cases = this.cases(samples);
    this.builtin = { key, cases };
    return cases;
  }

  /**
   * The regression set: the user's accepted completions and the model's built-in samples. A repair
   * is asked to keep them (specificity-preserving STAR's zero-steer rows, bounded) and the patch's
   * specificity is measured on them: it answers "did this patch break a completion that worked
   * here?", not an estimate for unseen code (the bench measures that on samples it never preserved).
   */
  private async regressionSet(model: RepairModel, accepted: readonly Sample[]): Promise<{ preserve: Prepared[]; measure: Prepared[] }> {
    const all = [...this.cases(accepted), ...(await this.builtinRegression(model))];
    return { preserve: all, measure: all };
  }

  private defaults(): MethodDefaults {
    const d = this.model().defaults;
    if (d instanceof RepairError) throw d;
    return d;
  }

  repair(p: RepairParams, control: JobControl): Promise<RepairResult> {
    return this.onRepairRuntime(async () => {
      const m = this.model();
      if (control.signal.aborted) throw new RepairError('cancelled', 'the repair was cancelled; the model is unchanged');
      const defaults = this.defaults();
      const tok = m.folder.tokenizer;
      const model = new RepairModel(m.repair, m.repairWeights, this.committedMap);
      const { prepared, skipped } = prepareFailures(tok, p.failures, m.info.context);
      if (prepared.length === 0) {
        const code = skipped[0]?.code === 'too-long' || skipped[0]?.code === 'multi-line' ? skipped[0].code : 'boundary';
        throw new RepairError(code, `nothing could be repaired: ${skipped.map((s) => s.message).join('; ')}`);
      }
      const progress = (x: RepairProgressEvent) => control.onProgress?.(x);
      progress({ method: p.method, phase: 'assess', epoch: 0, epochs: p.epochs, loss: null, positionsFixed: 0, positionsTotal: 0 });
      const repairControl: RepairControl = { signal: control.signal, onProgress: (x) => progress({ ...x, epochs: Math.max(x.epochs, x.epoch) }) };
      const regression = await this.regressionSet(model, p.regression);
      const result = await runRepair(model, tok, m.info.fingerprint, prepared, {
        method: p.method, mode: p.mode, select: p.select === 'model' ? undefined : p.select, epochs: p.epochs, eta: p.eta ?? undefined, preserveRows: p.preserveRows ?? undefined,
      }, defaults, repairControl, { preserve: regression.preserve.map((c) => c.example) });
      const { outcome, patch } = result;
      progress({ method: p.method, phase: 'evaluate', epoch: outcome.epochs, epochs: Math.max(p.epochs, outcome.epochs), loss: outcome.losses.at(-1) ?? null, positionsFixed: 0, positionsTotal: 0 });
      model.apply(null);
      const before = await caseStates(model, tok, result.repaired);
      const evaluation = await evaluatePatch(model, tok, combinePatches([{ layers: outcome.acc.toLayers() }], m.info.hidden), {
        repaired: result.repaired,
        heldout: this.cases(p.heldout),
        regression: regression.measure,
      }, { repaired: before });
      patch.scores = scoresOf(evaluation);
      const positions = result.repaired.flatMap((r, i) => r.example.desired.map((id, k) => ({
        failureId: r.failure.id,
        token: tok.tokenText(id),
        pBefore: clampProbability(outcome.before[i].pDesired[k]),
        pAfter: clampProbability(outcome.after[i].pDesired[k]),
      })));
      const fixed = result.fixed;
      return {
        patch: patchToJson(patch),
        fixed,
        unfixed: result.repaired.map((r) => r.failure.id).filter((id) => !fixed.includes(id)),
        skipped: [...skipped, ...result.skipped],
        scoresBefore: { effectiveness: fractionShown(before), generalisation: null, specificity: null },
        evaluation: evaluationCounts(evaluation),
        positions,
        epochs: outcome.epochs,
        losses: outcome.losses.filter(Number.isFinite),
      };
    });
  }

  evaluate(p: EvaluateParams, control: JobControl): Promise<EvaluateResult> {
    return this.onRepairRuntime(async () => {
      const m = this.model();
      const tok = m.folder.tokenizer;
      const patches = this.parsePatches(p.items.map((i) => i.patch));
      const results: EvaluateResult['results'] = [];
      for (let i = 0; i < p.items.length; i++) {
        if (control.signal.aborted) throw new RepairError('cancelled', 'the evaluation was cancelled');
        const patch = patches[i];
        const others = this.committed.filter((c) => c.id !== patch.id);
        const base = combinePatches(others, m.info.hidden);
        const model = new RepairModel(m.repair, m.repairWeights, base);
        const repaired: Case[] = this.cases(p.items[i].failures);
        if (repaired.length === 0) throw new WorkerStateError('no-failures', `patch ${patch.id} has none of its failures left to evaluate on (they were removed or cannot be tokenised)`);
        const before = await caseStates(model, tok, repaired);
        const own = combinePatches([patch], m.info.hidden);
        const evaluation = await evaluatePatch(model, tok, own, {
          repaired,
          heldout: this.cases(p.items[i].heldout),
          regression: (await this.regressionSet(model, p.regression)).measure,
        }, { repaired: before });
        const scoresBefore: ScoresBefore = { effectiveness: fractionShown(before), generalisation: null, specificity: null };
        results.push({ patchId: patch.id, scores: scoresOf(evaluation), scoresBefore, evaluation: evaluationCounts(evaluation) });
      }
      return { results };
    });
  }

  neuronDetails(p: NeuronDetailsParams): NeuronDetailsResult {
    const m = this.model();
    const { hidden: d, layers, neurons } = m.info;
    if (p.layer >= layers) throw new WorkerStateError('bad-neuron', `layer ${p.layer} does not exist: the model has ${layers} layers`);
    if (p.neuron >= neurons) throw new WorkerStateError('bad-neuron', `neuron ${p.neuron} does not exist: each layer has ${neurons} neurons`);
    if (p.delta.length !== d) throw new WorkerStateError('bad-neuron', `the delta has ${p.delta.length} values, the model's hidden size is ${d}`);
    const tok = m.folder.tokenizer;
    return explainDelta(m.repairWeights, p.delta, (v) => tok.tokenText(v));
  }

  export(p: ExportParams): ExportResult {
    const m = this.model();
    const patches = this.parsePatches(p.patches);
    const combined = combinePatches(patches, m.info.hidden);
    // Folded into the original weights: the fp32 ones held, or the checkpoint read again (quantised).
    const dir = exportPatchedModel({ ...m.folder, ...(m.fp32 ? { weights: m.fp32 } : {}) }, combined, p.dir, { patches: patches.map((x) => x.id) });
    let neurons = 0;
    for (const c of combined.values()) neurons += c.rows.length;
    return { dir, neurons };
  }

  async release(): Promise<void> {
    const l = this.loaded;
    this.loaded = null;
    if (l) await Promise.allSettled([l.completion.release(), l.repair.release()]);
  }
}
