"""Speed of our `MultiHeadAttention` against Keras' and keras_hub's attention.

Times one training step's worth of work, forward and backward (gradients
with respect to the input and every weight), of self-attention:

* ours, `keras_attention.layers.MultiHeadAttention(use_bias=False)`, with
  `use_fused_op=True` (`keras.ops.dot_product_attention`) and
  `use_fused_op=False` (D2L's explicit einsum, softmax, einsum). Called
  as `mha(x, x, x)`, so it takes its self-attention fast path (one matmul
  with the `W_q | W_k | W_v` kernels side by side). `--variants` can add
  `separate_qkv`: the explicit path with three projection matmuls (called
  with a copy of `x` as the keys), i.e. our layer before the fast path;
* peer `keras`: `keras.layers.MultiHeadAttention(num_heads=H, key_dim=D/H,
  use_bias=False)`;
* peer `keras_hub`: the self-attention sublayer of
  `keras_hub.layers.TransformerEncoder(4 * D, H)` (a
  `keras.layers.MultiHeadAttention` with biases, as keras_hub builds it),
  called as the encoder calls it, `attention(query=x, value=x)`.

All layers get the same kernels (copied; the script checks that the
outputs agree before timing). Each case runs

* eager: a `tf.GradientTape` around the call, no `tf.function`;
* graph: the whole forward+backward step in a `tf.function` without XLA
  (TensorFlow's graph run op by op: what `fit` does on a CPU, where Keras'
  `jit_compile="auto"` leaves XLA off);
* jit: the whole forward+backward step in `tf.function(jit_compile=True)`,

in each of `--dtypes`: `float32`, and `bfloat16`, meaning the
`mixed_bfloat16` policy (float32 variables, bfloat16 compute, as in mixed
precision training) with bfloat16 inputs and output gradients.

All layers of a case are timed round-robin within each repeat, so that a
change in the machine's load hits them alike; the table reports the median
of `--repeats` timings after `--warmup` untimed runs. `ratio` is ours over
the fastest peer (below 1: ours is faster). The machine's matmul rate in
each dtype (a `size x size` `tf.matmul`, the faster of eager and XLA) is
measured in the same run, and each row says what fraction of it our layer
reached, counting the FLOPs of multi-head attention analytically:

    forward  = 4 * 2*B*T*D*D   (W_q, W_k, W_v, W_o)
             + 2 * 2*B*H*T*T*d (Q K^T and weights @ V, d = D / H)
    step     = 3 * forward     (backward ~ twice the forward)

`matmuls_ms` bounds what any layer can reach: the step's matrix products
alone, with the same shapes and in the same mode (the fused `X @ [W_q |
W_k | W_v]` and `O @ W_o` forward, `Q K^T` and `P V`, and the eight
products of their backward), on random tensors, without the softmax, the
head transposes or any other elementwise work; `matmuls_pct_of_peak` is
that bound as a fraction of the peak, `pct_of_matmuls` ours' time against
it (100: our step costs only its matrix products).

Run from the repository root:

    python benchmarks/attention.py                 # full run
    python benchmarks/attention.py --quick         # smoke run, tiny shapes
    python benchmarks/attention.py --repeats 30 --shapes 32x128x256x8 --dtypes float32

`--cpu-allocator bfc` runs everything on TensorFlow's pooled CPU allocator
(`TF_CPU_ALLOCATOR_USE_BFC=true`) instead of its default `malloc`, which
pays page faults for every large tensor of every step; the choice applies
to ours and the peers alike and is written in the `cpu_allocator` column.

The script sets `KERAS_BACKEND=tensorflow` unless it is already set (the
benchmark uses `tf.GradientTape` and `tf.function`, so it needs TensorFlow).
It prints a pandas table and writes it as CSV to `--out` (atomically).
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

DEFAULT_SHAPES = "32x128x256x8,8x512x256x8"
QUICK_SHAPES = "4x32x64x8,2x64x64x8"
VARIANTS = ("fused", "explicit", "separate_qkv")
PEERS = ("keras", "keras_hub")
DTYPES = ("float32", "bfloat16")
# Outputs of the layers must agree to this (max abs difference) before timing.
TOLERANCE = {"float32": 1e-4, "bfloat16": 0.1}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=(
            "Forward+backward time of keras_attention MultiHeadAttention vs "
            "keras.layers.MultiHeadAttention and keras_hub's TransformerEncoder attention."
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
        default="eager,graph,jit",
        help="Comma-separated subset of eager,graph,jit. Defaults to 'eager,graph,jit'.",
    )
    parser.add_argument(
        "--dtypes",
        default="float32,bfloat16",
        help=(
            "Comma-separated subset of float32,bfloat16 (bfloat16 = mixed_bfloat16 "
            "policy, bfloat16 inputs). Defaults to 'float32,bfloat16'."
        ),
    )
    parser.add_argument(
        "--variants",
        default="fused,explicit",
        help=(
            "Our layer's variants, a subset of fused,explicit,separate_qkv. "
            "Defaults to 'fused,explicit'."
        ),
    )
    parser.add_argument(
        "--peers", default="keras,keras_hub", help="Subset of keras,keras_hub. Defaults to both."
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="Timed runs per case (median reported). Defaults to 10 (2 with --quick).",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="Untimed runs per case first. Defaults to 3 (1 with --quick).",
    )
    parser.add_argument("--quick", action="store_true", help="Smoke run: tiny shapes, few repeats.")
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
    _common.add_cpu_allocator_argument(parser)
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
    try:
        args.modes = _common.split_list(args.modes, ("eager", "graph", "jit"), "--modes")
        args.dtypes = _common.split_list(args.dtypes, DTYPES, "--dtypes")
        args.variants = _common.split_list(args.variants, VARIANTS, "--variants")
        args.peers = _common.split_list(args.peers, PEERS, "--peers")
    except ValueError as error:
        parser.error(str(error))
    return args


def mha_flops(batch, length, num_hiddens, num_heads):
    """Analytic FLOPs of one forward+backward pass of self-attention."""
    head_dim = num_hiddens // num_heads
    projections = 4 * 2 * batch * length * num_hiddens * num_hiddens
    attention = 2 * 2 * batch * num_heads * length * length * head_dim
    return 3 * (projections + attention)


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]


def time_call(fn):
    """Seconds `fn()` takes on `clock`, waiting for the device to finish."""
    start = clock()
    fn()
    _common.tf_sync()
    return clock() - start


def policy_of(dtype):
    return "mixed_bfloat16" if dtype == "bfloat16" else "float32"


def build_layers(num_hiddens, num_heads, x, dtype, variants, peers):
    """Our layer's variants and the peers, all with the same kernels.

    Returns a dict name -> function `(x) -> y` running self-attention on `x`
    and the layer whose `trainable_variables` it uses.
    """
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_attention.layers import MultiHeadAttention

    policy = policy_of(dtype)
    head_dim = num_hiddens // num_heads
    layers = {}
    for variant in variants:
        layer = MultiHeadAttention(
            num_hiddens, num_heads, use_bias=False, use_fused_op=(variant == "fused"), dtype=policy
        )
        if variant == "separate_qkv":
            # A copy of x as the keys: not the same tensor, so three projections.
            fn = lambda x, layer=layer: layer(x, tf.identity(x), x, training=True)  # noqa: E731
        else:
            fn = lambda x, layer=layer: layer(x, x, x, training=True)  # noqa: E731
        layers[variant] = (fn, layer)
    if "keras" in peers:
        theirs = keras.layers.MultiHeadAttention(
            num_heads=num_heads, key_dim=head_dim, use_bias=False, dtype=policy
        )
        layers["keras"] = (lambda x: theirs(x, x, x, training=True), theirs)
    if "keras_hub" in peers:
        import keras_hub

        encoder = keras_hub.layers.TransformerEncoder(4 * num_hiddens, num_heads, dtype=policy)
        encoder.build((None, None, num_hiddens))
        hub = encoder._self_attention_layer  # keras.layers.MultiHeadAttention with biases
        layers["keras_hub"] = (lambda x: hub(query=x, value=x, training=True), hub)
    for fn, _ in layers.values():
        fn(x)  # build

    # Ours: W (D, D) on (B, T, D), heads split from the last axis as (H, d).
    # Keras: query/key/value kernels (D, H, d), output kernel (H, d, D).
    first = layers[variants[0]][1]
    kernels = [
        keras.ops.convert_to_numpy(d.kernel) for d in (first.W_q, first.W_k, first.W_v, first.W_o)
    ]
    for variant in variants[1:]:
        layers[variant][1].set_weights(first.get_weights())
    for peer in peers:
        mha = layers[peer][1]
        denses = (mha._query_dense, mha._key_dense, mha._value_dense, mha._output_dense)
        shapes = [(num_hiddens, num_heads, head_dim)] * 3 + [(num_heads, head_dim, num_hiddens)]
        for dense, kernel, shape in zip(denses, kernels, shapes):
            dense.kernel.assign(np.reshape(kernel, shape))
            if getattr(dense, "bias", None) is not None:
                dense.bias.assign(np.zeros(dense.bias.shape, "float32"))
    reference = None
    for name, (fn, _) in layers.items():
        out = keras.ops.convert_to_numpy(keras.ops.cast(fn(x), "float32"))
        if reference is None:
            reference = out
            continue
        diff = float(np.max(np.abs(out - reference)))
        if not diff < TOLERANCE[dtype]:
            raise RuntimeError(f"{name} differs from {variants[0]} by {diff:g} ({dtype}).")
    return layers


def make_step(fn, layer, mode):
    """A function (x, dy) -> gradients of sum(fn(x) * dy) w.r.t. x and the weights."""
    import tensorflow as tf

    def step(x, dy):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
            loss = tf.reduce_sum(tf.cast(y, "float32") * tf.cast(dy, "float32"))
        return tape.gradient(loss, [x] + layer.trainable_variables)

    return _in_mode(step, mode)


def _in_mode(step, mode):
    import tensorflow as tf

    if mode == "eager":
        return step
    return tf.function(step, jit_compile=(mode == "jit"))


def make_matmul_floor(shape, dtype, seed, mode):
    """`(fn, args)`: the step's matrix products alone (see the module docstring)."""
    import tensorflow as tf

    batch, length, num_hiddens, num_heads = shape
    head_dim = num_hiddens // num_heads
    rows = batch * length

    def normal(*dims, i):
        return tf.cast(tf.random.stateless_normal(dims, seed=(seed, 10 + i)), dtype)

    X, dY, O, dQKV = (
        normal(rows, n, i=i) for i, n in enumerate([num_hiddens] * 3 + [3 * num_hiddens])
    )
    W_qkv, W_o = normal(num_hiddens, 3 * num_hiddens, i=4), normal(num_hiddens, num_hiddens, i=5)
    Q, K, V, dOh = (normal(batch, num_heads, length, head_dim, i=6 + i) for i in range(4))
    P = normal(batch, num_heads, length, length, i=10)

    def matmuls(X, dY, O, dQKV, Q, K, V, dOh, P):
        forward = [X @ W_qkv, tf.matmul(Q, K, transpose_b=True), P @ V, O @ W_o]
        backward = [
            tf.matmul(dY, W_o, transpose_b=True),  # dO
            tf.matmul(O, dY, transpose_a=True),  # dW_o
            tf.matmul(dOh, V, transpose_b=True),  # dP
            tf.matmul(P, dOh, transpose_a=True),  # dV
            P @ K,  # dQ = dS K
            tf.matmul(P, Q, transpose_a=True),  # dK = dS^T Q
            tf.matmul(dQKV, W_qkv, transpose_b=True),  # dX
            tf.matmul(X, dQKV, transpose_a=True),  # dW_qkv
        ]
        return forward + backward

    return _in_mode(matmuls, mode), (X, dY, O, dQKV, Q, K, V, dOh, P)


def bench_shape(shape, dtype, args, peak):
    import tensorflow as tf

    batch, length, num_hiddens, num_heads = shape
    x = tf.cast(
        tf.random.stateless_normal((batch, length, num_hiddens), seed=(args.seed, 0)), dtype
    )
    dy = tf.cast(
        tf.random.stateless_normal((batch, length, num_hiddens), seed=(args.seed, 1)), dtype
    )
    layers = build_layers(num_hiddens, num_heads, x, dtype, args.variants, args.peers)
    flops = mha_flops(*shape)
    label = f"B{batch} T{length} D{num_hiddens} H{num_heads}"
    rows = []
    for mode in args.modes:
        steps = {
            name: (make_step(fn, layer, mode), (x, dy)) for name, (fn, layer) in layers.items()
        }
        steps["matmuls"] = make_matmul_floor(shape, dtype, args.seed, mode)
        for name, (step, inputs) in steps.items():
            for _ in range(args.warmup if mode == "eager" else max(args.warmup, 1)):  # traces
                time_call(lambda: step(*inputs))
        times = {name: [] for name in steps}
        for _ in range(args.repeats):  # round-robin: load changes hit all alike
            for name, (step, inputs) in steps.items():
                times[name].append(time_call(lambda: step(*inputs)))
        ms = {name: 1e3 * statistics.median(t) for name, t in times.items()}
        fastest = min(args.peers, key=lambda p: ms[p])
        for variant in args.variants:
            gflops = flops / (ms[variant] / 1e3) / 1e9
            rows.append(
                {
                    "shape": label,
                    "dtype": dtype,
                    "mode": mode,
                    "ours": variant,
                    "ours_ms": round(ms[variant], 2),
                    **{f"{peer}_ms": round(ms[peer], 2) for peer in args.peers},
                    "fastest_peer": fastest,
                    "ratio": round(ms[variant] / ms[fastest], 3),
                    "gflops": round(gflops, 3),  # tiny --quick shapes run at ~0.1 GFLOP/s
                    "peak_gflops": round(peak, 1),
                    "pct_of_peak": round(100 * gflops / peak, 1),
                    "matmuls_ms": round(ms["matmuls"], 2),
                    "matmuls_pct_of_peak": round(
                        100 * flops / (ms["matmuls"] / 1e3) / 1e9 / peak, 1
                    ),
                    "pct_of_matmuls": round(100 * ms["matmuls"] / ms[variant], 1),
                }
            )
        print(
            f"  {label} {dtype} {mode}: " + ", ".join(f"{k} {v:.1f} ms" for k, v in ms.items()),
            flush=True,
        )
    return rows


def main(argv=None):
    global clock
    args = parse_args(argv)
    _common.set_cpu_allocator(args.cpu_allocator)  # before TensorFlow's first tensor
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
        f"repeats {args.repeats}, warmup {args.warmup}, cpu allocator {args.cpu_allocator}",
        flush=True,
    )
    size = 256 if args.quick else 1024
    rows = []
    peaks = {}
    for dtype in args.dtypes:
        peak, source = _common.tf_peak_gflops(size, dtype, args.warmup, max(args.repeats, 5), clock)
        peaks[dtype] = peak
        print(f"matmul {size}x{size} {dtype}: {peak:.1f} GFLOP/s ({source})", flush=True)
        for shape in args.shapes:
            rows += bench_shape(shape, dtype, args, peak)
    frame = pd.DataFrame(rows)
    frame["cpu_allocator"] = args.cpu_allocator
    frame["clock"] = args.clock
    frame["threads"] = args.threads or "default"
    _common.print_table(frame, drop=("peak_gflops", "clock", "threads"))
    worst = frame.groupby("ours")["ratio"].max()
    print(
        "worst ratio to the fastest peer per variant: "
        + ", ".join(f"{k} {v}" for k, v in worst.items())
    )
    _common.write_csv_atomic(frame, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
