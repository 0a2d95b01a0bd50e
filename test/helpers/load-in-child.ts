// Loads a model folder, or one part of it, in a child process with a time limit, so a test of
// something that used to hang (a FIFO, /dev/zero, a backtracking regex) fails instead of hanging.
// Run as a script it does the load and prints {ok, code, message, ms} as one JSON line.
import { spawnSync } from 'node:child_process';
import * as model from '../../src/model/index';

export type Part = 'folder' | 'config' | 'tokenizer' | 'fingerprint';
export interface ChildResult { ok: boolean; code?: string; message?: string; ms: number; timedOut: boolean; vocabSize?: number; encoded?: number[] }

/** Loads `part` of `dir` in a fresh process; `timedOut` when it took longer than `timeoutMs`. */
export function loadInChild(part: Part, dir: string, timeoutMs = 20_000, text?: string): ChildResult {
  const start = Date.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', __filename, part, dir, text ?? ''], { encoding: 'utf8', timeout: timeoutMs });
  const ms = Date.now() - start;
  if (r.error || r.signal) return { ok: false, ms, timedOut: true, message: `killed after ${ms} ms (${String(r.error ?? r.signal)})` };
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return { ...(JSON.parse(line) as ChildResult), timedOut: false };
  } catch {
    return { ok: false, ms, timedOut: false, message: `no result: ${r.stdout}${r.stderr}` };
  }
}

function childMain(part: Part, dir: string, text: string): void {
  const start = Date.now();
  const out: Record<string, unknown> = {};
  try {
    if (part === 'folder') model.loadModelFolder(dir);
    else if (part === 'config') model.loadConfig(dir);
    else if (part === 'fingerprint') model.fingerprint(dir, model.loadConfig(dir));
    else {
      const tok = model.loadTokenizer(dir);
      out['vocabSize'] = tok.vocabSize;
      if (text) out['encoded'] = tok.encode(text);
    }
    out['ok'] = true;
  } catch (e) {
    out['ok'] = false;
    out['code'] = (e as { code?: unknown }).code;
    out['message'] = e instanceof Error ? e.message : String(e);
  }
  out['ms'] = Date.now() - start;
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(0);
}

if (require.main === module) childMain(process.argv[2] as Part, process.argv[3]!, process.argv[4] ?? '');
