// `--weights` on the command line (issue 16): `info --json` reports the format in use and the bytes
// of the weights the runtime holds (checked against the quantised model built here), the
// fingerprint does not depend on the format (a patch made on fp32 applies on int8), `auto` is int8
// on the CPU, and a bad value is a usage error; repair and eval run on int8/int4 weights (the model
// loaded without an fp32 copy, the engine reading Ŵ) and their patches apply across formats. Runs
// src/cli.ts in a child process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canonicalWeights, isIgnoredTensor, loadConfig, readWeightFolder } from '../../src/model';
import { quantiseModel, quantisedModelBytes } from '../../src/runtime/quantised-weights';

const root = join(__dirname, '..', '..');
const qwen = join(root, 'test', 'fixtures', 'models', 'qwen2');

function run(args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'src', 'cli.ts'), ...args], { encoding: 'utf8', cwd: root });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function expectedBytes(format: 'int8' | 'int4'): number {
  const config = loadConfig(qwen);
  const folder = readWeightFolder(qwen, { skip: (n) => isIgnoredTensor(config, n) });
  return quantisedModelBytes(quantiseModel(config, canonicalWeights(config, folder.tensors), format));
}

test('info --json reports the weight format and bytes; the fingerprint is the same in every format', () => {
  const infos = new Map<string, { weights: string; weightBytes: number; fingerprint: string; params: number }>();
  for (const w of ['fp32', 'int8', 'int4', 'auto']) {
    const r = run(['info', qwen, '--json', '--weights', w]);
    assert.equal(r.code, 0, r.stderr);
    infos.set(w, JSON.parse(r.stdout));
  }
  const fp32 = infos.get('fp32')!;
  assert.equal(fp32.weights, 'fp32');
  assert.equal(fp32.weightBytes, fp32.params * 4, 'fp32: four bytes per parameter (tied head counted once)');
  assert.equal(infos.get('int8')!.weights, 'int8');
  assert.equal(infos.get('int8')!.weightBytes, expectedBytes('int8'));
  assert.equal(infos.get('int4')!.weightBytes, expectedBytes('int4'));
  assert.equal(infos.get('auto')!.weights, 'fp32', 'auto is fp32 until repairs on int8 weights are as fast and small as on fp32 (runtime/weight-formats.ts)');
  for (const [w, info] of infos) assert.equal(info.fingerprint, fp32.fingerprint, `fingerprint with --weights ${w}`);
});

test('complete runs on int4 weights; a bad --weights is a usage error', () => {
  const ok = run(['complete', qwen, '--prompt', 'def f', '--max-tokens', '3', '--weights', 'int4', '--json']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(typeof JSON.parse(ok.stdout).completion, 'string');
  const bad = run(['info', qwen, '--weights', 'int3']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--weights must be one of auto, fp32, int8, int4/);
});

test('repair and eval run on int8 and int4 weights; a patch made on int4 evaluates on fp32', () => {
  const llama = join(root, 'test', 'fixtures', 'models', 'llama');
  const dir = mkdtempSync(join(tmpdir(), 'star-cli-weights-'));
  const failures = join(dir, 'f.jsonl');
  writeFileSync(failures, '{"prompt":"def f(n):\\n    return","desired":" n + 1"}\n');
  for (const w of ['int8', 'int4']) {
    const patch = join(dir, `${w}.json`);
    const r = run(['repair', llama, '--failures', failures, '--eta', '1', '--out', patch, '--json', '--weights', w]);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout);
    assert.equal(s.failures, 1, w);
    assert.ok(s.neurons > 0, `${w}: the repair changed neurons`);
    const e = run(['eval', llama, '--patch', patch, '--failures', failures, '--json', '--weights', w]);
    assert.equal(e.code, 0, e.stderr);
    assert.equal(JSON.parse(e.stdout).effectiveness.total, 1, w);
  }
  const cross = run(['eval', llama, '--patch', join(dir, 'int4.json'), '--failures', failures, '--json', '--weights', 'fp32']);
  assert.equal(cross.code, 0, cross.stderr);
});
