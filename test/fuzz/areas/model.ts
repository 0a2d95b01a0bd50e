// Fuzz area "model": damaged model folders loaded in a child process with a time and memory limit,
// so a hang or a runaway read is detected, not suffered. First the known hostile cases (FIFOs,
// /dev/zero, a backtracking Split regex, a vocabulary id of 1e9, NaN/Inf weights, absurd header
// lengths), then seeded random mutations of config.json, the safetensors header (JSON and length
// prefix), the weight bytes and tokenizer.json of the fixture models in test/fixtures/models.
import { fork, execFileSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { caseSeed, mutateBytes, mutateJson, Rng, type CaseOutcome, type Tally } from '../lib';

const AREA_CONFIG = 'model: config.json';
const AREA_HEADER = 'model: safetensors';
const AREA_TOKENIZER = 'model: tokenizer.json';
const AREA_HOSTILE = 'model: known hostile';

const MEMORY_LIMIT_BYTES = 3 * 2 ** 30;

/** One long-lived loader child; replaced after it crashes, hangs or runs away with memory. */
class Loader {
  private child: ChildProcess | null = null;
  private nextId = 1;

  constructor(private readonly bundle: string) {}

  private async start(): Promise<ChildProcess> {
    const child = fork(this.bundle, [], { execArgv: ['--max-old-space-size=2048'], stdio: ['ignore', 'ignore', 'pipe', 'ipc'], serialization: 'json' });
    child.stderr!.resume();
    await new Promise<void>((resolve, reject) => {
      child.once('message', () => resolve());
      child.once('exit', (code) => reject(new Error(`the loader child exited at start (${code})`)));
    });
    child.removeAllListeners('exit');
    this.child = child;
    return child;
  }

  async load(dir: string, timeoutMs: number): Promise<CaseOutcome> {
    const child = this.child ?? (await this.start());
    const id = this.nextId++;
    return new Promise<CaseOutcome>((resolve) => {
      let done = false;
      const finish = (o: CaseOutcome, kill: boolean) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        clearInterval(watch);
        child.off('message', onMessage);
        child.off('exit', onExit);
        if (kill) {
          child.kill('SIGKILL');
          this.child = null;
        }
        resolve(o);
      };
      const onMessage = (m: { id: number; outcome: CaseOutcome['outcome']; detail?: string }) => {
        if (m.id === id) finish({ outcome: m.outcome, detail: m.detail }, false);
      };
      const onExit = (code: number | null, signal: string | null) => {
        this.child = null;
        finish({ outcome: 'crash', detail: `the loading process died (${signal ?? `exit code ${code}`})` }, false);
      };
      const timer = setTimeout(() => finish({ outcome: 'hang', detail: `no outcome within ${timeoutMs / 1000} s` }, true), timeoutMs);
      const watch = setInterval(() => {
        const rss = residentBytes(child.pid!);
        if (rss > MEMORY_LIMIT_BYTES) finish({ outcome: 'crash', detail: `memory ran away (${Math.round(rss / 2 ** 20)} MiB resident)` }, true);
      }, 100);
      child.on('message', onMessage);
      child.once('exit', onExit);
      child.send({ id, dir });
    });
  }

  stop(): void {
    this.child?.kill('SIGKILL');
    this.child = null;
  }
}

function residentBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

type Files = Map<string, Buffer>;

function readFixture(dir: string): Files {
  const files: Files = new Map();
  for (const name of fs.readdirSync(dir)) {
    if (name.startsWith('reference')) continue;
    files.set(name, fs.readFileSync(path.join(dir, name)));
  }
  return files;
}

function writeCase(dir: string, files: Files): void {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, bytes] of files) fs.writeFileSync(path.join(dir, name), bytes);
}

function weightFile(files: Files): string {
  return [...files.keys()].find((n) => n.endsWith('.safetensors'))!;
}

function splitSafetensors(bytes: Buffer): { header: Record<string, unknown>; data: Buffer } {
  const n = Number(bytes.readBigUInt64LE(0));
  return { header: JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>, data: bytes.subarray(8 + n) };
}

function joinSafetensors(header: unknown, data: Buffer, length?: bigint): Buffer {
  const json = Buffer.from(JSON.stringify(header) ?? 'null', 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(length ?? BigInt(json.length));
  return Buffer.concat([len, json, data]);
}

const NAN_BITS: Record<string, [number, number][]> = {
  F32: [[0x7fc00000, 4], [0x7f800000, 4], [0xff800000, 4]],
  F16: [[0x7e00, 2], [0x7c00, 2]],
  BF16: [[0x7fc0, 2], [0x7f80, 2]],
};

/** Writes a NaN or an infinity into one element of one tensor of the weight file. */
function poisonWeight(bytes: Buffer, r: Rng): { bytes: Buffer; how: string } | undefined {
  const { header, data } = splitSafetensors(bytes);
  const tensors = Object.entries(header).filter(([k, v]) => k !== '__metadata__' && NAN_BITS[(v as { dtype: string }).dtype]);
  if (!tensors.length) return undefined;
  const [name, info] = r.pick(tensors) as [string, { dtype: string; data_offsets: [number, number] }];
  const [bits, width] = r.pick(NAN_BITS[info.dtype]!);
  const count = (info.data_offsets[1] - info.data_offsets[0]) / width;
  if (count < 1) return undefined;
  const at = info.data_offsets[0] + r.int(count) * width;
  const out = Buffer.from(bytes);
  const base = bytes.length - data.length;
  if (width === 4) out.writeUInt32LE(bits, base + at);
  else out.writeUInt16LE(bits, base + at);
  return { bytes: out, how: `${name}: a ${bits === 0x7fc00000 || bits === 0x7e00 || bits === 0x7fc0 ? 'NaN' : 'infinity'} at byte ${at}` };
}

interface HostileCase {
  name: string;
  make: (dir: string, files: Files) => void;
}

function mkfifo(file: string): void {
  fs.rmSync(file, { force: true });
  execFileSync('mkfifo', [file]);
}

function hostileCases(): HostileCase[] {
  const rewrite = (name: string, change: (v: Record<string, unknown>) => void) => (dir: string, files: Files) => {
    const v = JSON.parse(files.get(name)!.toString('utf8')) as Record<string, unknown>;
    change(v);
    writeCase(dir, new Map([...files, [name, Buffer.from(JSON.stringify(v))]]));
  };
  const link = (name: string, target: string) => (dir: string, files: Files) => {
    writeCase(dir, files);
    fs.rmSync(path.join(dir, name));
    fs.symlinkSync(target, path.join(dir, name));
  };
  const fifo = (name: string) => (dir: string, files: Files) => {
    writeCase(dir, files);
    mkfifo(path.join(dir, name));
  };
  const weights = (change: (bytes: Buffer) => Buffer) => (dir: string, files: Files) => {
    const w = weightFile(files);
    writeCase(dir, new Map([...files, [w, change(files.get(w)!)]]));
  };
  const poison = (bits: number) => weights((b) => {
    const { header, data } = splitSafetensors(b);
    const [, info] = Object.entries(header).find(([k, v]) => k.includes('layers.0.mlp') && (v as { dtype: string }).dtype === 'F32')! as [string, { data_offsets: number[] }];
    const out = Buffer.from(b);
    out.writeUInt32LE(bits, b.length - data.length + info.data_offsets[0]! + 4 * 3);
    return out;
  });
  return [
    { name: 'config.json is a FIFO', make: fifo('config.json') },
    { name: 'the weight file is a FIFO', make: (dir, files) => fifo(weightFile(files))(dir, files) },
    { name: 'tokenizer.json is a FIFO', make: fifo('tokenizer.json') },
    { name: 'config.json links to /dev/zero', make: link('config.json', '/dev/zero') },
    { name: 'tokenizer.json links to /dev/zero', make: link('tokenizer.json', '/dev/zero') },
    { name: 'the weight file links to /dev/zero', make: (dir, files) => link(weightFile(files), '/dev/zero')(dir, files) },
    { name: 'config.json links to /dev/urandom', make: link('config.json', '/dev/urandom') },
    { name: 'config.json is a directory', make: (dir, files) => { writeCase(dir, files); fs.rmSync(path.join(dir, 'config.json')); fs.mkdirSync(path.join(dir, 'config.json')); } },
    { name: 'config.json is empty', make: (dir, files) => writeCase(dir, new Map([...files, ['config.json', Buffer.alloc(0)]])) },
    { name: 'tokenizer.json is empty', make: (dir, files) => writeCase(dir, new Map([...files, ['tokenizer.json', Buffer.alloc(0)]])) },
    { name: 'the weight file is empty', make: weights(() => Buffer.alloc(0)) },
    { name: 'config.json is nested 100,000 deep', make: (dir, files) => writeCase(dir, new Map([...files, ['config.json', Buffer.from('['.repeat(100_000) + ']'.repeat(100_000))]])) },
    {
      name: 'a Split pre-tokenizer with a catastrophically backtracking regex (a+)+$',
      make: rewrite('tokenizer.json', (t) => {
        t.pre_tokenizer = { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: '(a+)+$' }, behavior: 'Isolated', invert: false }, t.pre_tokenizer] };
      }),
    },
    { name: 'a vocabulary id of 1e9', make: rewrite('tokenizer.json', (t) => { (t.model as { vocab: Record<string, number> }).vocab['zzz'] = 1e9; }) },
    { name: 'a negative vocabulary id', make: rewrite('tokenizer.json', (t) => { (t.model as { vocab: Record<string, number> }).vocab['zzz'] = -5; }) },
    { name: 'an added token with id 1e9', make: rewrite('tokenizer.json', (t) => { (t.added_tokens as unknown[]).push({ id: 1e9, content: '<huge>', special: true, single_word: false, lstrip: false, rstrip: false, normalized: false }); }) },
    { name: 'vocab_size 1e9 in config.json', make: rewrite('config.json', (c) => { c.vocab_size = 1e9; }) },
    { name: 'hidden_size 2^40 in config.json', make: rewrite('config.json', (c) => { c.hidden_size = 2 ** 40; }) },
    { name: 'num_hidden_layers 1e6 in config.json', make: rewrite('config.json', (c) => { c.num_hidden_layers = 1e6; }) },
    { name: 'a NaN in an MLP weight', make: poison(0x7fc00000) },
    { name: 'an infinity in an MLP weight', make: poison(0x7f800000) },
    { name: 'safetensors header length 2^60', make: weights((b) => { const o = Buffer.from(b); o.writeBigUInt64LE(2n ** 60n); return o; }) },
    { name: 'safetensors header length past the end of the file', make: weights((b) => { const o = Buffer.from(b); o.writeBigUInt64LE(BigInt(b.length)); return o; }) },
    { name: 'safetensors data offsets past the end of the file', make: weights((b) => { const { header, data } = splitSafetensors(b); for (const v of Object.values(header)) if ((v as { data_offsets?: number[] }).data_offsets) (v as { data_offsets: number[] }).data_offsets[1] = 1e15; return joinSafetensors(header, data); }) },
    { name: 'a tensor shape whose product overflows', make: weights((b) => { const { header, data } = splitSafetensors(b); for (const v of Object.values(header)) if ((v as { shape?: number[] }).shape) (v as { shape: number[] }).shape = [2 ** 40, 2 ** 40]; return joinSafetensors(header, data); }) },
  ];
}

export interface ModelAreaOptions {
  tally: Tally;
  seed: number;
  seconds: number;
  loaderBundle: string;
  tmp: string;
  fixtures: string;
  caseTimeoutMs: number;
}

export async function fuzzModels(o: ModelAreaOptions): Promise<void> {
  const loader = new Loader(o.loaderBundle);
  const bases = ['llama', 'qwen2', 'gpt2', 'gpt-bigcode', 'mistral', 'llama-f16', 'llama-bf16'].map((n) => ({ name: n, files: readFixture(path.join(o.fixtures, n)) }));
  const dir = path.join(o.tmp, 'model-case');
  const end = Date.now() + o.seconds * 1000;
  try {
    for (const h of hostileCases()) {
      h.make(dir, bases[0]!.files);
      o.tally.add(AREA_HOSTILE, h.name, await loader.load(dir, o.caseTimeoutMs));
    }
    for (let i = 0; Date.now() < end; i++) {
      const r = new Rng(caseSeed(o.seed, 'model', i));
      const base = r.pick(bases);
      const files: Files = new Map(base.files);
      const w = weightFile(files);
      const kind = r.int(7);
      let area: string;
      let how: string;
      if (kind <= 1) {
        area = AREA_CONFIG;
        if (kind === 0) {
          const m = mutateJson(JSON.parse(files.get('config.json')!.toString('utf8')), r);
          files.set('config.json', Buffer.from(JSON.stringify(m.value) ?? ''));
          how = m.how;
        } else {
          const m = mutateBytes(files.get('config.json')!, r);
          files.set('config.json', m.bytes);
          how = m.how;
        }
      } else if (kind <= 4) {
        area = AREA_HEADER;
        const bytes = files.get(w)!;
        if (kind === 2) {
          const { header, data } = splitSafetensors(bytes);
          const m = mutateJson(header, r, (p) => p.length >= 2 && ['dtype', 'shape', 'data_offsets'].includes(String(p[1])));
          files.set(w, joinSafetensors(m.value, data));
          how = `header ${m.how}`;
        } else if (kind === 3) {
          const n = bytes.readBigUInt64LE(0);
          if (r.chance(0.3)) {
            const len = r.pick([0n, 1n, 7n, n - 1n, n + 1n, n + 8n, BigInt(bytes.length), 2n ** 32n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n]);
            const out = Buffer.from(bytes);
            out.writeBigUInt64LE(len);
            files.set(w, out);
            how = `header length ${len}`;
          } else {
            const m = mutateBytes(bytes.subarray(0, 8 + Number(n)), r, 8);
            files.set(w, Buffer.concat([m.bytes, bytes.subarray(8 + Number(n))]));
            how = `header bytes: ${m.how}`;
          }
        } else {
          const p = r.chance(0.5) ? poisonWeight(bytes, r) : undefined;
          if (p) {
            files.set(w, p.bytes);
            how = p.how;
          } else {
            const m = mutateBytes(bytes, r);
            files.set(w, m.bytes);
            how = `file bytes: ${m.how}`;
          }
        }
      } else {
        area = AREA_TOKENIZER;
        if (kind === 5) {
          const m = mutateJson(JSON.parse(files.get('tokenizer.json')!.toString('utf8')), r,
            (p) => ['model', 'pre_tokenizer', 'normalizer', 'added_tokens', 'decoder'].includes(String(p[0])));
          files.set('tokenizer.json', Buffer.from(JSON.stringify(m.value) ?? ''));
          how = m.how;
        } else {
          const m = mutateBytes(files.get('tokenizer.json')!, r);
          files.set('tokenizer.json', m.bytes);
          how = m.how;
        }
      }
      writeCase(dir, files);
      o.tally.add(area, `seed ${o.seed} case ${i} (${base.name}): ${how}`, await loader.load(dir, o.caseTimeoutMs));
    }
  } finally {
    loader.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
