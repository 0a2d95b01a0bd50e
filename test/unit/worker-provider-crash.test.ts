// A worker that dies on a GPU execution provider (issue 14): the provider is remembered for the
// model on this machine (provider-memory.json), the worker restarts at once on the CPU, and the
// user is told so with a way back. Real processes throughout:
//   - a scripted worker (no model, no GPU) that says it runs on WebGPU, killed with SIGSEGV: the
//     restart is immediate and the next worker is told to avoid WebGPU; a second crash on the same
//     provider gets the usual backoff; retry() forgets the crash and restarts;
//   - the real worker bundle on the llama fixture with executionProvider `webgpu` on a WebGPU
//     device (Mesa's lavapipe in CI, STAR_REQUIRE_WEBGPU=1): it passes the check in a child
//     process, loads on WebGPU, is killed (SIGSEGV right after load; SIGKILL during the load), and
//     within one restart completions come from the CPU, the load reports why, and the message says so.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { WorkerClient, type WorkerClientOptions, type WorkerExit } from '../../src/worker/client';
import type { CompleteParams, ModelInfo } from '../../src/worker/protocol';
import { ProviderGuard, type ProviderCrashNotice } from '../../src/worker/provider-guard';
import { ProviderMemory, PROVIDER_MEMORY_FILE } from '../../src/worker/provider-memory';
import { loadModelFolder } from '../../src/model';
import { ModelRuntime } from '../../src/runtime/runtime';
import { buildWorker, ROOT } from './worker-build';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'star-provider-crash-'));
const clients: WorkerClient[] = [];
after(async () => {
  for (const c of clients) await c.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

const complete: CompleteParams = { prompt: 'def f(n):\n    return', maxTokens: 4, stop: [], stopRule: 'none', temperature: 0 };

function untilStatus(c: WorkerClient, status: string): Promise<void> {
  if (c.status.status === status) return Promise.resolve();
  return new Promise((resolve) => {
    const off = c.onStateChange((s) => {
      if (s.status === status) {
        off();
        resolve();
      }
    });
  });
}

/** The guard wired to a client as ModelService wires it, with the load sent on every start. */
function guarded(workerPath: string, memoryFile: string, load: (guard: ProviderGuard) => Parameters<Parameters<NonNullable<WorkerClientOptions['onStart']>>[0]>[1], options: Partial<WorkerClientOptions> = {}) {
  const loads: ModelInfo[] = [];
  const notices: ProviderCrashNotice[] = [];
  const exits: { exit: WorkerExit; restartInMs: number | null }[] = [];
  let guard: ProviderGuard | null = null;
  let spawns = 0;
  const client = new WorkerClient({
    workerPath,
    initialBackoffMs: 400,
    ...options,
    onStart: async (call) => {
      spawns++;
      loads.push(await call('load', load(guard!) as never));
    },
  });
  clients.push(client);
  client.onCrash((exit, state) => exits.push({ exit, restartInMs: state.restartInMs }));
  guard = new ProviderGuard({ client, memoryFile, notify: (n) => notices.push(n), modelName: () => 'the test model' });
  return { client, guard, loads, notices, exits, spawns: () => spawns };
}

// --- scripted worker: the client and the guard, everywhere (no GPU needed) ---------------------

const SCRIPTED = `const send = (m) => process.send(m);
let provider = 'cpu';
send({ type: 'ready', pid: process.pid, protocol: 1 });
process.on('message', (m) => {
  if (m.type !== 'request') return;
  if (m.method === 'load') {
    const avoided = (m.params.guard?.avoid ?? []).find((a) => a.provider === 'webgpu' && a.fingerprint === 'fp1');
    provider = avoided ? 'cpu' : 'webgpu';
    send({ type: 'provider', provider, fingerprint: 'fp1' });
    send({ type: 'response', id: m.id, ok: true, result: { name: 'scripted', dir: '/x', architecture: 'llama', layers: 1, neurons: 4, hidden: 4, vocab: 8, context: 16,
      params: 1, dtype: 'float32', executionProvider: provider, fallbacks: avoided ? [{ provider: 'webgpu', reason: avoided.reason }] : [], fingerprint: 'fp1' } });
  } else if (m.method === 'complete') {
    send({ type: 'response', id: m.id, ok: true, result: { text: 'from ' + provider, tokens: 1, promptTokens: 1, stoppedBy: 'max-tokens', ms: 1 } });
  }
});`;

test('a worker killed by SIGSEGV on WebGPU restarts at once on the CPU, remembered per machine and model; retry() tries WebGPU again', async () => {
  const script = path.join(dir, 'scripted-worker.js');
  fs.writeFileSync(script, SCRIPTED);
  const memoryFile = path.join(dir, 'scripted', PROVIDER_MEMORY_FILE);
  const w = guarded(script, memoryFile, (g) => ({ modelDir: '', provider: 'auto', threads: 0, guard: g.loadParams() }));
  await w.client.start();
  assert.equal((await w.client.request('complete', complete)).text, 'from webgpu');
  assert.deepEqual(w.client.workerProvider, { provider: 'webgpu', fingerprint: 'fp1' });

  const pid = w.client.pid!;
  process.kill(pid, 'SIGSEGV');
  await untilStatus(w.client, 'restarting');
  // The next request waits for the restart: one restart, and it is served on the CPU.
  const served = await w.client.request('complete', complete);
  assert.equal(served.text, 'from cpu');
  assert.notEqual(w.client.pid, pid);
  assert.equal(w.spawns(), 2, 'within one restart');
  const { exit, restartInMs } = w.exits[0];
  assert.equal(exit.signal, 'SIGSEGV');
  assert.deepEqual(exit.provider, { provider: 'webgpu', fingerprint: 'fp1' });
  assert.equal(restartInMs, 0, 'restarted at once, no backoff');
  // What the user is told, and what the status bar and panel show (the load's provider and fallbacks).
  assert.equal(w.notices.length, 1);
  assert.match(w.notices[0].message, /crashed on WebGPU \(killed by SIGSEGV\) while running the test model/);
  assert.match(w.notices[0].message, /restarted on the CPU at once: completions now come from the CPU/);
  assert.equal(w.notices[0].retryLabel, 'Try WebGPU Again');
  assert.equal(w.loads[1].executionProvider, 'cpu');
  assert.match(w.loads[1].fallbacks[0].reason, /WebGPU crashed the model worker \(killed by SIGSEGV\).*Try WebGPU Again/);
  // Remembered on disk for this machine and model: a new window (a new guard) avoids it too.
  assert.deepEqual(new ProviderMemory(memoryFile).crashes().map((c) => [c.provider, c.fingerprint, c.how]), [['webgpu', 'fp1', 'killed by SIGSEGV']]);
  assert.deepEqual(new ProviderMemory(memoryFile, () => {}, 'another machine').crashes(), []);
  assert.deepEqual(w.guard.crashedFor('fp1'), ['webgpu'], 'the status bar offers the way back too');
  assert.deepEqual(w.guard.crashedFor('fp2'), []);

  // The way back: the crash is forgotten and the worker restarts on WebGPU.
  await w.guard.retry('webgpu', 'fp1');
  assert.equal((await w.client.request('complete', complete)).text, 'from webgpu');
  assert.deepEqual(new ProviderMemory(memoryFile).crashes(), []);
  assert.deepEqual(w.guard.crashedFor('fp1'), []);

  // Were the memory not honoured, the same provider crashing again gets the usual backoff (no tight loop).
  const again = guarded(script, path.join(dir, 'ignored', PROVIDER_MEMORY_FILE), () => ({ modelDir: '', provider: 'auto', threads: 0 }), { initialBackoffMs: 300 });
  await again.client.start();
  process.kill(again.client.pid!, 'SIGSEGV');
  await untilStatus(again.client, 'restarting');
  await untilStatus(again.client, 'running');
  process.kill(again.client.pid!, 'SIGSEGV');
  await untilStatus(again.client, 'restarting');
  assert.deepEqual(again.exits.map((e) => e.restartInMs), [0, 600]);
});

// --- the real worker on a WebGPU device ----------------------------------------------------------

const LLAMA = path.join(ROOT, 'test', 'fixtures', 'models', 'llama');

/** Why there is no WebGPU device here, or null when there is one. */
async function noWebGpu(): Promise<string | null> {
  const folder = loadModelFolder(LLAMA);
  const r = new ModelRuntime(folder.config, folder.weights, { provider: 'webgpu' });
  try {
    await r.warm(['decode']);
    return r.provider === 'webgpu' ? null : r.fallbacks.map((f) => `${f.provider}: ${f.reason}`).join('; ');
  } catch (e) {
    return (e as Error).message;
  } finally {
    await r.release().catch(() => undefined);
  }
}

async function needWebGpu(t: { skip(message: string): void }): Promise<boolean> {
  const why = await noWebGpu();
  if (why === null) return true;
  if (process.env.STAR_REQUIRE_WEBGPU === '1') assert.fail(`STAR_REQUIRE_WEBGPU=1 but no WebGPU device: ${why}`);
  t.skip(`no WebGPU device here: ${why}`);
  return false;
}

test('the real worker on WebGPU: checked in a child first, then SIGSEGV right after load → within one restart completions come from the CPU and the message says so', async (t) => {
  if (!(await needWebGpu(t))) return;
  const memoryFile = path.join(dir, 'real', PROVIDER_MEMORY_FILE);
  const logs: string[] = [];
  const w = guarded(await buildWorker(), memoryFile, (g) => ({ modelDir: LLAMA, provider: 'webgpu', threads: 1, guard: g.loadParams() }), { log: (l) => logs.push(l) });
  await w.client.start();
  assert.equal(w.loads[0].executionProvider, 'webgpu', `loaded on WebGPU; log:\n${logs.join('\n')}`);
  assert.ok(logs.some((l) => /checking WebGPU .* in a separate process/.test(l)), 'the provider was checked in a separate process');
  const fp = w.loads[0].fingerprint;
  const verdict = new ProviderMemory(memoryFile).verdict({ fingerprint: fp, provider: 'webgpu', onnxruntime: '1.30.0', check: 1 });
  assert.ok(verdict?.ok, 'the verdict is kept per machine, model, provider and onnxruntime version');
  assert.ok(verdict!.worst.logits < 1e-4 && verdict!.worst.dh < 1e-3, JSON.stringify(verdict!.worst));
  const onGpu = await w.client.request('complete', complete);
  assert.deepEqual(w.client.workerProvider, { provider: 'webgpu', fingerprint: fp });

  // The way a provider crash ends a worker.
  const pid = w.client.pid!;
  process.kill(pid, 'SIGSEGV');
  await untilStatus(w.client, 'restarting');
  const onCpu = await w.client.request('complete', complete);
  assert.equal(w.spawns(), 2, 'within one restart');
  assert.equal(w.loads[1].executionProvider, 'cpu', 'the restarted worker runs on the CPU');
  assert.deepEqual(w.client.workerProvider, { provider: 'cpu', fingerprint: fp });
  assert.equal(onCpu.text, onGpu.text, 'the CPU completes as WebGPU did');
  assert.match(w.loads[1].fallbacks.find((f) => f.provider === 'webgpu')!.reason, /WebGPU crashed the model worker \(killed by SIGSEGV\)/);
  assert.equal(w.notices.length, 1);
  assert.match(w.notices[0].message, /crashed on WebGPU \(killed by SIGSEGV\).*completions now come from the CPU/);
  assert.equal(w.exits[0].restartInMs, 0);

  // Try WebGPU again: the check runs again (the verdict was forgotten) and the worker is back on WebGPU.
  logs.length = 0;
  await w.guard.retry('webgpu', fp);
  assert.equal(w.loads[2].executionProvider, 'webgpu');
  assert.ok(logs.some((l) => /checking WebGPU/.test(l)), 'checked again');
  await w.client.dispose();
});

test('the real worker killed (SIGKILL) while loading on WebGPU: one restart, completions on the CPU', async (t) => {
  if (!(await needWebGpu(t))) return;
  const memoryFile = path.join(dir, 'real-mid-load', PROVIDER_MEMORY_FILE);
  const w = guarded(await buildWorker(), memoryFile, (g) => ({ modelDir: LLAMA, provider: 'webgpu', threads: 1, guard: g.loadParams() }));
  // Kill it the moment it says it is about to run on WebGPU (after the check, before its first session).
  const watch = setInterval(() => {
    if (w.client.workerProvider?.provider === 'webgpu' && w.loads.length === 0) {
      clearInterval(watch);
      process.kill(w.client.pid!, 'SIGKILL');
    }
  }, 1);
  const served = await w.client.request('complete', complete);
  clearInterval(watch);
  assert.ok(served.tokens > 0);
  assert.equal(w.exits.length, 1);
  assert.equal(w.exits[0].exit.signal, 'SIGKILL');
  assert.deepEqual(w.exits[0].exit.during, ['load']);
  assert.equal(w.loads.length, 1, 'the first load never answered; the second did');
  assert.equal(w.loads[0].executionProvider, 'cpu');
  assert.match(w.notices[0].message, /crashed on WebGPU \(killed by SIGKILL\).*completions now come from the CPU/);
  await w.client.dispose();
});
