// RepairPanelProvider against a stand-in for the `vscode` module (the real one exists only
// inside VS Code): the page it serves, the resource roots, re-sending on `ready`, going quiet
// while hidden, forwarding valid messages and dropping malformed ones.

import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { before, describe, it } from 'node:test';
import type { PanelState, WebviewToExtension } from '../../src/panel/messages';
import { fixtureState } from '../e2e/webview-fixture';
import { installFakeVscode } from './fake-vscode';

type Listener<T> = (e: T) => void;

class FakeEmitter<T> {
  private listeners = new Set<Listener<T>>();
  disposed = false;
  readonly event = (l: Listener<T>) => {
    this.listeners.add(l);
    return { dispose: () => this.listeners.delete(l) };
  };
  fire(e: T): void {
    for (const l of [...this.listeners]) l(e);
  }
  get size(): number {
    return this.listeners.size;
  }
  dispose(): void {
    this.disposed = true;
    this.listeners.clear();
  }
}

class FakeUri {
  constructor(readonly path: string) {}
  static joinPath(base: FakeUri, ...parts: string[]): FakeUri {
    return new FakeUri([base.path, ...parts].join('/'));
  }
  toString(): string {
    return `file://${this.path}`;
  }
}

const registered: { id: string; provider: unknown }[] = [];
const fakeVscode = {
  EventEmitter: FakeEmitter,
  Uri: FakeUri,
  window: {
    registerWebviewViewProvider(id: string, provider: unknown) {
      registered.push({ id, provider });
      return { dispose() {} };
    },
  },
};

class FakeView {
  readonly posted: unknown[] = [];
  readonly messages = new FakeEmitter<unknown>();
  readonly visibility = new FakeEmitter<void>();
  readonly disposal = new FakeEmitter<void>();
  visible = true;
  shown = 0;
  readonly webview = {
    options: {} as { enableScripts?: boolean; localResourceRoots?: FakeUri[] },
    html: '',
    cspSource: 'https://file+.vscode-resource.vscode-cdn.net',
    asWebviewUri: (u: FakeUri) => ({ toString: () => `https://file+.vscode-resource.vscode-cdn.net${u.path}` }),
    postMessage: async (m: unknown) => {
      this.posted.push(m);
      return true;
    },
    onDidReceiveMessage: this.messages.event,
  };
  readonly onDidChangeVisibility = this.visibility.event;
  readonly onDidDispose = this.disposal.event;
  show(): void {
    this.shown++;
  }
  setVisible(v: boolean): void {
    this.visible = v;
    this.visibility.fire();
  }
}

type ProviderModule = typeof import('../../src/panel/provider');
let panel: ProviderModule;

before(() => {
  const req = installFakeVscode(fakeVscode, __filename);
  panel = req('../../src/panel/provider') as ProviderModule;
});

function setup() {
  const logs: string[] = [];
  const provider = new panel.RepairPanelProvider(new FakeUri('/ext') as never, (l) => logs.push(l));
  const got: WebviewToExtension[] = [];
  provider.onMessage((m) => got.push(m));
  const view = new FakeView();
  provider.resolveWebviewView(view as never);
  return { provider, view, logs, got };
}

describe('RepairPanelProvider', () => {
  it('serves the page with a nonce-locked CSP and only dist/ and media/ as resource roots', () => {
    const { view } = setup();
    assert.equal(view.webview.options.enableScripts, true);
    assert.deepEqual(view.webview.options.localResourceRoots?.map((u) => u.path), ['/ext/dist', '/ext/media']);
    const html = view.webview.html;
    const nonce = /script-src 'nonce-([^']+)'/.exec(html)?.[1];
    assert.ok(nonce && nonce.length >= 16, 'a nonce in the CSP');
    assert.match(html, new RegExp(`<script nonce="${nonce}" src="https://file\\+\\.vscode-resource\\.vscode-cdn\\.net/ext/dist/webview\\.js">`));
    assert.match(html, /href="https:\/\/file\+\.vscode-resource\.vscode-cdn\.net\/ext\/media\/panel\.css"/);
    assert.match(html, /style-src https:\/\/file\+\.vscode-resource\.vscode-cdn\.net /);
    const second = new FakeView();
    setup().provider.resolveWebviewView(second as never);
    assert.notEqual(/nonce-([^']+)/.exec(second.webview.html)?.[1], nonce, 'a fresh nonce per page');
  });

  it('sends the snapshot on ready, stays quiet while hidden, and re-sends when shown again', () => {
    const { provider, view, got } = setup();
    const state: PanelState = fixtureState();
    provider.postState(state);
    assert.equal(view.posted.length, 0, 'the page has not said ready yet');
    view.messages.fire({ type: 'ready' });
    assert.deepEqual(view.posted, [{ type: 'state', state }]);
    assert.deepEqual(got, [{ type: 'ready' }]);

    view.setVisible(false);
    assert.equal(provider.postProgress({ epoch: 9, epochs: 10, loss: 0.01, positionsFixed: 5, positionsTotal: 5 }), true);
    assert.equal(view.posted.length, 1, 'nothing posted into a hidden (torn-down) page');
    view.setVisible(true);
    view.messages.fire({ type: 'ready' });
    assert.equal(view.posted.length, 2);
    assert.equal((view.posted[1] as { state: PanelState }).state.repair?.epoch, 9);
    assert.equal(provider.state?.repair?.epoch, 9);
  });

  it('forwards valid messages and drops malformed ones with a log line', () => {
    const { view, got, logs } = setup();
    view.messages.fire({ type: 'selectNeuron', patchId: 'p-star', layer: 3, neuron: 700 });
    view.messages.fire({ type: 'selectNeuron', patchId: 'p-star', layer: 3 });
    view.messages.fire('<script>');
    assert.deepEqual(got, [{ type: 'selectNeuron', patchId: 'p-star', layer: 3, neuron: 700 }]);
    assert.equal(logs.length, 2);
    assert.match(logs[0], /message\.neuron: expected an integer ≥ 0, got nothing/);
  });

  it('answers neuron requests and refuses contract breaches', () => {
    const { provider, view } = setup();
    view.messages.fire({ type: 'ready' });
    provider.postNeuronDetails({ patchId: 'p', layer: 0, neuron: 1, deltaNorm: 0.5, up: [], down: [] });
    assert.equal((view.posted[0] as { type: string }).type, 'neuronDetails');
    assert.throws(() => provider.postState({ model: null } as unknown as PanelState), /postState: state\.failures: expected an array/);
  });

  it('lets go of a disposed view and of everything on dispose', () => {
    const { provider, view } = setup();
    view.messages.fire({ type: 'ready' });
    view.disposal.fire();
    assert.equal(view.messages.size, 0, 'listeners on the old view are removed');
    provider.postState(fixtureState());
    assert.equal(view.posted.length, 0);
    provider.reveal();
    assert.equal(view.shown, 0);
    provider.dispose();
  });

  it('registers under the view id package.json declares', () => {
    const subscriptions: unknown[] = [];
    const p = panel.registerRepairPanel({ extensionUri: new FakeUri('/ext'), subscriptions } as never, () => {});
    assert.equal(registered.at(-1)?.id, 'starRepair.panel');
    assert.equal(registered.at(-1)?.provider, p);
    assert.equal(subscriptions.length, 2);
    const manifest = createRequire(__filename)('../../package.json') as { contributes?: { views?: Record<string, { id: string; type?: string }[]> } };
    const views = Object.values(manifest.contributes?.views ?? {}).flat();
    assert.ok(
      views.some((v) => v.id === panel.RepairPanelProvider.viewType && v.type === 'webview'),
      'package.json contributes a webview view with the provider id',
    );
  });
});
