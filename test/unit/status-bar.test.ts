// The status-bar item (src/completion/status.ts) against a stand-in for the `vscode` module: it
// names the model, the provider and the weight format the worker runs on (what `auto` resolved
// to), and its tooltip words the weights as the panel does (describeWeights); a worker that does
// not say which weights it runs on gets no weights in either.

import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { describeWeights } from '../../src/panel/messages';
import type { Settings } from '../../src/settings';
import type { ModelService } from '../../src/services/model-service';
import type { ModelInfo } from '../../src/worker/protocol';
import { FakeEmitter, FakeWindow, installFakeVscode, makeFakeVscode } from './fake-vscode';

interface FakeItem {
  text: string;
  tooltip: { value: string } | undefined;
  show(): void;
  dispose(): void;
}

const items: FakeItem[] = [];
const win = new FakeWindow();
const base = makeFakeVscode(win);
const fakeVscode = {
  ...base,
  StatusBarAlignment: { Left: 1, Right: 2 },
  ThemeColor: class {
    constructor(readonly id: string) {}
  },
  MarkdownString: class {
    isTrusted: unknown;
    constructor(readonly value: string) {}
  },
  window: {
    ...base.window,
    createStatusBarItem: (): FakeItem => {
      const item: FakeItem = { text: '', tooltip: undefined, show() {}, dispose() {} };
      items.push(item);
      return item;
    },
  },
};

type StatusModule = typeof import('../../src/completion/status');
let status: StatusModule;

before(() => {
  const req = installFakeVscode(fakeVscode, __filename);
  status = req('../../src/completion/status') as StatusModule;
});

const info: ModelInfo = {
  name: 'tiny', dir: '/m', architecture: 'LlamaForCausalLM', layers: 2, neurons: 8, hidden: 2, vocab: 10, context: 64, params: 1234,
  dtype: 'F32', executionProvider: 'cpu', fallbacks: [], fingerprint: 'fp',
};

function bar(model: ModelInfo): FakeItem {
  const service = {
    info: model,
    activity: 'ready',
    onDidChange: new FakeEmitter<void>().event,
    onDidChangeActivity: new FakeEmitter<void>().event,
    crashedProviders: () => [],
    stores: null,
    worker: { status: 'running', crashes: 0 },
    errorMessage: null,
  } as unknown as ModelService;
  new status.StatusBar(service, () => ({ completions: { enabled: true } }) as unknown as Settings);
  const item = items.at(-1);
  assert.ok(item);
  return item;
}

describe('StatusBar', () => {
  it('names the provider and the weight format in use, and words the weights as the panel does', () => {
    const item = bar({ ...info, weights: 'int8', weightBytes: 570_000_000 });
    assert.equal(item.text, '$(sparkle) tiny · cpu · int8');
    const tooltip = item.tooltip?.value ?? '';
    assert.match(tooltip, /Execution provider: cpu/);
    // The tooltip is Markdown: the panel's wording with its dots escaped.
    assert.equal(describeWeights({ format: 'int8', bytes: 570_000_000 }), 'int8 weights, 0.57 GB');
    assert.match(tooltip, /In memory: int8 weights, 0\\\.57 GB/);
  });

  it('shows no weights for a worker that does not say which it runs on', () => {
    const item = bar(info);
    assert.equal(item.text, '$(sparkle) tiny · cpu');
    assert.doesNotMatch(item.tooltip?.value ?? '', /In memory/);
  });
});
