// Hugging Face tensor names and layouts ⇄ the canonical per-layer view the graph builder
// consumes. Every linear map is row-major [out, in] (nn.Linear layout); GPT-2's Conv1D
// ([in, out]) is transposed here and GPTBigCode's fused c_attn is split here, so nothing
// downstream knows about checkpoint quirks. Each name and shape is checked against the config.
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

/** Looks tensors up by name, checking shapes against what the config implies. */
function tensorReader(config: ModelConfig, tensors: Map<string, HostTensor>, consume: boolean) {
  const describe = `config.json (${config.architecture}: layers ${config.layers}, hidden ${config.hidden}, intermediate ${config.intermediate}, heads ${config.heads}, kv heads ${config.kvHeads}, head dim ${config.headDim}, vocab ${config.vocab})`;
  return {
    take(name: string, shape: readonly number[]): Float32Array {
      const t = tensors.get(name);
      if (!t) {
        throw new ModelError('tensor-missing', `the checkpoint has no tensor "${name}" (expected shape ${fmt(shape)} from ${describe}); the weights are incomplete or belong to another architecture`);
      }
      if (t.shape.length !== shape.length || t.shape.some((s, i) => s !== shape[i]) || t.data.length !== shape.reduce((a, b) => a * b, 1)) {
        throw new ModelError('shape-mismatch', `tensor "${name}" has shape ${fmt(t.shape)} but ${describe} implies ${fmt(shape)}; config.json and the weights do not belong together`);
      }
      if (consume) tensors.delete(name);
      return t.data;
    },
  };
}

function checkNoExtraLayers(config: ModelConfig, tensors: Map<string, HostTensor>): void {
  for (const name of tensors.keys()) {
    const m = /(?:^|\.)(?:layers|h)\.(\d+)\./.exec(name);
    if (m && Number(m[1]) >= config.layers) {
      throw new ModelError('shape-mismatch', `the checkpoint has tensor "${name}" for layer ${m[1]}, but config.json says the model has ${config.layers} layers; config.json and the weights do not belong together`);
    }
  }
}

function rows(src: Float32Array, cols: number, from: number, count: number): Float32Array {
  return src.slice(from * cols, (from + count) * cols);
}

function llamaWeights(config: ModelConfig, tensors: Map<string, HostTensor>, consume: boolean): CanonicalWeights {
  const { take } = tensorReader(config, tensors, consume);
  const d = config.hidden;
  const m = config.intermediate;
  const qDim = config.heads * config.headDim;
  const kvDim = config.kvHeads * config.headDim;
  const linear = (name: string, out: number, inp: number, bias: boolean): Linear => {
    const l: Linear = { weight: take(`${name}.weight`, [out, inp]), out, in: inp };
    if (bias) l.bias = take(`${name}.bias`, [out]);
    return l;
  };
  const embed = take('model.embed_tokens.weight', [config.vocab, d]);
  const layers: LayerWeights[] = [];
  for (let i = 0; i < config.layers; i++) {
    const p = `model.layers.${i}`;
    layers.push({
      attnNorm: { weight: take(`${p}.input_layernorm.weight`, [d]) },
      q: linear(`${p}.self_attn.q_proj`, qDim, d, config.qkvBias),
      k: linear(`${p}.self_attn.k_proj`, kvDim, d, config.qkvBias),
      v: linear(`${p}.self_attn.v_proj`, kvDim, d, config.qkvBias),
      o: linear(`${p}.self_attn.o_proj`, d, qDim, config.oBias),
      mlpNorm: { weight: take(`${p}.post_attention_layernorm.weight`, [d]) },
      gate: linear(`${p}.mlp.gate_proj`, m, d, config.mlpBias),
      up: linear(`${p}.mlp.up_proj`, m, d, config.mlpBias),
      down: linear(`${p}.mlp.down_proj`, d, m, config.mlpBias),
    });
  }
  const finalNorm = { weight: take('model.norm.weight', [d]) };
  const lmHead = config.tiedEmbeddings ? embed : take('lm_head.weight', [config.vocab, d]);
  return { embed, layers, finalNorm, lmHead };
}

function gpt2Weights(config: ModelConfig, tensors: Map<string, HostTensor>, consume: boolean): CanonicalWeights {
  const P = gpt2Prefix((n) => tensors.has(n));
  const { take } = tensorReader(config, tensors, consume);
  const bigCode = config.architecture === 'GPTBigCodeForCausalLM';
  const d = config.hidden;
  const m = config.intermediate;
  const hd = config.headDim;
  const kvDim = config.kvHeads * hd;
  const norm = (name: string): Norm => ({ weight: take(`${name}.weight`, [d]), bias: take(`${name}.bias`, [d]) });
  // GPT-2 stores Conv1D weights as [in, out]; GPTBigCode uses nn.Linear's [out, in].
  const linear = (name: string, out: number, inp: number): Linear => {
    const weight = bigCode ? take(`${name}.weight`, [out, inp]) : transpose(take(`${name}.weight`, [inp, out]), inp, out);
    return { weight, out, in: inp, bias: take(`${name}.bias`, [out]) };
  };
  const embed = take(`${P}wte.weight`, [config.vocab, d]);
  const positions = take(`${P}wpe.weight`, [config.maxPositions, d]);
  const layers: LayerWeights[] = [];
  for (let i = 0; i < config.layers; i++) {
    const p = `${P}h.${i}`;
    const qkv = linear(`${p}.attn.c_attn`, d + 2 * kvDim, d);
    const qkvBias = qkv.bias!;
    let q: Linear; let k: Linear; let v: Linear;
    if (bigCode && config.kvHeads === config.heads) {
      // GPTBigCode without multi-query fuses per head: rows [q_h; k_h; v_h] for each head h.
      const part = (which: number): Linear => {
        const w = new Float32Array(d * d);
        const b = new Float32Array(d);
        for (let h = 0; h < config.heads; h++) {
          const src = (h * 3 + which) * hd;
          w.set(qkv.weight.subarray(src * d, (src + hd) * d), h * hd * d);
          b.set(qkvBias.subarray(src, src + hd), h * hd);
        }
        return { weight: w, out: d, in: d, bias: b };
      };
      q = part(0); k = part(1); v = part(2);
    } else {
      // GPT-2 and multi-query GPTBigCode: rows [q (d); k (kvDim); v (kvDim)].
      q = { weight: rows(qkv.weight, d, 0, d), out: d, in: d, bias: qkvBias.slice(0, d) };
      k = { weight: rows(qkv.weight, d, d, kvDim), out: kvDim, in: d, bias: qkvBias.slice(d, d + kvDim) };
      v = { weight: rows(qkv.weight, d, d + kvDim, kvDim), out: kvDim, in: d, bias: qkvBias.slice(d + kvDim, d + 2 * kvDim) };
    }
    layers.push({
      attnNorm: norm(`${p}.ln_1`),
      q, k, v,
      o: linear(`${p}.attn.c_proj`, d, d),
      mlpNorm: norm(`${p}.ln_2`),
      up: linear(`${p}.mlp.c_fc`, m, d),
      down: linear(`${p}.mlp.c_proj`, d, m),
    });
  }
  const finalNorm = norm(`${P}ln_f`);
  const lmHead = config.tiedEmbeddings ? embed : take('lm_head.weight', [config.vocab, d]);
  return { embed, positions, layers, finalNorm, lmHead };
}

/**
 * The canonical view of a checkpoint's tensors. Llama-family arrays are shared with `tensors`
 * (no copy); GPT-2 Conv1D weights and fused q/k/v are copied into their canonical layout.
 * With `consume`, each tensor is removed from `tensors` once taken, so a re-laid-out original
 * can be garbage-collected at once instead of the whole model briefly existing twice.
 */
export function canonicalWeights(config: ModelConfig, tensors: Map<string, HostTensor>, options: { consume?: boolean } = {}): CanonicalWeights {
  checkNoExtraLayers(config, tensors);
  const consume = options.consume ?? false;
  return config.family === 'llama' ? llamaWeights(config, tensors, consume) : gpt2Weights(config, tensors, consume);
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

/**
 * Inverse of canonicalWeights: HF names and layouts, ready for writeSafetensors (exporting a
 * patched checkpoint). GPT-2-family names get the "transformer." prefix that save_pretrained writes.
 * Arrays that need no re-layout are shared with `w`, not copied.
 */
export function toCheckpointTensors(config: ModelConfig, w: CanonicalWeights): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  const d = config.hidden;
  const m = config.intermediate;
  const hd = config.headDim;
  const qDim = config.heads * hd;
  const kvDim = config.kvHeads * hd;
  if (w.layers.length !== config.layers) {
    throw new ModelError('shape-mismatch', `canonical weights have ${w.layers.length} layers; the config says ${config.layers}`);
  }
  const put = (name: string, shape: number[], data: Float32Array): void => {
    if (data.length !== shape.reduce((a, b) => a * b, 1)) {
      throw new ModelError('shape-mismatch', `${name}: ${data.length} values do not fill shape ${fmt(shape)}`);
    }
    out.set(name, { shape, data });
  };
  const needBias = (name: string, b: Float32Array | undefined): Float32Array => {
    if (!b) throw new ModelError('shape-mismatch', `canonical weight ${name} has no bias but the config requires one`);
    return b;
  };

  if (config.family === 'llama') {
    put('model.embed_tokens.weight', [config.vocab, d], w.embed);
    w.layers.forEach((l, i) => {
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
    });
    put('model.norm.weight', [d], w.finalNorm.weight);
  } else {
    const bigCode = config.architecture === 'GPTBigCodeForCausalLM';
    const P = 'transformer.';
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
    put(`${P}wte.weight`, [config.vocab, d], w.embed);
    if (!w.positions) throw new ModelError('tensor-missing', 'canonical weights of a GPT-2-family model need learned positions');
    put(`${P}wpe.weight`, [config.maxPositions, d], w.positions);
    w.layers.forEach((l, i) => {
      const p = `${P}h.${i}`;
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
    });
    norm(`${P}ln_f`, w.finalNorm);
  }
  if (!config.tiedEmbeddings) put('lm_head.weight', [config.vocab, d], w.lmHead);
  return out;
}
