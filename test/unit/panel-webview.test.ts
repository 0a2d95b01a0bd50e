// The repair panel in a real browser: the bundle built from webview/main.ts, loaded into
// headless Chromium inside the page the provider serves (same CSP), fed fixture state through
// a stand-in acquireVsCodeApi. Skips, saying why, where /usr/bin/chromium is missing.

import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { emptyPanelState, type PanelState } from '../../src/panel/messages';
import { buildNeuronGrid, contrastRatio, layoutNeuronMap, MIN_CONTRAST, PEAK_CONTRAST, type Rgba } from '../../webview/neuron-map';
import { buildWebviewBundle } from '../e2e/webview-build';
import { fixtureState, largeState } from '../e2e/webview-fixture';
import {
  CHROMIUM_ARGS,
  CHROMIUM_PATH,
  chromiumMissing,
  clearPosted,
  openPanel,
  posted,
  repoRoot,
  savedState,
  sendToPanel,
  setTheme,
  type OpenOptions,
  type PanelPage,
} from '../e2e/webview-harness';

const missing = chromiumMissing();
if (missing) console.log(`# skipping the panel's browser tests: ${missing}`);

const ARTIFACTS = join(repoRoot(), 'test-artifacts');

describe('repair panel in headless Chromium', { skip: missing ?? false }, () => {
  let browser: Browser;
  let bundle: string;
  const open: PanelPage[] = [];

  before(async () => {
    const { chromium } = await import('playwright-core');
    [browser, bundle] = await Promise.all([
      chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS }),
      buildWebviewBundle(),
    ]);
    mkdirSync(ARTIFACTS, { recursive: true });
  });

  after(async () => {
    await Promise.all(open.map((p) => p.close()));
    await browser?.close();
  });

  async function panel(o: Partial<OpenOptions> = {}, state: PanelState | null = fixtureState()): Promise<PanelPage> {
    const p = await openPanel(browser, { bundle, ...o });
    open.push(p);
    if (state) await sendToPanel(p.page, { type: 'state', state });
    return p;
  }

  /** Every page must load without errors, CSP violations or requests outside its origin. */
  function assertClean(p: PanelPage, allowedWarnings = 0): void {
    assert.deepEqual(p.pageErrors, [], 'page errors');
    assert.deepEqual(p.cspViolations, [], 'CSP violations');
    assert.deepEqual(p.foreignRequests, [], 'requests outside the webview origin');
    assert.equal(p.warnings.length, allowedWarnings, `console warnings: ${p.warnings.join(' | ')}`);
  }

  const section = (page: Page, name: string) => page.locator(`vscode-collapsible[data-section="${name}"]`);

  it('says ready first, and renders every section with the fixture numbers', async () => {
    const p = await panel();
    const { page } = p;
    assert.deepEqual((await posted(page))[0], { type: 'ready' });

    const model = section(page, 'model');
    assert.equal(await model.locator('[data-field="name"]').textContent(), 'tiny-coder');
    assert.equal(await model.locator('[data-field="architecture"]').textContent(), 'LlamaForCausalLM');
    assert.equal(await model.locator('[data-field="params"]').textContent(), '28.3 M');
    assert.equal(await model.locator('[data-field="params"]').getAttribute('title'), '28,311,552');
    assert.equal((await model.locator('[data-field="shape"]').textContent())?.trim(), '8 × 1,536');
    assert.equal(await model.locator('[data-field="provider"]').textContent(), 'cpu');
    assert.equal(await model.locator('[data-field="weights"]').textContent(), 'int8 weights, 29.9 MB');
    assert.equal(await model.locator('[data-field="weights"]').getAttribute('title'), '29,884,416 bytes');
    assert.equal(await model.locator('[data-field="activePatches"]').textContent(), '1');
    assert.match((await model.locator('[data-field="fallback"]').textContent()) ?? '', /WebGPU adapter not found/);

    const failures = section(page, 'failures');
    // Discarded failures are hidden until asked for; newest first.
    assert.deepEqual(await failures.locator('li.failure').evaluateAll((els) => els.map((e) => e.getAttribute('data-failure-id'))), [
      'f-join',
      'f-sum',
      'f-manual',
    ]);
    const sum = failures.locator('li[data-failure-id="f-sum"]');
    assert.equal(await sum.locator('[data-field="status"]').textContent(), 'pending');
    // A unified diff: the prompt's line with the rejected completion (−), then with the desired one (+).
    const diffRows = (li: typeof sum) =>
      li.locator('.dl').evaluateAll((els) => els.map((e) => `${e.getAttribute('data-op')}|${e.querySelector('.text')?.textContent}`));
    assert.deepEqual(await diffRows(sum), ['removed|    return len(xs)', 'added|    return sum(xs)']);
    assert.equal(await sum.locator('del').textContent(), 'len');
    assert.equal(await sum.locator('ins').textContent(), 'sum');
    assert.equal(await sum.locator('[data-field="context"]').textContent(), 'def total(xs):');
    assert.match((await sum.locator('.where').textContent()) ?? '', /^stats\.py:42$/);
    const manual = failures.locator('li[data-failure-id="f-manual"]');
    assert.equal(await manual.locator('[data-field="status"]').textContent(), 'unfixed');
    assert.equal(await manual.locator('del').count(), 0);
    assert.deepEqual(await diffRows(manual), ['added|let v: Vec<u8> = Vec::with_capacity(n)']);
    assert.equal(await manual.locator('ins').textContent(), 'Vec::with_capacity(n)');
    assert.equal(await manual.locator('[data-action="open"]').count(), 0, 'no Open without a uri');

    const repair = section(page, 'repair');
    assert.match((await repair.locator('[data-field="repair-head"]').textContent()) ?? '', /Repairing 2 failures with STAR\s+— solving layer 5/);
    assert.equal((await repair.locator('[data-field="epoch"] span').textContent())?.trim(), 'Epoch 3 / 10');
    assert.equal((await repair.locator('[data-field="positions"] span').textContent())?.trim(), 'Positions fixed 2 / 5');
    assert.equal(await repair.locator('[data-field="loss"] .number').textContent(), '0.4821');
    assert.equal(await repair.locator('vscode-progress-bar').first().evaluate((e) => (e as unknown as { value: number }).value), 3);

    const neurons = section(page, 'neurons');
    assert.match((await neurons.locator('[data-field="map-summary"]').textContent()) ?? '', /7 neurons in 3 of 8 layers \(1,536 per\s+layer\)/);

    const scores = section(page, 'scores');
    const eff = scores.locator('[data-score="effectiveness"]');
    assert.equal(await eff.locator('[data-field="before"]').textContent(), '0.0%');
    assert.equal(await eff.locator('[data-field="after"]').textContent(), '100.0%');
    const gen = scores.locator('[data-score="generalisation"]');
    assert.equal(await gen.locator('[data-field="before"]').textContent(), '12.5%');
    assert.equal(await gen.locator('[data-field="after"]').textContent(), '75.0%');
    assert.equal(await scores.locator('[data-score="specificity"] [data-field="after"]').textContent(), '98.4%');
    // The after bar is as wide as the score says.
    assert.equal(await gen.locator('svg.after rect.fill').getAttribute('width'), '75');
    const rows = await scores.locator('[data-field="positions"] tbody tr').evaluateAll((trs) =>
      trs.map((tr) => Array.from(tr.querySelectorAll('td'), (td) => td.textContent?.trim())),
    );
    assert.deepEqual(rows, [
      ['1', 'sum', '3.1%', '91.2%'],
      ['2', '(', '80.0%', '97.0%'],
      ['3', '·join', '4.5%', '66.0%'],
    ]);

    const patches = section(page, 'patches');
    assert.deepEqual(await patches.locator('li.patch').evaluateAll((els) => els.map((e) => e.getAttribute('data-patch-id'))), ['p-star', 'p-older']);
    const star = patches.locator('li[data-patch-id="p-star"]');
    assert.match((await star.locator('[data-field="patch-stats"]').textContent()) ?? '', /7 neurons · 3\.58 k params · 2\.35 s · 2\s+failures/);
    assert.match((await star.locator('[data-field="patch-scores"]').textContent()) ?? '', /E 100\.0% · G 75\.0% · S 98\.4%/);
    assert.equal(await star.locator('vscode-checkbox').evaluate((e) => (e as unknown as { checked: boolean }).checked), true);
    // The toggle's label says the state it is in.
    assert.equal((await star.locator('[data-action="toggle"]').textContent())?.replace(/\s*\(.*\)$/, '').trim(), 'Enabled');
    const older = patches.locator('li[data-patch-id="p-older"]');
    assert.equal((await older.locator('[data-action="toggle"]').textContent())?.replace(/\s*\(.*\)$/, '').trim(), 'Disabled');
    assert.match((await older.locator('[data-field="patch-scores"]').textContent()) ?? '', /G —/);
    assert.equal(await older.locator('vscode-checkbox').evaluate((e) => (e as unknown as { checked: boolean }).checked), false);
    assertClean(p);
  });

  it('draws the patched neurons on the map and shows their details on hover and click', async () => {
    const p = await panel();
    const { page } = p;
    const canvas = page.locator('#neuron-map');
    const box = await canvas.boundingBox();
    assert.ok(box, 'map canvas is laid out');
    // The same pure layout the panel uses, for the canvas's actual width.
    const layout = layoutNeuronMap(box.width, 8);
    assert.equal(layout.cssWidth, box.width);
    const grid = buildNeuronGrid(fixtureState().patches[1].layers, 8, 1536, Math.floor(layout.gridWidth));
    const at = (layer: number, neuron: number) => ({
      x: layout.gridX + ((Math.floor(neuron / grid.bucket) + 0.5) / grid.columns) * layout.gridWidth,
      y: layout.gridY + (layer + 0.5) * layout.rowHeight,
    });
    // Colour: the largest delta (layer 7, neuron 1024) stands out most; an empty cell is near the background.
    // One readback of the whole canvas (repeated readbacks make Chromium warn).
    const image = await canvas.evaluate((c) => {
      const cv = c as HTMLCanvasElement;
      return { width: cv.width, data: [...cv.getContext('2d')!.getImageData(0, 0, cv.width, cv.height).data] };
    });
    const pixel = (x: number, y: number): Rgba => {
      const i = (Math.floor(y) * image.width + Math.floor(x)) * 4;
      return [image.data[i], image.data[i + 1], image.data[i + 2], 1];
    };
    const background = pixel(1, 1);
    const big = at(7, 1024);
    const emptyCell = at(5, 300);
    const small = at(3, 701);
    assert.ok(contrastRatio(pixel(big.x, big.y), background) >= PEAK_CONTRAST - 0.05, 'the largest delta has the peak contrast');
    assert.ok(contrastRatio(pixel(emptyCell.x, emptyCell.y), background) < 1.5, 'an empty cell is near the background');
    // A smaller delta is closer to the background than the largest, and still readable.
    const smallContrast = contrastRatio(pixel(small.x, small.y), background);
    assert.ok(smallContrast < contrastRatio(pixel(big.x, big.y), background) && smallContrast >= MIN_CONTRAST, `small delta contrast ${smallContrast}`);

    const tip = page.locator('#map-tooltip');
    assert.match((await tip.textContent()) ?? '', /^Hover a cell/);
    await canvas.hover({ position: at(3, 700) });
    assert.equal(await tip.isVisible(), true);
    // The readout sits under the map: it never covers a row of it.
    const tipBox = await tip.boundingBox();
    assert.ok(tipBox && tipBox.y >= box.y + box.height, `readout ${JSON.stringify(tipBox)} below the map ${JSON.stringify(box)}`);
    const tipText = (await tip.textContent()) ?? '';
    assert.match(tipText, /^Layer 3, neuron 700/);
    assert.match(tipText, /Delta norm 0\.900/);

    await canvas.click({ position: at(3, 700) });
    const asked = (await posted(page)).filter((m) => m.type === 'selectNeuron');
    assert.deepEqual(asked, [{ type: 'selectNeuron', patchId: 'p-star', layer: 3, neuron: 700 }]);
    const details = page.locator('[data-field="neuron-details"]');
    assert.equal(await details.locator('[data-field="details-loading"]').count(), 1);

    await sendToPanel(page, {
      type: 'neuronDetails',
      details: {
        patchId: 'p-star',
        layer: 3,
        neuron: 700,
        deltaNorm: 0.9,
        up: [
          { token: 'sum', logit: 2.5 },
          { token: ' join', logit: 1.25 },
        ],
        down: [{ token: 'len', logit: -1.5 }],
      },
    });
    assert.equal(await details.locator('h4').textContent(), 'Layer 3, neuron 700');
    // No attribution field: the repair keeps none per neuron, and a stub would always read "—".
    assert.equal(await details.locator('[data-field="attribution"]').count(), 0);
    assert.equal(await details.locator('[data-field="delta-norm"]').textContent(), '0.900');
    assert.deepEqual(await details.locator('ol.up li').allTextContents(), ['sum +2.500', '·join +1.250']);
    assert.deepEqual(await details.locator('ol.down li').allTextContents(), ['len -1.500']);

    // Hover again: the tooltip now carries the details too; no second request for cached details.
    await canvas.hover({ position: at(1, 12) });
    await canvas.hover({ position: at(3, 700) });
    assert.match((await tip.textContent()) ?? '', /Delta norm 0\.900\. Up: sum ·join\. Down: len\./);
    await canvas.click({ position: at(3, 700) });
    assert.equal((await posted(page)).filter((m) => m.type === 'selectNeuron').length, 1);
    assertClean(p);
  });

  it('draws every patched neuron and the legend with contrast ≥ 4.5:1 in Dark Modern, Light+ and High Contrast (measured)', async () => {
    const p = await panel();
    const { page } = p;
    const canvas = page.locator('#neuron-map');
    const box = await canvas.boundingBox();
    assert.ok(box);
    const layout = layoutNeuronMap(box.width, 8);
    const patch = fixtureState().patches[1];
    const grid = buildNeuronGrid(patch.layers, 8, 1536, Math.floor(layout.gridWidth));
    const measured: Record<string, { background: Rgba; cells: number; legend: number; min: number; max: number }> = {};
    for (const kind of ['dark', 'light-plus', 'high-contrast', 'light'] as const) {
      await setTheme(page, kind);
      // Copied into a fresh canvas: repeated readbacks of the map's own canvas make Chromium warn.
      const image = await canvas.evaluate((c) => {
        const cv = c as HTMLCanvasElement;
        const copy = document.createElement('canvas');
        copy.width = cv.width;
        copy.height = cv.height;
        const ctx = copy.getContext('2d', { willReadFrequently: true })!;
        ctx.drawImage(cv, 0, 0);
        return { width: cv.width, data: [...ctx.getImageData(0, 0, cv.width, cv.height).data] };
      });
      const pixel = (x: number, y: number): Rgba => {
        const i = (Math.floor(y) * image.width + Math.floor(x)) * 4;
        return [image.data[i], image.data[i + 1], image.data[i + 2], 1];
      };
      const background = pixel(1, 1);
      const ratios: number[] = [];
      for (const l of patch.layers) {
        for (const row of l.rows) {
          const x = layout.gridX + ((Math.floor(row / grid.bucket) + 0.5) / grid.columns) * layout.gridWidth;
          const y = layout.gridY + (l.layer + 0.5) * layout.rowHeight;
          ratios.push(contrastRatio(pixel(x, y), background));
        }
      }
      const cells = ratios.length;
      // The legend's 32 swatches, sampled at their centres.
      const lw = Math.min(120, layout.gridWidth / 2);
      for (let i = 0; i < 32; i++) ratios.push(contrastRatio(pixel(layout.gridX + ((i + 0.5) * lw) / 32, layout.legendY + 8), background));
      measured[kind] = { background, cells, legend: ratios.length - cells, min: Math.min(...ratios), max: Math.max(...ratios) };
      assert.equal(cells, 7);
      for (const r of ratios) assert.ok(r >= MIN_CONTRAST, `${kind}: a map colour has contrast ${r.toFixed(2)} < ${MIN_CONTRAST} (${JSON.stringify(measured[kind])})`);
      assert.ok(measured[kind].max >= PEAK_CONTRAST - 0.05, `${kind}: the largest delta stands out (${measured[kind].max.toFixed(2)})`);
      writeFileSync(join(ARTIFACTS, `neuron-map-${kind}.png`), await page.locator('.map-wrap').screenshot());
    }
    writeFileSync(join(ARTIFACTS, 'neuron-map-contrast.json'), JSON.stringify(measured, null, 2));
    assertClean(p);
  });

  it('shows a long failure whole: earlier prompt lines fold and open in place, nothing is clipped', async () => {
    const state = fixtureState();
    const body = Array.from({ length: 12 }, (_, i) => `    line_${i} = compute(${i})`).join('\n');
    state.failures[0] = {
      ...state.failures[0],
      prompt: `def long_function(a, b):\n${body}\n    return `,
      promptOmitted: 5000,
      rejected: 'line_0 + line_1 + line_2 + line_3 + line_4 + line_5 + line_6 + line_7 + line_8 + line_9 + line_10 + line_11',
      desired: 'sum([line_0, line_1, line_2, line_3, line_4, line_5, line_6, line_7, line_8, line_9, line_10, line_11])',
    };
    const p = await panel({}, state);
    const { page } = p;
    const card = page.locator('li[data-failure-id="f-sum"]');
    const code = card.locator('[data-field="code"]');
    const clipped = await code.evaluate((e) => e.scrollHeight > e.clientHeight + 1 || getComputedStyle(e).maxHeight !== 'none');
    assert.equal(clipped, false, 'the card has no fixed height');
    const more = card.locator('[data-field="context-more"]');
    assert.match((await more.locator('summary').textContent()) ?? '', /^10 earlier lines \(and 5,000 more characters: Open shows the file\)$/);
    assert.equal(await more.locator('pre').isVisible(), false);
    await more.locator('summary').click();
    assert.equal(await more.locator('pre').isVisible(), true);
    assert.match((await more.locator('pre').textContent()) ?? '', /^…def long_function\(a, b\):\n {4}line_0 = compute\(0\)/);
    // Both completions are there in full, each on its own line.
    const text = await card.locator('.dl .text').allTextContents();
    assert.deepEqual(text, [`    return ${state.failures[0].rejected}`, `    return ${state.failures[0].desired}`]);
    assertClean(p);
  });

  it('follows state in its labels: a disabled patch says so and offers no Undo; no weights row when the worker did not say', async () => {
    const p = await panel();
    const { page } = p;
    const star = section(page, 'patches').locator('li[data-patch-id="p-star"]');
    assert.equal(await star.locator('[data-action="undo"]').count(), 1);
    const off = fixtureState();
    off.patches[1] = { ...off.patches[1], enabled: false };
    await sendToPanel(page, { type: 'state', state: off });
    assert.match((await star.locator('[data-action="toggle"]').textContent()) ?? '', /^\s*Disabled/);
    assert.equal(await star.locator('vscode-checkbox').evaluate((e) => (e as unknown as { checked: boolean }).checked), false);
    assert.equal(await star.locator('[data-action="undo"]').count(), 0);
    assert.match((await section(page, 'scores').locator('[data-field="scores-patch"]').textContent()) ?? '', /\(disabled\)/);
    // A worker that does not say which weights it runs on: no weights row, rather than a made-up one.
    const older = fixtureState();
    delete older.model!.weights;
    await sendToPanel(page, { type: 'state', state: older });
    assert.equal(await section(page, 'model').locator('[data-field="weights"]').count(), 0);
    assertClean(p);
  });

  it('reaches the map and every action from the keyboard', async () => {
    const idle = fixtureState();
    idle.repair = null;
    const p = await panel({}, idle);
    const { page } = p;
    await page.locator('#neuron-map').focus();
    await page.keyboard.press('Home');
    assert.match((await page.locator('#map-status').textContent()) ?? '', /^Layer 1, neuron 12\b/);
    await page.keyboard.press('ArrowRight');
    assert.match((await page.locator('#map-status').textContent()) ?? '', /^Layer 1, neuron 700\b/);
    await page.keyboard.press('ArrowDown');
    assert.match((await page.locator('#map-status').textContent()) ?? '', /^Layer 3, neuron 700\b/);
    await page.keyboard.press('End');
    assert.match((await page.locator('#map-status').textContent()) ?? '', /^Layer 7, neuron 1024\b/);
    await page.keyboard.press('Enter');
    assert.deepEqual((await posted(page)).at(-1), { type: 'selectNeuron', patchId: 'p-star', layer: 7, neuron: 1024 });

    // Buttons take Enter; checkboxes take Space.
    await clearPosted(page);
    await page.locator('li[data-failure-id="f-manual"] [data-action="discard"]').focus();
    await page.keyboard.press('Enter');
    await page.locator('li[data-patch-id="p-star"] [data-action="export"]').focus();
    await page.keyboard.press(' ');
    assert.deepEqual(await posted(page), [
      { type: 'discard', failureId: 'f-manual' },
      { type: 'exportPatch', patchId: 'p-star' },
    ]);
    // Tab moves through the controls in order and stops on the map.
    const reached = new Set<string>();
    for (let i = 0; i < 60; i++) {
      await page.keyboard.press('Tab');
      const label = await page.evaluate(() => {
        const a = document.activeElement as HTMLElement | null;
        return a ? (a.dataset['action'] ?? a.id ?? a.tagName) : '';
      });
      if (label) reached.add(label);
    }
    for (const a of ['select', 'repair', 'open', 'discard', 'pick-patch', 'neuron-map', 'toggle', 'show', 'export', 'undo']) {
      assert.ok(reached.has(a), `Tab reaches ${a} (reached: ${[...reached].join(', ')})`);
    }
    assertClean(p);
  });

  it('posts the right message for each action', async () => {
    const p = await panel();
    const { page } = p;
    await clearPosted(page);
    const failures = section(page, 'failures');
    // A running repair blocks new ones.
    assert.equal(await failures.locator('li[data-failure-id="f-sum"] [data-action="repair"]').getAttribute('disabled'), '');
    await failures.locator('li[data-failure-id="f-sum"] [data-action="repair"]').click({ force: true });
    assert.deepEqual(await posted(page), []);
    await page.locator('[data-action="cancel"]').click();
    assert.deepEqual(await posted(page), [{ type: 'cancelRepair' }]);

    const idle = fixtureState();
    idle.repair = { ...idle.repair!, running: false, message: 'cancelled' };
    await sendToPanel(page, { type: 'state', state: idle });
    assert.match((await section(page, 'repair').locator('[data-field="repair-head"]').textContent()) ?? '', /Last repair: 2 failures with STAR\s+— cancelled/);
    assert.equal(await page.locator('[data-action="cancel"]').count(), 0);
    await clearPosted(page);

    await failures.locator('li[data-failure-id="f-sum"] [data-action="repair"]').click();
    await failures.locator('li[data-failure-id="f-join"] [data-action="open"]').click();
    await failures.locator('li[data-failure-id="f-join"] [data-action="discard"]').click();
    assert.equal(await failures.locator('[data-action="repair-batch"]').getAttribute('disabled'), '');
    await failures.locator('li[data-failure-id="f-sum"] [data-action="select"]').click();
    await failures.locator('li[data-failure-id="f-manual"] [data-action="select"]').click();
    assert.match((await failures.locator('[data-action="repair-selected"]').textContent()) ?? '', /Repair selected \(2\)/);
    await failures.locator('[data-action="repair-batch"]').click();
    // Selection is cleared once sent; select one again for a plain repair.
    assert.match((await failures.locator('[data-action="repair-selected"]').textContent()) ?? '', /Repair selected \(0\)/);
    await failures.locator('li[data-failure-id="f-join"] [data-action="select"]').click();
    await failures.locator('[data-action="repair-selected"]').click();

    const patches = section(page, 'patches');
    await patches.locator('li[data-patch-id="p-star"] [data-action="toggle"]').click();
    await patches.locator('li[data-patch-id="p-older"] [data-action="toggle"]').click();
    // Undo is offered for an enabled patch only (p-older is disabled: its toggle is the way back).
    assert.equal(await patches.locator('li[data-patch-id="p-older"] [data-action="undo"]').count(), 0);
    await patches.locator('li[data-patch-id="p-star"] [data-action="undo"]').click();
    await patches.locator('li[data-patch-id="p-older"] [data-action="export"]').click();
    assert.deepEqual(await posted(page), [
      { type: 'repair', failureIds: ['f-sum'] },
      { type: 'openFailure', failureId: 'f-join' },
      { type: 'discard', failureId: 'f-join' },
      { type: 'repairBatch', failureIds: ['f-sum', 'f-manual'] },
      { type: 'repair', failureIds: ['f-join'] },
      { type: 'togglePatch', patchId: 'p-star', enabled: false },
      { type: 'togglePatch', patchId: 'p-older', enabled: true },
      { type: 'undoPatch', patchId: 'p-star' },
      { type: 'exportPatch', patchId: 'p-older' },
    ]);

    // "Show" switches Neurons and Scores to another patch (a local choice: nothing is posted).
    await clearPosted(page);
    await patches.locator('li[data-patch-id="p-older"] [data-action="show"]').click();
    assert.match((await section(page, 'neurons').locator('[data-field="map-summary"]').textContent()) ?? '', /^\s*3 neurons in 1 of 8 layers/);
    assert.equal(await section(page, 'scores').locator('[data-score="generalisation"]').textContent().then((t) => /not measured/.test(t ?? '')), true);
    assert.deepEqual(await posted(page), []);

    // The patch picker above the map does the same.
    const picker = section(page, 'neurons').locator('vscode-single-select[data-action="pick-patch"]');
    assert.equal(await picker.locator('[role="combobox"]').getAttribute('aria-label'), 'Patch shown in Neurons and Scores');
    await picker.click();
    await picker.locator('li[role="option"]', { hasText: 'STAR' }).click();
    assert.match((await section(page, 'neurons').locator('[data-field="map-summary"]').textContent()) ?? '', /^\s*7 neurons in 3 of 8 layers/);
    // Named by method, time and failures: never by its id.
    assert.match((await section(page, 'scores').locator('[data-field="scores-patch"]').textContent()) ?? '', /^STAR · \S.* · 2 failures · 7 neurons/);
    assert.doesNotMatch(await page.locator('#app').innerText(), /p-star|p-older/);
    assert.deepEqual(await posted(page), []);

    // Discarded failures can be shown again.
    await failures.locator('[data-action="show-discarded"]').click();
    assert.equal(await failures.locator('li[data-failure-id="f-old"] [data-field="status"]').textContent(), 'discarded');
    assertClean(p);
  });

  it('applies repair progress as it arrives', async () => {
    const p = await panel();
    const { page } = p;
    await sendToPanel(page, { type: 'repairProgress', progress: { epoch: 7, epochs: 10, loss: 0.000125, positionsFixed: 4, positionsTotal: 5, message: 'evaluating' } });
    const repair = section(page, 'repair');
    assert.equal((await repair.locator('[data-field="epoch"] span').textContent())?.trim(), 'Epoch 7 / 10');
    assert.equal((await repair.locator('[data-field="positions"] span').textContent())?.trim(), 'Positions fixed 4 / 5');
    assert.equal(await repair.locator('[data-field="loss"] .number').textContent(), '1.250e-4');
    assert.equal(await repair.locator('[data-field="repair-message"]').textContent(), 'evaluating');
    assert.equal(await repair.locator('vscode-progress-bar').nth(1).evaluate((e) => (e as unknown as { value: number }).value), 4);
    assertClean(p);
  });

  it('ignores malformed messages: no crash, nothing changes, each one logged', async () => {
    const p = await panel();
    const { page } = p;
    const before = await page.locator('#app').innerText();
    const savedBefore = await savedState(page);
    const bad: unknown[] = [
      null,
      'state',
      42,
      [],
      {},
      { type: 'nonsense' },
      { type: 'state' },
      { type: 'state', state: { ...fixtureState(), failures: 'none' } },
      { type: 'state', state: { ...fixtureState(), model: { ...fixtureState().model, layers: -1 } } },
      // A neuron outside the model's MLP would be drawn off the map.
      { type: 'state', state: { ...fixtureState(), patches: [{ ...fixtureState().patches[1], layers: [{ layer: 1, rows: [9999], norms: [1] }] }] } },
      { type: 'state', state: { ...fixtureState(), failures: [fixtureState().failures[0], fixtureState().failures[0]] } },
      { type: 'repairProgress', progress: { epoch: 11, epochs: 10, loss: 1, positionsFixed: 0, positionsTotal: 5 } },
      { type: 'repairProgress', progress: { epoch: 1, epochs: 10, loss: 'low', positionsFixed: 0, positionsTotal: 5 } },
      { type: 'neuronDetails', details: { patchId: 'p-star', layer: 3, neuron: 700 } },
      { type: 'neuronDetails', details: { patchId: 'p-star', layer: 3, neuron: 700, deltaNorm: -1, up: [], down: [] } },
    ];
    for (const m of bad) await sendToPanel(page, m);
    assert.equal(await page.locator('#app').innerText(), before);
    assert.deepEqual(await savedState(page), savedBefore);
    assert.equal(p.warnings.length, bad.length, p.warnings.join('\n'));
    for (const w of p.warnings) assert.match(w, /^\[star-repair panel\] dropped/);
    assert.match(p.warnings[9], /rows\[0\]: expected a neuron below model\.neuronsPerLayer \(1536\), got 9999/);
    // Still alive: a good message afterwards is applied.
    await sendToPanel(page, { type: 'repairProgress', progress: { epoch: 4, epochs: 10, loss: 0.3, positionsFixed: 3, positionsTotal: 5 } });
    assert.equal((await section(page, 'repair').locator('[data-field="epoch"] span').textContent())?.trim(), 'Epoch 4 / 10');
    assertClean(p, bad.length);
  });

  it('restores its state after a reload before the extension re-sends it', async () => {
    const first = await panel();
    await first.page.locator('li[data-failure-id="f-sum"] [data-action="select"]').click();
    await section(first.page, 'patches').locator('li[data-patch-id="p-older"] [data-action="show"]').click();
    const saved = await savedState(first.page);
    assert.ok(saved, 'the panel saved its state with setState');

    const second = await panel({ saved }, null);
    const { page } = second;
    assert.deepEqual(await posted(page), [{ type: 'ready' }]);
    assert.equal(await section(page, 'model').locator('[data-field="name"]').textContent(), 'tiny-coder');
    assert.match((await section(page, 'failures').locator('[data-action="repair-selected"]').textContent()) ?? '', /Repair selected \(1\)/);
    assert.match((await section(page, 'neurons').locator('[data-field="map-summary"]').textContent()) ?? '', /^\s*3 neurons/);
    // A corrupted saved state is ignored rather than trusted.
    const third = await panel({ saved: { version: 1, state: { model: 'x' } } }, null);
    assert.match(await third.page.locator('#app').innerText(), /No failures yet/);
    assertClean(first);
    assertClean(second);
    assertClean(third);
  });

  it('shows empty states that say what to do next', async () => {
    const p = await panel({}, emptyPanelState());
    const text = await p.page.locator('#app').innerText();
    assert.match(text, /No model loaded yet/);
    assert.match(text, /No failures yet: reject an inline completion by typing something else, or select text and run 'Repair model on this failure'/);
    assert.match(text, /No repair running\. Tick failures above and press Repair/);
    assert.match(text, /Load a model to see its layers and neurons/);
    assert.match(text, /No scores yet/);
    assert.match(text, /No patches yet\. Each repair adds one here/);
    assertClean(p);
  });

  it('copes with 10 000 patched neurons over 48 layers', async () => {
    const p = await panel({}, largeState(10_000, 48, 11_008, 2));
    const { page } = p;
    assert.match((await section(page, 'neurons').locator('[data-field="map-summary"]').textContent()) ?? '', /10000 neurons in 48 of 48 layers/);
    // Bucketed: far fewer columns than neurons, and the axis says so.
    const distinct = await page.locator('#neuron-map').evaluate((c) => {
      const cv = c as HTMLCanvasElement;
      const d = cv.getContext('2d')!.getImageData(0, 0, cv.width, cv.height).data;
      const seen = new Set<number>();
      for (let i = 0; i < d.length; i += 4) seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
      return seen.size;
    });
    assert.ok(distinct > 50, `a graded colour scale is drawn (${distinct} colours)`);
    writeFileSync(join(ARTIFACTS, 'neuron-map-10k.png'), await page.locator('.map-wrap').screenshot());
    assertClean(p);
  });

  it('follows the theme: screenshots in light, dark and high contrast are not blank and differ as the themes do', async () => {
    const p = await panel({ height: 1900 });
    const { page } = p;
    const stats: Record<string, { mean: number; std: number; colours: number }> = {};
    for (const kind of ['light', 'dark', 'high-contrast'] as const) {
      await setTheme(page, kind);
      const png = await page.screenshot({ fullPage: true });
      writeFileSync(join(ARTIFACTS, `panel-${kind}.png`), png);
      stats[kind] = await page.evaluate(async (b64) => {
        const img = new Image();
        img.src = `data:image/png;base64,${b64}`;
        await img.decode();
        const c = document.createElement('canvas');
        c.width = img.width;
        c.height = img.height;
        const ctx = c.getContext('2d')!;
        ctx.drawImage(img, 0, 0);
        const d = ctx.getImageData(0, 0, c.width, c.height).data;
        let sum = 0;
        let sq = 0;
        const colours = new Set<number>();
        const n = d.length / 4;
        for (let i = 0; i < d.length; i += 4) {
          const y = 0.2126 * d[i] + 0.7152 * d[i + 1] + 0.0722 * d[i + 2];
          sum += y;
          sq += y * y;
          colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
        }
        const mean = sum / n;
        return { mean, std: Math.sqrt(sq / n - mean * mean), colours: colours.size };
      }, png.toString('base64'));
    }
    writeFileSync(join(ARTIFACTS, 'panel-screenshots.json'), JSON.stringify(stats, null, 2));
    for (const [kind, s] of Object.entries(stats)) {
      assert.ok(s.std > 10, `${kind} screenshot has contrast (luminance std ${s.std.toFixed(1)})`);
      assert.ok(s.colours > 30, `${kind} screenshot has content (${s.colours} colours)`);
    }
    assert.ok(stats['light'].mean > 200, `light theme is light (mean luminance ${stats['light'].mean.toFixed(0)})`);
    assert.ok(stats['dark'].mean < 60, `dark theme is dark (mean luminance ${stats['dark'].mean.toFixed(0)})`);
    assert.ok(stats['high-contrast'].mean < stats['dark'].mean, 'high contrast is darker still (black background)');
    // The map is repainted in the theme's own background when the theme changes.
    const corner = await page.locator('#neuron-map').evaluate((c) => [...(c as HTMLCanvasElement).getContext('2d')!.getImageData(1, 1, 1, 1).data]);
    assert.deepEqual(corner.slice(0, 3), [0, 0, 0]);
    assertClean(p);
  });
});
