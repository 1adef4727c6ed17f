"""Speed of our `MultiHeadAttention` against `keras.layers.MultiHeadAttention`.

Times one training step's worth of work, forward and backward (gradients
with respect to the input and every weight), of self-attention in float32:
our layer with `use_fused_op=True` and with `use_fused_op=False`, and Keras'
own layer, all three with the same weights (copied, and checked to give the
same outputs) and `use_bias=False`. Each is run

* eager: a `tf.GradientTape` around the call, no `tf.function`;
* jit: the whole forward+backward step in `tf.function(jit_compile=True)`.

The three layers are timed round-robin within each repeat, so that a change
in the machine's load hits them alike; the table reports the median of
`--repeats` timings after `--warmup` untimed runs. The machine's matmul
speed (a jit-compiled 1024 x 1024 float32 `tf.matmul`) is measured in the
same run, and each row says what fraction of it our layer reached, counting
the FLOPs of multi-head attention analytically:

    forward  = 4 * 2*B*T*D*D   (W_q, W_k, W_v, W_o)
             + 2 * 2*B*H*T*T*d (Q K^T and weights @ V, d = D / H)
    step     = 3 * forward     (backward ~ twice the forward)

Run from the repository root:

    python benchmarks/attention.py                 # full run, ~1-2 min on CPU
    python benchmarks/attention.py --quick         # smoke run, tiny shapes
    python benchmarks/attention.py --repeats 30 --shapes 32x128x256x8

The script sets `KERAS_BACKEND=tensorflow` unless it is already set (the
benchmark uses `tf.GradientTape` and `tf.function`, so it needs TensorFlow).
It prints a pandas table and writes it as CSV to `--out` (atomically).
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DEFAULT_SHAPES = "32x128x256x8,8x512x256x8"
QUICK_SHAPES = "4x32x64x8,2x64x64x8"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=(
            "Forward+backward time of keras_attention MultiHeadAttention "
            "vs keras.layers.MultiHeadAttention (self-attention, float32)."
        )
    )
    parser.add_argument(
        "--shapes",
        default=None,
        help=(
            "Comma-separated BxTxDxH shapes (batch, length, num_hiddens, "
            f"num_heads). Defaults to {DEFAULT_SHAPES!r} "
            f"({QUICK_SHAPES!r} with --quick)."
        ),
    )
    parser.add_argument(
        "--modes",
        default="eager,jit",
        help="Comma-separated subset of eager,jit. Defaults to 'eager,jit'.",
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="Timed runs per case (median reported). Defaults to 10 (2 with --quick)."
    )
    parser.add_argument(
        "--warmup", type=int, default=None, help="Untimed runs per case first. Defaults to 3 (1 with --quick)."
    )
    parser.add_argument(
        "--quick", action="store_true", help="Smoke run: tiny shapes, few repeats."
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="TensorFlow intra- and inter-op threads; 0 keeps TensorFlow's default. Defaults to 0.",
    )
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help=(
            "wall: elapsed time. cpu: CPU time of this process (all its threads), "
            "which other processes' load disturbs much less; with --threads 1 it "
            "measures work. Defaults to wall."
        ),
    )
    parser.add_argument("--seed", type=int, default=0, help="Random seed. Defaults to 0.")
    parser.add_argument(
        "--out",
        default=None,
        help=(
            "CSV destination. Defaults to outputs/benchmarks/attention.csv "
            "(attention_quick.csv with --quick)."
        ),
    )
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 2 if args.quick else 10
    if args.warmup is None:
        args.warmup = 1 if args.quick else 3
    if args.repeats < 1 or args.warmup < 0 or args.threads < 0:
        parser.error("--repeats must be >= 1, --warmup >= 0 and --threads >= 0.")
    if args.out is None:
        name = "attention_quick.csv" if args.quick else "attention.csv"
        args.out = os.path.join("outputs", "benchmarks", name)
    if args.shapes is None:
        args.shapes = QUICK_SHAPES if args.quick else DEFAULT_SHAPES
    try:
        args.shapes = [tuple(int(n) for n in s.lower().split("x")) for s in args.shapes.split(",")]
    except ValueError:
        parser.error(f"--shapes must look like 32x128x256x8; got {args.shapes!r}.")
    for shape in args.shapes:
        if len(shape) != 4 or min(shape) < 1 or shape[2] % shape[3]:
            parser.error(
                f"each shape must be BxTxDxH with D divisible by H; got {'x'.join(map(str, shape))}."
            )
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not args.modes or set(args.modes) - {"eager", "jit"}:
        parser.error(f"--modes must be a subset of eager,jit; got {args.modes}.")
    return args


def mha_flops(batch, length, num_hiddens, num_heads):
    """Analytic FLOPs of one forward+backward pass of self-attention."""
    head_dim = num_hiddens // num_heads
    projections = 4 * 2 * batch * length * num_hiddens * num_hiddens
    attention = 2 * 2 * batch * num_heads * length * length * head_dim
    return 3 * (projections + attention)


def sync():
    """Waits for queued device work (a no-op on CPU, where TF runs ops in order)."""
    import tensorflow as tf

    tf.test.experimental.sync_devices()


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]


def time_call(fn):
    """Seconds `fn()` takes on `clock`, waiting for the device to finish."""
    start = clock()
    fn()
    sync()
    return clock() - start


def matmul_gflops(size, warmup, repeats):
    """GFLOP/s of a jit-compiled `size x size` float32 matmul (median)."""
    import tensorflow as tf

    a = tf.random.stateless_normal((size, size), seed=(1, 2))
    b = tf.random.stateless_normal((size, size), seed=(3, 4))
    matmul = tf.function(lambda a, b: tf.matmul(a, b), jit_compile=True)
    for _ in range(max(warmup, 1)):
        matmul(a, b).numpy()
    seconds = statistics.median(time_call(lambda: matmul(a, b)) for _ in range(repeats))
    return 2 * size**3 / seconds / 1e9


def build_layers(num_hiddens, num_heads, x):
    """Our layer (fused and unfused) and Keras' layer with the same weights."""
    import keras
    import numpy as np

    from keras_attention.layers import MultiHeadAttention

    head_dim = num_hiddens // num_heads
    ours_fused = MultiHeadAttention(num_hiddens, num_heads, use_bias=False, use_fused_op=True)
    ours_unfused = MultiHeadAttention(num_hiddens, num_heads, use_bias=False, use_fused_op=False)
    theirs = keras.layers.MultiHeadAttention(num_heads=num_heads, key_dim=head_dim, use_bias=False)
    for layer in (ours_fused, ours_unfused, theirs):
        layer(x, x, x)  # build
    ours_unfused.set_weights(ours_fused.get_weights())
    # Ours: W (D, D) on (B, T, D), heads split from the last axis as (H, d).
    # Keras: query/key/value kernels (D, H, d), output kernel (H, d, D).
    w_q, w_k, w_v, w_o = (
        ours_fused.W_q.kernel,
        ours_fused.W_k.kernel,
        ours_fused.W_v.kernel,
        ours_fused.W_o.kernel,
    )
    theirs._query_dense.kernel.assign(np.reshape(w_q.numpy(), (num_hiddens, num_heads, head_dim)))
    theirs._key_dense.kernel.assign(np.reshape(w_k.numpy(), (num_hiddens, num_heads, head_dim)))
    theirs._value_dense.kernel.assign(np.reshape(w_v.numpy(), (num_hiddens, num_heads, head_dim)))
    theirs._output_dense.kernel.assign(np.reshape(w_o.numpy(), (num_heads, head_dim, num_hiddens)))
    reference = keras.ops.convert_to_numpy(theirs(x, x, x))
    for layer in (ours_fused, ours_unfused):
        diff = np.max(np.abs(keras.ops.convert_to_numpy(layer(x, x, x)) - reference))
        if not diff < 1e-4:
            raise RuntimeError(f"{layer.name} differs from keras MultiHeadAttention by {diff:g}.")
    return {"fused": ours_fused, "unfused": ours_unfused, "keras": theirs}


def make_step(layer, jit):
    """A function (x, dy) -> gradients of sum(layer(x, x, x) * dy) w.r.t. x and weights."""
    import tensorflow as tf

    def step(x, dy):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, x, x, training=True)
            loss = tf.reduce_sum(y * dy)
        return tape.gradient(loss, [x] + layer.trainable_variables)

    return tf.function(step, jit_compile=True) if jit else step


def bench_shape(shape, modes, warmup, repeats, seed, peak):
    import tensorflow as tf

    batch, length, num_hiddens, num_heads = shape
    x = tf.random.stateless_normal((batch, length, num_hiddens), seed=(seed, 0))
    dy = tf.random.stateless_normal((batch, length, num_hiddens), seed=(seed, 1))
    layers = build_layers(num_hiddens, num_heads, x)
    flops = mha_flops(*shape)
    label = f"B{batch} T{length} D{num_hiddens} H{num_heads}"
    rows = []
    for mode in modes:
        steps = {name: make_step(layer, jit=(mode == "jit")) for name, layer in layers.items()}
        for name, step in steps.items():
            for _ in range(warmup if mode == "eager" else max(warmup, 1)):  # jit: compile
                time_call(lambda: step(x, dy))
        times = {name: [] for name in steps}
        for _ in range(repeats):  # round-robin: load changes hit all alike
            for name, step in steps.items():
                times[name].append(time_call(lambda: step(x, dy)))
        ms = {name: 1e3 * statistics.median(t) for name, t in times.items()}
        for variant in ("fused", "unfused"):
            gflops = flops / (ms[variant] / 1e3) / 1e9
            rows.append(
                {
                    "shape": label,
                    "mode": mode,
                    "ours": f"use_fused_op={variant == 'fused'}",
                    "ours_ms": round(ms[variant], 2),
                    "keras_ms": round(ms["keras"], 2),
                    "ratio": round(ms[variant] / ms["keras"], 3),
                    "gflops": round(gflops, 1),
                    "pct_of_peak": round(100 * gflops / peak, 1),
                }
            )
        print(f"  {label} {mode}: " + ", ".join(f"{k} {v:.1f} ms" for k, v in ms.items()), flush=True)
    return rows


def write_csv_atomic(frame, path):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", newline="") as f:
            frame.to_csv(f, index=False)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def main(argv=None):
    global clock
    args = parse_args(argv)
    import keras
    import pandas as pd
    import tensorflow as tf

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    clock = CLOCKS[args.clock]

    if keras.backend.backend() != "tensorflow":
        sys.exit(f"this benchmark needs KERAS_BACKEND=tensorflow; got {keras.backend.backend()!r}.")
    keras.utils.set_random_seed(args.seed)
    # One tf.function per layer and mode is traced on purpose; don't warn.
    tf.get_logger().setLevel("ERROR")
    devices = ", ".join(d.device_type for d in tf.config.list_logical_devices()) or "?"
    print(
        f"tensorflow {tf.__version__}, keras {keras.__version__}, devices: {devices}, "
        f"cpus: {os.cpu_count()}, threads: {args.threads or 'default'}, clock: {args.clock}, "
        f"repeats {args.repeats}, warmup {args.warmup}",
        flush=True,
    )
    size = 256 if args.quick else 1024
    peak = matmul_gflops(size, args.warmup, max(args.repeats, 5))
    print(f"matmul {size}x{size} float32 (jit): {peak:.1f} GFLOP/s", flush=True)

    rows = []
    for shape in args.shapes:
        rows += bench_shape(shape, args.modes, args.warmup, args.repeats, args.seed, peak)
    frame = pd.DataFrame(rows)
    frame["peak_gflops"] = round(peak, 1)
    frame["clock"] = args.clock
    frame["threads"] = args.threads or "default"
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(frame.drop(columns=["peak_gflops", "clock", "threads"]).to_string(index=False))
    first = frame[(frame["mode"] == "jit") & (frame["ours"] == "use_fused_op=True")]
    if len(first):
        row = first.iloc[0]
        print(
            f"{row['shape']} jit, ours (fused): {row['gflops']} GFLOP/s = "
            f"{row['pct_of_peak']}% of the {peak:.1f} GFLOP/s matmul peak"
        )
    write_csv_atomic(frame, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
