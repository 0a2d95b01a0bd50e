// Builds webview/main.ts the way esbuild.mjs does (browser IIFE, ES2022), in memory, so the
// browser tests exercise the current source without depending on a prior `npm run build`.

import { build } from 'esbuild';
import { join } from 'node:path';
import { repoRoot } from './webview-harness';

export async function buildWebviewBundle(): Promise<string> {
  const root = repoRoot();
  const out = await build({
    absWorkingDir: root,
    entryPoints: [join(root, 'webview', 'main.ts')],
    bundle: true,
    platform: 'browser',
    target: 'es2022',
    format: 'iife',
    // Not written (write: false); the name only tells esbuild what to call the output.
    outfile: join(root, 'dist', 'webview.js'),
    write: false,
    logLevel: 'silent',
  });
  const js = out.outputFiles.find((f) => f.path.endsWith('.js'));
  if (!js) throw new Error('esbuild produced no JavaScript for webview/main.ts');
  return js.text;
}
