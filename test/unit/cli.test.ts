// The `star-repair` CLI as a user runs it: the built dist/cli.js in a child process, JSON outputs,
// and bad input answered with a message and a non-zero exit code — never a crash.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, cpSync, truncateSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = join(__dirname, '..', '..');
const cli = join(root, 'dist', 'cli.js');
const llama = join(root, 'test', 'fixtures', 'models', 'llama');
const qwen = join(root, 'test', 'fixtures', 'models', 'qwen2');

function run(args: string[]) {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

before(() => {
  execFileSync(process.execPath, [join(root, 'esbuild.mjs')], { cwd: root });
});

test('info --json describes the model and the provider in use', () => {
  const r = run(['info', qwen, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout);
  assert.equal(info.architecture, 'Qwen2ForCausalLM');
  assert.equal(info.layers, 3);
  assert.equal(info.hidden, 32);
  assert.equal(info.neurons, 48);
  assert.equal(info.vocab, 288);
  assert.equal(info.executionProvider, 'cpu');
  assert.match(info.fingerprint, /^[0-9a-f]{64}$/);
  assert.ok(info.params > 0);
});

test('complete --json returns a completion with timing; logits lists the top tokens', () => {
  const c = JSON.parse(run(['complete', llama, '--prompt', 'def f(n):', '--max-tokens', '5', '--json']).stdout);
  assert.equal(c.tokens, 5);
  assert.equal(typeof c.completion, 'string');
  assert.ok(c.tokensPerSecond > 0);
  const l = JSON.parse(run(['logits', llama, '--text', 'def f(n):', '--top', '3', '--json']).stdout);
  assert.ok(Array.isArray(l.ids) && l.ids.length > 0);
  assert.equal(l.top.length, 3);
  assert.ok(l.top[0].logit >= l.top[1].logit);
});

test('repair reports malformed JSONL lines by number, processes the rest, writes a patch; eval refuses it for another model', () => {
  const dir = mkdtempSync(join(tmpdir(), 'star-cli-'));
  const failures = join(dir, 'f.jsonl');
  writeFileSync(failures, ['{"prompt":"def f(n):\\n    return","desired":" n + 1"}', 'not json', '{"prompt":"","desired":"x"}', ''].join('\n'));
  const patch = join(dir, 'p.json');
  const r = run(['repair', llama, '--failures', failures, '--eta', '1', '--out', patch, '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /f\.jsonl:2: not valid JSON/);
  assert.match(r.stderr, /f\.jsonl:3: .*prompt/);
  const s = JSON.parse(r.stdout);
  assert.equal(s.failures, 1);
  assert.equal(s.fixed, 1);
  assert.ok(s.neurons > 0 && s.params === s.neurons * 32);
  const e = run(['eval', llama, '--patch', patch, '--failures', failures, '--json']);
  assert.equal(e.code, 0, e.stderr);
  assert.equal(JSON.parse(e.stdout).effectiveness.fixed, 1);
  const other = run(['eval', qwen, '--patch', patch, '--failures', failures]);
  assert.equal(other.code, 1);
  assert.match(other.stderr, /made for model .* the loaded model is/);
});

test('bad model folders and bad flags get clear messages and exit codes, not crashes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'star-cli-'));
  const broken = join(dir, 'broken');
  cpSync(llama, broken, { recursive: true });
  truncateSync(join(broken, 'model.safetensors'), Math.floor(statSync(join(broken, 'model.safetensors')).size / 2));
  const r = run(['info', broken]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^star-repair: .*safetensors/m);
  const missing = run(['info', join(dir, 'nowhere')]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /does not exist/);
  assert.equal(run(['complete', llama]).code, 2);
  assert.equal(run(['frobnicate']).code, 2);
  assert.equal(run(['info', llama, '--ep', 'tpu']).code, 2);
});
