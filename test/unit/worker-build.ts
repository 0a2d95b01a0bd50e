// Test helper: bundles the worker (src/worker/main.ts) once per test process into
// test-artifacts/, inside the repository so that onnxruntime-node (kept external, as in the
// real bundle) resolves from node_modules. The tests then fork exactly what ships.
import { build } from 'esbuild';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

export const ROOT = join(__dirname, '..', '..');
let built: Promise<string> | null = null;

export function buildWorker(): Promise<string> {
  if (!built) {
    built = (async () => {
      const dir = join(ROOT, 'test-artifacts', `worker-${process.pid}`);
      mkdirSync(dir, { recursive: true });
      process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
      const outfile = join(dir, 'worker.js');
      await build({
        entryPoints: [join(ROOT, 'src', 'worker', 'main.ts')],
        outfile,
        bundle: true,
        platform: 'node',
        target: 'node20',
        format: 'cjs',
        sourcemap: 'inline',
        external: ['vscode', 'onnxruntime-node'],
        logLevel: 'warning',
      });
      return outfile;
    })();
  }
  return built;
}
