// Quick measure of the quantised weights (issue 16): decode ms/token, prefill and peak RSS of
// ModelRuntime on random weights with a real model's shapes (bench/configs, Qwen2.5-Coder-0.5B by
// default) for fp32 / int8 / int4 at several block sizes and decode accuracy levels, each
// configuration in its own process (so peak RSS is its own), rounds interleaved.
//   node --expose-gc --import tsx bench/quant-probe.ts [--config f] [--formats fp32,int8,int4]
//        [--blocks 32,64,128] [--acc 4] [--rounds 2] [--steps 24] [--threads 2] [--probe]
// Prints one JSON line per run and a markdown table of medians. Not bench:runtime (see its header).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseConfig } from '../src/model/config';
import { randomCanonicalWeights } from '../src/model/synthetic';
import { ModelRuntime } from '../src/runtime/runtime';
import { quantiseModel } from '../src/runtime/quantised-weights';
import { argmax } from '../src/runtime/generate';
import { othersCpuShare, cpuSnapshot, peakRssBytes } from './lib/machine';

interface Child { config: string; format: 'fp32' | 'int8' | 'int4'; block: number; acc: number; steps: number; threads: number; probe: boolean }

interface Result extends Child {
  quantiseMs: number; weightBytes: number; sessionMs: number; decodeMs: number; prefill256Ms: number;
  probeMs: number | null; rssDecode: number; rssAfterProbe: number | null; othersShare: number | null; tokens: number[];
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function child(spec: Child): Promise<Result> {
  const cfg = parseConfig(JSON.parse(readFileSync(spec.config, 'utf8')));
  const weights = randomCanonicalWeights(cfg, 1);
  const t0 = performance.now();
  const model = spec.format === 'fp32' ? weights : quantiseModel(cfg, weights, spec.format, spec.block);
  const quantiseMs = performance.now() - t0;
  const rt = new ModelRuntime(cfg, model, { threads: spec.threads, accuracyLevel: spec.acc, provider: 'cpu' });
  const t1 = performance.now();
  await rt.warm(['decode']);
  const sessionMs = performance.now() - t1;
  (globalThis as { gc?: () => void }).gc?.();
  const before = cpuSnapshot();
  const prompt = Array.from({ length: 256 }, (_, i) => (i * 7919) % 5000 + 100);
  const pre: number[] = [];
  let state = await rt.decode(prompt.slice(0, 8));
  for (let r = 0; r < 2; r++) {
    const s = performance.now();
    state = await rt.decode(prompt);
    pre.push(performance.now() - s);
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
  void state;
  const othersShare = othersCpuShare(before, cpuSnapshot(), spec.threads);
  const rssDecode = peakRssBytes();
  let probeMs: number | null = null;
  let rssAfterProbe: number | null = null;
  if (spec.probe) {
    const ids = prompt.slice(0, 64);
    const mask = ids.map((_, i) => (i >= 48 ? 1 : 0));
    await rt.probe(ids, ids.slice(1).concat([0]), mask, cfg.layers - 4);
    const s = performance.now();
    await rt.probe(ids, ids.slice(1).concat([0]), mask, cfg.layers - 4);
    probeMs = performance.now() - s;
    rssAfterProbe = peakRssBytes();
  }
  const weightBytes = rt.weightBytes;
  await rt.release();
  return { ...spec, quantiseMs, weightBytes, sessionMs, decodeMs: median(times), prefill256Ms: Math.min(...pre), probeMs, rssDecode, rssAfterProbe, othersShare, tokens };
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
  const base = { config, steps: Number(arg('steps', '24')), threads: Number(arg('threads', '2')), probe: process.argv.includes('--probe') };
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
  const fp32Tokens = results.get('fp32 b0 a0')?.[0]?.tokens;
  console.log('\n| format | block | acc | decode ms/token | prefill 256 | weights | peak RSS (decode) | peak RSS (+probe) | probe 64 tok | quantise | greedy = fp32 | others\' CPU |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const [key, rs] of results) {
    const [format, b, a] = key.split(' ');
    const agree = fp32Tokens ? `${rs[0].tokens.filter((t, i) => t === fp32Tokens[i]).length}/${fp32Tokens.length}` : '—';
    const probes = rs.map((x) => x.probeMs).filter((x): x is number => x !== null);
    console.log(`| ${format} | ${b.slice(1)} | ${a.slice(1)} | ${median(rs.map((x) => x.decodeMs)).toFixed(1)} | ${(median(rs.map((x) => x.prefill256Ms)) / 1000).toFixed(2)} s | ${gb(rs[0].weightBytes)} | ${gb(median(rs.map((x) => x.rssDecode)))} | ${gb(rs[0].rssAfterProbe)} | ${probes.length ? `${median(probes).toFixed(0)} ms` : '—'} | ${(median(rs.map((x) => x.quantiseMs)) / 1000).toFixed(1)} s | ${agree} | ${rs.map((x) => (x.othersShare === null ? '?' : `${(100 * x.othersShare).toFixed(0)}%`)).join(' ')} |`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
