// Hugging Face tensor names and layouts ⇄ the canonical per-layer view the graph builder
// consumes. Every linear map is row-major [out, in] (nn.Linear layout); GPT-2's Conv1D
// ([in, out]) is transposed here and GPTBigCode's fused c_attn is split here, so nothing
// downstream knows about checkpoint quirks. Each name and shape is checked against the config.
// The checkpoint plan (checkpointPlan) lists what the model reads, part by part (embeddings, each
// layer, final norm, LM head), so the same canonicalisation runs on a whole in-memory checkpoint
// (canonicalWeights) or on one layer read on demand (canonicalLayer, layerVectors, layerMatrices).
import type { ModelConfig } from './config';
import { ModelError } from './errors';
import type { HostTensor } from './safetensors';

export interface Linear { weight: Float32Array; out: number; in: number; bias?: Float32Array }
export interface Norm { weight: Float32Array; bias?: Float32Array }
export interface LayerWeights {
  attnNorm: Norm;
  q: Linear;
  k: Linear;
  v: Linear;
  o: Linear;
  mlpNorm: Norm;
  gate?: Linear;
  up: Linear;
  down: Linear;
}
export interface CanonicalWeights {
  /** [V, d] */
  embed: Float32Array;
  /** [P, d], learned positions (gpt2 family only). */
  positions?: Float32Array;
  layers: LayerWeights[];
  finalNorm: Norm;
  /** [V, d]; the same array object as `embed` when the embeddings are tied. */
  lmHead: Float32Array;
}

const fmt = (shape: readonly number[]): string => `[${shape.join(', ')}]`;

/**
 * Tensors a checkpoint may hold that the model does not use: rotary caches, GPT-2's causal-mask
 * buffers, and an LM head that config.json says is tied to the embeddings. They are not read.
 */
export function isIgnoredTensor(config: ModelConfig, name: string): boolean {
  if (config.tiedEmbeddings && name === 'lm_head.weight') return true;
  if (config.family === 'llama') return /\.rotary_emb\.inv_freq$/.test(name);
  return /(^|\.)h\.\d+\.attn\.(bias|masked_bias)$/.test(name) || /^(transformer\.)?(bias|masked_bias)$/.test(name);
}

function gpt2Prefix(has: (name: string) => boolean): string {
  return has('transformer.wte.weight') || !has('wte.weight') ? 'transformer.' : '';
}

/** HF names of every layer's down projection, in layer order. `available` picks GPT-2's name prefix. */
export function downProjectionNames(config: ModelConfig, available?: { has(name: string): boolean }): string[] {
  const names: string[] = [];
  if (config.family === 'llama') {
    for (let i = 0; i < config.layers; i++) names.push(`model.layers.${i}.mlp.down_proj.weight`);
    return names;
  }
  const prefix = available ? gpt2Prefix((n) => available.has(n)) : 'transformer.';
  for (let i = 0; i < config.layers; i++) names.push(`${prefix}h.${i}.mlp.c_proj.weight`);
  return names;
}

/** dst[c, r] = src[r, c] for a row-major [rows, cols] matrix. */
function transpose(src: Float32Array, rows: number, cols: number): Float32Array {
  const dst = new Float32Array(rows * cols);
  const B = 64; // blocks keep both matrices' cache lines warm
  for (let r0 = 0; r0 < rows; r0 += B) {
    const r1 = Math.min(rows, r0 + B);
    for (let c0 = 0; c0 < cols; c0 += B) {
      const c1 = Math.min(cols, c0 + B);
      for (let r = r0; r < r1; r++) {
        const base = r * cols;
        for (let c = c0; c < c1; c++) dst[c * rows + r] = src[base + c]!;
      }
    }
  }
  return dst;
}

/** One tensor the model reads from a checkpoint: its Hugging Face name and the shape config.json implies. */
export interface TensorNeed {
  name: string;
  shape: number[];
  /** A weight matrix (quantised in a quantised format), not a vector that stays float. */
  matrix: boolean;
}

/** The linear maps of a layer, by their canonical names. */
export type LinearName = 'q' | 'k' | 'v' | 'o' | 'gate' | 'up' | 'down';

/**
 * Everything the model reads from a checkpoint, part by part, in reading order: the embeddings,
 * each layer (role → tensor; roles are 'attn_norm.weight', 'q.weight', … for Llama and the fused
 * 'qkv.weight' for the GPT-2 family), the final norm and an untied LM head.
 */
export interface CheckpointPlan {
  embed: TensorNeed;
  /** Learned positions (GPT-2 family only). */
  positions?: TensorNeed;
  layers: Map<string, TensorNeed>[];
  /** Roles 'weight' and, for the GPT-2 family, 'bias'. */
  finalNorm: Map<string, TensorNeed>;
  /** Absent when the LM head is tied to the embeddings. */
  lmHead?: TensorNeed;
}

const isBigCode = (config: ModelConfig): boolean => config.architecture === 'GPTBigCodeForCausalLM';

function llamaLayerPlan(config: ModelConfig, i: number): Map<string, TensorNeed> {
  const d = config.hidden;
  const m = config.intermediate;
  const qDim = config.heads * config.headDim;
  const kvDim = config.kvHeads * config.headDim;
  const p = `model.layers.${i}`;
  const out = new Map<string, TensorNeed>();
  const vector = (role: string, name: string, size: number) => out.set(role, { name, shape: [size], matrix: false });
  const linear = (role: LinearName, name: string, o: number, inp: number, bias: boolean) => {
    out.set(`${role}.weight`, { name: `${p}.${name}.weight`, shape: [o, inp], matrix: true });
    if (bias) vector(`${role}.bias`, `${p}.${name}.bias`, o);
  };
  vector('attn_norm.weight', `${p}.input_layernorm.weight`, d);
  linear('q', 'self_attn.q_proj', qDim, d, config.qkvBias);
  linear('k', 'self_attn.k_proj', kvDim, d, config.qkvBias);
  linear('v', 'self_attn.v_proj', kvDim, d, config.qkvBias);
  linear('o', 'self_attn.o_proj', d, qDim, config.oBias);
  vector('mlp_norm.weight', `${p}.post_attention_layernorm.weight`, d);
  linear('gate', 'mlp.gate_proj', m, d, config.mlpBias);
  linear('up', 'mlp.up_proj', m, d, config.mlpBias);
  linear('down', 'mlp.down_proj', d, m, config.mlpBias);
  return out;
}

function gpt2LayerPlan(config: ModelConfig, prefix: string, i: number): Map<string, TensorNeed> {
  const d = config.hidden;
  const m = config.intermediate;
  const kvDim = config.kvHeads * config.headDim;
  const bigCode = isBigCode(config);
  const p = `${prefix}h.${i}`;
  const out = new Map<string, TensorNeed>();
  // GPT-2 stores Conv1D weights as [in, out]; GPTBigCode uses nn.Linear's [out, in].
  const linear = (role: string, name: string, o: number, inp: number) => {
    out.set(`${role}.weight`, { name: `${p}.${name}.weight`, shape: bigCode ? [o, inp] : [inp, o], matrix: true });
    out.set(`${role}.bias`, { name: `${p}.${name}.bias`, shape: [o], matrix: false });
  };
  const norm = (role: string, name: string) => {
    out.set(`${role}.weight`, { name: `${p}.${name}.weight`, shape: [d], matrix: false });
    out.set(`${role}.bias`, { name: `${p}.${name}.bias`, shape: [d], matrix: false });
  };
  linear('qkv', 'attn.c_attn', d + 2 * kvDim, d);
  norm('attn_norm', 'ln_1');
  linear('o', 'attn.c_proj', d, d);
  norm('mlp_norm', 'ln_2');
  linear('up', 'mlp.c_fc', m, d);
  linear('down', 'mlp.c_proj', d, m);
  return out;
}

/** What the model reads from a checkpoint whose tensor names `has` answers for (GPT-2's name prefix). */
export function checkpointPlan(config: ModelConfig, has: (name: string) => boolean): CheckpointPlan {
  const d = config.hidden;
  const lmHead = config.tiedEmbeddings ? undefined : { name: 'lm_head.weight', shape: [config.vocab, d], matrix: true };
  const layers = Array.from({ length: config.layers }, (_, i) => i);
  if (config.family === 'llama') {
    return {
      embed: { name: 'model.embed_tokens.weight', shape: [config.vocab, d], matrix: true },
      layers: layers.map((i) => llamaLayerPlan(config, i)),
      finalNorm: new Map([['weight', { name: 'model.norm.weight', shape: [d], matrix: false }]]),
      ...(lmHead ? { lmHead } : {}),
    };
  }
  const P = gpt2Prefix(has);
  return {
    embed: { name: `${P}wte.weight`, shape: [config.vocab, d], matrix: true },
    positions: { name: `${P}wpe.weight`, shape: [config.maxPositions, d], matrix: false },
    layers: layers.map((i) => gpt2LayerPlan(config, P, i)),
    finalNorm: new Map([
      ['weight', { name: `${P}ln_f.weight`, shape: [d], matrix: false }],
      ['bias', { name: `${P}ln_f.bias`, shape: [d], matrix: false }],
    ]),
    ...(lmHead ? { lmHead } : {}),
  };
}

/** Every tensor of a plan, in reading order. */
export function planTensors(plan: CheckpointPlan): TensorNeed[] {
  return [
    plan.embed,
    ...(plan.positions ? [plan.positions] : []),
    ...plan.layers.flatMap((l) => [...l.values()]),
    ...plan.finalNorm.values(),
    ...(plan.lmHead ? [plan.lmHead] : []),
  ];
}

function describeConfig(config: ModelConfig): string {
  return `config.json (${config.architecture}: layers ${config.layers}, hidden ${config.hidden}, intermediate ${config.intermediate}, heads ${config.heads}, kv heads ${config.kvHeads}, head dim ${config.headDim}, vocab ${config.vocab})`;
}

/**
 * Checks, before any data is read, that every tensor of the plan is there with the shape the config
 * implies (`shapeOf`: the checkpoint's shape of a name, undefined when it has none). The first
 * problem in reading order is reported.
 */
export function checkPlan(config: ModelConfig, plan: CheckpointPlan, shapeOf: (name: string) => readonly number[] | undefined): void {
  for (const { name, shape } of planTensors(plan)) {
    const found = shapeOf(name);
    if (!found) {
      throw new ModelError('tensor-missing', `the checkpoint has no tensor "${name}" (expected shape ${fmt(shape)} from ${describeConfig(config)}); the weights are incomplete or belong to another architecture`);
    }
    if (found.length !== shape.length || found.some((s, i) => s !== shape[i])) {
      throw new ModelError('shape-mismatch', `tensor "${name}" has shape ${fmt(found)} but ${describeConfig(config)} implies ${fmt(shape)}; config.json and the weights do not belong together`);
    }
  }
}

/**
 * Checks the layer count against the tensor names before a plan is built: refuses tensors of layers
 * the config does not have (a config for a smaller model), and names the first tensor of the first
 * layer the checkpoint has nothing for (a config for a larger model, or a hostile layer count —
 * planning 1e9 layers first would never answer). Costs one pass over the names.
 */
export function checkLayerCount(config: ModelConfig, names: Iterable<string>): void {
  const present = new Set<number>();
  const all: string[] = [];
  for (const name of names) {
    all.push(name);
    const m = /(?:^|\.)(?:layers|h)\.(\d+)\./.exec(name);
    if (!m) continue;
    if (Number(m[1]) >= config.layers) {
      throw new ModelError('shape-mismatch', `the checkpoint has tensor "${name}" for layer ${m[1]}, but config.json says the model has ${config.layers} layers; config.json and the weights do not belong together`);
    }
    present.add(Number(m[1]));
  }
  if (present.size === config.layers) return;
  let missing = 0;
  while (present.has(missing)) missing++;
  const has = new Set(all);
  const layer = config.family === 'llama' ? llamaLayerPlan(config, missing) : gpt2LayerPlan(config, gpt2Prefix((n) => has.has(n)), missing);
  const first = [...layer.values()][0]!;
  throw new ModelError('tensor-missing', `the checkpoint has no tensor "${first.name}" (expected shape ${fmt(first.shape)} from ${describeConfig(config)}): it has no tensors for layer ${missing}; the weights are incomplete or belong to another architecture`);
}

/** Reads one tensor of a plan (already checked against the checkpoint) as float32, in its checkpoint layout. */
export type TensorGet = (need: TensorNeed) => Float32Array;

/** A layer's float vectors: norms and biases (what a quantised model keeps in float). */
export interface LayerVectors {
  attnNorm: Norm;
  mlpNorm: Norm;
  bias: Partial<Record<LinearName, Float32Array>>;
}

function need(layer: ReadonlyMap<string, TensorNeed>, role: string): TensorNeed {
  const n = layer.get(role);
  if (!n) throw new Error(`internal: the checkpoint plan has no ${role}`);
  return n;
}

/**
 * GPT-2's fused q/k/v rows (`cols` values each: the weight's d, or 1 for the bias) split into q, k
 * and v. GPTBigCode without multi-query fuses per head: rows [q_h; k_h; v_h] for each head h;
 * GPT-2 and multi-query GPTBigCode: rows [q (d); k (kvDim); v (kvDim)].
 */
function splitQkv(config: ModelConfig, fused: Float32Array, cols: number): [Float32Array, Float32Array, Float32Array] {
  const d = config.hidden;
  const hd = config.headDim;
  const kvDim = config.kvHeads * hd;
  if (isBigCode(config) && config.kvHeads === config.heads) {
    const part = (which: number): Float32Array => {
      const out = new Float32Array(d * cols);
      for (let h = 0; h < config.heads; h++) {
        const src = (h * 3 + which) * hd;
        out.set(fused.subarray(src * cols, (src + hd) * cols), h * hd * cols);
      }
      return out;
    };
    return [part(0), part(1), part(2)];
  }
  return [fused.slice(0, d * cols), fused.slice(d * cols, (d + kvDim) * cols), fused.slice((d + kvDim) * cols, (d + 2 * kvDim) * cols)];
}

/** The norms and biases of one layer of the plan, in canonical form (GPT-2's fused q/k/v bias split). */
export function layerVectors(config: ModelConfig, layer: ReadonlyMap<string, TensorNeed>, get: TensorGet): LayerVectors {
  const bias: LayerVectors['bias'] = {};
  if (config.family === 'llama') {
    for (const n of ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] as const) {
      const b = layer.get(`${n}.bias`);
      if (b) bias[n] = get(b);
    }
    return { attnNorm: { weight: get(need(layer, 'attn_norm.weight')) }, mlpNorm: { weight: get(need(layer, 'mlp_norm.weight')) }, bias };
  }
  [bias.q, bias.k, bias.v] = splitQkv(config, get(need(layer, 'qkv.bias')), 1);
  for (const n of ['o', 'up', 'down'] as const) bias[n] = get(need(layer, `${n}.bias`));
  const norm = (role: string): Norm => ({ weight: get(need(layer, `${role}.weight`)), bias: get(need(layer, `${role}.bias`)) });
  return { attnNorm: norm('attn_norm'), mlpNorm: norm('mlp_norm'), bias };
}

/** The weight matrices of one layer of the plan in canonical [out, in] layout (Conv1D transposed, fused q/k/v split). */
export function layerMatrices(config: ModelConfig, layer: ReadonlyMap<string, TensorNeed>, get: TensorGet): Partial<Record<LinearName, Float32Array>> {
  if (config.family === 'llama') {
    const out: Partial<Record<LinearName, Float32Array>> = {};
    for (const n of ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] as const) out[n] = get(need(layer, `${n}.weight`));
    return out;
  }
  const bigCode = isBigCode(config);
  const canonical = (role: string): Float32Array => {
    const t = need(layer, `${role}.weight`);
    return bigCode ? get(t) : transpose(get(t), t.shape[0]!, t.shape[1]!);
  };
  const [q, k, v] = splitQkv(config, canonical('qkv'), config.hidden);
  return { q, k, v, o: canonical('o'), up: canonical('up'), down: canonical('down') };
}

/** One layer of the plan in canonical form. */
export function canonicalLayer(config: ModelConfig, layer: ReadonlyMap<string, TensorNeed>, get: TensorGet): LayerWeights {
  const w = layerMatrices(config, layer, get);
  const vec = layerVectors(config, layer, get);
  const d = config.hidden;
  const m = config.intermediate;
  const qDim = config.heads * config.headDim;
  const kvDim = config.kvHeads * config.headDim;
  const linear = (n: LinearName, out: number, inp: number): Linear => {
    const weight = w[n];
    if (!weight) throw new Error(`internal: layer matrices lack ${n}`);
    const l: Linear = { weight, out, in: inp };
    const b = vec.bias[n];
    if (b) l.bias = b;
    return l;
  };
  const attention = { q: linear('q', qDim, d), k: linear('k', kvDim, d), v: linear('v', kvDim, d), o: linear('o', d, qDim) };
  const mlp = { up: linear('up', m, d), down: linear('down', d, m) };
  return config.family === 'llama'
    ? { attnNorm: vec.attnNorm, ...attention, mlpNorm: vec.mlpNorm, gate: linear('gate', m, d), ...mlp }
    : { attnNorm: vec.attnNorm, ...attention, mlpNorm: vec.mlpNorm, ...mlp };
}

/** The final norm of the plan. */
export function canonicalFinalNorm(plan: CheckpointPlan, get: TensorGet): Norm {
  const bias = plan.finalNorm.get('bias');
  return { weight: get(need(plan.finalNorm, 'weight')), ...(bias ? { bias: get(bias) } : {}) };
}

/** The whole plan in canonical form, reading each tensor through `get`. */
export function assembleCanonical(config: ModelConfig, plan: CheckpointPlan, get: TensorGet): CanonicalWeights {
  const embed = get(plan.embed);
  const positions = plan.positions ? get(plan.positions) : undefined;
  const layers = plan.layers.map((l) => canonicalLayer(config, l, get));
  const finalNorm = canonicalFinalNorm(plan, get);
  const lmHead = plan.lmHead ? get(plan.lmHead) : embed;
  return positions ? { embed, positions, layers, finalNorm, lmHead } : { embed, layers, finalNorm, lmHead };
}

/** Number of distinct parameters the plan reads (a tied LM head is not read, so counted once). */
export function planParams(plan: CheckpointPlan): number {
  return planTensors(plan).reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
}

/**
 * The canonical view of a checkpoint's tensors. Llama-family arrays are shared with `tensors`
 * (no copy); GPT-2 Conv1D weights and fused q/k/v are copied into their canonical layout.
 * With `consume`, each tensor is removed from `tensors` once taken, so a re-laid-out original
 * can be garbage-collected at once instead of the whole model briefly existing twice.
 */
export function canonicalWeights(config: ModelConfig, tensors: Map<string, HostTensor>, options: { consume?: boolean } = {}): CanonicalWeights {
  checkLayerCount(config, tensors.keys());
  const plan = checkpointPlan(config, (n) => tensors.has(n));
  checkPlan(config, plan, (n) => tensors.get(n)?.shape);
  const consume = options.consume ?? false;
  return assembleCanonical(config, plan, ({ name, shape }) => {
    const t = tensors.get(name);
    if (!t) throw new Error(`internal: tensor "${name}" was taken twice`);
    if (t.data.length !== shape.reduce((a, b) => a * b, 1)) {
      throw new ModelError('shape-mismatch', `tensor "${name}" holds ${t.data.length} values but its shape ${fmt(t.shape)} needs ${shape.reduce((a, b) => a * b, 1)}; the weights are damaged`);
    }
    if (consume) tensors.delete(name);
    return t.data;
  });
}

function checkLinear(name: string, l: Linear, out: number, inp: number, bias: boolean): void {
  if (l.out !== out || l.in !== inp || l.weight.length !== out * inp) {
    throw new ModelError('shape-mismatch', `canonical weight ${name} is [${l.out}, ${l.in}] with ${l.weight.length} values; the config implies [${out}, ${inp}]`);
  }
  if (bias && (!l.bias || l.bias.length !== out)) {
    throw new ModelError('shape-mismatch', `canonical weight ${name} needs a bias of ${out} values; found ${l.bias ? l.bias.length : 'none'}`);
  }
}

function concatRows(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

/** Puts a tensor into `out`, checking that its values fill the shape. */
function putTensor(out: Map<string, HostTensor>, name: string, shape: number[], data: Float32Array): void {
  if (data.length !== shape.reduce((a, b) => a * b, 1)) {
    throw new ModelError('shape-mismatch', `${name}: ${data.length} values do not fill shape ${fmt(shape)}`);
  }
  out.set(name, { shape, data });
}

/** Name prefix of the GPT-2-family tensors we write (what save_pretrained writes). */
export const GPT2_EXPORT_PREFIX = 'transformer.';

/**
 * Layer `i` of canonical weights in Hugging Face names and layouts (inverse of canonicalLayer):
 * Llama's arrays shared, GPT-2's Conv1D transposed back and q/k/v fused again.
 */
export function checkpointLayerTensors(config: ModelConfig, i: number, l: LayerWeights): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  const put = (name: string, shape: number[], data: Float32Array): void => putTensor(out, name, shape, data);
  const d = config.hidden;
  const m = config.intermediate;
  const hd = config.headDim;
  const qDim = config.heads * hd;
  const kvDim = config.kvHeads * hd;
  if (config.family === 'llama') {
    const p = `model.layers.${i}`;
    const lin = (name: string, x: Linear | undefined, o: number, inp: number, bias: boolean): void => {
      if (!x) throw new ModelError('tensor-missing', `canonical layer ${i} has no ${name} projection`);
      checkLinear(`${p}.${name}`, x, o, inp, bias);
      put(`${p}.${name}.weight`, [o, inp], x.weight);
      if (bias) put(`${p}.${name}.bias`, [o], x.bias!);
    };
    put(`${p}.input_layernorm.weight`, [d], l.attnNorm.weight);
    lin('self_attn.q_proj', l.q, qDim, d, config.qkvBias);
    lin('self_attn.k_proj', l.k, kvDim, d, config.qkvBias);
    lin('self_attn.v_proj', l.v, kvDim, d, config.qkvBias);
    lin('self_attn.o_proj', l.o, d, qDim, config.oBias);
    put(`${p}.post_attention_layernorm.weight`, [d], l.mlpNorm.weight);
    lin('mlp.gate_proj', l.gate, m, d, config.mlpBias);
    lin('mlp.up_proj', l.up, m, d, config.mlpBias);
    lin('mlp.down_proj', l.down, d, m, config.mlpBias);
    return out;
  }
  const bigCode = isBigCode(config);
  const p = `${GPT2_EXPORT_PREFIX}h.${i}`;
  const norm = (name: string, n: Norm): void => {
    put(`${name}.weight`, [d], n.weight);
    put(`${name}.bias`, [d], needBias(name, n.bias));
  };
  const lin = (name: string, x: Linear, o: number, inp: number): void => {
    checkLinear(name, x, o, inp, true);
    if (bigCode) put(`${name}.weight`, [o, inp], x.weight);
    else put(`${name}.weight`, [inp, o], transpose(x.weight, o, inp));
    put(`${name}.bias`, [o], x.bias!);
  };
  checkLinear(`${p}.attn q`, l.q, d, d, true);
  checkLinear(`${p}.attn k`, l.k, kvDim, d, true);
  checkLinear(`${p}.attn v`, l.v, kvDim, d, true);
  let fusedW: Float32Array;
  let fusedB: Float32Array;
  if (bigCode && config.kvHeads === config.heads) {
    const per = [l.q, l.k, l.v];
    fusedW = new Float32Array(3 * d * d);
    fusedB = new Float32Array(3 * d);
    for (let h = 0; h < config.heads; h++) {
      per.forEach((x, which) => {
        const dst = (h * 3 + which) * hd;
        fusedW.set(x.weight.subarray(h * hd * d, (h + 1) * hd * d), dst * d);
        fusedB.set(x.bias!.subarray(h * hd, (h + 1) * hd), dst);
      });
    }
  } else {
    fusedW = concatRows([l.q.weight, l.k.weight, l.v.weight]);
    fusedB = concatRows([l.q.bias!, l.k.bias!, l.v.bias!]);
  }
  norm(`${p}.ln_1`, l.attnNorm);
  const rowsOut = d + 2 * kvDim;
  if (bigCode) put(`${p}.attn.c_attn.weight`, [rowsOut, d], fusedW);
  else put(`${p}.attn.c_attn.weight`, [d, rowsOut], transpose(fusedW, rowsOut, d));
  put(`${p}.attn.c_attn.bias`, [rowsOut], fusedB);
  lin(`${p}.attn.c_proj`, l.o, d, d);
  norm(`${p}.ln_2`, l.mlpNorm);
  lin(`${p}.mlp.c_fc`, l.up, m, d);
  lin(`${p}.mlp.c_proj`, l.down, d, m);
  return out;
}

function needBias(name: string, b: Float32Array | undefined): Float32Array {
  if (!b) throw new ModelError('shape-mismatch', `canonical weight ${name} has no bias but the config requires one`);
  return b;
}

/**
 * Inverse of canonicalWeights: HF names and layouts, ready for writeSafetensors (exporting a
 * patched checkpoint). GPT-2-family names get the "transformer." prefix that save_pretrained writes.
 * Arrays that need no re-layout are shared with `w`, not copied.
 */
export function toCheckpointTensors(config: ModelConfig, w: CanonicalWeights): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  const put = (name: string, shape: number[], data: Float32Array): void => putTensor(out, name, shape, data);
  const d = config.hidden;
  if (w.layers.length !== config.layers) {
    throw new ModelError('shape-mismatch', `canonical weights have ${w.layers.length} layers; the config says ${config.layers}`);
  }
  const layers = (): void => w.layers.forEach((l, i) => {
    for (const [name, t] of checkpointLayerTensors(config, i, l)) out.set(name, t);
  });
  if (config.family === 'llama') {
    put('model.embed_tokens.weight', [config.vocab, d], w.embed);
    layers();
    put('model.norm.weight', [d], w.finalNorm.weight);
  } else {
    const P = GPT2_EXPORT_PREFIX;
    put(`${P}wte.weight`, [config.vocab, d], w.embed);
    if (!w.positions) throw new ModelError('tensor-missing', 'canonical weights of a GPT-2-family model need learned positions');
    put(`${P}wpe.weight`, [config.maxPositions, d], w.positions);
    layers();
    put(`${P}ln_f.weight`, [d], w.finalNorm.weight);
    put(`${P}ln_f.bias`, [d], needBias(`${P}ln_f`, w.finalNorm.bias));
  }
  if (!config.tiedEmbeddings) put('lm_head.weight', [config.vocab, d], w.lmHead);
  return out;
}
