// The fuzz suite's shared parts: outcome classes and their tally, a seeded generator with the
// helpers the areas need, and mutators for bytes, text lines and JSON trees. Every case ends in
// one outcome: result, typed error, or one of the four failures (crash, hang, silent, lost).
import { seededRandom } from '../../src/util/random';

export const OUTCOMES = ['result', 'typed', 'crash', 'hang', 'silent', 'lost'] as const;
export type Outcome = typeof OUTCOMES[number];
export const FAILING: readonly Outcome[] = ['crash', 'hang', 'silent', 'lost'];

export interface CaseOutcome {
  outcome: Outcome;
  /** What happened, for the report of a failing case. */
  detail?: string;
}

/** Counts per area and outcome, and the first few failing cases of each area. */
export class Tally {
  readonly counts = new Map<string, Record<Outcome, number>>();
  readonly failures: string[] = [];

  add(area: string, label: string, o: CaseOutcome): void {
    let row = this.counts.get(area);
    if (!row) {
      row = { result: 0, typed: 0, crash: 0, hang: 0, silent: 0, lost: 0 };
      this.counts.set(area, row);
    }
    row[o.outcome]++;
    if (FAILING.includes(o.outcome) && this.failures.filter((f) => f.startsWith(`[${area}]`)).length < 12) {
      this.failures.push(`[${area}] ${o.outcome}: ${label}${o.detail ? ` — ${o.detail.slice(0, 400)}` : ''}`);
    }
  }

  failingTotal(): number {
    let n = 0;
    for (const row of this.counts.values()) for (const o of FAILING) n += row[o];
    return n;
  }

  table(): string {
    const head = ['area', 'cases', ...OUTCOMES.map((o) => (o === 'typed' ? 'typed error' : o))];
    const rows = [...this.counts.entries()].map(([area, r]) => [area, String(OUTCOMES.reduce((s, o) => s + r[o], 0)), ...OUTCOMES.map((o) => String(r[o]))]);
    const total = OUTCOMES.map((o) => [...this.counts.values()].reduce((s, r) => s + r[o], 0));
    rows.push(['total', String(total.reduce((a, b) => a + b, 0)), ...total.map(String)]);
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
    return [line(head), `|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`, ...rows.map(line)].join('\n');
  }
}

/** A seeded generator with helpers. */
export class Rng {
  private readonly next: () => number;
  constructor(readonly seed: number) {
    this.next = seededRandom(seed);
  }
  float(): number {
    return this.next();
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
}

/** The seed of case `i` of an area: cases are reproducible one by one. */
export function caseSeed(base: number, area: string, i: number): number {
  let h = (base ^ 0x9e3779b9) >>> 0;
  for (const ch of `${area}#${i}`) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  return h;
}

const SPECIAL_BYTES = [0x00, 0xff, 0x22, 0x7b, 0x7d, 0x5b, 0x5d, 0x2c, 0x3a, 0x0a, 0x5c, 0x80, 0xc3, 0x30, 0x39, 0x2d, 0x65];

/** One random byte-level damage: a flipped bit, a replaced, inserted or deleted run, a truncation. */
export function mutateBytes(input: Uint8Array, r: Rng, protectPrefix = 0): { bytes: Buffer; how: string } {
  const b = Buffer.from(input);
  const at = protectPrefix + r.int(Math.max(1, b.length - protectPrefix));
  switch (r.int(8)) {
    case 0: {
      if (b.length === 0) return { bytes: b, how: 'nothing to flip' };
      const bit = r.int(8);
      b[Math.min(at, b.length - 1)]! ^= 1 << bit;
      return { bytes: b, how: `flip bit ${bit} at ${at}` };
    }
    case 1: {
      if (b.length === 0) return { bytes: b, how: 'nothing to replace' };
      const v = r.chance(0.5) ? r.pick(SPECIAL_BYTES) : r.int(256);
      b[Math.min(at, b.length - 1)] = v;
      return { bytes: b, how: `byte ${at} = 0x${v.toString(16)}` };
    }
    case 2: {
      const n = 1 + r.int(16);
      const ins = Buffer.from(Array.from({ length: n }, () => (r.chance(0.5) ? r.pick(SPECIAL_BYTES) : r.int(256))));
      return { bytes: Buffer.concat([b.subarray(0, at), ins, b.subarray(at)]), how: `insert ${n} bytes at ${at}` };
    }
    case 3: {
      const n = 1 + r.int(64);
      return { bytes: Buffer.concat([b.subarray(0, at), b.subarray(at + n)]), how: `delete ${n} bytes at ${at}` };
    }
    case 4:
      return { bytes: b.subarray(0, at), how: `truncate to ${at} bytes` };
    case 5: {
      const n = 1 + r.int(256);
      return { bytes: Buffer.concat([b.subarray(0, at + n), b.subarray(at)]), how: `duplicate ${n} bytes at ${at}` };
    }
    case 6: {
      const n = 1 + r.int(8);
      for (let i = 0; i < n && b.length > 0; i++) b[protectPrefix + r.int(Math.max(1, b.length - protectPrefix))] = r.int(256);
      return { bytes: b, how: `${n} random bytes` };
    }
    default:
      return { bytes: Buffer.alloc(r.pick([0, 1, 2, 8])), how: 'replaced by a few zero bytes' };
  }
}

/** Values that tend to break parsers and validators. */
export function hostileValue(r: Rng): unknown {
  const choices: (() => unknown)[] = [
    () => 0, () => -1, () => 1e9, () => 1e308, () => -1e308, () => 2 ** 53, () => 2 ** 31, () => 0.5, () => -0.0,
    () => 1e-320, () => Number.MAX_SAFE_INTEGER + 2, () => '', () => 'x', () => '32', () => '\u0000', () => '\ud800',
    () => 'a'.repeat(1 + r.int(100_000)), () => null, () => true, () => false, () => [], () => {},
    () => [1, 2, 3], () => ({ a: 1 }), () => [[[[[[[[[[[]]]]]]]]]]], () => '../../../../etc/passwd', () => '/dev/zero',
    () => 'NaN', () => 'Infinity', () => '(a+)+$', () => Array.from({ length: 1 + r.int(5000) }, (_, i) => i),
    () => { let v: unknown = 1; for (let i = 0; i < 200 + r.int(3000); i++) v = [v]; return v; },
    () => ({ __proto__: { polluted: true }, constructor: { prototype: { x: 1 } } }),
  ];
  return r.pick(choices)();
}

type Json = unknown;
type PathStep = string | number;

function paths(v: Json, prefix: PathStep[] = [], out: PathStep[][] = [], depth = 0): PathStep[][] {
  out.push(prefix);
  if (depth > 12 || out.length > 5000) return out;
  if (Array.isArray(v)) {
    const step = Math.max(1, Math.floor(v.length / 50));
    for (let i = 0; i < v.length; i += step) paths(v[i], [...prefix, i], out, depth + 1);
  } else if (typeof v === 'object' && v !== null) {
    for (const k of Object.keys(v)) paths((v as Record<string, Json>)[k], [...prefix, k], out, depth + 1);
  }
  return out;
}

function getAt(v: Json, path: PathStep[]): Json {
  let cur = v;
  for (const s of path) cur = (cur as Record<string | number, Json>)[s];
  return cur;
}

/** One structural change of a JSON tree (the input is not modified): a value replaced, removed, duplicated or re-typed. */
export function mutateJson(value: Json, r: Rng, focus?: (path: PathStep[]) => boolean): { value: Json; how: string } {
  const copy = structuredClone(value);
  let all = paths(copy);
  if (focus) {
    const focused = all.filter(focus);
    if (focused.length > 0 && r.chance(0.8)) all = focused;
  }
  const path = r.pick(all);
  const where = path.length ? path.join('.') : '(root)';
  if (path.length === 0) return { value: hostileValue(r), how: 'root replaced' };
  const parent = getAt(copy, path.slice(0, -1)) as Record<string | number, Json>;
  const key = path[path.length - 1]!;
  const old = parent[key];
  switch (r.int(7)) {
    case 0:
    case 1:
    case 2: {
      const v = hostileValue(r);
      parent[key] = v;
      return { value: copy, how: `${where} = ${describeValue(v)}` };
    }
    case 3:
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete parent[key];
      return { value: copy, how: `${where} removed` };
    case 4:
      if (typeof old === 'number') {
        const v = r.pick([old + 1, old - 1, old * 2, -old, old * 1e6, Math.floor(old / 2), old + 0.5]);
        parent[key] = v;
        return { value: copy, how: `${where}: ${old} -> ${v}` };
      }
      if (typeof old === 'string') {
        const v = r.pick([old + old, old.slice(1), old.toUpperCase(), `${old}\u0000`, String(Number(old) + 1), old.split('').reverse().join('')]);
        parent[key] = v;
        return { value: copy, how: `${where}: string changed` };
      }
      parent[key] = hostileValue(r);
      return { value: copy, how: `${where} replaced` };
    case 5:
      if (Array.isArray(old) && old.length > 0) {
        const i = r.int(old.length);
        old.splice(i, 0, structuredClone(old[i]));
        return { value: copy, how: `${where}[${i}] duplicated` };
      }
      if (typeof old === 'object' && old !== null) {
        (old as Record<string, Json>)[`extra${r.int(100)}`] = hostileValue(r);
        return { value: copy, how: `${where}: unknown key added` };
      }
      parent[key] = [old];
      return { value: copy, how: `${where} wrapped in an array` };
    default:
      parent[key] = typeof old === 'number' ? String(old) : typeof old === 'string' ? Number(old) || 7 : typeof old === 'boolean' ? Number(old) : null;
      return { value: copy, how: `${where}: type changed` };
  }
}

export function describeValue(v: unknown): string {
  if (typeof v === 'string') return v.length > 30 ? `a string of ${v.length}` : JSON.stringify(v);
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === 'object' && v !== null) return 'an object';
  return String(v);
}

/** True when `e` is an error of a class the project defines (typed), not a bare Error or a JS engine error. */
export function isTypedError(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  return !['Error', 'TypeError', 'RangeError', 'SyntaxError', 'ReferenceError', 'EvalError', 'URIError', 'AggregateError'].includes(e.name);
}

export function errorLine(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}`.slice(0, 300) : String(e);
}

/** Runs cases until the area's time is up: `runCase(i)` for i = 0, 1, 2, … */
export async function forDuration(seconds: number, runCase: (i: number) => Promise<void> | void, maxCases = Infinity): Promise<number> {
  const end = Date.now() + seconds * 1000;
  let i = 0;
  while (Date.now() < end && i < maxCases) {
    await runCase(i);
    i++;
  }
  return i;
}
