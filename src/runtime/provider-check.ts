// The provider check: one real run of a model's graphs on a GPU execution provider, compared with
// the CPU provider within the tolerances of docs/gpu.md. A decode with a KV cache (the prompt, then
// greedy steps, each side continuing from its own cache) and a probe (forward + exact backward:
// loss, logits, z and dL/dh of every layer). This runs in the current process; the worker runs it
// in a child process (src/worker/provider-vetting.ts), so a provider that crashes here takes only
// the child down.

import type { ModelFolder } from '../model';
import type { ProviderName } from './providers';
import { ModelRuntime, type KvCache } from './runtime';

/** GPU against CPU (docs/gpu.md, "Agreement tests"): the same limits the agreement tests use. */
export const CHECK_TOLERANCES = {
  /** logits: max abs error ≤ logitsAbs and ≤ logitsRel × max |logit|. */
  logitsAbs: 1e-3,
  logitsRel: 1e-4,
  /** loss: abs error. */
  loss: 1e-4,
  /** dL/dh per layer: ≤ dhRel × max |dL/dh|. */
  dhRel: 1e-3,
  /** z per layer: ≤ zRel × max |z|. */
  zRel: 1e-4,
} as const;

/** Bumped when the check changes, so verdicts cached by an older check are not trusted. */
export const CHECK_VERSION = 1;

/** Text the check runs on: code, so every model sees familiar tokens. */
const CHECK_TEXT = 'def add(a, b):\n    """Return the sum."""\n    return a + b\n';
const CHECK_PROMPT_TOKENS = 16;
const CHECK_STEPS = 4;

export interface ProviderCheckResult {
  ok: boolean;
  /** The provider checked. */
  provider: string;
  /** Why it failed ('' when ok). */
  reason: string;
  /** The worst error per quantity (relative for logits, dh and z; absolute for loss). */
  worst: Record<string, number>;
  ms: number;
}

/** Max abs error and max |reference|, NaN-aware (a NaN anywhere is an infinite error). */
export function compareArrays(got: ArrayLike<number>, want: ArrayLike<number>): { abs: number; scale: number } {
  if (got.length !== want.length) return { abs: Infinity, scale: 0 };
  let abs = 0;
  let scale = 0;
  for (let i = 0; i < got.length; i++) {
    const e = Math.abs(got[i] - want[i]);
    abs = Number.isNaN(e) ? Infinity : Math.max(abs, e);
    scale = Math.max(scale, Math.abs(want[i]));
  }
  return { abs, scale };
}

function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

class Worst {
  readonly worst: Record<string, number> = {};
  failure: string | null = null;

  private keep(kind: string, value: number): void {
    this.worst[kind] = Math.max(this.worst[kind] ?? 0, value);
  }

  /** Relative error against `rel` × max |reference| (and `abs` when given). */
  relative(kind: string, at: string, got: ArrayLike<number>, want: ArrayLike<number>, rel: number, abs?: number): void {
    const e = compareArrays(got, want);
    const r = e.abs / Math.max(e.scale, 1e-30);
    this.keep(kind, r);
    if (this.failure) return;
    if (got.length !== want.length) this.failure = `${kind} (${at}): ${got.length} values on the GPU, ${want.length} on the CPU`;
    else if (!(r <= rel)) this.failure = `${kind} (${at}) differs from the CPU by ${r.toExponential(2)} of its largest value (limit ${rel})`;
    else if (abs !== undefined && !(e.abs <= abs)) this.failure = `${kind} (${at}) differs from the CPU by ${e.abs.toExponential(2)} (limit ${abs})`;
  }

  absolute(kind: string, at: string, got: number, want: number, abs: number): void {
    const e = Math.abs(got - want);
    this.keep(kind, Number.isNaN(e) ? Infinity : e);
    if (!this.failure && !(e <= abs)) this.failure = `${kind} (${at}) is ${got} on the GPU, ${want} on the CPU (limit ${abs})`;
  }
}

/** The check's token ids: the start of CHECK_TEXT, within the model's context. */
function checkIds(folder: ModelFolder): number[] {
  const ids = folder.tokenizer.encode(CHECK_TEXT).slice(0, CHECK_PROMPT_TOKENS);
  const room = Math.max(2, folder.config.maxPositions - CHECK_STEPS - 1);
  const out = ids.length >= 2 ? ids.slice(0, room) : [0, 1];
  return out.map((id) => Math.min(id, folder.config.vocab - 1));
}

/**
 * Runs decode and probe on `provider` and on the CPU and compares them. Never throws for the
 * provider's sake: an error while creating or running the provider's sessions is a failed check.
 */
export async function checkProvider(folder: ModelFolder, provider: Exclude<ProviderName, 'auto' | 'cpu'>, options: { threads?: number } = {}): Promise<ProviderCheckResult> {
  const start = performance.now();
  const gpu = new ModelRuntime(folder.config, folder.weights, { provider, threads: options.threads });
  const cpu = new ModelRuntime(folder.config, folder.weights, { provider: 'cpu', threads: options.threads });
  const w = new Worst();
  const done = (reason: string | null): ProviderCheckResult => ({ ok: reason === null, provider, reason: reason ?? '', worst: w.worst, ms: Math.round(performance.now() - start) });
  try {
    try {
      await gpu.warm(['decode']);
    } catch (e) {
      return done(`no ${provider} session could be created: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
    }
    if (gpu.provider !== provider) {
      return done(`no ${provider} session could be created: ${gpu.fallbacks.map((f) => `${f.provider}: ${f.reason}`).join('; ') || 'it fell back to the CPU'}`);
    }
    const ids = checkIds(folder);
    const T = CHECK_TOLERANCES;
    // Decode: the prompt, then greedy steps on the CPU's tokens, each side on its own cache.
    let g = await gpu.decode(ids);
    let c = await cpu.decode(ids);
    for (let step = 0; ; step++) {
      w.relative('logits', step === 0 ? 'decode, prompt' : `decode, step ${step}`, g.logits, c.logits, T.logitsRel, T.logitsAbs);
      if (w.failure || step === CHECK_STEPS || c.cache.length + 1 >= folder.config.maxPositions) break;
      const next = argmax(c.logits);
      const previous: KvCache = g.cache;
      g = await gpu.decode([next], previous);
      c = await cpu.decode([next], c.cache);
    }
    gpu.releaseCache(g.cache);
    if (w.failure) return done(w.failure);
    // Probe: forward + backward over the prompt, next-token targets.
    const targets = [...ids.slice(1), ids[0]];
    const mask = ids.map((_, i) => (i < ids.length - 1 ? 1 : 0));
    const gp = await gpu.probe(ids, targets, mask);
    const cp = await cpu.probe(ids, targets, mask);
    w.absolute('loss', 'probe', gp.loss, cp.loss, T.loss);
    w.relative('logits', 'probe', gp.logits, cp.logits, T.logitsRel, T.logitsAbs);
    for (let l = 0; l < folder.config.layers; l++) {
      w.relative('z', `probe, layer ${l}`, gp.z[l], cp.z[l], T.zRel);
      w.relative('dh', `probe, layer ${l}`, gp.dh[l], cp.dh[l], T.dhRel);
    }
    return done(w.failure);
  } catch (e) {
    return done(`running the model on ${provider} failed: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
  } finally {
    await Promise.allSettled([gpu.release(), cpu.release()]);
  }
}
