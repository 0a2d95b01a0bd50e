// The fuzz suite (`npm run test:fuzz`): seeded, time-bounded hostile input for every boundary where
// outside bytes enter — model folders (config.json, safetensors header and data, tokenizer.json),
// failure JSONL, patch files, store files and killed store writers, worker protocol messages (the
// validators, a real worker process, the client). Each case ends as result / typed error / crash /
// hang / silent (wrong output without an error) / lost (records); the run prints the counts per
// area and fails when any of the last four is not zero.
//
//   npm run test:fuzz                         default: about 150 s in all on 2 cores, seed 17
//   npm run test:fuzz -- --seconds 900        longer (or FUZZ_SECONDS=900, or --long)
//   npm run test:fuzz -- --seed 42            another seed (or FUZZ_SEED); a case's label says how to find it again
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { buildFuzzBundles, ROOT } from './build';
import { Tally } from './lib';
import { fuzzModels } from './areas/model';
import { fuzzParsers } from './areas/parsers';
import { fuzzProtocol } from './areas/protocol';
import { fuzzStores } from './areas/stores';

/** Share of the time each area gets. */
const SHARES = { model: 0.36, storeFiles: 0.08, storeKills: 0.15, jsonl: 0.06, patch: 0.08, validators: 0.06, worker: 0.13, client: 0.08 };

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { seconds: { type: 'string' }, seed: { type: 'string' }, long: { type: 'boolean' } } });
  const seconds = Number(values.seconds ?? process.env.FUZZ_SECONDS ?? (values.long ? 900 : 150));
  const seed = Number(values.seed ?? process.env.FUZZ_SEED ?? 17);
  if (!(seconds > 0) || !Number.isSafeInteger(seed)) {
    process.stderr.write('usage: test/fuzz/run.ts [--seconds N] [--seed S] [--long]\n');
    return 2;
  }
  const started = Date.now();
  // The whole run is bounded too: a hang in the harness itself must not stall CI.
  const guard = setTimeout(() => {
    process.stderr.write(`fuzz: still running after ${Math.round((Date.now() - started) / 1000)} s: the harness itself hangs\n`);
    process.exit(1);
  }, (seconds * 1.5 + 240) * 1000);
  guard.unref();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'star-fuzz-'));
  const tally = new Tally();
  const notes: string[] = [];
  process.stdout.write(`fuzz: seed ${seed}, about ${seconds} s\n`);
  try {
    const bundles = await buildFuzzBundles();
    const part = (share: number) => seconds * share;
    const areas: [string, () => Promise<unknown> | unknown][] = [
      ['failures JSONL and patch files', () => fuzzParsers({ tally, seed, jsonlSeconds: part(SHARES.jsonl), patchSeconds: part(SHARES.patch), tmp })],
      ['stores', () => fuzzStores({ tally, seed, fileSeconds: part(SHARES.storeFiles), killSeconds: part(SHARES.storeKills), writerBundle: bundles.storeWriter, tmp })],
      ['worker protocol', async () => notes.push(...await fuzzProtocol({
        tally, seed, validatorSeconds: part(SHARES.validators), workerSeconds: part(SHARES.worker), clientSeconds: part(SHARES.client),
        workerBundle: bundles.worker, modelDir: path.join(ROOT, 'test', 'fixtures', 'models', 'llama'), tmp,
      }))],
      ['model folders', () => fuzzModels({
        tally, seed, seconds: part(SHARES.model), loaderBundle: bundles.modelLoader, tmp,
        fixtures: path.join(ROOT, 'test', 'fixtures', 'models'), caseTimeoutMs: 8000,
      })],
    ];
    for (const [name, run] of areas) {
      const t = Date.now();
      try {
        await run();
      } catch (e) {
        tally.add('harness', name, { outcome: 'crash', detail: e instanceof Error ? e.stack ?? e.message : String(e) });
      }
      process.stdout.write(`fuzz: ${name} done in ${Math.round((Date.now() - t) / 1000)} s\n`);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  process.stdout.write(`\n${tally.table()}\n\n`);
  for (const n of notes) process.stdout.write(`note: ${n}\n`);
  for (const f of tally.failures) process.stdout.write(`FAIL ${f}\n`);
  const failing = tally.failingTotal();
  process.stdout.write(`fuzz: ${failing === 0 ? 'passed' : `${failing} failing case(s)`} in ${Math.round((Date.now() - started) / 1000)} s (seed ${seed})\n`);
  return failing === 0 ? 0 : 1;
}

main().then((code) => process.exit(code), (e: unknown) => {
  process.stderr.write(`fuzz: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exit(1);
});
