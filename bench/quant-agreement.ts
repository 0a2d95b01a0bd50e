// Agreement of quantised weights with fp32 on the embedded model (issue 16): on held-out Python
// (standard-library modules never used in training, tools/train-tiny-coder/heldout-modules.txt),
// windows of the given files are scored in one forward pass each; per position, top-1 agreement
// with fp32 and KL(fp32 ‖ quantised), for int8 and int4, on the exact Ŵ (score graph) and on the
// decode graph (accuracy_level 4) for the last position of each window.
//   node --import tsx bench/quant-agreement.ts <file.py>...
import { readFileSync } from 'node:fs';
import { openModel } from '../src/runtime/open';

const WINDOW = 128;

function logSoftmax(row: Float32Array | Float64Array): Float64Array {
  let max = -Infinity;
  for (const x of row) max = Math.max(max, x);
  let s = 0;
  for (const x of row) s += Math.exp(x - max);
  const lse = max + Math.log(s);
  return Float64Array.from(row, (x) => x - lse);
}
const argmax = (a: ArrayLike<number>) => { let b = 0; for (let i = 1; i < a.length; i++) if (a[i] > a[b]) b = i; return b; };

async function main(): Promise<void> {
  const files = process.argv.slice(2);
  const base = openModel(undefined, { provider: 'cpu', threads: 2, weights: 'fp32' });
  const tok = base.folder.tokenizer;
  const V = base.folder.config.vocab;
  const windows: number[][] = [];
  for (const f of files) {
    const ids = tok.encode(readFileSync(f, 'utf8'));
    for (let i = 0; i + WINDOW + 1 <= ids.length && windows.length < 40; i += WINDOW) windows.push(ids.slice(i, i + WINDOW + 1));
  }
  for (const format of ['int8', 'int4'] as const) {
    const q = openModel(undefined, { provider: 'cpu', threads: 2, weights: format });
    let same = 0, n = 0, kl = 0, lastSame = 0;
    for (const w of windows) {
      const ids = w.slice(0, WINDOW);
      const targets = w.slice(1);
      const mask = ids.map(() => 1);
      const a = await base.runtime.score(ids, targets, mask);
      const b = await q.runtime.score(ids, targets, mask);
      for (let t = 0; t < WINDOW; t++) {
        const pa = logSoftmax(a.logits.subarray(t * V, (t + 1) * V));
        const pb = logSoftmax(b.logits.subarray(t * V, (t + 1) * V));
        if (argmax(pa) === argmax(pb)) same++;
        for (let v = 0; v < V; v++) kl += Math.exp(pa[v]) * (pa[v] - pb[v]);
        n++;
      }
      const da = await base.runtime.decode(ids);
      const db = await q.runtime.decode(ids);
      if (argmax(da.logits) === argmax(db.logits)) lastSame++;
    }
    console.log(`${format}: ${n} held-out positions in ${windows.length} windows: top-1 agreement with fp32 ${(100 * same / n).toFixed(2)} %, mean KL ${(kl / n).toExponential(2)} nats; decode graph (accuracy_level 4), last position: ${lastSame}/${windows.length}; weights ${(q.runtime.weightBytes / 1e6).toFixed(2)} MB vs fp32 ${(base.runtime.weightBytes / 1e6).toFixed(2)} MB`);
    await q.runtime.release();
  }
  await base.runtime.release();
}

main().catch((e) => { console.error(e); process.exit(1); });
