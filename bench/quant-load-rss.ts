// Peak RSS of loading an F16/BF16 checkpoint straight into a quantised format (issue 16): the goal
// is peak RSS ≤ the checkpoint's file size + the quantised weights, with no fp32 copy of the model.
//   node --import tsx bench/quant-load-rss.ts [--config bench/configs/qwen2.5-coder-1.5b.json]
//        [--format int8|int4] [--dtype BF16|F16] [--dir D] [--keep] [--compare]
// 1. Writes a random-weight checkpoint with the config's shapes (the tensors of
//    model/weights.ts checkpointPlan, the byte-level tokenizer of model/synthetic.ts) tensor by
//    tensor in 1 Mi-value chunks, so the writer never holds a tensor whole; into --dir (kept) or
//    a temp folder (removed unless --keep).
// 2. In a fresh child process (node --expose-gc, the loader and onnxruntime imported), notes the
//    RSS of node and its modules, loads the folder with loadQuantisedModelFolder (no cache: every matrix is read
//    and quantised), and reports peak RSS (bench/lib/machine.ts peakRssBytes), RSS after a
//    garbage collection, the file size and the quantised bytes, as one JSON line and a sentence.
// --compare also measures, in another fresh child, the way int8/int4 loaded before issue 16's
// streaming load: loadModelFolder (the whole model in fp32) then quantiseModel.
// --repair goes on in the same child as the extension would (issue 16: 1.5B in int8 loads,
// decodes and runs one STAR repair within 8 GB): a ModelRuntime on the loaded weights, a 16-token
// prompt and 16 greedy tokens, then one STAR repair (batch, η 0.1, up to 10 epochs, stop when the
// target is the argmax; --select model, the default, takes the selection the extension would
// (repair/run.ts plannedPatch: global on a real model, whose dense patch is too large to keep);
// dense changes every neuron of every layer, layer the top quarter of the layers — the bench runs
// them even where the extension would refuse the patch, and says so) of a synthetic failure — 8 target tokens after 56 prompt tokens,
// the targets the tokens the model ranks 5th there — and reports the peak RSS of the whole child.
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parseConfig, type ModelConfig } from '../src/model/config';
import { checkpointPlan, planTensors } from '../src/model/weights';
import { float32ToBF16Bits, float32ToF16Bits, type Dtype } from '../src/model/safetensors';
import { byteLevelTokenizerJson } from '../src/model/synthetic';
import { uniformFiller } from '../src/util/random';
import { loadQuantisedModelFolder, quantiseModel, quantisedModelBytes, type QuantisedModel } from '../src/runtime/quantised-weights';
import { loadModelFolder } from '../src/model';
import { collectGarbage, peakRssBytes } from './lib/machine';
import { ModelRuntime } from '../src/runtime/runtime';
import { argmax } from '../src/model/finite';
import { RepairModel, wholeTargetRight } from '../src/repair/engine';
import { quantisedRepairWeights } from '../src/repair/repair-weights';
import { repairStar } from '../src/repair/star';
import { SELECT_SETTINGS, type SelectMode, type SelectSetting } from '../src/repair/locate';
import { MAX_PATCH_PARAMS } from '../src/repair/patch';
import { plannedPatch } from '../src/repair/run';
import type { Example } from '../src/repair/teacher';
import { seededRandom } from '../src/util/random';

const CHUNK_VALUES = 1 << 20;

/** Writes `dir/model.safetensors` for `config` in `dtype`, chunk by chunk; returns its size in bytes. */
function writeRandomCheckpoint(dir: string, config: ModelConfig, dtype: Exclude<Dtype, 'F32'>, seed = 1): number {
  const tensors = planTensors(checkpointPlan(config, () => false));
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const t of tensors) {
    const bytes = t.shape.reduce((a, b) => a * b, 1) * 2;
    header[t.name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  const file = join(dir, 'model.safetensors');
  const fd = openSync(file, 'w');
  try {
    const write = (b: Uint8Array) => {
      for (let done = 0; done < b.length;) done += writeSync(fd, b, done, b.length - done);
    };
    write(prefix);
    write(json);
    const fill = uniformFiller(seed);
    const toBits = dtype === 'BF16' ? float32ToBF16Bits : float32ToF16Bits;
    const out = new Uint8Array(CHUNK_VALUES * 2);
    for (const t of tensors) {
      // Matrices like a fresh model's (std 0.02), norm weights near 1, biases small.
      const [centre, spread] = t.matrix ? [0, 0.02 * Math.sqrt(3)] : t.name.endsWith('bias') ? [0, 0.02] : [1, 0.1];
      const count = t.shape.reduce((a, b) => a * b, 1);
      for (let i = 0; i < count; i += CHUNK_VALUES) {
        const n = Math.min(CHUNK_VALUES, count - i);
        const values = fill(n, centre, spread);
        for (let j = 0; j < n; j++) {
          const b = toBits(values[j]!);
          out[2 * j] = b & 0xff;
          out[2 * j + 1] = b >>> 8;
        }
        write(out.subarray(0, 2 * n));
      }
    }
  } finally {
    closeSync(fd);
  }
  return statSync(file).size;
}

interface ChildResult {
  way: 'streamed' | 'fp32 then quantised';
  format: string;
  baselineRss: number;
  peakRss: number;
  rssAfter: number;
  quantisedBytes: number;
  loadMs: number;
  dtype: string;
  params: number;
  repair?: RepairFigures & { asked: SelectSetting; select: SelectMode; patchFits: boolean };
}

interface RepairFigures {
  decodeMsPerToken: number;
  repairMs: number;
  epochs: number;
  fixed: boolean;
  neurons: number;
  /** Peak RSS of the child from its start to the end of the repair. */
  peakRss: number;
}

/** The --repair part: decode and one STAR repair on the loaded weights (see the header). */
async function decodeAndRepair(cfg: ModelConfig, model: QuantisedModel, select: SelectMode): Promise<RepairFigures> {
  const runtime = new ModelRuntime(cfg, model, { provider: 'cpu' });
  const random = seededRandom(11);
  const prompt = Array.from({ length: 16 }, () => Math.floor(random() * Math.min(cfg.vocab, 32000)));
  let r = await runtime.decode(prompt);
  const steps: number[] = [];
  for (let i = 0; i < 16; i++) {
    const t = performance.now();
    r = await runtime.decode([argmax(r.logits)], r.cache);
    steps.push(performance.now() - t);
  }
  const T = 64;
  const seq = Array.from({ length: T }, () => Math.floor(random() * Math.min(cfg.vocab, 32000)));
  const positions = Array.from({ length: 8 }, (_, k) => T - 9 + k);
  // The desired tokens: what the model ranks 5th at each target position (teacher-forced on seq).
  const scored = await runtime.score(seq, seq.slice(1).concat(0), seq.map(() => 1));
  const V = cfg.vocab;
  const desired = positions.map((p) => {
    const row = scored.logits.subarray(p * V, (p + 1) * V);
    const order = Array.from(row.keys()).sort((a, b) => row[b]! - row[a]!);
    return order[4]!;
  });
  const ids = seq.slice();
  positions.forEach((p, k) => { if (p + 1 < T) ids[p + 1] = desired[k]!; });
  const ex: Example = { ids, nextTokens: ids.slice(1).concat(0), targetPositions: positions, desired, allowed: positions.map(() => null), alsoRight: positions.map(() => null), truncated: 0 };
  const repair = new RepairModel(runtime, quantisedRepairWeights(cfg, model));
  const t0 = performance.now();
  const o = await repairStar(repair, [ex], { mode: 'batch', select, epochs: 10, eta: 0.1, stopWhen: 'target-right' });
  const repairMs = performance.now() - t0;
  steps.sort((a, b) => a - b);
  const neurons = o.acc.toLayers().reduce((n, l) => n + l.rows.length, 0);
  await runtime.release();
  return { decodeMsPerToken: steps[8]!, repairMs: Math.round(repairMs), epochs: o.epochs, fixed: wholeTargetRight(o.after[0]!), neurons, peakRss: peakRssBytes() };
}

/** The repair with the selection asked for ('model': the extension's own choice for this shape). */
async function plannedRepair(cfg: ModelConfig, model: QuantisedModel, asked: SelectSetting): Promise<RepairFigures & { asked: SelectSetting; select: SelectMode; patchFits: boolean }> {
  const plan = plannedPatch(cfg, { method: 'star', select: asked === 'model' ? undefined : asked });
  return { asked, select: plan.select, patchFits: plan.values <= MAX_PATCH_PARAMS, ...(await decodeAndRepair(cfg, model, plan.select)) };
}

async function child(dir: string, format: 'int8' | 'int4', old: boolean, repair: SelectSetting | null): Promise<void> {
  collectGarbage();
  const baselineRss = process.memoryUsage().rss;
  const t0 = performance.now();
  let held: { model: QuantisedModel; dtype: string; params: number; config: ModelConfig };
  if (old) {
    // The load before the streaming one: the whole model in fp32, then quantised; the fp32 weights are garbage afterwards.
    const full = loadModelFolder(dir);
    held = { model: quantiseModel(full.config, full.weights, format), dtype: full.dtype, params: full.params, config: full.config };
  } else {
    const q = loadQuantisedModelFolder(dir, format);
    held = { model: q.model, dtype: q.folder.dtype, params: q.folder.params, config: q.folder.config };
  }
  const loadMs = performance.now() - t0;
  const peakRss = peakRssBytes();
  collectGarbage();
  const result: ChildResult = {
    way: old ? 'fp32 then quantised' : 'streamed', format, baselineRss, peakRss, rssAfter: process.memoryUsage().rss,
    quantisedBytes: quantisedModelBytes(held.model), loadMs: Math.round(loadMs), dtype: held.dtype, params: held.params,
    ...(repair ? { repair: await plannedRepair(held.config, held.model, repair) } : {}),
  };
  process.stdout.write(JSON.stringify(result) + '\n');
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      config: { type: 'string', default: join(__dirname, 'configs', 'qwen2.5-coder-1.5b.json') },
      format: { type: 'string', default: 'int8' },
      dtype: { type: 'string', default: 'BF16' },
      dir: { type: 'string' },
      keep: { type: 'boolean', default: false },
      child: { type: 'boolean', default: false },
      old: { type: 'boolean', default: false },
      compare: { type: 'boolean', default: false },
      repair: { type: 'boolean', default: false },
      select: { type: 'string', default: 'model' },
    },
  });
  const format = values.format;
  if (format !== 'int8' && format !== 'int4') throw new Error(`--format must be int8 or int4, not ${format}`);
  const select = values.select as SelectSetting;
  if (!SELECT_SETTINGS.includes(select)) throw new Error(`--select must be one of ${SELECT_SETTINGS.join(', ')}, not ${values.select}`);
  if (values.child) return child(positionals[0]!, format, values.old, values.repair ? select : null);
  if (values.dtype !== 'BF16' && values.dtype !== 'F16') throw new Error(`--dtype must be BF16 or F16, not ${values.dtype}`);
  const configText = readFileSync(resolve(values.config), 'utf8');
  const config = parseConfig(JSON.parse(configText), values.config);
  const dir = values.dir ? resolve(values.dir) : mkdtempSync(join(tmpdir(), 'quant-load-rss-'));
  mkdirSync(dir, { recursive: true });
  try {
    writeFileSync(join(dir, 'config.json'), configText);
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(byteLevelTokenizerJson([])));
    const t0 = performance.now();
    const fileBytes = writeRandomCheckpoint(dir, config, values.dtype);
    process.stderr.write(`wrote ${(fileBytes / 1e9).toFixed(2)} GB of ${values.dtype} in ${((performance.now() - t0) / 1000).toFixed(1)} s to ${dir}\n`);
    const gb = (n: number) => `${(n / 1e9).toFixed(2)} GB`;
    for (const old of values.compare ? [false, true] : [false]) {
      const args = ['--expose-gc', ...process.execArgv, __filename, '--child', '--format', format, ...(old ? ['--old'] : []), ...(values.repair && !old ? ['--repair', '--select', values.select] : []), dir];
      const out = execFileSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 20 });
      const r = JSON.parse(out.trim().split('\n').pop()!) as ChildResult;
      const bound = fileBytes + r.quantisedBytes;
      const report = { config: values.config, ...r, fileBytes, bound, withinBound: r.peakRss <= bound, addedByLoad: r.peakRss - r.baselineRss };
      process.stdout.write(JSON.stringify(report) + '\n');
      process.stdout.write(
        `${r.way} ${format} load of ${r.params.toLocaleString('en')} ${r.dtype} parameters in ${(r.loadMs / 1000).toFixed(1)} s: peak RSS ${gb(r.peakRss)} ` +
        `(node and modules ${gb(r.baselineRss)}, the load added ${gb(report.addedByLoad)}) vs file ${gb(fileBytes)} + quantised ${gb(r.quantisedBytes)} = ${gb(bound)}: ` +
        `${report.withinBound ? 'within' : 'OVER'} the bound; RSS after the load ${gb(r.rssAfter)}\n`,
      );
      if (r.repair) {
        const x = r.repair;
        process.stdout.write(`then decode ${x.decodeMsPerToken.toFixed(0)} ms/token and one STAR repair (${x.select}${x.asked === 'model' ? ', the extension\'s choice' : ''}${x.patchFits ? '' : ', a patch the extension would refuse as too large'}) in ${(x.repairMs / 1000).toFixed(1)} s (${x.epochs} epochs, ${x.neurons} neurons, target ${x.fixed ? 'fixed' : 'NOT fixed'}): peak RSS of the whole child ${gb(x.peakRss)} (goal ≤ 8 GB: ${x.peakRss <= 8e9 ? 'PASS' : 'MISS'})\n`);
      }
    }
  } finally {
    if (!values.dir && !values.keep) rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
