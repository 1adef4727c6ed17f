"""Mixed precision training: speed and final loss against float32.

Two models, each trained twice from the same initial weights (the same
seed; mixed precision keeps float32 variables) on the same batches with
the same optimizer and compile mode (`jit_compile="auto"`: no XLA on a
CPU-only machine):

* `transformer`: `keras_attention.models.transformer` (256 hiddens, FFN
  1024, 4 heads, 2 blocks, dropout 0.1) on the embedded dates task
  (`keras_attention.data.load_dates`), batch 128, Adam 1e-3;
* `vit`: `keras_attention.models.vision_transformer` (28 px, 4x4 patches,
  128 hiddens, MLP 256, 4 heads, 4 blocks) on generated shape images
  (`keras_attention.data.generate_shapes`), batch 128, Adam 1e-3.

Policies: `float32` and, on a CPU, `mixed_bfloat16`; with a GPU present,
`mixed_float16` with a `keras.optimizers.LossScaleOptimizer`. The two runs
of a model alternate in chunks of `--chunk` steps, so that load changes hit
them alike. The table gives the median step time of each policy (the first
chunk, which traces, left out), `speedup` = float32 time / mixed time, and
the final loss of each (mean of the last `--chunk` steps) and their
difference.

    python benchmarks/mixed_precision.py
    python benchmarks/mixed_precision.py --quick
    python benchmarks/mixed_precision.py --models vit --steps 300

Writes `outputs/benchmarks/mixed_precision.csv` (`mixed_precision_quick.csv`
with `--quick`) atomically. Sets `KERAS_BACKEND=tensorflow` unless it is set.
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

MODELS = ("transformer", "vit")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="transformer,vit", help="Subset of transformer,vit. Defaults to both.")
    parser.add_argument("--steps", type=int, default=None, help="Training steps per policy. Defaults to 200 (6 with --quick).")
    parser.add_argument("--chunk", type=int, default=None, help="Steps per alternation chunk. Defaults to 20 (2 with --quick).")
    parser.add_argument("--batch-size", type=int, default=None, help="Batch size. Defaults to 128 (16 with --quick).")
    parser.add_argument("--quick", action="store_true", help="Smoke run: tiny models, few steps.")
    parser.add_argument("--seed", type=int, default=0, help="Random seed. Defaults to 0.")
    parser.add_argument("--out", default=None, help="CSV destination. Defaults to outputs/benchmarks/mixed_precision.csv.")
    args = parser.parse_args(argv)
    try:
        args.models = _common.split_list(args.models, MODELS, "--models")
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


def transformer_setup(args):
    """A model builder and the training batches of the dates task."""
    from keras_attention import models
    from keras_attention.data import load_dates

    width = (32, 64) if args.quick else (256, 1024)
    task = load_dates(num_train=args.steps * args.batch_size, num_val=10, seed=args.seed)
    batches = [
        ({k: v.numpy() for k, v in x.items()}, y.numpy())
        for x, y in task.train_dataset(args.batch_size, seed=args.seed, drop_remainder=True)
    ]

    def build():
        return models.transformer(
            task.src_tokenizer.vocab_size, task.tgt_tokenizer.vocab_size, width[0], width[1], 4, 2, 0.1,
            max_len=task.num_steps + 1,
        )

    return build, batches, "masked"


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

    return build, batches, "sparse"


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


def bench_model(name, args, mixed_policy):
    import keras

    build, batches, loss_kind = {"transformer": transformer_setup, "vit": vit_setup}[name](args)
    runs = {}
    for policy in ("float32", mixed_policy):
        keras.config.set_dtype_policy(policy)
        try:
            keras.utils.set_random_seed(args.seed)
            model = build()
        finally:
            keras.config.set_dtype_policy("float32")
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
    row = {
        "model": name,
        "mixed_policy": mixed_policy,
        "steps": num_chunks * args.chunk,
        "batch": args.batch_size,
        "float32_step_ms": round(step_ms["float32"], 2),
        "mixed_step_ms": round(step_ms[mixed_policy], 2),
        "speedup": round(step_ms["float32"] / step_ms[mixed_policy], 3),
        "float32_final_loss": round(final["float32"], 4),
        "mixed_final_loss": round(final[mixed_policy], 4),
        "loss_difference": round(final[mixed_policy] - final["float32"], 4),
    }
    print(f"  {name}: float32 {row['float32_step_ms']} ms/step, {mixed_policy} {row['mixed_step_ms']} ms/step, "
          f"losses {row['float32_final_loss']} / {row['mixed_final_loss']}", flush=True)
    return row


def main(argv=None):
    args = parse_args(argv)
    import keras
    import pandas as pd
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    gpu = bool(tf.config.list_physical_devices("GPU"))
    mixed_policy = "mixed_float16" if gpu else "mixed_bfloat16"
    print(f"tensorflow {tf.__version__}, keras {keras.__version__}, gpu: {gpu}, cpus: {os.cpu_count()}, "
          f"comparing float32 with {mixed_policy}", flush=True)
    frame = pd.DataFrame([bench_model(name, args, mixed_policy) for name in args.models])
    _common.print_table(frame)
    _common.write_csv_atomic(frame, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
