// `npm run test:integration`: downloads VS Code (stable; STAR_VSCODE_VERSION picks another) into
// .vscode-test/, starts it with this repository as the extension under development and no other
// extensions, in a throw-away user-data folder and an empty workspace, and runs suite/index.ts
// inside its extension host. Needs network access for the first download.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { runTests } from '@vscode/test-electron';

async function main(): Promise<void> {
  const root = resolve(__dirname, '..', '..');
  const workspace = mkdtempSync(join(tmpdir(), 'star-it-workspace-'));
  const userData = mkdtempSync(join(tmpdir(), 'star-it-user-'));
  try {
    await runTests({
      version: process.env['STAR_VSCODE_VERSION'] ?? 'stable',
      extensionDevelopmentPath: root,
      extensionTestsPath: join(__dirname, 'suite', 'index.js'),
      launchArgs: [workspace, '--disable-extensions', '--disable-workspace-trust', '--skip-welcome', '--skip-release-notes', `--user-data-dir=${userData}`],
      extensionTestsEnv: { STAR_IT_ROOT: root },
    });
  } finally {
    rmSync(workspace, { recursive: true, force: true });
    rmSync(userData, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
