"""Small models end to end: the `keras-attention train lm` path against a plain PyTorch loop.

The issue's character GPT (4 blocks, 128 hiddens, FFN 512, 4 heads, dropout
0.1, 64 characters, batch 12; about 0.8M parameters) trained for the same
steps on the same data with the same optimizer and schedule, each run in a
fresh process (as a user runs it):

* `recipe-<backend>`: `keras_attention.cli.main(["train", "lm", ...])`, what
  the command does (pooled CPU memory, the recipe `recipes.train_lm`:
  `tf.data` windows, `fit` with its progress bar, TensorBoard, the best
  checkpoint and the resumable backup per epoch, then the run's files, the
  held-out evaluation and two samples), with `KERAS_BACKEND` set to
  `tensorflow` (the default path), `jax` or `torch`;
* `torch-loop`: the same architecture (pre-norm GPT blocks, learned
  positions, GELU FFN, Keras' initializers) as a plain PyTorch eager loop
  written here: the same windows (a random offset and order per epoch, as
  `data.causal_lm_dataset`), Adam with Keras' epsilon and per-variable
  gradient clipping at norm 1, warmup (5 %) then cosine decay, the held-out
  loss after every epoch;
* `demo`: what `make demo` trains (`train translation --data dates --model
  transformer --epochs 6 --verbose 2 --export ...`: the D2L-sized Transformer
  on the generated dates task, then the held-out scores, the attention figure
  and the SavedModel), split the same way; its own data, so no ratio;
* levers on the default path (`--levers`), the recipe with one change:
  `jit` (`jit_compile=True`, the recipes' default before they took Keras'
  `"auto"`, which on a CPU is no XLA with TensorFlow), `spe8` / `spe32` (`steps_per_execution`),
  `verbose2` (no per-batch progress bar), `notb` (no TensorBoard callback).

Data: the start of The Time Machine (D2L's preprocessing) from
`../shared/data`, cut to the length that gives `--steps` batches in
`--epochs` epochs (the recipe trains whole epochs), written to a text file
that every run reads (the recipe as the user's own file), the last 10 %
held out; without it, the recipe runs on the generated corpus and the loop
is skipped.

Columns: `import_s` (the framework and package imports), `setup_s` (data,
tokenizer, model, compile: up to the start of `fit`), `first_step_s` (the
first step, which traces and compiles), `steady_ms` (median ms per step
after it, epoch ends left out), `total_s` (the process's wall time, Python's
start-up included), `other_s` (what is left: validation, files, samples),
`val_loss` (held-out loss per character after training; `exact_match` for
`demo`), `after_fit_s` (from the end of `fit` to the end of the command) and
within it `files_s` (the run's files), `samples_s` (the LM's two samples),
`evaluate_s` (the demo's held-out decoding and scores), `figure_s` (its
attention figure), `export_s` (its SavedModel), `load` (the
1-minute load average when the run started), and `ratio` = total_s / the
PyTorch loop's total_s (below 1: faster than the loop). `torch-loop-1t` is
the same loop with `torch.set_num_threads(1)`: on a shared, oversubscribed
CPU PyTorch's OpenMP threads wait for each other at every op's barrier
(seen in gdb: `gomp_team_barrier_wait_end`), and the ratios are against the
faster of the loops run.

    python benchmarks/small_models.py                    # recipe on 3 backends, loops, demo
    python benchmarks/small_models.py --steps 2000 --epochs 10 --runs torch-loop-1t,recipe-tensorflow,demo
    python benchmarks/small_models.py --levers all --runs recipe-tensorflow
    python benchmarks/small_models.py --quick
    python benchmarks/small_models.py --lockstep 300     # same start, same batches, no dropout

`--lockstep STEPS` trains ours (the recipe's model and compile) and the
loop in one process from the same weights on the same batches without
dropout and prints both losses per step: they agree to float rounding, so
what differs in the timed runs is the random streams (dropout, order), not
the model, optimizer, clipping or schedule.

Writes `outputs/benchmarks/small_models.csv` (`small_models_quick.csv` with
`--quick`) atomically, with the machine's columns (`_common.machine`).
"""

import argparse
import json
import math
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402  (standard library only at import)

ROOT = pathlib.Path(__file__).resolve().parents[1]
RUNS = ("recipe-tensorflow", "recipe-jax", "recipe-torch", "torch-loop", "torch-loop-1t", "demo")
LEVERS = {
    "jit": {"jit_compile": True},
    "spe8": {"steps_per_execution": 8},
    "spe32": {"steps_per_execution": 32},
    "verbose2": {"verbose": 2},
    "notb": {"tensorboard": False},
}
SIZES = {  # num_hiddens, ffn_num_hiddens, num_heads, num_blks, batch
    "small": dict(num_hiddens=128, ffn_num_hiddens=512, num_heads=4, num_blks=4, batch_size=12),
    "medium": dict(num_hiddens=256, ffn_num_hiddens=1024, num_heads=4, num_blks=4, batch_size=32),
    "quick": dict(num_hiddens=32, ffn_num_hiddens=64, num_heads=2, num_blks=1, batch_size=12),
}
SEQ_LEN, DROPOUT, VAL_FRACTION, RESERVED = 64, 0.1, 0.1, 4


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", default=",".join(RUNS), help=f"Subset of {','.join(RUNS)}.")
    parser.add_argument(
        "--levers",
        default="",
        help=f"Also the recipe on TensorFlow with each of these changes, a subset "
        f"of {','.join(LEVERS)} (or all). Defaults to none.",
    )
    parser.add_argument(
        "--size",
        default="small",
        choices=("small", "medium"),
        help="small: the issue's GPT (batch 12); medium: 256 hiddens, batch 32.",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="Training steps in all: the text is cut to give --steps / --epochs "
        "batches per epoch. Defaults to 300 (quick: 20).",
    )
    parser.add_argument("--epochs", type=int, default=1, help="Epochs. Defaults to 1.")
    parser.add_argument(
        "--lr", type=float, default=2e-3, help="Peak learning rate. Defaults to 2e-3."
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="Seed of every run (the recipe's --seed; the loop's initialization, data order "
        "and dropout). Defaults to 0.",
    )
    parser.add_argument("--quick", action="store_true", help="Smoke run: a tiny model, few steps.")
    parser.add_argument(
        "--lockstep",
        type=int,
        default=0,
        metavar="STEPS",
        help="Instead of the runs: train ours and the loop in one process from the same "
        "weights on the same batches without dropout for STEPS steps, and print their "
        "losses side by side (they should agree to float rounding).",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="CSV destination. Defaults to outputs/benchmarks/small_models.csv.",
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        args.runs = _common.split_list(args.runs, RUNS, "--runs")
        args.levers = (
            list(LEVERS)
            if args.levers == "all"
            else _common.split_list(args.levers, tuple(LEVERS), "--levers")
            if args.levers
            else []
        )
    except ValueError as error:
        parser.error(str(error))
    if args.quick:
        args.size = "quick"
    args.steps = args.steps or (20 if args.quick else 300)
    if args.steps < 4 * args.epochs or args.epochs < 1:
        parser.error("--epochs must be >= 1 and --steps >= 4 * --epochs.")
    if args.out is None:
        name = "small_models_quick.csv" if args.quick else "small_models.csv"
        args.out = os.path.join("outputs", "benchmarks", name)
    return args


# The data, read the same way by every run (no TensorFlow needed for the loop).


def shared_time_machine():
    """The path of The Time Machine in `../shared/data`, or None."""
    path = ROOT.parent / "shared" / "data" / "timemachine" / "timemachine.txt"
    return path if path.is_file() else None


def steps_per_epoch(num_train_tokens, batch_size):
    """Batches per epoch of `data.causal_lm_dataset(shuffle=True, drop_remainder=True)`."""
    return ((num_train_tokens - SEQ_LEN) // SEQ_LEN) // batch_size


def time_machine_text():
    """The Time Machine from `../shared/data` as D2L preprocesses it: letters and single
    spaces, lower case, one line."""
    return re.sub("[^A-Za-z]+", " ", shared_time_machine().read_text(encoding="utf-8")).lower()


def char_encoder(chars):
    """`text -> int64 ids`: `chars[i]` is id `RESERVED + i`, any other character `<unk>` (3)."""
    import numpy as np

    lookup = {c: i + RESERVED for i, c in enumerate(chars)}
    return lambda text: np.array([lookup.get(c, 3) for c in text], dtype=np.int64)


def write_text(path, steps, batch_size):
    """Writes the start of The Time Machine (D2L's preprocessing: letters and single spaces,
    lower case, one line), as long as one epoch of `steps` batches needs, to `path`.

    The held-out tail is 10 % of it. Returns the number of characters."""
    text = time_machine_text()
    train_chars = (steps * batch_size + 1) * SEQ_LEN + SEQ_LEN // 2
    text = text[: min(len(text), math.ceil(train_chars / (1.0 - VAL_FRACTION)))].strip()
    pathlib.Path(path).write_text(text, encoding="utf-8")
    return len(text)


def loop_text(path):
    """`(train_text, val_text)` of the file as the recipe cuts it (`recipes.split_held_out`:
    the text has no line break, so the cut is at exactly 90 %)."""
    text = pathlib.Path(path).read_text(encoding="utf-8")
    cut = int(len(text) * (1.0 - VAL_FRACTION))
    return text[:cut], text[cut:]


# Timing inside a worker.


class StepClock:
    """Wall-clock stamps of `fit`: its start, every batch end, every epoch end (a Keras callback)."""

    def __init__(self):
        import keras

        class Callback(keras.callbacks.Callback):
            def on_train_begin(cb, logs=None):
                self.begin = time.perf_counter()

            def on_train_batch_end(cb, batch, logs=None):
                self.batches.append((batch, time.perf_counter()))

            def on_epoch_begin(cb, epoch, logs=None):
                self.batches.append(("epoch", time.perf_counter()))

            def on_train_end(cb, logs=None):
                self.end = time.perf_counter()

        self.begin, self.end, self.batches, self.callback = None, None, [], Callback()


# What the command does after `fit`, timed by wrapping the recipe's functions (`*_s` columns).
AFTER_FIT = {
    "recipe": (
        ("keras_attention.recipes.lm", "LanguageModelRun", "write", "files_s"),
        ("keras_attention.recipes.lm", None, "_print_samples", "samples_s"),
    ),
    "demo": (
        ("keras_attention.recipes.translation", "TranslationRun", "write", "files_s"),
        ("keras_attention.recipes.translation", None, "evaluate_translation", "evaluate_s"),
        ("keras_attention.recipes.translation", None, "_attention_figure", "figure_s"),
        ("keras_attention.recipes.translation", "TranslationRun", "export", "export_s"),
    ),
}


def time_phases(kind):
    """Wraps the functions of `AFTER_FIT[kind]` to add their wall time to the returned dict."""
    import importlib

    phases = {}
    for module, owner, name, label in AFTER_FIT[kind]:
        holder = importlib.import_module(module)
        holder = getattr(holder, owner) if owner else holder
        original = getattr(holder, name)

        def timed(*a, _original=original, _label=label, **k):
            began = time.perf_counter()
            try:
                return _original(*a, **k)
            finally:
                phases[_label] = phases.get(_label, 0.0) + time.perf_counter() - began

        setattr(holder, name, timed)
    return phases


def split_times(begin, stamps):
    """`(first_step_s, steady_ms)` from `[(step index or "epoch", time)]` stamps.

    `steady_ms` is the median time per step between consecutive batch ends
    of the same epoch, the first two intervals of each epoch left out.
    """
    first = next(t for b, t in stamps if b != "epoch") - begin
    per_step, epoch_stamps = [], []
    for b, t in stamps + [("epoch", None)]:
        if b == "epoch":
            for (b0, t0), (b1, t1) in list(zip(epoch_stamps, epoch_stamps[1:]))[2:]:
                per_step.append((t1 - t0) / max(b1 - b0, 1))
            epoch_stamps = []
        else:
            epoch_stamps.append((b, t))
    return first, 1e3 * statistics.median(per_step) if per_step else float("nan")


def steps_done(stamps):
    """Steps trained, from `[(batch index or "epoch", time)]`: the last index + 1 of each epoch
    (with `steps_per_execution` Keras reports one batch end per execution, at its last index)."""
    total, last = 0, -1
    for b, _ in stamps + [("epoch", None)]:
        if b == "epoch":
            total, last = total + last + 1, -1
        else:
            last = max(last, b)
    return total


def lm_argv(spec, out):
    """`keras-attention train lm` of the issue's GPT on `spec`'s text (the `recipe-*` runs)."""
    size = SIZES[spec["size"]]
    data = ["--data", spec["text_file"]] if spec["text_file"] else ["--data", "corpus"]
    flags = {
        "num-hiddens": size["num_hiddens"],
        "ffn-num-hiddens": size["ffn_num_hiddens"],
        "num-heads": size["num_heads"],
        "num-blks": size["num_blks"],
        "dropout": DROPOUT,
        "seq-len": SEQ_LEN,
        "batch-size": size["batch_size"],
        "epochs": spec["epochs"],
        "lr": spec["lr"],
        "lr-schedule": "cosine",
        "verbose": spec.get("verbose", 1),
        "max-new-tokens": 20,
        "seed": spec["seed"],
        "out": out,
    }
    return ["train", "lm", *data, *(x for k, v in flags.items() for x in (f"--{k}", str(v)))]


def demo_argv(spec, out):
    """What `make demo` trains: the dates Transformer, 6 epochs, exported (the `demo` run)."""
    return [
        *("train", "translation", "--data", "dates", "--model", "transformer"),
        *("--epochs", "6", "--verbose", "2", "--out", out),
        *("--export", os.path.join(out, "export")),
    ]


def recipe_worker(spec):
    """Runs the command (`train lm`, or `make demo`'s `train translation`) in this process with
    `spec`'s changes; returns timings."""
    start = time.perf_counter()
    os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")  # what cli.main sets first
    import keras  # noqa: F401  (the imports the command makes, timed apart)

    from keras_attention import cli
    from keras_attention.recipes import lm, runs, training  # noqa: F401

    imported = time.perf_counter()
    clock = StepClock()
    fit_with_logs, compile_model = training.fit_with_logs, keras.Model.compile

    def timed_fit(*a, callbacks=(), **k):
        return fit_with_logs(*a, callbacks=[*callbacks, clock.callback], **k)

    def changed_compile(model, *a, **k):
        for key in ("jit_compile", "steps_per_execution"):
            if key in spec:
                k[key] = spec[key]
        return compile_model(model, *a, **k)

    training.fit_with_logs, keras.Model.compile = timed_fit, changed_compile
    phases = time_phases(spec["kind"])
    if spec.get("tensorboard") is False:
        keras.callbacks.TensorBoard = lambda **k: keras.callbacks.Callback()
    out = tempfile.mkdtemp(prefix="small_models_")
    argv = demo_argv(spec, out) if spec["kind"] == "demo" else lm_argv(spec, out)
    try:
        assert cli.main(argv) == 0
        scores = json.loads((pathlib.Path(out) / "scores.json").read_text())
    finally:
        shutil.rmtree(out, ignore_errors=True)
    first, steady = split_times(clock.begin, clock.batches)
    steps = steps_done(clock.batches)
    return {
        **phases,
        "after_fit_s": time.perf_counter() - clock.end,
        "import_s": imported - start,
        "setup_s": clock.begin - imported,
        "first_step_s": first,
        "steady_ms": steady,
        "in_process_s": time.perf_counter() - start,
        "val_loss": scores.get("val_loss", float("nan")),
        "exact_match": scores.get("exact_match", float("nan")),
        "callback_calls": steps,
        "epochs": spec["epochs"] if spec["kind"] == "demo" else scores["epochs"],
    }


def torch_worker(spec):
    """The same GPT, data, optimizer and schedule as a plain PyTorch eager loop."""
    start = time.perf_counter()
    import numpy as np
    import torch
    from torch.nn import functional as F

    imported = time.perf_counter()
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    size = SIZES[spec["size"]]
    torch.manual_seed(spec["seed"])
    train_text, val_text = loop_text(spec["text_file"])
    chars = sorted(set(train_text))
    encode = char_encoder(chars)
    train_ids, val_ids = encode(train_text), encode(val_text)
    model = TorchGPT(torch, len(chars) + RESERVED, size)
    optimizer = torch.optim.Adam(model.parameters(), lr=spec["lr"], eps=1e-7)
    batch = size["batch_size"]
    per_epoch = steps_per_epoch(len(train_ids), batch)
    total = per_epoch * spec["epochs"]
    lr_at = cosine_schedule(spec["lr"], total)
    rng = np.random.default_rng(spec["seed"])
    setup_done = time.perf_counter()
    stamps, step, params = [], 0, [p for p in model.parameters()]
    for _ in range(spec["epochs"]):
        stamps.append(("epoch", time.perf_counter()))
        model.train()
        offset = int(rng.integers(0, SEQ_LEN))
        windows = windows_of(train_ids[offset:], shuffle=True, rng=rng)
        for b in range(per_epoch):
            chunk = torch.from_numpy(windows[b * batch : (b + 1) * batch])
            loop_step(torch, model, params, optimizer, chunk, lr_at(step))
            step += 1
            stamps.append((step, time.perf_counter()))
        val_loss = torch_val_loss(torch, F, model, val_ids, batch)
    first, steady = split_times(setup_done, stamps)
    return {
        "import_s": imported - start,
        "setup_s": setup_done - imported,
        "first_step_s": first,
        "steady_ms": steady,
        "in_process_s": time.perf_counter() - start,
        "val_loss": val_loss,
        "callback_calls": step,
        "epochs": spec["epochs"],
        "train_tokens": len(train_ids),
    }


def loop_step(torch, model, params, optimizer, chunk, lr):
    """One step of the loop on windows `chunk` `(B, T + 1)`: returns the loss (a tensor)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    logits = model(chunk[:, :-1])
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), chunk[:, 1:].flatten())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    for p in params:  # Keras' `clipnorm`: each gradient clipped on its own
        torch.nn.utils.clip_grad_norm_([p], 1.0, foreach=True)
    optimizer.step()
    return loss


def windows_of(ids, shuffle, rng=None):
    """Windows of `SEQ_LEN + 1` ids as `data.causal_lm_dataset` cuts them."""
    import numpy as np

    n = (len(ids) - SEQ_LEN) // SEQ_LEN if shuffle else (len(ids) - 1) // SEQ_LEN
    starts = np.arange(n) * SEQ_LEN
    if shuffle:
        starts = rng.permutation(starts)
    return np.stack([ids[s : s + SEQ_LEN + 1] for s in starts])


def cosine_schedule(peak, total_steps):
    """`keras.optimizers.schedules.CosineDecay(0, total - warmup, warmup_target=peak,
    warmup_steps=total // 20)`, as `training.learning_rate_schedule("cosine", ...)` makes it."""
    warmup = min(max(1, total_steps // 20), total_steps - 1)
    decay = max(total_steps - warmup, 1)

    def lr_at(step):
        if step < warmup:
            return peak * step / warmup
        return peak * 0.5 * (1.0 + math.cos(math.pi * min(step - warmup, decay) / decay))

    return lr_at


def torch_val_loss(torch, F, model, val_ids, batch):
    """Mean per-character loss on the held-out windows (in order), as `evaluate` averages it."""
    windows = windows_of(val_ids, shuffle=False)
    model.eval()
    losses, counts = [], []
    with torch.no_grad():
        for b in range(0, len(windows), batch):
            chunk = torch.from_numpy(windows[b : b + batch])
            logits = model(chunk[:, :-1])
            losses.append(float(F.cross_entropy(logits.flatten(0, 1), chunk[:, 1:].flatten())))
            counts.append(len(chunk))
    return float(sum(l * c for l, c in zip(losses, counts)) / sum(counts))


def TorchGPT(torch, vocab_size, size, dropout=DROPOUT):
    """`keras_attention.models.gpt(..., pad_id=None)` in PyTorch, Keras' initializers."""
    nn, F = torch.nn, torch.nn.functional

    class Block(nn.Module):
        def __init__(self, d, ffn, heads):
            super().__init__()
            self.heads = heads
            self.ln1, self.ln2 = nn.LayerNorm(d, eps=1e-5), nn.LayerNorm(d, eps=1e-5)
            self.W_q, self.W_k, self.W_v, self.W_o = (nn.Linear(d, d) for _ in range(4))
            self.ffn1, self.ffn2 = nn.Linear(d, ffn), nn.Linear(ffn, d)
            self.drop = nn.Dropout(dropout)

        def split(self, X):  # (B, T, D) -> (B, H, T, D/H)
            return X.unflatten(-1, (self.heads, -1)).transpose(1, 2)

        def forward(self, X):
            Q = self.ln1(X)
            heads = F.scaled_dot_product_attention(
                self.split(self.W_q(Q)),
                self.split(self.W_k(Q)),
                self.split(self.W_v(Q)),
                dropout_p=dropout if self.training else 0.0,
                is_causal=True,
            )
            X = X + self.drop(self.W_o(heads.transpose(1, 2).flatten(2)))
            return X + self.drop(self.ffn2(F.gelu(self.ffn1(self.ln2(X)))))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            d = size["num_hiddens"]
            self.token_embedding = nn.Embedding(vocab_size, d)
            # The gpt builder's table: U(-0.05, 0.05) like the tokens (`models._positions`).
            self.positions = nn.Parameter(torch.empty(SEQ_LEN, d).uniform_(-0.05, 0.05))
            self.drop = nn.Dropout(dropout)
            self.blocks = nn.ModuleList(
                Block(d, size["ffn_num_hiddens"], size["num_heads"])
                for _ in range(size["num_blks"])
            )
            self.final_norm = nn.LayerNorm(d, eps=1e-5)
            self.lm_head = nn.Linear(d, vocab_size)
            nn.init.uniform_(self.token_embedding.weight, -0.05, 0.05)  # Keras' "uniform"
            for module in self.modules():
                if isinstance(module, nn.Linear):  # Keras' Dense: glorot_uniform, zero bias
                    nn.init.xavier_uniform_(module.weight)
                    nn.init.zeros_(module.bias)

        def forward(self, ids):
            X = self.drop(self.token_embedding(ids) + self.positions[: ids.shape[1]])
            for block in self.blocks:
                X = block(X)
            return self.lm_head(self.final_norm(X))

    return GPT()


# Lockstep: the recipe's model and optimizer against the loop, same weights, same batches.


def lockstep(torch, size, steps, lr, seed, ids=None, vocab_size=31):
    """Per-step training losses `(ours, loop)` from the same start on the same batches.

    Our `models.gpt` compiled as `keras-attention train lm` compiles it
    (`recipes.lm._compile_lm`: Adam with per-variable `clipnorm=1`, warmup and
    cosine decay over `steps`), trained with `train_on_batch` (the function
    `fit` runs), and `TorchGPT` with ours' initial weights copied in, trained
    by the loop's step (`torch_worker`). Without dropout the two see the same
    numbers, so the losses agree to float rounding unless a difference in
    the model, the optimizer, the clipping or the schedule is left (as
    Keras' handling of the token table's `IndexedSlices` gradient was before
    `layers.embedding.take_rows`). `ids`: a 1-D id sequence to draw the
    windows from (random ids in `[RESERVED, vocab_size)` if None).
    """
    import numpy as np

    from keras_attention.recipes import lm

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if ids is None:
        ids = rng.integers(RESERVED, vocab_size, size=50 * SEQ_LEN)
    batch = size["batch_size"]
    starts = rng.integers(0, len(ids) - SEQ_LEN - 1, size=(steps, batch))
    batches = np.stack([[ids[s : s + SEQ_LEN + 1] for s in row] for row in starts]).astype("int32")
    ours = lm._lm_model(vocab_size, {**size, "dropout": 0.0, "seq_len": SEQ_LEN})
    options = {
        "lr_schedule": "cosine",
        "lr": lr,
        "warmup_steps": None,
        "seq_len": SEQ_LEN,
        "batch_size": batch,
        "epochs": 1,
        "distribute": "none",
    }
    lm._compile_lm(ours, options, steps * SEQ_LEN * batch)
    loop = TorchGPT(torch, vocab_size, size, dropout=0.0)
    copy_weights(torch, ours, loop)
    optimizer = torch.optim.Adam(loop.parameters(), lr=lr, eps=1e-7)
    lr_at = cosine_schedule(lr, steps)
    loop.train()
    params = list(loop.parameters())
    ours_losses, loop_losses = [], []
    for step, chunk in enumerate(batches):
        ours_losses.append(
            float(ours.train_on_batch(chunk[:, :-1], chunk[:, 1:], return_dict=True)["loss"])
        )
        windows = torch.from_numpy(chunk.astype("int64"))
        loss = loop_step(torch, loop, params, optimizer, windows, lr_at(step))
        loop_losses.append(float(loss.detach()))
    return ours_losses, loop_losses


def copy_weights(torch, ours, loop):
    """`ours`' (a `models.gpt`) weights into `loop` (a `TorchGPT`): kernels transposed."""
    import numpy as np

    weights = {w.path: w.numpy() for w in ours.weights}
    pairs = [
        ("token_embedding.weight", "token_embedding/embeddings", False),
        ("positions", "positions/embeddings", False),
        ("final_norm.weight", "final_norm/gamma", False),
        ("final_norm.bias", "final_norm/beta", False),
        ("lm_head.weight", "lm_head/kernel", True),
        ("lm_head.bias", "lm_head/bias", False),
    ]
    for i in range(len(loop.blocks)):
        block = f"gpt_block_{i}/"
        for ln in ("ln1", "ln2"):
            pairs += [
                (f"blocks.{i}.{ln}.weight", f"{block}{ln}/gamma", False),
                (f"blocks.{i}.{ln}.bias", f"{block}{ln}/beta", False),
            ]
        for name, path in [(f"W_{n}", f"attention/W_{n}") for n in "qkvo"] + [
            ("ffn1", "ffn/dense1"),
            ("ffn2", "ffn/dense2"),
        ]:
            pairs += [
                (f"blocks.{i}.{name}.weight", f"{block}{path}/kernel", True),
                (f"blocks.{i}.{name}.bias", f"{block}{path}/bias", False),
            ]
    params = dict(loop.named_parameters())
    assert len(pairs) == len(params) == len(weights), (len(pairs), len(params), len(weights))
    with torch.no_grad():
        for name, path, transpose in pairs:
            value = weights[path].T if transpose else weights[path]
            params[name].copy_(torch.from_numpy(np.ascontiguousarray(value)))


def lockstep_main(args):
    """`--lockstep`: the per-step losses of `lockstep` as a table and CSV."""
    import numpy as np
    import pandas as pd
    import torch

    torch.set_num_threads(1)
    ids, vocab_size, data = None, 31, "random ids"
    if shared_time_machine():
        text = time_machine_text()[:200_000]
        chars = sorted(set(text))
        ids = char_encoder(chars)(text)
        vocab_size, data = len(chars) + RESERVED, "The Time Machine"
    size = SIZES[args.size]
    ours, loop = lockstep(
        torch, size, args.lockstep, args.lr, args.seed, ids=ids, vocab_size=vocab_size
    )
    frame = pd.DataFrame({"step": np.arange(len(ours)), "ours_loss": ours, "loop_loss": loop})
    frame["abs_diff"] = (frame["ours_loss"] - frame["loop_loss"]).abs()
    shown = frame.iloc[
        sorted(set(range(0, len(frame), max(1, len(frame) // 10))) | {len(frame) - 1})
    ]
    print(
        f"lockstep, {args.size} GPT, dropout 0, {data}, {len(frame)} steps; "
        f"{_common.machine_line()}"
    )
    _common.print_table(shown.round(5))
    print(f"largest |ours - loop| over all steps: {frame['abs_diff'].max():.2e}")
    _common.write_csv_atomic(frame, args.out.replace(".csv", "_lockstep.csv"))
    return 0


# The driver: one fresh process per run.


def run_worker(spec, backend):
    """Runs `spec` in a fresh Python process with `KERAS_BACKEND=backend`: its result dict."""
    env = {
        **os.environ,
        "KERAS_BACKEND": backend,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    load = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    total = time.perf_counter() - start
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        print(f"  {spec['name']} failed: {tail[0][:300]}", flush=True)
        return {"error": tail[0][:300], "total_s": total, "load": load}
    return {**json.loads(lines[-1][len("RESULT ") :]), "total_s": total, "load": load}


def worker_main(spec_json):
    spec = json.loads(spec_json)
    result = torch_worker(spec) if spec["kind"] == "torch-loop" else recipe_worker(spec)
    print("RESULT " + json.dumps(result), flush=True)
    return 0


def specs(args, text_file, epochs):
    """`(spec, backend)` of every run asked for, levers last."""
    common = {
        "size": args.size,
        "epochs": epochs,
        "lr": args.lr,
        "seed": args.seed,
        "text_file": text_file,
    }
    out = []
    for run in sorted(args.runs, key=lambda r: not r.startswith("torch-loop")):  # loops first
        if run.startswith("torch-loop"):
            if not text_file:
                print(f"{run} skipped: it reads The Time Machine, not found in ../shared/data")
                continue
            threads = {"threads": 1} if run.endswith("-1t") else {}
            out.append(
                ({**common, **threads, "kind": "torch-loop", "name": run, "lever": ""}, "torch")
            )
        elif run == "demo":  # its own data and epochs: a split, not compared with the loop
            out.append(
                ({**common, "epochs": 6, "kind": "demo", "name": run, "lever": ""}, "tensorflow")
            )
        else:
            backend = run.split("-", 1)[1]
            out.append(({**common, "kind": "recipe", "name": run, "lever": ""}, backend))
    if args.levers:
        for lever, change in ((name, LEVERS[name]) for name in args.levers):
            out.append(
                (
                    {
                        **common,
                        **change,
                        "kind": "recipe",
                        "name": f"recipe-tensorflow+{lever}",
                        "lever": lever,
                    },
                    "tensorflow",
                )
            )
    return out


def row_of(spec, backend, result, steps):
    row = {
        "run": spec["name"],
        "backend": backend,
        "lever": spec["lever"],
        "size": spec["size"],
        "steps": steps,
        "epochs": spec["epochs"],
        "seed": spec["seed"],
        **result,
    }
    if "error" not in result:
        busy = (
            result["import_s"]
            + result["setup_s"]
            + result["first_step_s"]
            + result["steady_ms"] * (steps - 1) / 1e3
        )
        row["other_s"] = result["total_s"] - busy
    return row


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return worker_main(args.worker)
    if args.lockstep:
        return lockstep_main(args)
    import pandas as pd

    size = SIZES[args.size]
    folder = tempfile.mkdtemp(prefix="small_models_text_")
    text_file, per_epoch = None, None
    if shared_time_machine():
        text_file = os.path.join(folder, "timemachine_start.txt")
        per_step = args.steps // args.epochs
        chars = write_text(text_file, per_step, size["batch_size"])
        per_epoch = steps_per_epoch(len(loop_text(text_file)[0]), size["batch_size"])
        data = f"the first {chars:,} characters of The Time Machine"
    else:
        data = "the generated corpus (The Time Machine not found in ../shared/data)"
    print(
        f"{args.size} GPT {size}, seq_len {SEQ_LEN}, data {data}: {args.epochs} epoch(s) of "
        f"{per_epoch or 'the corpus'} steps; {_common.machine_line()}",
        flush=True,
    )
    rows = []
    for spec, backend in specs(args, text_file, args.epochs):
        result = run_worker(spec, backend)
        rows.append(row_of(spec, backend, result, result.get("callback_calls", 0)))
        if "error" not in result:
            print(
                f"  {spec['name']}: {result['total_s']:.1f} s total, {result['steady_ms']:.1f} "
                f"ms/step, val_loss {result['val_loss']:.4f}, exact_match "
                f"{result.get('exact_match', float('nan')):.4f} (load {result['load']:.2f})",
                flush=True,
            )
    shutil.rmtree(folder, ignore_errors=True)
    frame = pd.DataFrame(rows)
    ok = frame[frame["run"].str.startswith("torch-loop")]
    if "error" in frame:
        ok = ok[ok["error"].isna()]
    if len(ok):  # against the faster of the peer's runs
        torch_total, torch_steady = float(ok["total_s"].min()), float(ok["steady_ms"].min())
        frame["ratio"] = (frame["total_s"] / torch_total).round(3)
        frame["steady_ratio"] = (frame["steady_ms"] / torch_steady).round(3)
        frame.loc[frame["run"] == "demo", ["ratio", "steady_ratio"]] = float("nan")
    for column in frame.columns:
        if frame[column].dtype == float:
            frame[column] = frame[column].round(4 if "loss" in column else 3)
    _common.print_table(frame, drop=("size", "train_tokens", "in_process_s", "callback_calls"))
    _common.write_csv_atomic(frame, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
