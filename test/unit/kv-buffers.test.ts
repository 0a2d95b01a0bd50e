// The decode caches kept in buffers (src/runtime/kv-buffers.ts): the capacity rule, the copies
// between the buffer layout [1, KV, C, hd] and decode's compact [KV, length, hd], when a cache's
// buffers are handed out again, how a step's new positions [1, KV, T, hd] are written into them; and through ModelRuntime on a fixture, where the CPU decode graph
// is the fused one: a cache decoded from twice (two continuations of one prompt) gives each the
// logits a fresh decode of its whole text gives, and readCache of a cache whose buffers a later
// step extended is still that cache.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { loadModelFolder } from '../../src/model';
import { ModelRuntime } from '../../src/runtime/runtime';
import { CACHE_GROWTH, CacheBuffers, cacheCapacity, compactCache, compactTensors, feedBuffers, isBuffer, writeStep } from '../../src/runtime/kv-buffers';
import { pastName, presentName } from '../../src/graph/architectures/decoder';

const KV = 2;
const HD = 3;

/** A compact [KV, length, hd] cache tensor whose value at (h, p, i) is 100h + 10p + i. */
function compact(length: number): ort.Tensor {
  const data = new Float32Array(KV * length * HD);
  for (let h = 0; h < KV; h++) for (let p = 0; p < length; p++) for (let i = 0; i < HD; i++) data[(h * length + p) * HD + i] = 100 * h + 10 * p + i;
  return new ort.Tensor('float32', data, [KV, length, HD]);
}

test('capacity: the positions needed rounded up to CACHE_GROWTH, never zero', () => {
  assert.equal(cacheCapacity(0), CACHE_GROWTH);
  assert.equal(cacheCapacity(1), CACHE_GROWTH);
  assert.equal(cacheCapacity(CACHE_GROWTH), CACHE_GROWTH);
  assert.equal(cacheCapacity(CACHE_GROWTH + 1), 2 * CACHE_GROWTH);
});

test('a compact cache is copied into buffers with room, and back out of them unchanged', () => {
  const cache = { length: 5, keys: [compact(5)], values: [compact(5)] };
  const buffers = new CacheBuffers().forStep(cache, 2);
  const [b] = buffers.keys;
  assert.ok(isBuffer(b));
  assert.deepEqual(b.dims, [1, KV, CACHE_GROWTH, HD]);
  // Head 1 starts a whole capacity after head 0; the room after the positions is zeros.
  const data = b.data as Float32Array;
  assert.equal(data[CACHE_GROWTH * HD], 100);
  assert.equal(data[5 * HD], 0);
  assert.deepEqual(compactCache(b, 5), compact(5).data);
  assert.deepEqual(compactTensors({ length: 5, keys: [b], values: [b] }).keys[0].data, compact(5).data);
  // A compact tensor of exactly the cache's length is its own compact form (no copy).
  const t = compact(4);
  assert.equal(compactCache(t, 4), t.data);
});

test("a step's new positions are written into the buffers after the cache, per head, and must fit", () => {
  const cache = { length: 5, keys: [compact(5)], values: [compact(5)] };
  const buffers = new CacheBuffers().forStep(cache, 2);
  const feeds: Record<string, ort.Tensor> = {};
  const fetches = feedBuffers(feeds, buffers, ['next']);
  assert.equal(feeds[pastName(0, 'key')], buffers.keys[0]);
  assert.deepEqual(Object.keys(fetches).sort(), ['next', presentName(0, 'key'), presentName(0, 'value')].sort());
  // Two new positions whose value at (h, t, i) is 100h + 10(5 + t) + i: what compact(7) holds there.
  const added = new ort.Tensor('float32', Float32Array.from({ length: KV * 2 * HD }, (_, j) => {
    const h = Math.floor(j / (2 * HD));
    const t = Math.floor(j / HD) % 2;
    return 100 * h + 10 * (5 + t) + (j % HD);
  }), [1, KV, 2, HD]);
  writeStep(buffers, { [presentName(0, 'key')]: added, [presentName(0, 'value')]: added }, 5);
  assert.deepEqual(compactCache(buffers.keys[0], 7), compact(7).data);
  assert.deepEqual(compactCache(buffers.values[0], 7), compact(7).data);
  assert.equal((buffers.keys[0].data as Float32Array)[7 * HD], 0, 'nothing is written past the step');
  assert.throws(() => writeStep(buffers, { [presentName(0, 'key')]: added, [presentName(0, 'value')]: added }, CACHE_GROWTH - 1), /do not fit/);
});

test('buffers are handed out again only to the cache they end, once, and while they have room', () => {
  const pool = new CacheBuffers();
  const start = { length: 3, keys: [compact(3)], values: [compact(3)] };
  const first = pool.forStep(start, 1);
  const tip = { length: 4, ...first };
  const next = pool.forStep(tip, 10);
  assert.equal(next.keys[0], first.keys[0], 'the tip of a buffer is extended in place');
  const again = pool.forStep(tip, 1);
  assert.notEqual(again.keys[0], first.keys[0], 'a cache extended once gets a copy the second time');
  assert.deepEqual(compactCache(again.keys[0], 4), compactCache(first.keys[0], 4));
  const full = { length: CACHE_GROWTH - 1, ...pool.forStep({ length: CACHE_GROWTH - 1, keys: [compact(CACHE_GROWTH - 1)], values: [compact(CACHE_GROWTH - 1)] }, 0) };
  const grown = pool.forStep(full, 2);
  assert.deepEqual(grown.keys[0].dims, [1, KV, 2 * CACHE_GROWTH, HD], 'a step that does not fit gets larger buffers');
  assert.deepEqual(compactCache(grown.keys[0], CACHE_GROWTH - 1), compact(CACHE_GROWTH - 1).data);
});

test('ModelRuntime: two continuations of one cached prompt each equal a fresh decode, and the cache reads as it was', async () => {
  const folder = loadModelFolder(join(__dirname, '..', 'fixtures', 'models', 'qwen2'));
  const rt = new ModelRuntime(folder.config, folder.weights, { threads: 1 });
  const prompt = [5, 17, 42, 3, 99, 7];
  const p = await rt.decode(prompt);
  assert.ok(isBuffer(p.cache.keys[0]), 'the CPU decode graph is the fused one here, with buffer caches');
  const before = await rt.readCache(p.cache);
  const a = await rt.decode([11, 12], p.cache);
  const b = await rt.decode([23], p.cache);
  const close = (x: ArrayLike<number>, y: ArrayLike<number>) => {
    let worst = 0;
    let scale = 0;
    for (let i = 0; i < x.length; i++) {
      worst = Math.max(worst, Math.abs(x[i] - y[i]));
      scale = Math.max(scale, Math.abs(y[i]));
    }
    return worst <= 1e-5 * scale;
  };
  assert.ok(close(a.logits, (await rt.decode([...prompt, 11, 12])).logits), 'the first continuation');
  assert.ok(close(b.logits, (await rt.decode([...prompt, 23])).logits), 'the second continuation');
  const after = await rt.readCache(p.cache);
  assert.deepEqual(after, before, "the prompt's cache after both continuations");
  // The first continuation goes on in its buffers, unharmed by the second.
  const a2 = await rt.decode([9], a.cache);
  assert.ok(close(a2.logits, (await rt.decode([...prompt, 11, 12, 9])).logits), 'the first continuation, one more token');
});
