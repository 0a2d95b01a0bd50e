// The neuron map benchmark (`npm run build && node dist/bench/neuron-map.js`, or
// `node --import tsx bench/neuron-map.ts`): the built panel (dist/webview.js) in headless
// Chromium with 10 000 patched neurons over 48 layers of an 11 008-wide MLP (Llama-7B's), timed
// inside the page around the real event handlers — a hover repaint, a keyboard move, a switch
// between two such patches (grid rebuilt, whole panel re-rendered) and a full state snapshot
// (validated, rendered, map rebuilt and painted) — at device pixel ratios 1 and 2. The goal is
// < 100 ms per redraw (judged on the 95th percentile); it is reported, never asserted. Writes bench/out/neuron-map.json.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { largeState } from '../test/e2e/webview-fixture';
import { CHROMIUM_ARGS, CHROMIUM_PATH, chromiumMissing, openPanel, repoRoot, sendToPanel } from '../test/e2e/webview-harness';
import { loadAverage1m, machineInfo } from './lib/machine';
import { summarise, type Timing } from './lib/stats';
import { markdownTable } from './lib/table';

const NEURONS = 10_000;
const LAYERS = 48;
const WIDTH = 11_008;
const GOAL_MS = 100;
const VIEW_WIDTH = 400;

interface Row {
  scenario: string;
  dpr: number;
  timing: Timing;
}

// playwright-core is loaded from node_modules at run time: bundled by esbuild it cannot find
// its own package files.
const playwright = createRequire(__filename)('playwright-core') as typeof import('playwright-core');

/** Runs `step` (source, with `i` the run index) in the page after `warmup` untimed runs. */
async function timeInPage(page: Page, step: string, runs: number, warmup: number): Promise<Timing> {
  // Evaluated as an expression through the debugging protocol: the page's CSP forbids eval,
  // and the source form keeps bundler helpers out of the page.
  const times = (await page.evaluate(`(() => {
    const step = (i) => { ${step} };
    for (let i = 0; i < ${warmup}; i++) step(i);
    const out = [];
    for (let i = 0; i < ${runs}; i++) {
      const t = performance.now();
      step(i);
      out.push(performance.now() - t);
    }
    return out;
  })()`)) as number[];
  return summarise(times);
}

async function measure(bundle: string, dpr: number): Promise<{ rows: Row[]; chromium: string }> {
  const browser = await playwright.chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
  try {
    const p = await openPanel(browser, { bundle, theme: 'dark', width: VIEW_WIDTH, height: 1200, deviceScaleFactor: dpr });
    const { page } = p;
    const state = largeState(NEURONS, LAYERS, WIDTH, 2);
    await sendToPanel(page, { type: 'state', state });
    const shown = await page.locator('[data-field="map-summary"]').textContent();
    if (!/10000 neurons in 48 of 48 layers/.test(shown ?? '')) throw new Error(`the panel did not show the benchmark patch: ${shown}`);
    const rows: Row[] = [];

    // Hover: alternate between two points so that every event changes the hovered cell.
    rows.push({
      scenario: 'hover repaint',
      dpr,
      timing: await timeInPage(
        page,
        `const c = document.getElementById('neuron-map'); const r = c.getBoundingClientRect();
         const x = r.left + 40 + (i % 2) * (r.width - 60), y = r.top + 8 + (i % 40) * 6;
         c.dispatchEvent(new MouseEvent('mousemove', { clientX: x, clientY: y, bubbles: true }));`,
        200,
        10,
      ),
    });
    // Home / End jump between the first and the last patched cell, so every key repaints.
    rows.push({
      scenario: 'keyboard move',
      dpr,
      timing: await timeInPage(
        page,
        `const c = document.getElementById('neuron-map');
         c.dispatchEvent(new KeyboardEvent('keydown', { key: i % 2 ? 'Home' : 'End', bubbles: true }));`,
        200,
        10,
      ),
    });
    // Switch patch: Lit re-renders the panel and the map rebuilds its grid for the other patch.
    rows.push({
      scenario: 'switch patch (grid rebuilt)',
      dpr,
      timing: await timeInPage(
        page,
        `const id = i % 2 ? 'big-0' : 'big-1';
         document.querySelector('li[data-patch-id="' + id + '"] [data-action="show"]').click();`,
        60,
        4,
      ),
    });
    // A snapshot as the extension sends it: validation of 10 000 neurons included.
    await page.evaluate((s) => {
      (window as unknown as { __benchState: unknown }).__benchState = s;
    }, state);
    rows.push({
      scenario: 'state snapshot (validate + render + map)',
      dpr,
      timing: await timeInPage(page, `window.dispatchEvent(new MessageEvent('message', { data: { type: 'state', state: window.__benchState } }));`, 30, 3),
    });
    const problems = [...p.pageErrors, ...p.cspViolations, ...p.warnings];
    if (problems.length) throw new Error(`the panel reported problems during the benchmark: ${problems.join(' | ')}`);
    await p.close();
    return { rows, chromium: browser.version() };
  } finally {
    await browser.close();
  }
}

async function main(): Promise<void> {
  const missing = chromiumMissing();
  if (missing) {
    console.error(`neuron-map benchmark: ${missing}`);
    process.exit(2);
  }
  const root = repoRoot();
  const bundlePath = join(root, 'dist', 'webview.js');
  if (!existsSync(bundlePath)) {
    console.error(`neuron-map benchmark: ${bundlePath} is missing; run \`npm run build\` first`);
    process.exit(2);
  }
  const bundle = readFileSync(bundlePath, 'utf8');
  const rows: Row[] = [];
  let version = '';
  for (const dpr of [1, 2]) {
    const m = await measure(bundle, dpr);
    rows.push(...m.rows);
    version = m.chromium;
  }
  const machine = machineInfo();
  const fmt = (ms: number): string => `${ms.toFixed(2)} ms`;
  // The 95th percentile: on a shared machine the single slowest run is mostly someone else's.
  const p95 = (t: Timing): number => [...t.runs].sort((a, b) => a - b)[Math.min(t.runs.length - 1, Math.floor(t.runs.length * 0.95))];
  console.log(
    `Neuron map redraw: ${NEURONS} patched neurons over ${LAYERS} layers (MLP width ${WIDTH}), ${VIEW_WIDTH}px-wide panel, Chromium ${version} (headless, software canvas), ${machine.cpu}, ${machine.cores} cores, load average ${loadAverage1m().toFixed(2)}\n`,
  );
  console.log(
    markdownTable(
      ['scenario', 'DPR', 'runs', 'median', 'p95', 'max', `p95 < ${GOAL_MS} ms`],
      rows.map((r) => [
        r.scenario,
        String(r.dpr),
        String(r.timing.runs.length),
        fmt(r.timing.medianMs),
        fmt(p95(r.timing)),
        fmt(r.timing.maxMs),
        p95(r.timing) < GOAL_MS ? 'PASS' : 'MISS',
      ]),
    ),
  );
  const outDir = join(root, 'bench', 'out');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(
    join(outDir, 'neuron-map.json'),
    JSON.stringify({ machine, chromium: version, workload: { neurons: NEURONS, layers: LAYERS, width: WIDTH, viewWidth: VIEW_WIDTH }, goalMs: GOAL_MS, rows }, null, 2),
  );
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.stack : String(e));
  process.exit(1);
});
