// Fuzz area "worker protocol": (1) the validators (parseHostMessage, parseWorkerMessage,
// parseResult) on damaged messages: a value or a ProtocolError, and an accepted value must read
// the same again; (2) a real worker process (the bundled src/worker/main.ts on the llama fixture)
// sent damaged requests over IPC: each gets an answer within the bound or, when it has no readable
// id, the worker still answers the next request — never a crash, a hang, or an ok answer to a
// request the protocol refuses; (3) the WorkerClient fed damaged replies by a scripted worker:
// every request settles with a value or a WorkerError.
import { fork, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WorkerClient, WorkerError } from '../../../src/worker/client';
import { parseHostMessage, parseResult, parseWorkerMessage, ProtocolError, type Method } from '../../../src/worker/protocol';
import { caseSeed, errorLine, mutateJson, Rng, type CaseOutcome, type Tally } from '../lib';

const AREA_VALIDATORS = 'protocol: validators';
const AREA_WORKER = 'protocol: real worker';
const AREA_CLIENT = 'protocol: client replies';

const PARAMS: Partial<Record<Method, unknown>> = {
  complete: { prompt: 'def f(n):\n    return', maxTokens: 4, stop: ['\n'], stopRule: 'line', temperature: 0 },
  predict: { prompt: 'def f(n):\n    return', desired: ' n + 1' },
  setPatches: { patches: [] },
  neuronDetails: { layer: 0, neuron: 1, delta: Array.from({ length: 32 }, () => 0.01) },
};

const RESULTS: Partial<Record<Method, unknown>> = {
  complete: { text: ' n + 1', tokens: 3, promptTokens: 5, stoppedBy: 'stop', ms: 1.5 },
  setPatches: { applied: ['p1'], neurons: 1 },
  predict: { prediction: ' n', desiredTokens: [' n', ' +'], correct: [true, false], pDesired: [0.5, 0.1], allCorrect: false },
  neuronDetails: { deltaNorm: 1, up: [{ token: 'a', id: 1, logit: 0.5 }], down: [] },
};

/** The samples the protocol (as it is now) accepts; others are left out rather than counted. */
function validSamples<T>(samples: Partial<Record<Method, T>>, check: (m: Method, v: T) => unknown): [Method, T][] {
  return (Object.entries(samples) as [Method, T][]).filter(([m, v]) => {
    try {
      check(m, v);
      return true;
    } catch {
      return false;
    }
  });
}

function validatorCase(seed: number, i: number, requests: [Method, unknown][], results: [Method, unknown][]): { label: string; outcome: CaseOutcome } {
  const r = new Rng(caseSeed(seed, 'validators', i));
  const side = r.int(3);
  let parse: (v: unknown) => unknown;
  let base: unknown;
  let what: string;
  if (side === 0 && requests.length) {
    const [method, params] = r.pick(requests);
    base = r.chance(0.9) ? { type: 'request', id: 1 + r.int(1000), method, params } : { type: 'cancel', id: 3 };
    parse = parseHostMessage;
    what = `host message (${method})`;
  } else if (side === 1 && results.length) {
    const [method, result] = r.pick(results);
    base = result;
    parse = (v) => parseResult(method, v);
    what = `${method} result`;
  } else {
    base = r.pick([
      { type: 'ready', pid: 12, protocol: 1 }, { type: 'log', message: 'hello' },
      { type: 'response', id: 4, ok: false, error: { name: 'ModelError', code: 'config-invalid', message: 'bad' } },
      { type: 'response', id: 5, ok: true, result: { any: 1 } },
      { type: 'progress', id: 6, progress: { method: 'star', phase: 'step', epoch: 1, epochs: 10, loss: 0.5, positionsFixed: 1, positionsTotal: 3 } },
    ]);
    parse = parseWorkerMessage;
    what = 'worker message';
  }
  const m = mutateJson(base, r);
  const label = `seed ${seed} case ${i}: ${what}: ${m.how}`;
  const started = Date.now();
  let value: unknown;
  try {
    value = parse(m.value);
  } catch (e) {
    return { label, outcome: { outcome: e instanceof ProtocolError ? 'typed' : 'crash', detail: errorLine(e) } };
  }
  if (Date.now() - started > 1000) return { label, outcome: { outcome: 'hang', detail: `took ${Date.now() - started} ms` } };
  try {
    const again = parse(JSON.parse(JSON.stringify(value)));
    if (JSON.stringify(again) !== JSON.stringify(value)) return { label, outcome: { outcome: 'silent', detail: 'an accepted message reads differently the second time' } };
  } catch (e) {
    return { label, outcome: { outcome: 'silent', detail: `an accepted message is refused the second time: ${errorLine(e)}` } };
  }
  return { label, outcome: { outcome: 'result' } };
}

/** The real worker, with the model loaded; restarted after a crash or a hang. */
class RealWorker {
  private child: ChildProcess | null = null;
  private nextId = 1;
  private readonly waiting = new Map<number, (m: { ok: boolean; result?: unknown; error?: unknown }) => void>();
  private exited: ((why: string) => void) | null = null;

  constructor(private readonly bundle: string, private readonly modelDir: string) {}

  id(): number {
    return this.nextId++;
  }

  async ensure(): Promise<void> {
    if (this.child) return;
    const child = fork(this.bundle, [], { stdio: ['ignore', 'ignore', 'ignore', 'ipc'], serialization: 'json' });
    this.child = child;
    child.on('message', (m: { type?: string; id?: number; ok?: boolean }) => {
      if (m.type === 'response' && typeof m.id === 'number') this.waiting.get(m.id)?.(m as { ok: boolean });
    });
    child.once('exit', (code, signal) => {
      if (this.child === child) this.child = null;
      this.exited?.(`the worker exited (${signal ?? `code ${code}`})`);
    });
    await new Promise<void>((resolve) => child.once('message', () => resolve()));
    const loaded = await this.request({ type: 'request', id: this.id(), method: 'load', params: { modelDir: this.modelDir, provider: 'cpu', threads: 1 } }, 60_000);
    if (loaded.kind !== 'answer' || !loaded.message.ok) throw new Error(`the worker did not load the fixture model: ${JSON.stringify(loaded)}`);
  }

  /** Sends a message and waits for the answer to `id` (if any id is readable). */
  /** Sends a message nothing answers; 'crash' when the worker dies of it. */
  async post(message: unknown): Promise<{ kind: 'crash'; why: string } | undefined> {
    const child = this.child!;
    try {
      child.send(message as object);
    } catch {
      return undefined; // not sendable over IPC at all: nothing reached the worker
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
    return this.child === child ? undefined : { kind: 'crash', why: 'the worker exited after the message' };
  }

  request(message: unknown, timeoutMs: number): Promise<{ kind: 'answer'; message: { ok: boolean; result?: unknown; error?: unknown } } | { kind: 'crash' | 'hang'; why: string }> {
    const child = this.child;
    if (!child) return Promise.resolve({ kind: 'crash', why: 'the worker is not running' });
    const id = typeof message === 'object' && message !== null ? (message as { id?: unknown }).id : undefined;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        cleanup();
        child.kill('SIGKILL');
        this.child = null;
        resolve({ kind: 'hang', why: `no answer within ${timeoutMs / 1000} s` });
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        if (typeof id === 'number') this.waiting.delete(id);
        this.exited = null;
      };
      this.exited = (why) => {
        cleanup();
        resolve({ kind: 'crash', why });
      };
      if (typeof id === 'number') this.waiting.set(id, (m) => { cleanup(); resolve({ kind: 'answer', message: m }); });
      try {
        child.send(message as object);
      } catch (e) {
        cleanup();
        resolve({ kind: 'answer', message: { ok: false, error: `not sendable: ${errorLine(e)}` } });
      }
    });
  }

  stop(): void {
    this.child?.kill('SIGKILL');
    this.child = null;
  }
}

async function workerCase(w: RealWorker, seed: number, i: number, requests: [Method, unknown][]): Promise<{ label: string; outcome: CaseOutcome }> {
  const r = new Rng(caseSeed(seed, 'real-worker', i));
  const [method, params] = r.pick(requests);
  let message: unknown;
  let how: string;
  if (r.chance(0.75)) {
    const m = mutateJson(params, r);
    message = { type: 'request', id: w.id(), method, params: m.value };
    how = `${method} params: ${m.how}`;
  } else {
    const m = mutateJson({ type: 'request', id: w.id(), method, params }, r);
    message = m.value;
    how = `${method} envelope: ${m.how}`;
  }
  const label = `seed ${seed} case ${i}: ${how}`;
  let valid = true;
  try {
    parseHostMessage(JSON.parse(JSON.stringify(message) ?? 'null'));
  } catch {
    valid = false;
  }
  await w.ensure();
  const id = typeof message === 'object' && message !== null ? (message as { id?: unknown }).id : undefined;
  const answers = typeof id === 'number' && Number.isSafeInteger(id) && id > 0 && (message as { type?: unknown }).type !== 'cancel';
  if (answers) {
    const got = await w.request(message, 10_000);
    if (got.kind !== 'answer') return { label, outcome: { outcome: got.kind, detail: got.why } };
    if (got.message.ok && !valid) return { label, outcome: { outcome: 'silent', detail: 'the worker answered ok to a request the protocol refuses' } };
    if (got.message.ok) {
      try {
        parseResult(method, got.message.result);
      } catch (e) {
        return { label, outcome: { outcome: 'silent', detail: `the worker's answer breaks the protocol: ${errorLine(e)}` } };
      }
      return { label, outcome: { outcome: 'result' } };
    }
    return { label, outcome: { outcome: 'typed', detail: JSON.stringify(got.message.error).slice(0, 200) } };
  }
  const posted = await w.post(message);
  if (posted) return { label, outcome: { outcome: 'crash', detail: posted.why } };
  // No readable id: nothing to answer. The worker must still serve the next request.
  const probe = await w.request({ type: 'request', id: w.id(), method: 'complete', params: PARAMS.complete }, 10_000);
  if (probe.kind !== 'answer') return { label, outcome: { outcome: probe.kind, detail: `after the message: ${probe.why}` } };
  return { label, outcome: { outcome: valid ? 'result' : 'typed' } };
}

const SCRIPTED_WORKER = `
const send = (m) => { try { process.send(m); } catch (e) { process.send({ type: 'log', message: 'unsendable' }); } };
send({ type: 'ready', pid: process.pid, protocol: 1 });
process.on('message', (m) => {
  if (m.type !== 'request') return;
  const reply = m.params.reply === undefined ? {} : m.params.reply;
  if (m.params.keepId && reply && typeof reply === 'object' && !Array.isArray(reply)) reply.id = m.id;
  send(reply);
});
`;

async function clientCase(c: WorkerClient, seed: number, i: number, results: [Method, unknown][]): Promise<{ label: string; outcome: CaseOutcome }> {
  const r = new Rng(caseSeed(seed, 'client', i));
  const [method, result] = r.pick(results);
  const base = r.chance(0.8) ? { type: 'response', id: 0, ok: true, result } : { type: 'response', id: 0, ok: false, error: { name: 'X', code: 'x', message: 'refused' } };
  const m = mutateJson(base, r);
  const keepId = !m.how.startsWith('id');
  const label = `seed ${seed} case ${i}: ${method} reply: ${m.how}`;
  const settled = await Promise.race([
    c.request(method, { reply: m.value, keepId } as never).then(
      (value) => ({ kind: 'value' as const, value }),
      (error: unknown) => ({ kind: 'error' as const, error }),
    ),
    new Promise<{ kind: 'none' }>((resolve) => setTimeout(() => resolve({ kind: 'none' }), 5000)),
  ]);
  if (settled.kind === 'none') return { label, outcome: { outcome: 'hang', detail: 'the request never settled' } };
  if (settled.kind === 'error') {
    return { label, outcome: settled.error instanceof WorkerError ? { outcome: 'typed' } : { outcome: 'crash', detail: errorLine(settled.error) } };
  }
  try {
    parseResult(method, JSON.parse(JSON.stringify(settled.value)));
  } catch (e) {
    return { label, outcome: { outcome: 'silent', detail: `resolved with a value the protocol refuses: ${errorLine(e)}` } };
  }
  return { label, outcome: { outcome: 'result' } };
}

export interface ProtocolAreaOptions {
  tally: Tally; seed: number; validatorSeconds: number; workerSeconds: number; clientSeconds: number;
  workerBundle: string; modelDir: string; tmp: string;
}

export async function fuzzProtocol(o: ProtocolAreaOptions): Promise<string[]> {
  const notes: string[] = [];
  const requests = validSamples(PARAMS, (method, params) => parseHostMessage({ type: 'request', id: 1, method, params }));
  const results = validSamples(RESULTS, (method, result) => parseResult(method, result));
  for (const m of Object.keys(PARAMS)) if (!requests.some(([x]) => x === m)) notes.push(`protocol: the ${m} request sample no longer matches the protocol; left out`);
  for (const m of Object.keys(RESULTS)) if (!results.some(([x]) => x === m)) notes.push(`protocol: the ${m} result sample no longer matches the protocol; left out`);

  let end = Date.now() + o.validatorSeconds * 1000;
  for (let i = 0; Date.now() < end; i++) {
    const { label, outcome } = validatorCase(o.seed, i, requests, results);
    o.tally.add(AREA_VALIDATORS, label, outcome);
  }

  const worker = new RealWorker(o.workerBundle, o.modelDir);
  try {
    end = Date.now() + o.workerSeconds * 1000;
    for (let i = 0; Date.now() < end && requests.length; i++) {
      const { label, outcome } = await workerCase(worker, o.seed, i, requests);
      o.tally.add(AREA_WORKER, label, outcome);
    }
  } finally {
    worker.stop();
  }

  const script = path.join(o.tmp, 'scripted-worker.js');
  fs.writeFileSync(script, SCRIPTED_WORKER);
  const deadlines = Object.fromEntries(results.map(([m]) => [m, 1500]));
  const client = new WorkerClient({ workerPath: script, initialBackoffMs: 10, deadlinesMs: deadlines });
  try {
    await client.start();
    end = Date.now() + o.clientSeconds * 1000;
    for (let i = 0; Date.now() < end && results.length; i++) {
      const { label, outcome } = await clientCase(client, o.seed, i, results);
      o.tally.add(AREA_CLIENT, label, outcome);
    }
  } finally {
    await client.dispose();
  }
  return notes;
}
