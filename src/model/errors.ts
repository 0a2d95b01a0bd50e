// Typed errors for everything a user can get wrong in a model folder (src/model/).
// Callers switch on `code`; the message says what is wrong and what to do about it.

export type ModelErrorCode =
  | 'config-missing'
  | 'config-invalid'
  | 'unsupported-architecture'
  | 'weights-missing'
  | 'safetensors-invalid'
  | 'unsupported-dtype'
  | 'shape-mismatch'
  | 'tensor-missing'
  | 'tokenizer-missing'
  | 'tokenizer-invalid'
  | 'tokenizer-unsafe'
  | 'weights-not-finite'
  | 'logits-not-finite';

export class ModelError extends Error {
  readonly code: ModelErrorCode;
  /** The file or folder the problem was found in, when there is one. */
  readonly path?: string;

  constructor(code: ModelErrorCode, message: string, path?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ModelError';
    this.code = code;
    if (path !== undefined) this.path = path;
  }
}

export function isModelError(e: unknown): e is ModelError {
  return e instanceof ModelError;
}

/** Message of an unknown thrown value, for wrapping library errors. */
export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
