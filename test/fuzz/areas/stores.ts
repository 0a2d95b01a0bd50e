// Fuzz area "stores": (1) damaged store files — byte and line damage, leftover temp and lock files —
// opened by FailureStore / PatchStore: every record whose line survived intact must be recovered
// unchanged ('lost' otherwise), reopening must be clean with no second backup, and the store must
// take a new record; (2) writer processes SIGKILLed at random moments while they add, update and
// remove records in one store: every acknowledged change must be on disk ('lost' for a missing
// record, 'silent' for a removed one that came back or a status change undone).
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FailureStore } from '../../../src/failures/store';
import { PatchStore } from '../../../src/repair/patch-store';
import type { Patch } from '../../../src/repair/patch';
import { UnsupportedStoreVersionError } from '../../../src/store/document';
import { caseSeed, errorLine, isTypedError, mutateBytes, Rng, type CaseOutcome, type Tally } from '../lib';

const FP = '5'.repeat(64);
const AREA_FILES = 'stores: damaged files';
const AREA_KILL = 'stores: SIGKILLed writers';

function patch(id: string, r: Rng): Patch {
  const rows = [r.int(3), 3 + r.int(3)];
  return {
    id, modelFingerprint: FP, method: r.pick(['star', 'mint', 'sgd'] as const), mode: 'batch', options: { eta: r.float() }, failureIds: [`f-${id}`],
    createdAt: new Date(1_700_000_000_000 + r.int(1e9)).toISOString(),
    layers: [{ layer: r.int(2), rows, deltas: Float32Array.from({ length: rows.length * 2 }, () => r.float() - 0.5) }],
    scores: { effectiveness: r.chance(0.5) ? r.float() : null, generalisation: null, specificity: null },
    stats: { ms: 1, peakRssMb: 2, neurons: rows.length, params: rows.length * 2 },
  };
}

const WEIRD_TEXT = ['\n', '\r\n', '"', '\\', '\u2028', '\u0000', '}', ']', '{"id":', '😀', '\ud83d'];

function text(r: Rng): string {
  let s = '';
  for (let i = 0, n = 1 + r.int(12); i < n; i++) s += r.chance(0.3) ? r.pick(WEIRD_TEXT) : String.fromCharCode(32 + r.int(90));
  return s;
}

type Kind = 'failures' | 'patches';

function open(kind: Kind, dir: string): { ids: () => Map<string, string>; add: (id: string) => void; problems: readonly string[] } {
  if (kind === 'failures') {
    const s = FailureStore.open(dir, FP);
    return {
      ids: () => new Map(s.list().map((f) => [f.id, JSON.stringify(f)])),
      add: (id) => void s.add({ id, prompt: 'p', desired: 'd' }),
      problems: s.problems,
    };
  }
  const s = PatchStore.open(dir, FP, { hiddenSize: 2 });
  const r = new Rng(1);
  return {
    ids: () => new Map(s.list().map((e) => [e.patch.id, JSON.stringify({ ...e, patch: { ...e.patch, layers: e.patch.layers.map((l) => ({ ...l, deltas: [...l.deltas] })) } })])),
    add: (id) => void s.add(patch(id, r)),
    problems: s.problems,
  };
}

function mutateLines(t: string, r: Rng): { text: string; how: string } {
  const lines = t.split('\n');
  const i = r.int(lines.length);
  switch (r.int(6)) {
    case 0: lines.splice(i, 1); return { text: lines.join('\n'), how: `line ${i} deleted` };
    case 1: lines.splice(i, 0, lines[r.int(lines.length)]!); return { text: lines.join('\n'), how: `a line repeated at ${i}` };
    case 2: { const j = r.int(lines.length); [lines[i], lines[j]] = [lines[j]!, lines[i]!]; return { text: lines.join('\n'), how: `lines ${i} and ${j} swapped` }; }
    case 3: lines[i] = text(r); return { text: lines.join('\n'), how: `line ${i} replaced by garbage` };
    case 4: return { text: lines.slice(0, i).join('\n'), how: `cut after line ${i}` };
    default: lines[i] = lines[i]!.slice(0, r.int(lines[i]!.length + 1)); return { text: lines.join('\n'), how: `line ${i} cut short` };
  }
}

/** Temp files, or a lock of a process that no longer runs: what opening a store must clear away. */
function leftovers(dir: string): string[] {
  return fs.readdirSync(dir).filter((n) => {
    if (n.endsWith('.tmp')) return true;
    if (!n.endsWith('.lock')) return false;
    // A lock that is not a lock record (or is young) is left for the next writer to judge.
    const pid = /"pid":(\d+)/.exec(fs.readFileSync(path.join(dir, n), 'utf8'))?.[1];
    if (pid === undefined) return false;
    try {
      process.kill(Number(pid), 0);
      return false;
    } catch {
      return true;
    }
  });
}

function deadPid(): number {
  return Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
}

async function fileCase(tmp: string, seed: number, i: number, dead: number): Promise<{ label: string; outcome: CaseOutcome }> {
  const r = new Rng(caseSeed(seed, 'store-file', i));
  const kind: Kind = r.chance(0.5) ? 'failures' : 'patches';
  const dir = path.join(tmp, `store-file-${i}`);
  fs.mkdirSync(dir, { recursive: true });
  try {
    const store = kind === 'failures' ? FailureStore.open(dir, FP) : PatchStore.open(dir, FP, { hiddenSize: 2 });
    for (let k = 0, n = 1 + r.int(12); k < n; k++) {
      if (store instanceof FailureStore) store.add({ id: `r${k}-${text(r).replace(/[^\w]/g, '')}`, prompt: text(r), desired: text(r) || 'd', languageId: 'python', status: r.pick(['pending', 'repaired', 'unfixed'] as const) });
      else store.add(patch(`p${k}`, r), { enabled: r.chance(0.7) });
    }
    const before = open(kind, dir).ids();
    const original = fs.readFileSync(store.file, 'utf8');
    const lineOf = new Map<string, string>();
    for (const line of original.split('\n')) {
      const m = /"id":"([^"]*)"/.exec(line);
      if (m && before.has(m[1]!) && line.startsWith('{"')) lineOf.set(m[1]!, line);
    }
    let damaged: Buffer;
    let how: string;
    if (r.chance(0.5)) {
      const m = mutateBytes(Buffer.from(original), r);
      damaged = m.bytes;
      how = m.how;
    } else {
      const m = mutateLines(original, r);
      damaged = Buffer.from(m.text);
      how = m.how;
    }
    fs.writeFileSync(store.file, damaged);
    if (r.chance(0.3)) fs.writeFileSync(`${store.file}.lock`, r.chance(0.8) ? JSON.stringify({ pid: dead, host: require('node:os').hostname(), nonce: 'x', time: Date.now() }) : text(r));
    if (r.chance(0.3)) fs.writeFileSync(path.join(dir, `.${path.basename(store.file)}.${dead}.abcdef.tmp`), original.slice(0, r.int(original.length)));
    const label = `seed ${seed} case ${i} (${kind}): ${how}`;
    const started = Date.now();
    let reopened: ReturnType<typeof open>;
    try {
      reopened = open(kind, dir);
    } catch (e) {
      if (e instanceof UnsupportedStoreVersionError) return { label, outcome: { outcome: 'typed', detail: e.message } };
      return { label, outcome: { outcome: isTypedError(e) ? 'typed' : 'crash', detail: errorLine(e) } };
    }
    if (Date.now() - started > 5000) return { label, outcome: { outcome: 'hang', detail: `opening took ${Date.now() - started} ms` } };
    const after = reopened.ids();
    const text2 = damaged.toString('utf8');
    const lines = new Set(text2.split('\n'));
    for (const [id, line] of lineOf) {
      if (!lines.has(line)) continue;
      if (!after.has(id)) return { label, outcome: { outcome: 'lost', detail: `record ${id} was intact in the file but not recovered; problems: ${reopened.problems.join(' | ')}` } };
      const mentions = text2.split(`"id":"${id}"`).length - 1;
      if (after.get(id) !== before.get(id) && mentions === 1) return { label, outcome: { outcome: 'silent', detail: `record ${id} was intact but came back changed` } };
    }
    const backups = () => fs.readdirSync(dir).filter((n) => n.includes('.corrupt-')).length;
    const nBackups = backups();
    const third = open(kind, dir);
    if (third.problems.length > 0 || backups() !== nBackups) {
      return { label, outcome: { outcome: 'silent', detail: `reopening was not clean: ${third.problems.join(' | ')}; backups ${nBackups} -> ${backups()}` } };
    }
    if (leftovers(dir).length) return { label, outcome: { outcome: 'silent', detail: `left behind: ${leftovers(dir).join(', ')}` } };
    try {
      third.add('fresh-one');
    } catch (e) {
      return { label, outcome: { outcome: 'crash', detail: `the recovered store refused a new record: ${errorLine(e)}` } };
    }
    const changed = !damaged.equals(Buffer.from(original));
    return { label, outcome: { outcome: reopened.problems.length > 0 || !changed ? (reopened.problems.length > 0 ? 'typed' : 'result') : 'result' } };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

interface WriterLog { added: Set<string>; updated: Set<string>; removing: Set<string>; removed: Set<string>; exit: Promise<{ code: number | null; signal: string | null; stderr: string }> }

function startWriter(bundle: string, job: object): Promise<{ kill: () => void; log: WriterLog }> {
  const child = spawn(process.execPath, [bundle, JSON.stringify(job)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const log: WriterLog = { added: new Set(), updated: new Set(), removing: new Set(), removed: new Set(), exit: Promise.resolve({ code: 0, signal: null, stderr: '' }) };
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  log.exit = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, stderr })));
  return new Promise((resolve) => {
    let buf = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      buf += chunk;
      const parts = buf.split('\n');
      buf = parts.pop()!;
      for (const line of parts) {
        const [what, id] = line.split(' ');
        if (what === 'ready') resolve({ kill: () => child.kill('SIGKILL'), log });
        else if (what === 'added') log.added.add(id!);
        else if (what === 'updated') log.updated.add(id!);
        else if (what === 'removing') log.removing.add(id!);
        else if (what === 'removed') log.removed.add(id!);
      }
    });
    void log.exit.then(() => resolve({ kill: () => {}, log }));
  });
}

async function killRound(tmp: string, bundle: string, seed: number, i: number, dir: string): Promise<{ label: string; outcome: CaseOutcome }> {
  const r = new Rng(caseSeed(seed, 'store-kill', i));
  const kind: Kind = dir.endsWith('patches') ? 'patches' : 'failures';
  const n = 2 + r.int(2);
  const label = `seed ${seed} round ${i}: ${n} ${kind} writers`;
  const writers = await Promise.all(Array.from({ length: n }, (_, w) => startWriter(bundle, { kind, dir, fingerprint: FP, tag: `w${i}x${w}` })));
  await Promise.all(writers.map((w) => new Promise<void>((resolve) => setTimeout(() => { w.kill(); resolve(); }, 30 + r.int(500)))));
  const exits = await Promise.all(writers.map((w) => w.log.exit));
  const died = exits.find((e) => e.signal !== 'SIGKILL');
  if (died) return { label, outcome: { outcome: 'crash', detail: `a writer stopped by itself (${died.code}): ${died.stderr.slice(-400)}` } };
  let store: ReturnType<typeof open>;
  try {
    store = open(kind, dir);
  } catch (e) {
    return { label, outcome: { outcome: 'crash', detail: errorLine(e) } };
  }
  const ids = store.ids();
  for (const { log } of writers) {
    for (const id of log.added) if (!log.removing.has(id) && !ids.has(id)) return { label, outcome: { outcome: 'lost', detail: `acknowledged record ${id} is missing` } };
    for (const id of log.removed) if (ids.has(id)) return { label, outcome: { outcome: 'silent', detail: `removed record ${id} came back` } };
    for (const id of log.updated) {
      const rec = ids.get(id);
      if (rec === undefined || log.removing.has(id)) continue;
      const ok = kind === 'failures' ? rec.includes('"status":"repaired"') : rec.includes('"enabled":false');
      if (!ok) return { label, outcome: { outcome: 'silent', detail: `the acknowledged change of ${id} was undone` } };
    }
  }
  if (leftovers(dir).length) return { label, outcome: { outcome: 'silent', detail: `left behind after reopening: ${leftovers(dir).join(', ')}` } };
  void tmp;
  return { label, outcome: { outcome: 'result' } };
}

export interface StoreAreaOptions { tally: Tally; seed: number; fileSeconds: number; killSeconds: number; writerBundle: string; tmp: string }

export async function fuzzStores(o: StoreAreaOptions): Promise<void> {
  const dead = deadPid();
  let end = Date.now() + o.fileSeconds * 1000;
  for (let i = 0; Date.now() < end; i++) {
    const { label, outcome } = await fileCase(o.tmp, o.seed, i, dead);
    o.tally.add(AREA_FILES, label, outcome);
  }
  end = Date.now() + o.killSeconds * 1000;
  let dir = '';
  for (let i = 0; Date.now() < end; i++) {
    // A fresh store every few rounds keeps the files small; in between, killed writers' locks and
    // temp files are what the next round starts from.
    if (i % 6 === 0) {
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
      dir = path.join(o.tmp, `store-kill-${i}-${i % 12 === 0 ? 'failures' : 'patches'}`);
    }
    const { label, outcome } = await killRound(o.tmp, o.writerBundle, o.seed, i, dir);
    o.tally.add(AREA_KILL, label, outcome);
  }
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}
