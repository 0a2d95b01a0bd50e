#!/usr/bin/python3
"""Byte-level BPE tokenizer for models/tiny-coder: trainer, encoder, decoder and
writer of the Hugging Face tokenizer.json / tokenizer_config.json.

The pre-tokenizer is the Hugging Face `ByteLevel` one with use_regex=true (the
GPT-2 pattern). The project's runtime (@huggingface/tokenizers, JS) runs that
pattern as a JavaScript `u`-mode RegExp, so the Python side rebuilds exactly
those semantics: `\\p{L}` / `\\p{N}` from unicodedata categories and `\\s` as
the ECMAScript white-space set (Python's own `\\s` differs: it includes
U+001C..U+001F and U+0085 and lacks U+FEFF). For code the pattern behaves
well: `\\s+(?!\\S)` makes "newline + indentation" one pre-token, leaving the
last space to prefix the following word.

Training works on unique pre-tokens with their frequencies and updates pair
counts incrementally, so a 4k vocabulary over ~10 MB trains in a few minutes.
"""
import heapq
import json
import os
import re
import sys
import unicodedata
from collections import Counter

EOT = "<|endoftext|>"
# Fill-in-the-middle sentinels (StarCoder's names, so the extension's FIM table detects the
# format; tiny-coder is trained on both PSM and SPM orders, see fim.py). They follow EOT:
# ids eot+1 .. eot+4.
FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX, FIM_PAD = "<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>"
FIM_TOKENS = [FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX, FIM_PAD]
SPECIALS = [EOT] + FIM_TOKENS


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable unicode char table (the one the
    ByteLevel pre-tokenizer/decoder use)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


BYTE_ENC = bytes_to_unicode()
BYTE_DEC = {v: k for k, v in BYTE_ENC.items()}


def _ranges_class(pred):
    """Regex character-class body for all code points satisfying pred."""
    parts, start, prev = [], None, None
    for cp in range(0x110000):
        if pred(cp):
            if start is None:
                start = cp
            prev = cp
        elif start is not None:
            parts.append((start, prev))
            start = None
    if start is not None:
        parts.append((start, prev))

    def esc(c):
        return "\\U%08x" % c
    return "".join(esc(a) if a == b else esc(a) + "-" + esc(b) for a, b in parts)


def build_pretokenizer_regex():
    cat = unicodedata.category
    L = _ranges_class(lambda c: cat(chr(c)).startswith("L"))
    N = _ranges_class(lambda c: cat(chr(c)).startswith("N"))
    ws = {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0xFEFF, 0x2028, 0x2029}
    S = _ranges_class(lambda c: c in ws or cat(chr(c)) == "Zs")
    pat = (rf"'s|'t|'re|'ve|'m|'ll|'d| ?[{L}]+| ?[{N}]+| ?[^{S}{L}{N}]+"
           rf"|[{S}]+(?![^{S}])|[{S}]+")
    return re.compile(pat)


_PRE = None


def pretokenize(text):
    global _PRE
    if _PRE is None:
        _PRE = build_pretokenizer_regex()
    return _PRE.findall(text)


def to_symbols(piece):
    return "".join(BYTE_ENC[b] for b in piece.encode("utf-8"))


def train(texts, vocab_size, log=print):
    """Learns merges on `texts`. Returns list of (a, b) merge pairs of byte-level
    strings; final vocab = 256 bytes + merges + the special tokens (EOT and the FIM sentinels)."""
    n_merges = vocab_size - 256 - len(SPECIALS)
    counts = Counter()
    for t in texts:
        counts.update(pretokenize(t))
    log(f"bpe: {len(counts)} unique pre-tokens")
    # symbols as ints: 0..255 bytes (by byte value), 256+ merged
    id2str = [BYTE_ENC[b] for b in range(256)]
    words = [list(w.encode("utf-8")) for w in counts]
    freqs = list(counts.values())
    pairs = Counter()
    where = {}
    for i, (w, f) in enumerate(zip(words, freqs)):
        for p in zip(w, w[1:]):
            pairs[p] += f
            where.setdefault(p, set()).add(i)
    heap = [(-c, id2str[a], id2str[b], a, b) for (a, b), c in pairs.items()]
    heapq.heapify(heap)
    merges = []
    while len(merges) < n_merges and heap:
        negc, _, _, a, b = heapq.heappop(heap)
        if pairs.get((a, b), 0) != -negc or -negc <= 0:
            continue  # stale heap entry
        new = len(id2str)
        id2str.append(id2str[a] + id2str[b])
        merges.append((id2str[a], id2str[b]))
        changed = set()
        for i in where.pop((a, b)):
            w, f = words[i], freqs[i]
            if len(w) < 2:
                continue
            for p in zip(w, w[1:]):
                pairs[p] -= f
                changed.add(p)
            out, j = [], 0
            while j < len(w):
                if j + 1 < len(w) and w[j] == a and w[j + 1] == b:
                    out.append(new)
                    j += 2
                else:
                    out.append(w[j])
                    j += 1
            words[i] = out
            for p in zip(out, out[1:]):
                pairs[p] += f
                changed.add(p)
                where.setdefault(p, set()).add(i)
        pairs.pop((a, b), None)
        for p in changed:
            c = pairs.get(p, 0)
            if c > 0:
                heapq.heappush(heap, (-c, id2str[p[0]], id2str[p[1]], p[0], p[1]))
            elif p in pairs:
                del pairs[p]
        if len(merges) % 500 == 0:
            log(f"bpe: {len(merges)}/{n_merges} merges, last {merges[-1]!r} count {-negc}")
    return merges


class Tokenizer:
    def __init__(self, merges):
        self.merges = [tuple(m) for m in merges]
        self.vocab = {BYTE_ENC[b]: b for b in range(256)}
        for a, b in self.merges:
            self.vocab[a + b] = len(self.vocab)
        self.eot_id = len(self.vocab)
        for sp in SPECIALS:
            self.vocab[sp] = len(self.vocab)
        self.special_ids = {self.vocab[sp]: sp for sp in SPECIALS}
        self.fim_prefix_id, self.fim_middle_id, self.fim_suffix_id, self.fim_pad_id = (self.vocab[t] for t in FIM_TOKENS)
        self.inv = {i: s for s, i in self.vocab.items()}
        self.ranks = {m: i for i, m in enumerate(self.merges)}
        self.cache = {}

    @classmethod
    def load(cls, tokenizer_json):
        with open(tokenizer_json) as f:
            tj = json.load(f)
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in tj["model"]["merges"]]
        tok = cls(merges)
        if {k: v for k, v in tok.vocab.items() if k not in SPECIALS} != tj["model"]["vocab"]:
            raise ValueError(f"{tokenizer_json}: vocab does not match its merges; re-run bpe.py train")
        return tok

    def bpe(self, sym):
        if sym in self.cache:
            return self.cache[sym]
        word = list(sym)
        while len(word) > 1:
            best, bi = None, -1
            for i in range(len(word) - 1):
                r = self.ranks.get((word[i], word[i + 1]))
                if r is not None and (best is None or r < best):
                    best, bi = r, i
            if best is None:
                break
            a, b = self.merges[best]
            out, j = [], 0
            while j < len(word):
                if j + 1 < len(word) and word[j] == a and word[j + 1] == b:
                    out.append(a + b)
                    j += 2
                else:
                    out.append(word[j])
                    j += 1
            word = out
        ids = [self.vocab[s] for s in word]
        self.cache[sym] = ids
        return ids

    def encode(self, text):
        """Ids of `text` (plain text: the EOT string is not treated as special here;
        callers split on documents themselves)."""
        ids = []
        for piece in pretokenize(text):
            ids.extend(self.bpe(to_symbols(piece)))
        return ids

    def decode(self, ids):
        parts = []
        for i in ids:
            s = self.inv[i]
            parts.append(s.encode("utf-8") if i in self.special_ids else bytes(BYTE_DEC[c] for c in s))
        return b"".join(parts).decode("utf-8", errors="replace")

    def save_hf(self, out_dir, model_max_length):
        os.makedirs(out_dir, exist_ok=True)
        added = [{"id": self.vocab[sp], "content": sp, "single_word": False, "lstrip": False,
                  "rstrip": False, "normalized": False, "special": True} for sp in SPECIALS]
        tj = {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": added,
            "normalizer": None,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
            "post_processor": None,
            "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
            "model": {
                "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                "vocab": {k: v for k, v in self.vocab.items() if k not in SPECIALS},
                "merges": [f"{a} {b}" for a, b in self.merges],
            },
        }
        with open(os.path.join(out_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(tj, f, ensure_ascii=False)
        cfg = {
            "add_bos_token": False,
            "add_eos_token": False,
            "added_tokens_decoder": {str(a["id"]): {k: v for k, v in a.items() if k != "id"} for a in added},
            "bos_token": None,
            "eos_token": EOT,
            "additional_special_tokens": FIM_TOKENS,
            "pad_token": EOT,
            "unk_token": None,
            "model_max_length": model_max_length,
            "tokenizer_class": "PreTrainedTokenizerFast",
            "clean_up_tokenization_spaces": False,
        }
        with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
            json.dump(cfg, f, indent=2)


def encode_docs(tok, docs):
    """Concatenation of documents, each followed by EOT."""
    import numpy as np
    out = []
    for _, text in docs:
        out.extend(tok.encode(text))
        out.append(tok.eot_id)
    return np.asarray(out, dtype=np.uint16)


def main():
    import time
    import numpy as np
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    import corpus
    with open(os.path.join(here, "hparams.json")) as f:
        hp = json.load(f)
    work = os.path.join(here, "work")
    tok_dir = os.path.join(work, "tokenizer")
    c = corpus.load()
    t0 = time.time()
    if "--from" in sys.argv:
        # keep an existing tokenizer's merges (the FIM continuation of models/tiny-coder keeps
        # its BPE) and write it with the current special tokens
        src = sys.argv[sys.argv.index("--from") + 1]
        tok = Tokenizer.load(src)
        tok.save_hf(tok_dir, hp["max_position_embeddings"])
        print(f"bpe: merges of {src} -> {tok_dir}")
    elif "--encode-only" not in sys.argv:
        merges = train([t for _, t in c["train"]], hp["vocab_size"])
        tok = Tokenizer(merges)
        tok.save_hf(tok_dir, hp["max_position_embeddings"])
        print(f"bpe: trained {len(merges)} merges in {time.time() - t0:.0f}s -> {tok_dir}")
    tok = Tokenizer.load(os.path.join(tok_dir, "tokenizer.json"))
    bad = 0
    for split in ("train", "heldout"):
        arr = encode_docs(tok, c[split])
        arr.tofile(os.path.join(work, f"{split}.u16"))
        nbytes = sum(len(t.encode()) for _, t in c[split])
        print(f"{split}: {len(c[split])} files, {len(arr)} tokens, {nbytes / len(arr):.2f} bytes/token")
        for rel, text in c[split]:
            if tok.decode(tok.encode(text)) != text:
                bad += 1
                print("python round-trip FAILED:", rel)
    with open(os.path.join(work, "heldout-docs.json"), "w") as f:
        json.dump([rel for rel, _ in c["heldout"]], f)
    print(f"python round-trip failures: {bad}; undecodable files skipped: {len(c['undecodable'])}")
    if bad:
        sys.exit(1)


if __name__ == "__main__":
    main()
