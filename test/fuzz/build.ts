// Bundles the fuzz suite's child processes (and the model worker) once per run with esbuild into
// test-artifacts/, so each of the many child starts costs milliseconds instead of a TypeScript
// compile. Inside the repository, so onnxruntime-node resolves from node_modules.
import { build } from 'esbuild';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

export const ROOT = join(__dirname, '..', '..');

export interface FuzzBundles {
  modelLoader: string;
  storeWriter: string;
  worker: string;
}

export async function buildFuzzBundles(): Promise<FuzzBundles> {
  const dir = join(ROOT, 'test-artifacts', `fuzz-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const entries = {
    modelLoader: join(__dirname, 'children', 'model-loader.ts'),
    storeWriter: join(__dirname, 'children', 'store-writer.ts'),
    worker: join(ROOT, 'src', 'worker', 'main.ts'),
  };
  const out = {} as FuzzBundles;
  for (const [name, entry] of Object.entries(entries) as [keyof FuzzBundles, string][]) {
    const outfile = join(dir, `${name}.js`);
    await build({
      entryPoints: [entry], outfile, bundle: true, platform: 'node', target: 'node20', format: 'cjs',
      external: ['vscode', 'onnxruntime-node'], logLevel: 'warning',
    });
    out[name] = outfile;
  }
  return out;
}
