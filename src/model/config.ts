// config.json → ModelConfig: the one place that knows each supported architecture's
// config fields, their transformers defaults, and which features we refuse (and why).
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { ModelError, errorText } from './errors';
import { CONFIG_JSON_LIMIT, readRegularFile } from './files';

export type Family = 'llama' | 'gpt2'; // llama = Llama/Qwen2/Mistral; gpt2 = GPT-2/GPTBigCode
export type Activation = 'silu' | 'gelu' | 'gelu_tanh';

export const SUPPORTED_ARCHITECTURES: readonly string[] = Object.freeze([
  'LlamaForCausalLM',
  'Qwen2ForCausalLM',
  'MistralForCausalLM',
  'GPT2LMHeadModel',
  'GPTBigCodeForCausalLM',
]);

export interface ModelConfig {
  architecture: string;
  family: Family;
  layers: number;
  hidden: number;
  /** MLP inner width m (the number of neurons per layer). */
  intermediate: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  vocab: number;
  maxPositions: number;
  /** RoPE base; 0 for the gpt2 family, which has learned positions instead. */
  ropeTheta: number;
  normEps: number;
  tiedEmbeddings: boolean;
  qkvBias: boolean;
  oBias: boolean;
  mlpBias: boolean;
  activation: Activation;
  slidingWindow: number | null;
  bosTokenId: number | null;
  eosTokenId: number | null;
  raw: Readonly<Record<string, unknown>>;
}

const FAMILY_OF: Readonly<Record<string, Family>> = {
  LlamaForCausalLM: 'llama',
  Qwen2ForCausalLM: 'llama',
  MistralForCausalLM: 'llama',
  GPT2LMHeadModel: 'gpt2',
  GPTBigCodeForCausalLM: 'gpt2',
};

// Used only when config.json has no "architectures" list (older or hand-written configs).
const ARCHITECTURE_OF_MODEL_TYPE: Readonly<Record<string, string>> = {
  llama: 'LlamaForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
  mistral: 'MistralForCausalLM',
  gpt2: 'GPT2LMHeadModel',
  gpt_bigcode: 'GPTBigCodeForCausalLM',
};

/** Reads config fields with messages that name the file and the field. */
class Fields {
  constructor(
    readonly obj: Record<string, unknown>,
    readonly where: string,
    readonly source: string | undefined,
  ) {}

  fail(message: string): never {
    throw new ModelError('config-invalid', `${this.where}: ${message}`, this.source);
  }

  has(key: string): boolean {
    return this.obj[key] !== undefined && this.obj[key] !== null;
  }

  /** A positive integer; `fallback` undefined means the field is required. */
  posInt(key: string, fallback?: number): number {
    const v = this.obj[key];
    if (v === undefined || v === null) {
      if (fallback === undefined) {
        this.fail(`required field "${key}" is missing; a config.json written by transformers always has it — re-save the model with save_pretrained() or add the field`);
      }
      return fallback;
    }
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
      this.fail(`"${key}" must be a positive integer, found ${JSON.stringify(v)}`);
    }
    return v;
  }

  posNumber(key: string, fallback: number): number {
    const v = this.obj[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
      this.fail(`"${key}" must be a positive number, found ${JSON.stringify(v)}`);
    }
    return v;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.obj[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') this.fail(`"${key}" must be true or false, found ${JSON.stringify(v)}`);
    return v;
  }

  str(key: string, fallback: string): string {
    const v = this.obj[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'string') this.fail(`"${key}" must be a string, found ${JSON.stringify(v)}`);
    return v;
  }

  /**
   * A special-token id. transformers writes class defaults (e.g. GPT-2's 50256) even into
   * configs of tiny test models whose vocabulary is smaller; such an id can never be produced,
   * so it is reported as null rather than rejected. Lists (Llama 3's several EOS ids) give the first.
   */
  tokenId(key: string, vocab: number, fallback: number | null): number | null {
    let v = this.obj[key];
    if (v === undefined) v = fallback;
    if (Array.isArray(v)) v = v.length > 0 ? v[0] : null;
    if (v === null) return null;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
      this.fail(`"${key}" must be a token id (non-negative integer), a list of them, or null; found ${JSON.stringify(this.obj[key])}`);
    }
    return v < vocab ? v : null;
  }
}

function resolveArchitecture(f: Fields): string {
  const archs = f.obj['architectures'];
  if (archs !== undefined && archs !== null) {
    if (!Array.isArray(archs) || archs.length === 0 || !archs.every((a) => typeof a === 'string')) {
      f.fail(`"architectures" must be a non-empty list of class names, found ${JSON.stringify(archs)}`);
    }
    const name = archs[0] as string;
    if (!(name in FAMILY_OF)) {
      throw new ModelError(
        'unsupported-architecture',
        `${f.where}: architecture "${name}" is not supported. Supported architectures: ${SUPPORTED_ARCHITECTURES.join(', ')}.`,
        f.source,
      );
    }
    return name;
  }
  const modelType = f.obj['model_type'];
  if (typeof modelType !== 'string') {
    f.fail('names no architecture: it needs "architectures" (e.g. ["LlamaForCausalLM"]) or "model_type"');
  }
  const name = ARCHITECTURE_OF_MODEL_TYPE[modelType];
  if (name === undefined) {
    throw new ModelError(
      'unsupported-architecture',
      `${f.where}: model_type "${modelType}" is not supported. Supported architectures: ${SUPPORTED_ARCHITECTURES.join(', ')}.`,
      f.source,
    );
  }
  return name;
}

function checkHeads(f: Fields, hidden: number, heads: number, kvHeads: number, headDimGiven: boolean): void {
  if (!headDimGiven && hidden % heads !== 0) {
    f.fail(`hidden size ${hidden} is not divisible by the number of attention heads ${heads}`);
  }
  if (heads % kvHeads !== 0) {
    f.fail(`the number of attention heads ${heads} is not divisible by the number of key/value heads ${kvHeads}`);
  }
}

function parseLlamaFamily(f: Fields, architecture: string): Omit<ModelConfig, 'raw'> {
  const hidden = f.posInt('hidden_size');
  const layers = f.posInt('num_hidden_layers');
  const heads = f.posInt('num_attention_heads');
  const intermediate = f.posInt('intermediate_size');
  const vocab = f.posInt('vocab_size');
  const kvHeads = f.posInt('num_key_value_heads', heads);
  const headDimGiven = f.has('head_dim');
  const headDim = f.posInt('head_dim', Math.floor(hidden / heads));
  checkHeads(f, hidden, heads, kvHeads, headDimGiven);
  if (headDim % 2 !== 0) f.fail(`head dimension ${headDim} must be even for rotary position embeddings`);

  const act = f.str('hidden_act', 'silu');
  if (act !== 'silu' && act !== 'swish') {
    f.fail(`hidden_act "${act}" is not supported for ${architecture} (supported: silu)`);
  }

  const scaling = f.obj['rope_scaling'];
  if (scaling !== undefined && scaling !== null) {
    const type = typeof scaling === 'object' && !Array.isArray(scaling)
      ? ((scaling as Record<string, unknown>)['rope_type'] ?? (scaling as Record<string, unknown>)['type'])
      : undefined;
    if (type !== 'default') {
      f.fail(`rope_scaling ${JSON.stringify(scaling)} is not supported: only plain RoPE (rope_scaling null or of type "default") is implemented; use a checkpoint without RoPE scaling`);
    }
  }

  const defaults = {
    LlamaForCausalLM: { maxPositions: 2048 },
    Qwen2ForCausalLM: { maxPositions: 32768 },
    MistralForCausalLM: { maxPositions: 131072 },
  }[architecture as 'LlamaForCausalLM'];

  let qkvBias = false;
  let oBias = false;
  let mlpBias = false;
  let slidingWindow: number | null = null;
  if (architecture === 'LlamaForCausalLM') {
    qkvBias = oBias = f.bool('attention_bias', false);
    mlpBias = f.bool('mlp_bias', false);
  } else if (architecture === 'Qwen2ForCausalLM') {
    // Qwen2 hard-codes biases on q/k/v only; there is no config switch for them.
    qkvBias = true;
    if (f.bool('use_sliding_window', false)) {
      f.fail('use_sliding_window true is not supported for Qwen2 (per-layer sliding windows); use a checkpoint with use_sliding_window false');
    }
  } else {
    // MistralConfig defaults sliding_window to 4096 when the field is absent.
    const sw = f.obj['sliding_window'];
    slidingWindow = sw === null ? null : f.posInt('sliding_window', 4096);
  }

  return {
    architecture,
    family: 'llama',
    layers,
    hidden,
    intermediate,
    heads,
    kvHeads,
    headDim,
    vocab,
    maxPositions: f.posInt('max_position_embeddings', defaults.maxPositions),
    ropeTheta: f.posNumber('rope_theta', 10000),
    normEps: f.posNumber('rms_norm_eps', 1e-6),
    tiedEmbeddings: f.bool('tie_word_embeddings', false),
    qkvBias,
    oBias,
    mlpBias,
    activation: 'silu',
    slidingWindow,
    bosTokenId: f.tokenId('bos_token_id', vocab, null),
    eosTokenId: f.tokenId('eos_token_id', vocab, null),
  };
}

function parseGpt2Family(f: Fields, architecture: string): Omit<ModelConfig, 'raw'> {
  const bigCode = architecture === 'GPTBigCodeForCausalLM';
  const hidden = f.posInt('n_embd');
  const layers = f.posInt('n_layer');
  const heads = f.posInt('n_head');
  const vocab = f.posInt('vocab_size');
  const maxPositions = f.has('n_positions') || !f.has('n_ctx') ? f.posInt('n_positions') : f.posInt('n_ctx');
  const intermediate = f.posInt('n_inner', 4 * hidden);
  const kvHeads = bigCode && f.bool('multi_query', true) ? 1 : heads;
  checkHeads(f, hidden, heads, kvHeads, false);

  const actName = f.str('activation_function', bigCode ? 'gelu_pytorch_tanh' : 'gelu_new');
  let activation: Activation;
  if (actName === 'gelu_new' || actName === 'gelu_pytorch_tanh' || actName === 'gelu_fast') activation = 'gelu_tanh';
  else if (actName === 'gelu') activation = 'gelu';
  else f.fail(`activation_function "${actName}" is not supported for ${architecture} (supported: gelu, gelu_new, gelu_pytorch_tanh, gelu_fast)`);

  // These switches change the attention maths; refusing them beats computing something else.
  if (!f.bool('scale_attn_weights', true)) f.fail('scale_attn_weights false is not supported');
  if (f.bool('scale_attn_by_inverse_layer_idx', false)) f.fail('scale_attn_by_inverse_layer_idx true is not supported');
  if (f.bool('add_cross_attention', false)) f.fail('add_cross_attention true is not supported (decoder-only models only)');

  return {
    architecture,
    family: 'gpt2',
    layers,
    hidden,
    intermediate,
    heads,
    kvHeads,
    headDim: hidden / heads,
    vocab,
    maxPositions,
    ropeTheta: 0,
    normEps: f.posNumber('layer_norm_epsilon', 1e-5),
    tiedEmbeddings: f.bool('tie_word_embeddings', true),
    qkvBias: true,
    oBias: true,
    mlpBias: true,
    activation,
    slidingWindow: null,
    bosTokenId: f.tokenId('bos_token_id', vocab, 50256),
    eosTokenId: f.tokenId('eos_token_id', vocab, 50256),
  };
}

/** Validates a parsed config.json object; `source` (a path) only improves messages. */
export function parseConfig(json: unknown, source?: string): ModelConfig {
  const where = source ?? 'config.json';
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new ModelError('config-invalid', `${where}: expected a JSON object, found ${Array.isArray(json) ? 'an array' : json === null ? 'null' : typeof json}`, source);
  }
  const obj = json as Record<string, unknown>;
  const f = new Fields(obj, where, source);
  const architecture = resolveArchitecture(f);
  const parsed = FAMILY_OF[architecture] === 'llama' ? parseLlamaFamily(f, architecture) : parseGpt2Family(f, architecture);
  return { ...parsed, raw: Object.freeze({ ...obj }) };
}

/** config.json's bytes: a regular file of at most CONFIG_JSON_LIMIT bytes (file-system errors are thrown as they are). */
export function readConfigBytes(file: string): Buffer {
  return readRegularFile(file, 'config.json', CONFIG_JSON_LIMIT, 'config-invalid');
}

export function loadConfig(dir: string): ModelConfig {
  const file = join(dir, 'config.json');
  let text: string;
  try {
    if (!statSync(dir).isDirectory()) {
      throw new ModelError('config-missing', `${dir} is not a folder: give the path of a Hugging Face model folder (config.json, *.safetensors, tokenizer.json)`, dir);
    }
  } catch (e) {
    if (e instanceof ModelError) throw e;
    throw new ModelError('config-missing', `model folder ${dir} does not exist (${errorText(e)}); give the path of a Hugging Face model folder`, dir, { cause: e });
  }
  try {
    text = readConfigBytes(file).toString('utf8');
  } catch (e) {
    if (e instanceof ModelError) throw e;
    throw new ModelError('config-missing', `no readable config.json in ${dir} (${errorText(e)}); a Hugging Face model folder needs config.json, *.safetensors and tokenizer.json`, file, { cause: e });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ModelError('config-invalid', `${file} is not valid JSON (${errorText(e)}); restore it from the original checkpoint`, file, { cause: e });
  }
  return parseConfig(json, file);
}
