// The repair panel's HTML document and its content security policy. Kept apart from the
// provider (and free of `vscode`) so the same page is what the Chromium tests load.

export interface PanelHtmlOptions {
  /** `webview.cspSource`: the origin the webview serves local resources from. */
  cspSource: string;
  /** A fresh random value per page load; only scripts and styles carrying it may run. */
  nonce: string;
  /** URI of dist/webview.js as the webview sees it. */
  scriptUri: string;
  /** URI of media/panel.css as the webview sees it. */
  styleUri: string;
}

const NONCE = /^[A-Za-z0-9+/=_-]{16,}$/;

/**
 * default-src 'none' shuts everything off; then only our nonce-tagged script, our own
 * stylesheet (Lit components adopt constructable stylesheets, which CSP does not block) and
 * images/fonts from the extension's folders. No 'unsafe-inline', no remote origins.
 */
export function panelCsp(cspSource: string, nonce: string): string {
  return [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    `style-src ${cspSource} 'nonce-${nonce}'`,
    `img-src ${cspSource} data:`,
    `font-src ${cspSource}`,
    "connect-src 'none'",
    "form-action 'none'",
    "base-uri 'none'",
  ].join('; ');
}

export function renderPanelHtml(o: PanelHtmlOptions): string {
  if (!NONCE.test(o.nonce)) {
    throw new Error('renderPanelHtml: the nonce must be at least 16 base64 characters; use makeNonce()');
  }
  for (const [k, v] of Object.entries({ scriptUri: o.scriptUri, styleUri: o.styleUri })) {
    if (/["<>\s]/.test(v)) throw new Error(`renderPanelHtml: ${k} must be a URI without quotes, angle brackets or spaces`);
  }
  // cspSource is a CSP source list ("'self' https://*.vscode-cdn.net" in code-server): quotes and
  // spaces are legitimate; a double quote, an angle bracket or a ';' (a new directive) is not.
  if (/["<>;]/.test(o.cspSource)) throw new Error('renderPanelHtml: cspSource must be a CSP source list without double quotes, angle brackets or semicolons');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${panelCsp(o.cspSource, o.nonce)}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${o.styleUri}" nonce="${o.nonce}">
<title>STAR Repair</title>
</head>
<body>
<main id="app" aria-live="off"></main>
<script nonce="${o.nonce}" src="${o.scriptUri}"></script>
</body>
</html>`;
}

/** 24 random bytes, base64url: the nonce for one page load. */
export function makeNonce(): string {
  const bytes = new Uint8Array(24);
  globalThis.crypto.getRandomValues(bytes);
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}
