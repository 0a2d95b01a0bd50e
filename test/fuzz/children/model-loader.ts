// Fuzz child (bundled by test/fuzz/build.ts, forked by the model area): loads each model folder it
// is sent, as the CLI and the worker do, and answers with the outcome. A loaded model is then used:
// the tokenizer encodes and decodes a sample, the weights are checked for non-finite values and one
// forward pass must give finite logits for every vocabulary entry — a model that loads but would
// complete with garbage is 'silent'. The parent kills this process when a case takes too long.
import { isModelError, loadModelFolder, type ModelFolder } from '../../../src/model';
import { argmax } from '../../../src/model/finite';
import { ModelRuntime } from '../../../src/runtime/runtime';

interface Request { id: number; dir: string }

const SAMPLE = 'def f(n):\n    return n + 1\n' + 'a'.repeat(40) + '!';

function nonFinite(v: unknown, path: string, seen = new Set<unknown>(), depth = 0): string | undefined {
  if (v instanceof Float32Array || v instanceof Float64Array) {
    for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i]!)) return `${path}[${i}] = ${v[i]}`;
    return undefined;
  }
  if (typeof v !== 'object' || v === null || seen.has(v) || depth > 6) return undefined;
  seen.add(v);
  for (const [k, x] of Object.entries(v)) {
    const found = nonFinite(x, `${path}.${k}`, seen, depth + 1);
    if (found) return found;
  }
  return undefined;
}

async function use(folder: ModelFolder): Promise<string[]> {
  const problems: string[] = [];
  const bad = nonFinite(folder.weights, 'weights');
  if (bad) problems.push(`loaded with a non-finite weight: ${bad}`);
  const ids = folder.tokenizer.encode(SAMPLE);
  const outOfRange = ids.filter((id) => !Number.isSafeInteger(id) || id < 0 || id >= folder.config.vocab);
  if (outOfRange.length) problems.push(`the tokenizer produced ids outside the vocabulary: ${outOfRange.slice(0, 5).join(', ')}`);
  folder.tokenizer.decode(ids);
  if (problems.length) return problems;
  const runtime = new ModelRuntime(folder.config, folder.weights, { provider: 'cpu', threads: 1 });
  try {
    const { logits } = await runtime.decode(ids.length ? ids.slice(0, 16) : [0]);
    if (logits.length !== folder.config.vocab) problems.push(`logits have ${logits.length} entries for a vocabulary of ${folder.config.vocab}`);
    // The next token as generate() picks it: a NaN or +Infinity logit must raise logits-not-finite.
    const next = argmax(logits);
    const i = logits.findIndex((x) => Number.isNaN(x) || x === Infinity);
    if (i >= 0) problems.push(`logit ${i} is ${logits[i]} and token ${next} was chosen without an error`);
  } finally {
    await runtime.release();
  }
  return problems;
}

async function handle(req: Request): Promise<{ id: number; outcome: string; detail?: string }> {
  let folder: ModelFolder;
  try {
    folder = loadModelFolder(req.dir);
  } catch (e) {
    if (isModelError(e)) return { id: req.id, outcome: 'typed', detail: `${e.code}: ${e.message}` };
    return { id: req.id, outcome: 'crash', detail: `untyped error while loading: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}` };
  }
  try {
    const problems = await use(folder);
    return problems.length ? { id: req.id, outcome: 'silent', detail: problems.join('; ') } : { id: req.id, outcome: 'result' };
  } catch (e) {
    // A model that loads but fails when used: fine if the error is typed and says why.
    if (isModelError(e)) return { id: req.id, outcome: 'typed', detail: `after loading: ${e.code}: ${e.message}` };
    return { id: req.id, outcome: 'crash', detail: `untyped error using the loaded model: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}` };
  }
}

let queue = Promise.resolve();
process.on('message', (m: Request) => {
  queue = queue.then(async () => {
    process.send!(await handle(m));
  });
});
process.on('disconnect', () => process.exit(0));
process.send!({ ready: true });
