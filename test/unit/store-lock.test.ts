// The stores' cross-process lock: a lock left by a dead process is broken at once, a live
// holder is waited for and then reported with a typed error that says what to do, and a lock
// is always released (also when the locked code throws).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isLockStale, lockFileFor, parseLockInfo, StoreLockTimeoutError, withFileLock } from '../../src/store/lock';

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'star-lock-'));
}

function deadPid(): number {
  return Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
}

const lockOf = (pid: number, host = os.hostname(), time = Date.now()) => JSON.stringify({ pid, host, nonce: 'n', time });

test('isLockStale: dead holder on this host, too old, or unreadable for a while', () => {
  const here = { host: 'h', alive: (pid: number) => pid === 1 };
  const info = (pid: number, host = 'h') => parseLockInfo(JSON.stringify({ pid, host, nonce: 'x', time: 0 }));
  assert.equal(isLockStale(info(1), 10, here, 30_000), false);
  assert.equal(isLockStale(info(2), 10, here, 30_000), true, 'holder is gone');
  assert.equal(isLockStale(info(2, 'other'), 10, here, 30_000), false, 'another host: only age counts');
  assert.equal(isLockStale(info(1), 30_000, here, 30_000), true);
  assert.equal(isLockStale(undefined, 100, here, 30_000), false, 'being written');
  assert.equal(isLockStale(undefined, 5_000, here, 30_000), true);
  assert.equal(parseLockInfo('{"pid": 1'), undefined);
});

test('a lock left by a dead process is broken at once; the lock is released after use, also on error', () => {
  const dir = tmp();
  const file = path.join(dir, 'store.json');
  fs.writeFileSync(lockFileFor(file), lockOf(deadPid()));
  const started = Date.now();
  assert.equal(withFileLock(file, () => 42), 42);
  assert.ok(Date.now() - started < 1000);
  assert.deepEqual(fs.readdirSync(dir), []);
  assert.throws(() => withFileLock(file, () => { throw new RangeError('inside'); }), RangeError);
  assert.deepEqual(fs.readdirSync(dir), []);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a live holder is waited for, then a typed error names the lock file to delete', () => {
  const dir = tmp();
  const file = path.join(dir, 'store.json');
  fs.writeFileSync(lockFileFor(file), lockOf(process.ppid));
  assert.throws(() => withFileLock(file, () => 1, { timeoutMs: 200 }), (e: unknown) =>
    e instanceof StoreLockTimeoutError && e.message.includes(lockFileFor(file)) && /try again/.test(e.message));
  assert.ok(fs.existsSync(lockFileFor(file)), 'a live holder\'s lock is left alone');
  // Past the age limit the lock is broken even though the pid runs (it may have been reused).
  assert.equal(withFileLock(file, () => 2, { staleMs: 0 }), 2);
  fs.rmSync(dir, { recursive: true, force: true });
});
