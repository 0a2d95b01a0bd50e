// The KV caches of the fused decode graph (graph/architectures/decode-layer.ts), kept in place: per
// layer one keys and one values buffer [1, KV, C, hd] with room for C positions, of which the
// cache's first `length` are filled. A step feeds the buffers as the past; the graph outputs only
// the step's T new positions [1, KV, T, hd], which are written into the buffers at `length`
// (onnxruntime-node copies every fetched output into a new JavaScript buffer, so the step hands
// over T positions a layer instead of the whole cache, and no cache is rebuilt per token). Owns how
// a step feeds the buffers and takes its positions back (feedBuffers, writeStep), the capacity
// rule, when a cache's buffers may be written again, and the copies between this layout and
// decode's compact [KV, length, hd] (the plain graph's, the prompt cache's and
// ModelRuntime.readCache's).
//
// A buffer is extended by one cache only: decode() from a cache whose buffers a later step has
// already extended (a second continuation of the same prompt) copies its positions into new
// buffers first, so every cache stays valid however it is reused.
import * as ort from 'onnxruntime-node';
import { pastName, presentName } from '../graph/architectures/decoder';

/** Buffers grow in steps of this many positions: a cache is copied once per that many tokens. */
export const CACHE_GROWTH = 64;

/** The keys and values of a cache, per layer, in either layout. */
export interface CacheTensors {
  readonly length: number;
  readonly keys: readonly ort.Tensor[];
  readonly values: readonly ort.Tensor[];
}

/** Capacity of new buffers for `need` positions: `need` rounded up to CACHE_GROWTH. */
export function cacheCapacity(need: number): number {
  return Math.max(CACHE_GROWTH, Math.ceil(need / CACHE_GROWTH) * CACHE_GROWTH);
}

/** Whether a cache tensor is a buffer [1, KV, C, hd] (else decode's compact [KV, length, hd]). */
export const isBuffer = (t: ort.Tensor): boolean => t.dims.length === 4;

/** KV, the positions of room and hd of a cache tensor in either layout. */
function shapeOf(t: ort.Tensor): { kv: number; room: number; hd: number } {
  const d = t.dims;
  return isBuffer(t) ? { kv: d[1], room: d[2], hd: d[3] } : { kv: d[0], room: d[1], hd: d[2] };
}

type FloatArray = Float32Array | Float64Array;

/** The first `length` positions of `t` (either layout) into a new [KV, capacity, hd] array of its type. */
function positions(t: ort.Tensor, length: number, capacity: number): FloatArray {
  const { kv, room, hd } = shapeOf(t);
  if (length > room || length > capacity) throw new Error(`internal: a cache of ${length} positions in a tensor with room for ${room} (to ${capacity})`);
  const src = t.data as FloatArray;
  const out = src instanceof Float64Array ? new Float64Array(kv * capacity * hd) : new Float32Array(kv * capacity * hd);
  for (let h = 0; h < kv; h++) out.set(src.subarray(h * room * hd, (h * room + length) * hd), h * capacity * hd);
  return out;
}

/** The first `length` positions of a cache tensor (either layout) as decode's compact [KV, length, hd] (itself when it is that already). */
export function compactCache(t: ort.Tensor, length: number): FloatArray {
  if (!isBuffer(t) && t.dims[1] === length) return t.data as FloatArray;
  return positions(t, length, length);
}

/** The first `length` positions of a cache tensor (either layout) as a compact [KV, length, hd] tensor. */
export function compactTensor(t: ort.Tensor, length: number): ort.Tensor {
  if (!isBuffer(t) && t.dims[1] === length) return t;
  const { kv, hd } = shapeOf(t);
  return new ort.Tensor(t.type as 'float32' | 'float64', positions(t, length, length), [kv, length, hd]);
}

/** A cache (either layout) as decode's compact [KV, length, hd] tensors, for the plain decode graph. */
export function compactTensors(cache: CacheTensors): { keys: ort.Tensor[]; values: ort.Tensor[] } {
  return { keys: cache.keys.map((t) => compactTensor(t, cache.length)), values: cache.values.map((t) => compactTensor(t, cache.length)) };
}

/** Hands out the buffers each decode step writes into, and remembers which caches were extended. */
export class CacheBuffers {
  private readonly extended = new WeakSet<CacheTensors>();

  /**
   * Buffers for `steps` tokens after `cache`: its own when they are buffers with room that no
   * step has extended yet (the cache is then marked extended: the step writes past its length),
   * else new ones of cacheCapacity(length + steps) positions holding its positions.
   */
  forStep(cache: CacheTensors, steps: number): { keys: ort.Tensor[]; values: ort.Tensor[] } {
    const need = cache.length + steps;
    const first = cache.keys[0];
    if (first && isBuffer(first) && first.dims[2] >= need && !this.extended.has(cache)) {
      this.extended.add(cache);
      return { keys: [...cache.keys], values: [...cache.values] };
    }
    const capacity = cacheCapacity(need);
    const buffer = (t: ort.Tensor) => {
      const { kv, hd } = shapeOf(t);
      return new ort.Tensor('float32', positions(t, cache.length, capacity) as Float32Array, [1, kv, capacity, hd]);
    };
    return { keys: cache.keys.map(buffer), values: cache.values.map(buffer) };
  }
}

/**
 * Feeds each buffer to the fused decode graph as layer l's past; returns the fetches for
 * session.run: every layer's new positions and `outputs` (the logits, or the greedy token's).
 */
export function feedBuffers(feeds: Record<string, ort.Tensor>, buffers: { keys: readonly ort.Tensor[]; values: readonly ort.Tensor[] }, outputs: readonly string[] = ['logits']): Record<string, null> {
  const fetches: Record<string, null> = Object.fromEntries(outputs.map((name) => [name, null]));
  buffers.keys.forEach((t, l) => {
    feeds[pastName(l, 'key')] = t;
    fetches[presentName(l, 'key')] = null;
  });
  buffers.values.forEach((t, l) => {
    feeds[pastName(l, 'value')] = t;
    fetches[presentName(l, 'value')] = null;
  });
  return fetches;
}

/** Writes a step's new positions [1, KV, T, hd] (`out`'s present outputs) into the buffers at `at` (the cache's length before the step). */
export function writeStep(buffers: { keys: readonly ort.Tensor[]; values: readonly ort.Tensor[] }, out: Readonly<Record<string, ort.Tensor>>, at: number): void {
  const put = (buffer: ort.Tensor, added: ort.Tensor) => {
    const [, kv, room, hd] = buffer.dims;
    const T = added.dims[2];
    if (added.dims.length !== 4 || added.dims[1] !== kv || added.dims[3] !== hd || at + T > room) throw new Error(`internal: ${T} new positions [${added.dims}] at ${at} do not fit a cache buffer [${buffer.dims}]`);
    const dst = buffer.data as FloatArray;
    const src = added.data as FloatArray;
    for (let h = 0; h < kv; h++) dst.set(src.subarray(h * T * hd, (h + 1) * T * hd), (h * room + at) * hd);
  };
  buffers.keys.forEach((t, l) => put(t, out[presentName(l, 'key')]));
  buffers.values.forEach((t, l) => put(t, out[presentName(l, 'value')]));
}
