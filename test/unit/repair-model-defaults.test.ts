// The model folder's star-repair.json (issue 17, defect 4): tuned defaults are read field by field;
// a bad value, a file that is not JSON, not a regular file or too large is refused with an error
// that names the file — never passed to the engine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { methodDefaults, PAPER_DEFAULTS, MAX_DEFAULTS_BYTES } from '../../src/repair/model-defaults';
import { RepairError } from '../../src/repair/teacher';

function folderWith(content: string | null): string {
  const dir = mkdtempSync(join(tmpdir(), 'star-defaults-'));
  if (content !== null) writeFileSync(join(dir, 'star-repair.json'), content);
  return dir;
}

function refused(dir: string, pattern: RegExp): void {
  assert.throws(() => methodDefaults(dir), (e: unknown) => e instanceof RepairError && e.code === 'invalid-option' && e.message.includes(join(dir, 'star-repair.json')) && pattern.test(e.message));
}

test('no star-repair.json: the paper\'s defaults', () => {
  assert.deepEqual(methodDefaults(folderWith(null)), PAPER_DEFAULTS);
});

test('a valid tuning result is read whole', () => {
  const d = methodDefaults(folderWith(JSON.stringify({ star: { eta: 0.1, select: 'layer', mode: 'batch', preserveRows: 64, stopWhen: 'target-right' }, sgd: { eta: 0.1 }, mint: { f: 1 }, note: 'x', tunedAt: '2026-12-02' })));
  assert.deepEqual(d.star, { eta: 0.1, select: 'layer', mode: 'batch', preserveRows: 64, stopWhen: 'target-right', lineSearch: undefined, topK: undefined, fraction: undefined, margin: undefined });
  assert.equal(d.sgd.eta, 0.1);
});

test('bad values are refused, naming the file and the field', () => {
  refused(folderWith(JSON.stringify({ star: { select: 'bogus', eta: 1e30 }, sgd: { eta: 0.1 }, mint: { f: 1 } })), /select|eta/);
  refused(folderWith(JSON.stringify({ star: { eta: 0.1 }, sgd: { eta: -1 }, mint: { f: 1 } })), /sgd/);
  refused(folderWith(JSON.stringify({ star: { eta: 0.1, preserveRows: 1.5 }, sgd: { eta: 0.1 }, mint: { f: 1 } })), /preserveRows/);
  refused(folderWith('{"star": '), /not valid JSON/);
  refused(folderWith(''), /not valid JSON/);
  refused(folderWith(' '.repeat(MAX_DEFAULTS_BYTES + 1)), /bytes/);
});

test('a FIFO named star-repair.json is refused at once, not waited on', () => {
  const dir = folderWith(null);
  execFileSync('mkfifo', [join(dir, 'star-repair.json')]);
  refused(dir, /not a regular file/);
});
