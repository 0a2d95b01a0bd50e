// Settings: defaults, validation with a message per problem, and package.json's
// contributes.configuration generated from the same table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  SETTINGS, configurationContribution, defaultSettings, validateSettings, completionsEnabledFor, RESTRICTED_IN_UNTRUSTED_WORKSPACES,
} from '../../src/settings';

test('defaults are the documented ones and produce no problems', () => {
  const { settings, problems } = validateSettings({});
  assert.deepEqual(problems, []);
  assert.deepEqual(settings, {
    modelPath: '',
    executionProvider: 'auto',
    threads: 0,
    completions: { enabled: true, languages: ['python'], maxTokens: 32, stop: 'line', debounceMs: 150, fim: 'auto', fimOrder: 'auto', prefixTokens: 1024, suffixTokens: 128, promptTimeoutMs: 5250, generationTimeoutMs: 4750 },
    capture: { enabled: true },
    repair: { auto: false, method: 'star', mode: 'batch', select: 'model', epochs: 10, eta: null, preserveRows: null },
    specificity: { guard: 'undo', threshold: 0.95 },
    weights: 'auto',
  });
  assert.deepEqual(defaultSettings(), settings);
  // A fresh copy each time: mutating one result does not change the defaults.
  settings.completions.languages.push('go');
  assert.deepEqual(defaultSettings().completions.languages, ['python']);
});

test('valid values pass through, from a getter, a flat object, a prefixed one or a nested one', () => {
  const values: Record<string, unknown> = {
    modelPath: '/models/qwen', executionProvider: 'cuda', threads: 8,
    'completions.enabled': false, 'completions.languages': ['python', 'typescript'], 'completions.maxTokens': 256,
    'completions.stop': 'block', 'completions.debounceMs': 0, 'capture.enabled': false, 'repair.auto': true,
    'repair.method': 'mint', 'repair.mode': 'iter', 'repair.select': 'layer', 'repair.epochs': 1, 'repair.eta': 0.5, 'repair.preserveRows': 32,
    'specificity.guard': 'warn', 'specificity.threshold': 1, weights: 'int4',
  };
  const expected = {
    modelPath: '/models/qwen', executionProvider: 'cuda', threads: 8,
    completions: { enabled: false, languages: ['python', 'typescript'], maxTokens: 256, stop: 'block', debounceMs: 0, fim: 'auto', fimOrder: 'auto', prefixTokens: 1024, suffixTokens: 128, promptTimeoutMs: 5250, generationTimeoutMs: 4750 },
    capture: { enabled: false },
    repair: { auto: true, method: 'mint', mode: 'iter', select: 'layer', epochs: 1, eta: 0.5, preserveRows: 32 },
    specificity: { guard: 'warn', threshold: 1 },
    weights: 'int4',
  };
  const fromGetter = validateSettings((k: string) => values[k]);
  assert.deepEqual(fromGetter, { settings: expected, problems: [] });
  assert.deepEqual(validateSettings(values), { settings: expected, problems: [] });
  const prefixed = Object.fromEntries(Object.entries(values).map(([k, v]) => [`starRepair.${k}`, v]));
  assert.deepEqual(validateSettings(prefixed), { settings: expected, problems: [] });
  assert.deepEqual(validateSettings({ starRepair: { ...expected } }), { settings: expected, problems: [] });
  assert.deepEqual(validateSettings(expected), { settings: expected, problems: [] });
});

test('wrong types fall back to the default with a message', () => {
  const { settings, problems } = validateSettings({
    modelPath: 42, executionProvider: 'tpu', 'completions.enabled': 'yes', 'completions.stop': 3,
    'repair.method': 'adam', 'completions.languages': 'python', 'repair.epochs': 'ten', 'specificity.threshold': NaN,
  });
  assert.equal(settings.modelPath, '');
  assert.equal(settings.executionProvider, 'auto');
  assert.equal(settings.completions.enabled, true);
  assert.equal(settings.completions.stop, 'line');
  assert.equal(settings.repair.method, 'star');
  assert.deepEqual(settings.completions.languages, ['python']);
  assert.equal(settings.repair.epochs, 10);
  assert.equal(settings.specificity.threshold, 0.95);
  assert.deepEqual(problems, [
    'starRepair.modelPath: expected text, got 42; using the default ""',
    'starRepair.executionProvider: "tpu" is not one of auto, cpu, webgpu, cuda, dml, coreml; using the default "auto"',
    'starRepair.completions.enabled: expected true or false, got "yes"; using the default true',
    'starRepair.completions.languages: expected a list of language ids, got "python"; using the default ["python"]',
    'starRepair.completions.stop: 3 is not one of line, block; using the default "line"',
    'starRepair.repair.method: "adam" is not one of star, mint, sgd; using the default "star"',
    'starRepair.repair.epochs: expected a number, got "ten"; using the default 10',
    'starRepair.specificity.threshold: expected a number, got NaN; using the default 0.95',
  ]);
});

test('out-of-range numbers are clamped, fractions rounded, each with a message', () => {
  const { settings, problems } = validateSettings({
    threads: 100, 'completions.maxTokens': 0, 'completions.debounceMs': 99999, 'repair.epochs': 2.6,
    'specificity.threshold': 1.5,
  });
  assert.equal(settings.threads, 64);
  assert.equal(settings.completions.maxTokens, 1);
  assert.equal(settings.completions.debounceMs, 2000);
  assert.equal(settings.repair.epochs, 3);
  assert.equal(settings.specificity.threshold, 1);
  assert.deepEqual(problems, [
    'starRepair.threads: 100 is above the maximum 64; using 64',
    'starRepair.completions.maxTokens: 0 is below the minimum 1; using 1',
    'starRepair.completions.debounceMs: 99999 is above the maximum 2000; using 2000',
    'starRepair.repair.epochs: 2.6 is not a whole number; using 3',
    'starRepair.specificity.threshold: 1.5 is above the maximum 1; using 1',
  ]);
  assert.equal(validateSettings({ 'specificity.threshold': -0.1 }).settings.specificity.threshold, 0);
  assert.equal(validateSettings({ threads: -3 }).settings.threads, 0);
});

test('eta: null means the model default; zero or negative falls back to it', () => {
  assert.equal(validateSettings({ 'repair.eta': null }).settings.repair.eta, null);
  assert.equal(validateSettings({ 'repair.eta': 0.01 }).settings.repair.eta, 0.01);
  const zero = validateSettings({ 'repair.eta': 0 });
  assert.equal(zero.settings.repair.eta, null);
  assert.deepEqual(zero.problems, ['starRepair.repair.eta: 0 must be greater than 0; using the default null']);
  assert.equal(validateSettings({ 'repair.eta': -1 }).settings.repair.eta, null);
  assert.equal(validateSettings({ 'repair.eta': 1e6 }).settings.repair.eta, 100);
  assert.match(validateSettings({ 'repair.eta': '0.1' }).problems[0]!, /expected a number, got "0.1"/);
});

test('languages: bad entries dropped with a message, duplicates and blanks removed, "*" means all', () => {
  const { settings, problems } = validateSettings({ 'completions.languages': ['python', 3, '', ' go ', 'python', null] });
  assert.deepEqual(settings.completions.languages, ['python', 'go']);
  assert.deepEqual(problems, [
    'starRepair.completions.languages: entry 1 (3) is not a language id; ignored',
    'starRepair.completions.languages: entry 2 ("") is not a language id; ignored',
    'starRepair.completions.languages: entry 5 (null) is not a language id; ignored',
  ]);
  assert.equal(completionsEnabledFor(settings, 'go'), true);
  assert.equal(completionsEnabledFor(settings, 'rust'), false);
  const all = validateSettings({ 'completions.languages': ['*'] }).settings;
  assert.equal(completionsEnabledFor(all, 'rust'), true);
  all.completions.enabled = false;
  assert.equal(completionsEnabledFor(all, 'rust'), false);
});

test('unknown keys in a settings object are reported and ignored', () => {
  const { problems } = validateSettings({ 'completions.maxToken': 5, repair: { epochs: 3, speed: 'fast' }, 'starRepair.colour': 'red' });
  assert.deepEqual(problems, [
    'starRepair.completions.maxToken is not a STAR Repair setting; ignored',
    'starRepair.repair.speed is not a STAR Repair setting; ignored',
    'starRepair.colour is not a STAR Repair setting; ignored',
  ]);
});

test('non-object input gives the defaults', () => {
  assert.deepEqual(validateSettings(null), { settings: defaultSettings(), problems: [] });
  assert.deepEqual(validateSettings(() => undefined), { settings: defaultSettings(), problems: [] });
});

test('the contribution describes every setting with its type, default, range and enum', () => {
  const c = configurationContribution();
  assert.equal(c.title, 'STAR Repair');
  assert.deepEqual(Object.keys(c.properties), SETTINGS.map((s) => `starRepair.${s.key}`));
  assert.deepEqual(c.properties['starRepair.completions.maxTokens'], {
    type: 'integer', minimum: 1, maximum: 256, default: 32, markdownDescription: 'Most tokens generated for one completion.', order: 5,
  });
  assert.deepEqual(c.properties['starRepair.repair.eta']!.type, ['number', 'null']);
  assert.equal(c.properties['starRepair.repair.eta']!.default, null);
  assert.equal(c.properties['starRepair.repair.eta']!.exclusiveMinimum, 0);
  assert.deepEqual(c.properties['starRepair.completions.languages']!.items, { type: 'string' });
  for (const s of SETTINGS) {
    const p = c.properties[`starRepair.${s.key}`]!;
    assert.ok(typeof p.markdownDescription === 'string' && p.markdownDescription.length > 10, s.key);
    if (s.type === 'enum') assert.equal((p.enumDescriptions as unknown[]).length, s.enum.length, s.key);
    // Every default passes its own validation.
    assert.deepEqual(validateSettings({ [s.key]: p.default }).problems, [], s.key);
  }
  assert.deepEqual(RESTRICTED_IN_UNTRUSTED_WORKSPACES, ['starRepair.modelPath']);
  // Issue 18: the model's machine settings are in the User tab of the Settings editor (scope
  // 'window'; machine scopes are listed only under Remote in a remote window), stay on their machine
  // (ignoreSync: Settings Sync does not carry them) and a workspace's model folder needs trust.
  for (const key of ['modelPath', 'executionProvider', 'threads']) {
    assert.equal(c.properties[`starRepair.${key}`]!.scope, 'window', key);
    assert.equal(c.properties[`starRepair.${key}`]!.ignoreSync, true, key);
  }
  assert.equal(SETTINGS.filter((s) => s.scope === 'machine' || s.scope === 'machine-overridable').length, 0);
});

test('package.json contributes.configuration equals configurationContribution()', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as {
    contributes?: { configuration?: unknown };
  };
  assert.deepEqual(pkg.contributes?.configuration, configurationContribution(),
    'regenerate it: node --import tsx -e "console.log(JSON.stringify(require(\'./src/settings\').configurationContribution(), null, 2))"');
});
