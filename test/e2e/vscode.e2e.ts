// The end-to-end scenario: the packaged extension in a real VS Code (code-server) driven from
// headless Chromium as a person would use it — ghost text, rejection, the failure in the
// panel, "Repair model on this failure" from the editor's context menu, neurons and scores in
// the panel, the repaired suggestion, and undo bringing the old one back. Run by
// `npm run test:e2e` (after test/e2e/setup); screenshots go to test-artifacts/e2e/.

import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { ARTIFACTS, ROOT, packageExtension, startCodeServer, type CodeServer } from './code-server';
import {
  CHROMIUM,
  CHROMIUM_ARGS,
  activeEditor,
  contextMenu,
  ghostText,
  lineText,
  openFile,
  statusItem,
  runCommand,
  screenshotter,
  settledLineText,
  fillQuickInput,
  waitForGhostText,
  waitForWorkbench,
  webviewFrame,
} from './vscode-ui';

const EXTENSION_ID = 'star-repair.star-repair';
const WORKSPACE_FIXTURE = join(ROOT, 'test', 'e2e', 'workspace');
// The prompt is the whole fixture file (the cursor goes to its end, the start of a new line):
// a shebang and two imports. The embedded model's greedy suggestion there repeats one of them
// ("import os"); the person wants a third module instead. A retrained model may suggest something
// else here: the first steps say so, and `star-repair complete --stop-line` finds a new prompt.
const FILE = 'app.py';
const DESIRED = 'import re';
// Repair All: main.py's empty line in main() and its last line; what the person types there.
const MAIN_FILE = 'main.py';
const MAIN_DESIRED = ['args = sys.argv[1:]', 'sys.exit(main())'] as const;
// Issue 15: mid-line completion (the embedded model has FIM tokens). call.py's last line is a call
// with nothing between its brackets; the cursor goes between them, before the closing bracket.
const CALL_FILE = 'call.py';
const CALL_LINE = 8;
const CALL_DESIRED = 'name';

/**
 * The text of a notification matching `pattern`: a toast while it is up, else the notification
 * center (VS Code hides a toast after a while, and a busy machine can take that long to look).
 */
async function notificationMatching(page: Page, pattern: RegExp, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const t of await page.locator('.notifications-toasts .notification-list-item-message').allTextContents()) if (pattern.test(t)) return t;
    await runCommand(page, 'Notifications: Show Notifications');
    const center = await page.locator('.notifications-center .notification-list-item-message').allTextContents();
    await runCommand(page, 'Notifications: Hide Notifications');
    for (const t of center) if (pattern.test(t)) return t;
    if (Date.now() > deadline) throw new Error(`no notification matching ${pattern} within ${timeoutMs} ms (center: ${JSON.stringify(center)})`);
    await page.waitForTimeout(2000);
  }
}

/** Every failure in the extension's failure stores (`failures-<fingerprint>.json` under its global storage). */
function storedFailures(userDataDir: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/^failures-[0-9a-f]+\.json$/.test(e.name)) {
        const doc = JSON.parse(readFileSync(p, 'utf8')) as { failures?: Record<string, unknown>[] };
        out.push(...(doc.failures ?? []));
      }
    }
  };
  walk(userDataDir);
  return out;
}

/** Puts the cursor at the end of a 1-based line (Go to Line, then End). */
async function gotoLineEnd(page: Page, line: number): Promise<void> {
  await activeEditor(page).click();
  // Through fillQuickInput: a toast that closes "Go to Line" would send the digits and Enter into the file.
  await fillQuickInput(page, 'Control+G', `:${line}`);
  await page.keyboard.press('Enter');
  await page.locator('.quick-input-widget').waitFor({ state: 'hidden', timeout: 10_000 });
  // The editor has the focus and the cursor on that line before the keys that follow are sent.
  await page.locator('.statusbar-item', { hasText: new RegExp(`^\\s*Ln ${line}, Col`) }).first().waitFor({ timeout: 10_000 });
  // The status bar moves while Go to Line previews; the keys go to the editor once it has the text
  // focus again (Monaco marks its root \`focused\`), not to the page while the box hands it back.
  await focusedEditor(page);
  await page.keyboard.press('End');
}

/** Waits until the active editor has the keyboard focus, clicking into it once if it does not. */
async function focusedEditor(page: Page): Promise<void> {
  const focused = page.locator('.editor-group-container.active .monaco-editor.focused').first();
  try {
    await focused.waitFor({ state: 'attached', timeout: 5_000 });
  } catch {
    await activeEditor(page).locator('.view-lines').click();
    await focused.waitFor({ state: 'attached', timeout: 5_000 });
  }
}

/** The model: the embedded one unless STAR_E2E_MODEL names a Hugging Face folder (for debugging). */
function modelPath(): string {
  const given = process.env['STAR_E2E_MODEL'];
  if (given) return given;
  if (!existsSync(join(ROOT, 'models', 'tiny-coder', 'config.json'))) {
    throw new Error('models/tiny-coder has no config.json: the embedded model is not there to test (set STAR_E2E_MODEL=<folder> to use another)');
  }
  return '';
}

function settings(model: string): Record<string, unknown> {
  return {
    // A quiet, deterministic workbench: nothing pops up over the editor or takes focus.
    'security.workspace.trust.enabled': false,
    'workbench.startupEditor': 'none',
    'workbench.tips.enabled': false,
    'workbench.enableExperiments': false,
    'telemetry.telemetryLevel': 'off',
    'update.mode': 'none',
    'extensions.autoUpdate': false,
    'extensions.autoCheckUpdates': false,
    'extensions.ignoreRecommendations': true,
    'chat.disableAIFeatures': true,
    'editor.inlineSuggest.enabled': true,
    'editor.quickSuggestions': { other: false, comments: false, strings: false },
    'editor.suggestOnTriggerCharacters': false,
    'editor.wordBasedSuggestions': 'off',
    'editor.parameterHints.enabled': false,
    'editor.autoClosingBrackets': 'never',
    'editor.autoClosingQuotes': 'never',
    'editor.autoIndent': 'none',
    'editor.minimap.enabled': false,
    'files.autoSave': 'off',
    // The extension: completions as soon as asked (no debounce race), one line, greedy
    // (the extension decodes greedily; there is no sampling setting), and STAR repair.
    'starRepair.modelPath': model,
    // What a new user gets (issue 14): on a machine whose only WebGPU adapter is lavapipe, auto
    // must pick the CPU; on one with a GPU, a provider that passed the check in a child process.
    'starRepair.executionProvider': 'auto',
    'starRepair.completions.enabled': true,
    'starRepair.completions.languages': ['python'],
    'starRepair.completions.stop': 'line',
    'starRepair.completions.debounceMs': 0,
    'starRepair.capture.enabled': true,
    'starRepair.repair.auto': false,
    'starRepair.repair.method': 'star',
    // Repair options pinned so that a step size or selection tuned for the model later cannot
    // change the run: batch STAR, every neuron, η = 0.1, 128 preserved rows. On the shipped model
    // (the FIM-trained tiny-coder, SPM prompts) it fixes "import re" (app.py) but breaks 1 of the
    // 12 built-in samples (specificity 91.7 %), so the default guard undoes it; it fixes both main.py
    // failures together keeping all 12, and the mid-line failure in call.py with app.py's again.
    // The specificity guard and its threshold are left at their defaults (undo, 0.95).
    'starRepair.repair.mode': 'batch',
    'starRepair.repair.select': 'dense',
    'starRepair.repair.eta': 0.1,
    'starRepair.repair.preserveRows': 128,
  };
}

describe('STAR Repair in code-server (real browser)', { timeout: 20 * 60_000 }, () => {
  let server: CodeServer | undefined;
  let browser: Browser | undefined;
  let page: Page;
  let shot: (name: string) => Promise<string>;
  let broken = false;
  let firstSuggestion = '';
  const consoleLines: string[] = [];

  // Later steps build on earlier ones; once one fails the rest are skipped, not piled on.
  function step(name: string, fn: (t: TestContext) => Promise<void>): void {
    test(name, async (t) => {
      if (broken) {
        t.skip('an earlier step failed');
        return;
      }
      try {
        await fn(t);
      } catch (e) {
        broken = true;
        await shot(`FAILED-${name.replace(/[^a-z0-9]+/gi, '-').slice(0, 40)}`).catch(() => undefined);
        throw e;
      }
    });
  }

  before(async () => {
    rmSync(ARTIFACTS, { recursive: true, force: true });
    mkdirSync(ARTIFACTS, { recursive: true });
    const vsix = packageExtension();
    server = await startCodeServer({ workspaceFixture: WORKSPACE_FIXTURE, settings: settings(modelPath()), vsix });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    page = await context.newPage();
    // The workbench's and the webviews' console, for diagnosing a failed run.
    context.on('console', (m) => consoleLines.push(`[${m.type()}] ${m.text()}`));
    page.on('pageerror', (e) => consoleLines.push(`[pageerror] ${e.message}`));
    shot = screenshotter(page, ARTIFACTS);
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    writeFileSync(join(ARTIFACTS, 'browser-console.log'), `${consoleLines.join('\n')}\n`);
    if (server) {
      writeFileSync(join(ARTIFACTS, 'code-server.log'), server.log());
      const logs = join(server.userDataDir, 'logs');
      if (existsSync(logs)) cpSync(logs, join(ARTIFACTS, 'vscode-logs'), { recursive: true });
      await server.stop();
    }
  });

  step('the workbench loads and the extension activates', async () => {
    await page.goto(server!.folderUrl());
    await waitForWorkbench(page);
    await shot('workbench');
    await openFile(page, FILE);
    // The extension activates for Python; its status bar item names the model and, once it is
    // loaded, the execution provider ("tiny-coder · cpu").
    await statusItem(page).filter({ hasText: / · (cpu|webgpu|cuda|dml|coreml)/ }).waitFor({ state: 'visible', timeout: 180_000 });
    await shot('extension-active');
  });

  // Issue 18: the first activation of the installed extension opens its walkthrough. Closed again
  // here, so the steps below start from app.py as before.
  step('the walkthrough opens on first install', async () => {
    const walkthrough = page.locator('.gettingStartedContainer', { hasText: 'Get Started with STAR Repair' });
    await walkthrough.waitFor({ state: 'visible', timeout: 60_000 });
    for (const title of ['Keep the embedded model or choose yours', 'See a completion', 'Reject one', 'Repair the model on it', 'Read the panel']) {
      await walkthrough.getByText(title, { exact: true }).first().waitFor({ state: 'attached', timeout: 10_000 });
    }
    await shot('walkthrough');
    await runCommand(page, 'View: Close Editor');
    await walkthrough.waitFor({ state: 'hidden', timeout: 10_000 });
    await openFile(page, FILE);
  });

  step('an inline completion shows ghost text', async () => {
    await activeEditor(page).click();
    await page.keyboard.press('Control+End');
    await runCommand(page, 'Trigger Inline Suggestion');
    firstSuggestion = await waitForGhostText(page, 120_000);
    await shot('ghost-text');
    assert.notEqual(firstSuggestion.trim(), DESIRED, 'the model already suggests the desired line: pick another prompt');
  });

  step('typing a different line rejects it, and the failure appears in the panel', async () => {
    // Typed straight over the ghost text: Escape first would dismiss it, which is not a rejection (issue 18).
    await page.keyboard.type(DESIRED, { delay: 20 });
    await page.keyboard.press('Enter');
    await shot('rejected');
    await runCommand(page, 'STAR Repair: Show Repair Panel');
    const panel = webviewFrame(page, EXTENSION_ID);
    const failure = panel.locator('li.failure', { has: panel.locator('.where', { hasText: FILE }) }).first();
    await failure.waitFor({ state: 'visible', timeout: 60_000 }).catch(async (e: unknown) => {
      // VS Code shows this line inside the view's webview frame when the provider threw; the
      // reason is in the console.
      const texts = await Promise.all(page.frames().map((f) => f.content().catch(() => '')));
      if (texts.some((t) => /error occurred while loading view/i.test(t))) {
        const why = consoleLines.filter((l) => /ERR|Error/.test(l) && /panel|webview|starRepair|renderPanelHtml/i.test(l));
        throw new Error(`the STAR Repair panel failed to load in VS Code:\n${why.join('\n') || '(no console error)'}`);
      }
      throw e;
    });
    // The failure's desired lines (+, under the rejected ones) read as the typed line.
    const desiredShown = await failure.locator('.dl-added .text').evaluateAll((lines) =>
      lines.map((l) => {
        const copy = l.cloneNode(true) as HTMLElement;
        copy.querySelectorAll('.eol').forEach((n) => n.remove());
        return copy.textContent ?? '';
      }).join('\n'));
    assert.equal(desiredShown.trim(), DESIRED);
    await shot('failure-in-panel');
  });

  step('right-click "Repair Model on This Failure" patches neurons and shows scores', async (t) => {
    const panel = webviewFrame(page, EXTENSION_ID);
    // Select the typed line with its line break (so the repair also teaches the model to end
    // the line there) and repair from the editor's context menu.
    await activeEditor(page).click();
    await page.keyboard.press('Control+End');
    await page.keyboard.press('Shift+ArrowUp');
    const selection = activeEditor(page).locator('.selected-text').first();
    await selection.waitFor({ state: 'visible' });
    await contextMenu(page, selection, 'Repair Model on This Failure');
    // The command shows the model's current prediction next to the desired text and asks.
    const dialog = page.locator('.monaco-dialog-box');
    await dialog.waitFor({ state: 'visible', timeout: 60_000 });
    await shot('repair-confirm');
    await dialog.getByRole('button', { name: 'Repair', exact: true }).click();
    // Progress: the notification the command opens, and the panel's Repair section.
    await page.locator('.notifications-toasts .notification-toast', { hasText: 'repairing the model' }).waitFor({ state: 'visible', timeout: 30_000 });
    await panel.locator('[data-field="repair-head"]').waitFor({ state: 'visible', timeout: 30_000 });
    await shot('repair-progress');
    const summary = panel.locator('[data-field="map-summary"]');
    await summary.waitFor({ state: 'visible', timeout: 8 * 60_000 });
    const neurons = /(\d+) neurons? in (\d+) of (\d+) layers/.exec((await summary.textContent()) ?? '');
    assert.ok(neurons && Number(neurons[1]) > 0, `the panel names the patched neurons (got "${await summary.textContent()}")`);
    const effectiveness = panel.locator('[data-score="effectiveness"] [data-field="after"]');
    await effectiveness.waitFor({ state: 'visible' });
    const scores: Record<string, string> = {};
    for (const key of ['effectiveness', 'generalisation', 'specificity']) {
      scores[key] = ((await panel.locator(`[data-score="${key}"]`).textContent()) ?? '').replace(/\s+/g, ' ').trim();
    }
    t.diagnostic(`patched: ${neurons[0]}; scores: ${JSON.stringify(scores)}`);
    await panel.locator('[data-section="neurons"]').scrollIntoViewIfNeeded();
    await shot('patched-neurons');
    await panel.locator('[data-section="scores"]').scrollIntoViewIfNeeded();
    await shot('scores');
    // The repair fixed the failure, but broke completions that were right: the default guard
    // (undo, threshold 95 %) disables the patch at once and says so, with the figure.
    assert.equal((await effectiveness.textContent())?.trim(), '100.0%', `effectiveness of the patch: ${scores['effectiveness']}`);
    const toast = await notificationMatching(page, /Patch undone/, 60_000);
    assert.match(toast, /kept only \d+% of the completions that were right \(threshold 95%\)/, toast);
    await shot('undone-by-guard');
    // The selected line (with its line break) is the captured rejection, not a second failure.
    assert.equal(await panel.locator('li.failure', { has: panel.locator('.where', { hasText: FILE }) }).count(), 1, 'one failure in the panel for the typed line');
  });

  step('a patch the guard undid changes nothing in the editor', async () => {
    await page.keyboard.press('Escape');
    await activeEditor(page).click();
    await page.keyboard.press('Control+End');
    // Back to the prompt: remove the typed line and its line break.
    for (let i = 0; i < DESIRED.length + 1; i += 1) await page.keyboard.press('Backspace');
    await runCommand(page, 'Trigger Inline Suggestion');
    const again = await waitForGhostText(page, 120_000);
    await shot('after-guard-undo');
    assert.equal(again.trim(), firstSuggestion.trim());
    await page.keyboard.press('Escape');
  });

  // Issue 13: two rejected completions in another file, "Repair All Pending Failures" (batch STAR,
  // one patch), then each place the user rejected shows the desired line, and the patch keeps
  // every completion that was right (specificity ≥ the threshold).
  step('two more rejections, then Repair All: both places show the desired lines', async (t) => {
    await openFile(page, MAIN_FILE);
    const panel = webviewFrame(page, EXTENSION_ID);
    // Place 1: the empty body line of main() (line 7, "    ").
    await gotoLineEnd(page, 7);
    await runCommand(page, 'Trigger Inline Suggestion');
    const first = await waitForGhostText(page, 120_000);
    assert.notEqual(first.trim(), MAIN_DESIRED[0]);
    await page.keyboard.type(MAIN_DESIRED[0], { delay: 20 });
    // Place 2: the last line, under `if __name__ == "__main__":` (leaving line 7 finishes place 1).
    await page.keyboard.press('Control+End');
    await runCommand(page, 'Trigger Inline Suggestion');
    const second = await waitForGhostText(page, 120_000);
    assert.notEqual(second.trim(), MAIN_DESIRED[1]);
    await page.keyboard.type(MAIN_DESIRED[1], { delay: 20 });
    await page.keyboard.press('ArrowUp');
    await runCommand(page, 'STAR Repair: Show Repair Panel');
    const rows = panel.locator('li.failure', { has: panel.locator('.where', { hasText: MAIN_FILE }) });
    await rows.nth(1).waitFor({ state: 'visible', timeout: 60_000 });
    await shot('two-rejections');
    await runCommand(page, 'STAR Repair: Repair All Pending Failures');
    const outcome = await notificationMatching(page, /Fixed 2 failures|Fixed \d of 2|would have fixed \d of 2|Could not fix 2/, 8 * 60_000);
    t.diagnostic(`repair all: ${outcome}`);
    await shot('repair-all-done');
    assert.match(outcome, /Fixed 2 failures/, outcome);
    // The panel switches to the new patch (its scores name its two failures).
    await panel.locator('[data-section="scores"]', { hasText: '2 failures' }).waitFor({ state: 'visible', timeout: 60_000 });
    await shot('repair-all-panel');
    const specificity = ((await panel.locator('[data-score="specificity"] [data-field="after"]').textContent()) ?? '').trim();
    assert.ok(Number.parseFloat(specificity) >= 95, `the panel's specificity (${specificity}) is at least the threshold`);
    // Place 2 first (its prompt holds place 1's line as typed): clear the typed text, ask again.
    await page.keyboard.press('Control+End');
    await page.keyboard.press('Shift+Home');
    await page.keyboard.press('Backspace');
    await runCommand(page, 'Trigger Inline Suggestion');
    assert.equal((await waitForGhostText(page, 120_000)).trim(), MAIN_DESIRED[1]);
    await shot('repair-all-place-2');
    await page.keyboard.press('Escape');
    await gotoLineEnd(page, 7);
    await page.keyboard.press('Shift+Home');
    await page.keyboard.press('Backspace');
    await runCommand(page, 'Trigger Inline Suggestion');
    assert.equal((await waitForGhostText(page, 120_000)).trim(), MAIN_DESIRED[0]);
    await shot('repair-all-place-1');
    await page.keyboard.press('Escape');
  });

  step('undoing the patch brings the old suggestion back', async () => {
    await runCommand(page, 'STAR Repair: Undo Last Patch');
    await gotoLineEnd(page, 7);
    await runCommand(page, 'Trigger Inline Suggestion');
    const again = await waitForGhostText(page, 120_000);
    await shot('after-undo');
    assert.notEqual(again.trim(), MAIN_DESIRED[0]);
    assert.equal(await ghostText(page), again);
    await page.keyboard.press('Escape');
  });

  // Issue 15: inside a call whose closing bracket follows the cursor, the suggestion completes the
  // argument and never repeats the bracket (the suffix holds it).
  step('a mid-line completion inside a call does not duplicate the closing bracket', async (t) => {
    await openFile(page, CALL_FILE);
    const before = await lineText(page, CALL_LINE);
    assert.match(before, /\(\)\s*$/, `line ${CALL_LINE} of ${CALL_FILE} ends with an empty call: ${JSON.stringify(before)}`);
    await gotoLineEnd(page, CALL_LINE);
    await page.keyboard.press('ArrowLeft');
    await runCommand(page, 'Trigger Inline Suggestion');
    const suggestion = await waitForGhostText(page, 120_000);
    t.diagnostic(`mid-line suggestion: ${JSON.stringify(suggestion)}`);
    await shot('mid-line-ghost');
    await page.keyboard.press('Tab');
    const after = await lineText(page, CALL_LINE);
    await shot('mid-line-accepted');
    const count = (c: string) => after.split(c).length - 1;
    assert.equal(count('('), count(')'), `the accepted line keeps its brackets balanced: ${JSON.stringify(after)}`);
    assert.ok(!/\)\s*\)\s*$/.test(after) || before.trimEnd().endsWith('))'), `no doubled closing bracket: ${JSON.stringify(after)}`);
    assert.notEqual(after, before, 'the suggestion was inserted');
    // Back to the empty call (one undo step takes the accepted text out).
    await page.keyboard.press('Control+Z');
    assert.equal(await settledLineText(page, CALL_LINE, before), before);
  });

  // Issue 15: the rejection of a mid-line completion is captured with the text after the cursor,
  // repaired, and afterwards the editor shows the desired text at that place.
  step('a rejected mid-line completion is captured with its suffix, repaired, and then shown', async (t) => {
    const panel = webviewFrame(page, EXTENSION_ID);
    await gotoLineEnd(page, CALL_LINE);
    await page.keyboard.press('ArrowLeft');
    await runCommand(page, 'Trigger Inline Suggestion');
    const shown = await waitForGhostText(page, 120_000);
    assert.notEqual(shown.trim(), CALL_DESIRED, 'the model already suggests the desired argument: pick another');
    await page.keyboard.type(CALL_DESIRED, { delay: 20 });
    // Leaving the line finishes it: the failure is what was typed between the brackets.
    await page.keyboard.press('ArrowUp');
    await runCommand(page, 'STAR Repair: Show Repair Panel');
    const row = panel.locator('li.failure', { has: panel.locator('.where', { hasText: CALL_FILE }) }).first();
    await row.waitFor({ state: 'visible', timeout: 60_000 });
    // The failure, as stored, carries the text after the cursor (the closing bracket) and the FIM format.
    const stored = storedFailures(server!.userDataDir).find((f) => f['desired'] === CALL_DESIRED);
    assert.ok(stored, `a stored failure with desired ${JSON.stringify(CALL_DESIRED)}`);
    assert.ok(typeof stored['suffix'] === 'string' && stored['suffix'].startsWith(')'), `its suffix starts with the closing bracket: ${JSON.stringify(stored['suffix'])}`);
    assert.equal((stored['replay'] as { fim?: { format?: string } } | undefined)?.fim?.format, 'starcoder');
    await shot('mid-line-failure');
    // On this 3.4 M-parameter model, pushing `print(` towards `name` also flips 1 of the 12
    // built-in completions (specificity 92 %; `star-repair eval` shows the same for every mid-line
    // fix tried: the flipped ones are low-margin guesses such as `return n %` → "s % (n & 0x"),
    // which the default guard undoes. The user accepts that trade-off here and turns the guard off
    // in the User settings (JSON), as a person would.
    await runCommand(page, 'Preferences: Open User Settings (JSON)');
    // (code-server may open it as a tab or in a floating editor: find the editor by its content.)
    const json = page.locator('.monaco-editor', { hasText: 'security.workspace.trust.enabled' }).first();
    await json.waitFor({ state: 'visible', timeout: 15_000 });
    await json.locator('.view-lines').click();
    // A new last entry, on the line before the closing brace (a leading comma keeps the JSON valid;
    // the file as written here ends with "}" and a line break, so the brace is the line above the end).
    await page.keyboard.press('Control+End');
    await page.keyboard.press('ArrowUp');
    await page.keyboard.press('Home');
    await page.keyboard.type('  ,"starRepair.specificity.guard": "off"\n', { delay: 5 });
    await page.keyboard.press('Control+S');
    await page.waitForTimeout(2000);
    await shot('mid-line-guard-off');
    await page.keyboard.press('Control+W');
    await json.waitFor({ state: 'hidden', timeout: 10_000 });
    await openFile(page, CALL_FILE);
    // The earlier Repair All's outcome is still in the notification center, in the same words:
    // clear it, so the outcome read below is this repair's.
    await runCommand(page, 'Notifications: Clear All Notifications');
    await runCommand(page, 'STAR Repair: Repair All Pending Failures');
    const outcome = await notificationMatching(page, /Fixed "|Fixed \d+ failures?|Fixed \d+ of \d+|would have fixed|Could not fix/, 8 * 60_000);
    t.diagnostic(`mid-line repair: ${outcome}`);
    await shot('mid-line-repaired');
    // Every pending failure is fixed (none "of"), and the patch is kept (the guard is off).
    assert.match(outcome, new RegExp(`Fixed ("${CALL_DESIRED}"|\\d+ failures) —`), outcome);
    assert.doesNotMatch(outcome, /Patch undone/, outcome);
    // Take the typed argument out again (the cursor back between the brackets) and ask.
    await gotoLineEnd(page, CALL_LINE);
    await page.keyboard.press('ArrowLeft');
    for (let i = 0; i < CALL_DESIRED.length; i += 1) await page.keyboard.press('Backspace');
    assert.match(await settledLineText(page, CALL_LINE, /\(\)\s*$/), /\(\)\s*$/);
    await runCommand(page, 'Trigger Inline Suggestion');
    assert.equal((await waitForGhostText(page, 120_000)).trim(), CALL_DESIRED);
    await shot('mid-line-shown-after-repair');
    await page.keyboard.press('Escape');
  });

  // Issue 18: the panel (failures, neuron map of the patch, scores, history) in the three themes a
  // reviewer checks; the map's contrast is measured in test/unit/panel-webview.test.ts.
  step('the panel reads in Dark Modern, Light+ and High Contrast (screenshots)', async () => {
    const widget = page.locator('.quick-input-widget');
    for (const [name, label, filter] of [
      ['dark-modern', /^\s*Dark Modern/, 'Dark Modern'],
      ['light-plus', /^\s*Light\+/, 'Light+'],
      ['high-contrast', /^\s*(Dark )?High Contrast/, 'High Contrast'],
    ] as const) {
      await page.keyboard.press('Escape');
      await page.keyboard.press('F1');
      const input = widget.locator('input.input');
      await input.waitFor({ state: 'visible', timeout: 10_000 });
      await input.fill('>Preferences: Color Theme');
      await widget.locator('.monaco-list-row', { hasText: 'Preferences: Color Theme' }).first().click();
      // The theme list is long and virtualised: once it is up, filter it so the row is rendered.
      await widget.locator('.monaco-list-row', { hasText: /Dark Modern|Light Modern/ }).first().waitFor({ state: 'visible', timeout: 15_000 });
      await input.fill(filter);
      const row = widget.locator('.monaco-list-row', { hasText: label }).first();
      await row.waitFor({ state: 'visible', timeout: 15_000 });
      await row.click();
      await widget.waitFor({ state: 'hidden', timeout: 10_000 });
      await runCommand(page, 'STAR Repair: Show Repair Panel');
      const panel = webviewFrame(page, EXTENSION_ID);
      await panel.locator('#neuron-map').waitFor({ state: 'visible', timeout: 30_000 });
      await page.waitForTimeout(500);
      await shot(`panel-${name}`);
    }
  });
});
