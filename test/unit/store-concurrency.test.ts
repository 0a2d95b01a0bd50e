// Several processes on one store (two VS Code windows and the CLI share a global storage folder):
// real child processes add, update and remove records at the same time; no acknowledged record is
// lost, and a status change or a delete made by one process is not undone by another. A writer
// SIGKILLed mid-write (holding the lock, a temp file half written) loses nothing it acknowledged.
// Run as a child (STAR_STORE_CHILD=<json job>) this module is the writer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FailureStore } from '../../src/failures/store';
import { PatchStore } from '../../src/repair/patch-store';
import type { Patch } from '../../src/repair/patch';

const FP = 'e'.repeat(64);

interface Job {
  kind: 'failures' | 'patches';
  dir: string;
  /** Records to add, with ids `<tag>-<i>`. */
  add?: { tag: string; count: number };
  /** Ids to mark 'repaired' (failures) or disable (patches). */
  update?: string[];
  /** Ids to remove. */
  remove?: string[];
  /** Keep adding until killed. */
  forever?: string;
}

function patch(id: string): Patch {
  return {
    id, modelFingerprint: FP, method: 'star', mode: 'batch', options: {}, failureIds: [`f-${id}`],
    createdAt: '2024-03-04T05:06:07.000Z',
    layers: [{ layer: 0, rows: [1, 2], deltas: Float32Array.from([1, 2, 3, 4]) }],
    scores: { effectiveness: null, generalisation: null, specificity: null },
    stats: { ms: 1, peakRssMb: 2, neurons: 2, params: 4 },
  };
}

function ack(line: string): void {
  // Written synchronously: once the parent reads it, the change is on disk.
  fs.writeSync(1, `${line}\n`);
}

function runJob(job: Job): void {
  if (job.kind === 'failures') {
    const s = FailureStore.open(job.dir, FP);
    for (let i = 0; job.add && i < job.add.count; i++) ack(`added ${s.add({ id: `${job.add.tag}-${i}`, prompt: `p ${job.add.tag} ${i}`, desired: 'd' }).id}`);
    for (const id of job.update ?? []) {
      try {
        s.update(id, { status: 'repaired' });
        ack(`updated ${id}`);
      } catch (e) {
        ack(`missing ${id} ${(e as Error).name}`);
      }
    }
    for (const id of job.remove ?? []) ack(`removed ${id} ${s.remove(id)}`);
    for (let i = 0; job.forever; i++) ack(`added ${s.add({ id: `${job.forever}-${i}`, prompt: `p ${i}`, desired: 'd' }).id}`);
  } else {
    const s = PatchStore.open(job.dir, FP, { hiddenSize: 2 });
    for (let i = 0; job.add && i < job.add.count; i++) ack(`added ${s.add(patch(`${job.add.tag}-${i}`)).patch.id}`);
    for (const id of job.update ?? []) {
      try {
        s.toggle(id, false);
        ack(`updated ${id}`);
      } catch (e) {
        ack(`missing ${id} ${(e as Error).name}`);
      }
    }
    for (const id of job.remove ?? []) {
      try {
        s.remove(id);
        ack(`removed ${id} 1`);
      } catch {
        ack(`removed ${id} 0`);
      }
    }
  }
}

if (process.env.STAR_STORE_CHILD) {
  const job = JSON.parse(process.env.STAR_STORE_CHILD) as Job;
  // Wait for "go" on stdin so that all writers start together.
  process.stdin.once('data', () => {
    runJob(job);
    process.exit(0);
  });
  ack('ready');
} else {
  const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'star-concurrency-'));

  interface Writer {
    child: ChildProcess;
    lines: string[];
    done: Promise<number | null>;
  }

  async function startWriters(jobs: Job[]): Promise<Writer[]> {
    const writers = jobs.map((job) => {
      const child = spawn(process.execPath, ['--import', 'tsx', __filename], {
        env: { ...process.env, STAR_STORE_CHILD: JSON.stringify(job) },
        stdio: ['pipe', 'pipe', 'inherit'],
      });
      const lines: string[] = [];
      let buf = '';
      child.stdout!.setEncoding('utf8');
      const ready = new Promise<void>((resolve) => {
        child.stdout!.on('data', (chunk: string) => {
          buf += chunk;
          const parts = buf.split('\n');
          buf = parts.pop()!;
          for (const l of parts) {
            if (l === 'ready') resolve();
            else lines.push(l);
          }
        });
      });
      const done = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      return { child, lines, done, ready };
    });
    await Promise.all(writers.map((w) => w.ready));
    for (const w of writers) w.child.stdin!.write('go\n');
    return writers;
  }

  test('two processes add 200 failures each at the same time: 400 in the store', async () => {
    const dir = tmp();
    const writers = await startWriters([
      { kind: 'failures', dir, add: { tag: 'a', count: 200 } },
      { kind: 'failures', dir, add: { tag: 'b', count: 200 } },
    ]);
    assert.deepEqual(await Promise.all(writers.map((w) => w.done)), [0, 0]);
    const s = FailureStore.open(dir, FP);
    assert.deepEqual(s.problems, []);
    assert.equal(s.size, 400);
    assert.deepEqual(fs.readdirSync(dir), [path.basename(s.file)], 'no lock or temp file is left behind');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('status changes and deletes by one process are not undone by another', async () => {
    const dir = tmp();
    const seed = FailureStore.open(dir, FP);
    for (let i = 0; i < 60; i++) seed.add({ id: `s-${i}`, prompt: `p${i}`, desired: 'd' });
    const ids = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => `s-${from + i}`);
    // Writer 1 deletes s-0..29 while writer 2 marks s-10..59 repaired and adds its own records.
    const writers = await startWriters([
      { kind: 'failures', dir, remove: ids(0, 30) },
      { kind: 'failures', dir, add: { tag: 'n', count: 40 }, update: ids(10, 60) },
    ]);
    assert.deepEqual(await Promise.all(writers.map((w) => w.done)), [0, 0]);
    const s = FailureStore.open(dir, FP);
    assert.deepEqual(ids(0, 30).filter((id) => s.get(id) !== undefined), [], 'a deleted failure came back');
    assert.deepEqual(ids(30, 60).filter((id) => s.get(id)?.status !== 'repaired'), [], 'a status change was lost');
    assert.equal(s.list({ status: 'pending' }).filter((f) => f.id.startsWith('n-')).length, 40);
    assert.equal(s.size, 70);
    // The store the seeding process still holds merges on its next write instead of resurrecting.
    seed.add({ id: 'late', prompt: 'late', desired: 'd' });
    const again = FailureStore.open(dir, FP);
    assert.equal(again.size, 71);
    assert.equal(again.get('s-0'), undefined);
    assert.equal(again.get('s-45')?.status, 'repaired');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('two processes add patches at the same time and toggle/remove each other\'s: nothing lost or resurrected', async () => {
    const dir = tmp();
    const writers = await startWriters([
      { kind: 'patches', dir, add: { tag: 'a', count: 60 } },
      { kind: 'patches', dir, add: { tag: 'b', count: 60 } },
    ]);
    assert.deepEqual(await Promise.all(writers.map((w) => w.done)), [0, 0]);
    assert.equal(PatchStore.open(dir, FP).list().length, 120);
    const pids = (tag: string, from: number, to: number) => Array.from({ length: to - from }, (_, i) => `${tag}-${from + i}`);
    const second = await startWriters([
      { kind: 'patches', dir, remove: pids('a', 0, 30) },
      { kind: 'patches', dir, update: [...pids('a', 0, 60), ...pids('b', 0, 60)] },
    ]);
    assert.deepEqual(await Promise.all(second.map((w) => w.done)), [0, 0]);
    const s = PatchStore.open(dir, FP);
    assert.equal(s.list().length, 90);
    assert.deepEqual(s.active(), [], 'every remaining patch was disabled');
    assert.equal(s.get('a-0'), undefined);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('writers SIGKILLed at random moments lose no acknowledged record', async () => {
    const dir = tmp();
    const acknowledged: string[] = [];
    for (let round = 0; round < 6; round++) {
      const writers = await startWriters([
        { kind: 'failures', dir, forever: `k${round}a` },
        { kind: 'failures', dir, forever: `k${round}b` },
      ]);
      await new Promise((r) => setTimeout(r, 150 + Math.random() * 250));
      for (const w of writers) w.child.kill('SIGKILL');
      await Promise.all(writers.map((w) => w.done));
      for (const w of writers) acknowledged.push(...w.lines.filter((l) => l.startsWith('added ')).map((l) => l.slice(6)));
      // The next writer is not blocked by a lock a dead process left behind.
      const s = FailureStore.open(dir, FP);
      s.add({ id: `after-${round}`, prompt: 'after', desired: 'd' });
      acknowledged.push(`after-${round}`);
    }
    const s = FailureStore.open(dir, FP);
    const missing = acknowledged.filter((id) => s.get(id) === undefined);
    assert.deepEqual(missing, [], `${missing.length} of ${acknowledged.length} acknowledged records were lost`);
    assert.ok(acknowledged.length > 12, 'the writers got some records in before being killed');
    fs.rmSync(dir, { recursive: true, force: true });
  });
}

test('a change by another writer is seen even when the file\'s stat looks unchanged', () => {
  // On ext4 a file replaced twice by rename gets its old inode number back, and its mtime/ctime
  // have a resolution of a clock tick (about 4 ms): B adding a record and removing one of the same
  // length within one tick leaves a file whose stat equals what A last wrote (found by the fuzz
  // suite: SIGKILLed writers lost acknowledged records). Here stat is made to always say the same.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'star-concurrency-'));
  const a = FailureStore.open(dir, FP);
  const b = FailureStore.open(dir, FP);
  a.add({ id: 'a-0', prompt: 'p', desired: 'd' });
  // The module object itself (the namespace import is read-only); the stores read it at call time.
  const nodeFs = require('node:fs') as { statSync: typeof fs.statSync };
  const realStat = nodeFs.statSync;
  const frozen = realStat(a.file, { bigint: true });
  nodeFs.statSync = ((file: fs.PathLike, options?: fs.StatSyncOptions) =>
    (file === a.file ? (options?.bigint ? frozen : realStat(file)) : realStat(file, options))) as typeof fs.statSync;
  try {
    b.add({ id: 'b-1', prompt: 'p', desired: 'd' });
    b.remove('a-0');
    a.add({ id: 'a-2', prompt: 'p', desired: 'd' });
  } finally {
    nodeFs.statSync = realStat;
  }
  const s = FailureStore.open(dir, FP);
  assert.deepEqual(s.list().map((f) => f.id), ['b-1', 'a-2'], 'b-1 kept, a-0 stays removed');
  fs.rmSync(dir, { recursive: true, force: true });
});
