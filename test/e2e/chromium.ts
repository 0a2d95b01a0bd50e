// The one place that says how the tests start Debian's Chromium: headless, sandbox off (root),
// and none of its background network traffic (this machine's network is closed).
export const CHROMIUM = process.env['STAR_CHROMIUM'] ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--no-default-browser-check',
];
