// Bundles the integration suite (run-test.ts and suite/) into out/integration/ for
// `npm run test:integration`. mocha, @vscode/test-electron and vscode stay external: the first
// two resolve from node_modules, vscode is provided by the extension host.
import { build } from 'esbuild';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const suite = readdirSync(join(here, 'suite')).filter((f) => f.endsWith('.ts')).map((f) => join(here, 'suite', f));
await build({
  entryPoints: [join(here, 'run-test.ts'), ...suite],
  outbase: here,
  outdir: join(root, 'out', 'integration'),
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: 'inline',
  external: ['vscode', 'mocha', '@vscode/test-electron'],
  logLevel: 'warning',
});
