// GPU vs CPU agreement (issue 9): logits, dL/dh and patched logits of the WebGPU (or CUDA) provider
// against the CPU provider, within fp32 tolerances. Skipped, with the reason, where no GPU provider
// can be created (CI has no GPU); run on a GPU machine to check the GPU path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadModelFolder } from '../../src/model';
import { ModelRuntime } from '../../src/runtime/runtime';

const FIXTURES = join(__dirname, '..', 'fixtures', 'models');

function errors(a: ArrayLike<number>, b: ArrayLike<number>): { abs: number; rel: number } {
  let abs = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    abs = Math.max(abs, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return { abs, rel: abs / Math.max(scale, 1e-30) };
}

for (const provider of ['webgpu', 'cuda'] as const) {
  test(`${provider} agrees with cpu on logits, dL/dh and patched logits`, async (t) => {
    const folder = loadModelFolder(join(FIXTURES, 'qwen2'));
    const gpu = new ModelRuntime(folder.config, folder.weights, { provider });
    const ids = folder.tokenizer.encode('def f(n):\n    return n + 1\n');
    const targets = [...ids.slice(1), 0];
    const mask = ids.map((_, i) => (i >= 2 ? 1 : 0));
    try {
      await gpu.warm(['probe']);
    } catch (e) {
      t.skip(`no ${provider} provider here: ${(e as Error).message}`);
      return;
    }
    if (gpu.provider !== provider) {
      t.skip(`no ${provider} provider here: ${gpu.fallbacks.map((f) => `${f.provider}: ${f.reason}`).join('; ')}`);
      return;
    }
    const cpu = new ModelRuntime(folder.config, folder.weights, { provider: 'cpu' });
    const a = await gpu.probe(ids, targets, mask);
    const b = await cpu.probe(ids, targets, mask);
    const logits = errors(a.logits, b.logits);
    t.diagnostic(`logits max abs ${logits.abs.toExponential(2)}, rel ${logits.rel.toExponential(2)}`);
    assert.ok(logits.abs <= 1e-3 && logits.rel <= 1e-4);
    for (let l = 0; l < folder.config.layers; l++) {
      const e = errors(a.dh[l], b.dh[l]);
      t.diagnostic(`dh.${l} max abs ${e.abs.toExponential(2)}, rel ${e.rel.toExponential(2)}`);
      assert.ok(e.rel <= 1e-3);
    }
    const d = folder.config.hidden;
    const patch = new Map([[1, { rows: [2, 9], deltas: Float32Array.from({ length: 2 * d }, (_, i) => Math.sin(i) * 0.3) }]]);
    gpu.setPatch(patch);
    cpu.setPatch(patch);
    const pa = await gpu.score(ids, targets, mask);
    const pb = await cpu.score(ids, targets, mask);
    const patched = errors(pa.logits, pb.logits);
    t.diagnostic(`patched logits max abs ${patched.abs.toExponential(2)}, rel ${patched.rel.toExponential(2)}`);
    assert.ok(patched.abs <= 1e-3 && patched.rel <= 1e-4);
    await gpu.release();
    await cpu.release();
  });
}
