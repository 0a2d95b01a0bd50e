// Readers for untrusted JSON-shaped values (worker messages, panel messages): each returns a
// fresh value holding only the known fields, or throws ReadError naming the path of the first bad
// field ("repair.params.failures[2].prompt: expected a string, got 42"). Pure TypeScript, so the
// webview bundles it too; each protocol wraps ReadError in its own error type at its boundary.

export type Reader<T> = (v: unknown, path: string) => T;

export class ReadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReadError';
  }
}

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'nothing';
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === 'string') return v.length > 40 ? `a string of ${v.length} characters` : JSON.stringify(v);
  if (typeof v === 'number') return String(v);
  return typeof v;
}

export function fail(path: string, expected: string, got: unknown): never {
  throw new ReadError(`${path}: expected ${expected}, got ${describe(got)}`);
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function record(v: unknown, path: string): Record<string, unknown> {
  if (!isRecord(v)) fail(path, 'an object', v);
  return v;
}

export function text(max: number, min = 0): Reader<string> {
  return (v, path) => {
    if (typeof v !== 'string') fail(path, 'a string', v);
    if (v.length > max) fail(path, `at most ${max} characters`, v);
    if (v.length < min) fail(path, min === 1 ? 'a non-empty string' : `at least ${min} characters`, v);
    return v;
  };
}

export const bool: Reader<boolean> = (v, path) => {
  if (typeof v !== 'boolean') fail(path, 'a boolean', v);
  return v;
};

export const finite: Reader<number> = (v, path) => {
  if (typeof v !== 'number' || !Number.isFinite(v)) fail(path, 'a finite number', v);
  return v;
};

export function intIn(min: number, max = Number.MAX_SAFE_INTEGER): Reader<number> {
  return (v, path) => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) fail(path, max === Number.MAX_SAFE_INTEGER ? `an integer ≥ ${min}` : `an integer in ${min}..${max}`, v);
    return v;
  };
}

export function numIn(min: number, max: number): Reader<number> {
  return (v, path) => {
    const n = finite(v, path);
    if (n < min || n > max) fail(path, `a number in [${min}, ${max}]`, v);
    return n;
  };
}

export function oneOf<T extends string>(values: readonly T[]): Reader<T> {
  return (v, path) => {
    if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) fail(path, `one of ${values.join(', ')}`, v);
    return v as T;
  };
}

export function list<T>(item: Reader<T>, max: number): Reader<T[]> {
  return (v, path) => {
    if (!Array.isArray(v)) fail(path, 'an array', v);
    if (v.length > max) fail(path, `at most ${max} items`, v);
    const out = new Array<T>(v.length);
    for (let i = 0; i < v.length; i++) out[i] = item(v[i], `${path}[${i}]`);
    return out;
  };
}

export function nullable<T>(item: Reader<T>): Reader<T | null> {
  return (v, path) => (v === null ? null : item(v, path));
}

/** Reads `o[key]`. */
export function field<T>(o: Record<string, unknown>, key: string, item: Reader<T>, path: string): T {
  return item(o[key], `${path}.${key}`);
}

/** Reads `o[key]` when present; absent and undefined are the same thing. */
export function optional<T>(o: Record<string, unknown>, key: string, item: Reader<T>, path: string): T | undefined {
  return o[key] === undefined ? undefined : item(o[key], `${path}.${key}`);
}

export function object<T>(read: (o: Record<string, unknown>, path: string) => T): Reader<T> {
  return (v, path) => read(record(v, path), path);
}
