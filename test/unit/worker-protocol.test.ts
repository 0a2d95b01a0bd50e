// The worker protocol's runtime validation (both directions, every method's params and the
// results the client checks), error transport, and the completion stop rules.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  parseHostMessage, parseParams, parseResult, parseWorkerMessage, ProtocolError, toWireError, type ModelInfo,
} from '../../src/worker/protocol';
import { completionEnd, cursorLineIndent, finishCompletion } from '../../src/runtime/stop-rules';
import { RepairError } from '../../src/repair/teacher';
import { MAX_PATCH_PARAMS, base64Chars } from '../../src/repair/patch';

const throwsAt = (f: () => unknown, path: RegExp) => assert.throws(f, (e: unknown) => e instanceof ProtocolError && path.test(e.message));

test('a well-formed request is read with only its known fields', () => {
  const m = parseHostMessage({ type: 'request', id: 3, method: 'complete', params: { prompt: 'x = ', maxTokens: 8, stop: ['\n'], stopRule: 'line', temperature: 0, extra: 1 } });
  assert.deepEqual(m, { type: 'request', id: 3, method: 'complete', params: { prompt: 'x = ', maxTokens: 8, stop: ['\n'], stopRule: 'line', temperature: 0 } });
  assert.deepEqual(parseHostMessage({ type: 'cancel', id: 3 }), { type: 'cancel', id: 3 });
});

test('bad requests are refused with the path of the first bad field', () => {
  throwsAt(() => parseHostMessage(null), /^message: expected an object/);
  throwsAt(() => parseHostMessage({ type: 'hello' }), /message\.type: expected request or cancel/);
  throwsAt(() => parseHostMessage({ type: 'request', id: 0, method: 'load', params: {} }), /message\.id: expected an integer ≥ 1/);
  throwsAt(() => parseHostMessage({ type: 'request', id: 1, method: 'train', params: {} }), /message\.method: expected one of load, complete/);
  throwsAt(() => parseHostMessage({ type: 'request', id: 1, method: 'complete', params: { prompt: '', maxTokens: 8, stop: [], stopRule: 'line', temperature: 0 } }), /complete\.params\.prompt: expected a non-empty string/);
  throwsAt(() => parseParams('complete', { prompt: 'a', maxTokens: 0, stop: [], stopRule: 'line', temperature: 0 }), /complete\.params\.maxTokens/);
  throwsAt(() => parseParams('complete', { prompt: 'a', maxTokens: 4, stop: [], stopRule: 'paragraph', temperature: 0 }), /stopRule: expected one of line, block, none/);
  throwsAt(() => parseParams('load', { modelDir: '', provider: 'tpu', threads: 0 }), /load\.params\.provider/);
  throwsAt(() => parseParams('load', { modelDir: '', provider: 'cpu', threads: -1 }), /load\.params\.threads/);
  const repair = { method: 'star', mode: 'batch', select: 'global', epochs: 5, eta: null, preserveRows: null, failures: [{ id: 'a', prompt: 'p', desired: 'd' }], heldout: [], regression: [] };
  assert.equal(parseParams('repair', repair).eta, null);
  throwsAt(() => parseParams('repair', { ...repair, failures: [] }), /repair\.params\.failures: expected at least one failure/);
  throwsAt(() => parseParams('repair', { ...repair, eta: 0 }), /repair\.params\.eta/);
  throwsAt(() => parseParams('repair', { ...repair, method: 'rome' }), /repair\.params\.method: expected one of star, mint, sgd/);
  throwsAt(() => parseParams('repair', { ...repair, failures: [{ id: 'a', prompt: 'p' }] }), /repair\.params\.failures\[0\]\.desired/);
  throwsAt(() => parseParams('setPatches', { patches: [{ id: 'p', modelFingerprint: 'f', layers: [{ layer: 0, rows: [1], deltas: 7 }] }] }), /patches\[0\]\.layers\[0\]\.deltas: expected a string/);
  throwsAt(() => parseParams('neuronDetails', { layer: 0, neuron: 1, delta: [1, Number.NaN] }), /delta\[1\]: expected a finite number/);
  throwsAt(() => parseParams('neuronDetails', { layer: 0, neuron: 1, delta: [1, 1e308] }), /delta\[1\]: expected a number in/);
});

const info: ModelInfo = {
  name: 'm', dir: '/m', architecture: 'LlamaForCausalLM', layers: 2, neurons: 48, hidden: 32, vocab: 288, context: 128,
  params: 1000, dtype: 'F32', executionProvider: 'cpu', fallbacks: [{ provider: 'cuda', reason: 'not installed' }], fingerprint: 'abc',
};

test('worker messages and results are checked on the host side', () => {
  assert.deepEqual(parseWorkerMessage({ type: 'ready', pid: 12, protocol: 1 }), { type: 'ready', pid: 12, protocol: 1 });
  const ok = parseWorkerMessage({ type: 'response', id: 4, ok: true, result: info });
  assert.equal(ok.type === 'response' && ok.ok && ok.result, info);
  const err = parseWorkerMessage({ type: 'response', id: 4, ok: false, error: { name: 'RepairError', code: 'already-correct', message: 'nothing to do' } });
  assert.deepEqual(err, { type: 'response', id: 4, ok: false, error: { name: 'RepairError', code: 'already-correct', message: 'nothing to do' } });
  throwsAt(() => parseWorkerMessage({ type: 'response', id: 4, ok: false, error: { message: 'x' } }), /message\.error\.name/);
  throwsAt(() => parseWorkerMessage({ type: 'progress', id: 4, progress: { method: 'star', phase: 'step', epoch: 1, epochs: 2, loss: 1, positionsFixed: 3, positionsTotal: 2 } }), /positionsFixed: expected at most positionsTotal/);
  assert.deepEqual(parseResult('load', { ...info, extra: true }), info);
  throwsAt(() => parseResult('load', { ...info, layers: 0 }), /load\.result\.layers/);
  throwsAt(() => parseResult('predict', { prediction: 'x', desiredTokens: ['a', 'b'], correct: [true], pDesired: [0.5, 0.5], allCorrect: false }), /differ in length/);
  throwsAt(() => parseResult('neuronDetails', { deltaNorm: -1, up: [], down: [] }), /deltaNorm/);
});

test('the load reply says which weights the model runs on: a format in use and its bytes, both or neither', () => {
  const int8: ModelInfo = { ...info, fim: null, weights: 'int8', weightBytes: 570_000_000 };
  assert.deepEqual(parseResult('load', { ...int8, extra: 1 }), int8);
  for (const weights of ['fp32', 'int4'] as const) assert.equal(parseResult('load', { ...int8, weights }).weights, weights);
  // A worker older than the fields: still a valid reply, and nothing is made up for them.
  const older = parseResult('load', info);
  assert.equal('weights' in older, false);
  assert.equal('weightBytes' in older, false);
  // 'auto' is a setting the worker resolves, never a format in use.
  throwsAt(() => parseResult('load', { ...int8, weights: 'auto' }), /^load\.result\.weights: expected one of fp32, int8, int4, got "auto"$/);
  throwsAt(() => parseResult('load', { ...int8, weights: 'fp16' }), /^load\.result\.weights: expected one of fp32, int8, int4, got "fp16"$/);
  throwsAt(() => parseResult('load', { ...int8, weights: 8 }), /^load\.result\.weights: expected one of/);
  throwsAt(() => parseResult('load', { ...int8, weightBytes: '570000000' }), /^load\.result\.weightBytes: expected an integer ≥ 1/);
  throwsAt(() => parseResult('load', { ...int8, weightBytes: 0 }), /^load\.result\.weightBytes: expected an integer ≥ 1, got 0$/);
  throwsAt(() => parseResult('load', { ...int8, weightBytes: 1.5 }), /^load\.result\.weightBytes: expected an integer ≥ 1, got 1\.5$/);
  throwsAt(() => parseResult('load', { ...int8, weightBytes: null }), /^load\.result\.weightBytes: expected an integer ≥ 1, got null$/);
  // One without the other is a broken reply, not an older one.
  throwsAt(() => parseResult('load', { ...info, weights: 'int8' }), /^load\.result\.weightBytes: expected the bytes of the weights beside weights, got nothing$/);
  throwsAt(() => parseResult('load', { ...info, weightBytes: 570_000_000 }), /^load\.result\.weights: expected the weight format beside weightBytes, got nothing$/);
});

test('a patch travels whole up to MAX_PATCH_PARAMS values in one layer, and no further', () => {
  // One dense layer of Qwen2.5-Coder-0.5B (4864 × 896 values, 5.8 M base64 characters) was refused at 4 M.
  const patch = (chars: number) => ({ id: 'p', modelFingerprint: 'f', layers: [{ layer: 0, rows: [0], deltas: 'A'.repeat(chars) }] });
  assert.equal(parseParams('setPatches', { patches: [patch(base64Chars(4864 * 896))] }).patches[0]!.layers[0]!.deltas.length, base64Chars(4864 * 896));
  assert.doesNotThrow(() => parseParams('setPatches', { patches: [patch(base64Chars(MAX_PATCH_PARAMS))] }));
  throwsAt(() => parseParams('setPatches', { patches: [patch(base64Chars(MAX_PATCH_PARAMS) + 4)] }), /patches\[0\]\.layers\[0\]\.deltas/);
});

test('errors keep their typed code across the process boundary', () => {
  assert.deepEqual(toWireError(new RepairError('already-correct', 'the model already produces it')), { name: 'RepairError', code: 'already-correct', message: 'the model already produces it' });
  assert.deepEqual(toWireError(new TypeError('bad')), { name: 'TypeError', code: 'TypeError', message: 'bad' });
  assert.deepEqual(toWireError('boom'), { name: 'Error', code: 'Error', message: 'boom' });
});

test('stop rule "line" ends at the first newline', () => {
  assert.equal(completionEnd(' n + 1', 'line', ''), -1);
  assert.equal(completionEnd(' n + 1\n    x', 'line', ''), 6);
  assert.equal(finishCompletion(' n + 1  \ndef g', 'line', ''), ' n + 1');
  assert.equal(finishCompletion('\nfoo', 'line', ''), '');
});

test('stop rule "block" ends at a blank line or a dedent below the cursor line', () => {
  const prompt = 'def f(xs):\n    for x in xs:';
  const indent = cursorLineIndent(prompt);
  assert.equal(indent, '    ');
  const body = '\n        print(x)\n        total += x\n    return total\n\ndef g():';
  // The return line is at the cursor line's indentation: still the block; the blank line ends it.
  assert.equal(finishCompletion(body, 'block', indent), '\n        print(x)\n        total += x\n    return total');
  // A dedent below the cursor line's indentation ends it.
  assert.equal(finishCompletion('\n        y()\nprint(1)\n', 'block', indent), '\n        y()');
  // An incomplete whitespace-only line decides nothing yet.
  assert.equal(completionEnd('\n        y()\n  ', 'block', indent), -1);
  assert.equal(completionEnd('\n        y()\n  z', 'block', indent), 12);
  assert.equal(completionEnd('abc', 'none', ''), -1);
  assert.equal(cursorLineIndent('x = 1\n\t  y'), '\t  ');
});
