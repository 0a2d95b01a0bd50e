// The Failure record (docs/formats.md): what the model should have completed.
// Owns its validation, creation and the CLI's JSONL exchange format. No vscode here:
// the CLI, the worker and the tests use it directly.
import { randomUUID } from 'node:crypto';
import { readReplay, type CompletionReplay } from '../runtime/replay';
import { isRecord, ReadError } from '../util/read';
import { FAILURE_STATUSES, type FailureStatus } from './status';

export { FAILURE_STATUSES, type FailureStatus };

export type FailureSource = 'rejected' | 'manual' | 'imported';

export const FAILURE_SOURCES: readonly FailureSource[] = ['rejected', 'manual', 'imported'];

export interface Failure {
  id: string;
  /** ISO 8601 time of capture. */
  createdAt: string;
  source: FailureSource;
  languageId: string;
  uri?: string;
  /** Zero-based line of the document where the completion was rejected. */
  line?: number;
  /** The text before the completion point: what the model saw. */
  prompt: string;
  /**
   * The text after the completion point that the model saw (issue 15: a FIM prompt's suffix, and
   * the context of the clean-suggestion rules); absent in failures stored before it was kept, and
   * for prefix-only prompts captured without one. With `prompt` and `replay.fim` it is all the FIM
   * prompt is built from (runtime/prompt.ts preparePrompt, the layout the editor uses now).
   */
  suffix?: string;
  /** The model's completion the user rejected (display and evaluation only). */
  rejected?: string;
  /** What the model should have produced. */
  desired: string;
  /**
   * What followed the desired text in the document when the failure was captured (the line break
   * and the next line, at most MAX_AFTER_CHARS): how the model tokenises the completion's end there.
   */
  after?: string;
  /** The completion settings the editor used there; absent in failures stored before they were kept (DEFAULT_REPLAY then). */
  replay?: CompletionReplay;
  status: FailureStatus;
  /** Failures that are alike (same group = generalisation set). */
  group?: string;
}

/** Size guards: a huge failure would blow the context and the worker's memory. */
export interface FailureLimits {
  /** Most characters allowed in `prompt` (default 65536). */
  maxPromptChars: number;
  /** Most characters allowed in `desired` and in `rejected` (default 16384). */
  maxDesiredChars: number;
}

export const DEFAULT_FAILURE_LIMITS: Readonly<FailureLimits> = { maxPromptChars: 65536, maxDesiredChars: 16384 };

/** Most characters of `after` kept: the line break and the start of the next line is all the end needs. */
export const MAX_AFTER_CHARS = 256;

/** A value is not a valid Failure; `problems` lists every reason, one sentence each. */
export class InvalidFailureError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid failure: ${problems.join('; ')}`);
    this.name = 'InvalidFailureError';
  }
}

function checkTextFields(v: Record<string, unknown>, limits: FailureLimits, problems: string[]): void {
  if (typeof v.prompt !== 'string') {
    problems.push(`"prompt" must be a string (got ${describe(v.prompt)})`);
  } else if (v.prompt.length === 0) {
    problems.push('"prompt" is empty: give the text that comes before the completion');
  } else if (v.prompt.length > limits.maxPromptChars) {
    problems.push(`"prompt" has ${v.prompt.length} characters, more than the limit of ${limits.maxPromptChars}: ` +
      'keep only the last part of the file before the completion point');
  }
  if (typeof v.desired !== 'string') {
    problems.push(`"desired" must be a string (got ${describe(v.desired)})`);
  } else if (v.desired.length === 0) {
    problems.push('"desired" is empty: give the completion the model should have produced');
  } else if (v.desired.length > limits.maxDesiredChars) {
    problems.push(`"desired" has ${v.desired.length} characters, more than the limit of ${limits.maxDesiredChars}: ` +
      'split it into shorter failures');
  }
  if (v.rejected !== undefined) {
    if (typeof v.rejected !== 'string') problems.push(`"rejected" must be a string when present (got ${describe(v.rejected)})`);
    else if (v.rejected.length > limits.maxDesiredChars) {
      problems.push(`"rejected" has ${v.rejected.length} characters, more than the limit of ${limits.maxDesiredChars}`);
    }
  }
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  return `a ${typeof v}`;
}

function checkOptionalString(v: Record<string, unknown>, key: string, problems: string[]): void {
  if (v[key] !== undefined && typeof v[key] !== 'string') {
    problems.push(`"${key}" must be a string when present (got ${describe(v[key])})`);
  }
}

/**
 * Checks that `value` is a complete Failure and returns it (copied, unknown keys
 * dropped). Throws InvalidFailureError listing every problem.
 */
export function validateFailure(value: unknown, limits: Partial<FailureLimits> = {}): Failure {
  const lim = { ...DEFAULT_FAILURE_LIMITS, ...limits };
  if (!isRecord(value)) throw new InvalidFailureError([`a failure must be a JSON object (got ${describe(value)})`]);
  const problems: string[] = [];
  if (typeof value.id !== 'string' || value.id.length === 0) problems.push('"id" must be a non-empty string');
  if (typeof value.createdAt !== 'string' || Number.isNaN(Date.parse(value.createdAt))) {
    problems.push('"createdAt" must be an ISO 8601 date string');
  }
  if (!FAILURE_SOURCES.includes(value.source as FailureSource)) {
    problems.push(`"source" must be one of ${FAILURE_SOURCES.join(', ')} (got ${JSON.stringify(value.source) ?? 'nothing'})`);
  }
  if (typeof value.languageId !== 'string' || value.languageId.length === 0) {
    problems.push('"languageId" must be a non-empty string such as "python"');
  }
  if (!FAILURE_STATUSES.includes(value.status as FailureStatus)) {
    problems.push(`"status" must be one of ${FAILURE_STATUSES.join(', ')} (got ${JSON.stringify(value.status) ?? 'nothing'})`);
  }
  checkTextFields(value, lim, problems);
  checkOptionalString(value, 'uri', problems);
  checkOptionalString(value, 'group', problems);
  if (value.line !== undefined && !(Number.isInteger(value.line) && (value.line as number) >= 0)) {
    problems.push('"line" must be a non-negative integer when present');
  }
  if (value.suffix !== undefined && !(typeof value.suffix === 'string' && value.suffix.length <= lim.maxPromptChars)) {
    problems.push(`"suffix" must be a string of at most ${lim.maxPromptChars} characters when present: keep only the text right after the completion point`);
  }
  if (value.after !== undefined && !(typeof value.after === 'string' && value.after.length <= MAX_AFTER_CHARS)) {
    problems.push(`"after" must be a string of at most ${MAX_AFTER_CHARS} characters when present`);
  }
  let replay: CompletionReplay | undefined;
  if (value.replay !== undefined) {
    try {
      replay = readReplay(value.replay, 'replay');
    } catch (e) {
      if (!(e instanceof ReadError)) throw e;
      problems.push(e.message);
    }
  }
  if (problems.length > 0) throw new InvalidFailureError(problems);
  const f: Failure = {
    id: value.id as string,
    createdAt: value.createdAt as string,
    source: value.source as FailureSource,
    languageId: value.languageId as string,
    prompt: value.prompt as string,
    desired: value.desired as string,
    status: value.status as FailureStatus,
  };
  if (value.uri !== undefined) f.uri = value.uri as string;
  if (value.line !== undefined) f.line = value.line as number;
  if (value.rejected !== undefined) f.rejected = value.rejected as string;
  if (value.group !== undefined) f.group = value.group as string;
  if (value.after !== undefined) f.after = value.after as string;
  if (value.suffix !== undefined) f.suffix = value.suffix as string;
  if (replay) f.replay = replay;
  return f;
}

/** Fields a caller gives to create a failure; the rest gets defaults. */
export interface NewFailureInput {
  prompt: string;
  desired: string;
  languageId?: string;
  source?: FailureSource;
  uri?: string;
  line?: number;
  rejected?: string;
  group?: string;
  after?: string;
  suffix?: string;
  replay?: CompletionReplay;
  status?: FailureStatus;
  id?: string;
  createdAt?: string;
}

/** Creates a validated pending failure with a fresh id. Throws InvalidFailureError. */
export function createFailure(input: NewFailureInput, limits: Partial<FailureLimits> = {}, now: Date = new Date()): Failure {
  const candidate: Record<string, unknown> = {
    id: input.id ?? randomUUID(),
    createdAt: input.createdAt ?? now.toISOString(),
    source: input.source ?? 'manual',
    languageId: input.languageId ?? 'plaintext',
    prompt: input.prompt,
    desired: input.desired,
    status: input.status ?? 'pending',
  };
  for (const k of ['uri', 'line', 'rejected', 'group', 'after', 'suffix', 'replay'] as const) {
    if (input[k] !== undefined) candidate[k] = input[k];
  }
  return validateFailure(candidate, limits);
}

export interface JsonlError {
  /** One-based line number in the input text. */
  line: number;
  message: string;
}

export interface ParseFailuresOptions extends Partial<FailureLimits> {
  /** languageId for lines that do not give one (default "python"). */
  languageId?: string;
  /** source for lines that do not give one (default "imported"). */
  source?: FailureSource;
  now?: Date;
}

/**
 * Parses the CLI's failures file: one JSON object per line with at least
 * `prompt` and `desired`; `id`, `languageId`, `rejected`, `group`, `uri`, `line`,
 * `status`, `source`, `createdAt`, `after`, `suffix`, `replay` are optional. Blank lines are skipped. A bad
 * line is reported with its number and the rest is still processed; a repeated
 * id is reported on the later line.
 */
export function parseFailuresJsonl(text: string, options: ParseFailuresOptions = {}): { failures: Failure[]; errors: JsonlError[] } {
  const limits: FailureLimits = {
    maxPromptChars: options.maxPromptChars ?? DEFAULT_FAILURE_LIMITS.maxPromptChars,
    maxDesiredChars: options.maxDesiredChars ?? DEFAULT_FAILURE_LIMITS.maxDesiredChars,
  };
  const now = options.now ?? new Date();
  const failures: Failure[] = [];
  const errors: JsonlError[] = [];
  const seen = new Map<string, number>();
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const raw = lines[i]!.replace(/\r$/, '');
    if (raw.trim().length === 0) continue;
    let obj: unknown;
    try {
      obj = JSON.parse(raw);
    } catch (err) {
      errors.push({ line: lineNo, message: `not valid JSON (${(err as Error).message})` });
      continue;
    }
    if (!isRecord(obj)) {
      errors.push({ line: lineNo, message: `expected a JSON object like {"prompt": "...", "desired": "..."} (got ${describe(obj)})` });
      continue;
    }
    const candidate: Record<string, unknown> = {
      ...obj,
      id: obj.id ?? `line-${lineNo}-${randomUUID().slice(0, 8)}`,
      createdAt: obj.createdAt ?? now.toISOString(),
      source: obj.source ?? options.source ?? 'imported',
      languageId: obj.languageId ?? options.languageId ?? 'python',
      status: obj.status ?? 'pending',
    };
    try {
      const f = validateFailure(candidate, limits);
      const first = seen.get(f.id);
      if (first !== undefined) {
        errors.push({ line: lineNo, message: `id "${f.id}" was already used on line ${first}: ids must be unique` });
        continue;
      }
      seen.set(f.id, lineNo);
      failures.push(f);
    } catch (err) {
      if (!(err instanceof InvalidFailureError)) throw err;
      errors.push({ line: lineNo, message: err.problems.join('; ') });
    }
  }
  return { failures, errors };
}

/** Writes failures in the format parseFailuresJsonl reads (one object per line). */
export function formatFailuresJsonl(failures: readonly Failure[]): string {
  return failures.map((f) => JSON.stringify(f)).join('\n') + (failures.length > 0 ? '\n' : '');
}
