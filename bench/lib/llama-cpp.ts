// node-llama-cpp as an optional dependency of the benchmarks: loaded at run time (never bundled,
// never required by the extension), typed here by the few calls the benchmark makes, and always
// with its prebuilt CPU binary — getLlama({ gpu: false, build: 'never', skipDownload: true }), so
// nothing is downloaded or compiled. Where it is missing or its binary does not load, callers get
// the reason instead of an exception.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export type LlamaToken = number;

export interface LlamaSequenceLike {
  evaluate(tokens: LlamaToken[], options?: { temperature?: number; yieldEogToken?: boolean }): AsyncGenerator<LlamaToken, void, void | LlamaToken | LlamaToken[]>;
  evaluateWithoutGeneratingNewTokens(tokens: LlamaToken[]): Promise<void>;
  clearHistory(): Promise<void>;
}

export interface LlamaContextLike {
  getSequence(): LlamaSequenceLike;
  dispose(): Promise<void>;
}

export interface LlamaModelLike {
  createContext(options: { contextSize?: number; batchSize?: number; threads?: number; sequences?: number; flashAttention?: boolean }): Promise<LlamaContextLike>;
  dispose(): Promise<void>;
}

export interface LlamaLike {
  loadModel(options: { modelPath: string; gpuLayers?: number; useMmap?: boolean }): Promise<LlamaModelLike>;
  dispose(): Promise<void>;
  readonly gpu: string | false;
  readonly cpuMathCores?: number;
}

interface LlamaCppModule {
  getLlama(options: Record<string, unknown>): Promise<LlamaLike>;
}

export interface LlamaCpp {
  version: string;
  /** A CPU-only llama.cpp with `threads` threads at most. */
  open(threads: number): Promise<LlamaLike>;
}

const PACKAGE = 'node-llama-cpp';

/** node-llama-cpp's package version, or null where it is not installed. */
function installedVersion(): string | null {
  // Its "exports" hide package.json from require(), so look along the node_modules search path.
  for (const dir of require.resolve.paths(PACKAGE) ?? []) {
    const file = join(dir, PACKAGE, 'package.json');
    if (!existsSync(file)) continue;
    try {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { version?: unknown };
      return typeof pkg.version === 'string' ? pkg.version : 'unknown';
    } catch {
      return 'unknown';
    }
  }
  return null;
}

/** node-llama-cpp, or why it cannot be used here. */
export async function loadLlamaCpp(): Promise<{ ok: true; llamaCpp: LlamaCpp } | { ok: false; reason: string }> {
  const version = installedVersion();
  if (version === null) return { ok: false, reason: `${PACKAGE} is not installed (it is an optional devDependency: npm install it to compare with llama.cpp)` };
  let mod: LlamaCppModule;
  try {
    const spec: string = PACKAGE; // a variable, so that bundlers leave the import to run time
    mod = (await import(spec)) as LlamaCppModule;
  } catch (e) {
    return { ok: false, reason: `${PACKAGE} ${version} does not load (${e instanceof Error ? e.message.split('\n')[0] : String(e)})` };
  }
  const llamaCpp: LlamaCpp = {
    version,
    open: (threads) =>
      mod.getLlama({ gpu: false, build: 'never', usePrebuiltBinaries: true, skipDownload: true, progressLogs: false, logLevel: 'error', maxThreads: threads }),
  };
  return { ok: true, llamaCpp };
}

/** Opens llama.cpp once to check that its prebuilt binary runs on this machine. */
export async function probeLlamaCpp(): Promise<{ ok: true; llamaCpp: LlamaCpp } | { ok: false; reason: string }> {
  const r = await loadLlamaCpp();
  if (!r.ok) return r;
  try {
    const llama = await r.llamaCpp.open(1);
    await llama.dispose();
    return r;
  } catch (e) {
    return { ok: false, reason: `node-llama-cpp ${r.llamaCpp.version} has no working prebuilt CPU binary here (${e instanceof Error ? e.message.split('\n')[0] : String(e)}); the benchmark never builds llama.cpp` };
  }
}
