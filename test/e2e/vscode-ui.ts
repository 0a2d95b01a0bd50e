// Drives the VS Code workbench that code-server serves, the way a person does: keyboard, mouse
// and what is on screen (no extension-host back doors). Owns the selectors for the workbench,
// the editor's ghost text, context menus, notifications and the extension's webview view
// (two nested iframes), and the screenshots the run leaves in test-artifacts/e2e/.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { FrameLocator, Locator, Page } from 'playwright-core';

export { CHROMIUM, CHROMIUM_ARGS } from './chromium';

/** Numbered screenshots, so the folder reads as the scenario's story. */
export function screenshotter(page: Page, dir: string): (name: string) => Promise<string> {
  mkdirSync(dir, { recursive: true });
  let n = 0;
  return async (name: string): Promise<string> => {
    n += 1;
    const file = join(dir, `${String(n).padStart(2, '0')}-${name}.png`);
    await page.screenshot({ path: file });
    return file;
  };
}

export async function waitForWorkbench(page: Page, timeoutMs = 90_000): Promise<void> {
  await page.locator('.monaco-workbench').waitFor({ state: 'visible', timeout: timeoutMs });
  // The explorer or the status bar appears once the workbench has restored its layout.
  await page.locator('.statusbar').waitFor({ state: 'visible', timeout: timeoutMs });
}

const quickInput = (page: Page): Locator => page.locator('.quick-input-widget');

/**
 * Opens the quick input with `key` and types `text` into it. A toast that appears meanwhile can
 * take the focus and close the widget under the fill (Playwright then finds the input inert, then
 * hidden: seen in two of four local e2e runs), so a closed widget is opened again, up to 3 times.
 */
export async function fillQuickInput(page: Page, key: string, text: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    await closeQuickInput(page);
    await page.keyboard.press(key);
    const input = quickInput(page).locator('input.input');
    try {
      await input.waitFor({ state: 'visible', timeout: 10_000 });
      await input.fill(text, { timeout: 5_000 });
      return;
    } catch (e) {
      if (attempt >= 3) throw e;
    }
  }
}

/** Runs a command from the command palette by its title, e.g. "STAR Repair: Undo last patch". */
export async function runCommand(page: Page, title: string): Promise<void> {
  await fillQuickInput(page, 'F1', `>${title}`);
  const row = quickInput(page).locator('.monaco-list-row', { hasText: title }).first();
  await row.waitFor({ state: 'visible', timeout: 15_000 });
  await row.click();
  await quickInput(page).waitFor({ state: 'hidden', timeout: 10_000 });
}

export async function closeQuickInput(page: Page): Promise<void> {
  if (await quickInput(page).isVisible()) {
    await page.keyboard.press('Escape');
    await quickInput(page).waitFor({ state: 'hidden', timeout: 5_000 });
  }
}

/** Opens a workspace file with Quick Open and waits until its editor has focus. */
export async function openFile(page: Page, name: string): Promise<Locator> {
  await fillQuickInput(page, 'Control+P', name);
  const row = quickInput(page).locator('.monaco-list-row', { hasText: name }).first();
  await row.waitFor({ state: 'visible', timeout: 15_000 });
  await page.keyboard.press('Enter');
  await page.locator('.tabs-container .tab.active', { hasText: name }).waitFor({ timeout: 15_000 });
  const editor = activeEditor(page);
  await editor.locator('.view-lines').waitFor({ state: 'visible' });
  return editor;
}

export function activeEditor(page: Page): Locator {
  return page.locator('.editor-group-container.active .monaco-editor').first();
}

/** CSS classes of the inline suggestion's text where Monaco renders it (inside a line or below it). */
const GHOST_TEXT = '.ghost-text-decoration, .ghost-text-decoration-preview, .ghost-text';

/** The inline suggestion (ghost text) currently shown in the active editor, or '' when none. */
export async function ghostText(page: Page): Promise<string> {
  const parts = await activeEditor(page).locator(GHOST_TEXT).allTextContents();
  return parts.join('').replace(/\u00a0/g, ' ');
}

/** Waits until some ghost text is visible and returns it. */
export async function waitForGhostText(page: Page, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = await ghostText(page);
    if (text.trim() !== '') return text;
    if (Date.now() > deadline) throw new Error(`no inline suggestion (ghost text) appeared within ${timeoutMs / 1000} s`);
    await page.waitForTimeout(200);
  }
}

/**
 * Text of one line of the active editor's document (1-based line number), as rendered without
 * the ghost text: an inline suggestion inside the line is rendered in the same element (a run
 * read "print(name)" after the four Backspaces that left "print()", the repaired model already
 * suggesting "name" there).
 */
export async function lineText(page: Page, lineNumber: number): Promise<string> {
  // Monaco positions rendered lines absolutely; the line-numbers gutter gives the order.
  const editor = activeEditor(page);
  const texts = await editor.locator('.view-lines .view-line').evaluateAll((nodes, ghost) =>
    nodes
      .map((n) => {
        const copy = n.cloneNode(true) as HTMLElement;
        for (const g of Array.from(copy.querySelectorAll(ghost))) g.remove();
        return { top: parseFloat((n as HTMLElement).style.top || '0'), text: copy.textContent ?? '' };
      })
      .sort((a, b) => a.top - b.top)
      .map((x) => x.text),
    GHOST_TEXT,
  );
  const first = await editor.locator('.margin .line-numbers').evaluateAll((nodes) =>
    Math.min(...nodes.map((n) => Number(n.textContent ?? 'NaN')).filter((x) => Number.isFinite(x))),
  );
  return (texts[lineNumber - first] ?? '').replace(/\u00a0/g, ' ');
}

/**
 * The line's rendered text once it matches `expected`, or as it is after `timeoutMs`: Monaco
 * renders edits on a later frame, so a read right after a burst of key presses can see an earlier
 * state of the line.
 */
export async function settledLineText(page: Page, lineNumber: number, expected: RegExp | string, timeoutMs = 5_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = await lineText(page, lineNumber);
    if (typeof expected === 'string' ? text === expected : expected.test(text)) return text;
    if (Date.now() > deadline) return text;
    await page.waitForTimeout(100);
  }
}

/** Right-clicks the middle of `target` and picks the context-menu entry labelled `label`. */
export async function contextMenu(page: Page, target: Locator, label: string): Promise<void> {
  // The mouse at the element's box rather than locator.click: Monaco's selection overlays are
  // re-rendered on every frame (the blinking cursor), which Playwright never finds "stable".
  const box = await target.boundingBox();
  if (!box) throw new Error(`contextMenu: ${String(target)} has no box on screen`);
  await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2, { button: 'right' });
  // Monaco renders its menus inside an open shadow root; Playwright's CSS engine pierces it.
  const item = page.locator('.monaco-menu .action-item', { hasText: label }).first();
  await item.waitFor({ state: 'visible', timeout: 10_000 });
  // A person's click: move there, press, release (Monaco's menu acts on the mouse-up that
  // follows a press inside the item).
  const at = await item.boundingBox();
  if (!at) throw new Error(`contextMenu: the entry "${label}" has no box on screen`);
  await page.mouse.move(at.x + at.width / 2, at.y + at.height / 2, { steps: 4 });
  await page.mouse.down();
  await page.mouse.up();
  const menu = page.locator('.monaco-menu').first();
  try {
    await menu.waitFor({ state: 'hidden', timeout: 3_000 });
  } catch {
    // On a loaded machine the press can land before Monaco arms the item (seen in CI once: the
    // entry highlighted, the menu still open). The highlighted entry takes Enter, as a person would.
    if (await menu.isVisible()) await page.keyboard.press('Enter');
    await menu.waitFor({ state: 'hidden', timeout: 10_000 });
  }
}

/**
 * The extension's webview view: VS Code hosts it in an outer iframe (class `webview`, its src
 * naming the extension) that loads the page into an inner `#active-frame`.
 */
export function webviewFrame(page: Page, extensionId: string): FrameLocator {
  return page
    .frameLocator(`iframe.webview[src*="extensionId=${extensionId}"]`)
    .frameLocator('iframe#active-frame');
}

/** The extension's status bar entry (VS Code gives it the id `<extension id>.<item id>`). */
export function statusItem(page: Page): Locator {
  return page.locator('.statusbar-item[id$="starRepair.status"]');
}

/** Visible notification toasts' messages. */
export async function notifications(page: Page): Promise<string[]> {
  return page.locator('.notifications-toasts .notification-list-item-message').allTextContents();
}
