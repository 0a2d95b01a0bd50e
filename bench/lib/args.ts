// Command-line options of the runtime benchmark, checked up front: a bad flag stops the run with
// a message that says what is wrong and what is accepted, before minutes of set-up.
import { availableParallelism } from 'node:os';

export type BenchProvider = 'cpu' | 'webgpu' | 'cuda';
const PROVIDERS: readonly BenchProvider[] = ['cpu', 'webgpu', 'cuda'];

export class BenchArgsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BenchArgsError';
  }
}

export interface RuntimeBenchArgs {
  ep: BenchProvider;
  /** config.json of the model whose shapes are benchmarked. */
  config: string;
  threads: number;
  /** Prompt length before the timed decode steps. */
  prompt: number;
  /** Timed decode steps. */
  tokens: number;
  /** Sequence length of the prefill, probe and score figures. */
  seq: number;
  /** Positions at the end of the sequence in the "last positions" mask. */
  lastMask: number;
  /** Timed runs of each sequence-level figure (after one warm-up run). */
  repeats: number;
  /** Where the JSON goes; defaults to bench/out/runtime-<ep>.json. */
  out: string | null;
}

export const RUNTIME_USAGE = `usage: npm run bench:runtime -- [--ep cpu|webgpu|cuda] [--config <config.json>] [--threads N]
       [--prompt N] [--tokens N] [--seq N] [--last-mask N] [--repeats N] [--out <file.json>]`;

const DEFAULTS: RuntimeBenchArgs = {
  ep: 'cpu',
  config: 'bench/configs/qwen2.5-coder-0.5b.json',
  threads: 0,
  prompt: 16,
  tokens: 32,
  seq: 256,
  lastMask: 32,
  repeats: 3,
  out: null,
};

function positiveInt(flag: string, v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new BenchArgsError(`${flag} wants a positive whole number, got "${v}"\n${RUNTIME_USAGE}`);
  return n;
}

export function parseRuntimeArgs(argv: readonly string[]): RuntimeBenchArgs {
  const a: RuntimeBenchArgs = { ...DEFAULTS, threads: availableParallelism() };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined || v.startsWith('--')) throw new BenchArgsError(`${flag} needs a value\n${RUNTIME_USAGE}`);
      return v;
    };
    switch (flag) {
      case '--ep': {
        const v = value();
        if (!(PROVIDERS as readonly string[]).includes(v)) throw new BenchArgsError(`--ep must be one of ${PROVIDERS.join(', ')}, got "${v}"`);
        a.ep = v as BenchProvider;
        break;
      }
      case '--config':
        a.config = value();
        break;
      case '--threads':
        a.threads = positiveInt(flag, value());
        break;
      case '--prompt':
        a.prompt = positiveInt(flag, value());
        break;
      case '--tokens':
        a.tokens = positiveInt(flag, value());
        break;
      case '--seq':
        a.seq = positiveInt(flag, value());
        break;
      case '--last-mask':
        a.lastMask = positiveInt(flag, value());
        break;
      case '--repeats':
        a.repeats = positiveInt(flag, value());
        break;
      case '--out':
        a.out = value();
        break;
      case '--help':
      case '-h':
        throw new BenchArgsError(RUNTIME_USAGE);
      default:
        throw new BenchArgsError(`unknown option "${flag}"\n${RUNTIME_USAGE}`);
    }
  }
  if (a.lastMask > a.seq) throw new BenchArgsError(`--last-mask (${a.lastMask}) cannot exceed --seq (${a.seq})`);
  return a;
}
