// Shared pieces of the `star-repair` commands: the command shape, flag helpers, output.

import type { RuntimeOptions } from '../runtime/providers';

export type Flags = Record<string, string | boolean | undefined>;

export interface Command {
  summary: string;
  usage: string;
  options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>;
  run(modelDir: string | undefined, flags: Flags, runtime: RuntimeOptions): Promise<unknown>;
}

export class UsageError extends Error {}

export const commonOptions = {
  json: { type: 'boolean' },
  ep: { type: 'string' },
  threads: { type: 'string' },
  help: { type: 'boolean' },
} as const;

export function intFlag(flags: Flags, name: string, fallback: number): number {
  const v = flags[name];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${name} must be a non-negative integer, got ${String(v)}`);
  return n;
}

export function print(flags: Flags, value: unknown, human: () => string): void {
  process.stdout.write(flags.json ? JSON.stringify(value, null, 2) + '\n' : human() + '\n');
}

