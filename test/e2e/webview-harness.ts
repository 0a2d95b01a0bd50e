// Loads the panel's real page (renderPanelHtml, with its CSP) into headless Chromium the way
// VS Code hosts it: a stand-in acquireVsCodeApi that records what the panel posts, the theme
// as --vscode-* variables plus a body class, resources served from one local origin, and every
// other request refused and recorded. Shared by test/unit/panel-webview.test.ts and
// bench/neuron-map.ts; it takes the bundle's text, so it never needs esbuild itself.

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { renderPanelHtml } from '../../src/panel/html';
import type { ExtensionToWebview, WebviewToExtension } from '../../src/panel/messages';

import { CHROMIUM as CHROMIUM_PATH, CHROMIUM_ARGS } from './chromium';

export { CHROMIUM_PATH, CHROMIUM_ARGS };

/** Why the browser tests cannot run here, or null when they can. */
export function chromiumMissing(): string | null {
  return existsSync(CHROMIUM_PATH)
    ? null
    : `${CHROMIUM_PATH} not found: install Debian's chromium (apt-get install -y chromium) or set STAR_CHROMIUM to a Chromium binary`;
}

/** The repository root, found from this file whether it runs from source or from dist/. */
export function repoRoot(): string {
  let dir = __dirname;
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && /"name":\s*"star-repair"/.test(readFileSync(pkg, 'utf8'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('webview harness: cannot find the star-repair repository root above ' + __dirname);
    dir = up;
  }
}

export type ThemeKind = 'light' | 'light-plus' | 'dark' | 'high-contrast';

/** A subset of the variables VS Code's Light Modern / Light+ / Dark Modern / High Contrast themes set. */
export const THEMES: Record<ThemeKind, { bodyClass: string; vars: Record<string, string> }> = {
  light: {
    bodyClass: 'vscode-light',
    vars: {
      '--vscode-font-family': 'system-ui, "Ubuntu", "Droid Sans", sans-serif',
      '--vscode-font-size': '13px',
      '--vscode-editor-font-family': '"Droid Sans Mono", "monospace", monospace',
      '--vscode-editor-font-size': '12px',
      '--vscode-foreground': '#3b3b3b',
      '--vscode-descriptionForeground': '#717171',
      '--vscode-sideBar-background': '#f8f8f8',
      '--vscode-editor-background': '#ffffff',
      '--vscode-focusBorder': '#005fb8',
      '--vscode-widget-border': '#e5e5e5',
      '--vscode-panel-border': '#e5e5e5',
      '--vscode-button-background': '#005fb8',
      '--vscode-button-foreground': '#ffffff',
      '--vscode-button-hoverBackground': '#0258a8',
      '--vscode-button-secondaryBackground': '#e5e5e5',
      '--vscode-button-secondaryForeground': '#3b3b3b',
      '--vscode-badge-background': '#cccccc',
      '--vscode-badge-foreground': '#3b3b3b',
      '--vscode-checkbox-background': '#f8f8f8',
      '--vscode-checkbox-border': '#cecece',
      '--vscode-progressBar-background': '#005fb8',
      '--vscode-textCodeBlock-background': '#f8f8f8',
      '--vscode-diffEditor-insertedTextBackground': 'rgba(156, 204, 44, 0.25)',
      '--vscode-diffEditor-removedTextBackground': 'rgba(255, 0, 0, 0.2)',
      '--vscode-editorWarning-foreground': '#bf8803',
      '--vscode-editorHoverWidget-background': '#f8f8f8',
      '--vscode-editorHoverWidget-border': '#c8c8c8',
      '--vscode-charts-red': '#e51400',
      '--vscode-charts-blue': '#1a85ff',
      '--vscode-charts-green': '#388a34',
      '--vscode-charts-orange': '#d18616',
      '--vscode-charts-lines': 'rgba(0, 0, 0, 0.5)',
      '--vscode-dropdown-background': '#ffffff',
      '--vscode-dropdown-border': '#cecece',
      '--vscode-dropdown-foreground': '#3b3b3b',
      '--vscode-sideBarSectionHeader-background': '#f8f8f8',
      '--vscode-sideBarTitle-foreground': '#3b3b3b',
      '--vscode-settings-dropdownBackground': '#ffffff',
      '--vscode-settings-dropdownBorder': '#cecece',
      '--vscode-settings-dropdownForeground': '#3b3b3b',
      '--vscode-settings-dropdownListBorder': '#cecece',
      '--vscode-list-activeSelectionBackground': '#e8e8e8',
      '--vscode-list-activeSelectionForeground': '#000000',
      '--vscode-list-hoverBackground': '#f2f2f2',
      '--vscode-list-focusOutline': '#005fb8',
      '--vscode-list-highlightForeground': '#0066bf',
      '--vscode-icon-foreground': '#3b3b3b',
      '--vscode-checkbox-foreground': '#3b3b3b',
      '--vscode-settings-checkboxBackground': '#f8f8f8',
      '--vscode-settings-checkboxBorder': '#cecece',
      '--vscode-settings-checkboxForeground': '#3b3b3b',
      '--vscode-scrollbarSlider-background': 'rgba(100, 100, 100, 0.4)',
      '--vscode-button-secondaryHoverBackground': '#cccccc',
      '--vscode-widget-shadow': 'rgba(0, 0, 0, 0.16)',
    },
  },
  // Default Light+ (the light theme before Light Modern): a grey side bar and paler greys.
  'light-plus': {
    bodyClass: 'vscode-light',
    vars: {
      '--vscode-font-family': 'system-ui, "Ubuntu", "Droid Sans", sans-serif',
      '--vscode-font-size': '13px',
      '--vscode-editor-font-family': '"Droid Sans Mono", "monospace", monospace',
      '--vscode-editor-font-size': '12px',
      '--vscode-foreground': '#616161',
      '--vscode-descriptionForeground': '#717171',
      '--vscode-sideBar-background': '#f3f3f3',
      '--vscode-editor-background': '#ffffff',
      '--vscode-focusBorder': '#0090f1',
      '--vscode-widget-border': '#d4d4d4',
      '--vscode-button-background': '#007acc',
      '--vscode-button-foreground': '#ffffff',
      '--vscode-button-hoverBackground': '#0062a3',
      '--vscode-button-secondaryBackground': '#5f6a79',
      '--vscode-button-secondaryForeground': '#ffffff',
      '--vscode-button-secondaryHoverBackground': '#4c5561',
      '--vscode-badge-background': '#c4c4c4',
      '--vscode-badge-foreground': '#333333',
      '--vscode-checkbox-background': '#ffffff',
      '--vscode-checkbox-border': '#919191',
      '--vscode-progressBar-background': '#0e70c0',
      '--vscode-textCodeBlock-background': 'rgba(220, 220, 220, 0.4)',
      '--vscode-textLink-foreground': '#006ab1',
      '--vscode-diffEditor-insertedTextBackground': 'rgba(156, 204, 44, 0.25)',
      '--vscode-diffEditor-removedTextBackground': 'rgba(255, 0, 0, 0.2)',
      '--vscode-editorWarning-foreground': '#bf8803',
      '--vscode-editorHoverWidget-background': '#f3f3f3',
      '--vscode-editorHoverWidget-border': '#c8c8c8',
      '--vscode-charts-red': '#e51400',
      '--vscode-charts-blue': '#1a85ff',
      '--vscode-charts-green': '#388a34',
      '--vscode-charts-orange': '#d18616',
      '--vscode-charts-lines': 'rgba(97, 97, 97, 0.5)',
      '--vscode-dropdown-background': '#ffffff',
      '--vscode-dropdown-border': '#cecece',
      '--vscode-dropdown-foreground': '#616161',
      '--vscode-sideBarSectionHeader-background': 'rgba(128, 128, 128, 0.2)',
      '--vscode-sideBarTitle-foreground': '#6f6f6f',
      '--vscode-list-activeSelectionBackground': '#0060c0',
      '--vscode-list-activeSelectionForeground': '#ffffff',
      '--vscode-list-hoverBackground': '#e8e8e8',
      '--vscode-list-focusOutline': '#0090f1',
      '--vscode-list-highlightForeground': '#0066bf',
      '--vscode-icon-foreground': '#424242',
      '--vscode-checkbox-foreground': '#616161',
      '--vscode-scrollbarSlider-background': 'rgba(100, 100, 100, 0.4)',
      '--vscode-widget-shadow': 'rgba(0, 0, 0, 0.16)',
    },
  },
  dark: {
    bodyClass: 'vscode-dark',
    vars: {
      '--vscode-font-family': 'system-ui, "Ubuntu", "Droid Sans", sans-serif',
      '--vscode-font-size': '13px',
      '--vscode-editor-font-family': '"Droid Sans Mono", "monospace", monospace',
      '--vscode-editor-font-size': '12px',
      '--vscode-foreground': '#cccccc',
      '--vscode-descriptionForeground': '#9d9d9d',
      '--vscode-sideBar-background': '#181818',
      '--vscode-editor-background': '#1f1f1f',
      '--vscode-focusBorder': '#0078d4',
      '--vscode-widget-border': '#313131',
      '--vscode-panel-border': '#2b2b2b',
      '--vscode-button-background': '#0078d4',
      '--vscode-button-foreground': '#ffffff',
      '--vscode-button-hoverBackground': '#026ec1',
      '--vscode-button-secondaryBackground': '#313131',
      '--vscode-button-secondaryForeground': '#cccccc',
      '--vscode-badge-background': '#616161',
      '--vscode-badge-foreground': '#f8f8f8',
      '--vscode-checkbox-background': '#313131',
      '--vscode-checkbox-border': '#3c3c3c',
      '--vscode-progressBar-background': '#0078d4',
      '--vscode-textCodeBlock-background': '#2b2b2b',
      '--vscode-diffEditor-insertedTextBackground': 'rgba(156, 204, 44, 0.2)',
      '--vscode-diffEditor-removedTextBackground': 'rgba(255, 0, 0, 0.2)',
      '--vscode-editorWarning-foreground': '#cca700',
      '--vscode-editorHoverWidget-background': '#202020',
      '--vscode-editorHoverWidget-border': '#454545',
      '--vscode-charts-red': '#f14c4c',
      '--vscode-charts-blue': '#3794ff',
      '--vscode-charts-green': '#89d185',
      '--vscode-charts-orange': '#d18616',
      '--vscode-charts-lines': 'rgba(204, 204, 204, 0.5)',
      '--vscode-dropdown-background': '#313131',
      '--vscode-dropdown-border': '#3c3c3c',
      '--vscode-dropdown-foreground': '#cccccc',
      '--vscode-sideBarSectionHeader-background': '#181818',
      '--vscode-sideBarTitle-foreground': '#cccccc',
      '--vscode-settings-dropdownBackground': '#313131',
      '--vscode-settings-dropdownBorder': '#3c3c3c',
      '--vscode-settings-dropdownForeground': '#cccccc',
      '--vscode-settings-dropdownListBorder': '#454545',
      '--vscode-list-activeSelectionBackground': '#04395e',
      '--vscode-list-activeSelectionForeground': '#ffffff',
      '--vscode-list-hoverBackground': '#2a2d2e',
      '--vscode-list-focusOutline': '#0078d4',
      '--vscode-list-highlightForeground': '#2aaaff',
      '--vscode-icon-foreground': '#cccccc',
      '--vscode-checkbox-foreground': '#cccccc',
      '--vscode-settings-checkboxBackground': '#313131',
      '--vscode-settings-checkboxBorder': '#3c3c3c',
      '--vscode-settings-checkboxForeground': '#cccccc',
      '--vscode-scrollbarSlider-background': 'rgba(121, 121, 121, 0.4)',
      '--vscode-button-secondaryHoverBackground': '#3c3c3c',
      '--vscode-widget-shadow': 'rgba(0, 0, 0, 0.36)',
    },
  },
  'high-contrast': {
    bodyClass: 'vscode-high-contrast',
    vars: {
      '--vscode-font-family': 'system-ui, "Ubuntu", "Droid Sans", sans-serif',
      '--vscode-font-size': '13px',
      '--vscode-editor-font-family': '"Droid Sans Mono", "monospace", monospace',
      '--vscode-foreground': '#ffffff',
      '--vscode-descriptionForeground': 'rgba(255, 255, 255, 0.7)',
      '--vscode-sideBar-background': '#000000',
      '--vscode-editor-background': '#000000',
      '--vscode-focusBorder': '#f38518',
      '--vscode-contrastBorder': '#6fc3df',
      '--vscode-contrastActiveBorder': '#f38518',
      '--vscode-widget-border': '#6fc3df',
      '--vscode-button-background': '#000000',
      '--vscode-button-foreground': '#ffffff',
      '--vscode-button-border': '#6fc3df',
      '--vscode-badge-background': '#000000',
      '--vscode-badge-foreground': '#ffffff',
      '--vscode-checkbox-background': '#000000',
      '--vscode-checkbox-border': '#6fc3df',
      '--vscode-diffEditor-insertedTextBorder': '#33ff2e',
      '--vscode-diffEditor-removedTextBorder': '#ff008f',
      '--vscode-charts-red': '#f14c4c',
      '--vscode-charts-blue': '#3794ff',
      '--vscode-charts-green': '#89d185',
      '--vscode-charts-orange': '#f38518',
      '--vscode-charts-lines': 'rgba(255, 255, 255, 0.5)',
      '--vscode-sideBarSectionHeader-background': '#000000',
      '--vscode-sideBarSectionHeader-border': '#6fc3df',
      '--vscode-sideBarTitle-foreground': '#ffffff',
      '--vscode-settings-dropdownBackground': '#000000',
      '--vscode-settings-dropdownBorder': '#6fc3df',
      '--vscode-settings-dropdownForeground': '#ffffff',
      '--vscode-settings-dropdownListBorder': '#6fc3df',
      '--vscode-list-focusOutline': '#f38518',
      '--vscode-list-highlightForeground': '#f38518',
      '--vscode-icon-foreground': '#ffffff',
      '--vscode-checkbox-foreground': '#ffffff',
      '--vscode-settings-checkboxBackground': '#000000',
      '--vscode-settings-checkboxBorder': '#6fc3df',
      '--vscode-settings-checkboxForeground': '#ffffff',
      '--vscode-progressBar-background': '#6fc3df',
      '--vscode-textCodeBlock-background': '#000000',
      '--vscode-editorHoverWidget-background': '#0c141f',
      '--vscode-editorHoverWidget-border': '#6fc3df',
      '--vscode-editorWarning-foreground': '#ff0000',
    },
  },
};

export const ORIGIN = 'https://star-repair.webview.test';

export interface PanelPage {
  page: Page;
  context: BrowserContext;
  /** Requests the page made to anything but its own origin (each was refused). */
  foreignRequests: string[];
  /** CSP violations the page reported. */
  cspViolations: string[];
  /** Uncaught exceptions in the page. */
  pageErrors: string[];
  /** console.warn / console.error lines. */
  warnings: string[];
  close(): Promise<void>;
}

export interface OpenOptions {
  bundle: string;
  theme?: ThemeKind;
  /** What getState() returns at load: what VS Code kept for the view. */
  saved?: unknown;
  width?: number;
  height?: number;
  deviceScaleFactor?: number;
}

export async function openPanel(browser: Browser, o: OpenOptions): Promise<PanelPage> {
  const root = repoRoot();
  const css = readFileSync(join(root, 'media', 'panel.css'), 'utf8');
  const html = renderPanelHtml({
    cspSource: ORIGIN,
    nonce: 'dGVzdC1ub25jZS0wMTIzNDU2Nzg5',
    scriptUri: `${ORIGIN}/dist/webview.js`,
    styleUri: `${ORIGIN}/media/panel.css`,
  });
  const context = await browser.newContext({
    viewport: { width: o.width ?? 360, height: o.height ?? 1400 },
    deviceScaleFactor: o.deviceScaleFactor ?? 1,
  });
  const page = await context.newPage();
  const result: PanelPage = {
    page,
    context,
    foreignRequests: [],
    cspViolations: [],
    pageErrors: [],
    warnings: [],
    close: () => context.close(),
  };
  await context.route('**/*', async (route) => {
    const url = route.request().url();
    const files: Record<string, [string, string]> = {
      [`${ORIGIN}/`]: [html, 'text/html'],
      [`${ORIGIN}/dist/webview.js`]: [o.bundle, 'text/javascript'],
      [`${ORIGIN}/media/panel.css`]: [css, 'text/css'],
    };
    const file = files[url];
    if (file) await route.fulfill({ status: 200, body: file[0], contentType: file[1] });
    else {
      result.foreignRequests.push(url);
      await route.abort('blockedbyclient');
    }
  });
  page.on('pageerror', (e) => result.pageErrors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'warning' || m.type() === 'error') result.warnings.push(m.text());
  });
  await page.exposeFunction('__cspViolation', (s: string) => result.cspViolations.push(s));
  // Init scripts run before the page's own, and CDP-injected code is not subject to its CSP.
  // A string, not a function: tsx would wrap a function's inner helpers in its own __name().
  await page.addInitScript(standInScript(o.saved));
  await page.goto(`${ORIGIN}/`);
  await page.waitForFunction(() => ((window as unknown as { __posted: unknown[] }).__posted ?? []).length > 0);
  await setTheme(page, o.theme ?? 'light');
  return result;
}

/** The stand-in for VS Code's webview host: records posts, keeps setState's value. */
function standInScript(saved: unknown): string {
  return `(() => {
  const w = window;
  // VS Code clones what crosses the boundary; so does this stand-in.
  const clone = (v) => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)));
  w.__posted = [];
  w.__saved = ${saved === undefined ? 'undefined' : JSON.stringify(JSON.stringify(saved))};
  if (typeof w.__saved === 'string') w.__saved = JSON.parse(w.__saved);
  let acquired = false;
  w.acquireVsCodeApi = () => {
    if (acquired) throw new Error('acquireVsCodeApi may only be called once');
    acquired = true;
    return {
      postMessage: (m) => { w.__posted.push(clone(m)); },
      getState: () => clone(w.__saved),
      setState: (s) => { w.__saved = clone(s); return s; },
    };
  };
  document.addEventListener('securitypolicyviolation', (e) => {
    w.__cspViolation(e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline'));
  });
})();`;
}

/** Applies a theme the way VS Code does: variables on <html>, kind as a class on <body>. */
export async function setTheme(page: Page, kind: ThemeKind): Promise<void> {
  const t = THEMES[kind];
  await page.evaluate(
    ({ vars, bodyClass }) => {
      const html = document.documentElement;
      html.removeAttribute('style');
      for (const [k, v] of Object.entries(vars)) html.style.setProperty(k, v);
      document.body.classList.remove('vscode-light', 'vscode-dark', 'vscode-high-contrast', 'vscode-high-contrast-light');
      document.body.classList.add(bodyClass);
      document.body.dataset['vscodeThemeKind'] = bodyClass;
    },
    { vars: t.vars, bodyClass: t.bodyClass },
  );
  await nextFrame(page);
}

/** Delivers a message as VS Code does: a `message` event on the webview's window. */
export async function sendToPanel(page: Page, message: ExtensionToWebview | unknown): Promise<void> {
  await page.evaluate((m) => window.dispatchEvent(new MessageEvent('message', { data: m })), message as object);
  await nextFrame(page);
}

export async function posted(page: Page): Promise<WebviewToExtension[]> {
  return page.evaluate(() => (window as unknown as { __posted: WebviewToExtension[] }).__posted);
}

export async function clearPosted(page: Page): Promise<void> {
  await page.evaluate(() => {
    (window as unknown as { __posted: unknown[] }).__posted = [];
  });
}

export async function savedState(page: Page): Promise<unknown> {
  return page.evaluate(() => (window as unknown as { __saved: unknown }).__saved);
}

/** Waits for Lit's microtask updates and one paint. */
export async function nextFrame(page: Page): Promise<void> {
  await page.evaluate(() => new Promise<void>((r) => requestAnimationFrame(() => requestAnimationFrame(() => r()))));
}
