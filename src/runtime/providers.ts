// Execution-provider choice: which onnxruntime provider a session runs on, and why not another.
// `auto` tries CUDA (only when its provider libraries are installed), then WebGPU (never on a
// software, CPU-type adapter such as Mesa's llvmpipe: see adapter.ts), then CPU; every provider
// that was tried and failed is recorded with its reason so the UI and the CLI can show it.
// A caller may vet every GPU candidate before its session is made (RuntimeOptions.vet: the worker
// runs the model's graphs on it in a child process first, src/worker/provider-vetting.ts).

import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { systemSoftwareAdapterReason } from './adapter';
import type { ProviderName } from './provider-names';

export { PROVIDERS, type ProviderName } from './provider-names';

export interface Fallback {
  provider: string;
  reason: string;
}

export interface SessionChoice {
  session: ort.InferenceSession;
  provider: string;
  fallbacks: Fallback[];
}

export interface RuntimeOptions {
  provider?: ProviderName;
  /** Intra-op threads; 0 or undefined lets onnxruntime decide. */
  threads?: number;
  /**
   * Asked before a session is made on any provider but the CPU: null lets it be tried, a reason
   * passes over it (recorded as a fallback). Called once per candidate per session.
   */
  vet?: (provider: string) => Promise<string | null>;
}

/**
 * The largest storage buffer a WebGPU shader may bind: WebGPU's default maxStorageBufferBindingSize,
 * which every adapter supports, and exactly Mesa lavapipe's limit (Vulkan maxStorageBufferRange =
 * 128 MiB). onnxruntime-node reports no adapter limits, so graphs for WebGPU assume this one.
 */
export const WEBGPU_BINDING_LIMIT = 128 * 2 ** 20;

/** onnxruntime 1.30 refuses an initializer given as in-memory external data over 2 GiB (any provider). */
export const ORT_INITIALIZER_LIMIT = 2 ** 31;

/**
 * The largest weight tensor, in bytes, a graph for `provider` may hold (null: no limit); weights
 * above it are split into row blocks in the graph (graph/architectures/decoder.ts weightBlocks). The
 * CPU with weights as inputs takes any size; docs/gpu.md says what fails above these limits.
 */
export function tensorByteLimit(provider: string, weights: 'inputs' | 'initializers'): number | null {
  if (provider === 'webgpu') return WEBGPU_BINDING_LIMIT;
  return weights === 'initializers' ? ORT_INITIALIZER_LIMIT : null;
}

function cudaInstalled(): string | null {
  // The CUDA provider's shared libraries sit next to the binding when onnxruntime-node's install
  // script was allowed to download them; offline installs do not have them.
  try {
    const binding = require.resolve('onnxruntime-node/package.json');
    const dir = join(dirname(binding), 'bin', 'napi-v6', process.platform, process.arch);
    return existsSync(join(dir, 'libonnxruntime_providers_cuda.so')) ? null : `libonnxruntime_providers_cuda.so is not installed in ${dir}`;
  } catch (e) {
    return String(e);
  }
}

function candidates(requested: ProviderName): string[] {
  if (requested !== 'auto') return requested === 'cpu' ? ['cpu'] : [requested, 'cpu'];
  return ['cuda', 'webgpu', 'cpu'];
}

function platformReason(provider: string): string | null {
  if (provider === 'cuda') return process.platform === 'darwin' ? 'CUDA is not available on macOS' : cudaInstalled();
  if (provider === 'dml' && process.platform !== 'win32') return 'DirectML exists only on Windows';
  if (provider === 'coreml' && process.platform !== 'darwin') return 'CoreML exists only on macOS';
  return null;
}

/** What to load on a given provider: the model bytes and any extra session options (external data). */
export type ModelForProvider = (provider: string) => { model: Uint8Array; options?: ort.InferenceSession.SessionOptions };

/** Why `auto` passes over a provider that exists here: WebGPU on a software adapter. */
async function autoReason(provider: string): Promise<string | null> {
  return provider === 'webgpu' ? systemSoftwareAdapterReason() : null;
}

/** Creates a session on the first provider that works, falling back to CPU with the reasons. */
export async function createSession(modelFor: ModelForProvider | Uint8Array, options: RuntimeOptions = {}, extra: ort.InferenceSession.SessionOptions = {}): Promise<SessionChoice> {
  const fallbacks: Fallback[] = [];
  const build: ModelForProvider = typeof modelFor === 'function' ? modelFor : () => ({ model: modelFor });
  const requested = options.provider ?? 'cpu';
  for (const provider of candidates(requested)) {
    const skip = platformReason(provider) ?? (requested === 'auto' ? await autoReason(provider) : null) ?? (provider !== 'cpu' && options.vet ? await options.vet(provider) : null);
    if (skip) {
      fallbacks.push({ provider, reason: skip });
      continue;
    }
    try {
      const { model, options: more } = build(provider);
      const sessionOptions: ort.InferenceSession.SessionOptions = { executionProviders: [provider], graphOptimizationLevel: 'all', ...extra, ...more };
      if (options.threads && options.threads > 0) sessionOptions.intraOpNumThreads = options.threads;
      const session = await ort.InferenceSession.create(model, sessionOptions);
      return { session, provider, fallbacks };
    } catch (e) {
      const reason = e instanceof Error ? e.message.split('\n')[0] : String(e);
      fallbacks.push({ provider, reason });
      if (provider !== 'cpu') console.warn(`star-repair: execution provider ${provider} is not used: ${reason}`);
    }
  }
  throw new Error(`no execution provider could run the model: ${fallbacks.map((f) => `${f.provider}: ${f.reason}`).join('; ')}`);
}
