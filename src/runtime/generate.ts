// Text generation on the decode graph with its KV cache: greedy or temperature/top-p sampling,
// stop strings, a token budget and cancellation. The prompt is prefilled in one run; each new
// token is then one run that extends the cache.

import type { TextTokenizer } from '../model/tokenizer';
import type { ModelRuntime } from './runtime';
import { seededRandom as prng } from '../util/random';

export interface GenerateOptions {
  maxTokens: number;
  /** 0 (the default) decodes greedily. */
  temperature?: number;
  /** Nucleus sampling mass, used when temperature > 0 (default 1: the whole distribution). */
  topP?: number;
  /** Generation ends before the first occurrence of any of these strings. */
  stop?: readonly string[];
  /** Seed for sampling, so a sampled completion can be reproduced. */
  seed?: number;
  signal?: AbortSignal;
  onText?: (textSoFar: string) => void;
}

export type StopReason = 'max-tokens' | 'stop' | 'eos' | 'cancelled' | 'context';

export interface Generation {
  text: string;
  tokens: number[];
  promptTokens: number;
  stoppedBy: StopReason;
  ms: number;
  /** Prefill time (the prompt's one run), ms. */
  prefillMs: number;
}


export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

function sample(logits: ArrayLike<number>, temperature: number, topP: number, random: () => number): number {
  const n = logits.length;
  let max = -Infinity;
  for (let i = 0; i < n; i++) max = Math.max(max, logits[i]);
  const probs = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += probs[i] = Math.exp((logits[i] - max) / temperature);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => probs[b] - probs[a]);
  let kept = 0;
  let mass = 0;
  while (kept < n && mass < topP * sum) mass += probs[order[kept++]];
  let r = random() * mass;
  for (let k = 0; k < kept; k++) {
    r -= probs[order[k]];
    if (r <= 0) return order[k];
  }
  return order[kept - 1];
}

/** Index where the earliest stop string starts in `text`, or -1. */
function stopIndex(text: string, stop: readonly string[]): number {
  let at = -1;
  for (const s of stop) {
    if (!s) continue;
    const i = text.indexOf(s);
    if (i >= 0 && (at < 0 || i < at)) at = i;
  }
  return at;
}

export async function generate(runtime: ModelRuntime, tokenizer: TextTokenizer, prompt: string, options: GenerateOptions): Promise<Generation> {
  const start = performance.now();
  const maxTokens = Math.max(0, Math.floor(options.maxTokens));
  const context = runtime.config.maxPositions;
  let promptIds = tokenizer.encode(prompt);
  if (promptIds.length === 0) throw new Error('the prompt is empty: there is nothing to complete');
  // Keep the end of a long prompt: it is what the completion continues.
  const room = Math.max(1, context - maxTokens);
  if (promptIds.length > room) promptIds = promptIds.slice(promptIds.length - room);
  const random = prng(options.seed ?? 0);
  const temperature = options.temperature ?? 0;
  const stop = options.stop ?? [];
  const tokens: number[] = [];
  let text = '';
  let stoppedBy: StopReason = 'max-tokens';
  let prefillMs = 0;

  if (maxTokens > 0 && !options.signal?.aborted) {
    let step = await runtime.decode(promptIds);
    prefillMs = performance.now() - start;
    for (;;) {
      const next = temperature > 0 ? sample(step.logits, temperature, options.topP ?? 1, random) : argmax(step.logits);
      if (next === tokenizer.eosId) {
        stoppedBy = 'eos';
        break;
      }
      tokens.push(next);
      text = tokenizer.decode(tokens);
      const cut = stopIndex(text, stop);
      if (cut >= 0) {
        text = text.slice(0, cut);
        stoppedBy = 'stop';
        break;
      }
      options.onText?.(text);
      if (tokens.length >= maxTokens) break;
      if (options.signal?.aborted) {
        stoppedBy = 'cancelled';
        break;
      }
      if (step.cache.length + 1 > context) {
        stoppedBy = 'context';
        break;
      }
      step = await runtime.decode([next], step.cache);
    }
  } else if (options.signal?.aborted) stoppedBy = 'cancelled';
  return { text, tokens, promptTokens: promptIds.length, stoppedBy, ms: performance.now() - start, prefillMs };
}
