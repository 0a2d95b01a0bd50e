#!/usr/bin/python3
"""Training corpus for models/tiny-coder: the Python standard library of the
interpreter running this script, split by top-level module into train and
held-out sets.

Why these choices:
- The stdlib root is asked from Python (sysconfig) so the tool follows whatever
  Python the machine has instead of a hard-coded path.
- site-packages / dist-packages are third-party code: excluded (they are kept
  unseen for later evaluation).
- Test directories (`test/` package, any `test`, `tests`, `idle_test` dir) are
  excluded: on Debian they hold only the regrtest machinery and a few
  unittest self-tests (the real suite lives in a separate package), tests of a
  held-out module would leak that module's API into training, and the
  training budget covers well under two epochs of the non-test stdlib anyway.
- `_sysconfigdata_*.py` are build-flag dictionaries generated for this
  machine, not written code: excluded.
- The split is by top-level module (a package counts as one unit) so that the
  held-out score measures generalisation to unseen modules, not to unseen
  lines of seen files.
"""
import hashlib
import json
import os
import random
import sys
import sysconfig

HERE = os.path.dirname(os.path.abspath(__file__))
WORK = os.path.join(HERE, "work")
HELDOUT_LIST = os.path.join(HERE, "heldout-modules.txt")

EXCLUDED_DIRS = {"site-packages", "dist-packages", "__pycache__", "test", "tests", "idle_test"}
SPLIT_SEED = 20261124
HELDOUT_TARGET = 0.06  # fraction of corpus bytes
HELDOUT_MAX = 0.08


class CorpusError(Exception):
    pass


def stdlib_root():
    root = sysconfig.get_paths()["stdlib"]
    if not os.path.isdir(root):
        raise CorpusError(f"stdlib path {root!r} reported by sysconfig is not a directory; "
                          "run this tool with the system python3 that has its standard library installed")
    return root


def module_of(rel):
    """Top-level module name of a path relative to the stdlib root."""
    first = rel.split(os.sep)[0]
    return first[:-3] if first.endswith(".py") else first


def list_files(root=None):
    """Sorted list of (relative path, top-level module) for every corpus file."""
    root = root or stdlib_root()
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDED_DIRS)
        for fn in sorted(filenames):
            if not fn.endswith(".py") or fn.startswith("_sysconfigdata_"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, fn), root)
            out.append((rel, module_of(rel)))
    out.sort()
    if not out:
        raise CorpusError(f"no .py files found under {root}")
    return out


def read_texts(root, files):
    """Returns ({rel: text}, [undecodable rel paths])."""
    texts, bad = {}, []
    for rel, _ in files:
        with open(os.path.join(root, rel), "rb") as f:
            raw = f.read()
        try:
            texts[rel] = raw.decode("utf-8")
        except UnicodeDecodeError:
            bad.append(rel)
    return texts, bad


def choose_heldout(sizes):
    """sizes: {module: bytes}. Deterministic seeded choice of held-out modules
    totalling about HELDOUT_TARGET of the bytes, never above HELDOUT_MAX."""
    total = sum(sizes.values())
    mods = sorted(sizes)
    random.Random(SPLIT_SEED).shuffle(mods)
    held, acc = [], 0
    for m in mods:
        if acc >= HELDOUT_TARGET * total:
            break
        if acc + sizes[m] > HELDOUT_MAX * total:
            continue
        held.append(m)
        acc += sizes[m]
    return sorted(held)


def load():
    """The corpus: dict with root, train/heldout lists of (rel, text), heldout modules, skipped files."""
    root = stdlib_root()
    files = list_files(root)
    texts, bad = read_texts(root, files)
    sizes = {}
    for rel, mod in files:
        if rel in texts:
            sizes[mod] = sizes.get(mod, 0) + len(texts[rel].encode("utf-8"))
    held = set(choose_heldout(sizes))
    train = [(rel, texts[rel]) for rel, mod in files if rel in texts and mod not in held]
    heldout = [(rel, texts[rel]) for rel, mod in files if rel in texts and mod in held]
    return {"root": root, "train": train, "heldout": heldout,
            "heldout_modules": sorted(held), "undecodable": bad,
            "python": sys.version.split()[0]}


def fingerprint(docs):
    h = hashlib.sha256()
    for rel, text in docs:
        h.update(rel.encode() + b"\0" + text.encode("utf-8") + b"\0")
    return h.hexdigest()


def main():
    c = load()
    if "--list" in sys.argv:
        # consumed by check-tokenizer.mjs
        print(json.dumps({"root": c["root"], "train": [r for r, _ in c["train"]],
                          "heldout": [r for r, _ in c["heldout"]]}))
        return
    os.makedirs(WORK, exist_ok=True)
    with open(HELDOUT_LIST, "w") as f:
        f.write("# Held-out top-level modules of the Python standard library (tools/train-tiny-coder/corpus.py,\n"
                f"# seed {SPLIT_SEED}, ~{HELDOUT_TARGET:.0%} of corpus bytes). Never used for training.\n")
        for m in c["heldout_modules"]:
            f.write(m + "\n")
    tb = sum(len(t.encode()) for _, t in c["train"])
    hb = sum(len(t.encode()) for _, t in c["heldout"])
    manifest = {"root": c["root"], "python": c["python"],
                "train_files": len(c["train"]), "heldout_files": len(c["heldout"]),
                "train_bytes": tb, "heldout_bytes": hb,
                "heldout_fraction": hb / (tb + hb),
                "heldout_modules": c["heldout_modules"], "undecodable": c["undecodable"],
                "train_sha256": fingerprint(c["train"]), "heldout_sha256": fingerprint(c["heldout"])}
    with open(os.path.join(WORK, "corpus-manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(json.dumps({k: v for k, v in manifest.items() if k != "heldout_modules"}, indent=1))
    print("held-out modules:", " ".join(c["heldout_modules"]))


if __name__ == "__main__":
    main()
