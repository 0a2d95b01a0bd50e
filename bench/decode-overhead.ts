// The decode step's per-node overhead: ms per token of the plain decode graph (decoder.ts), the
// fused one (decode-layer.ts; its greedy token chosen in the graph, as ModelRuntime's greedy steps),
// the fused one with its float weights fed as inputs every step (fused-inputs: how ModelRuntime fed
// them before sessionWeightMode kept them in the session) and the fused one with the logits fetched
// and argmax run in JavaScript (fused-logits: greedy steps before the graph chose the token; the
// plain graph's steps still do), interleaved round by round in one process, on
//   tiny  Qwen2.5-Coder-0.5B's 24 layers with tiny matrices (hidden 128, intermediate 128, vocab
//         1024, 2 heads, 1 KV head): almost nothing but per-node cost;
//   int8  Qwen2.5-Coder-0.5B shapes, random weights quantised to int8 (block 128, accuracy_level 4);
//   int4  the same in int4 (the runtime's int4 block size, accuracy_level 4);
//   fp32  the same random weights in fp32.
// Each measurement: a 16-token prompt, then the median of --steps single-token steps (greedy).
//   node --expose-gc --import tsx bench/decode-overhead.ts [--models tiny,int8,fp32] [--rounds 3]
//        [--steps 24] [--threads 2] [--variants plain,fused,fused-inputs] [--profile]
// A variant may name onnxruntime's spinning after @: fused@backoff8 (session.intra_op.
// spin_backoff_max), fused@spin2000 (spin_duration_us, µs), fused@nospin.
// --profile writes one onnxruntime trace per session (/tmp/decode-*.json) and prints each
// variant's time per op type over the steps (node overhead shows as many small ops).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { parseConfig, type ModelConfig } from '../src/model/config';
import type { CanonicalWeights } from '../src/model/weights';
import { randomCanonicalWeights } from '../src/model/synthetic';
import { quantiseModel, type QuantisedModel } from '../src/runtime/quantised-weights';
import { quantBlockSize } from '../src/runtime/weight-formats';
import { greedyToken } from '../src/runtime/runtime';
import { openDecodeSession, type DecodeSession } from './lib/decode-session';
import { cpuSnapshot, othersCpuShare } from './lib/machine';

const CONFIG = 'bench/configs/qwen2.5-coder-0.5b.json';
const GRAPHS = ['plain', 'fused', 'fused-inputs', 'fused-logits'] as const;
/** A graph, optionally with onnxruntime's spinning set: fused@backoff<N> (intra_op.spin_backoff_max), fused@spin<N> (intra_op.spin_duration_us), fused@nospin. */
interface Variant {
  label: string;
  graph: (typeof GRAPHS)[number];
  config?: Record<string, unknown>;
}

function parseVariant(label: string): Variant {
  const [graph, setting] = label.split('@');
  if (!(GRAPHS as readonly string[]).includes(graph)) throw new Error(`unknown variant ${label} (${GRAPHS.join(', ')}, each optionally @backoff<N>, @spin<N>, @nospin)`);
  const variant: Variant = { label, graph: graph as Variant['graph'] };
  if (setting === undefined) return variant;
  const intra = (entries: Record<string, string>) => ({ session: { intra_op: entries } });
  if (setting === 'nospin') return { ...variant, config: intra({ allow_spinning: '0' }) };
  const m = /^(backoff|spin)(\d+)$/.exec(setting);
  if (!m) throw new Error(`unknown setting @${setting} (backoff<N>, spin<N>, nospin)`);
  return { ...variant, config: intra(m[1] === 'backoff' ? { spin_backoff_max: m[2] } : { spin_duration_us: m[2] }) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

function baseConfig(): ModelConfig {
  return parseConfig(JSON.parse(readFileSync(CONFIG, 'utf8')));
}

/** The 0.5B's 24 layers with tiny matrices: what is left is the cost of the graph's nodes. */
function tinyConfig(): ModelConfig {
  const raw = JSON.parse(readFileSync(CONFIG, 'utf8')) as Record<string, unknown>;
  return parseConfig({ ...raw, hidden_size: 128, intermediate_size: 128, vocab_size: 1024, num_attention_heads: 2, num_key_value_heads: 1 });
}

/** Random quantised weights at the runtime's block size; the fp32 arrays they came from are garbage once this returns. */
function quantisedWeights(cfg: ModelConfig, format: 'int8' | 'int4'): QuantisedModel {
  return quantiseModel(cfg, randomCanonicalWeights(cfg, 1), format, quantBlockSize(format));
}

async function collect(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return;
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** ms per token: a 16-token prompt, then the median of `steps` greedy single-token steps (each choosing its token). */
async function perToken(s: DecodeSession, steps: number, want: 'logits' | 'greedy'): Promise<number> {
  const prompt = Array.from({ length: 16 }, (_, i) => ((i * 7919) % 900) + 50);
  let cur = await s.decode(prompt, undefined, want);
  const times: number[] = [];
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    cur = await s.decode([greedyToken(cur)], cur.cache, want);
    times.push(performance.now() - t0);
  }
  return median(times);
}

/** The newest trace a session labelled `label` wrote (onnxruntime-node's endProfiling() does not return its name). */
function latestProfile(label: string): string {
  const files = readdirSync('/tmp').filter((f) => f.startsWith(`decode-${label}_`) && f.endsWith('.json')).map((f) => `/tmp/${f}`);
  return files.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
}

/** Time per op type in an onnxruntime profile (µs summed over the run's node events). */
function opTimes(file: string): Map<string, number> {
  const events = JSON.parse(readFileSync(file, 'utf8')) as { cat: string; name: string; dur: number; args?: { op_name?: string } }[];
  const out = new Map<string, number>();
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || !e.args?.op_name) continue;
    out.set(e.args.op_name, (out.get(e.args.op_name) ?? 0) + e.dur);
  }
  return out;
}

async function benchModel(name: string, cfg: ModelConfig, weights: CanonicalWeights | QuantisedModel, variants: readonly Variant[], rounds: number, steps: number, threads: number, profile: boolean): Promise<void> {
  const sessions = new Map<Variant, DecodeSession>();
  for (const v of variants) {
    sessions.set(v, await openDecodeSession(cfg, weights, { fused: v.graph !== 'plain', ...(v.graph === 'fused-inputs' ? { floatWeights: 'inputs' as const } : {}), threads, ...(profile ? { profile: v.label } : {}), ...(v.config ? { config: v.config } : {}) }));
  }
  const times = new Map<Variant, number[]>(variants.map((v) => [v, []]));
  const before = cpuSnapshot();
  for (let r = 0; r < rounds; r++) {
    for (const v of variants) times.get(v)!.push(await perToken(sessions.get(v)!, steps, v.graph === 'fused' || v.graph === 'fused-inputs' ? 'greedy' : 'logits'));
  }
  const others = othersCpuShare(before, cpuSnapshot(), threads);
  for (const v of variants) {
    const s = sessions.get(v)!;
    const ts = times.get(v)!;
    console.log(`| ${name} | ${v.label} | ${s.nodes} | ${median(ts).toFixed(1)} | ${ts.map((t) => t.toFixed(1)).join(' ')} | ${others === null ? '?' : `${(100 * others).toFixed(0)} %`} |`);
    if (profile) {
      s.session.endProfiling();
      const ops = [...opTimes(latestProfile(v.label)).entries()].sort((a, b) => b[1] - a[1]);
      const perStep = rounds * (steps + 1);
      console.log(`    ${v.label} ms per step by op: ${ops.map(([op, us]) => `${op} ${(us / 1000 / perStep).toFixed(2)}`).join(', ')}`);
    }
    await s.session.release();
  }
}

async function main(): Promise<void> {
  const models = arg('models', 'tiny,int8,fp32').split(',');
  const rounds = Number(arg('rounds', '3'));
  const steps = Number(arg('steps', '24'));
  const threads = Number(arg('threads', '2'));
  const profile = process.argv.includes('--profile');
  const variants = arg('variants', 'plain,fused').split(',').map(parseVariant);
  console.log(`decode ms/token, median of ${steps} steps after a 16-token prompt, ${threads} threads, ${rounds} interleaved rounds`);
  console.log('| model | graph | nodes built | ms/token (median of rounds) | rounds | others\' CPU |');
  console.log('|---|---|---|---|---|---|');
  for (const m of models) {
    if (m === 'tiny') {
      const cfg = tinyConfig();
      await benchModel(m, cfg, randomCanonicalWeights(cfg, 1), variants, rounds, steps, threads, profile);
    } else if (m === 'int8' || m === 'int4') {
      const cfg = baseConfig();
      await benchModel(m, cfg, quantisedWeights(cfg, m), variants, rounds, steps, threads, profile);
    } else if (m === 'fp32') {
      const cfg = baseConfig();
      await benchModel(m, cfg, randomCanonicalWeights(cfg, 1), variants, rounds, steps, threads, profile);
    } else throw new Error(`unknown model ${m} (tiny, int8, int4, fp32)`);
    await collect();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
