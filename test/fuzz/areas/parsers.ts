// Fuzz areas "failures JSONL" and "patch files": seeded damage to a failures file
// (parseFailuresJsonl) and to patch JSON (patchFromJson, readPatchFile). Each case must end with
// a result or reported errors within a time bound; every non-blank line must be either a failure
// or a numbered error ('lost' when a line vanishes, or an intact line's failure is missing), every
// accepted value must pass validation again and round-trip ('silent' otherwise: e.g. NaN deltas).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createFailure, formatFailuresJsonl, parseFailuresJsonl, validateFailure, type Failure } from '../../../src/failures/failure';
import { combinePatches, InvalidPatchError, patchFromJson, patchToJson, validatePatch, type Patch } from '../../../src/repair/patch';
import { readPatchFile } from '../../../src/store/patch-file';
import { caseSeed, errorLine, isTypedError, mutateBytes, mutateJson, Rng, type CaseOutcome, type Tally } from '../lib';

const AREA_JSONL = 'failures JSONL';
const AREA_PATCH = 'patch files';
const BOUND_MS = 2000;

const PIECES = ['def ', 'f(n):', '\n', '    ', 'return', ' n + 1', '"', '\\', '\t', '\u2028', '😀', '{', '}', 'import os', '\r\n', '\u0000'];

function text(r: Rng, min = 0): string {
  let s = '';
  for (let i = 0, n = min + r.int(8); i < n; i++) s += r.pick(PIECES);
  return s;
}

function jsonlCase(seed: number, i: number): { label: string; outcome: CaseOutcome } {
  const r = new Rng(caseSeed(seed, 'jsonl', i));
  const failures: Failure[] = Array.from({ length: 1 + r.int(10) }, (_, k) => createFailure({
    id: `f${k}`, prompt: text(r, 1), desired: text(r, 1) || 'x', languageId: 'python', source: 'imported',
    ...(r.chance(0.3) ? { rejected: text(r), group: `g${r.int(3)}` } : {}),
  }));
  const original = r.chance(0.3)
    ? failures.map((f) => JSON.stringify({ id: f.id, prompt: f.prompt, desired: f.desired })).join('\n') + '\n'
    : formatFailuresJsonl(failures);
  const lines = original.split('\n');
  let mutated: string;
  let how: string;
  const kind = r.int(3);
  if (kind === 0) {
    const m = mutateBytes(Buffer.from(original), r);
    mutated = m.bytes.toString('utf8');
    how = m.how;
  } else if (kind === 1) {
    const k = r.int(Math.max(1, lines.length - 1));
    const m = mutateJson(JSON.parse(lines[k]!), r);
    lines[k] = JSON.stringify(m.value) ?? '';
    mutated = lines.join('\n');
    how = `line ${k + 1}: ${m.how}`;
  } else {
    const k = r.int(lines.length);
    const ops = [() => { lines.splice(k, 0, lines[r.int(lines.length)]!); return 'a line repeated'; }, () => { lines[k] = text(r); return 'a line replaced by text'; },
      () => { lines.splice(k, 0, '', '   ', '\r'); return 'blank lines inserted'; }, () => { lines[k] = `${lines[k]}\r`; return 'CRLF'; },
      () => { lines[k] = '\ufeff' + lines[k]; return 'a BOM'; }, () => { lines[k] = 'x'.repeat(200_000); return 'a 200 kB line'; }];
    how = `line ${k + 1}: ${r.pick(ops)()}`;
    mutated = lines.join('\n');
  }
  const label = `seed ${seed} case ${i}: ${how}`;
  const started = Date.now();
  let parsed: ReturnType<typeof parseFailuresJsonl>;
  try {
    parsed = parseFailuresJsonl(mutated);
  } catch (e) {
    return { label, outcome: { outcome: isTypedError(e) ? 'typed' : 'crash', detail: errorLine(e) } };
  }
  if (Date.now() - started > BOUND_MS) return { label, outcome: { outcome: 'hang', detail: `took ${Date.now() - started} ms` } };
  const body = mutated.charCodeAt(0) === 0xfeff ? mutated.slice(1) : mutated;
  const nonBlank = body.split('\n').filter((l) => l.replace(/\r$/, '').trim() !== '').length;
  if (parsed.failures.length + parsed.errors.length !== nonBlank) {
    return { label, outcome: { outcome: 'lost', detail: `${nonBlank} lines, but ${parsed.failures.length} failures + ${parsed.errors.length} errors` } };
  }
  for (const f of parsed.failures) {
    try {
      validateFailure(f);
    } catch (e) {
      return { label, outcome: { outcome: 'silent', detail: `accepted a failure that does not validate: ${errorLine(e)}` } };
    }
  }
  const mutatedLines = body.split('\n');
  for (const f of failures) {
    const line = formatFailuresJsonl([f]).trimEnd();
    const at = mutatedLines.indexOf(line);
    if (at < 0) continue;
    const got = parsed.failures.find((x) => x.id === f.id);
    const reported = parsed.errors.some((e) => e.line === at + 1);
    if (!reported && (!got || JSON.stringify(got) !== JSON.stringify(f))) {
      return { label, outcome: { outcome: got ? 'silent' : 'lost', detail: `line ${at + 1} (${f.id}) was intact but ${got ? 'read differently' : 'not read'}` } };
    }
  }
  const again = parseFailuresJsonl(formatFailuresJsonl(parsed.failures));
  if (again.errors.length || JSON.stringify(again.failures) !== JSON.stringify(parsed.failures)) {
    return { label, outcome: { outcome: 'silent', detail: 'the accepted failures do not survive a write and read' } };
  }
  return { label, outcome: { outcome: parsed.errors.length ? 'typed' : 'result' } };
}

function basePatch(r: Rng, d: number): Patch {
  const layers = Array.from({ length: 1 + r.int(3) }, (_, l) => {
    const rows = [...new Set(Array.from({ length: 1 + r.int(4) }, () => r.int(40)))].sort((a, b) => a - b);
    return { layer: l * 2 + r.int(2), rows, deltas: Float32Array.from({ length: rows.length * d }, () => (r.float() - 0.5) * 0.1) };
  });
  return {
    id: `patch-${r.int(1e6)}`, modelFingerprint: 'ab'.repeat(32), method: r.pick(['star', 'mint', 'sgd'] as const), mode: r.pick(['iter', 'batch'] as const),
    options: { eta: 0.1 }, failureIds: ['f1', 'f2'], createdAt: '2024-05-06T07:08:09.000Z', layers,
    scores: { effectiveness: r.chance(0.5) ? r.float() : null, generalisation: null, specificity: 0.97 },
    stats: { ms: 12, peakRssMb: 100, neurons: 3, params: 3 * d },
  };
}

/** A value patchFromJson accepted must be a patch the rest of the program can use. */
function checkAccepted(p: Patch, d: number): string | undefined {
  try {
    validatePatch(p, d);
  } catch (e) {
    return `accepted a patch that does not validate: ${errorLine(e)}`;
  }
  for (const l of p.layers) {
    if (!l.deltas.every(Number.isFinite)) return `accepted non-finite deltas in layer ${l.layer}`;
    if (l.deltas.length !== l.rows.length * d) return `layer ${l.layer}: ${l.deltas.length} deltas for ${l.rows.length} rows × ${d}`;
  }
  try {
    combinePatches([p], d);
  } catch (e) {
    return `an accepted patch cannot be applied: ${errorLine(e)}`;
  }
  const again = patchFromJson(JSON.parse(JSON.stringify(patchToJson(p))), d);
  if (JSON.stringify(patchToJson(again)) !== JSON.stringify(patchToJson(p))) return 'the accepted patch does not survive a write and read';
  return undefined;
}

function patchCase(seed: number, i: number, tmp: string): { label: string; outcome: CaseOutcome } {
  const r = new Rng(caseSeed(seed, 'patch', i));
  const d = 2 + r.int(6);
  const json = patchToJson(basePatch(r, d));
  const kind = r.int(4);
  let input: unknown;
  let how: string;
  if (kind <= 1) {
    const m = mutateJson(json, r, kind === 0 ? (p) => p[0] === 'layers' : undefined);
    input = m.value;
    how = m.how;
  } else if (kind === 2) {
    // Deltas whose bytes spell NaN, infinities, denormals or a torn float.
    const l = r.int(json.layers.length);
    const bytes = Buffer.from(json.layers[l]!.deltas, 'base64');
    const at = 4 * r.int(bytes.length / 4);
    const pattern = r.pick([0x7fc00000, 0x7f800000, 0xff800000, 0x00000001, 0x7f7fffff, 0xffffffff]);
    bytes.writeUInt32LE(pattern, at);
    const cut = r.chance(0.2) ? bytes.subarray(0, bytes.length - 1 - r.int(3)) : bytes;
    input = { ...json, layers: json.layers.map((x, k) => (k === l ? { ...x, deltas: cut.toString('base64') } : x)) };
    how = `layer ${l}: float 0x${pattern.toString(16)} at byte ${at}${cut !== bytes ? ', cut' : ''}`;
  } else {
    const m = mutateBytes(Buffer.from(JSON.stringify(json)), r);
    input = m.bytes.toString('utf8');
    how = `text: ${m.how}`;
  }
  const label = `seed ${seed} case ${i}: ${how}`;
  const started = Date.now();
  let p: Patch;
  try {
    p = patchFromJson(input, d);
  } catch (e) {
    if (Date.now() - started > BOUND_MS) return { label, outcome: { outcome: 'hang', detail: `took ${Date.now() - started} ms` } };
    return { label, outcome: { outcome: e instanceof InvalidPatchError ? 'typed' : 'crash', detail: errorLine(e) } };
  }
  if (Date.now() - started > BOUND_MS) return { label, outcome: { outcome: 'hang', detail: `took ${Date.now() - started} ms` } };
  const problem = checkAccepted(p, d);
  if (problem) return { label, outcome: { outcome: 'silent', detail: problem } };
  // The same text as a file: readPatchFile must agree, naming the file when it refuses.
  const file = path.join(tmp, `patch-${i}.json`);
  fs.writeFileSync(file, typeof input === 'string' ? input : JSON.stringify(input) ?? '');
  try {
    readPatchFile(file, d);
  } catch (e) {
    return { label, outcome: { outcome: 'silent', detail: `patchFromJson accepted it but readPatchFile refused: ${errorLine(e)}` } };
  } finally {
    fs.rmSync(file, { force: true });
  }
  return { label, outcome: { outcome: 'result' } };
}

function patchFileCase(seed: number, i: number, tmp: string): { label: string; outcome: CaseOutcome } {
  const r = new Rng(caseSeed(seed, 'patch-file', i));
  const d = 4;
  const bytes = Buffer.from(JSON.stringify(patchToJson(basePatch(r, d))));
  const m = r.chance(0.2) ? { bytes: Buffer.alloc(r.int(3), 0x20), how: 'blank' } : mutateBytes(bytes, r);
  const file = path.join(tmp, `patch-file-${i}.json`);
  fs.writeFileSync(file, m.bytes);
  const label = `seed ${seed} file case ${i}: ${m.how}`;
  try {
    const p = readPatchFile(file, d);
    const problem = checkAccepted(p, d);
    return { label, outcome: problem ? { outcome: 'silent', detail: problem } : { outcome: 'result' } };
  } catch (e) {
    const named = e instanceof Error && e.message.includes(file);
    if (e instanceof Error && e.name === 'PatchFileError' && named) return { label, outcome: { outcome: 'typed' } };
    return { label, outcome: { outcome: 'crash', detail: `not a PatchFileError naming the file: ${errorLine(e)}` } };
  } finally {
    fs.rmSync(file, { force: true });
  }
}

export interface ParserAreaOptions { tally: Tally; seed: number; jsonlSeconds: number; patchSeconds: number; tmp: string }

export function fuzzParsers(o: ParserAreaOptions): void {
  let end = Date.now() + o.jsonlSeconds * 1000;
  for (let i = 0; Date.now() < end; i++) {
    const { label, outcome } = jsonlCase(o.seed, i);
    o.tally.add(AREA_JSONL, label, outcome);
  }
  end = Date.now() + o.patchSeconds * 1000;
  for (let i = 0; Date.now() < end; i++) {
    const { label, outcome } = i % 4 === 3 ? patchFileCase(o.seed, i, o.tmp) : patchCase(o.seed, i, o.tmp);
    o.tally.add(AREA_PATCH, label, outcome);
  }
}
