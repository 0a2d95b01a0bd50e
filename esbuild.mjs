// Bundles the extension host code, the worker, the CLI, the benchmarks and the webview into dist/.
// Entries that do not exist yet are skipped, so each room can land on its own.
import { build } from 'esbuild';
import { existsSync, readdirSync } from 'node:fs';

const watch = process.argv.includes('--watch');
const production = process.argv.includes('--production');

const node = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: !production,
  minify: production,
  // Native and host-provided modules are loaded at run time, never bundled.
  external: ['vscode', 'onnxruntime-node'],
  logLevel: 'warning',
};

const nodeEntries = {
  extension: 'src/extension.ts',
  cli: 'src/cli.ts',
  worker: 'src/worker/main.ts',
};
for (const f of existsSync('bench') ? readdirSync('bench') : []) {
  if (f.endsWith('.ts')) nodeEntries[`bench/${f.slice(0, -3)}`] = `bench/${f}`;
}

const jobs = [];
for (const [out, entry] of Object.entries(nodeEntries)) {
  if (!existsSync(entry)) continue;
  jobs.push(build({
    ...node,
    entryPoints: [entry],
    outfile: `dist/${out}.js`,
    banner: out === 'cli' ? { js: '#!/usr/bin/env node' } : undefined,
  }));
}
if (existsSync('webview/main.ts')) {
  jobs.push(build({
    bundle: true,
    platform: 'browser',
    target: 'es2022',
    format: 'iife',
    sourcemap: !production,
    minify: production,
    entryPoints: ['webview/main.ts'],
    outfile: 'dist/webview.js',
    logLevel: 'warning',
  }));
}
await Promise.all(jobs);
if (watch) console.log('esbuild: --watch is not supported; re-run npm run build');
