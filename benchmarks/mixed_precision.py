"""Mixed precision training and inference: speed and final loss against float32.

Three models, each trained twice from the same initial weights (the same
seed; mixed precision keeps float32 variables) on the same batches with
the same optimizer and compile mode (`jit_compile="auto"`: no XLA on a
CPU-only machine):

* `transformer`: `keras_attention.models.transformer` (256 hiddens, FFN
  1024, 4 heads, 2 blocks, dropout 0.1) on the embedded dates task
  (`keras_attention.data.load_dates`, which needs TensorFlow; where
  TensorFlow is not installed, e.g. a JAX GPU machine, on a generated
  task made with numpy: reverse a sequence of 8 to 24 random tokens),
  batch 128, Adam 1e-3;
* `vit`: `keras_attention.models.vision_transformer` (28 px, 4x4 patches,
  128 hiddens, MLP 256, 4 heads, 4 blocks) on generated shape images
  (`keras_attention.data.generate_shapes`), batch 128, Adam 1e-3;
* `gpt`: `keras_attention.models.gpt`, the small character GPT of
  `benchmarks/small_models.py` (128 hiddens, FFN 512, 4 heads, 4 blocks,
  64 characters, causal only) on the generated corpus's characters
  (random ids without TensorFlow), batch 128, Adam 1e-3.

Policies: `float32` against, on a CPU, `mixed_bfloat16`; with a GPU
present, `mixed_float16` (with a `keras.optimizers.LossScaleOptimizer`)
and `mixed_bfloat16` (`--policies` chooses). The runs of a model alternate
in chunks of `--chunk` steps, so that load changes hit them alike. The
table gives the median step time of each policy (the first chunk, which
traces, left out), `speedup` = float32 time / mixed time, and
the final loss of each (mean of the last `--chunk` steps) and their
difference; then the inference (`predict_on_batch` of one training batch,
compiled like training) time of each trained model, alternating, median
of `--chunk` calls, and `infer_speedup`.

    python benchmarks/mixed_precision.py
    python benchmarks/mixed_precision.py --quick
    python benchmarks/mixed_precision.py --models vit --steps 300

    KERAS_BACKEND=jax python benchmarks/mixed_precision.py   # e.g. on a GPU machine

Writes `outputs/benchmarks/mixed_precision.csv` (`mixed_precision_quick.csv`
with `--quick`) atomically. Sets `KERAS_BACKEND=tensorflow` unless it is set;
runs on any backend.
"""

import argparse
import importlib.util
import os
import statistics
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

MODELS = ("transformer", "vit", "gpt")
POLICIES = ("mixed_float16", "mixed_bfloat16")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--models",
        default="transformer,vit,gpt",
        help="Subset of transformer,vit,gpt. Defaults to all three.",
    )
    parser.add_argument(
        "--policies",
        default=None,
        help="Mixed policies to compare with float32, a subset of mixed_float16,mixed_bfloat16. "
        "Defaults to both on a GPU, mixed_bfloat16 on a CPU.",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="Training steps per policy. Defaults to 200 (6 with --quick).",
    )
    parser.add_argument(
        "--chunk",
        type=int,
        default=None,
        help="Steps per alternation chunk. Defaults to 20 (2 with --quick).",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="Batch size. Defaults to 128 (16 with --quick).",
    )
    parser.add_argument("--quick", action="store_true", help="Smoke run: tiny models, few steps.")
    parser.add_argument("--seed", type=int, default=0, help="Random seed. Defaults to 0.")
    parser.add_argument(
        "--out",
        default=None,
        help="CSV destination. Defaults to outputs/benchmarks/mixed_precision.csv.",
    )
    args = parser.parse_args(argv)
    try:
        args.models = _common.split_list(args.models, MODELS, "--models")
        if args.policies is not None:
            args.policies = _common.split_list(args.policies, POLICIES, "--policies")
    except ValueError as error:
        parser.error(str(error))
    args.steps = args.steps or (6 if args.quick else 200)
    args.chunk = args.chunk or (2 if args.quick else 20)
    args.batch_size = args.batch_size or (16 if args.quick else 128)
    if args.chunk < 1 or args.steps < 2 * args.chunk or args.batch_size < 1:
        parser.error("--chunk must be >= 1, --steps >= 2 * --chunk and --batch-size >= 1.")
    if args.out is None:
        name = "mixed_precision_quick.csv" if args.quick else "mixed_precision.csv"
        args.out = os.path.join("outputs", "benchmarks", name)
    return args


def have_tensorflow():
    return importlib.util.find_spec("tensorflow") is not None


def dates_batches(args):
    """Batches of the dates task: `(src_vocab, tgt_vocab, max_len, batches)`."""
    from keras_attention.data import load_dates

    task = load_dates(num_train=args.steps * args.batch_size, num_val=10, seed=args.seed)
    batches = [
        ({k: v.numpy() for k, v in x.items()}, y.numpy())
        for x, y in task.train_dataset(args.batch_size, seed=args.seed, drop_remainder=True)
    ]
    return task.src_tokenizer.vocab_size, task.tgt_tokenizer.vocab_size, task.num_steps + 1, batches


def reversal_batches(args, vocab_size=64, min_len=8, max_len=24):
    """Batches of a generated task (numpy only): reverse a random token sequence.

    Ids: 0 padding, 1 `<bos>`, 2 `<eos>`, 3.. tokens. Returns
    `(vocab, vocab, max_len + 1, batches)` like `dates_batches`.
    """
    import numpy as np

    rng = np.random.default_rng(args.seed)
    batches = []
    for _ in range(args.steps):
        lengths = rng.integers(min_len, max_len + 1, size=args.batch_size)
        src = np.zeros((args.batch_size, max_len), "int32")
        tgt_in = np.zeros((args.batch_size, max_len + 1), "int32")
        tgt_out = np.zeros((args.batch_size, max_len + 1), "int32")
        for i, n in enumerate(lengths):
            tokens = rng.integers(3, vocab_size, size=n)
            src[i, :n] = tokens
            tgt_in[i, : n + 1] = np.concatenate([[1], tokens[::-1]])
            tgt_out[i, : n + 1] = np.concatenate([tokens[::-1], [2]])
        batches.append(({"src_ids": src, "tgt_in_ids": tgt_in}, tgt_out))
    return vocab_size, vocab_size, max_len + 1, batches


def transformer_setup(args):
    """A model builder and the training batches (dates, or reversal without TensorFlow)."""
    from keras_attention import models

    width = (32, 64) if args.quick else (256, 1024)
    task = "dates" if have_tensorflow() else "reversal"
    make_batches = dates_batches if task == "dates" else reversal_batches
    src_vocab, tgt_vocab, max_len, batches = make_batches(args)

    def build():
        return models.transformer(
            src_vocab, tgt_vocab, width[0], width[1], 4, 2, 0.1, max_len=max_len
        )

    return build, batches, "masked", task


def vit_setup(args):
    from keras_attention import models
    from keras_attention.data import generate_shapes

    images, labels = generate_shapes(args.steps * args.batch_size, seed=args.seed)
    images = images[..., None]  # (N, 28, 28, 1)
    batches = [
        (images[i : i + args.batch_size], labels[i : i + args.batch_size])
        for i in range(0, len(images), args.batch_size)
    ]
    width = (32, 64, 2) if args.quick else (128, 256, 4)

    def build():
        return models.vision_transformer(28, 4, width[0], width[1], 4, width[2], 0.1, 0.1, 10)

    return build, batches, "sparse", "shapes"


def gpt_setup(args, seq_len=64):
    """The small character GPT and next-character batches of the generated corpus."""
    import numpy as np

    from keras_attention import models

    need = args.steps * args.batch_size * (seq_len + 1)
    if have_tensorflow():
        from keras_attention.data import generate_corpus

        text = " ".join(generate_corpus(2000, seed=args.seed))
        chars = sorted(set(text))
        ids = np.array([chars.index(c) for c in text], "int32")
        ids = np.resize(ids, need)  # repeats the corpus as often as the steps need
        vocab, task = len(chars), "corpus-chars"
    else:
        vocab, task = 64, "random-ids"
        ids = np.random.default_rng(args.seed).integers(0, vocab, need).astype("int32")
    windows = ids.reshape(args.steps * args.batch_size, seq_len + 1)
    batches = [(w[:, :-1], w[:, 1:]) for w in np.split(windows, args.steps)]
    width = (32, 64, 2) if args.quick else (128, 512, 4)

    def build():
        return models.gpt(vocab, width[0], width[1], 4, width[2], 0.1, max_len=seq_len, pad_id=None)

    return build, batches, "sparse", task


def compile_model(model, loss_kind, mixed_float16):
    import keras

    from keras_attention import metrics

    optimizer = keras.optimizers.Adam(1e-3, global_clipnorm=1.0)
    if mixed_float16:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    if loss_kind == "masked":
        loss = metrics.MaskedSparseCategoricalCrossentropy(pad_id=0)
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=optimizer, loss=loss, jit_compile="auto")
    return model


def bench_model(name, args, mixed_policies):
    """One row per mixed policy: its step time and final loss against float32's."""
    import keras

    setups = {"transformer": transformer_setup, "vit": vit_setup, "gpt": gpt_setup}
    build, batches, loss_kind, task = setups[name](args)
    runs = {}
    for policy in ("float32", *mixed_policies):
        with _common.dtype_policy(policy):
            keras.utils.set_random_seed(args.seed)
            model = build()
        runs[policy] = compile_model(model, loss_kind, policy == "mixed_float16")
    times = {policy: [] for policy in runs}
    losses = {policy: [] for policy in runs}
    num_chunks = args.steps // args.chunk
    for c in range(num_chunks):  # alternate: load changes hit both alike
        for policy, model in runs.items():
            start = time.perf_counter()
            for s in range(c * args.chunk, (c + 1) * args.chunk):
                x, y = batches[s % len(batches)]
                losses[policy].append(float(model.train_on_batch(x, y, return_dict=True)["loss"]))
            if c > 0:  # the first chunk traces
                times[policy].append((time.perf_counter() - start) / args.chunk)
    step_ms = {p: 1e3 * statistics.median(t) for p, t in times.items()}
    final = {p: statistics.fmean(v[-args.chunk :]) for p, v in losses.items()}
    infer_ms = inference_ms(runs, batches[0][0], args.chunk)
    rows = []
    for mixed_policy in mixed_policies:
        rows.append(
            {
                "model": name,
                "task": task,
                "mixed_policy": mixed_policy,
                "steps": num_chunks * args.chunk,
                "batch": args.batch_size,
                "float32_step_ms": round(step_ms["float32"], 2),
                "mixed_step_ms": round(step_ms[mixed_policy], 2),
                "speedup": round(step_ms["float32"] / step_ms[mixed_policy], 3),
                "float32_final_loss": round(final["float32"], 4),
                "mixed_final_loss": round(final[mixed_policy], 4),
                "loss_difference": round(final[mixed_policy] - final["float32"], 4),
                "float32_infer_ms": round(infer_ms["float32"], 2),
                "mixed_infer_ms": round(infer_ms[mixed_policy], 2),
                "infer_speedup": round(infer_ms["float32"] / infer_ms[mixed_policy], 3),
            }
        )
        print(
            f"  {name}: float32 {step_ms['float32']:.2f} ms/step, {mixed_policy} {step_ms[mixed_policy]:.2f} "
            f"ms/step, losses {final['float32']:.4f} / {final[mixed_policy]:.4f}",
            flush=True,
        )
    return rows


def inference_ms(runs, x, repeats):
    """Median ms of `predict_on_batch(x)` per policy, the policies alternating (after a warmup)."""
    times = {policy: [] for policy in runs}
    for policy, model in runs.items():
        model.predict_on_batch(x)  # traces
    for _ in range(max(repeats, 3)):
        for policy, model in runs.items():
            start = time.perf_counter()
            model.predict_on_batch(x)
            times[policy].append(time.perf_counter() - start)
    return {p: 1e3 * statistics.median(t) for p, t in times.items()}


def gpu_present():
    """Whether the current Keras backend sees a GPU."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    if backend == "jax":
        import jax

        return jax.devices()[0].platform == "gpu"
    if backend == "torch":
        import torch

        return torch.cuda.is_available()
    return False


def main(argv=None):
    args = parse_args(argv)
    import keras
    import pandas as pd

    gpu = gpu_present()
    policies = args.policies or (list(POLICIES) if gpu else ["mixed_bfloat16"])
    print(
        f"keras {keras.__version__}, backend {keras.backend.backend()}, gpu: {gpu}, cpus: {os.cpu_count()}, "
        f"comparing float32 with {', '.join(policies)}",
        flush=True,
    )
    frame = pd.DataFrame([row for name in args.models for row in bench_model(name, args, policies)])
    _common.print_table(frame)
    _common.write_csv_atomic(frame, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
