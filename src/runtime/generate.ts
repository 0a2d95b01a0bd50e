// Text generation on the decode graph with its KV cache: greedy or temperature/top-p sampling,
// stop strings, a token budget, cancellation and token healing; FIM prompts (runtime/prompt.ts)
// ending at the format's stop tokens; the prompt cache (runtime/prompt-cache.ts: only the tokens
// after the longest cached prefix are prefilled); time caps for the prompt and the generation. The
// prompt is prefilled in one run (in chunks when a prompt time cap is set, so the cap is checked
// between them); each new token is then one run that extends the cache — for a greedy token that
// needs no logits (no healing left, no alternatives asked), a run that answers with the token alone
// (ModelRuntime.decode's 'greedy').

import type { TextTokenizer } from '../model/tokenizer';
import { checkFiniteLogits } from '../model/finite';
import { greedyToken, type DecodeStep, type KvCache, type ModelRuntime } from './runtime';
import { seededRandom as prng } from '../util/random';
import type { FimChoice } from './fim';
import { healLength, preparePrompt } from './prompt';
import type { PromptCache } from './prompt-cache';

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
  /**
   * Token healing (default off). A prompt cut at an arbitrary character rarely ends at a token
   * boundary the model saw in training: byte-level BPE puts a newline and the next line's
   * indentation into one token ("\n" + 3 spaces, then " return"), and "import o" ends in " o" where
   * training saw " os". With healing the prompt's last token (and all its trailing whitespace) is
   * taken off and the first generated tokens are constrained, greedily, to spell it back; the
   * completion is what comes after it.
   */
  heal?: boolean;
  /** Text after the cursor: in the prompt with `fim`. */
  suffix?: string;
  /** The FIM format and order (runtime/fim.ts); null or absent: the prompt is the text before the cursor alone. */
  fim?: FimChoice | null;
  /** Reuse and keep prompt KV caches. */
  promptCache?: PromptCache;
  /** Most ms for the prompt (prefill); past it the generation ends with nothing ('time'). 0 or absent: no cap. */
  promptMs?: number;
  /** Most ms from the first token on; past it the generation ends with what it has ('time'). 0 or absent: no cap. */
  generationMs?: number;
  /** The first token after the healed text is this id (an alternative completion, runtime/completion.ts). */
  forceFirst?: number;
  /** How many of the most likely first tokens (after the healed text) to report in `firstChoices`. */
  firstChoices?: number;
}

export type StopReason = 'max-tokens' | 'stop' | 'eos' | 'cancelled' | 'context' | 'time';

export interface Generation {
  text: string;
  /** Every generated id, the healing ones (which spell `healed` back) first. */
  tokens: number[];
  /** How many of `tokens` were spent spelling the healed text back; the budget counts the rest. */
  healingTokens: number;
  promptTokens: number;
  stoppedBy: StopReason;
  ms: number;
  /** Prefill time (the prompt's one run), ms. */
  prefillMs: number;
  /** The end of the prompt that token healing took off and spelled back ('' without healing). */
  healed: string;
  /** Prompt tokens run through the model (the rest came from the prompt cache). */
  prefilled: number;
  /** Prompt tokens reused from the prompt cache. */
  reused: number;
  /** ms from the start to the first generated token (null: none). */
  firstTokenMs: number | null;
  /** The most likely first tokens after the healed text, best first (GenerateOptions.firstChoices). */
  firstChoices: number[];
}

/** Prompt tokens per prefill run when a prompt time cap is checked between runs. */
export const PREFILL_CHUNK = 64;

export { healLength };

const tokenTextCache = new WeakMap<TextTokenizer, string[]>();

/** Text of every id below `vocab` ('' for end-of-text and ids the tokenizer lacks), computed once per tokenizer. */
export function tokenTexts(tokenizer: TextTokenizer, vocab: number): string[] {
  let texts = tokenTextCache.get(tokenizer);
  if (!texts || texts.length < vocab) {
    texts = Array.from({ length: vocab }, (_, id) => (id === tokenizer.eosId || id >= tokenizer.vocabSize ? '' : tokenizer.tokenText(id)));
    tokenTextCache.set(tokenizer, texts);
  }
  return texts;
}

/** A token may stand where `rest` of the healed text is still owed: its text spells a start of `rest`, or all of it and more. */
function agrees(t: string, rest: string): boolean {
  return t !== '' && (rest.startsWith(t) || t.startsWith(rest));
}

/** Every id the healing step may choose while `rest` is owed (the constraint teacher forcing replays, repair/teacher.ts). */
export function healingCandidates(tokenizer: TextTokenizer, rest: string): number[] {
  const texts = tokenTexts(tokenizer, tokenizer.vocabSize);
  const out: number[] = [];
  for (let id = 0; id < texts.length; id++) if (agrees(texts[id], rest)) out.push(id);
  return out;
}

/** The most likely token whose text agrees with `rest` (the part of the healed text still owed), or -1. */
function healingToken(logits: ArrayLike<number>, texts: readonly string[], rest: string): number {
  let best = -1;
  for (let id = 0; id < logits.length; id++) {
    const t = texts[id];
    if (!agrees(t, rest)) continue;
    if (best < 0 || logits[id] > logits[best]) best = id;
  }
  return best;
}

function sample(logits: ArrayLike<number>, temperature: number, topP: number, random: () => number): number {
  checkFiniteLogits(logits);
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

/** A step's logits, where want() asked for them. */
function logitsOf(step: DecodeStep): ArrayLike<number> {
  if (!('logits' in step)) throw new Error('internal: generate() needs the logits of a step it decoded for the greedy token only');
  return step.logits;
}

function topIds(logits: ArrayLike<number>, k: number): number[] {
  const best: number[] = [];
  for (let id = 0; id < logits.length; id++) {
    if (best.length < k || logits[id] > logits[best[best.length - 1]]) {
      best.push(id);
      best.sort((a, b) => logits[b] - logits[a]);
      if (best.length > k) best.pop();
    }
  }
  return best;
}

export async function generate(runtime: ModelRuntime, tokenizer: TextTokenizer, prompt: string, options: GenerateOptions): Promise<Generation> {
  const start = performance.now();
  const maxTokens = Math.max(0, Math.floor(options.maxTokens));
  const context = runtime.config.maxPositions;
  const prepared = preparePrompt(tokenizer, prompt, { heal: options.heal ?? false, suffix: options.suffix, fim: options.fim, maxTokens, context });
  const promptIds = prepared.ids;
  const owed = prepared.owed;
  const stopIds = new Set<number>(prepared.fim?.stops ?? []);
  if (tokenizer.eosId !== null) stopIds.add(tokenizer.eosId);
  const random = prng(options.seed ?? 0);
  const temperature = options.temperature ?? 0;
  const stop = options.stop ?? [];
  const tokens: number[] = [];
  let healing = 0;
  let full = ''; // decode(tokens): the healed text, then the completion
  let text = '';
  let stoppedBy: StopReason = 'max-tokens';
  let prefillMs = 0;
  let prefilled = 0;
  let reused = 0;
  let firstTokenMs: number | null = null;
  let firstChoices: number[] = [];
  const result = (): Generation => ({
    text, tokens, promptTokens: promptIds.length, stoppedBy, ms: performance.now() - start, prefillMs, healed: owed, healingTokens: healing,
    prefilled, reused, firstTokenMs, firstChoices,
  });

  if (maxTokens > 0 && !options.signal?.aborted) {
    const cache = options.promptCache;
    let step: DecodeStep;
    // Whether the next token needs the logits (healing, the first token's alternatives, sampling)
    // or only the greedy choice, which the runtime can make without handing the logits over.
    const want = (): 'logits' | 'greedy' => (full.length < owed.length || temperature > 0 || (tokens.length === healing && (options.firstChoices ?? 0) > 0) ? 'logits' : 'greedy');
    {
      const found = cache ? cache.lookup(runtime, promptIds) : { cache: undefined, reused: 0 };
      reused = found.reused;
      let past: KvCache | undefined = found.cache;
      let at = reused;
      const chunk = options.promptMs ? PREFILL_CHUNK : promptIds.length;
      for (;;) {
        const end = Math.min(promptIds.length, at + chunk);
        const s = await runtime.decode(promptIds.slice(at, end), past, end === promptIds.length ? want() : 'logits');
        at = end;
        past = s.cache;
        if (at >= promptIds.length) {
          step = s;
          break;
        }
        const late = options.promptMs !== undefined && performance.now() - start > options.promptMs;
        if (late || options.signal?.aborted) {
          // Nothing to show in time; what was prefilled is kept, so the next request goes on from there.
          prefilled = at - reused;
          prefillMs = performance.now() - start;
          if (cache) await cache.store(runtime, promptIds.slice(0, at), past);
          runtime.releaseCache(past);
          stoppedBy = late ? 'time' : 'cancelled';
          return result();
        }
      }
    }
    prefilled = promptIds.length - reused;
    prefillMs = performance.now() - start;
    if (cache) await cache.store(runtime, promptIds, step.cache);
    let generationStart = performance.now();
    try {
      for (;;) {
        let next: number;
        if (full.length < owed.length) {
          const logits = logitsOf(step);
          next = healingToken(logits, tokenTexts(tokenizer, logits.length), owed.slice(full.length));
          // No token spells the rest (a character the vocabulary only has in pieces): start over unhealed.
          if (next < 0) return generate(runtime, tokenizer, prompt, { ...options, heal: false });
          healing++;
        } else {
          if (tokens.length === healing) {
            if (options.firstChoices) firstChoices = topIds(logitsOf(step), options.firstChoices);
          }
          if (tokens.length === healing && options.forceFirst !== undefined) next = options.forceFirst;
          else next = temperature > 0 ? sample(logitsOf(step), temperature, options.topP ?? 1, random) : greedyToken(step);
          if (stopIds.has(next)) {
            stoppedBy = 'eos';
            break;
          }
        }
        if (firstTokenMs === null) {
          firstTokenMs = performance.now() - start;
          generationStart = performance.now();
        }
        tokens.push(next);
        full = tokenizer.decode(tokens);
        text = full.length >= owed.length ? full.slice(owed.length) : '';
        const cut = stopIndex(text, stop);
        if (cut >= 0) {
          text = text.slice(0, cut);
          stoppedBy = 'stop';
          break;
        }
        if (text) options.onText?.(text);
        if (tokens.length - healing >= maxTokens) break;
        if (options.signal?.aborted) {
          stoppedBy = 'cancelled';
          break;
        }
        if (options.generationMs && performance.now() - generationStart > options.generationMs) {
          stoppedBy = 'time';
          break;
        }
        if (step.cache.length + 1 > context) {
          stoppedBy = 'context';
          break;
        }
        step = await runtime.decode([next], step.cache, want());
      }
    } finally {
      // The generation has ended, however it ended: free its last cache now (device memory on GPU
      // providers; decode() already freed every earlier one).
      runtime.releaseCache(step.cache);
    }
  } else if (options.signal?.aborted) stoppedBy = 'cancelled';
  return result();
}
