// WorkerClient against small scripted workers (no model): start() rejects with a typed error when
// the worker cannot be started (also after it ran once), an unreadable reply settles its request
// with a protocol error, a reply that matches no request is logged, and every request ends —
// by its deadline, by cancellation, or when the worker exits.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { WorkerClient, WorkerError, WorkerProtocolError, WorkerStartError, DEFAULT_DEADLINES_MS, type WorkerClientOptions } from '../../src/worker/client';
import type { CompleteParams } from '../../src/worker/protocol';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'star-client-'));
const clients: WorkerClient[] = [];
after(async () => {
  for (const c of clients) await c.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A worker script: `onRequest(m, send)` handles each request message. */
function script(name: string, body: string): string {
  const file = path.join(dir, `${name}.js`);
  fs.writeFileSync(file, `const send = (m) => process.send(m);\n${body}\n`);
  return file;
}

const READY = `send({ type: 'ready', pid: process.pid, protocol: 1 });`;
const complete: CompleteParams = { prompt: 'x', maxTokens: 1, stop: [], stopRule: 'none', temperature: 0 };

function client(workerPath: string, options: Partial<WorkerClientOptions> = {}): WorkerClient {
  const c = new WorkerClient({ workerPath, initialBackoffMs: 10, stableMs: 60_000, ...options });
  clients.push(c);
  return c;
}

/** Settles within `ms`, or says it did not. */
function within<T>(p: Promise<T>, ms: number): Promise<{ settled: true; value?: T; error?: unknown } | { settled: false }> {
  return Promise.race([
    p.then((value) => ({ settled: true as const, value }), (error: unknown) => ({ settled: true as const, error })),
    new Promise<{ settled: false }>((r) => setTimeout(() => r({ settled: false }), ms)),
  ]);
}

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

test('start() rejects with WorkerStartError once the worker keeps crashing after it was running', async () => {
  const c = client(script('ready-then-exit', `${READY}\nsetTimeout(() => process.exit(3), 30);`), { maxCrashes: 2 });
  await c.start();
  await untilStatus(c, 'failed');
  const r = await within(c.start(), 2000);
  assert.ok(r.settled, 'start() settles');
  assert.ok('error' in r && r.error instanceof WorkerStartError, `start() rejects with WorkerStartError, got ${'error' in r ? String(r.error) : 'a result'}`);
  assert.equal((r.error as WorkerStartError).code, 'worker-failed');
  assert.match((r.error as Error).message, /exit code 3.*Restart Model Worker/);
});

test('start() rejects with WorkerStartError when the worker never starts', async () => {
  const c = client(script('dies', `process.stderr.write('cannot start: missing library\\n'); process.exit(1);`), { maxCrashes: 3 });
  const r = await within(c.start(), 5000);
  assert.ok(r.settled && 'error' in r && r.error instanceof WorkerStartError, 'typed rejection');
  assert.match((r.error as Error).message, /cannot start: missing library/, 'the last output of the worker is in the message');
  assert.equal(c.status.status, 'failed');
});

test('a reply with an unreadable error settles its request with a protocol error; an unmatched one is logged', async () => {
  const logs: string[] = [];
  const c = client(script('bad-error', `${READY}
process.on('message', (m) => {
  if (m.type !== 'request') return;
  send({ type: 'response', id: 987654, ok: 'maybe' });
  send({ type: 'response', id: m.id, ok: false, error: { name: 5, message: null } });
});`), { log: (l) => logs.push(l) });
  await c.start();
  const r = await within(c.request('complete', complete, { timeoutMs: null }), 2000);
  assert.ok(r.settled, 'the request settles');
  assert.ok('error' in r && r.error instanceof WorkerProtocolError && r.error instanceof WorkerError, `got ${'error' in r ? String(r.error) : 'a result'}`);
  assert.equal((r.error as WorkerError).code, 'protocol');
  assert.match((r.error as Error).message, /answer to complete could not be read.*error\.name/);
  assert.ok(logs.some((l) => /unreadable message.*no pending request/.test(l)), logs.join('\n'));
});

test('a request the worker never answers ends at its deadline; repair has none but ends when the worker exits', async () => {
  assert.ok(DEFAULT_DEADLINES_MS.complete! > 0 && DEFAULT_DEADLINES_MS.predict! > 0);
  assert.equal(DEFAULT_DEADLINES_MS.repair, undefined);
  const cancels: number[] = [];
  const c = client(script('silent', `${READY}
process.on('message', (m) => {
  if (m.type === 'cancel') send({ type: 'log', message: 'cancel ' + m.id });
  if (m.type === 'request' && m.method === 'repair') setTimeout(() => process.exit(9), 200);
});`), { deadlinesMs: { complete: 150 }, log: (l) => { const m = /cancel (\d+)/.exec(l); if (m) cancels.push(Number(m[1])); } });
  await c.start();
  const started = Date.now();
  const r = await within(c.request('complete', complete), 3000);
  assert.ok(r.settled && 'error' in r && r.error instanceof WorkerError && r.error.code === 'timeout', 'complete times out');
  assert.ok(Date.now() - started < 1500);
  assert.match((r.error as Error).message, /no answer.*within 0\.15 s/);
  const repair = await within(c.request('repair', {} as never), 5000);
  assert.ok(repair.settled && 'error' in repair && (repair.error as WorkerError).code === 'worker-crashed', 'repair ends when the worker exits');
  await new Promise((r) => setTimeout(r, 50));
  assert.ok(cancels.length >= 1, 'the worker was told to stop the timed-out request');
});

test('a cancelled request ends at once, without waiting for a worker too busy to answer (an export being written)', async () => {
  // The progress notifications (services/repair-ui.ts withCancellableProgress) end when their
  // request does, so Cancel must not wait for the worker: this one blocks on its first export.
  const c = client(script('busy-writing', `${READY}
process.on('message', (m) => {
  if (m.type === 'request' && m.method === 'export') { const until = Date.now() + 3000; while (Date.now() < until); }
});`));
  await c.start();
  let fire!: () => void;
  const token = { isCancellationRequested: false, onCancellationRequested: (l: () => unknown) => ((fire = () => void l()), { dispose: () => {} }) };
  const outcome: { ended?: unknown } = {};
  const exported = c.request('export', { dir: '/out/x', patches: [] }, { token });
  exported.then((v) => (outcome.ended = v), (e: unknown) => (outcome.ended = e));
  await new Promise((r) => setImmediate(r));
  assert.ok(outcome.ended === undefined, 'the worker is still writing');
  token.isCancellationRequested = true;
  fire();
  await new Promise((r) => setImmediate(r));
  const ended: unknown = outcome.ended;
  assert.ok(ended instanceof WorkerError && ended.code === 'cancelled', `ended with ${String(ended)}`);
});
