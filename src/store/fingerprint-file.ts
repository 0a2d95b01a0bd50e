// File naming for stores keyed by model fingerprint: one file per model, so the
// failures and patches of one model can never be applied to another.
import * as path from 'node:path';

/** The fingerprint cannot be used in a file name (it should be a sha256 hex digest). */
export class InvalidFingerprintError extends Error {
  constructor(readonly fingerprint: string) {
    super(`model fingerprint ${JSON.stringify(fingerprint)} is not usable as a store key: ` +
      'expected 1-128 letters, digits, "-" or "_" (a sha256 hex digest)');
    this.name = 'InvalidFingerprintError';
  }
}

/** `<dir>/<kind>-<fingerprint>.json`, after checking the fingerprint is file-name safe. */
export function storeFileFor(dir: string, kind: string, fingerprint: string): string {
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(fingerprint)) throw new InvalidFingerprintError(fingerprint);
  return path.join(dir, `${kind}-${fingerprint}.json`);
}
