// Provider vetting: the worker's gate before it commits to a GPU execution provider. A provider
// passes only when
//   1. it has not crashed the worker for this model on this machine (the extension's provider
//      memory sends those in LoadParams.guard.avoid), and
//   2. the provider check (src/runtime/provider-check.ts: decode with a KV cache and a probe,
//      against the CPU within the tolerances of docs/gpu.md) passed in a SEPARATE process: a short
//      child forked from the worker's own bundle with STAR_REPAIR_ROLE=provider-check, so a
//      provider that crashes takes only the child down.
// The verdict is kept per machine + model fingerprint + provider + onnxruntime version + check
// version (provider-memory.json, and in the worker for its lifetime), so the check runs once.
// The child side (serveProviderCheck) lives here too, so the protocol between them is one file.

import { fork } from 'node:child_process';
import * as ort from 'onnxruntime-node';
import { loadModelFolder } from '../model';
import { CHECK_VERSION, checkProvider, type ProviderCheckResult } from '../runtime/provider-check';
import type { ProviderName } from '../runtime/providers';
import { bool, fail, field, finite, intIn, object, text, type Reader } from '../util/read';
import { ProviderMemory, providerName } from './provider-memory';
import type { AvoidedProvider } from './protocol';

export const ROLE_ENV = 'STAR_REPAIR_ROLE';
export const CHECK_ROLE = 'provider-check';
/** How long the check child may take (model load on both providers, decode and probe). */
export const DEFAULT_CHECK_TIMEOUT_MS = 300_000;

/** What the worker asks the check child. */
interface CheckRequest {
  type: 'check';
  modelDir: string;
  fingerprint: string;
  provider: string;
  threads: number;
}

/** The child's answer; `lasting` false when the failure says nothing about the provider (the model could not be opened). */
interface CheckAnswer {
  type: 'verdict';
  ok: boolean;
  reason: string;
  worst: Record<string, number>;
  ms: number;
  lasting: boolean;
}

const worstReader: Reader<Record<string, number>> = object((o, p) => {
  const out: Record<string, number> = {};
  for (const k of Object.keys(o).slice(0, 32)) out[k.slice(0, 64)] = o[k] === null ? Infinity : finite(o[k], `${p}.${k}`);
  return out;
});

const checkRequest: Reader<CheckRequest> = object((o, p) => {
  if (o.type !== 'check') fail(`${p}.type`, 'check', o.type);
  return {
    type: 'check',
    modelDir: field(o, 'modelDir', text(4096, 1), p),
    fingerprint: field(o, 'fingerprint', text(256, 1), p),
    provider: field(o, 'provider', text(32, 1), p),
    threads: field(o, 'threads', intIn(0, 1024), p),
  };
});

const checkAnswer: Reader<CheckAnswer> = object((o, p) => {
  if (o.type !== 'verdict') fail(`${p}.type`, 'verdict', o.type);
  return {
    type: 'verdict',
    ok: field(o, 'ok', bool, p),
    reason: field(o, 'reason', text(4000), p),
    worst: field(o, 'worst', worstReader, p),
    ms: field(o, 'ms', finite, p),
    lasting: field(o, 'lasting', bool, p),
  };
});

export function isProviderCheckChild(env: NodeJS.ProcessEnv = process.env): boolean {
  return env[ROLE_ENV] === CHECK_ROLE;
}

/** The onnxruntime version the verdicts are kept for. */
export function onnxruntimeVersion(): string {
  const v = ort.env.versions as { node?: string; common?: string };
  return v.node ?? v.common ?? 'unknown';
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message.split('\n')[0] : String(e);
}

/** The child process: answers one check request on the IPC channel, then exits. */
export function serveProviderCheck(): void {
  const reply = (answer: Omit<CheckAnswer, 'type'>) => {
    if (!process.connected || !process.send) process.exit(0);
    process.send({ type: 'verdict', ...answer }, () => process.exit(0));
  };
  process.on('disconnect', () => process.exit(0));
  process.once('message', (raw: unknown) => {
    void (async () => {
      let request: CheckRequest;
      try {
        request = checkRequest(raw, 'check');
      } catch (e) {
        reply({ ok: false, reason: `the check request could not be read: ${errorText(e)}`, worst: {}, ms: 0, lasting: false });
        return;
      }
      let folder;
      try {
        folder = loadModelFolder(request.modelDir);
      } catch (e) {
        reply({ ok: false, reason: `the check could not open the model: ${errorText(e)}`, worst: {}, ms: 0, lasting: false });
        return;
      }
      if (folder.fingerprint !== request.fingerprint) {
        reply({ ok: false, reason: 'the model folder changed while the check started: load it again', worst: {}, ms: 0, lasting: false });
        return;
      }
      const result: ProviderCheckResult = await checkProvider(folder, request.provider as Exclude<ProviderName, 'auto' | 'cpu'>, { threads: request.threads });
      reply({ ok: result.ok, reason: result.reason, worst: result.worst, ms: result.ms, lasting: true });
    })();
  });
}

export interface CheckRun {
  ok: boolean;
  reason: string;
  worst: Record<string, number>;
  /** Whether the verdict may be kept (false: the model could not be opened, nothing is known about the provider). */
  lasting: boolean;
}

export interface VettingOptions {
  /** The script the check child runs: the worker bundle (process.argv[1] in the worker). */
  childPath: string;
  execArgv?: string[];
  env?: NodeJS.ProcessEnv;
  log?: (line: string) => void;
  timeoutMs?: number;
}

export interface VetRequest {
  modelDir: string;
  fingerprint: string;
  /** The model's name, for messages. */
  model: string;
  provider: string;
  threads: number;
  /** Providers that crashed the worker (any model: those of other models are ignored). */
  avoid: readonly AvoidedProvider[];
  /** Where verdicts are kept across processes; null: only in this worker. */
  memoryFile: string | null;
}

export class ProviderVetting {
  /** Verdicts settled in this worker: key → reason (null: passed). */
  private readonly settled = new Map<string, Promise<string | null>>();
  private readonly log: (line: string) => void;

  constructor(private readonly options: VettingOptions) {
    this.log = options.log ?? (() => {});
  }

  /** Null when `provider` may be used for the model, else why not (a fallback reason). */
  vet(r: VetRequest): Promise<string | null> {
    if (r.provider === 'cpu') return Promise.resolve(null);
    const crash = r.avoid.find((a) => a.fingerprint === r.fingerprint && a.provider === r.provider);
    if (crash) return Promise.resolve(crash.reason);
    const key = JSON.stringify([r.fingerprint, r.provider, onnxruntimeVersion(), CHECK_VERSION, r.memoryFile]);
    let verdict = this.settled.get(key);
    if (!verdict) {
      verdict = this.decide(r, () => this.settled.delete(key));
      this.settled.set(key, verdict);
    }
    return verdict;
  }

  private async decide(r: VetRequest, forget: () => void): Promise<string | null> {
    const name = providerName(r.provider);
    const memory = r.memoryFile ? new ProviderMemory(r.memoryFile, this.log) : null;
    const key = { fingerprint: r.fingerprint, provider: r.provider, onnxruntime: onnxruntimeVersion(), check: CHECK_VERSION };
    let kept;
    try {
      kept = memory?.verdict(key);
    } catch (e) {
      this.log(`[providers] could not read ${r.memoryFile}: ${errorText(e)}`);
    }
    if (kept) {
      this.log(`[providers] ${name} for ${r.model}: ${kept.ok ? 'passed' : 'failed'} its check on ${kept.at.slice(0, 10)} (kept verdict)`);
      return kept.ok ? null : `${kept.reason} (checked on ${kept.at.slice(0, 10)}; the CPU is used)`;
    }
    this.log(`[providers] checking ${name} for ${r.model} in a separate process before using it (once per machine, model and onnxruntime version)`);
    const run = await this.runCheck(r);
    this.log(`[providers] ${name} for ${r.model}: ${run.ok ? 'passed' : `failed: ${run.reason}`}${Object.keys(run.worst).length ? ` (worst: ${Object.entries(run.worst).map(([k, v]) => `${k} ${v.toExponential(1)}`).join(', ')})` : ''}`);
    if (memory && run.lasting) {
      try {
        memory.recordVerdict({ ...key, ok: run.ok, reason: run.reason, worst: run.worst });
      } catch (e) {
        this.log(`[providers] could not keep the verdict in ${r.memoryFile}: ${errorText(e)} (the check runs again next time)`);
      }
    }
    if (!run.lasting) forget();
    return run.ok ? null : `${name} did not pass the check in a separate process (a real run of the model's decode and probe against the CPU): ${run.reason}; the CPU is used`;
  }

  /** Forks the check child and waits for its verdict; a child that dies, hangs or answers garbage fails the check. */
  runCheck(r: VetRequest): Promise<CheckRun> {
    const timeoutMs = this.options.timeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS;
    return new Promise((resolve) => {
      let answer: CheckAnswer | null = null;
      let unreadable: string | null = null;
      let timedOut = false;
      const stderr: string[] = [];
      const child = fork(this.options.childPath, [], {
        execArgv: this.options.execArgv ?? [],
        env: { ...(this.options.env ?? process.env), [ROLE_ENV]: CHECK_ROLE },
        stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
        serialization: 'json',
      });
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, timeoutMs);
      let buf = '';
      child.stderr?.setEncoding('utf8');
      child.stderr?.on('data', (s: string) => {
        buf += s;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          this.log(`[provider check stderr] ${line}`);
          if (line.trim()) stderr.push(line.trim().slice(0, 300));
          if (stderr.length > 3) stderr.shift();
        }
      });
      child.on('message', (raw: unknown) => {
        try {
          answer = checkAnswer(raw, 'verdict');
        } catch (e) {
          unreadable = errorText(e);
        }
      });
      let settled = false;
      const finish = (run: CheckRun) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(run);
      };
      child.on('error', (e) => {
        if (child.pid === undefined) finish({ ok: false, reason: `the check process could not be started: ${e.message}`, worst: {}, lasting: false });
      });
      child.on('exit', (code, signal) => {
        const tail = stderr.length ? `; its last output: ${stderr.join(' | ')}` : '';
        const a = answer as CheckAnswer | null;
        if (timedOut) {
          finish({ ok: false, reason: `the check did not finish within ${timeoutMs / 1000} s${tail}`, worst: a?.worst ?? {}, lasting: true });
        } else if (signal || code !== 0) {
          const how = signal ? `killed by ${signal}` : `exit code ${code}`;
          const when = a ? 'after it had answered (while releasing the provider)' : `while running the model on ${providerName(r.provider)}`;
          finish({ ok: false, reason: `the check process crashed (${how}) ${when}${tail}`, worst: a?.worst ?? {}, lasting: true });
        } else if (!a) {
          finish({ ok: false, reason: `the check process gave no verdict${unreadable ? ` (unreadable answer: ${unreadable})` : ''}${tail}`, worst: {}, lasting: false });
        } else {
          finish({ ok: a.ok, reason: a.reason, worst: a.worst, lasting: a.lasting });
        }
      });
      const request: CheckRequest = { type: 'check', modelDir: r.modelDir, fingerprint: r.fingerprint, provider: r.provider, threads: r.threads };
      child.send(request, (err) => {
        if (err) this.log(`[providers] could not send the check request: ${err.message}`);
      });
    });
  }
}
