// Tests for src/model/safetensors.ts: write→read round trips, F16/BF16 conversion against
// hand-known bit patterns (files built byte by byte, independently of the writer), header
// validation for each kind of damage, atomic writes, and single/sharded/multi-file folders.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  float32ToBF16Bits, float32ToF16Bits, loadWeights, parseSafetensorsHeader, readSafetensors,
  readSafetensorsHeader, weightFiles, writeSafetensors, type HostTensor,
} from '../../src/model/index';
import { expectError } from '../helpers/expect-model-error';

const tmp = mkdtempSync(join(tmpdir(), 'model-st-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
let counter = 0;
const fresh = (): string => {
  const d = join(tmp, `d${counter++}`);
  mkdirSync(d);
  return d;
};


/** A safetensors file assembled by hand: u64 header length, JSON (padded by `pad` spaces), data. */
function rawFile(header: unknown, data: Uint8Array, pad = 0): Buffer {
  const json = Buffer.from(JSON.stringify(header) + ' '.repeat(pad), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, Buffer.from(data)]);
}

function u16le(values: number[]): Uint8Array {
  const b = Buffer.alloc(values.length * 2);
  values.forEach((v, i) => b.writeUInt16LE(v, i * 2));
  return b;
}

const t = (shape: number[], values: number[]): HostTensor => ({ shape, data: Float32Array.from(values) });

describe('F16 and BF16 decoding (files built by hand)', () => {
  test('F16 bit patterns decode to their IEEE values', () => {
    const bits = [0x3c00, 0xc000, 0x7bff, 0x0001, 0x0400, 0x3555, 0x7c00, 0xfc00, 0x8000, 0x3800, 0x03ff];
    const expected = [1, -2, 65504, 2 ** -24, 2 ** -14, 0.333251953125, Infinity, -Infinity, -0, 0.5, 1023 * 2 ** -24];
    const file = join(fresh(), 'h.safetensors');
    writeFileSync(file, rawFile({ x: { dtype: 'F16', shape: [bits.length + 1], data_offsets: [0, (bits.length + 1) * 2] } }, u16le([...bits, 0x7e00])));
    const got = readSafetensors(file, { allowNonFinite: true }).get('x')!;
    assert.deepEqual(got.shape, [bits.length + 1]);
    assert.deepEqual([...got.data.slice(0, bits.length)], expected);
    assert.ok(Object.is(got.data[8], -0));
    assert.ok(Number.isNaN(got.data[bits.length]));
  });

  test('BF16 bit patterns decode to their IEEE values', () => {
    const bits = [0x3f80, 0xc049, 0x7f80, 0xff80, 0x0001, 0x4049, 0x8000];
    const expected = [1, -3.140625, Infinity, -Infinity, 2 ** -133, 3.140625, -0];
    const file = join(fresh(), 'b.safetensors');
    writeFileSync(file, rawFile({ x: { dtype: 'BF16', shape: [7], data_offsets: [0, 14] } }, u16le(bits)));
    assert.deepEqual([...readSafetensors(file, { allowNonFinite: true }).get('x')!.data], expected);
  });

  test('F32 data at an offset that is not a multiple of 4 is read correctly', () => {
    const values = Float32Array.from([1.5, -2.25, 3e-8, 65536.5]);
    const header = { __metadata__: { format: 'pt' }, w: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] } };
    const buf = rawFile(header, new Uint8Array(values.buffer), 1);
    const parsed = parseSafetensorsHeader(buf);
    assert.notEqual(parsed.dataOffset % 4, 0, 'the test needs a misaligned data section');
    const file = join(fresh(), 'odd.safetensors');
    writeFileSync(file, buf);
    const got = readSafetensors(file).get('w')!;
    assert.deepEqual(got.shape, [2, 2]);
    assert.deepEqual([...got.data], [...values]);
    assert.equal(got.data.byteOffset % 4, 0);
  });
});

describe('F16 and BF16 encoding', () => {
  test('float32 → F16 rounds to nearest even, saturates to infinity, keeps subnormals and NaN', () => {
    const cases: Array<[number, number]> = [
      [1, 0x3c00], [-2, 0xc000], [65504, 0x7bff], [2 ** -24, 0x0001], [2 ** -14, 0x0400], [0.5, 0x3800],
      [1 + 2 ** -11, 0x3c00], // halfway between 1 and 1+2^-10: ties to the even 1
      [1 + 3 * 2 ** -11, 0x3c02], // halfway between 1+2^-10 and 1+2^-9: ties to even
      [1 + 2 ** -11 + 2 ** -20, 0x3c01], // just above halfway rounds up
      [65520, 0x7c00], // halfway between 65504 and 65536: rounds to even = infinity
      [1e6, 0x7c00], [-1e6, 0xfc00], [Infinity, 0x7c00],
      [2 ** -25, 0x0000], // exactly half the smallest subnormal: ties to even zero
      [1.5 * 2 ** -25, 0x0001], [3 * 2 ** -25, 0x0002], // 1.5 ulp ties up to the even 2
      [-0, 0x8000], [1e-10, 0x0000],
    ];
    for (const [value, bits] of cases) assert.equal(float32ToF16Bits(value).toString(16), bits.toString(16), `F16 of ${value}`);
    assert.equal(float32ToF16Bits(NaN) & 0x7c00, 0x7c00);
    assert.notEqual(float32ToF16Bits(NaN) & 0x3ff, 0);
  });

  test('float32 → BF16 rounds to nearest even and keeps NaN a NaN', () => {
    const cases: Array<[number, number]> = [
      [1, 0x3f80], [-3.140625, 0xc049], [Infinity, 0x7f80], [-0, 0x8000],
      [1 + 2 ** -8, 0x3f80], // halfway: ties to even
      [1 + 3 * 2 ** -8, 0x3f82],
      [1 + 2 ** -8 + 2 ** -20, 0x3f81],
      [3.4028234663852886e38, 0x7f80], // float32 max rounds up to infinity
    ];
    for (const [value, bits] of cases) assert.equal(float32ToBF16Bits(value).toString(16), bits.toString(16), `BF16 of ${value}`);
    const nan = float32ToBF16Bits(NaN);
    assert.equal(nan & 0x7f80, 0x7f80);
    assert.notEqual(nan & 0x7f, 0);
  });

  test('writer output for F16 and BF16 has exactly those bits on disk', () => {
    const dir = fresh();
    const values = [1, 1 + 3 * 2 ** -11, -2, 65520];
    writeSafetensors(join(dir, 'h.safetensors'), { x: t([4], values) }, undefined, 'F16');
    writeSafetensors(join(dir, 'b.safetensors'), { x: t([4], values) }, undefined, 'BF16');
    for (const [name, bits] of [['h', [0x3c00, 0x3c02, 0xc000, 0x7c00]], ['b', [0x3f80, 0x3f80, 0xc000, 0x4780]]] as const) {
      const file = join(dir, `${name}.safetensors`);
      const header = readSafetensorsHeader(file);
      const entry = header.tensors.get('x')!;
      assert.equal(entry.dtype, name === 'h' ? 'F16' : 'BF16');
      const raw = readFileSync(file).subarray(header.dataOffset + entry.begin, header.dataOffset + entry.end);
      assert.deepEqual([0, 1, 2, 3].map((i) => raw.readUInt16LE(2 * i)), [...bits]);
    }
    assert.deepEqual([...readSafetensors(join(dir, 'h.safetensors'), { allowNonFinite: true }).get('x')!.data], [1, 1 + 2 ** -9, -2, Infinity]);
    // BF16 keeps 8 significant bits: 65520 = 0x477ff000 rounds up to 0x4780 = 65536; 1+3·2^-11 → 1.
    assert.deepEqual([...readSafetensors(join(dir, 'b.safetensors')).get('x')!.data], [1, 1, -2, 65536]);
  });
});

describe('write → read round trip', () => {
  test('F32 is bit-exact, including scalars, empty tensors and metadata', () => {
    const file = join(fresh(), 'model.safetensors');
    const tensors = new Map<string, HostTensor>([
      ['b.weight', t([2, 3], [1, -2, 3.25, 1e-30, -0, 7e30])],
      ['a.scale', t([], [42])],
      ['c.empty', t([0, 4], [])],
    ]);
    writeSafetensors(file, tensors, { format: 'pt', note: 'round trip' });
    const header = readSafetensorsHeader(file);
    assert.deepEqual(header.metadata, { format: 'pt', note: 'round trip' });
    assert.equal(header.dataOffset % 8, 0);
    assert.deepEqual(header.headerBytes, readFileSync(file).subarray(0, header.dataOffset));
    const back = readSafetensors(file);
    assert.deepEqual([...back.keys()].sort(), ['a.scale', 'b.weight', 'c.empty']);
    for (const [name, orig] of tensors) {
      assert.deepEqual(back.get(name)!.shape, orig.shape);
      assert.deepEqual(Buffer.from(back.get(name)!.data.buffer), Buffer.from(orig.data.buffer), name);
    }
  });

  test('F16 and BF16 round trips stay within half an ulp', () => {
    const dir = fresh();
    const values: number[] = [];
    for (let i = 0; i < 1000; i++) values.push(Math.sin(i * 12.9898) * 10 ** ((i % 9) - 4));
    const src = t([10, 100], values);
    for (const [dtype, bitsOfMantissa] of [['F16', 10], ['BF16', 7]] as const) {
      const file = join(dir, `${dtype}.safetensors`);
      writeSafetensors(file, { w: src }, undefined, dtype);
      const back = readSafetensors(file).get('w')!;
      assert.deepEqual(back.shape, [10, 100]);
      for (let i = 0; i < values.length; i++) {
        const v = src.data[i]!;
        const err = Math.abs(back.data[i]! - v);
        // Relative bound for normal numbers, absolute bound near F16's subnormal range.
        const bound = Math.max(Math.abs(v) * 2 ** -(bitsOfMantissa + 1), dtype === 'F16' ? 2 ** -25 : 0);
        assert.ok(err <= bound * (1 + 1e-6), `${dtype} value ${v} came back as ${back.data[i]}`);
      }
    }
  });

  test('writes atomically: no temporary files, an existing file is replaced whole, a failed write leaves it intact', () => {
    const dir = fresh();
    const file = join(dir, 'model.safetensors');
    writeSafetensors(file, { a: t([1], [1]) });
    writeSafetensors(file, { b: t([2], [2, 3]) });
    assert.deepEqual(readdirSync(dir), ['model.safetensors']);
    assert.deepEqual([...readSafetensors(file).keys()], ['b']);
    const before = readFileSync(file);
    expectError(() => writeSafetensors(file, { c: { shape: [3], data: new Float32Array(2) } }), 'shape-mismatch', /"c"/);
    assert.deepEqual(readFileSync(file), before);
    assert.deepEqual(readdirSync(dir), ['model.safetensors']);
  });
});

describe('damaged files get safetensors-invalid errors that say what is wrong', () => {
  const good = (): Buffer => rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] } }, new Uint8Array(12));

  test('a good file parses', () => {
    const h = parseSafetensorsHeader(good(), 'good');
    assert.deepEqual(h.tensors.get('b'), { dtype: 'F32', shape: [1], begin: 8, end: 12 });
  });

  test('shorter than the 8-byte length', () => {
    expectError(() => parseSafetensorsHeader(Buffer.from([1, 2, 3]), 'x.safetensors'), 'safetensors-invalid', /x\.safetensors/, /8-byte/);
  });

  test('header length beyond the file (truncated)', () => {
    const buf = good().subarray(0, 20);
    expectError(() => parseSafetensorsHeader(buf), 'safetensors-invalid', /runs past the end of the file/, /truncated/);
    const huge = Buffer.alloc(16);
    huge.writeBigUInt64LE(0xffffffffffffn);
    expectError(() => parseSafetensorsHeader(huge), 'safetensors-invalid', /runs past the end/);
  });

  test('data truncated after the header', () => {
    const buf = good();
    expectError(() => parseSafetensorsHeader(buf.subarray(0, buf.length - 4)), 'safetensors-invalid', /tensor "b" ends at data byte 12 .* only 8/);
    const file = join(fresh(), 'cut.safetensors');
    writeFileSync(file, buf.subarray(0, buf.length - 4));
    const e = expectError(() => readSafetensors(file), 'safetensors-invalid', /out of range/);
    assert.equal(e.path, file);
  });

  test('header is not JSON, or not an object', () => {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(5n);
    expectError(() => parseSafetensorsHeader(Buffer.concat([len, Buffer.from('{"a":')])), 'safetensors-invalid', /not valid JSON/);
    expectError(() => parseSafetensorsHeader(rawFile([1, 2], new Uint8Array(0))), 'safetensors-invalid', /not a JSON object/);
  });

  test('malformed entries', () => {
    expectError(() => parseSafetensorsHeader(rawFile({ a: 3 }, new Uint8Array(0))), 'safetensors-invalid', /"a" is not an object/);
    expectError(() => parseSafetensorsHeader(rawFile({ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 0] } }, new Uint8Array(0))), 'safetensors-invalid', /malformed shape/);
    expectError(() => parseSafetensorsHeader(rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [0] } }, new Uint8Array(4))), 'safetensors-invalid', /malformed data_offsets/);
    expectError(() => parseSafetensorsHeader(rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [8, 0] } }, new Uint8Array(8))), 'safetensors-invalid', /end before they begin/);
    expectError(() => parseSafetensorsHeader(rawFile({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8))), 'safetensors-invalid', /needs 12 bytes/);
    expectError(() => parseSafetensorsHeader(rawFile({ __metadata__: { a: 1 } }, new Uint8Array(0))), 'safetensors-invalid', /__metadata__/);
  });

  test('unknown dtype', () => {
    expectError(() => parseSafetensorsHeader(rawFile({ a: { dtype: 'F17', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4))), 'safetensors-invalid', /unknown dtype "F17"/);
  });

  test('offsets out of range, overlapping, or not covering the data', () => {
    expectError(() => parseSafetensorsHeader(rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, new Uint8Array(8))), 'safetensors-invalid', /out of range/);
    expectError(() => parseSafetensorsHeader(rawFile({
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
    }, new Uint8Array(12))), 'safetensors-invalid', /overlaps/);
    expectError(() => parseSafetensorsHeader(rawFile({
      a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] },
    }, new Uint8Array(12))), 'safetensors-invalid', /belong to no tensor/);
    expectError(() => parseSafetensorsHeader(rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(12))), 'safetensors-invalid', /cover 4 data bytes but the file has 12/);
  });

  test('unsupported dtypes name the tensor and the supported dtypes; skipped tensors are not checked', () => {
    for (const [dtype, width] of [['I8', 1], ['F64', 8], ['I64', 8], ['U8', 1]] as const) {
      const file = join(fresh(), `${dtype}.safetensors`);
      writeFileSync(file, rawFile({
        ok: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
        'model.q': { dtype, shape: [2], data_offsets: [4, 4 + 2 * width] },
      }, new Uint8Array(4 + 2 * width)));
      const e = expectError(() => readSafetensors(file), 'unsupported-dtype', new RegExp(`"model\\.q" has dtype ${dtype}`), /F32, F16, BF16/);
      assert.equal(e.path, file);
      assert.deepEqual([...readSafetensors(file, { skip: (n) => n === 'model.q' }).keys()], ['ok']);
    }
  });
});

describe('model folders: single file, shards, several files', () => {
  const tensors = (): Map<string, HostTensor> => new Map([
    ['x.a', t([2], [1, 2])], ['x.b', t([1, 3], [3, 4, 5])], ['x.c', t([1], [6])], ['x.d', t([2, 1], [7, 8])],
  ]);
  const check = (got: Map<string, HostTensor>): void => {
    assert.deepEqual([...got.keys()].sort(), ['x.a', 'x.b', 'x.c', 'x.d']);
    for (const [name, want] of tensors()) {
      assert.deepEqual(got.get(name)!.shape, want.shape);
      assert.deepEqual([...got.get(name)!.data], [...want.data]);
    }
  };

  test('model.safetensors', () => {
    const dir = fresh();
    writeSafetensors(join(dir, 'model.safetensors'), tensors());
    check(loadWeights(dir));
  });

  test('sharded with model.safetensors.index.json (mixed dtypes)', () => {
    const dir = fresh();
    const all = tensors();
    const s1 = new Map([...all].filter(([n]) => n === 'x.a' || n === 'x.c'));
    const s2 = new Map([...all].filter(([n]) => n === 'x.b' || n === 'x.d'));
    writeSafetensors(join(dir, 'model-00001-of-00002.safetensors'), s1, undefined, 'BF16');
    writeSafetensors(join(dir, 'model-00002-of-00002.safetensors'), s2, undefined, 'F16');
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({
      metadata: { total_size: 14 },
      weight_map: { 'x.a': 'model-00001-of-00002.safetensors', 'x.c': 'model-00001-of-00002.safetensors', 'x.b': 'model-00002-of-00002.safetensors', 'x.d': 'model-00002-of-00002.safetensors' },
    }));
    // A stray file that the index does not list is not read.
    writeSafetensors(join(dir, 'other.safetensors'), { 'x.a': t([1], [99]) });
    check(loadWeights(dir));
    assert.deepEqual(weightFiles(dir).map((f) => f.slice(dir.length + 1)), ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
  });

  test('index naming a shard that is absent, or a tensor the shard lacks, or with no weight_map', () => {
    const dir = fresh();
    writeSafetensors(join(dir, 'model-00001-of-00002.safetensors'), { 'x.a': t([1], [1]) });
    const index = join(dir, 'model.safetensors.index.json');
    writeFileSync(index, JSON.stringify({ weight_map: { 'x.a': 'model-00001-of-00002.safetensors', 'x.b': 'model-00002-of-00002.safetensors' } }));
    expectError(() => loadWeights(dir), 'weights-missing', /model-00002-of-00002\.safetensors/, /download/);
    writeFileSync(index, JSON.stringify({ weight_map: { 'x.a': 'model-00001-of-00002.safetensors', 'x.b': 'model-00001-of-00002.safetensors' } }));
    expectError(() => loadWeights(dir), 'tensor-missing', /"x\.b"/);
    writeFileSync(index, JSON.stringify({ metadata: {} }));
    expectError(() => loadWeights(dir), 'safetensors-invalid', /weight_map/);
    writeFileSync(index, '{ not json');
    expectError(() => loadWeights(dir), 'safetensors-invalid', /not readable JSON/);
  });

  test('every *.safetensors when there is neither index nor model.safetensors; duplicates refused', () => {
    const dir = fresh();
    const all = [...tensors()];
    writeSafetensors(join(dir, 'part-b.safetensors'), new Map(all.slice(0, 2)));
    writeSafetensors(join(dir, 'part-a.safetensors'), new Map(all.slice(2)));
    check(loadWeights(dir));
    writeSafetensors(join(dir, 'part-c.safetensors'), { 'x.a': t([2], [0, 0]) });
    expectError(() => loadWeights(dir), 'safetensors-invalid', /"x\.a" appears in both/);
  });

  test('no weights at all, with a hint for PyTorch .bin checkpoints', () => {
    const dir = fresh();
    expectError(() => loadWeights(dir), 'weights-missing', /no \*\.safetensors/);
    writeFileSync(join(dir, 'pytorch_model.bin'), 'x');
    expectError(() => loadWeights(dir), 'weights-missing', /safe_serialization=True/);
    assert.ok(!existsSync(join(dir, 'model.safetensors')));
  });
});

test('a folder where a weight file should be is a typed error', () => {
  const dir = fresh();
  mkdirSync(join(dir, 'model.safetensors'));
  expectError(() => loadWeights(dir), 'weights-missing', /model\.safetensors/);
});
