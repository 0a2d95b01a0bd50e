// The Output channel's text (issue 18): onnxruntime colours its warnings with ANSI escape codes,
// which VS Code's Output view prints raw; every line is cleaned before it is appended.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { logLine, stripAnsi } from '../../src/util/log-text';

test('strips the colour codes onnxruntime writes, and other terminal escapes', () => {
  const ort = '\u001b[1;31m2026-01-02 10:11:12.345 [W:onnxruntime:, session_state.cc:1166 VerifyEachNodeIsAssignedToAnEp] Some nodes were not assigned\u001b[m';
  assert.equal(stripAnsi(ort), '2026-01-02 10:11:12.345 [W:onnxruntime:, session_state.cc:1166 VerifyEachNodeIsAssignedToAnEp] Some nodes were not assigned');
  assert.equal(stripAnsi('\u001b[0;93mwarning\u001b[0m text'), 'warning text');
  assert.equal(stripAnsi('\u009b31mC1 CSI\u009b0m'), 'C1 CSI');
  assert.equal(stripAnsi('\u001b]8;;https://x\u0007link\u001b]8;;\u0007'), 'link');
  assert.equal(stripAnsi('progress\r50%\rdone\u0008!'), 'progress 50% done!');
  assert.equal(stripAnsi('tab\tkept'), 'tab\tkept');
  assert.equal(stripAnsi('plain [W:onnxruntime] text'), 'plain [W:onnxruntime] text');
});

test('a log line is stamped and clean', () => {
  const line = logLine('[worker stderr] \u001b[1;31mboom\u001b[m', new Date('2026-01-02T10:11:12.345Z'));
  assert.equal(line, '10:11:12.345 [worker stderr] boom');
});
