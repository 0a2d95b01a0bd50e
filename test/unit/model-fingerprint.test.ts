// The model fingerprint covers every tensor (issue 17, defect 12): it used to hash only config,
// headers and down projections, so changing q_proj or the embeddings kept it while completions
// changed. Now every tensor is hashed — whole when small, else 16 sampled 4 KiB blocks — and the
// down projections (what STAR patches, sparsely) whole; the cost stays a small part of the file.
import assert from 'node:assert/strict';
import { closeSync, cpSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  SAMPLE_BLOCKS, SAMPLE_BLOCK_BYTES, downProjectionNames, fingerprint, hashedRanges, parseConfig, readSafetensorsHeader, sampleRanges,
  type SafetensorsHeader,
} from '../../src/model/index';
import { byteLevelTokenizerJson, randomCheckpointTensors, writeModelFolder } from '../../src/model/synthetic';

const tmp = mkdtempSync(join(tmpdir(), 'model-fp-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
let counter = 0;

const tokenizer = byteLevelTokenizerJson([['d', 'e']], ['<|endoftext|>']);
// hidden 64, vocab 600: the embeddings (153.6 kB) and lm_head are sampled; q_proj (16 kB) is whole.
const llamaJson = {
  architectures: ['LlamaForCausalLM'], hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2,
  num_attention_heads: 4, vocab_size: 600, max_position_embeddings: 64, tie_word_embeddings: false,
};
const config = parseConfig(llamaJson);
const base = join(tmp, 'base');
writeModelFolder(base, { config: llamaJson, tensors: randomCheckpointTensors(config, 4), tokenizer });
const baseFp = fingerprint(base, config);

/** A copy of the base folder with `edit` applied to the bytes of tensor `name` (in place, same length). */
function edited(name: string, edit: (bytes: Buffer) => void): string {
  const dir = join(tmp, `m${counter++}`);
  cpSync(base, dir, { recursive: true });
  const file = join(dir, 'model.safetensors');
  const t = readSafetensorsHeader(file);
  const entry = t.tensors.get(name)!;
  const bytes = Buffer.alloc(entry.end - entry.begin);
  const fd = openSync(file, 'r+');
  readSync(fd, bytes, 0, bytes.length, t.dataOffset + entry.begin);
  edit(bytes);
  writeSync(fd, bytes, 0, bytes.length, t.dataOffset + entry.begin);
  closeSync(fd);
  return dir;
}

/** A fine-tune's change: every weight moves a little. */
const finetune = (bytes: Buffer): void => {
  const f = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
  for (let i = 0; i < f.length; i++) f[i] = f[i]! * 1.001 + 1e-5;
};
const flipAt = (at: number) => (bytes: Buffer): void => { bytes[at] = bytes[at]! ^ 1; };

describe('fingerprint covers every tensor', () => {
  test('changing q_proj or the embeddings (a fine-tune) changes it', () => {
    assert.notEqual(fingerprint(edited('model.layers.0.self_attn.q_proj.weight', finetune), config), baseFp);
    assert.notEqual(fingerprint(edited('model.embed_tokens.weight', finetune), config), baseFp);
    assert.notEqual(fingerprint(edited('lm_head.weight', finetune), config), baseFp);
  });

  test('a small tensor is hashed whole: one byte anywhere in q_proj or a norm changes it', () => {
    assert.notEqual(fingerprint(edited('model.layers.1.self_attn.q_proj.weight', flipAt(12345)), config), baseFp);
    assert.notEqual(fingerprint(edited('model.norm.weight', flipAt(255)), config), baseFp);
  });

  test('a large tensor is sampled: one byte in its first or last block changes it', () => {
    const bytes = 600 * 64 * 4;
    assert.notEqual(fingerprint(edited('model.embed_tokens.weight', flipAt(0)), config), baseFp);
    assert.notEqual(fingerprint(edited('model.embed_tokens.weight', flipAt(bytes - 1)), config), baseFp);
  });

  test('down projections, which STAR patches a few neurons at a time, are hashed whole', () => {
    // one neuron (a column of [hidden, intermediate]) changed in one row, mid-tensor
    assert.notEqual(fingerprint(edited('model.layers.1.mlp.down_proj.weight', flipAt((31 * 96 + 50) * 4 + 2)), config), baseFp);
  });

  test('the same bytes in another folder give the same fingerprint', () => {
    assert.equal(fingerprint(edited('model.embed_tokens.weight', () => undefined), config), baseFp);
  });
});

describe('what is hashed, and what it costs', () => {
  test('sampleRanges: whole up to 16 × 4 KiB, else 16 evenly spaced 4 KiB blocks from the first to the last byte', () => {
    assert.deepEqual(sampleRanges(10), [{ start: 0, length: 10 }]);
    assert.deepEqual(sampleRanges(SAMPLE_BLOCKS * SAMPLE_BLOCK_BYTES), [{ start: 0, length: SAMPLE_BLOCKS * SAMPLE_BLOCK_BYTES }]);
    const n = 10_000_000;
    const r = sampleRanges(n);
    assert.equal(r.length, SAMPLE_BLOCKS);
    assert.deepEqual(r[0], { start: 0, length: SAMPLE_BLOCK_BYTES });
    assert.equal(r.at(-1)!.start + r.at(-1)!.length, n);
    const gaps = r.slice(1).map((x, i) => x.start - r[i]!.start);
    assert.ok(Math.max(...gaps) - Math.min(...gaps) <= 1, `even spacing: ${gaps.join(',')}`);
    assert.equal(sampleRanges(0).length, 0);
  });

  test('a 7B Llama in BF16 (13.5 GB): the down projections and 64 KiB of each other tensor, under a quarter of the file', () => {
    const c = parseConfig({ ...llamaJson, hidden_size: 4096, intermediate_size: 11008, num_hidden_layers: 32, num_attention_heads: 32, vocab_size: 32000 });
    const tensors: SafetensorsHeader['tensors'] = new Map();
    let at = 0;
    const add = (name: string, shape: number[]): void => {
      const bytes = shape.reduce((a, b) => a * b, 1) * 2;
      tensors.set(name, { dtype: 'BF16', shape, begin: at, end: at + bytes });
      at += bytes;
    };
    add('model.embed_tokens.weight', [32000, 4096]);
    for (let l = 0; l < 32; l++) {
      const p = `model.layers.${l}`;
      for (const n of ['q', 'k', 'v', 'o']) add(`${p}.self_attn.${n}_proj.weight`, [4096, 4096]);
      add(`${p}.mlp.gate_proj.weight`, [11008, 4096]);
      add(`${p}.mlp.up_proj.weight`, [11008, 4096]);
      add(`${p}.mlp.down_proj.weight`, [4096, 11008]);
      add(`${p}.input_layernorm.weight`, [4096]);
      add(`${p}.post_attention_layernorm.weight`, [4096]);
    }
    add('model.norm.weight', [4096]);
    add('lm_head.weight', [32000, 4096]);
    const header: SafetensorsHeader = { tensors, metadata: {}, dataOffset: 1000, headerBytes: Buffer.alloc(0) };
    const ranges = hashedRanges(header, new Set(downProjectionNames(c)));
    assert.equal(ranges.length, tensors.size, 'every tensor is hashed');
    const hashed = ranges.reduce((n, t) => n + t.ranges.reduce((m, r) => m + r.length, 0), 0);
    const down = 32 * 4096 * 11008 * 2;
    const others = (tensors.size - 32) * SAMPLE_BLOCKS * SAMPLE_BLOCK_BYTES;
    assert.ok(hashed <= down + others, `${hashed} bytes hashed`);
    assert.ok(hashed < at / 4, `${(hashed / 1e9).toFixed(2)} GB of ${(at / 1e9).toFixed(2)} GB`);
    for (const { ranges: rs } of ranges) for (const r of rs) assert.ok(r.start >= 1000 && r.start + r.length <= 1000 + at);
  });
});
