"""Training throughput of our Transformer vs the same one built from keras_hub.

Both sides are the post-norm encoder-decoder of D2L's "The Transformer
Architecture" section, trained on the same batches with the same loss,
optimizer and compile mode in the same run:

* ours: `keras_attention.models.transformer` (sinusoidal positions,
  `TransformerEncoderBlock` / `TransformerDecoderBlock`);
* keras_hub: `keras_hub.layers.TokenAndPositionEmbedding` (learned
  positions) + dropout, `num_blks` `keras_hub.layers.TransformerEncoder`
  and `TransformerDecoder` (padding masks passed explicitly, causal
  self-attention in the decoder), a dense layer to target logits.

Loss: `keras_attention.metrics.MaskedSparseCategoricalCrossentropy` (pad
ignored), Adam 1e-3 with global clipnorm 1 (`training.compile_seq2seq`).
Data: seeded random token pairs (the same arrays for both): source lengths
uniform in `[T/2, T]`, targets `<bos> ... <eos>` of lengths uniform in
`[T/2, T]`, padded with 0 to `T`. Throughput counts non-pad target tokens
(the labels the loss sees) per second of `train_on_batch` wall time.

Configurations (`--configs`):

* `d2l`: D2L's fra-eng Transformer: vocabularies 200 (about the size of
  D2L's 512-pair fra-eng vocabularies), `num_steps` 9, 256 hiddens, FFN 64,
  4 heads, 2 blocks, dropout 0.2, batch 128;
* `large`: vocabularies 8000, `num_steps` 32, 256 hiddens, FFN 1024, 4
  heads, 2 blocks, dropout 0.2, batch 128.

Compile modes (`--compile`), the same for both sides:

* `auto`: `jit_compile="auto"`, i.e. no XLA on a CPU-only machine (XLA on
  a GPU), with the configuration's dropout;
* `xla0`: `jit_compile=True` with dropout 0 on both sides (XLA's CPU
  random-number generator makes `Dropout` about 15x slower, which would
  measure the RNG rather than the models).

`--policy mixed_bfloat16` builds both sides under that dtype policy
(float32 variables, bfloat16 compute, float32 logits); the default is
float32.

`--cpu-allocator bfc` runs both on TensorFlow's pooled CPU allocator
(`TF_CPU_ALLOCATOR_USE_BFC=true`, what the `keras-attention` command uses)
instead of its default `malloc` (column `cpu_allocator`).

The models are timed round-robin: each of `--rounds` rounds runs
`--steps` steps of ours, then of keras_hub, after one untimed warm-up round
of `--warmup-steps` steps (tracing, compilation). The table gives the median
of the rounds' rates and `ratio` = ours / keras_hub (target: >= 1.5).

    python benchmarks/throughput.py                 # both configs, auto and xla0
    python benchmarks/throughput.py --quick         # smoke run, tiny sizes
    python benchmarks/throughput.py --configs large --compile auto --rounds 5

Writes `outputs/benchmarks/throughput.csv` (`throughput_quick.csv` with
`--quick`) atomically. Sets `KERAS_BACKEND=tensorflow` unless it is set.
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

CONFIGS = {
    "d2l": dict(
        vocab=200,
        num_steps=9,
        num_hiddens=256,
        ffn_num_hiddens=64,
        num_heads=4,
        num_blks=2,
        dropout=0.2,
        batch_size=128,
    ),
    "large": dict(
        vocab=8000,
        num_steps=32,
        num_hiddens=256,
        ffn_num_hiddens=1024,
        num_heads=4,
        num_blks=2,
        dropout=0.2,
        batch_size=128,
    ),
}
QUICK_CONFIGS = {
    "d2l": dict(CONFIGS["d2l"], num_hiddens=32, batch_size=16),
    "large": dict(
        CONFIGS["large"], vocab=500, num_steps=16, num_hiddens=32, ffn_num_hiddens=64, batch_size=16
    ),
}
COMPILE_MODES = ("auto", "xla0")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--configs", default="d2l,large", help="Subset of d2l,large. Defaults to both."
    )
    parser.add_argument(
        "--compile",
        default=None,
        help="Subset of auto,xla0 (see the docstring). Defaults to both ('auto' with --quick).",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="Timed steps per model per round. Defaults to 20 (3 with --quick).",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="Timed rounds (median reported). Defaults to 3 (2 with --quick).",
    )
    parser.add_argument(
        "--warmup-steps",
        type=int,
        default=None,
        help="Untimed steps first. Defaults to 5 (2 with --quick).",
    )
    parser.add_argument(
        "--policy",
        default="float32",
        choices=("float32", "mixed_bfloat16", "mixed_float16"),
        help="Dtype policy of both models. Defaults to float32.",
    )
    parser.add_argument("--quick", action="store_true", help="Smoke run: tiny models, few steps.")
    parser.add_argument("--seed", type=int, default=0, help="Random seed. Defaults to 0.")
    _common.add_cpu_allocator_argument(parser)
    parser.add_argument(
        "--out",
        default=None,
        help="CSV destination. Defaults to outputs/benchmarks/throughput.csv.",
    )
    args = parser.parse_args(argv)
    if args.compile is None:
        args.compile = "auto" if args.quick else "auto,xla0"
    try:
        args.configs = _common.split_list(args.configs, tuple(CONFIGS), "--configs")
        args.compile = _common.split_list(args.compile, COMPILE_MODES, "--compile")
    except ValueError as error:
        parser.error(str(error))
    args.steps = args.steps or (3 if args.quick else 20)
    args.rounds = args.rounds or (2 if args.quick else 3)
    args.warmup_steps = (
        args.warmup_steps if args.warmup_steps is not None else (2 if args.quick else 5)
    )
    if min(args.steps, args.rounds) < 1 or args.warmup_steps < 1:
        parser.error("--steps, --rounds and --warmup-steps must be >= 1.")
    if args.out is None:
        name = "throughput_quick.csv" if args.quick else "throughput.csv"
        args.out = os.path.join("outputs", "benchmarks", name)
    return args


def make_batches(config, num_batches, seed):
    """`num_batches` of `({"src_ids", "tgt_in_ids"}, labels)`, each `(B, T)` int32 numpy."""
    import numpy as np

    rng = np.random.default_rng(seed)
    batch, steps, vocab = config["batch_size"], config["num_steps"], config["vocab"]
    positions = np.arange(steps)[None, :]
    batches = []
    for _ in range(num_batches):
        src_len = rng.integers(steps // 2, steps + 1, size=(batch, 1))
        src = np.where(positions < src_len, rng.integers(3, vocab, size=(batch, steps)), 0)
        # Target: <bos>=1, then tokens, then <eos>=2 as the last label.
        tgt_len = rng.integers(steps // 2, steps + 1, size=(batch, 1))  # labels incl. <eos>
        words = rng.integers(3, vocab, size=(batch, steps))
        labels = np.where(positions < tgt_len - 1, words, np.where(positions == tgt_len - 1, 2, 0))
        tgt_in = np.concatenate([np.ones((batch, 1), np.int64), labels[:, :-1]], axis=1)
        tgt_in = np.where(positions < tgt_len, tgt_in, 0)
        batches.append(
            (
                {"src_ids": src.astype("int32"), "tgt_in_ids": tgt_in.astype("int32")},
                labels.astype("int32"),
            )
        )
    return batches


def keras_hub_transformer(
    vocab, num_hiddens, ffn_num_hiddens, num_heads, num_blks, dropout, max_len
):
    """The same encoder-decoder from keras_hub's layers (post-norm, like D2L)."""
    import keras
    import keras_hub

    src_ids = keras.Input(shape=(None,), dtype="int32", name="src_ids")
    tgt_in_ids = keras.Input(shape=(None,), dtype="int32", name="tgt_in_ids")
    src_mask = keras.ops.not_equal(src_ids, 0)
    tgt_mask = keras.ops.not_equal(tgt_in_ids, 0)
    X = keras_hub.layers.TokenAndPositionEmbedding(
        vocab, max_len, num_hiddens, name="src_embedding"
    )(src_ids)
    X = keras.layers.Dropout(dropout)(X)
    for i in range(num_blks):
        X = keras_hub.layers.TransformerEncoder(
            ffn_num_hiddens, num_heads, dropout=dropout, name=f"encoder_{i}"
        )(X, padding_mask=src_mask)
    Y = keras_hub.layers.TokenAndPositionEmbedding(
        vocab, max_len, num_hiddens, name="tgt_embedding"
    )(tgt_in_ids)
    Y = keras.layers.Dropout(dropout)(Y)
    for i in range(num_blks):
        Y = keras_hub.layers.TransformerDecoder(
            ffn_num_hiddens, num_heads, dropout=dropout, name=f"decoder_{i}"
        )(Y, X, decoder_padding_mask=tgt_mask, encoder_padding_mask=src_mask)
    logits = keras.layers.Dense(vocab, dtype="float32", name="output_dense")(Y)
    return keras.Model(
        {"src_ids": src_ids, "tgt_in_ids": tgt_in_ids}, logits, name="keras_hub_transformer"
    )


def build_models(config, dropout, jit_compile, seed, policy="float32"):
    import keras

    from keras_attention import models
    from keras_attention.recipes import training

    sizes = dict(
        num_hiddens=config["num_hiddens"],
        ffn_num_hiddens=config["ffn_num_hiddens"],
        num_heads=config["num_heads"],
        num_blks=config["num_blks"],
        dropout=dropout,
    )
    max_len = config["num_steps"] + 1
    with _common.dtype_policy(policy):
        keras.utils.set_random_seed(seed)
        ours = models.transformer(config["vocab"], config["vocab"], max_len=max_len, **sizes)
        keras.utils.set_random_seed(seed)
        theirs = keras_hub_transformer(config["vocab"], max_len=max_len, **sizes)
    for model in (ours, theirs):
        training.compile_seq2seq(model, learning_rate=1e-3, jit_compile=jit_compile)
    return {"ours": ours, "keras_hub": theirs}


def bench(config_name, config, mode, args):
    import numpy as np

    dropout = config["dropout"] if mode == "auto" else 0.0
    jit_compile = "auto" if mode == "auto" else True
    models = build_models(config, dropout, jit_compile, args.seed, args.policy)
    batches = make_batches(config, 8, args.seed)
    tokens = [int(np.count_nonzero(y)) for _, y in batches]

    def run(model, num_steps, offset):
        count, loss = 0, None
        start = time.perf_counter()
        for s in range(num_steps):
            x, y = batches[(offset + s) % len(batches)]
            loss = model.train_on_batch(x, y, return_dict=True)["loss"]
            count += tokens[(offset + s) % len(batches)]
        return count, time.perf_counter() - start, float(loss)

    for model in models.values():
        run(model, args.warmup_steps, 0)
    rates = {name: [] for name in models}
    losses = {}
    for r in range(args.rounds):
        for name, model in models.items():
            count, seconds, losses[name] = run(model, args.steps, r * args.steps)
            rates[name].append(count / seconds)
    rate = {name: statistics.median(v) for name, v in rates.items()}
    row = {
        "config": config_name,
        "compile": f"{mode} (jit_compile={jit_compile!r}, dropout {dropout})",
        "policy": args.policy,
        "batch": config["batch_size"],
        "num_steps": config["num_steps"],
        "vocab": config["vocab"],
        "num_hiddens": config["num_hiddens"],
        "ffn_num_hiddens": config["ffn_num_hiddens"],
        "ours_params": models["ours"].count_params(),
        "keras_hub_params": models["keras_hub"].count_params(),
        "ours_tokens_per_s": round(rate["ours"], 1),
        "keras_hub_tokens_per_s": round(rate["keras_hub"], 1),
        "ratio": round(rate["ours"] / rate["keras_hub"], 3),
        "ours_last_loss": round(losses["ours"], 4),
        "keras_hub_last_loss": round(losses["keras_hub"], 4),
    }
    print(
        f"  {config_name} {mode}: ours {row['ours_tokens_per_s']} tok/s, keras_hub "
        f"{row['keras_hub_tokens_per_s']} tok/s, ratio {row['ratio']}",
        flush=True,
    )
    return row


def main(argv=None):
    args = parse_args(argv)
    _common.set_cpu_allocator(args.cpu_allocator)  # before TensorFlow's first tensor
    import keras
    import pandas as pd
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    devices = ", ".join(d.device_type for d in tf.config.list_logical_devices())
    print(
        f"tensorflow {tf.__version__}, keras {keras.__version__}, backend {keras.backend.backend()}, "
        f"devices: {devices}, cpus: {os.cpu_count()}",
        flush=True,
    )
    configs = QUICK_CONFIGS if args.quick else CONFIGS
    rows = [
        bench(name, configs[name], mode, args) for name in args.configs for mode in args.compile
    ]
    frame = pd.DataFrame(rows)
    frame["cpu_allocator"] = args.cpu_allocator
    _common.print_table(frame, drop=("ours_params", "keras_hub_params", "vocab", "ffn_num_hiddens"))
    _common.write_csv_atomic(frame, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
