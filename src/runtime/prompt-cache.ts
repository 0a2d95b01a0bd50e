// The prompt cache (issue 15, item 4): the KV caches of the last few prompts a runtime prefilled,
// kept on the CPU, so the next prompt prefills only the tokens after the longest common token
// prefix with one of them. An entry is valid only for the patch it was computed under:
// ModelRuntime.setPatch bumps patchVersion (a repair's patch, an undo, a toggle) and every entry
// of an older version is dropped at the next lookup.

import * as ort from 'onnxruntime-node';
import type { KvCache, ModelRuntime } from './runtime';
import { compactTensor } from './kv-buffers';

type FloatArray = Float32Array | Float64Array;

interface Entry {
  ids: number[];
  /** Per layer [kvHeads, length, headDim]. */
  keys: FloatArray[];
  values: FloatArray[];
  version: number;
  bytes: number;
  used: number;
}

export interface CacheLookup {
  /** The cache to continue from (length = reused). */
  cache: KvCache;
  /** Leading prompt tokens whose keys and values came from the cache. */
  reused: number;
}

export interface PromptCacheStats {
  lookups: number;
  /** Lookups that reused at least one token. */
  hits: number;
  reusedTokens: number;
  entries: number;
  bytes: number;
}

function commonPrefix(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

export class PromptCache {
  private entries: Entry[] = [];
  private clock = 0;
  private readonly counts = { lookups: 0, hits: 0, reusedTokens: 0 };

  /**
   * @param capacity most prompts kept (least recently used goes first)
   * @param maxBytes most bytes of keys and values kept
   */
  constructor(readonly capacity = 4, readonly maxBytes = 512 * 1024 * 1024) {}

  clear(): void {
    this.entries = [];
  }

  get stats(): PromptCacheStats {
    return { ...this.counts, entries: this.entries.length, bytes: this.entries.reduce((a, e) => a + e.bytes, 0) };
  }

  private drop(version: number): void {
    this.entries = this.entries.filter((e) => e.version === version);
  }

  /**
   * The longest cached prefix of `ids`, as a cache to decode the rest from. At least one token is
   * always left to decode (its logits are the completion's first step).
   */
  lookup(runtime: ModelRuntime, ids: readonly number[]): CacheLookup {
    this.drop(runtime.patchVersion);
    this.counts.lookups++;
    let best: Entry | null = null;
    let len = 0;
    for (const e of this.entries) {
      const n = Math.min(commonPrefix(e.ids, ids), ids.length - 1);
      if (n > len) {
        len = n;
        best = e;
      }
    }
    if (!best || len === 0) return { cache: runtime.emptyCache(), reused: 0 };
    best.used = ++this.clock;
    this.counts.hits++;
    this.counts.reusedTokens += len;
    const { kvHeads, headDim } = runtime.config;
    const full = best.ids.length;
    const slice = (a: FloatArray): ort.Tensor => compactTensor(new ort.Tensor(runtime.floatType, a, [kvHeads, full, headDim]), len);
    return { cache: { length: len, keys: best.keys.map(slice), values: best.values.map(slice) }, reused: len };
  }

  /** Keeps the cache of the prompt `ids` (cache.length === ids.length). Call before the cache is passed on to decode(). */
  async store(runtime: ModelRuntime, ids: readonly number[], cache: KvCache): Promise<void> {
    if (cache.length !== ids.length || ids.length === 0) return;
    const version = runtime.patchVersion;
    const { keys, values } = await runtime.readCache(cache);
    if (runtime.patchVersion !== version) return;
    const bytes = [...keys, ...values].reduce((a, x) => a + x.byteLength, 0);
    if (bytes > this.maxBytes) return;
    // A prompt that extends a kept one replaces it: it holds all of it.
    this.entries = this.entries.filter((e) => !(e.ids.length <= ids.length && commonPrefix(e.ids, ids) === e.ids.length));
    this.entries.push({ ids: [...ids], keys, values, version, bytes, used: ++this.clock });
    this.entries.sort((a, b) => b.used - a.used);
    let total = 0;
    this.entries = this.entries.filter((e, i) => i < this.capacity && (total += e.bytes) <= this.maxBytes);
  }
}
