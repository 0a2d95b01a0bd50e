// onnxruntime's CPU kernels alone on the products of a decode step, x[1, K] · Wᵀ (W [N, K]) at
// Qwen2.5-Coder-0.5B's shapes by default: which quantised layout and kernel multiplies fastest on
// this host, and how it uses the threads (issue 16's decode speed; BENCHMARKS.md "Where the
// 2-thread gap is"). Each kernel is its own session with W as initializers (prepacked where the
// kernel prepacks); every product is summed to one number. Rounds interleave the kernels: each
// session's block of calls comes after a 50 ms pause, because another session's intra-op threads
// spin after its run and slow whatever comes next. Medians of the per-call means of the rounds.
// Not a model: random weights, no attention, no norms.
//   node --import tsx bench/matmul-kernels.ts [--shapes 896x1152,896x896,896x9728,4864x896,896x151936]
//        [--kernels nbits4-128,nbits8-128,...] [--threads 2] [--calls 40] [--rounds 5] [--layers 1] [--stack]
//        [--rows M]
// --layers L: each matrix L times with its own weights in one session (so a session reads as many
// bytes as L layers); --stack: all --shapes in one session (with --layers 24 and the default shapes
// minus the head, the layers' products of a decode step); without it, one session per shape.
// --rows M: x is [M, K] (a prefill of M tokens) instead of one row.
// Kernels: nbits<bits>-<block>[-acc<level>][-sym] (MatMulNBits; -sym: no zero points),
// dqmm8 (DynamicQuantizeMatMul: 8-bit per-column weights, zero point 128; activations quantised
// per tensor), fp32 (MatMul); a kernel@variant sets the session: @t<N> threads, @nospin (no
// spinning), @dyn<N> (dynamic block base), @aff (the pool's thread pinned to the second core).
import * as ort from 'onnxruntime-node';
import { Graph, type Value } from '../src/graph/builder';
import { quantiseMatrix } from '../src/model/quantise';

interface Args { shapes: [number, number][]; kernels: string[]; threads: number; calls: number; rounds: number; layers: number; stack: boolean; rows: number }

function parseArgs(argv: string[]): Args {
  const get = (name: string, fallback: string) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 && argv[i + 1] ? argv[i + 1]! : fallback;
  };
  return {
    shapes: get('shapes', '896x1152,896x896,896x9728,4864x896,896x151936').split(',').map((s) => s.split('x').map(Number) as [number, number]),
    kernels: get('kernels', 'nbits4-128,nbits4-32,nbits4-128-sym,nbits8-128,nbits8-32,dqmm8,fp32').split(','),
    threads: Number(get('threads', '2')),
    calls: Number(get('calls', '40')),
    rounds: Number(get('rounds', '5')),
    layers: Number(get('layers', '1')),
    stack: argv.includes('--stack'),
    rows: Number(get('rows', '1')),
  };
}

function randomMatrix(n: number, k: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const w = new Float32Array(n * k);
  for (let i = 0; i < w.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    w[i] = (s / 2 ** 32 - 0.5) * 0.1;
  }
  return w;
}

/** x · Wᵀ by `kernel` for W [n, k] (K = k inputs, N = n outputs), added to `g`. */
function product(g: Graph, x: Value, kernel: string, k: number, n: number, w: Float32Array): Value {
  const m = x.shape[0] as number;
  const nbits = /^nbits(4|8)-(\d+)(?:-acc(\d))?(-sym)?$/.exec(kernel);
  if (nbits) {
    const bits = Number(nbits[1]) as 4 | 8;
    const blockSize = Number(nbits[2]);
    const q = quantiseMatrix(w, n, k, { bits, blockSize });
    const codes = g.constant(q.codes, [n, q.kBlocks, (blockSize * bits) / 8], 'uint8');
    const scales = g.constant(q.scales, [n * q.kBlocks], 'float32');
    const inputs = [x, codes, scales];
    if (!nbits[4]) inputs.push(g.constant(q.zeroPoints, [q.zeroPoints.length], 'uint8'));
    return g.node('MatMulNBits', inputs, [{ dtype: 'float32', shape: [m, n] }], {
      K: { kind: 'int', value: k }, N: { kind: 'int', value: n }, bits: { kind: 'int', value: bits },
      block_size: { kind: 'int', value: blockSize }, accuracy_level: { kind: 'int', value: Number(nbits[3] ?? 4) },
    }, true)[0]!;
  }
  if (kernel === 'dqmm8') {
    // B [K, N] uint8 with zero point 128, one scale per output column (symmetric codes).
    const b = new Uint8Array(k * n);
    const scale = new Float32Array(n);
    for (let j = 0; j < n; j++) {
      let m = 0;
      for (let i = 0; i < k; i++) m = Math.max(m, Math.abs(w[j * k + i]!));
      scale[j] = m / 127 || 1;
      for (let i = 0; i < k; i++) b[i * n + j] = Math.round(w[j * k + i]! / scale[j]!) + 128;
    }
    const inputs = [x, g.constant(b, [k, n], 'uint8'), g.constant(scale, [n], 'float32'), g.constant(new Uint8Array(n).fill(128), [n], 'uint8')];
    return g.node('DynamicQuantizeMatMul', inputs, [{ dtype: 'float32', shape: [m, n] }], {}, true)[0]!;
  }
  if (kernel === 'fp32') {
    const wt = new Float32Array(k * n);
    for (let j = 0; j < n; j++) for (let i = 0; i < k; i++) wt[i * n + j] = w[j * k + i]!;
    return g.matmul(x, g.constant(wt, [k, n], 'float32'));
  }
  throw new Error(`unknown kernel ${kernel}`);
}

/**
 * The model of `kernel` for `shapes`, each matrix `layers` times with its own weights (so the
 * session reads as many bytes as that many layers do), every product summed to one number.
 */
function model(kernel: string, shapes: readonly [number, number][], layers: number, rows: number): Uint8Array {
  const g = new Graph('float32');
  const inputs = new Map<number, Value>();
  const sums: Value[] = [];
  for (let l = 0; l < layers; l++) {
    for (const [k, n] of shapes) {
      if (!inputs.has(k)) inputs.set(k, g.input(`x${k}`, 'float32', [rows, k]));
      sums.push(g.reduceSum(product(g, inputs.get(k)!, kernel, k, n, randomMatrix(n, k, k * 7 + n + l * 131)), [0, 1], false));
    }
  }
  g.output(sums.reduce((a, b) => g.add(a, b)), 'y');
  return g.toModel(kernel);
}

/** A kernel name may end in @<variant>: onnxruntime session settings to compare (same kernel). */
const kernelName = (kernel: string) => kernel.split('@')[0]!;

/** Session settings of a kernel's @variant: nospin, dyn<N> (dynamic block base), aff (worker pinned to the second core), t<N> (N threads). */
function sessionVariant(kernel: string): ort.InferenceSession.SessionOptions {
  const variant = kernel.split('@')[1] ?? '';
  if (variant === '') return {};
  if (variant === 'nospin') return { extra: { session: { intra_op: { allow_spinning: '0' } } } };
  if (variant.startsWith('dyn')) return { extra: { session: { dynamic_block_base: variant.slice(3) } } };
  if (/^t\d+$/.test(variant)) return { intraOpNumThreads: Number(variant.slice(1)) };
  if (variant === 'aff') return { extra: { session: { intra_op_thread_affinities: '2' } } };
  throw new Error(`unknown session variant ${variant}`);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log(`threads ${args.threads}, ${args.calls} calls × ${args.rounds} rounds, interleaved; ${args.layers} of each matrix per session; x has ${args.rows} row(s)`);
  const groups = args.stack ? [args.shapes] : args.shapes.map((s) => [s]);
  const rows: string[] = ['| K × N | ' + args.kernels.join(' | ') + ' |', '|---|' + args.kernels.map(() => '---|').join('')];
  for (const shapes of groups) {
    const sessions = new Map<string, ort.InferenceSession>();
    for (const kernel of args.kernels) {
      sessions.set(kernel, await ort.InferenceSession.create(model(kernelName(kernel), shapes, args.layers, args.rows), { intraOpNumThreads: args.threads, graphOptimizationLevel: 'all', ...sessionVariant(kernel) }));
    }
    const feeds: Record<string, ort.Tensor> = {};
    for (const [k] of shapes) feeds[`x${k}`] = new ort.Tensor('float32', randomMatrix(args.rows, k, 3), [args.rows, k]);
    const times = new Map<string, number[]>(args.kernels.map((kk) => [kk, []]));
    for (let r = 0; r < args.rounds; r++) {
      for (const kernel of args.kernels) {
        const s = sessions.get(kernel)!;
        // Another session's intra-op threads spin for a while after its run: let them stop first.
        await new Promise((r) => setTimeout(r, 50));
        await s.run(feeds);
        const t0 = performance.now();
        for (let c = 0; c < args.calls; c++) await s.run(feeds);
        times.get(kernel)!.push((performance.now() - t0) / args.calls);
      }
    }
    const cells = args.kernels.map((kernel) => median(times.get(kernel)!).toFixed(3));
    rows.push(`| ${shapes.map(([k, n]) => `${k} × ${n}`).join(', ')} | ${cells.join(' | ')} |`);
    console.log(rows[rows.length - 1]);
    for (const s of sessions.values()) await s.release();
  }
  console.log(rows.join('\n'));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
