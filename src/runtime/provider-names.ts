// The execution-provider vocabulary: the one list of names the setting (settings.ts), the worker
// protocol and the runtime (providers.ts) accept, in the order the Settings editor shows them.
// No Node and no onnxruntime here, so the extension and the panel can import it.

export const PROVIDERS = ['auto', 'cpu', 'webgpu', 'cuda', 'dml', 'coreml'] as const;
/** 'auto': CUDA when its libraries are installed, then WebGPU, then the CPU (providers.ts). */
export type ProviderName = (typeof PROVIDERS)[number];
