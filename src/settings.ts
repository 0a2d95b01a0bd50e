// The extension's settings under `starRepair.`: one table (SETTINGS) that gives each
// setting its type, default, range and description. From it come the typed Settings
// object with validation (bad values fall back or are clamped, each with a message)
// and package.json's `contributes.configuration`, so the two cannot drift apart.
// No vscode import: the extension passes `(key) => config.get(key)`. Enum values come from the
// vocabularies' one source each (providers, stop rules, neuron selection, methods, FIM).
import { SELECT_SETTINGS, type SelectSetting } from './repair/locate';
import { PROVIDERS, type ProviderName } from './runtime/provider-names';
import { COMPLETION_STOPS, type CompletionStop } from './runtime/stop-rules';
import { FIM_ORDER_SETTINGS, FIM_SETTINGS, type FimOrderSetting, type FimSetting } from './runtime/fim';
import { REPAIR_METHODS, REPAIR_MODES, type RepairChoice, type RepairMethod, type RepairMode } from './repair/patch';
import { WEIGHT_SETTINGS, type WeightSetting } from './runtime/weight-formats';

export const SETTINGS_PREFIX = 'starRepair';

export type { CompletionStop };
export type SpecificityGuard = 'off' | 'warn' | 'undo';

export interface Settings {
  /** Hugging Face model folder; empty = the embedded model. */
  modelPath: string;
  executionProvider: ProviderName;
  /** CPU threads for inference; 0 = let the runtime decide. */
  threads: number;
  completions: {
    enabled: boolean;
    /** Language ids served; "*" = every language. */
    languages: string[];
    maxTokens: number;
    stop: CompletionStop;
    debounceMs: number;
    /** FIM prompts: detected from the tokenizer, off, or a forced format (runtime/fim.ts). */
    fim: FimSetting;
    fimOrder: FimOrderSetting;
    /** Token budgets of the text before and after the cursor. */
    prefixTokens: number;
    suffixTokens: number;
    /** Time caps in ms (0 = none). */
    promptTimeoutMs: number;
    generationTimeoutMs: number;
  };
  capture: { enabled: boolean };
  repair: { auto: boolean } & RepairChoice;
  specificity: { guard: SpecificityGuard; threshold: number };
  /** Format of the weights the model runs on (runtime/weight-formats.ts). */
  weights: WeightSetting;
}

type Scope = 'application' | 'machine' | 'machine-overridable' | 'window' | 'resource' | 'language-overridable';

interface BaseDefinition {
  /** Key below the prefix, e.g. "completions.maxTokens". */
  key: string;
  description: string;
  scope?: Scope;
  /** Settings Sync leaves the user's value on this machine (a path, a GPU, a core count). */
  ignoreSync?: boolean;
}

export type SettingDefinition = BaseDefinition & (
  | { type: 'string'; default: string }
  | { type: 'boolean'; default: boolean }
  | { type: 'integer'; default: number; minimum: number; maximum: number }
  | { type: 'number'; default: number | null; minimum: number; maximum: number; exclusiveMinimum?: boolean; nullable?: boolean }
  | { type: 'enum'; default: string; enum: readonly string[]; enumDescriptions: readonly string[] }
  | { type: 'string[]'; default: readonly string[] }
);

/** Every setting, in the order the Settings editor shows them. */
export const SETTINGS: readonly SettingDefinition[] = [
  {
    key: 'modelPath', type: 'string', default: '', scope: 'window', ignoreSync: true,
    description: 'Folder of a Hugging Face model (`config.json`, `*.safetensors`, `tokenizer.json`) to serve completions from and repair. Empty: the small embedded model. A folder set by a workspace is used only in a trusted workspace. Not synced between machines; in a remote window the Remote tab sets it for that machine.',
  },
  {
    key: 'executionProvider', type: 'enum', default: 'auto', scope: 'window', ignoreSync: true,
    enum: PROVIDERS,
    enumDescriptions: [
      'Use a GPU when one works, else the CPU (the reason is shown).',
      'Always the CPU.',
      'WebGPU (Vulkan on Linux, D3D12 on Windows, Metal on macOS).',
      'CUDA (needs CUDA 12 and the onnxruntime-node CUDA binaries).',
      'DirectML (Windows).',
      'CoreML (macOS).',
    ],
    description: 'Where the model runs. Not synced between machines; in a remote window the Remote tab sets it for that machine.',
  },
  {
    key: 'threads', type: 'integer', default: 0, minimum: 0, maximum: 64, scope: 'window', ignoreSync: true,
    description: 'CPU threads for the model; 0 lets the runtime choose. Not synced between machines.',
  },
  { key: 'completions.enabled', type: 'boolean', default: true, description: 'Show inline completions from the local model.' },
  {
    key: 'completions.languages', type: 'string[]', default: ['python'],
    description: 'Language ids that get inline completions (e.g. `python`, `typescript`); `*` for every language.',
  },
  {
    key: 'completions.maxTokens', type: 'integer', default: 32, minimum: 1, maximum: 256,
    description: 'Most tokens generated for one completion.',
  },
  {
    key: 'completions.stop', type: 'enum', default: 'line', enum: COMPLETION_STOPS,
    enumDescriptions: ['Stop at the end of the current line.', 'Continue to the end of the block (an empty line or a dedent).'],
    description: 'Where a completion stops.',
  },
  {
    key: 'completions.debounceMs', type: 'integer', default: 150, minimum: 0, maximum: 2000,
    description: 'Milliseconds to wait after the last keystroke before asking the model.',
  },
  {
    key: 'completions.fim', type: 'enum', default: 'auto', enum: FIM_SETTINGS,
    enumDescriptions: [
      'Use the fill-in-the-middle tokens the model\'s tokenizer has (the text after the cursor goes into the prompt); none: the text before the cursor only.',
      'The text before the cursor only.',
      'Qwen2.5-Coder: <|fim_prefix|> <|fim_suffix|> <|fim_middle|>.',
      'StarCoder, StarCoder2, SantaCoder: <fim_prefix> <fim_suffix> <fim_middle>.',
      'CodeLlama: <PRE> <SUF> <MID>.',
      'DeepSeek-Coder: <｜fim▁begin｜> <｜fim▁hole｜> <｜fim▁end｜>.',
    ],
    description: 'Fill-in-the-middle prompt format. A format the model\'s tokenizer lacks is refused with a message.',
  },
  {
    key: 'completions.fimOrder', type: 'enum', default: 'auto', enum: FIM_ORDER_SETTINGS,
    enumDescriptions: [
      'The order the model was trained on (SPM where it knows both: better prompt-cache reuse while typing).',
      'Prefix, suffix, middle.',
      'Suffix, prefix, middle: typing changes only the end of the prompt.',
    ],
    description: 'Order of the parts of a fill-in-the-middle prompt.',
  },
  {
    key: 'completions.prefixTokens', type: 'integer', default: 1024, minimum: 16, maximum: 131072,
    description: 'Most tokens of text before the cursor in the prompt (cut at a line start; the model\'s context also caps it).',
  },
  {
    key: 'completions.suffixTokens', type: 'integer', default: 128, minimum: 0, maximum: 131072,
    description: 'Most tokens of text after the cursor in a fill-in-the-middle prompt (whole lines).',
  },
  {
    key: 'completions.promptTimeoutMs', type: 'integer', default: 5250, minimum: 0, maximum: 60000,
    description: 'Most milliseconds spent reading the prompt; past it no suggestion is shown (what was read is kept for the next one). 0: no cap.',
  },
  {
    key: 'completions.generationTimeoutMs', type: 'integer', default: 4750, minimum: 0, maximum: 60000,
    description: 'Most milliseconds spent generating after the first token; past it the suggestion so far is shown. 0: no cap.',
  },
  {
    key: 'capture.enabled', type: 'boolean', default: true,
    description: 'Keep a completion you rejected by typing something else as a failure to review and repair.',
  },
  {
    key: 'repair.auto', type: 'boolean', default: false,
    description: 'Repair captured failures automatically in the background. Off: they wait for your review.',
  },
  {
    key: 'repair.method', type: 'enum', default: 'star', enum: REPAIR_METHODS,
    enumDescriptions: [
      'STAR: analytic neuron patches steered by token meaning, checked against the exact gradient.',
      'MINT baseline: neuron-by-neuron traction edits.',
      'SGD baseline: gradient steps on every down-projection row.',
    ],
    description: 'Repair method.',
  },
  {
    key: 'repair.mode', type: 'enum', default: 'batch', enum: REPAIR_MODES,
    enumDescriptions: [
      'One failing token at a time, left to right.',
      'Every target token of the failures together, as the STAR authors run it: tokens already right are kept right.',
    ],
    description: 'How STAR walks the target tokens.',
  },
  {
    key: 'repair.select', type: 'enum', default: 'model', enum: SELECT_SETTINGS,
    enumDescriptions: [
      'The selection tuned for the model by the repair benchmark (star-repair.json in the model folder), else the first of dense, layer, global whose patch fits the patch bound (dense on the embedded model, global on a real one).',
      'Every neuron of every layer (the authors\' default; on a real model the patch is too large to keep and the repair says so).',
      'The top neurons by attribution over all layers.',
      'The quarter of layers whose MLP matters most to the failure (skipping it raises the loss most), all their neurons.',
      'The most responsible layer, then its top neurons.',
    ],
    description: 'Which neurons a repair may change.',
  },
  {
    key: 'repair.epochs', type: 'integer', default: 10, minimum: 1, maximum: 100,
    description: 'Optimisation epochs per repair.',
  },
  {
    key: 'repair.eta', type: 'number', default: null, nullable: true, minimum: 0, exclusiveMinimum: true, maximum: 100,
    description: 'Step size η of the repair; empty (null) uses the value tuned for the model.',
  },
  {
    key: 'repair.preserveRows', type: 'number', default: null, nullable: true, minimum: 0, maximum: 4096,
    description: 'How many token positions of completions that were right (accepted ones and the model\'s built-in samples) a STAR patch is solved to leave unchanged; 0 turns this off, empty (null) uses the value tuned for the model.',
  },
  {
    key: 'specificity.guard', type: 'enum', default: 'undo', enum: ['off', 'warn', 'undo'],
    enumDescriptions: [
      'Do not check.',
      'Keep the patch, and warn when it changes too many completions that were right.',
      'Undo such a patch at once and say so (it stays in the history, disabled).',
    ],
    description: 'What to do when a new patch\'s specificity falls below the threshold.',
  },
  {
    key: 'specificity.threshold', type: 'number', default: 0.95, minimum: 0, maximum: 1,
    description: 'Fraction of regression samples (accepted completions and the model\'s built-in set) that must stay right after a patch.',
  },
  {
    key: 'weights', type: 'enum', default: 'auto', enum: WEIGHT_SETTINGS, scope: 'window', ignoreSync: true,
    enumDescriptions: [
      'int8 on the CPU and WebGPU for models over 100 MB of weights (every real code model); fp32 for smaller ones and on other GPU providers.',
      'Full precision (32-bit floats): the most memory, the slowest decoding on a CPU.',
      '8-bit weights in blocks of 128 with a scale and zero point each: about 2.7× faster decoding than fp32 on a CPU and a quarter of the memory, completions almost always as with fp32; loaded without a full-precision copy, and the quantised form is cached for the next start.',
      '4-bit weights in blocks of 128: the fastest decoding, with a visible loss of quality on small models.',
    ],
    description: 'Format of the weights the model runs on. Repairs are computed on the same weights, patches stay in full precision and apply to every format; exporting a patched model writes full-precision weights. Not synced between machines.',
  },
];

/** Settings a workspace must not set unless it is trusted (package.json `restrictedConfigurations`). */
export const RESTRICTED_IN_UNTRUSTED_WORKSPACES: readonly string[] = [`${SETTINGS_PREFIX}.modelPath`];

type JsonSchema = { [key: string]: string | number | boolean | null | readonly unknown[] | JsonSchema };

/** The object for package.json `contributes.configuration`. */
export function configurationContribution(): { title: string; properties: { [key: string]: JsonSchema } } {
  const properties: { [key: string]: JsonSchema } = {};
  SETTINGS.forEach((s, order) => {
    const schema: JsonSchema = {};
    switch (s.type) {
      case 'string': schema.type = 'string'; break;
      case 'boolean': schema.type = 'boolean'; break;
      case 'integer': Object.assign(schema, { type: 'integer', minimum: s.minimum, maximum: s.maximum }); break;
      case 'number':
        schema.type = s.nullable ? ['number', 'null'] : 'number';
        if (s.exclusiveMinimum) schema.exclusiveMinimum = s.minimum;
        else schema.minimum = s.minimum;
        schema.maximum = s.maximum;
        break;
      case 'enum': Object.assign(schema, { type: 'string', enum: [...s.enum], enumDescriptions: [...s.enumDescriptions] }); break;
      case 'string[]': Object.assign(schema, { type: 'array', items: { type: 'string' } }); break;
    }
    schema.default = Array.isArray(s.default) ? [...(s.default as readonly string[])] : (s.default as string | number | boolean | null);
    schema.markdownDescription = s.description;
    if (s.scope !== undefined) schema.scope = s.scope;
    if (s.ignoreSync) schema.ignoreSync = true;
    schema.order = order;
    properties[`${SETTINGS_PREFIX}.${s.key}`] = schema;
  });
  return { title: 'STAR Repair', properties };
}

/** Settings with every default. */
export function defaultSettings(): Settings {
  return validateSettings({}).settings;
}

function fmt(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return 'an array';
  if (v === null) return 'null';
  if (typeof v === 'object') return 'an object';
  return String(v);
}

function lookupIn(raw: unknown): (key: string) => unknown {
  if (typeof raw === 'function') return raw as (key: string) => unknown;
  if (typeof raw !== 'object' || raw === null) return () => undefined;
  const obj = raw as Record<string, unknown>;
  return (key) => {
    for (const k of [key, `${SETTINGS_PREFIX}.${key}`]) if (k in obj) return obj[k];
    // Nested form: { completions: { maxTokens: 5 } } (also under a "starRepair" object).
    for (const root of [obj, obj[SETTINGS_PREFIX]]) {
      let cur: unknown = root;
      for (const part of key.split('.')) {
        cur = typeof cur === 'object' && cur !== null && !Array.isArray(cur) ? (cur as Record<string, unknown>)[part] : undefined;
      }
      if (cur !== undefined) return cur;
    }
    return undefined;
  };
}

/** Keys of a plain settings object that are not settings (reported, then ignored). */
function unknownKeys(raw: unknown): string[] {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return [];
  const known = new Set(SETTINGS.map((s) => s.key));
  const found: string[] = [];
  const walk = (obj: Record<string, unknown>, path: string): void => {
    for (const [k, v] of Object.entries(obj)) {
      const full = path === '' ? k : `${path}.${k}`;
      const key = full.startsWith(`${SETTINGS_PREFIX}.`) ? full.slice(SETTINGS_PREFIX.length + 1) : full;
      if (known.has(key) || v === undefined) continue;
      const isPrefixOfKnown = [...known].some((s) => s.startsWith(`${key}.`)) || key === SETTINGS_PREFIX;
      if (isPrefixOfKnown && typeof v === 'object' && v !== null && !Array.isArray(v)) walk(v as Record<string, unknown>, full);
      else found.push(key);
    }
  };
  walk(raw as Record<string, unknown>, '');
  return found;
}

function validateOne(s: SettingDefinition, v: unknown, problems: string[]): unknown {
  const name = `${SETTINGS_PREFIX}.${s.key}`;
  const fallback = (why: string): unknown => {
    problems.push(`${name}: ${why}; using the default ${JSON.stringify(s.default)}`);
    return Array.isArray(s.default) ? [...(s.default as readonly string[])] : s.default;
  };
  if (v === undefined) return Array.isArray(s.default) ? [...(s.default as readonly string[])] : s.default;
  switch (s.type) {
    case 'string':
      return typeof v === 'string' ? v : fallback(`expected text, got ${fmt(v)}`);
    case 'boolean':
      return typeof v === 'boolean' ? v : fallback(`expected true or false, got ${fmt(v)}`);
    case 'enum':
      return typeof v === 'string' && s.enum.includes(v) ? v : fallback(`${fmt(v)} is not one of ${s.enum.join(', ')}`);
    case 'integer':
    case 'number': {
      if (v === null && s.type === 'number' && s.nullable) return null;
      if (typeof v !== 'number' || !Number.isFinite(v)) return fallback(`expected a number, got ${fmt(v)}`);
      let x = v;
      if (s.type === 'integer' && !Number.isInteger(x)) {
        x = Math.round(x);
        problems.push(`${name}: ${v} is not a whole number; using ${x}`);
      }
      if (s.type === 'number' && s.exclusiveMinimum && x <= s.minimum) return fallback(`${v} must be greater than ${s.minimum}`);
      if (x < s.minimum) {
        problems.push(`${name}: ${v} is below the minimum ${s.minimum}; using ${s.minimum}`);
        return s.minimum;
      }
      if (x > s.maximum) {
        problems.push(`${name}: ${v} is above the maximum ${s.maximum}; using ${s.maximum}`);
        return s.maximum;
      }
      return x;
    }
    case 'string[]': {
      if (!Array.isArray(v)) return fallback(`expected a list of language ids, got ${fmt(v)}`);
      const out: string[] = [];
      v.forEach((item: unknown, i: number) => {
        if (typeof item !== 'string' || item.trim() === '') {
          problems.push(`${name}: entry ${i} (${fmt(item)}) is not a language id; ignored`);
        } else if (!out.includes(item.trim())) {
          out.push(item.trim());
        }
      });
      return out;
    }
  }
}

/**
 * Reads every setting from `raw` — a getter `(key) => value` (key without the prefix,
 * as WorkspaceConfiguration.get takes it), or a plain object in flat
 * (`{"completions.maxTokens": 5}`, prefixed or not) or nested form — and returns
 * complete typed settings. A missing value takes its default; a wrong one falls back
 * to the default or is clamped into range, with one message per problem.
 */
export function validateSettings(raw: unknown): { settings: Settings; problems: string[] } {
  const get = lookupIn(raw);
  const problems: string[] = [];
  const flat = new Map<string, unknown>();
  for (const s of SETTINGS) flat.set(s.key, validateOne(s, get(s.key), problems));
  for (const k of unknownKeys(raw)) problems.push(`${SETTINGS_PREFIX}.${k} is not a STAR Repair setting; ignored`);
  const v = <T>(key: string): T => flat.get(key) as T;
  const settings: Settings = {
    modelPath: v<string>('modelPath'),
    executionProvider: v<ProviderName>('executionProvider'),
    threads: v<number>('threads'),
    completions: {
      enabled: v<boolean>('completions.enabled'),
      languages: v<string[]>('completions.languages'),
      maxTokens: v<number>('completions.maxTokens'),
      stop: v<CompletionStop>('completions.stop'),
      debounceMs: v<number>('completions.debounceMs'),
      fim: v<FimSetting>('completions.fim'),
      fimOrder: v<FimOrderSetting>('completions.fimOrder'),
      prefixTokens: v<number>('completions.prefixTokens'),
      suffixTokens: v<number>('completions.suffixTokens'),
      promptTimeoutMs: v<number>('completions.promptTimeoutMs'),
      generationTimeoutMs: v<number>('completions.generationTimeoutMs'),
    },
    capture: { enabled: v<boolean>('capture.enabled') },
    repair: {
      auto: v<boolean>('repair.auto'),
      method: v<RepairMethod>('repair.method'),
      mode: v<RepairMode>('repair.mode'),
      select: v<SelectSetting>('repair.select'),
      epochs: v<number>('repair.epochs'),
      eta: v<number | null>('repair.eta'),
      preserveRows: v<number | null>('repair.preserveRows'),
    },
    specificity: { guard: v<SpecificityGuard>('specificity.guard'), threshold: v<number>('specificity.threshold') },
    weights: v<WeightSetting>('weights'),
  };
  return { settings, problems };
}

/** True when completions should be offered for `languageId` under `settings`. */
export function completionsEnabledFor(settings: Settings, languageId: string): boolean {
  return settings.completions.enabled &&
    (settings.completions.languages.includes('*') || settings.completions.languages.includes(languageId));
}
