// The webview's pure parts in plain Node: the rejected/desired diff, number formatting, the
// neuron map's grid, layout and hit test, the panel page's CSP, and restoring saved state.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { makeNonce, panelCsp, renderPanelHtml } from '../../src/panel/html';
import { diffLines, diffWords, tokenizeForDiff, type DiffLine } from '../../webview/diff';
import { formatCount, formatLoss, formatMs, formatNorm, formatPercent, formatTime, showToken, tail, baseName } from '../../webview/format';
import {
  buildNeuronGrid,
  cellRect,
  hitTest,
  layoutNeuronMap,
  nearestPatchedInLayer,
  nextPatchedInLayer,
  over,
  parseCanvasColor,
  rampPosition,
} from '../../webview/neuron-map';
import { applyMessage, initialModel, persistable, reconcileUi, restoreModel } from '../../webview/store';
import { fixtureState, largeLayers } from '../e2e/webview-fixture';

describe('diffWords', () => {
  const render = (a: string, b: string) => diffWords(a, b).map((p) => (p.op === 'same' ? p.text : p.op === 'removed' ? `[-${p.text}]` : `{+${p.text}}`)).join('');

  it('marks the changed words only', () => {
    assert.equal(render('len(xs)', 'sum(xs)'), '[-len]{+sum}(xs)');
    assert.equal(render('concat(", ")', 'join(", ")'), '[-concat]{+join}(", ")');
    assert.equal(render('a b c', 'a x c'), 'a [-b]{+x} c');
    assert.equal(render('return x', 'return x + 1'), 'return x{+ + 1}');
    assert.equal(render('', 'new'), '{+new}');
    assert.equal(render('old', ''), '[-old]');
    assert.equal(render('same', 'same'), 'same');
  });

  it('reconstructs both sides exactly', () => {
    const a = 'for (let i = 0; i < n; i++) {\n  total += xs[i];\n}';
    const b = 'for (const x of xs) {\n  total += x;\n}';
    const parts = diffWords(a, b);
    assert.equal(parts.filter((p) => p.op !== 'added').map((p) => p.text).join(''), a);
    assert.equal(parts.filter((p) => p.op !== 'removed').map((p) => p.text).join(''), b);
  });

  it('keeps identifiers whole', () => {
    assert.deepEqual(tokenizeForDiff('foo_bar(x1, $y)'), ['foo_bar', '(', 'x1', ',', ' ', '$y', ')']);
  });

  it('stays linear on huge inputs by giving up on the middle', () => {
    const a = Array.from({ length: 3000 }, (_, i) => `a${i}`).join(' ');
    const b = Array.from({ length: 3000 }, (_, i) => `b${i}`).join(' ');
    const parts = diffWords(a, b);
    assert.deepEqual(parts.map((p) => p.op), ['removed', 'added']);
  });
});

describe('diffLines', () => {
  const sign = { same: ' ', removed: '-', added: '+' } as const;
  const render = (lines: DiffLine[]) =>
    lines.map((l) => `${sign[l.op]} ${l.parts.map((p) => (p.op === 'same' ? p.text : `[${p.text}]`)).join('')}${l.eol ? '⏎' : ''}`);
  const side = (lines: DiffLine[], drop: 'added' | 'removed') =>
    lines.filter((l) => l.op !== drop).map((l) => l.parts.map((p) => p.text).join('') + (l.eol ? '\n' : '')).join('');

  it('shows a changed line as a removed and an added line, never interleaved', () => {
    // The issue's example: the word diff read "~~from ._context import~~def ~~StringIO~~count_words(path):".
    assert.deepEqual(render(diffLines('from ._context import StringIO', 'def count_words(path):')), [
      '- [from ._context import StringIO]',
      '+ [def count_words(path):]',
    ]);
    assert.deepEqual(render(diffLines('len(xs)', 'sum(xs)')), ['- [len](xs)', '+ [sum](xs)']);
  });

  it('keeps unchanged lines once and pairs the changed ones', () => {
    const a = 'for i in range(n):\n    total += xs[i]\nreturn total\n';
    const b = 'for x in xs:\n    total += x\nreturn total\n';
    assert.deepEqual(render(diffLines(a, b)), [
      '- for [i] in [range(n)]:⏎',
      '-     total += [xs[i]]⏎',
      '+ for [x] in [xs]:⏎',
      '+     total += [x]⏎',
      '  return total⏎',
    ]);
    assert.equal(side(diffLines(a, b), 'added'), a);
    assert.equal(side(diffLines(a, b), 'removed'), b);
  });

  it('marks a line break that only one side has', () => {
    assert.deepEqual(render(diffLines('import os', 'import re\n')), ['- import [os]', '+ import [re]⏎']);
    assert.deepEqual(render(diffLines('', 'x = 1')), ['+ [x = 1]']);
    assert.deepEqual(render(diffLines('a\nb', 'a\nb\nc')), ['  a⏎', '- b', '+ b⏎', '+ [c]']);
  });
});

describe('format', () => {
  it('formats counts, percentages, durations, losses and norms', () => {
    assert.equal(formatCount(999), '999');
    assert.equal(formatCount(3584), '3.58 k');
    assert.equal(formatCount(28_311_552), '28.3 M');
    assert.equal(formatCount(7_000_000_000), '7 B');
    assert.equal(formatPercent(0.984), '98.4%');
    assert.equal(formatPercent(0), '0.0%');
    assert.equal(formatPercent(0.0000123), '1.2e-3%');
    assert.equal(formatMs(950), '950 ms');
    assert.equal(formatMs(2345), '2.35 s');
    assert.equal(formatMs(12_345), '12.3 s');
    assert.equal(formatMs(125_000), '2 min 5 s');
    assert.equal(formatLoss(null), '—');
    assert.equal(formatLoss(0.4821), '0.4821');
    assert.equal(formatLoss(0.000125), '1.250e-4');
    assert.equal(formatNorm(0.9), '0.900');
    assert.equal(formatNorm(0.0375), '0.0375');
    assert.equal(formatNorm(0), '0');
    assert.equal(formatNorm(12345), '1.23e+4');
  });

  it('formats times relative to now, then as a date', () => {
    const now = Date.parse('2025-06-01T12:00:00Z');
    assert.equal(formatTime('2025-06-01T11:59:40Z', now), 'just now');
    assert.equal(formatTime('2025-06-01T11:55:00Z', now), '5 min ago');
    assert.equal(formatTime('2025-06-01T09:00:00Z', now), '3 h ago');
    assert.match(formatTime('2025-05-20T09:00:00Z', now), /^2025-05-(19|20|21) \d\d:\d\d$/);
    assert.equal(formatTime('garbage', now), 'garbage');
  });

  it('makes tokens and paths readable', () => {
    assert.equal(showToken(' join\n'), '·join⏎');
    assert.equal(showToken(''), '∅');
    assert.equal(tail('abcdef', 3), '…def');
    assert.equal(tail('abc', 3), 'abc');
    assert.equal(baseName('file:///work/demo/my%20file.ts'), 'my file.ts');
  });
});

describe('neuron map geometry', () => {
  it('buckets wide MLPs into columns, keeping the largest delta of each', () => {
    const g = buildNeuronGrid(
      [
        { layer: 0, rows: [0, 3, 4, 9], norms: [0.5, 2, 1, 0.25] },
        { layer: 2, rows: [7], norms: [4] },
      ],
      3,
      10,
      4,
    );
    assert.equal(g.bucket, 3);
    assert.equal(g.columns, 4);
    assert.equal(g.total, 5);
    assert.equal(g.peak, 4);
    assert.deepEqual([...g.top], [0, 3, -1, 9, -1, -1, -1, -1, -1, -1, 7, -1]);
    assert.deepEqual([...g.count], [1, 2, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0]);
    assert.equal(g.maxNorm[1], 2);
  });

  it('uses one column per neuron when there is room', () => {
    const g = buildNeuronGrid([{ layer: 1, rows: [5], norms: [1] }], 2, 64, 300);
    assert.equal(g.bucket, 1);
    assert.equal(g.columns, 64);
    assert.equal(g.top[64 + 5], 5);
  });

  it('places 10 000 neurons over 48 layers without losing any', () => {
    const layers = largeLayers(10_000, 48, 11_008, 7);
    const g = buildNeuronGrid(layers, 48, 11_008, 300);
    assert.equal(g.total, 10_000);
    let counted = 0;
    for (const c of g.count) counted += c;
    assert.equal(counted, 10_000);
    assert.equal(g.columns, Math.ceil(11_008 / g.bucket));
    assert.ok(g.columns <= 300);
  });

  it('hit-tests the same cells it draws', () => {
    const layout = layoutNeuronMap(336, 8);
    const g = buildNeuronGrid([{ layer: 7, rows: [1024], norms: [1] }], 8, 1536, layout.gridWidth);
    const col = Math.floor(1024 / g.bucket);
    const r = cellRect(g, layout, 7, col);
    const hit = hitTest(g, layout, r.x + r.w / 2, r.y + r.h / 2);
    assert.ok(hit);
    assert.equal(hit.layer, 7);
    assert.equal(hit.column, col);
    assert.equal(hit.neuron, 1024);
    assert.equal(hitTest(g, layout, layout.gridX - 1, r.y), null);
    assert.equal(hitTest(g, layout, r.x, layout.gridY + layout.gridHeight + 1), null);
  });

  it('moves between patched cells for keyboard navigation', () => {
    const g = buildNeuronGrid(
      [
        { layer: 0, rows: [1, 5], norms: [1, 1] },
        { layer: 2, rows: [8], norms: [1] },
      ],
      3,
      10,
      100,
    );
    assert.equal(nextPatchedInLayer(g, 0, 1, 1), 5);
    assert.equal(nextPatchedInLayer(g, 0, 5, 1), null);
    assert.equal(nextPatchedInLayer(g, 0, 5, -1), 1);
    assert.equal(nearestPatchedInLayer(g, 2, 0), 8);
    assert.equal(nearestPatchedInLayer(g, 1, 0), null);
  });

  it('lays 48 layers out in a sidebar-sized canvas', () => {
    const l = layoutNeuronMap(300, 48);
    assert.equal(l.rowHeight, 6);
    assert.equal(l.gridHeight, 288);
    assert.equal(l.cssWidth, 300);
    assert.ok(l.cssHeight < 340);
  });

  it('reads canvas colours and blends them', () => {
    assert.deepEqual(parseCanvasColor('#d18616'), [0xd1, 0x86, 0x16, 1]);
    assert.deepEqual(parseCanvasColor('rgba(255, 0, 0, 0.2)'), [255, 0, 0, 0.2]);
    assert.equal(parseCanvasColor('color-mix(in srgb, red, blue)'), null);
    assert.deepEqual(over([255, 0, 0, 0.5], [0, 0, 255, 1]), [127.5, 0, 127.5, 1]);
    assert.equal(rampPosition(1, 4), 0.5);
    assert.equal(rampPosition(4, 4), 1);
    assert.equal(rampPosition(1, 0), 0);
  });
});

describe('panel page', () => {
  it('allows only its own nonce-tagged script and local resources', () => {
    const csp = panelCsp('https://file+.vscode-resource.vscode-cdn.net', 'abcdefghijklmnopqrstuv');
    assert.match(csp, /^default-src 'none'; /);
    assert.match(csp, /script-src 'nonce-abcdefghijklmnopqrstuv'(;|$)/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|https:(?!\/\/file)|\*/);
    const html = renderPanelHtml({
      cspSource: 'https://file+.vscode-resource.vscode-cdn.net',
      nonce: 'abcdefghijklmnopqrstuv',
      scriptUri: 'https://file+.vscode-resource.vscode-cdn.net/ext/dist/webview.js',
      styleUri: 'https://file+.vscode-resource.vscode-cdn.net/ext/media/panel.css',
    });
    assert.match(html, /<script nonce="abcdefghijklmnopqrstuv" src="https:\/\/file\+\.vscode-resource\.vscode-cdn\.net\/ext\/dist\/webview\.js"><\/script>/);
    assert.equal((html.match(/<script/g) ?? []).length, 1, 'one script, no inline code');
    assert.doesNotMatch(html, /style="/);
  });

  it('refuses weak nonces and URIs that could break out of an attribute', () => {
    const base = { cspSource: 'https://x', nonce: 'abcdefghijklmnopqrstuv', scriptUri: 'https://x/a.js', styleUri: 'https://x/a.css' };
    assert.throws(() => renderPanelHtml({ ...base, nonce: 'short' }), /at least 16 base64 characters/);
    assert.throws(() => renderPanelHtml({ ...base, scriptUri: 'https://x/a.js" onload="x' }), /scriptUri must be a URI without quotes/);
  });

  it('accepts a cspSource that is a source list, as code-server and VS Code web give it', () => {
    // Regression: code-server's webview.cspSource is "'self' https://*.vscode-cdn.net" (quotes and a space).
    const html = renderPanelHtml({ cspSource: "'self' https://*.vscode-cdn.net", nonce: 'abcdefghijklmnopqrstuv', scriptUri: 'https://x/a.js', styleUri: 'https://x/a.css' });
    assert.match(html, /style-src 'self' https:\/\/\*\.vscode-cdn\.net 'nonce-abcdefghijklmnopqrstuv'/);
    const base = { nonce: 'abcdefghijklmnopqrstuv', scriptUri: 'https://x/a.js', styleUri: 'https://x/a.css' };
    assert.throws(() => renderPanelHtml({ ...base, cspSource: 'https://x; script-src *' }), /cspSource/);
    assert.throws(() => renderPanelHtml({ ...base, cspSource: 'https://x" onload="x' }), /cspSource/);
  });

  it('makes a fresh nonce each time', () => {
    const a = makeNonce();
    const b = makeNonce();
    assert.notEqual(a, b);
    assert.match(a, /^[A-Za-z0-9_-]{32}$/);
  });
});

describe('webview store', () => {
  it('selects the newest patch and prunes selections that no longer exist', () => {
    const s = fixtureState();
    const ui = reconcileUi({ selectedFailures: ['f-sum', 'gone', 'f-old'], patchId: null, neuron: null, showDiscarded: false }, s);
    assert.equal(ui.patchId, 'p-star');
    assert.deepEqual(ui.selectedFailures, ['f-sum'], 'unknown and discarded failures are unselected');
    const kept = reconcileUi({ ...ui, patchId: 'p-older', neuron: { patchId: 'p-older', layer: 2, neuron: 5 } }, s);
    assert.equal(kept.patchId, 'p-older');
    assert.deepEqual(kept.neuron, { patchId: 'p-older', layer: 2, neuron: 5 });
    const after = reconcileUi(kept, { ...s, patches: s.patches.filter((p) => p.id !== 'p-older') });
    assert.equal(after.patchId, 'p-star');
    assert.equal(after.neuron, null, 'a neuron of an undone patch is deselected');
  });

  it('a new patch (a repair just finished) is shown, even when an older one was on screen', () => {
    const s = fixtureState();
    const first = applyMessage(initialModel(), { type: 'state', state: { ...s, patches: s.patches.filter((p) => p.id !== 'p-star') } });
    assert.ok(first.ok);
    assert.equal(first.model.ui.patchId, 'p-older');
    const next = applyMessage(first.model, { type: 'state', state: s });
    assert.ok(next.ok);
    assert.equal(next.model.ui.patchId, 'p-star', 'the newest patch replaces the one on screen');
    // A state update without a new patch keeps what the person chose.
    const chosen = { ...next.model, ui: { ...next.model.ui, patchId: 'p-older' } };
    const same = applyMessage(chosen, { type: 'state', state: s });
    assert.ok(same.ok);
    assert.equal(same.model.ui.patchId, 'p-older');
  });

  it('round-trips through setState and rejects what does not validate', () => {
    const applied = applyMessage(initialModel(), { type: 'state', state: fixtureState() });
    assert.ok(applied.ok);
    const withDetails = applyMessage(applied.model, {
      type: 'neuronDetails',
      details: { patchId: 'p-star', layer: 3, neuron: 700, deltaNorm: 0.9, up: [], down: [] },
    });
    assert.ok(withDetails.ok);
    const saved = JSON.parse(JSON.stringify(persistable(withDetails.model)));
    assert.deepEqual(restoreModel(saved), withDetails.model);
    assert.deepEqual(restoreModel(undefined), initialModel());
    assert.deepEqual(restoreModel({ ...saved, version: 0 }), initialModel());
    assert.deepEqual(restoreModel({ ...saved, state: { ...saved.state, patches: 3 } }), initialModel());
    const badDetails = restoreModel({ ...saved, details: [{ patchId: 'p-star' }, ...saved.details] });
    assert.equal(badDetails.details.length, 1, 'invalid saved details are skipped');
  });

  it('keeps one entry per neuron in the details cache', () => {
    let m = initialModel();
    for (const deltaNorm of [0.1, 0.2]) {
      const r = applyMessage(m, { type: 'neuronDetails', details: { patchId: 'p', layer: 0, neuron: 1, deltaNorm, up: [], down: [] } });
      assert.ok(r.ok);
      m = r.model;
    }
    assert.equal(m.details.length, 1);
    assert.equal(m.details[0].deltaNorm, 0.2);
  });

  it('refuses progress without a running repair', () => {
    const r = applyMessage(initialModel(), { type: 'repairProgress', progress: { epoch: 1, epochs: 2, loss: 0, positionsFixed: 0, positionsTotal: 1 } });
    assert.equal(r.ok, false);
  });
});
