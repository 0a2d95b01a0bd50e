// A real forked worker (the esbuild bundle of src/worker/main.ts) on the llama fixture: load (and
// the weights it says it runs on), complete, predict, repair with progress, the loop closing on
// int8 and int4 weights as on fp32, completions served from the committed patches while a repair
// runs, cancellation, a refused request, and crashes: a worker SIGKILLed mid-repair is restarted
// with the model and patches re-sent from the stores, the pending request fails with a clear
// error, nothing in the stores is lost and the next request works.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WorkerClient, WorkerError, type WorkerExit } from '../../src/worker/client';
import type { CompleteParams, RepairParams, RepairProgressEvent } from '../../src/worker/protocol';
import { FailureStore } from '../../src/failures/store';
import { PatchStore } from '../../src/repair/patch-store';
import { patchFromJson, patchToJson } from '../../src/repair/patch';
import { buildWorker, ROOT } from './worker-build';
import { loadModelFolder, type CanonicalWeights } from '../../src/model';
import { quantiseModel, quantisedModelBytes } from '../../src/runtime/quantised-weights';
import { shownForm } from '../../src/runtime/completion';

/** Values of every weight array (a tied head counted once). */
function fp32Values(w: CanonicalWeights): number {
  let n = w.embed.length + (w.lmHead === w.embed ? 0 : w.lmHead.length) + (w.positions?.length ?? 0) + w.finalNorm.weight.length + (w.finalNorm.bias?.length ?? 0);
  for (const l of w.layers) {
    for (const p of [l.attnNorm, l.mlpNorm, l.q, l.k, l.v, l.o, l.gate, l.up, l.down]) if (p) n += p.weight.length + (p.bias?.length ?? 0);
  }
  return n;
}

const MODEL = join(ROOT, 'test', 'fixtures', 'models', 'llama');
const PROMPT = 'def f(n):\n    return';
const DESIRED = ' n + 1';
const load = { modelDir: MODEL, provider: 'cpu', threads: 1 } as const;
const complete: CompleteParams = { prompt: PROMPT, maxTokens: 6, stop: [], stopRule: 'none', temperature: 0 };
const repairParams = (id: string, prompt = PROMPT, desired = DESIRED): RepairParams => ({
  method: 'star', mode: 'batch', select: 'global', epochs: 20, eta: 1, preserveRows: 0,
  failures: [{ id, prompt, desired }], heldout: [], regression: [],
});

const dirs: string[] = [];
const clients: WorkerClient[] = [];
after(async () => {
  for (const c of clients) await c.dispose();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'star-worker-'));
  dirs.push(d);
  return d;
}

async function client(options: Partial<ConstructorParameters<typeof WorkerClient>[0]> = {}): Promise<WorkerClient> {
  const c = new WorkerClient({ workerPath: await buildWorker(), initialBackoffMs: 20, ...options });
  clients.push(c);
  return c;
}

test('load, complete, predict, repair with progress, setPatches change what completions say', async () => {
  const c = await client({ onStart: async (call) => void (await call('load', load)) });
  await c.start();
  assert.equal(c.status.status, 'running');
  const before = await c.request('complete', complete);
  assert.equal(before.tokens, 6);
  const predicted = await c.request('predict', { prompt: PROMPT, desired: DESIRED });
  assert.equal(predicted.allCorrect, false);
  // The target the editor must show: the healed end of the prompt spelled back, the desired text, the line end.
  assert.ok(predicted.desiredTokens.join('').includes(DESIRED), predicted.desiredTokens.join(''));
  const progress: RepairProgressEvent[] = [];
  const r = await c.request('repair', repairParams('f1'), { onProgress: (p) => progress.push(p) });
  assert.ok(progress.some((p) => p.phase === 'step'), 'progress events arrive before the result');
  assert.deepEqual(r.fixed, ['f1']);
  assert.equal(r.scoresBefore.effectiveness, 0);
  assert.equal(r.patch.scores.effectiveness, 1);
  assert.ok(r.patch.stats.neurons > 0 && r.patch.stats.peakRssMb > 0);
  assert.equal(r.positions.length, predicted.desiredTokens.length);
  assert.ok(r.positions.every((p) => p.pAfter > p.pBefore));
  const patch = patchFromJson(r.patch, 32);
  // The repair ran on the repair runtime: completions are unchanged until the patch is committed.
  assert.equal((await c.request('complete', complete)).text, before.text);
  assert.equal((await c.request('setPatches', { patches: [patchToJson(patch)] })).applied[0], patch.id);
  assert.equal((await c.request('predict', { prompt: PROMPT, desired: DESIRED })).allCorrect, true);
  assert.notEqual((await c.request('complete', complete)).text, before.text);
  const l = patch.layers[0];
  const nd = await c.request('neuronDetails', { layer: l.layer, neuron: l.rows[0], delta: Array.from(l.deltas.subarray(0, 32)) });
  assert.equal(nd.up.length, 5);
  assert.ok(nd.up[0].logit >= nd.down[0].logit && nd.deltaNorm > 0);
  const ev = await c.request('evaluate', { items: [{ patch: r.patch, failures: [{ id: 'f1', prompt: PROMPT, desired: DESIRED }], heldout: [] }], regression: [] });
  assert.equal(ev.results[0].scores.effectiveness, 1);
  // Removing the patch restores the original completions.
  await c.request('setPatches', { patches: [] });
  assert.equal((await c.request('complete', complete)).text, before.text);
  await c.dispose();
});

test('the load reply says which weights the model runs on: fp32 by default, int8 when asked, and their bytes', async () => {
  const c = await client();
  const fp32 = await c.request('load', load);
  assert.equal(fp32.weights, 'fp32');
  assert.ok(fp32.weightBytes !== undefined && fp32.weightBytes > 0, `weightBytes ${fp32.weightBytes}`);
  const int8 = await c.request('load', { ...load, weights: 'int8' });
  assert.equal(int8.weights, 'int8');
  // The bytes the runtime holds: the quantised matrices and the float vectors, counted here from a
  // quantisation of our own (on this 32-wide fixture int8's blocks of 128 are mostly padding, so
  // int8 is not smaller than fp32 here as it is on a real model).
  const folder = loadModelFolder(MODEL);
  assert.equal(int8.weightBytes, quantisedModelBytes(quantiseModel(folder.config, folder.weights, 'int8')));
  assert.equal(fp32.weightBytes, 4 * fp32Values(folder.weights));
  await c.dispose();
});

for (const weights of ['int8', 'int4'] as const) {
  test(`the loop closes on ${weights} weights: a repair made on them, once committed, changes what the editor shows to the desired text`, async () => {
    // int8 is what `auto` runs a real model in on the CPU: the repair's probe works on the dequantised
    // weights, the editor's decode on MatMulNBits with int8 activations; "fixed" is judged on the latter.
    const c = await client({ onStart: async (call) => void (await call('load', { ...load, weights })) });
    await c.start();
    const before = await c.request('predict', { prompt: PROMPT, desired: DESIRED });
    assert.notEqual(before.prediction, shownForm(DESIRED));
    const r = await c.request('repair', repairParams(weights));
    assert.deepEqual(r.fixed, [weights]);
    assert.equal((await c.request('predict', { prompt: PROMPT, desired: DESIRED })).prediction, before.prediction, 'not shown before the patch is committed');
    await c.request('setPatches', { patches: [r.patch] });
    assert.equal((await c.request('predict', { prompt: PROMPT, desired: DESIRED })).prediction, shownForm(DESIRED));
    await c.request('setPatches', { patches: [] });
    assert.equal((await c.request('predict', { prompt: PROMPT, desired: DESIRED })).prediction, before.prediction);
    await c.dispose();
  });
}

test('completions keep being served while a repair runs, and the worker refuses bad input with typed errors', async () => {
  const c = await client({ onStart: async (call) => void (await call('load', load)) });
  const base = await c.request('complete', complete);
  let repairDone = false;
  const repair = c.request('repair', repairParams('f2')).then((r) => {
    repairDone = true;
    return r;
  });
  const during = await c.request('complete', complete);
  assert.equal(repairDone, false, 'the completion came back before the repair finished');
  assert.equal(during.text, base.text, 'the in-progress patch does not leak into completions');
  await repair;
  await assert.rejects(c.request('predict', { prompt: PROMPT, desired: '' } as never), (e: unknown) => e instanceof WorkerError && /desired: expected a non-empty string/.test(e.message));
  await assert.rejects(c.request('load', { ...load, modelDir: join(ROOT, 'no-such-model') }), (e: unknown) => e instanceof WorkerError && e.remoteName === 'ModelError');
  await assert.rejects(c.request('setPatches', { patches: [{ ...(await c.request('repair', repairParams('f3'))).patch, modelFingerprint: 'other' }] }),
    (e: unknown) => e instanceof WorkerError && e.code === 'PatchMismatchError' && /made for model other/.test(e.message));
  await c.dispose();
});

test('a cancelled repair fails with "cancelled" and leaves the worker usable', async () => {
  const c = await client({ onStart: async (call) => void (await call('load', load)) });
  await c.start();
  const ac = new AbortController();
  const p = c.request('repair', repairParams('f4'), { signal: ac.signal, onProgress: () => ac.abort() });
  await assert.rejects(p, (e: unknown) => e instanceof WorkerError && e.code === 'cancelled');
  // A token shaped like vscode.CancellationToken works too.
  let fire: () => unknown = () => {};
  const token = { isCancellationRequested: false, onCancellationRequested: (l: () => unknown) => ((fire = l), { dispose: () => {} }) };
  const q = c.request('repair', repairParams('f5'), { token, onProgress: () => fire() });
  await assert.rejects(q, (e: unknown) => e instanceof WorkerError && e.code === 'cancelled');
  assert.equal((await c.request('complete', complete)).tokens, 6);
  await c.dispose();
});

test('SIGKILL mid-repair: restart with backoff, load and patches re-sent from the stores, pending request fails clearly, nothing lost', async () => {
  const dir = tempDir();
  const fingerprintFromLoad: string[] = [];
  let failures: FailureStore | null = null;
  let patches: PatchStore | null = null;
  const starts: number[] = [];
  const c = await client({
    onStart: async (call) => {
      starts.push(Date.now());
      const info = await call('load', load);
      fingerprintFromLoad.push(info.fingerprint);
      failures ??= FailureStore.open(dir, info.fingerprint);
      patches ??= PatchStore.open(dir, info.fingerprint, { hiddenSize: info.hidden });
      await call('setPatches', { patches: patches.active().map(patchToJson) });
    },
  });
  const crashes: WorkerExit[] = [];
  c.onCrash((exit) => crashes.push(exit));
  await c.start();
  // The host's state: one captured failure, one committed patch from an earlier repair.
  const f1 = failures!.add({ prompt: PROMPT, desired: DESIRED, languageId: 'python', source: 'rejected' });
  const first = await c.request('repair', repairParams(f1.id));
  patches!.add(patchFromJson(first.patch, 32));
  await c.request('setPatches', { patches: patches!.active().map(patchToJson) });
  const patched = await c.request('complete', complete);
  const f2 = failures!.add({ prompt: 'def g(x):\n    return', desired: ' x', languageId: 'python', source: 'rejected' });

  const pid = c.pid!;
  const doomed = c.request('repair', repairParams(f2.id, f2.prompt, f2.desired), {
    onProgress: (p) => {
      if (p.phase === 'locate') process.kill(pid, 'SIGKILL');
    },
  });
  await assert.rejects(doomed, (e: unknown) => {
    assert.ok(e instanceof WorkerError);
    assert.equal(e.code, 'worker-crashed');
    assert.match(e.message, /killed by SIGKILL, while running repair/);
    assert.match(e.message, /failures and patches are safe/);
    return true;
  });
  assert.equal(crashes.length, 1);
  assert.equal(crashes[0].signal, 'SIGKILL');
  assert.deepEqual(crashes[0].during, ['repair']);

  // A request made now waits for the restart and runs after load + setPatches were re-sent.
  const again = await c.request('complete', complete);
  assert.equal(again.text, patched.text, 'the restarted worker serves completions with the committed patch');
  assert.notEqual(c.pid, pid);
  assert.equal(starts.length, 2);
  assert.equal(c.status.status, 'running');
  // Nothing in the stores was lost: re-open them from disk.
  const fp = fingerprintFromLoad[0];
  assert.deepEqual(FailureStore.open(dir, fp).list().map((f) => f.id), [f1.id, f2.id]);
  const reopened = PatchStore.open(dir, fp);
  assert.deepEqual(reopened.active().map((p) => p.id), [first.patch.id]);
  // And the interrupted repair can simply be run again.
  const retried = await c.request('repair', repairParams(f2.id, f2.prompt, f2.desired));
  assert.deepEqual([...retried.fixed, ...retried.unfixed], [f2.id]);
  assert.ok(retried.patch.stats.neurons > 0);
  await c.dispose();
  assert.equal(c.status.status, 'stopped');
  await assert.rejects(c.request('complete', complete), (e: unknown) => e instanceof WorkerError && e.code === 'worker-stopped');
});

test('repeated crashes: backoff grows, then the client gives up until restart()', async () => {
  const c = await client({ maxCrashes: 3, initialBackoffMs: 30, onStart: async (call) => void (await call('load', load)) });
  const delays: (number | null)[] = [];
  c.onCrash((_, s) => delays.push(s.restartInMs));
  for (let i = 0; i < 3; i++) {
    await c.start();
    const pid = c.pid!;
    process.kill(pid, 'SIGKILL');
    await new Promise<void>((resolve) => {
      const off = c.onStateChange((s) => {
        if (s.status === 'restarting' || s.status === 'failed') {
          off();
          resolve();
        }
      });
    });
  }
  assert.deepEqual(delays, [30, 60, null]);
  assert.equal(c.status.status, 'failed');
  await assert.rejects(c.request('complete', complete), (e: unknown) => e instanceof WorkerError && e.code === 'worker-failed' && /Restart model worker/.test(e.message));
  await c.restart();
  assert.equal(c.status.status, 'running');
  assert.equal((await c.request('complete', complete)).tokens, 6);
  await c.dispose();
});
