#!/usr/bin/python3
"""Trains models/tiny-coder on the encoded stdlib corpus (work/train.u16 from
bpe.py). All hyper-parameters come from the committed hparams.json.

Schedule: linear warmup over `warmup_steps`, then cosine decay to
`min_lr_ratio * lr` driven by the fraction of the wall-clock budget
(`max_minutes`) spent. A time-driven schedule always finishes its decay inside
the budget even when other jobs share the 2 cores; the steps and tokens
actually seen are logged and stored in the checkpoint and the loss curve.

Resumable: the checkpoint (work/ckpt.pt) holds model, optimizer, step, elapsed
training seconds and history; SIGTERM saves and exits (run.sh stop).
Every `export_every_minutes` the current weights are exported (to `export_dir`,
default models/tiny-coder) so a usable model always exists; the final export goes
to models/tiny-coder.

Stages: `--hparams hparams.json` trains from scratch on plain documents;
`--hparams hparams-fim.json` continues from the weights named by `init_from` (the
stage-1 model), adds the FIM sentinel rows to the embedding and mixes `fim.rate` of
each batch from the FIM rows built by fim.py (PSM and SPM). Each hparams file has its
own checkpoint (work/ckpt.pt, work/ckpt-fim.pt).
"""
import argparse
import json
import math
import os
import signal
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from model import LlamaForCausalLM, param_count  # noqa: E402

WORK = os.path.join(HERE, "work")
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
MODEL_DIR = os.path.join(ROOT, "models", "tiny-coder")


def log(msg):
    print(time.strftime("%Y-%m-%d %H:%M:%S"), msg, flush=True)


def load_hparams(name="hparams.json"):
    with open(os.path.join(HERE, name)) as f:
        return json.load(f)


def ckpt_path(name):
    return os.path.join(WORK, os.path.splitext(os.path.basename(name))[0].replace("hparams", "ckpt") + ".pt")


def init_from(model, path):
    """Loads a stage-1 safetensors file; embedding rows the file lacks (new special tokens)
    start at the mean of the old rows, so the tied LM head gives them an average logit."""
    import export
    sd = export.read_safetensors(os.path.join(ROOT, path) if not os.path.isabs(path) else path)
    emb = sd["model.embed_tokens.weight"]
    cur = model.state_dict()["model.embed_tokens.weight"]
    if emb.shape[0] < cur.shape[0]:
        extra = emb.mean(0, keepdim=True).expand(cur.shape[0] - emb.shape[0], -1)
        sd["model.embed_tokens.weight"] = torch.cat([emb, extra], 0)
    model.load_state_dict(sd)
    return emb.shape[0]


def model_config(hp):
    keys = ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "head_dim", "max_position_embeddings", "rms_norm_eps", "rope_theta",
            "initializer_range"]
    return {k: hp[k] for k in keys}


def load_tokens(split):
    path = os.path.join(WORK, f"{split}.u16")
    if not os.path.exists(path):
        raise SystemExit(f"{path} missing: run `/usr/bin/python3 tools/train-tiny-coder/bpe.py` first")
    return torch.from_numpy(np.fromfile(path, dtype=np.uint16).astype(np.int64))


def eval_windows(tokens, seq_len, max_windows=None, seed=0):
    """Non-overlapping windows of seq_len+1 tokens (stride seq_len) covering the stream;
    optionally a seeded subset of them."""
    n = (len(tokens) - 1) // seq_len
    starts = torch.arange(n) * seq_len
    if max_windows is not None and n > max_windows:
        g = torch.Generator().manual_seed(seed)
        starts = starts[torch.randperm(n, generator=g)[:max_windows]].sort().values
    return starts


@torch.no_grad()
def evaluate(model, tokens, starts, seq_len, batch=8):
    """Mean next-token cross-entropy and top-1 accuracy over all positions of the windows."""
    model.eval()
    loss_sum, correct, count = 0.0, 0, 0
    for i in range(0, len(starts), batch):
        s = starts[i:i + batch]
        w = torch.stack([tokens[j:j + seq_len + 1] for j in s.tolist()])
        logits = model(w[:, :-1])
        tgt = w[:, 1:]
        loss_sum += F.cross_entropy(logits.reshape(-1, logits.size(-1)), tgt.reshape(-1), reduction="sum").item()
        correct += (logits.argmax(-1) == tgt).sum().item()
        count += tgt.numel()
    model.train()
    return {"loss": loss_sum / count, "acc": correct / count, "tokens": count}


@torch.no_grad()
def evaluate_fim(model, rows, lens, batch=8):
    """Next-token loss and top-1 accuracy over the non-padding positions of FIM rows."""
    model.eval()
    loss_sum, correct, count = 0.0, 0, 0
    T = rows.shape[1] - 1
    for i in range(0, len(rows), batch):
        w, n = rows[i:i + batch], lens[i:i + batch]
        logits = model(w[:, :-1])
        tgt = w[:, 1:]
        m = torch.arange(T).unsqueeze(0) < (n - 1).unsqueeze(1)
        nll = F.cross_entropy(logits.transpose(1, 2), tgt, reduction="none")
        loss_sum += nll[m].sum().item()
        correct += (logits.argmax(-1) == tgt)[m].sum().item()
        count += int(m.sum())
    model.train()
    return {"loss": loss_sum / count, "acc": correct / count, "tokens": count}


def lr_at(hp, step, progress):
    if step < hp["warmup_steps"]:
        return hp["lr"] * (step + 1) / hp["warmup_steps"]
    p = min(1.0, progress)
    mn = hp["lr"] * hp["min_lr_ratio"]
    return mn + 0.5 * (hp["lr"] - mn) * (1 + math.cos(math.pi * p))


def make_optimizer(model, hp):
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": hp["weight_decay"]},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=hp["lr"], betas=tuple(hp["betas"]), eps=1e-8)


def write_curve(hist, hp, state):
    os.makedirs(MODEL_DIR, exist_ok=True)
    with open(os.path.join(MODEL_DIR, "loss-curve.json"), "w") as f:
        json.dump({"note": "train_loss: mean over the last log interval of training batches; "
                           "eval: fixed train subset and all held-out windows (seq_len tokens)",
                   "steps": state["step"], "tokens_seen": state["tokens"],
                   "train_seconds": round(state["elapsed"]), "hparams": hp, **hist}, f, indent=1)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(1, 2, figsize=(11, 4))
        if hist["train"]:
            ax[0].plot([r["tokens"] / 1e6 for r in hist["train"]], [r["loss"] for r in hist["train"]],
                       label="train (batches)", alpha=0.6)
        if hist["eval"]:
            x = [r["tokens"] / 1e6 for r in hist["eval"]]
            ax[0].plot(x, [r["train_loss"] for r in hist["eval"]], "o-", color="tab:orange", label="train subset")
            ax[0].plot(x, [r["heldout_loss"] for r in hist["eval"]], "o-", color="tab:green", label="held-out modules")
            ax[1].plot(x, [100 * r["train_acc"] for r in hist["eval"]], "o-", color="tab:orange", label="train subset")
            ax[1].plot(x, [100 * r["heldout_acc"] for r in hist["eval"]], "o-", color="tab:green", label="held-out modules")
        ax[0].set_xlabel("tokens seen (M)"); ax[0].set_ylabel("cross-entropy (nats/token)"); ax[0].legend()
        ax[1].set_xlabel("tokens seen (M)"); ax[1].set_ylabel("next-token top-1 accuracy (%)"); ax[1].legend()
        ax[0].set_title("tiny-coder loss"); ax[1].set_title("tiny-coder accuracy")
        fig.tight_layout()
        fig.savefig(os.path.join(MODEL_DIR, "loss-curve.png"), dpi=80)
        plt.close(fig)
    except Exception as e:  # the JSON is the record; a plotting failure must not kill training
        log(f"plot failed: {e}")


def probe(hp, sizes, seconds):
    """Measures training tokens/s for candidate (hidden, layers, inter) sizes."""
    torch.set_num_threads(hp["threads"])
    tokens = load_tokens("train")
    for spec in sizes:
        d, L, inter = (int(x) for x in spec.split(","))
        h = dict(hp, hidden_size=d, num_hidden_layers=L, intermediate_size=inter,
                 num_attention_heads=d // hp["head_dim"], num_key_value_heads=d // hp["head_dim"] // 2)
        torch.manual_seed(0)
        m = LlamaForCausalLM(model_config(h))
        opt = make_optimizer(m, h)
        _, T, B = h["seq_schedule"][0]
        n, t0, steps = 0, None, 0
        while True:
            idx = torch.randint(0, len(tokens) - T - 1, (B,))
            w = torch.stack([tokens[i:i + T + 1] for i in idx.tolist()])
            loss = F.cross_entropy(m(w[:, :-1]).reshape(-1, h["vocab_size"]), w[:, 1:].reshape(-1))
            opt.zero_grad(); loss.backward(); opt.step()
            steps += 1
            if steps == 2:
                t0 = time.time()
            elif steps > 2:
                n += B * T
                if time.time() - t0 > seconds:
                    break
        log(f"probe d={d} L={L} inter={inter} params={param_count(m)/1e6:.2f}M "
            f"{n / (time.time() - t0):.0f} tok/s loss={loss.item():.3f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--probe", nargs="*", help="hidden,layers,intermediate specs to time instead of training")
    ap.add_argument("--probe-seconds", type=float, default=40)
    ap.add_argument("--hparams", default="hparams.json")
    args = ap.parse_args()
    hp = load_hparams(args.hparams)
    CKPT = ckpt_path(args.hparams)
    if args.probe:
        return probe(hp, args.probe, args.probe_seconds)

    torch.set_num_threads(hp["threads"])
    torch.manual_seed(hp["seed"])
    cfg = model_config(hp)
    model = LlamaForCausalLM(cfg)
    opt = make_optimizer(model, hp)
    train_tok, held_tok = load_tokens("train"), load_tokens("heldout")
    T = hp["seq_len"]  # evaluation always at the full context
    fim_cfg = hp.get("fim")
    if fim_cfg:
        import fim
        fim_rows, fim_lens = (torch.from_numpy(x.astype(np.int64)) for x in fim.load_rows("train"))
        fim_held, fim_held_lens = (torch.from_numpy(x.astype(np.int64)) for x in fim.load_rows("heldout"))
        log(f"FIM rows: {len(fim_rows)} train, {len(fim_held)} held-out, rate {fim_cfg['rate']}")
    held_starts = eval_windows(held_tok, T, hp["heldout_eval_windows"], hp["seed"])
    held_all = eval_windows(held_tok, T)
    train_starts = eval_windows(train_tok, T, hp["train_eval_windows"], hp["seed"])
    state = {"step": 0, "tokens": 0, "elapsed": 0.0}
    hist = {"train": [], "eval": []}
    if os.path.exists(CKPT):
        ck = torch.load(CKPT)
        if ck["hparams"] != hp:
            raise SystemExit(f"{CKPT} was made with different hparams.json; move it away to start afresh")
        model.load_state_dict(ck["model"]); opt.load_state_dict(ck["opt"])
        state, hist = ck["state"], ck["hist"]
        log(f"resumed at step {state['step']}, {state['tokens']} tokens, {state['elapsed']:.0f}s trained")
    elif hp.get("init_from"):
        n_old = init_from(model, hp["init_from"])
        log(f"continuing from {hp['init_from']} ({n_old} embedding rows, now {cfg['vocab_size']}): "
            f"params={param_count(model)}")
    else:
        log(f"fresh start: params={param_count(model)} cfg={json.dumps(cfg)}")
    log(f"train tokens {len(train_tok)}, held-out tokens {len(held_tok)} ({len(held_starts)} windows)")

    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *a: stop.update(flag=True))

    def save():
        tmp = CKPT + ".tmp"
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "state": state, "hist": hist,
                    "hparams": hp, "config": cfg}, tmp)
        os.replace(tmp, CKPT)

    def do_eval(full=False):
        te = evaluate(model, train_tok, train_starts, T)
        he = evaluate(model, held_tok, held_all if full else held_starts, T)
        rec = {"step": state["step"], "tokens": state["tokens"], "seconds": round(state["elapsed"]),
               "train_loss": te["loss"], "train_acc": te["acc"], "heldout_loss": he["loss"], "heldout_acc": he["acc"],
               "heldout_full": full}
        if fim_cfg:
            fe = evaluate_fim(model, fim_held, fim_held_lens)
            rec.update(fim_heldout_loss=fe["loss"], fim_heldout_acc=fe["acc"])
            log(f"eval FIM held-out rows: loss {fe['loss']:.4f} acc {fe['acc']:.4f}")
        hist["eval"].append(rec)
        log(f"eval step {state['step']}: train loss {te['loss']:.4f} acc {te['acc']:.4f} | "
            f"held-out loss {he['loss']:.4f} acc {he['acc']:.4f} ({he['tokens']} tokens)")
        write_curve(hist, hp, state)
        return te, he

    def do_export(te, he, final=False):
        try:
            import importlib
            import export
            importlib.reload(export)  # picks up exporter fixes made while training runs
            out = MODEL_DIR if final else os.path.join(ROOT, hp.get("export_dir", MODEL_DIR))
            export.export_state(model.state_dict(), cfg, hp, out,
                                {"step": state["step"], "tokens_seen": state["tokens"],
                                 "train_seconds": round(state["elapsed"]),
                                 "train_subset": te, "heldout": he})
            log(f"exported to {os.path.relpath(out, ROOT)}")
        except Exception as e:  # a broken exporter must not lose the training run
            log(f"export failed: {e!r}")

    budget = hp["max_minutes"] * 60
    last_eval = last_ckpt = last_export = state["elapsed"]
    run_loss, run_n = 0.0, 0
    t_prev = time.time()
    tok_at_log, t_at_log = state["tokens"], time.time()
    while state["elapsed"] < budget and not stop["flag"]:
        step = state["step"]
        progress = state["elapsed"] / budget
        # seq_schedule: [[from_progress, seq_len, batch_size], ...]; short windows early are
        # cheaper per token, the last phase trains every position up to the full context
        T_tr, B = [(t, b) for p0, t, b in hp["seq_schedule"] if progress >= p0][-1]
        lr = lr_at(hp, step, progress)
        for g in opt.param_groups:
            g["lr"] = lr
        gen = torch.Generator().manual_seed(hp["seed"] * 1_000_003 + step)
        idx = torch.randint(0, len(train_tok) - T_tr - 1, (B,), generator=gen)
        w = torch.stack([train_tok[i:i + T_tr + 1] for i in idx.tolist()])
        tgt = w[:, 1:].clone()
        if fim_cfg and T_tr == T:
            # the last rows of the batch are FIM examples (only in full-context phases: the rows are seq_len + 1 long)
            n_fim = round(B * fim_cfg["rate"])
            j = torch.randint(0, len(fim_rows), (n_fim,), generator=gen)
            w[B - n_fim:] = fim_rows[j]
            tgt = w[:, 1:].clone()
            pos = torch.arange(T).unsqueeze(0)
            tgt[B - n_fim:][pos.expand(n_fim, -1) >= (fim_lens[j] - 1).unsqueeze(1)] = -100  # padding: no loss
        logits = model(w[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), tgt.reshape(-1), ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), hp["grad_clip"])
        opt.step()
        now = time.time()
        state["elapsed"] += now - t_prev
        t_prev = now
        state["step"] += 1
        state["tokens"] += B * T_tr
        run_loss += loss.item(); run_n += 1
        if state["step"] % hp["log_every"] == 0:
            tps = (state["tokens"] - tok_at_log) / (time.time() - t_at_log)
            hist["train"].append({"step": state["step"], "tokens": state["tokens"], "loss": run_loss / run_n, "lr": lr})
            log(f"step {state['step']} seq {T_tr}x{B} loss {run_loss / run_n:.4f} lr {lr:.2e} {tps:.0f} tok/s "
                f"elapsed {state['elapsed'] / 60:.1f}/{hp['max_minutes']} min tokens {state['tokens']}")
            run_loss, run_n = 0.0, 0
            tok_at_log, t_at_log = state["tokens"], time.time()
        if state["elapsed"] - last_eval >= hp["eval_every_minutes"] * 60:
            te, he = do_eval()
            last_eval = state["elapsed"]
            if state["elapsed"] - last_export >= hp["export_every_minutes"] * 60:
                do_export(te, he)
                last_export = state["elapsed"]
            t_prev = time.time()  # evaluation/export time is not training time
            tok_at_log, t_at_log = state["tokens"], t_prev  # nor part of the logged tok/s
        if state["elapsed"] - last_ckpt >= hp["ckpt_every_minutes"] * 60:
            save()
            last_ckpt = state["elapsed"]
            t_prev = time.time()
    save()
    if stop["flag"]:
        log(f"stopped by signal at step {state['step']}; checkpoint saved, resume with run.sh start")
        return
    te, he = do_eval(full=True)
    do_export(te, he, final=True)
    save()
    log(f"DONE: {state['step']} steps, {state['tokens']} tokens, {state['elapsed'] / 60:.1f} min; exported")


if __name__ == "__main__":
    main()
