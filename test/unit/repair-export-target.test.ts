// Where an export may go (issue 17, defect 9): exporting into /proc/... used to hang the worker
// (mkdirSync recursive loops on a pseudo file system). The target's parent folders are now checked
// and created one level at a time: a pseudo file system, a file in the way, or a folder that cannot
// be written gives an ExportError at once; missing folders on a normal disk are still created.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { loadModelFolder } from '../../src/model';
import { ExportError, exportPatchedModel, prepareFolder } from '../../src/repair/export';

const LLAMA = join(__dirname, '..', 'fixtures', 'models', 'llama');
const EXPORT = join(__dirname, '..', '..', 'src', 'repair', 'export.ts');
const tmp = mkdtempSync(join(tmpdir(), 'star-export-target-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const linux = process.platform === 'linux';

/** Exports the llama fixture to `out` in a child process that is killed after 15 s. */
function exportInChild(out: string): { timedOut: boolean; ok: boolean; name?: string; message: string } {
  const script = `
    const { loadModelFolder } = require(${JSON.stringify(join(__dirname, '..', '..', 'src', 'model', 'index.ts'))});
    const { exportPatchedModel } = require(${JSON.stringify(EXPORT)});
    let r;
    try { exportPatchedModel(loadModelFolder(${JSON.stringify(LLAMA)}), new Map(), process.argv[1]); r = { ok: true, message: '' }; }
    catch (e) { r = { ok: false, name: e.name, message: e.message }; }
    process.stdout.write(JSON.stringify(r));`;
  const c = spawnSync(process.execPath, ['--import', 'tsx', '-e', script, out], { encoding: 'utf8', timeout: 15_000 });
  if (c.error || c.signal) return { timedOut: true, ok: false, message: String(c.error ?? c.signal) };
  return { timedOut: false, ...JSON.parse(c.stdout) };
}

describe('export targets', () => {
  test('a folder under /proc is refused at once, not a hang', { skip: !linux && 'needs /proc' }, () => {
    for (const out of ['/proc/star-repair-nowhere/model', '/proc/self/patched', '/sys/star-repair/model']) {
      const r = exportInChild(out);
      assert.equal(r.timedOut, false, `${out}: hung`);
      assert.equal(r.ok, false, out);
      assert.equal(r.name, 'ExportError', r.message);
      assert.match(r.message, /pseudo file system/, r.message);
      assert.match(r.message, /choose a folder on a disk/);
    }
  });

  test('a file in the way, or a destination that is a file, is an ExportError', () => {
    const folder = loadModelFolder(LLAMA);
    const file = join(tmp, 'a-file');
    writeFileSync(file, 'x');
    assert.throws(() => exportPatchedModel(folder, new Map(), join(file, 'sub', 'model')), (e: unknown) => e instanceof ExportError && /a-file is not a folder/.test(e.message));
    assert.throws(() => exportPatchedModel(folder, new Map(), file), (e: unknown) => e instanceof ExportError && /exists and is not a folder/.test(e.message));
  });

  test('a read-only parent folder is refused before anything is written', { skip: (process.platform === 'win32' || process.getuid?.() === 0) && 'root may write anywhere' }, () => {
    const ro = join(tmp, 'ro');
    mkdirSync(ro, { mode: 0o555 });
    assert.throws(() => exportPatchedModel(loadModelFolder(LLAMA), new Map(), join(ro, 'model')), (e: unknown) => e instanceof ExportError && /cannot write in/.test(e.message));
  });

  test('missing parent folders on a normal disk are created one level at a time, and the export completes', () => {
    const out = join(tmp, 'x', 'y', 'z', 'model');
    assert.equal(exportPatchedModel(loadModelFolder(LLAMA), new Map(), out), out);
    assert.ok(existsSync(join(out, 'model.safetensors')));
    assert.deepEqual(readdirSync(join(tmp, 'x', 'y', 'z')), ['model']);
  });

  test('prepareFolder creates nothing when the deepest existing folder is refused', { skip: !linux && 'needs /proc' }, () => {
    assert.throws(() => prepareFolder('/proc/star-repair-nowhere/a/b'), ExportError);
    assert.equal(existsSync('/proc/star-repair-nowhere'), false);
  });
});
