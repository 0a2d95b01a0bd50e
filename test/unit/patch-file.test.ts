// Reading a patch file (CLI `eval --patch`, the extension's patch import): an empty, non-JSON,
// missing, non-regular or invalid file gives a PatchFileError that names the file and says what
// is wrong — never a bare "Unexpected end of JSON input".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readPatchFile, PatchFileError } from '../../src/store/patch-file';
import { stringifyPatch, type Patch } from '../../src/repair/patch';
import { repairCommands } from '../../src/cli/repair-commands';

const ROOT = path.join(__dirname, '..', '..');

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'star-patch-file-'));
}

const patch: Patch = {
  id: 'p1', modelFingerprint: 'a'.repeat(64), method: 'star', mode: 'batch', options: {}, failureIds: ['f'],
  createdAt: '2024-03-04T05:06:07.000Z',
  layers: [{ layer: 0, rows: [1], deltas: Float32Array.from([1, -1]) }],
  scores: { effectiveness: null, generalisation: null, specificity: null },
  stats: { ms: 1, peakRssMb: 2, neurons: 1, params: 2 },
};

function expectPatchFileError(file: string, reason: PatchFileError['reason'], pattern: RegExp): void {
  assert.throws(() => readPatchFile(file, 2), (e: unknown) => {
    assert.ok(e instanceof PatchFileError, `expected a PatchFileError, got ${String(e)}`);
    assert.equal(e.reason, reason);
    assert.ok(e.message.includes(file), `the message names the file: ${e.message}`);
    assert.match(e.message, pattern);
    assert.doesNotMatch(e.message, /^Unexpected/);
    return true;
  });
}

test('a valid patch file is read; empty, non-JSON, invalid, missing and non-regular files are named and explained', () => {
  const dir = tmp();
  const good = path.join(dir, 'good.json');
  fs.writeFileSync(good, stringifyPatch(patch));
  assert.equal(readPatchFile(good, 2).id, 'p1');
  const empty = path.join(dir, 'empty.json');
  fs.writeFileSync(empty, '');
  expectPatchFileError(empty, 'empty', /is empty/);
  const blank = path.join(dir, 'blank.json');
  fs.writeFileSync(blank, ' \n\t');
  expectPatchFileError(blank, 'empty', /is empty/);
  const text = path.join(dir, 'text.json');
  fs.writeFileSync(text, 'this is not json');
  expectPatchFileError(text, 'not-json', /is not JSON \(/);
  const cut = path.join(dir, 'cut.json');
  fs.writeFileSync(cut, stringifyPatch(patch).slice(0, 40));
  expectPatchFileError(cut, 'not-json', /is not JSON.*cut off/);
  const wrong = path.join(dir, 'wrong.json');
  fs.writeFileSync(wrong, '{"layers": []}');
  expectPatchFileError(wrong, 'invalid', /is not a valid patch/);
  expectPatchFileError(path.join(dir, 'missing.json'), 'missing', /does not exist/);
  expectPatchFileError(dir, 'not-a-file', /not a regular file/);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a FIFO given as a patch file is refused at once instead of waiting for a writer', { skip: process.platform === 'win32' }, () => {
  const dir = tmp();
  const fifo = path.join(dir, 'fifo.json');
  execFileSync('mkfifo', [fifo]);
  const started = Date.now();
  expectPatchFileError(fifo, 'not-a-file', /not a regular file/);
  assert.ok(Date.now() - started < 2000);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('CLI eval with an empty patch file names the file', async () => {
  const dir = tmp();
  const empty = path.join(dir, 'empty.json');
  fs.writeFileSync(empty, '');
  const failures = path.join(dir, 'f.jsonl');
  fs.writeFileSync(failures, '{"prompt": "def f(n):\\n    return", "desired": " n + 1"}\n');
  const llama = path.join(ROOT, 'test', 'fixtures', 'models', 'llama');
  await assert.rejects(repairCommands.eval!.run(llama, { patch: empty, failures }, { provider: 'cpu', threads: 1 }), (e: unknown) =>
    e instanceof Error && e.message.includes(empty) && /is empty/.test(e.message));
  fs.rmSync(dir, { recursive: true, force: true });
});
