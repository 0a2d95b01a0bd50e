// Quick measure of the quantised weights (issue 16): decode ms/token, prefill, probe ms and peak
// RSS of ModelRuntime on random weights with a real model's shapes (bench/configs,
// Qwen2.5-Coder-0.5B by default) for fp32 / int8 / int4 at several block sizes and decode accuracy
// levels, each configuration in its own process (so peak RSS is its own), rounds interleaved.
//   node --expose-gc --import tsx bench/quant-probe.ts [--config f] [--formats fp32,int8,int4]
//        [--blocks 32,64,128] [--acc 4] [--rounds 2] [--steps 24] [--prefill 256] [--threads 2]
//        [--probe] [--probes 3] [--arena on|off] [--pattern on|off] [--chunk-mib 64]
// A quantised child quantises the random fp32 weights, drops them and collects garbage (hence
// --expose-gc, which the children always get) before it resets its peak RSS (Linux clear_refs)
// and builds any session: its peaks are those of a process that holds the quantised weights
// only, as the worker does. Peaks: after the decode session and its runs; then after the probe
// session (probe from the top 4 layers, 64 tokens, loss on 16) is built and has run 1 + --probes
// times — the probe ms is the median of the runs after the first. --prefill 0 skips the prefill
// timing; --arena/--pattern set the probe and score sessions' CPU arena and memory patterns
// (default: the runtime's), --chunk-mib the dequantisation chunk budget. Prints one JSON line per
// run and a markdown table of medians.
// Not bench:runtime (see its header).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseConfig } from '../src/model/config';
import type { CanonicalWeights } from '../src/model/weights';
import { randomCanonicalWeights } from '../src/model/synthetic';
import { ModelRuntime, type ProbeMemory } from '../src/runtime/runtime';
import { quantiseModel, type QuantisedModel } from '../src/runtime/quantised-weights';
import { argmax } from '../src/model/finite';
import { othersCpuShare, cpuSnapshot, ownPeakRss, procStatusBytes, resetPeakRss } from './lib/machine';

interface Child {
  config: string; format: 'fp32' | 'int8' | 'int4'; block: number; acc: number; steps: number; prefill: number; threads: number; probe: boolean; probes: number;
  probeMemory: ProbeMemory | null; chunkMiB: number | null;
}

interface Result extends Child {
  quantiseMs: number; weightBytes: number; rssBase: number; peakReset: boolean; sessionMs: number; decodeMs: number; prefillMs: number | null;
  probeFirstMs: number | null; probeMs: number | null; rssDecode: number; rssAfterProbe: number | null; othersShare: number | null; tokens: number[];
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];


/** Full garbage collections with a turn of the event loop between them (array buffers are freed after the sweep). */
async function collect(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with node --expose-gc');
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The model the child runs: the random fp32 weights, or those quantised (the fp32 ones left to the collector). */
function makeModel(spec: Child): { model: CanonicalWeights | QuantisedModel; quantiseMs: number } {
  const cfg = parseConfig(JSON.parse(readFileSync(spec.config, 'utf8')));
  const weights = randomCanonicalWeights(cfg, 1);
  if (spec.format === 'fp32') return { model: weights, quantiseMs: 0 };
  const t0 = performance.now();
  const model = quantiseModel(cfg, weights, spec.format, spec.block);
  return { model, quantiseMs: performance.now() - t0 };
}

async function child(spec: Child): Promise<Result> {
  const cfg = parseConfig(JSON.parse(readFileSync(spec.config, 'utf8')));
  const { model, quantiseMs } = makeModel(spec);
  await collect();
  const rssBase = procStatusBytes('VmRSS') ?? 0;
  const peakReset = resetPeakRss();
  const rt = new ModelRuntime(cfg, model, {
    threads: spec.threads, accuracyLevel: spec.acc, provider: 'cpu',
    ...(spec.probeMemory ? { probeMemory: spec.probeMemory } : {}),
    ...(spec.chunkMiB ? { dequantChunkBytes: spec.chunkMiB * 2 ** 20 } : {}),
  });
  const t1 = performance.now();
  await rt.warm(['decode']);
  const sessionMs = performance.now() - t1;
  const before = cpuSnapshot();
  const prompt = Array.from({ length: 256 }, (_, i) => (i * 7919) % 5000 + 100);
  let prefillMs: number | null = null;
  if (spec.prefill > 0) {
    await rt.decode(prompt.slice(0, 8));
    const pre: number[] = [];
    for (let r = 0; r < 2; r++) {
      const s = performance.now();
      await rt.decode(prompt.slice(0, spec.prefill));
      pre.push(performance.now() - s);
    }
    prefillMs = Math.min(...pre);
  }
  const times: number[] = [];
  const tokens: number[] = [];
  let cur = await rt.decode(prompt.slice(0, 16));
  for (let i = 0; i < spec.steps; i++) {
    const next = argmax(cur.logits);
    tokens.push(next);
    const s = performance.now();
    cur = await rt.decode([next], cur.cache);
    times.push(performance.now() - s);
  }
  const rssDecode = ownPeakRss();
  let probeFirstMs: number | null = null;
  let probeMs: number | null = null;
  let rssAfterProbe: number | null = null;
  if (spec.probe) {
    const ids = prompt.slice(0, 64);
    const mask = ids.map((_, i) => (i >= 48 ? 1 : 0));
    const targets = ids.slice(1).concat([0]);
    const s0 = performance.now();
    await rt.probe(ids, targets, mask, cfg.layers - 4);
    probeFirstMs = performance.now() - s0;
    const runs: number[] = [];
    for (let i = 0; i < spec.probes; i++) {
      const s = performance.now();
      await rt.probe(ids, targets, mask, cfg.layers - 4);
      runs.push(performance.now() - s);
    }
    probeMs = runs.length ? median(runs) : null;
    rssAfterProbe = ownPeakRss();
  }
  const othersShare = othersCpuShare(before, cpuSnapshot(), spec.threads);
  const weightBytes = rt.weightBytes;
  await rt.release();
  return { ...spec, quantiseMs, weightBytes, rssBase, peakReset, sessionMs, decodeMs: times.length ? median(times) : NaN, prefillMs, probeFirstMs, probeMs, rssDecode, rssAfterProbe, othersShare, tokens };
}

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

async function main(): Promise<void> {
  if (process.argv[2] === '--child') {
    process.stdout.write(`${JSON.stringify(await child(JSON.parse(process.argv[3]) as Child))}\n`);
    return;
  }
  const config = arg('config', 'bench/configs/qwen2.5-coder-0.5b.json');
  const formats = arg('formats', 'fp32,int8,int4').split(',') as Child['format'][];
  const blocks = arg('blocks', '32').split(',').map(Number);
  const accs = arg('acc', '4').split(',').map(Number);
  const rounds = Number(arg('rounds', '2'));
  const onOff = (name: string): boolean | null => {
    const v = arg(name, '');
    if (v === '') return null;
    if (v !== 'on' && v !== 'off') throw new Error(`--${name} takes on or off, not ${v}`);
    return v === 'on';
  };
  const arena = onOff('arena');
  const pattern = onOff('pattern');
  const probeMemory = arena === null && pattern === null ? null : { arena: arena ?? true, pattern: pattern ?? true };
  const chunk = arg('chunk-mib', '');
  const base = {
    config, steps: Number(arg('steps', '24')), prefill: Number(arg('prefill', '256')), probes: Number(arg('probes', '3')), threads: Number(arg('threads', '2')), probe: process.argv.includes('--probe'),
    probeMemory, chunkMiB: chunk === '' ? null : Number(chunk),
  };
  const specs: Child[] = [];
  for (const format of formats) {
    if (format === 'fp32') specs.push({ ...base, format, block: 0, acc: 0 });
    else for (const block of blocks) for (const acc of accs) specs.push({ ...base, format, block, acc });
  }
  const results = new Map<string, Result[]>();
  for (let r = 0; r < rounds; r++) {
    for (const spec of specs) {
      const out = execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', __filename, '--child', JSON.stringify(spec)], { encoding: 'utf8', maxBuffer: 1 << 24 });
      const res = JSON.parse(out.trim().split('\n').pop()!) as Result;
      const { tokens, ...shown } = res;
      console.log(JSON.stringify({ ...shown, firstTokens: tokens.slice(0, 8) }));
      const key = `${spec.format} b${spec.block} a${spec.acc}`;
      results.set(key, [...(results.get(key) ?? []), res]);
    }
  }
  const gb = (b: number | null) => (b === null ? '—' : `${(b / 1e9).toFixed(2)} GB`);
  const ms = (xs: (number | null)[]) => {
    const v = xs.filter((x): x is number => x !== null);
    return v.length ? `${median(v).toFixed(0)} ms` : '—';
  };
  const fp32Tokens = results.get('fp32 b0 a0')?.[0]?.tokens;
  console.log(`\nprobe/score sessions: ${probeMemory ? `arena ${probeMemory.arena ? 'on' : 'off'}, memory patterns ${probeMemory.pattern ? 'on' : 'off'}` : "the runtime's default memory settings"}; chunk budget ${base.chunkMiB === null ? 'default' : `${base.chunkMiB} MiB`}`);
  console.log('\n| format | block | acc | decode ms/token | prefill | weights | RSS before sessions | peak RSS (decode) | peak RSS (+probe) | probe (first, with session) | probe | quantise | greedy = fp32 | others\' CPU |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const [key, rs] of results) {
    const [format, b, a] = key.split(' ');
    const agree = fp32Tokens ? `${rs[0].tokens.filter((t, i) => t === fp32Tokens[i]).length}/${fp32Tokens.length}` : '—';
    const prefill = ms(rs.map((x) => x.prefillMs));
    console.log(`| ${format} | ${b.slice(1)} | ${a.slice(1)} | ${median(rs.map((x) => x.decodeMs)).toFixed(1)} | ${prefill} | ${gb(rs[0].weightBytes)} | ${gb(median(rs.map((x) => x.rssBase)))} | ${gb(median(rs.map((x) => x.rssDecode)))} | ${gb(median(rs.map((x) => x.rssAfterProbe ?? 0)) || null)} | ${ms(rs.map((x) => x.probeFirstMs))} | ${ms(rs.map((x) => x.probeMs))} | ${(median(rs.map((x) => x.quantiseMs)) / 1000).toFixed(1)} s | ${agree} | ${rs.map((x) => (x.othersShare === null ? '?' : `${(100 * x.othersShare).toFixed(0)}%`)).join(' ')} |`);
    if (rs.some((x) => !x.peakReset)) console.log(`(${key}: the peak RSS could not be reset: its peaks include quantising from the fp32 weights)`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
