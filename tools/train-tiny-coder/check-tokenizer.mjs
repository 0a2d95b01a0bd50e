// Checks the tiny-coder tokenizer through the project's runtime tokenizer
// (@huggingface/tokenizers): decode(encode(x)) == x on every corpus file, and
// Node ids == Python ids (work/{train,heldout}.u16, written by bpe.py) on every
// file, since training uses the Python-side encoding.
// Usage: node tools/train-tiny-coder/check-tokenizer.mjs [tokenizer dir]
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tokenizer } from '@huggingface/tokenizers';

const here = dirname(fileURLToPath(import.meta.url));
const tokDir = resolve(process.argv[2] ?? join(here, 'work', 'tokenizer'));
const tj = JSON.parse(readFileSync(join(tokDir, 'tokenizer.json'), 'utf8'));
const tc = JSON.parse(readFileSync(join(tokDir, 'tokenizer_config.json'), 'utf8'));
const tok = new Tokenizer(tj, tc);
const eot = tj.added_tokens.find((t) => t.content === '<|endoftext|>')?.id;
if (eot === undefined) throw new Error(`${tokDir}/tokenizer.json has no <|endoftext|> added token`);

const list = JSON.parse(execFileSync('/usr/bin/python3', [join(here, 'corpus.py'), '--list'], { encoding: 'utf8', maxBuffer: 1 << 26 }));

function pythonDocs(split) {
  const buf = readFileSync(join(here, 'work', `${split}.u16`));
  const ids = new Uint16Array(buf.buffer, buf.byteOffset, buf.length / 2);
  const docs = [];
  let start = 0;
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] === eot) { docs.push(ids.subarray(start, i)); start = i + 1; }
  }
  return docs;
}

let files = 0, roundTripFail = 0, idMismatch = 0, tokens = 0;
for (const split of ['train', 'heldout']) {
  const py = pythonDocs(split);
  if (py.length !== list[split].length) {
    throw new Error(`work/${split}.u16 has ${py.length} documents but the corpus has ${list[split].length} files: re-run bpe.py`);
  }
  list[split].forEach((rel, k) => {
    const text = readFileSync(join(list.root, rel), 'utf8');
    const ids = tok.encode(text).ids;
    files++; tokens += ids.length;
    // decode() rejects an empty id list (empty __init__.py files)
    const back = ids.length === 0 ? '' : tok.decode(ids);
    if (back !== text) { roundTripFail++; console.log(`round-trip FAILED: ${split} ${rel}`); }
    const p = py[k];
    let same = p.length === ids.length;
    for (let i = 0; same && i < ids.length; i++) same = p[i] === ids[i];
    if (!same) {
      idMismatch++;
      let i = 0; while (i < ids.length && p[i] === ids[i]) i++;
      console.log(`ids differ: ${split} ${rel} at token ${i}: node ${ids.slice(i, i + 5)} python ${Array.from(p.subarray(i, i + 5))}`);
    }
  });
}
console.log(JSON.stringify({ tokenizer: tokDir, files, tokens, roundTripFail, idMismatch }));
process.exit(roundTripFail || idMismatch ? 1 : 0);
