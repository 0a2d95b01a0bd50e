// Provider vetting and the provider memory (issue 14, part 2): a GPU provider is used only after
// a check in a separate process passed; a check child that crashes, hangs or says nothing fails
// the provider with the reason, and the verdict is kept per machine + model + provider +
// onnxruntime version so the check runs once. Scripted check children (real processes, no GPU);
// the real check child on WebGPU is covered by worker-provider-crash.test.ts. The memory file is
// written atomically under the store lock, and a damaged one is moved aside.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ProviderMemory, PROVIDER_MEMORY_FILE } from '../../src/worker/provider-memory';
import { CHECK_ROLE, onnxruntimeVersion, ProviderVetting, ROLE_ENV, type VetRequest } from '../../src/worker/provider-vetting';
import { CHECK_VERSION, compareArrays } from '../../src/runtime/provider-check';
import { crashReason } from '../../src/worker/provider-guard';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'star-vetting-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A check child: `body` runs on the check request `m`; every start appends a line to `<name>.starts`. */
function child(name: string, body: string): { file: string; starts: () => number } {
  const file = path.join(dir, `${name}.js`);
  const starts = path.join(dir, `${name}.starts`);
  fs.writeFileSync(file, `require('fs').appendFileSync(${JSON.stringify(starts)}, process.env.${ROLE_ENV} + '\\n');
process.once('message', (m) => { ${body} });\n`);
  return { file, starts: () => (fs.existsSync(starts) ? fs.readFileSync(starts, 'utf8').trim().split('\n').length : 0) };
}

const request = (memoryFile: string | null, extra: Partial<VetRequest> = {}): VetRequest => ({
  modelDir: '/models/m', fingerprint: 'fp1', model: 'm', provider: 'webgpu', threads: 1, avoid: [], memoryFile, ...extra,
});

test('a check child that crashes (SIGSEGV) fails the provider with the reason; the verdict is kept so the check runs once', async () => {
  const c = child('segv', `process.stderr.write('about to run on the GPU\\n'); process.kill(process.pid, 'SIGSEGV');`);
  const memoryFile = path.join(dir, 'segv', PROVIDER_MEMORY_FILE);
  const vetting = new ProviderVetting({ childPath: c.file });
  const reason = await vetting.vet(request(memoryFile));
  assert.match(reason!, /WebGPU did not pass the check in a separate process.*crashed \(killed by SIGSEGV\) while running the model on WebGPU; its last output: about to run on the GPU; the CPU is used/);
  assert.equal(c.starts(), 1);
  // The same worker asks again (the repair runtime): no second child.
  assert.equal(await vetting.vet(request(memoryFile)), reason);
  // Another worker (a new ProviderVetting) reads the kept verdict: still no second child.
  const later = await new ProviderVetting({ childPath: c.file }).vet(request(memoryFile));
  assert.match(later!, /crashed \(killed by SIGSEGV\).*checked on \d{4}-\d\d-\d\d/);
  assert.equal(c.starts(), 1, 'the check ran once');
  const kept = new ProviderMemory(memoryFile).verdict({ fingerprint: 'fp1', provider: 'webgpu', onnxruntime: onnxruntimeVersion(), check: CHECK_VERSION });
  assert.equal(kept?.ok, false);
  // Another model, or another onnxruntime version, is checked again.
  await new ProviderVetting({ childPath: c.file }).vet(request(memoryFile, { fingerprint: 'fp2' }));
  assert.equal(c.starts(), 2);
  assert.equal(new ProviderMemory(memoryFile).verdict({ fingerprint: 'fp1', provider: 'webgpu', onnxruntime: '0.0.1', check: CHECK_VERSION }), undefined);
});

test('the child is the worker bundle in its check role; a passing verdict lets the provider be used, and is kept', async () => {
  const c = child('pass', `process.send({ type: 'verdict', ok: m.type === 'check' && m.provider === 'webgpu' && m.fingerprint === 'fp1', reason: '', worst: { logits: 1e-6, dh: null }, ms: 5, lasting: true }, () => process.exit(0));`);
  const memoryFile = path.join(dir, 'pass', PROVIDER_MEMORY_FILE);
  assert.equal(await new ProviderVetting({ childPath: c.file }).vet(request(memoryFile)), null);
  assert.equal(fs.readFileSync(c.file.replace(/\.js$/, '.starts'), 'utf8').trim(), CHECK_ROLE);
  const kept = new ProviderMemory(memoryFile).verdict({ fingerprint: 'fp1', provider: 'webgpu', onnxruntime: onnxruntimeVersion(), check: CHECK_VERSION });
  assert.deepEqual([kept?.ok, kept?.worst.logits, kept?.worst.dh], [true, 1e-6, Infinity]);
  assert.equal(await new ProviderVetting({ childPath: c.file }).vet(request(memoryFile)), null);
  assert.equal(c.starts(), 1);
  // The CPU is never checked.
  assert.equal(await new ProviderVetting({ childPath: c.file }).vet(request(memoryFile, { provider: 'cpu' })), null);
  assert.equal(c.starts(), 1);
});

test('a check that hangs is stopped at the timeout; one that crashes after answering, or answers garbage, fails too', async () => {
  const hang = child('hang', `setInterval(() => {}, 1000);`);
  const t0 = Date.now();
  const r1 = await new ProviderVetting({ childPath: hang.file, timeoutMs: 300 }).vet(request(null));
  assert.match(r1!, /did not finish within 0.3 s/);
  assert.ok(Date.now() - t0 < 5000);
  const late = child('late', `process.send({ type: 'verdict', ok: true, reason: '', worst: {}, ms: 1, lasting: true }, () => process.abort());`);
  assert.match((await new ProviderVetting({ childPath: late.file }).vet(request(null)))!, /crashed \(killed by SIGABRT\) after it had answered/);
  const garbage = child('garbage', `process.send({ type: 'verdict', ok: 'yes' }, () => process.exit(0));`);
  assert.match((await new ProviderVetting({ childPath: garbage.file }).vet(request(null)))!, /gave no verdict \(unreadable answer: verdict\.ok: expected a boolean/);
});

test('a provider that crashed the worker for this model is passed over without a check; other models are not affected', async () => {
  const c = child('never', `process.send({ type: 'verdict', ok: true, reason: '', worst: {}, ms: 1, lasting: true }, () => process.exit(0));`);
  const vetting = new ProviderVetting({ childPath: c.file });
  const avoid = [{ provider: 'webgpu', fingerprint: 'fp1', reason: crashReason('webgpu', 'killed by SIGSEGV', '2026-12-02T00:00:00Z') }];
  assert.match((await vetting.vet(request(null, { avoid })))!, /WebGPU crashed the model worker \(killed by SIGSEGV\) on 2026-12-02.*Try WebGPU Again/);
  assert.equal(c.starts(), 0);
  assert.equal(await vetting.vet(request(null, { avoid, fingerprint: 'other' })), null);
  assert.equal(c.starts(), 1);
});

test('provider memory: crashes per machine and model, forget() clears crash and verdicts, a damaged file is moved aside', () => {
  const file = path.join(dir, 'memory', PROVIDER_MEMORY_FILE);
  const logs: string[] = [];
  const here = new ProviderMemory(file, (l) => logs.push(l), 'host-a linux-x64');
  const there = new ProviderMemory(file, () => {}, 'host-b linux-x64');
  here.recordCrash({ provider: 'webgpu', fingerprint: 'fp1', how: 'killed by SIGSEGV', model: 'm' });
  here.recordCrash({ provider: 'webgpu', fingerprint: 'fp1', how: 'killed by SIGKILL', model: 'm' });
  there.recordCrash({ provider: 'cuda', fingerprint: 'fp1', how: 'exit code 134', model: 'm' });
  here.recordVerdict({ fingerprint: 'fp1', provider: 'webgpu', onnxruntime: '1.30.0', check: 1, ok: true, reason: '', worst: {} });
  assert.deepEqual(here.crashes().map((c) => c.how), ['killed by SIGKILL'], 'one entry per machine, model and provider; the latest');
  assert.deepEqual(there.crashes().map((c) => c.provider), ['cuda']);
  here.forget('fp1', 'webgpu');
  assert.deepEqual(here.crashes(), []);
  assert.equal(here.verdict({ fingerprint: 'fp1', provider: 'webgpu', onnxruntime: '1.30.0', check: 1 }), undefined);
  assert.equal(there.crashes().length, 1, 'another machine keeps its own');
  // No temp or lock file left behind by the atomic writer.
  assert.deepEqual(fs.readdirSync(path.dirname(file)), [PROVIDER_MEMORY_FILE]);
  fs.writeFileSync(file, '{"version": 1, "verdicts": [], "crashes": [{"provider": 5}]');
  assert.deepEqual(here.crashes(), []);
  assert.ok(logs.some((l) => /could not be read.*moved aside.*provider checks run again/.test(l)), logs.join('\n'));
  assert.ok(fs.readdirSync(path.dirname(file)).some((n) => n.startsWith(`${PROVIDER_MEMORY_FILE}.corrupt-`)));
  here.recordCrash({ provider: 'webgpu', fingerprint: 'fp9', how: 'killed by SIGSEGV', model: 'm' });
  assert.equal(here.crashes().length, 1, 'the memory starts again after damage');
});

test('compareArrays: a NaN on the GPU is an infinite error, never a pass', () => {
  assert.deepEqual(compareArrays([1, 2], [1, 2]), { abs: 0, scale: 2 });
  assert.equal(compareArrays([NaN, 2], [1, 2]).abs, Infinity);
  assert.equal(compareArrays([1], [1, 2]).abs, Infinity);
});
