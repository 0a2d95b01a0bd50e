// Shared by the model tests: asserts that `fn` throws a ModelError with `code` whose message
// matches every fragment (the message is what the user reads, so it is part of the contract).
import assert from 'node:assert/strict';
import { ModelError } from '../../src/model/errors';

export function expectError(fn: () => unknown, code: string, ...fragments: RegExp[]): ModelError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof ModelError, `expected a ModelError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  for (const f of fragments) assert.match(caught.message, f);
  return caught;
}
