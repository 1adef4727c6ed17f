"""The attention variants' card: one character GPT per variant, same data, same budget.

Every row trains `keras_attention.models.gpt` with one variant switched on
(the baseline: learned positions, full multi-head attention) for the same
number of steps on the same batches, then measures:

* `val_loss` / `val_ppl`: held-out next-character loss (nats) and
  perplexity, on windows of the trained length `T`;
* `loss_2x`, `loss_4x`: the same on windows of `2 T` and `4 T` (length extrapolation: the models
  are built with `max_len = 2 T`, so learned positions past `T` are the
  untrained rows of the table);
* `train_tokens_per_s`: training throughput (timed after a warm-up fit);
* `decode_tokens_per_s`: greedy sampling with the key/value cache
  (`generate.sample` inside one `tf.function`);
* `infer_tokens_per_s`: one forward pass over a `(B, T)` batch;
* `kv_bytes_per_token`: the cache's bytes per position, all blocks
  (`N * 2 * D_kv * 4`: grouped-query heads shrink `D_kv`; the sliding
  window's cache here still holds every position, masked);
* `params`, `trainable_params`, `model_bytes` (the variables' bytes).

Rows: `learned` (baseline), `sinusoidal`, `rotary`, `rotary+linear2x`,
`rotary+ntk2x`, `rotary+yarn2x` and the same at 4x (the rotary weights, read with position
interpolation, NTK-aware or YaRN scaling by 2 or 4: no training of their own), `alibi`, `gqa_kv2`,
`mqa_kv1`, `window` (`T / 4`), `qk_norm` (RMS), `softcap` (10), `lora_r4`
(the trained baseline fine-tuned `steps / 4` more steps with LoRA on
`W_q`, `W_v`: what LoRA trains and how fast) and, unless `--no-quantize`,
`int8` (the trained baseline after `models.quantize`, with
`logit_max_abs_diff` / `logit_cosine` / `argmax_agreement` of its logits
against float32's).

Data: The Time Machine (character tokens) when found (`--data-dir`,
`../shared/data` beside the checkout, or `~/.keras/datasets`), else the
generated corpus (offline), through `keras_attention.recipes.lm.lm_data`.

    python benchmarks/variants.py            # ~8 min on 2 cores
    python benchmarks/variants.py --quick    # < 2 min smoke run
    python benchmarks/variants.py --rows learned,rotary,alibi --steps 100

Writes `outputs/benchmarks/variants.csv` (`variants_quick.csv` with
`--quick`) atomically, with the CPU model and flags in every row. Sets
`KERAS_BACKEND=tensorflow` (the data pipeline is tf.data).
"""

import argparse
import math
import os
import statistics
import sys
import time

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

MODEL = dict(
    num_hiddens=64,
    ffn_num_hiddens=256,
    num_heads=4,
    num_blks=2,
    seq_len=64,
    batch_size=32,
    steps=300,
    val_batches=20,
    decode_batch=4,
    learning_rate=3e-3,
    repeats=3,
)
QUICK_MODEL = dict(
    num_hiddens=32,
    ffn_num_hiddens=64,
    num_heads=4,
    num_blks=1,
    seq_len=16,
    batch_size=16,
    steps=10,
    val_batches=2,
    decode_batch=2,
    learning_rate=3e-3,
    repeats=1,
)
TRAINED = (
    "learned",
    "sinusoidal",
    "rotary",
    "alibi",
    "gqa_kv2",
    "mqa_kv1",
    "window",
    "qk_norm",
    "softcap",
)
DERIVED = (
    "rotary+linear2x",
    "rotary+ntk2x",
    "rotary+yarn2x",
    "rotary+linear4x",
    "rotary+ntk4x",
    "rotary+yarn4x",
    "lora_r4",
    "int8",
)
ROWS = TRAINED + DERIVED


def variant_kwargs(row, seq_len):
    """The `gpt` arguments of a row (derived rows: those of the model they read)."""
    return {
        "learned": {},
        "lora_r4": {},
        "int8": {},
        "sinusoidal": {"positions": "sinusoidal"},
        "rotary": {"positions": "rotary"},
        "rotary+linear2x": {
            "positions": "rotary",
            "rotary_scaling": "linear",
            "rotary_scaling_factor": 2.0,
        },
        "rotary+ntk2x": {
            "positions": "rotary",
            "rotary_scaling": "ntk",
            "rotary_scaling_factor": 2.0,
        },
        "rotary+yarn2x": {
            "positions": "rotary",
            "rotary_scaling": "yarn",
            "rotary_scaling_factor": 2.0,
            "rotary_original_max_len": seq_len,
        },
        "rotary+linear4x": {
            "positions": "rotary",
            "rotary_scaling": "linear",
            "rotary_scaling_factor": 4.0,
        },
        "rotary+ntk4x": {
            "positions": "rotary",
            "rotary_scaling": "ntk",
            "rotary_scaling_factor": 4.0,
        },
        "rotary+yarn4x": {
            "positions": "rotary",
            "rotary_scaling": "yarn",
            "rotary_scaling_factor": 4.0,
            "rotary_original_max_len": seq_len,
        },
        "alibi": {"positions": "alibi"},
        "gqa_kv2": {"num_kv_heads": 2},
        "mqa_kv1": {"num_kv_heads": 1},
        "window": {"window": max(seq_len // 4, 2)},
        "qk_norm": {"qk_norm": "rms"},
        "softcap": {"logit_softcap": 10.0},
    }[row]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="Smoke run: tiny model, 10 steps.")
    parser.add_argument(
        "--rows", default=",".join(ROWS), help=f"Subset of {','.join(ROWS)}. Defaults to all."
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="Training steps per row. Defaults to 300 (10 with --quick).",
    )
    parser.add_argument(
        "--data",
        default="auto",
        choices=("auto", "timemachine", "corpus"),
        help="Text: auto (The Time Machine when found, else the generated corpus).",
    )
    parser.add_argument(
        "--data-dir", default=None, help="Folder searched first for The Time Machine."
    )
    parser.add_argument("--no-quantize", action="store_true", help="Skip the int8 row.")
    parser.add_argument("--seed", type=int, default=0, help="Random seed. Defaults to 0.")
    parser.add_argument(
        "--out", default=None, help="CSV destination. Defaults to outputs/benchmarks/variants.csv."
    )
    args = parser.parse_args(argv)
    try:
        args.rows = _common.split_list(args.rows, ROWS, "--rows")
    except ValueError as error:
        parser.error(str(error))
    if args.no_quantize:
        args.rows = [r for r in args.rows if r != "int8"]
    args.cfg = dict(QUICK_MODEL if args.quick else MODEL)
    if args.steps is not None:
        if args.steps < 1:
            parser.error("--steps must be >= 1.")
        args.cfg["steps"] = args.steps
    if args.out is None:
        args.out = os.path.join(
            "outputs", "benchmarks", "variants_quick.csv" if args.quick else "variants.csv"
        )
    return args


def load_data(args):
    """`(name, data at T, {2: data at 2 T, 4: data at 4 T})` from `recipes.lm.lm_data`, one tokenizer."""
    from keras_attention.recipes import lm

    cfg = args.cfg
    data_dir = args.data_dir
    if data_dir is None:
        shared = os.path.join(
            os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data"
        )
        data_dir = shared if os.path.isdir(shared) else None
    names = ["timemachine", "corpus"] if args.data == "auto" else [args.data]
    for name in names:
        try:
            short = lm.lm_data(
                name,
                "char",
                seq_len=cfg["seq_len"],
                batch_size=cfg["batch_size"],
                data_dir=data_dir,
                seed=args.seed,
            )
        except (OSError, ValueError) as error:
            if name == names[-1]:
                raise
            print(f"{name} not used ({str(error).splitlines()[0]}); falling back", flush=True)
            continue
        long = {
            factor: lm.lm_data(
                name,
                short.tokenizer,
                seq_len=factor * cfg["seq_len"],
                batch_size=cfg["batch_size"],
                data_dir=data_dir,
                seed=args.seed,
            )
            for factor in (2, 4)
        }
        return name, short, long
    raise AssertionError("unreachable")


def build(row, vocab_size, cfg):
    from keras_attention import models

    return models.gpt(
        vocab_size,
        cfg["num_hiddens"],
        cfg["ffn_num_hiddens"],
        cfg["num_heads"],
        cfg["num_blks"],
        0.0,
        max_len=4 * cfg["seq_len"],
        pad_id=None,
        **variant_kwargs(row, cfg["seq_len"]),
    )


def compile_model(model, cfg, learning_rate=None):
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate or cfg["learning_rate"]),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,
    )
    return model


def train(model, data, steps, cfg):
    """Trains `steps` steps (after 2 untimed warm-up steps); returns training tokens/s."""
    batches = data.train.repeat()
    model.fit(batches, steps_per_epoch=2, epochs=1, verbose=0)  # traces
    start = time.perf_counter()
    model.fit(batches, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps * cfg["batch_size"] * cfg["seq_len"] / (time.perf_counter() - start)


def evaluate(model, data, cfg):
    return float(model.evaluate(data.val.take(cfg["val_batches"]), verbose=0))


def median_time(fn, repeats):
    fn()  # traces
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def speeds(model, data, cfg):
    """`(decode tokens/s with the cache, forward-pass tokens/s, KV bytes per token)`."""
    import numpy as np
    import tensorflow as tf

    from keras_attention import generate

    ids = next(iter(data.val))[0]["token_ids"]  # (B, T)
    prompt = ids[: cfg["decode_batch"], :8]
    new = cfg["seq_len"]
    decode = tf.function(lambda p: generate.sample(model, p, new, temperature=0)["tokens"])
    decode_rate = (
        cfg["decode_batch"] * new / median_time(lambda: decode(prompt).numpy(), cfg["repeats"])
    )
    forward = tf.function(lambda x: model(x, training=False))
    infer_rate = int(np.prod(ids.shape)) / median_time(lambda: forward(ids).numpy(), cfg["repeats"])
    decoder = generate.decoder_for(model, 1, kinds=("gpt",))
    kv_bytes = decoder.num_blks * 2 * decoder.cache_width * 4
    return decode_rate, infer_rate, kv_bytes


def model_bytes(model):
    import keras
    import numpy as np

    return int(
        sum(
            np.prod(v.shape) * np.dtype(keras.backend.standardize_dtype(v.dtype)).itemsize
            for v in model.weights
        )
    )


def logit_agreement(reference, model, data):
    """Max abs difference, cosine and argmax agreement of `model`'s logits vs `reference`'s."""
    import numpy as np

    ids = next(iter(data.val))[0]["token_ids"]
    a = np.asarray(reference(ids, training=False), "float64")
    b = np.asarray(model(ids, training=False), "float64")
    cosine = float(np.sum(a * b) / math.sqrt(np.sum(a * a) * np.sum(b * b)))
    return {
        "logit_max_abs_diff": float(np.abs(a - b).max()),
        "logit_cosine": round(cosine, 6),
        "argmax_agreement": float(np.mean(a.argmax(-1) == b.argmax(-1))),
    }


def measure(row, model, short, long, cfg, train_rate, note=""):
    """One row of the card for a trained `model`."""
    val_loss = evaluate(model, short, cfg)
    decode_rate, infer_rate, kv_bytes = speeds(model, short, cfg)
    trainable = sum(int(math.prod(w.shape)) for w in model.trainable_weights)
    return {
        "variant": row,
        "val_loss": round(val_loss, 4),
        "val_ppl": round(math.exp(val_loss), 3),
        "loss_2x": round(evaluate(model, long[2], cfg), 4),
        "loss_4x": round(evaluate(model, long[4], cfg), 4),
        "train_tokens_per_s": round(train_rate, 1),
        "decode_tokens_per_s": round(decode_rate, 1),
        "infer_tokens_per_s": round(infer_rate, 1),
        "kv_bytes_per_token": kv_bytes,
        "params": model.count_params(),
        "trainable_params": trainable,
        "model_bytes": model_bytes(model),
        "note": note,
    }


def derived_rows(rows, trained, short, long, cfg, vocab_size):
    """The rows that read a trained model: rotary scalings, LoRA, int8."""
    from keras_attention import models

    out = []
    for row in rows:
        if row.startswith("rotary+") and "rotary" in trained:
            model, rate = trained["rotary"]
            scaled = compile_model(build(row, vocab_size, cfg), cfg)
            scaled.set_weights(model.get_weights())
            out.append(
                measure(row, scaled, short, long, cfg, rate, "weights of rotary, no training")
            )
        elif row in ("lora_r4", "int8") and "learned" in trained:
            model, rate = trained["learned"]
            copy = compile_model(build("learned", vocab_size, cfg), cfg)
            copy.set_weights(model.get_weights())
            if row == "lora_r4":
                models.enable_lora(copy, 4)
                compile_model(copy, cfg, learning_rate=3 * cfg["learning_rate"])
                rate = train(copy, short, max(cfg["steps"] // 4, 1), cfg)
                out.append(
                    measure(
                        row,
                        copy,
                        short,
                        long,
                        cfg,
                        rate,
                        f"learned + {max(cfg['steps'] // 4, 1)} LoRA steps",
                    )
                )
            else:
                models.quantize(copy)
                result = measure(row, copy, short, long, cfg, rate, "learned, int8 weights")
                out.append({**result, **logit_agreement(model, copy, short)})
        else:
            print(
                f"  {row}: skipped (needs the {'rotary' if row.startswith('rotary') else 'learned'} row)"
            )
    return out


def main(argv=None):
    args = parse_args(argv)
    import keras
    import pandas as pd
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    cfg, cpu = args.cfg, _common.cpu_info()
    print(
        f"tensorflow {tf.__version__}, keras {keras.__version__}, {cpu['cpu']} x{cpu['cpus']} "
        f"[{cpu['cpu_flags']}]",
        flush=True,
    )
    name, short, long = load_data(args)
    vocab_size = short.tokenizer.vocab_size
    print(f"data: {name}, {short.train_tokens} training characters, vocab {vocab_size}", flush=True)
    rows, trained = [], {}
    needed = set(args.rows) | (
        {"rotary"} if any(r.startswith("rotary+") for r in args.rows) else set()
    )
    needed |= {"learned"} if {"lora_r4", "int8"} & set(args.rows) else set()
    for row in [r for r in TRAINED if r in needed]:
        keras.utils.set_random_seed(args.seed)
        model = compile_model(build(row, vocab_size, cfg), cfg)
        rate = train(model, short, cfg["steps"], cfg)
        trained[row] = (model, rate)
        if row in args.rows:
            rows.append(measure(row, model, short, long, cfg, rate))
            print(
                f"  {row}: val loss {rows[-1]['val_loss']}, 2x {rows[-1]['loss_2x']}, "
                f"4x {rows[-1]['loss_4x']}",
                flush=True,
            )
    rows += derived_rows(
        [r for r in args.rows if r in DERIVED], trained, short, long, cfg, vocab_size
    )
    frame = pd.DataFrame(rows)
    frame = frame.assign(
        data=name,
        steps=cfg["steps"],
        seq_len=cfg["seq_len"],
        batch_size=cfg["batch_size"],
        backend=keras.backend.backend(),
        **cpu,
    )
    _common.print_table(
        frame,
        drop=("cpu", "cpu_flags", "cpus", "backend", "data", "steps", "seq_len", "batch_size"),
    )
    print(
        f"({name}, {cfg['steps']} steps of {cfg['batch_size']}x{cfg['seq_len']} per row; {cpu['cpu']})"
    )
    _common.write_csv_atomic(frame, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
