// Atomic writes survive a crash: a child process rewrites a file in a loop and is
// killed with SIGKILL at a random moment; the file must always hold one complete
// version. Run as a child (STAR_ATOMIC_CHILD=<file>) this module is the writer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readJsonFile, writeFileAtomic, writeJsonFileAtomic, removeStaleTempFiles, CorruptJsonError, moveAside } from '../../src/store/atomic';

const PAYLOAD_CHARS = 4 * 1024 * 1024;

function versionText(n: number): string {
  // The payload's content depends on n, so a torn mix of two versions is detectable.
  const unit = String(n % 10);
  return JSON.stringify({ n, payload: unit.repeat(PAYLOAD_CHARS), tail: `end-${n}` });
}

function checkVersion(value: unknown): number {
  const v = value as { n: number; payload: string; tail: string };
  assert.equal(typeof v.n, 'number');
  assert.equal(v.payload.length, PAYLOAD_CHARS);
  assert.equal(v.payload, String(v.n % 10).repeat(PAYLOAD_CHARS));
  assert.equal(v.tail, `end-${v.n}`);
  return v.n;
}

if (process.env.STAR_ATOMIC_CHILD) {
  const file = process.env.STAR_ATOMIC_CHILD;
  const texts = Array.from({ length: 10 }, (_, i) => versionText(i));
  let n = 1;
  writeFileAtomic(file, texts[n % 10]!);
  process.stdout.write('ready\n');
  for (;;) {
    n++;
    writeFileAtomic(file, versionText(n));
  }
} else {
  test('a writer killed mid-write leaves the previous version readable', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'star-atomic-'));
    const file = path.join(dir, 'data.json');
    writeFileAtomic(file, versionText(0));
    let killedMidWrite = 0;
    let runs = 0;
    // Keep going until at least one kill landed while a temp file was open (the
    // dangerous window), so the test really exercises a crash mid-write.
    while (runs < 6 || (killedMidWrite === 0 && runs < 30)) {
      runs++;
      const child = spawn(process.execPath, ['--import', 'tsx', __filename], {
        env: { ...process.env, STAR_ATOMIC_CHILD: file },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      await new Promise<void>((resolve, reject) => {
        child.stdout.once('data', () => resolve());
        child.once('exit', (code) => reject(new Error(`writer exited early with ${code}`)));
      });
      await new Promise((r) => setTimeout(r, 20 + Math.random() * 150));
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
      const leftovers = fs.readdirSync(dir).filter((n) => n.endsWith('.tmp'));
      if (leftovers.length > 0) killedMidWrite++;
      const n = checkVersion(readJsonFile(file));
      assert.ok(n >= 1, 'the child wrote at least one version');
      // Leftover temp files are cleaned once they are old enough.
      removeStaleTempFiles(file, 0);
      assert.deepEqual(fs.readdirSync(dir), ['data.json']);
    }
    assert.ok(killedMidWrite > 0, `no kill landed mid-write in ${runs} runs`);
    fs.rmSync(dir, { recursive: true, force: true });
  });
}

test('writeFileAtomic replaces content, creates the directory and leaves no temp file', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'star-atomic-'));
  const file = path.join(dir, 'sub', 'x.json');
  writeJsonFileAtomic(file, { a: 1 });
  assert.deepEqual(readJsonFile(file), { a: 1 });
  writeJsonFileAtomic(file, { a: 2 });
  assert.deepEqual(readJsonFile(file), { a: 2 });
  assert.deepEqual(fs.readdirSync(path.dirname(file)), ['x.json']);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a failed write keeps the old file and removes its temp file', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'star-atomic-'));
  const file = path.join(dir, 'x.json');
  writeJsonFileAtomic(file, { a: 1 });
  // Renaming a file over a non-empty directory fails: simulate a write that cannot complete.
  const blocked = path.join(dir, 'blocked');
  fs.mkdirSync(path.join(blocked, 'inside'), { recursive: true });
  assert.throws(() => writeFileAtomic(blocked, 'data'));
  assert.deepEqual(fs.readdirSync(dir).sort(), ['blocked', 'x.json']);
  assert.deepEqual(readJsonFile(file), { a: 1 });
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a partial temp file that was never renamed does not affect the target', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'star-atomic-'));
  const file = path.join(dir, 'x.json');
  writeJsonFileAtomic(file, { ok: true });
  // Named after this (live) process: a fresh temp file of a running writer is left alone.
  const stale = path.join(dir, `.x.json.${process.pid}.abc.tmp`);
  fs.writeFileSync(stale, '{"ok": fa');
  assert.deepEqual(readJsonFile(file), { ok: true });
  assert.deepEqual(removeStaleTempFiles(file, 60_000), [], 'a fresh temp file may belong to a live writer');
  assert.deepEqual(removeStaleTempFiles(file, 0), [stale]);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a temp file written within the current millisecond counts as age 0, not as from the future', () => {
  // Date.now() is whole milliseconds while mtimeMs carries a fraction: a file stamped 0.5 ms after
  // the "now" millisecond began must still be removable with minAgeMs = 0.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'star-atomic-'));
  const file = path.join(dir, 'x.json');
  const stale = path.join(dir, '.x.json.999.abc.tmp');
  fs.writeFileSync(stale, '{');
  fs.utimesSync(stale, 1_700_000_000.0005, 1_700_000_000.0005);
  assert.ok(fs.statSync(stale).mtimeMs > 1_700_000_000_000, 'this file system keeps sub-millisecond times');
  assert.deepEqual(removeStaleTempFiles(file, 0, 1_700_000_000_000), [stale]);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('readJsonFile: missing → undefined, garbage → CorruptJsonError, BOM tolerated; moveAside keeps the bytes', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'star-atomic-'));
  const file = path.join(dir, 'x.json');
  assert.equal(readJsonFile(file), undefined);
  fs.writeFileSync(file, '\ufeff[1,2]');
  assert.deepEqual(readJsonFile(file), [1, 2]);
  fs.writeFileSync(file, '{"a": ');
  assert.throws(() => readJsonFile(file), CorruptJsonError);
  const aside = moveAside(file, new Date('2024-01-02T03:04:05.678Z'));
  assert.equal(path.basename(aside), 'x.json.corrupt-2024-01-02T03-04-05-678Z');
  assert.equal(fs.readFileSync(aside, 'utf8'), '{"a": ');
  assert.equal(fs.existsSync(file), false);
  fs.rmSync(dir, { recursive: true, force: true });
});
