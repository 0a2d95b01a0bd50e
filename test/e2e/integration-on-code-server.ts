// Runs the extension's mocha integration suite (test/integration/suite, normally started by
// @vscode/test-electron, which cannot download VS Code here) inside code-server's extension
// host instead: the repository is loaded as the extension under development and the suite as
// the extension tests, both passed the way VS Code's web workbench takes them (the `payload`
// URL parameter), and the exit code comes back through `codeAutomationExit`, the hook the
// workbench calls when the test run ends. Exits with the suite's code.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { format } from 'node:util';
import { chromium } from 'playwright-core';
import { ARTIFACTS, E2eSetupError, ROOT, run, startCodeServer } from './code-server';
import { CHROMIUM, CHROMIUM_ARGS } from './vscode-ui';

const SUITE = join(ROOT, 'out', 'integration', 'suite', 'index.js');
const TIMEOUT_MS = Number(process.env['STAR_IT_TIMEOUT_MS'] ?? 15 * 60_000);

async function main(): Promise<number> {
  run('npm', ['run', 'build'], { what: 'building the extension (npm run build)' });
  run(process.execPath, [join(ROOT, 'test', 'integration', 'build.mjs')], { what: 'bundling the integration suite' });
  if (!existsSync(SUITE)) throw new E2eSetupError(`${SUITE} was not written by test/integration/build.mjs`);

  const emptyWorkspace = mkdtempSync(join(tmpdir(), 'star-it-workspace-'));
  const out = join(ARTIFACTS, 'integration');
  mkdirSync(out, { recursive: true });
  // Settings the suite changes go to the user settings of this throw-away profile.
  const server = await startCodeServer({
    workspaceFixture: emptyWorkspace,
    settings: { 'security.workspace.trust.enabled': false, 'workbench.startupEditor': 'none', 'extensions.autoCheckUpdates': false },
    extraArgs: ['--log', process.env['STAR_IT_LOG'] ?? 'info'],
  });
  const lines: string[] = [];
  const tally = { passing: 0, failing: 0, pending: 0 };
  try {
    // A page answered by route.fulfill (below) has no network origin, so Chromium's local
    // network access checks would block its WebSocket back to 127.0.0.1.
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_ARGS, '--disable-features=LocalNetworkAccessChecks'], headless: true });
    try {
      const page = await (await browser.newContext({ viewport: { width: 1400, height: 900 } })).newPage();
      const exit = new Promise<number>((resolveExit) => {
        void page.exposeFunction('codeAutomationExit', (code: number) => resolveExit(code));
      });
      // The extension host's console (mocha's reporter) reaches the page's console as the
      // window's log lines ('%c INFO', css, format, ...args); they are formatted back here.
      let chain = Promise.resolve();
      let summary = false;
      page.on('console', (m) => {
        chain = chain.then(async () => {
          const values = await Promise.all(m.args().map((a) => a.jsonValue().catch(() => '')));
          const args = typeof values[0] === 'string' && values[0].startsWith('%c') ? values.slice(2) : values;
          const text = (args.length > 0 ? format(...args) : m.text()).replace(/\u001b\[[0-9;]*m/g, '');
          lines.push(text);
          const counts = /^\s*(\d+) (passing|failing|pending)\b/.exec(text);
          if (counts) {
            summary = true;
            tally[counts[2] as keyof typeof tally] = Number(counts[1]);
          }
          if (summary || /^\s*(✔|✓|\d+\) )/.test(text)) process.stdout.write(`${text}\n`);
        });
      });
      const authority = new URL(server.url).host;
      const remote = (path: string): string => `vscode-remote://${authority}${path}`;
      const payload = [
        ['extensionDevelopmentPath', remote(ROOT)],
        ['extensionTestsPath', remote(SUITE)],
        ['extensionEnvironment', JSON.stringify({ STAR_IT_ROOT: ROOT })],
      ];
      const url = `${server.folderUrl()}&payload=${encodeURIComponent(JSON.stringify(payload))}`;
      // A built workbench honours the payload's development options only when its configuration
      // enables the smoke-test driver, which VS Code's server sets from --enable-smoke-test-driver;
      // code-server's command line refuses that flag, so the page's configuration (a JSON
      // attribute of a <meta> element) gets it on the way to the browser.
      await page.route((u) => u.href === url, async (route) => {
        const response = await route.fetch();
        const html = await response.text();
        const marker = '&quot;developmentOptions&quot;:{';
        if (!html.includes(marker)) throw new E2eSetupError('code-server\'s page has no developmentOptions in its workbench configuration: this code-server version is not supported by the integration runner');
        await route.fulfill({ response, body: html.replace(marker, `${marker}&quot;enableSmokeTestDriver&quot;:true,`) });
      });
      await page.goto(url);
      const code = await Promise.race([
        exit,
        new Promise<number>((_, reject) => setTimeout(() => reject(new Error(`the integration suite did not finish within ${TIMEOUT_MS / 60_000} min`)), TIMEOUT_MS)),
      ]);
      await page.screenshot({ path: join(out, 'end.png') }).catch(() => undefined);
      // The plain closing line CI reads, from mocha's own counts.
      console.log(`integration: ${tally.passing} passed, ${tally.failing} failed${tally.pending ? `, ${tally.pending} skipped` : ''}`);
      if (code === 0 && tally.passing === 0) throw new E2eSetupError('the integration suite exited 0 but reported no passing test');
      return code;
    } finally {
      await browser.close().catch(() => undefined);
    }
  } finally {
    writeFileSync(join(out, 'browser-console.log'), `${lines.join('\n')}\n`);
    writeFileSync(join(out, 'code-server.log'), server.log());
    const logs = join(server.userDataDir, 'logs');
    if (existsSync(logs)) spawnSync('cp', ['-r', logs, join(out, 'vscode-logs')]);
    await server.stop();
    rmSync(emptyWorkspace, { recursive: true, force: true });
  }
}

main().then(
  (code) => {
    console.log(code === 0 ? 'integration suite on code-server: passed' : `integration suite on code-server: failed (exit ${code})`);
    process.exit(code);
  },
  (e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  },
);
