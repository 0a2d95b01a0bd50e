#!/usr/bin/python3
"""Exports tiny-coder to models/tiny-coder in the Hugging Face layout:
config.json (LlamaForCausalLM), model.safetensors (written here: 8-byte LE
header length + JSON header + raw little-endian data), tokenizer files,
generation_config.json and export-check.json (weights fingerprint and greedy
completions computed by torch at export time, for runtime regression tests).

Weights are stored as fp32 when they fit the 25 MB budget of models/tiny-coder
(with room for the tokenizer and the loss curve), else as fp16.

CLI (after training): `/usr/bin/python3 tools/train-tiny-coder/export.py`
exports work/ckpt.pt, then reloads the written model.safetensors into the
torch model and measures held-out loss / top-1 accuracy over all held-out
windows, written to work/torch-eval.json.
"""
import hashlib
import json
import os
import shutil
import struct
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

DTYPES = {torch.float16: ("F16", np.float16), torch.float32: ("F32", np.float32)}
NP_OF = {"F16": np.float16, "F32": np.float32, "BF16": None}

# They end before a newline: byte-level BPE joins a newline with the next line's
# indentation, so a prompt ending in a bare "\n" is an unnatural token boundary.
CHECK_PROMPTS = [
    "import os\n\n\ndef read_file(path):",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"",
    "for i in range(10):\n    if i % 2 == 0:",
]
CHECK_NEW_TOKENS = 24


WEIGHTS_BUDGET_BYTES = 22_000_000


class ExportError(Exception):
    pass


def weight_dtype(n_params):
    return torch.float32 if 4 * n_params <= WEIGHTS_BUDGET_BYTES else torch.float16


def hf_config(cfg, hp, eot_id, dtype):
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": cfg["hidden_size"],
        "intermediate_size": cfg["intermediate_size"],
        "num_hidden_layers": cfg["num_hidden_layers"],
        "num_attention_heads": cfg["num_attention_heads"],
        "num_key_value_heads": cfg["num_key_value_heads"],
        "head_dim": cfg["head_dim"],
        "max_position_embeddings": cfg["max_position_embeddings"],
        "rms_norm_eps": cfg["rms_norm_eps"],
        "rope_theta": cfg["rope_theta"],
        "rope_scaling": None,
        "vocab_size": cfg["vocab_size"],
        "tie_word_embeddings": True,
        # no separate BOS token: documents were trained as "<|endoftext|> text", so
        # <|endoftext|> doubles as BOS (GPT-2 convention)
        "bos_token_id": eot_id,
        "eos_token_id": eot_id,
        "pad_token_id": eot_id,
        "hidden_act": "silu",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "pretraining_tp": 1,
        "initializer_range": cfg["initializer_range"],
        "use_cache": True,
        "torch_dtype": "float32" if dtype == torch.float32 else "float16",
    }


def write_safetensors(path, tensors, metadata=None):
    """tensors: ordered dict name -> torch tensor (contiguous, fp16/fp32)."""
    header, offset, blobs = {}, 0, []
    for name, t in tensors.items():
        code, npt = DTYPES[t.dtype]
        raw = t.detach().cpu().contiguous().numpy().astype(npt).astype(np.dtype(npt).newbyteorder("<")).tobytes()
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * (-len(hj) % 8)  # data section 8-byte aligned
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        npt = NP_OF.get(info["dtype"])
        if npt is None:
            raise ExportError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
        b, e = info["data_offsets"]
        arr = np.frombuffer(data[base + b:base + e], dtype=np.dtype(npt).newbyteorder("<")).reshape(info["shape"])
        out[name] = torch.from_numpy(arr.astype(np.float32))
    return out


def hf_tensors(state_dict, n_layers):
    """HF tensor order/naming; state_dict keys already use HF names."""
    names = ["model.embed_tokens.weight"]
    for i in range(n_layers):
        p = f"model.layers.{i}."
        names += [p + "input_layernorm.weight"] + [p + f"self_attn.{x}_proj.weight" for x in "qkvo"] \
            + [p + "post_attention_layernorm.weight"] + [p + f"mlp.{x}_proj.weight" for x in ("gate", "up", "down")]
    names.append("model.norm.weight")
    missing = set(names) ^ set(state_dict)
    if missing:
        raise ExportError(f"state dict and HF layout differ on {sorted(missing)}")
    dtype = weight_dtype(sum(state_dict[n].numel() for n in names))
    return {n: state_dict[n].to(dtype) for n in names}


@torch.no_grad()
def greedy(model, tok, prompt, n_new):
    ids = [tok.eot_id] + tok.encode(prompt)
    start = len(ids)
    for _ in range(n_new):
        logits = model(torch.tensor([ids[-model.cfg["max_position_embeddings"]:]]))
        nxt = int(logits[0, -1].argmax())
        ids.append(nxt)
        if nxt == tok.eot_id:
            break
    return ids[start:]


def export_state(state_dict, cfg, hp, out_dir, metrics):
    """Writes the whole models/tiny-coder folder from a (fp32) state dict."""
    from bpe import Tokenizer
    from model import LlamaForCausalLM
    os.makedirs(out_dir, exist_ok=True)
    tok_dir = os.path.join(HERE, "work", "tokenizer")
    for fn in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(tok_dir, fn), os.path.join(out_dir, fn))
    tok = Tokenizer.load(os.path.join(out_dir, "tokenizer.json"))
    if len(tok.vocab) != cfg["vocab_size"]:
        raise ExportError(f"tokenizer has {len(tok.vocab)} tokens, model vocab_size is {cfg['vocab_size']}")
    tensors = hf_tensors(state_dict, cfg["num_hidden_layers"])
    st_path = os.path.join(out_dir, "model.safetensors")
    write_safetensors(st_path, tensors, {"format": "pt"})
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(hf_config(cfg, hp, tok.eot_id, next(iter(tensors.values())).dtype), f, indent=2)
    with open(os.path.join(out_dir, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": tok.eot_id, "eos_token_id": tok.eot_id, "pad_token_id": tok.eot_id,
                   "do_sample": False, "max_new_tokens": 64}, f, indent=2)
    # completions from the weights exactly as shipped (fp32 compute)
    model = LlamaForCausalLM(cfg)
    model.load_state_dict(read_safetensors(st_path))
    model.eval()
    with open(st_path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    checks = []
    for p in CHECK_PROMPTS:
        ids = greedy(model, tok, p, CHECK_NEW_TOKENS)
        checks.append({"prompt": p, "prompt_ids": [tok.eot_id] + tok.encode(p),
                       "greedy_ids": ids, "greedy_text": tok.decode(ids)})
    with open(os.path.join(out_dir, "export-check.json"), "w") as f:
        json.dump({"note": "greedy completions by tools/train-tiny-coder (torch, fp32 compute on the "
                           "weights read back from model.safetensors); each prompt is prefixed with <|endoftext|> as BOS",
                   "model_safetensors_sha256": sha,
                   "param_count": sum(t.numel() for t in tensors.values()),
                   "training": metrics, "greedy": checks}, f, indent=1)
    return sha


@torch.no_grad()
def heldout_by_module(model, held, T):
    """Top-1 accuracy and loss per held-out module, same windows as the overall figure; a
    position belongs to the document of the token it predicts."""
    import corpus
    with open(os.path.join(HERE, "work", "heldout-docs.json")) as f:
        docs = json.load(f)
    from bpe import Tokenizer
    eot = Tokenizer.load(os.path.join(HERE, "work", "tokenizer", "tokenizer.json")).eot_id
    doc_of = torch.cumsum((held == eot).long(), 0) - (held == eot).long()  # EOT belongs to its document
    model.eval()
    n = (len(held) - 1) // T
    stats = {}
    for i in range(0, n, 8):
        starts = range(i * T, min(n, i + 8) * T, T)
        w = torch.stack([held[j:j + T + 1] for j in starts])
        logits = model(w[:, :-1])
        tgt = w[:, 1:]
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), tgt, reduction="none")
        ok = logits.argmax(-1) == tgt
        d = torch.stack([doc_of[j + 1:j + T + 1] for j in starts])
        for di in d.unique().tolist():
            m = d == di
            mod = corpus.module_of(docs[di])
            s = stats.setdefault(mod, [0, 0, 0.0])
            s[0] += int(ok[m].sum()); s[1] += int(m.sum()); s[2] += float(nll[m].sum())
    return {k: {"top1_acc": v[0] / v[1], "loss": v[2] / v[1], "tokens": v[1]} for k, v in sorted(stats.items())}


def main():
    """`export.py [HPARAMS]`: exports the checkpoint of that hparams file (default hparams.json:
    work/ckpt.pt; hparams-fim.json: work/ckpt-fim.pt) to models/tiny-coder and cross-checks it."""
    import train
    ck = torch.load(train.ckpt_path(sys.argv[1] if len(sys.argv) > 1 else "hparams.json"))
    cfg, hp, st = ck["config"], ck["hparams"], ck["state"]
    out_dir = train.MODEL_DIR
    last = ck["hist"]["eval"][-1] if ck["hist"]["eval"] else {}
    sha = export_state(ck["model"], cfg, hp, out_dir,
                       {"step": st["step"], "tokens_seen": st["tokens"], "train_seconds": round(st["elapsed"]),
                        "last_eval": last})
    # cross-check on the shipped file: reload model.safetensors, all held-out windows
    from model import LlamaForCausalLM
    torch.set_num_threads(hp["threads"])
    model = LlamaForCausalLM(cfg)
    model.load_state_dict(read_safetensors(os.path.join(out_dir, "model.safetensors")))
    held = train.load_tokens("heldout")
    T = hp["seq_len"]
    he = train.evaluate(model, held, train.eval_windows(held, T), T)
    per_module = heldout_by_module(model, held, T)
    trn = train.load_tokens("train")
    te = train.evaluate(model, trn, train.eval_windows(trn, T, hp["train_eval_windows"], hp["seed"]), T)
    res = {"weights": "models/tiny-coder/model.safetensors (as shipped, read back)", "sha256": sha,
           "method": f"non-overlapping {T}-token windows of the concatenated held-out files (each file followed "
                     f"by <|endoftext|>), every position scored; train: {hp['train_eval_windows']} seeded windows",
           "heldout_loss": he["loss"], "heldout_top1_acc": he["acc"], "heldout_tokens": he["tokens"],
           "train_subset_loss": te["loss"], "train_subset_top1_acc": te["acc"],
           "step": st["step"], "tokens_seen": st["tokens"], "train_seconds": round(st["elapsed"]),
           "heldout_by_module": per_module}
    with open(os.path.join(HERE, "work", "torch-eval.json"), "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
