// The per-model repair defaults: `star-repair.json` in a model folder, written by the repair
// benchmark's tuning on the validation split (bench/repair.ts), read here and checked field by
// field — a bad value is refused with an error that names the file, never passed to the engine.
// Without the file the paper's settings apply.

import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { bool, field, intIn, numIn, object, oneOf, optional, ReadError, type Reader } from '../util/read';
import { SELECT_MODES, type SelectMode } from './locate';
import { REPAIR_METHODS, REPAIR_MODES, type RepairMethod, type RepairMode } from './patch';
import { STOP_WHEN, type StopWhen } from './star';
import { RepairError } from './teacher';

export interface MethodDefaults {
  /** The method the benchmark chose for the product (the settings' default method is STAR either way). */
  method?: RepairMethod;
  star: {
    eta: number;
    mode?: RepairMode;
    select?: SelectMode;
    lineSearch?: boolean;
    topK?: number;
    fraction?: number;
    stopWhen?: StopWhen;
    margin?: number;
    preserveRows?: number;
  };
  sgd: { eta: number };
  mint: { f: number };
}

export const PAPER_DEFAULTS: MethodDefaults = { star: { eta: 0.01 }, sgd: { eta: 0.01 }, mint: { f: 0.01 } };

export const DEFAULTS_FILE = 'star-repair.json';
/** A tuning result is a few hundred bytes; anything near this is not one. */
export const MAX_DEFAULTS_BYTES = 64 * 1024;

const step = numIn(1e-6, 100);

const readDefaults: Reader<MethodDefaults> = object((o, path) => {
  const star = object((s, p) => ({
    eta: field(s, 'eta', step, p),
    mode: optional(s, 'mode', oneOf(REPAIR_MODES), p),
    select: optional(s, 'select', oneOf(SELECT_MODES), p),
    lineSearch: optional(s, 'lineSearch', bool, p),
    topK: optional(s, 'topK', intIn(1, 1 << 20), p),
    fraction: optional(s, 'fraction', numIn(1e-6, 1), p),
    stopWhen: optional(s, 'stopWhen', oneOf(STOP_WHEN), p),
    margin: optional(s, 'margin', numIn(0, 20), p),
    preserveRows: optional(s, 'preserveRows', intIn(0, 4096), p),
  }));
  return {
    method: optional(o, 'method', oneOf(REPAIR_METHODS), path),
    star: field(o, 'star', star, path),
    sgd: field(o, 'sgd', object((s, p) => ({ eta: field(s, 'eta', step, p) })), path),
    mint: field(o, 'mint', object((s, p) => ({ f: field(s, 'f', step, p) })), path),
  };
});

function readSmallFile(file: string): string | null {
  let fd: number;
  try {
    // Non-blocking: opening a FIFO for reading would otherwise wait for a writer forever.
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new RepairError('invalid-option', `${file}: cannot be read (${(e as Error).message})`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new RepairError('invalid-option', `${file} is not a regular file: delete it, or run npm run bench:repair to write it again`);
    if (st.size > MAX_DEFAULTS_BYTES) throw new RepairError('invalid-option', `${file} is ${st.size} bytes, more than the ${MAX_DEFAULTS_BYTES} a tuning result can be: delete it, or run npm run bench:repair to write it again`);
    const buf = Buffer.alloc(st.size);
    let at = 0;
    while (at < st.size) {
      const n = readSync(fd, buf, at, st.size - at, at);
      if (n === 0) break;
      at += n;
    }
    return buf.subarray(0, at).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** The tuned defaults of the model in `modelDir`, the paper's when it has none; a bad file is a RepairError naming it. */
export function methodDefaults(modelDir: string): MethodDefaults {
  const file = join(modelDir, DEFAULTS_FILE);
  const text = readSmallFile(file);
  if (text === null) return PAPER_DEFAULTS;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new RepairError('invalid-option', `${file} is not valid JSON (${(e as Error).message}): delete it, or run npm run bench:repair to write it again`);
  }
  try {
    return readDefaults(json, DEFAULTS_FILE);
  } catch (e) {
    if (e instanceof ReadError) throw new RepairError('invalid-option', `${file}: ${e.message}; fix the value, delete the file, or run npm run bench:repair to write it again`);
    throw e;
  }
}
