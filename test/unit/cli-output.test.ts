// The CLI's output through a pipe (issue 17, defect 2): process.exit used to run before stdout and
// stderr had drained, so a slow reader got only the first 64 KiB (the pipe's buffer) and exit code 0.
// Real child processes write into `(sleep 1; wc -c)`; every byte must arrive, with the right code.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

const root = join(__dirname, '..', '..');
const cli = join(root, 'dist', 'cli.js');
const tmp = mkdtempSync(join(tmpdir(), 'star-cli-out-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const posix = process.platform !== 'win32';

before(() => {
  execFileSync(process.execPath, [join(root, 'esbuild.mjs')], { cwd: root });
});

/** Runs a bash command line; `$NODE` and `$CLI` are set. */
function sh(line: string): { stdout: string; stderr: string; status: number | null } {
  const r = spawnSync('bash', ['-c', line], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, NODE: process.execPath, CLI: cli } });
  assert.equal(r.error, undefined, String(r.error));
  return { stdout: r.stdout, stderr: r.stderr, status: r.status };
}

describe('output through a pipe to a slow reader is complete', { skip: !posix && 'needs bash' }, () => {
  test('stdout: logits --top 1024 --json (about 80 KB) arrives whole, exit code 0', () => {
    const file = join(tmp, 'logits.json');
    assert.equal(sh(`"$NODE" "$CLI" logits --text 'import os' --top 1024 --json > '${file}'`).status, 0);
    const whole = readFileSync(file);
    assert.ok(whole.length > 65_536, `the test needs more than a pipe buffer of output, got ${whole.length} bytes`);
    assert.equal(JSON.parse(whole.toString('utf8')).top.length, 1024);
    const r = sh(`"$NODE" "$CLI" logits --text 'import os' --top 1024 --json | (sleep 1; wc -c); echo "rc=\${PIPESTATUS[0]}"`);
    assert.deepEqual(r.stdout.trim().split(/\s+/), [String(whole.length), 'rc=0'], r.stderr);
  });

  test('stderr: a 120 KB error message arrives whole, ending in its last line, exit code 2', () => {
    const name = 'x'.repeat(120_000);
    const r = sh(`"$NODE" "$CLI" ${name} 2>&1 >/dev/null | (sleep 1; cat > '${join(tmp, 'err.txt')}'); echo "rc=\${PIPESTATUS[0]}"`);
    assert.equal(r.stdout.trim(), 'rc=2', r.stderr);
    const err = readFileSync(join(tmp, 'err.txt'), 'utf8');
    assert.ok(err.startsWith(`star-repair: unknown command '${name}'`), `${err.length} bytes arrived`);
    assert.match(err, /Without <modelDir> the embedded model \(models\/tiny-coder\) is used\.\n$/);
  });

  test('a reader that leaves early (head) ends the CLI quietly, without an EPIPE stack trace', () => {
    const r = sh(`"$NODE" "$CLI" logits --text 'import os' --top 1024 --json 2>'${join(tmp, 'epipe.txt')}' | head -c 100 > /dev/null; echo "rc=\${PIPESTATUS[0]}"`);
    assert.match(r.stdout, /rc=\d+/);
    assert.doesNotMatch(readFileSync(join(tmp, 'epipe.txt'), 'utf8'), /EPIPE|at .*\(node:/);
  });
});
