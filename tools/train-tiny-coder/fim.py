#!/usr/bin/python3
"""Fill-in-the-middle training examples for models/tiny-coder.

A FIM example cuts a document at two character positions into prefix, middle and
suffix, encodes the three parts separately (as the extension does: the cursor may
fall inside a word, so the parts are tokenised apart, never jointly) and lays them
out in one of the two orders the extension's FIM table knows for StarCoder-style
tokens (src/runtime/fim.ts):

  PSM: <fim_prefix> prefix <fim_suffix> suffix <fim_middle> middle <|endoftext|>
  SPM: <fim_prefix> <fim_suffix> suffix <fim_middle> prefix middle <|endoftext|>

The middle ends with <|endoftext|>: that is how the model says "the hole is filled",
and the extension stops decoding there.

Where the holes are: mostly where an editor asks, in one line.
  - rest-of-line (35 %): the cursor anywhere in a line, the middle runs to the line's end;
  - in-line hole (35 %): the middle is a piece of one line, the rest of the line is the suffix
    (a call's closing bracket, the end of an expression);
  - whole lines (15 %): the middle is one to three lines, from the start of a line's code;
  - random span (15 %): two uniform cut points at most 256 characters apart (the FIM paper's
    document-level transform, kept short to fit the context).
The prefix keeps at most the context the extension keeps (the nearest text), cut on the left,
the suffix is cut on the right; a row is at most seq_len + 1 tokens and padded with <fim_pad>,
whose positions carry no loss.

Rows are written to work/fim-{split}.u16 (n x (seq_len + 1), uint16) with their lengths in
work/fim-{split}.len.u16; `python3 fim.py` builds both from the encoded corpus documents.
"""
import json
import os
import random
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
WORK = os.path.join(HERE, "work")
sys.path.insert(0, HERE)

KINDS = (("rest-of-line", 0.35), ("in-line", 0.35), ("lines", 0.15), ("random", 0.15))


def pick_kind(rng):
    x, acc = rng.random(), 0.0
    for k, p in KINDS:
        acc += p
        if x < acc:
            return k
    return KINDS[-1][0]


def line_spans(text):
    """(start, end) of every line's content (end excludes the newline) holding some code."""
    out, pos = [], 0
    for line in text.split("\n"):
        if line.strip():
            out.append((pos, pos + len(line)))
        pos += len(line) + 1
    return out


def cut_points(text, kind, rng):
    """(a, b): the middle is text[a:b]; None when the document has no place for this kind."""
    lines = line_spans(text)
    if not lines:
        return None
    s, e = lines[rng.randrange(len(lines))]
    code = s + (len(text[s:e]) - len(text[s:e].lstrip()))  # first non-blank character
    if kind == "rest-of-line":
        a = rng.randint(code, e - 1) if e - 1 > code else code
        return a, e
    if kind == "in-line":
        if e - code < 2:
            return None
        a = rng.randint(code, e - 1)
        b = rng.randint(a + 1, e)
        return a, b
    if kind == "lines":
        k = rng.randint(1, 3)
        i = lines.index((s, e))
        last = lines[min(len(lines) - 1, i + k - 1)][1]
        return code, min(len(text), last + 1)  # with the last line's newline
    a = rng.randrange(len(text))
    b = min(len(text), a + rng.randint(1, 256))
    return a, b


def example(tok, text, rng, seq_len, spm):
    """One FIM row (list of ids, at most seq_len + 1 long) or None."""
    kind = pick_kind(rng)
    cut = cut_points(text, kind, rng)
    if cut is None:
        return None
    a, b = cut
    # about 2.65 characters per token here: take a little more text than fits and cut tokens
    pre = tok.encode(text[max(0, a - 3 * seq_len):a])
    mid = tok.encode(text[a:b])
    suf = tok.encode(text[b:b + 3 * seq_len])
    budget = seq_len + 1 - 4 - len(mid)  # 3 sentinels + end of text
    if budget < 16:
        return None
    # the suffix gets a random share up to half of the room (the extension keeps a smaller
    # suffix than prefix); the prefix takes the rest from the right
    n_suf = min(len(suf), rng.randint(0, budget // 2))
    n_pre = min(len(pre), budget - n_suf)
    pre, suf = pre[len(pre) - n_pre:], suf[:n_suf]
    if spm:
        ids = [tok.fim_prefix_id, tok.fim_suffix_id] + suf + [tok.fim_middle_id] + pre + mid + [tok.eot_id]
    else:
        ids = [tok.fim_prefix_id] + pre + [tok.fim_suffix_id] + suf + [tok.fim_middle_id] + mid + [tok.eot_id]
    return ids


def build(tok, docs, n_rows, seq_len, seed, spm_share=0.5):
    """n_rows padded rows and their lengths; documents are drawn in proportion to their size."""
    rng = random.Random(seed)
    texts = [t for _, t in docs if t.strip()]
    weights = np.cumsum([len(t) for t in texts], dtype=np.float64)
    rows = np.full((n_rows, seq_len + 1), tok.fim_pad_id, dtype=np.uint16)
    lens = np.zeros(n_rows, dtype=np.uint16)
    i = 0
    while i < n_rows:
        d = int(np.searchsorted(weights, rng.random() * weights[-1], side="right"))
        ids = example(tok, texts[min(d, len(texts) - 1)], rng, seq_len, rng.random() < spm_share)
        if ids is None:
            continue
        rows[i, :len(ids)] = ids
        lens[i] = len(ids)
        i += 1
    return rows, lens


def load_rows(split):
    rows = np.fromfile(os.path.join(WORK, f"fim-{split}.u16"), dtype=np.uint16)
    lens = np.fromfile(os.path.join(WORK, f"fim-{split}.len.u16"), dtype=np.uint16)
    return rows.reshape(len(lens), -1), lens


def main():
    import corpus
    from bpe import Tokenizer
    with open(os.path.join(HERE, sys.argv[1] if len(sys.argv) > 1 else "hparams.json")) as f:
        hp = json.load(f)
    tok = Tokenizer.load(os.path.join(WORK, "tokenizer", "tokenizer.json"))
    c = corpus.load()
    fim = hp["fim"]
    for split, n, seed in (("train", fim["train_rows"], hp["seed"]), ("heldout", fim["heldout_rows"], hp["seed"] + 1)):
        rows, lens = build(tok, c[split], n, hp["seq_len"], seed, fim["spm_share"])
        rows.tofile(os.path.join(WORK, f"fim-{split}.u16"))
        lens.tofile(os.path.join(WORK, f"fim-{split}.len.u16"))
        print(f"fim {split}: {n} rows, mean {lens.mean():.0f} tokens")


if __name__ == "__main__":
    main()
