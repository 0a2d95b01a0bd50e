// Reads the VS Code theme (the --vscode-* CSS variables VS Code sets on the webview) into
// the colours the canvas needs, and tells the panel when the theme changes.

import { cssColor, ensureContrast, mapRamp, MIN_CONTRAST, mix, over, parseCanvasColor, type MapTheme, type Rgba } from './neuron-map';

let probe: CanvasRenderingContext2D | null = null;

/** Lets the browser parse any CSS colour, then reads back its normalised form. */
function resolveColor(value: string, fallback: Rgba): Rgba {
  probe ??= document.createElement('canvas').getContext('2d');
  if (!probe || !value.trim()) return fallback;
  probe.fillStyle = '#000000';
  probe.fillStyle = value.trim();
  return parseCanvasColor(String(probe.fillStyle)) ?? fallback;
}

function cssVar(style: CSSStyleDeclaration, names: string[]): string {
  for (const n of names) {
    const v = style.getPropertyValue(n).trim();
    if (v) return v;
  }
  return '';
}

export function isDarkTheme(): boolean {
  const c = document.body.classList;
  return c.contains('vscode-dark') || (c.contains('vscode-high-contrast') && !c.contains('vscode-high-contrast-light'));
}

export function readMapTheme(): MapTheme {
  const style = getComputedStyle(document.body);
  const dark = isDarkTheme();
  const background = over(
    resolveColor(cssVar(style, ['--vscode-sideBar-background', '--vscode-editor-background']), dark ? [30, 30, 30, 1] : [255, 255, 255, 1]),
    dark ? [30, 30, 30, 1] : [255, 255, 255, 1],
  );
  const foreground = over(resolveColor(cssVar(style, ['--vscode-foreground']), dark ? [204, 204, 204, 1] : [59, 59, 59, 1]), background);
  const accent = over(resolveColor(cssVar(style, ['--vscode-charts-orange']), [209, 134, 22, 1]), background);
  const highContrast = document.body.classList.contains('vscode-high-contrast') || document.body.classList.contains('vscode-high-contrast-light');
  // Theme tokens, raised where needed to MIN_CONTRAST against the background (4.5:1, measured in
  // test/unit/panel-webview.test.ts for Dark Modern, Light+ and High Contrast).
  const { low, high } = mapRamp(background, accent);
  const text = over(resolveColor(cssVar(style, ['--vscode-descriptionForeground', '--vscode-foreground']), foreground), background);
  const focus = over(resolveColor(cssVar(style, ['--vscode-focusBorder']), dark ? [0, 120, 212, 1] : [0, 95, 184, 1]), background);
  return {
    background,
    empty: mix(background, foreground, highContrast ? 0.18 : 0.07),
    low,
    high,
    text: cssColor(ensureContrast(text, background, MIN_CONTRAST)),
    focus: cssColor(ensureContrast(focus, background, 3)),
    font: `10px ${cssVar(style, ['--vscode-font-family']) || 'sans-serif'}`,
  };
}

/** VS Code swaps the body class and the variables on <html> when the theme changes. */
export function onThemeChange(callback: () => void): void {
  const observer = new MutationObserver(() => callback());
  observer.observe(document.body, { attributes: true, attributeFilter: ['class'] });
  observer.observe(document.documentElement, { attributes: true, attributeFilter: ['style', 'class'] });
}
