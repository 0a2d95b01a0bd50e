// The provider memory: what this machine has learnt about running a model on a GPU execution
// provider, in one small JSON file in the extension's global storage (provider-memory.json):
//   - verdicts of the provider check (src/runtime/provider-check.ts, run in a child process by
//     provider-vetting.ts), per machine + model fingerprint + provider + onnxruntime version + check
//     version, so the check runs once;
//   - crashes: a provider that crashed the model worker, per machine + model fingerprint, so the
//     worker restarts on the CPU and stays there until the user tries the provider again.
// The worker writes verdicts, the extension writes crashes; both read-modify-write under the
// store lock (src/store/lock.ts) with the atomic writer (src/store/atomic.ts). A damaged file is
// moved aside and the memory starts empty: at worst a check runs again.

import { hostname } from 'node:os';
import { readJsonFile, moveAside, writeJsonFileAtomic } from '../store/atomic';
import { withFileLock } from '../store/lock';
import { bool, field, finite, intIn, isRecord, list, object, text, type Reader } from '../util/read';

export const PROVIDER_MEMORY_FILE = 'provider-memory.json';
const FORMAT_VERSION = 1;
/** Entries kept per list (the oldest go first). */
const MAX_ENTRIES = 200;

const PROVIDER_NAMES: Record<string, string> = { webgpu: 'WebGPU', cuda: 'CUDA', dml: 'DirectML', coreml: 'CoreML', cpu: 'CPU' };

/** How messages name a provider. */
export function providerName(provider: string): string {
  return PROVIDER_NAMES[provider] ?? provider;
}

/** This machine, as the memory tells machines apart (global storage can sit on a shared home). */
export function machineKey(): string {
  return `${hostname()} ${process.platform}-${process.arch}`;
}

export interface VerdictKey {
  fingerprint: string;
  provider: string;
  onnxruntime: string;
  check: number;
}

export interface Verdict extends VerdictKey {
  machine: string;
  ok: boolean;
  /** Why the provider failed the check ('' when it passed). */
  reason: string;
  /** Worst error per quantity (see ProviderCheckResult.worst). */
  worst: Record<string, number>;
  at: string;
}

export interface ProviderCrash {
  machine: string;
  fingerprint: string;
  provider: string;
  /** How the worker died ('killed by SIGSEGV', 'exit code 134'). */
  how: string;
  /** The model's name, for messages. */
  model: string;
  at: string;
}

interface MemoryFile {
  version: number;
  verdicts: Verdict[];
  crashes: ProviderCrash[];
}

const ID = text(256, 1);

const worstReader: Reader<Record<string, number>> = object((o, p) => {
  const out: Record<string, number> = {};
  for (const k of Object.keys(o).slice(0, 32)) {
    const v = o[k];
    // Infinity (a NaN on the GPU) is written as null by JSON.
    out[k.slice(0, 64)] = v === null ? Infinity : finite(v, `${p}.${k}`);
  }
  return out;
});

const verdictReader: Reader<Verdict> = object((o, p) => ({
  machine: field(o, 'machine', text(512, 1), p),
  fingerprint: field(o, 'fingerprint', ID, p),
  provider: field(o, 'provider', text(32, 1), p),
  onnxruntime: field(o, 'onnxruntime', text(64, 1), p),
  check: field(o, 'check', intIn(0), p),
  ok: field(o, 'ok', bool, p),
  reason: field(o, 'reason', text(4000), p),
  worst: field(o, 'worst', worstReader, p),
  at: field(o, 'at', text(64), p),
}));

const crashReader: Reader<ProviderCrash> = object((o, p) => ({
  machine: field(o, 'machine', text(512, 1), p),
  fingerprint: field(o, 'fingerprint', ID, p),
  provider: field(o, 'provider', text(32, 1), p),
  how: field(o, 'how', text(1000), p),
  model: field(o, 'model', text(1000), p),
  at: field(o, 'at', text(64), p),
}));

const fileReader: Reader<MemoryFile> = object((o, p) => ({
  version: field(o, 'version', intIn(1, FORMAT_VERSION), p),
  verdicts: field(o, 'verdicts', list(verdictReader, 10 * MAX_ENTRIES), p),
  crashes: field(o, 'crashes', list(crashReader, 10 * MAX_ENTRIES), p),
}));

function empty(): MemoryFile {
  return { version: FORMAT_VERSION, verdicts: [], crashes: [] };
}

function sameVerdict(a: VerdictKey & { machine: string }, b: VerdictKey & { machine: string }): boolean {
  return a.machine === b.machine && a.fingerprint === b.fingerprint && a.provider === b.provider && a.onnxruntime === b.onnxruntime && a.check === b.check;
}

export class ProviderMemory {
  constructor(
    readonly file: string,
    private readonly log: (line: string) => void = () => {},
    readonly machine: string = machineKey(),
  ) {}

  /** The whole file; empty when it is missing, unreadable (logged) or damaged (moved aside, logged). */
  private read(): MemoryFile {
    let raw: unknown;
    try {
      raw = readJsonFile(this.file);
    } catch (e) {
      return this.damaged(e);
    }
    if (raw === undefined) return empty();
    if (isRecord(raw) && typeof raw.version === 'number' && raw.version > FORMAT_VERSION) {
      this.log(`[providers] ${this.file} was written by a newer STAR Repair (format ${raw.version}); it is not used`);
      return empty();
    }
    try {
      return fileReader(raw, 'provider memory');
    } catch (e) {
      return this.damaged(e);
    }
  }

  private damaged(e: unknown): MemoryFile {
    let where = '';
    try {
      where = `; moved aside to ${moveAside(this.file)}`;
    } catch { /* gone or not movable: it is replaced on the next write */ }
    this.log(`[providers] ${this.file} could not be read (${e instanceof Error ? e.message : String(e)})${where}; provider checks run again`);
    return empty();
  }

  private change(edit: (m: MemoryFile) => void): void {
    withFileLock(this.file, () => {
      const m = this.read();
      edit(m);
      m.verdicts = m.verdicts.slice(-MAX_ENTRIES);
      m.crashes = m.crashes.slice(-MAX_ENTRIES);
      writeJsonFileAtomic(this.file, m);
    });
  }

  /** This machine's provider crashes. */
  crashes(): ProviderCrash[] {
    return this.read().crashes.filter((c) => c.machine === this.machine);
  }

  verdict(key: VerdictKey): Verdict | undefined {
    return this.read().verdicts.find((v) => sameVerdict(v, { ...key, machine: this.machine }));
  }

  recordVerdict(v: Omit<Verdict, 'machine' | 'at'>): void {
    const entry: Verdict = { ...v, machine: this.machine, at: new Date().toISOString() };
    this.change((m) => {
      m.verdicts = [...m.verdicts.filter((x) => !sameVerdict(x, entry)), entry];
    });
  }

  recordCrash(c: Omit<ProviderCrash, 'machine' | 'at'>): void {
    const entry: ProviderCrash = { ...c, machine: this.machine, at: new Date().toISOString() };
    this.change((m) => {
      m.crashes = [...m.crashes.filter((x) => !(x.machine === entry.machine && x.fingerprint === entry.fingerprint && x.provider === entry.provider)), entry];
    });
  }

  /** Forgets a provider's crash and check verdicts for a model on this machine ("Try WebGPU again"). */
  forget(fingerprint: string, provider: string): void {
    const mine = (x: { machine: string; fingerprint: string; provider: string }) => x.machine === this.machine && x.fingerprint === fingerprint && x.provider === provider;
    this.change((m) => {
      m.crashes = m.crashes.filter((x) => !mine(x));
      m.verdicts = m.verdicts.filter((x) => !mine(x));
    });
  }
}
