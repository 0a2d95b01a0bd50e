// Tests for src/model/files.ts and its callers: a model folder whose config.json, tokenizer.json,
// tokenizer_config.json, shard index or weight file is a FIFO, a link to /dev/zero, or far too
// large gets a typed error at once — never a hang or an endless read (issue 17, defects 5 and 6).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, symlinkSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { CONFIG_JSON_LIMIT, TOKENIZER_JSON_LIMIT, loadConfig, loadModelFolder, loadTokenizer, readRegularFile } from '../../src/model/index';
import { expectError } from '../helpers/expect-model-error';
import { loadInChild } from '../helpers/load-in-child';

const LLAMA = join(__dirname, '..', 'fixtures', 'models', 'llama');
const tmp = mkdtempSync(join(tmpdir(), 'model-files-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
let counter = 0;
const posix = process.platform !== 'win32';

/** A copy of the llama fixture with `name` replaced by a FIFO. */
function withFifo(name: string): string {
  const dir = join(tmp, `fifo${counter++}`);
  cpSync(LLAMA, dir, { recursive: true });
  rmSync(join(dir, name), { force: true });
  execFileSync('mkfifo', [join(dir, name)]);
  return dir;
}

/** A copy of the llama fixture with `name` a link to /dev/zero. */
function withDevZero(name: string): string {
  const dir = join(tmp, `zero${counter++}`);
  cpSync(LLAMA, dir, { recursive: true });
  unlinkSync(join(dir, name));
  symlinkSync('/dev/zero', join(dir, name));
  return dir;
}

function assertRefused(r: ReturnType<typeof loadInChild>, code: string, ...fragments: RegExp[]): void {
  assert.equal(r.timedOut, false, `hung: ${r.message}`);
  assert.equal(r.ok, false, 'expected a typed error');
  assert.equal(r.code, code, r.message);
  for (const f of fragments) assert.match(r.message ?? '', f);
  assert.ok(r.ms < 5000, `took ${r.ms} ms`);
}

describe('non-regular files in a model folder are refused before they are read', { skip: !posix && 'needs mkfifo and /dev/zero' }, () => {
  test('config.json as a FIFO', () => {
    assertRefused(loadInChild('folder', withFifo('config.json'), 10_000), 'config-invalid', /config\.json is a named pipe \(FIFO\), not a regular file/, /replace it/);
  });

  test('model.safetensors as a FIFO', () => {
    assertRefused(loadInChild('folder', withFifo('model.safetensors'), 10_000), 'weights-missing', /model\.safetensors is a named pipe/);
  });

  test('model.safetensors as a FIFO while fingerprinting', () => {
    assertRefused(loadInChild('fingerprint', withFifo('model.safetensors'), 10_000), 'weights-missing', /named pipe/);
  });

  test('tokenizer.json and tokenizer_config.json as FIFOs', () => {
    assertRefused(loadInChild('tokenizer', withFifo('tokenizer.json'), 10_000), 'tokenizer-invalid', /tokenizer\.json is a named pipe/);
    assertRefused(loadInChild('tokenizer', withFifo('tokenizer_config.json'), 10_000), 'tokenizer-invalid', /tokenizer_config\.json is a named pipe/);
  });

  test('model.safetensors.index.json as a FIFO', () => {
    assertRefused(loadInChild('folder', withFifo('model.safetensors.index.json'), 10_000), 'safetensors-invalid', /index\.json is a named pipe/);
  });

  test('config.json and tokenizer.json linked to /dev/zero', () => {
    assertRefused(loadInChild('config', withDevZero('config.json'), 10_000), 'config-invalid', /is a character device/);
    assertRefused(loadInChild('tokenizer', withDevZero('tokenizer.json'), 10_000), 'tokenizer-invalid', /is a character device/);
  });
});

describe('size limits on JSON files', () => {
  test('a config.json over 1 MiB is refused by its size, naming the limit', () => {
    const dir = join(tmp, `big${counter++}`);
    cpSync(LLAMA, dir, { recursive: true });
    truncateSync(join(dir, 'config.json'), CONFIG_JSON_LIMIT + 1);
    expectError(() => loadConfig(dir), 'config-invalid', /larger than 1048576 bytes/, /docs\/limits\.md/, /restore it/);
    expectError(() => loadModelFolder(dir), 'config-invalid', /larger than/);
  });

  test('a tokenizer.json over 64 MiB is refused by its size (a sparse file: nothing is read)', () => {
    const dir = join(tmp, `big${counter++}`);
    cpSync(LLAMA, dir, { recursive: true });
    truncateSync(join(dir, 'tokenizer.json'), TOKENIZER_JSON_LIMIT + 1);
    expectError(() => loadTokenizer(dir), 'tokenizer-invalid', /larger than 67108864 bytes/);
  });

  test('files at the limit still load; a missing optional tokenizer_config.json is fine', () => {
    const dir = join(tmp, `ok${counter++}`);
    cpSync(LLAMA, dir, { recursive: true });
    rmSync(join(dir, 'tokenizer_config.json'), { force: true });
    const text = JSON.stringify(JSON.parse(readRegularFile(join(dir, 'config.json'), 'config.json', CONFIG_JSON_LIMIT, 'config-invalid').toString('utf8')));
    writeFileSync(join(dir, 'config.json'), text.padEnd(CONFIG_JSON_LIMIT, ' '));
    assert.equal(loadModelFolder(dir).config.architecture, 'LlamaForCausalLM');
  });

  test('readRegularFile reads to the end of a file whose size says 0 (/proc), and stops past the limit', { skip: process.platform !== 'linux' && 'needs /proc' }, () => {
    const status = readRegularFile('/proc/self/status', 'a status file', 1 << 20, 'config-invalid').toString('utf8');
    assert.match(status, /^Name:/m);
    expectError(() => readRegularFile('/proc/self/status', 'a status file', 10, 'config-invalid'), 'config-invalid', /larger than 10 bytes/);
  });
});
