// Shared pieces of the `star-repair` commands: the command shape, flag helpers, output.

import type { OpenOptions } from '../runtime/open';

export type Flags = Record<string, string | boolean | undefined>;

export interface Command {
  summary: string;
  usage: string;
  options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>;
  run(modelDir: string | undefined, flags: Flags, runtime: OpenOptions): Promise<unknown>;
}

export class UsageError extends Error {}

export const commonOptions = {
  json: { type: 'boolean' },
  ep: { type: 'string' },
  threads: { type: 'string' },
  weights: { type: 'string' },
  help: { type: 'boolean' },
} as const;

export function intFlag(flags: Flags, name: string, fallback: number): number {
  const v = flags[name];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${name} must be a non-negative integer, got ${String(v)}`);
  return n;
}

/**
 * Resolves once everything written to `stream` so far has been handed to the OS: writes complete
 * in order, so the callback of an empty write comes after them. A stream whose reader is gone
 * (EPIPE) resolves too — nothing more can be shown.
 */
export function drained(stream: NodeJS.WritableStream & { destroyed?: boolean; writable?: boolean }): Promise<void> {
  return new Promise((resolve) => {
    if (stream.destroyed || stream.writable === false) return resolve();
    stream.write('', () => resolve());
  });
}

/** Ignore write errors of the CLI's own output (a reader that left: `| head`) instead of crashing on them. */
export function tolerateClosedOutput(): void {
  for (const s of [process.stdout, process.stderr]) s.on('error', () => undefined);
}

/**
 * Exits with `code` once stdout and stderr have drained. process.exit() on its own drops what is
 * still queued for a pipe whose reader is slow (all but the first 64 KiB).
 */
export async function exitAfterOutput(code: number): Promise<void> {
  process.exitCode = code;
  await Promise.all([drained(process.stdout), drained(process.stderr)]);
  process.exit(code);
}

export function print(flags: Flags, value: unknown, human: () => string): void {
  process.stdout.write(flags.json ? JSON.stringify(value, null, 2) + '\n' : human() + '\n');
}

