"""Model FLOPs utilisation (MFU) of a GPT training step in bfloat16 on JAX.

A stack of `keras_attention.layers.GPTBlock`s (`keras_attention.models.gpt`:
token and learned position embeddings, `num_blks` pre-norm blocks, final
norm, a float32 `lm_head`) under the `mixed_bfloat16` policy, trained with
`fit`'s compiled JAX train step (`jit_compile=True`, AdamW, sparse
cross-entropy on random tokens) by `train_on_batch`. The script sets
`KERAS_BACKEND=jax` itself.

The batches are packed (no padding), so the model is built with
`pad_id=None` and each block's attention is causal only: the layer calls
`keras.ops.dot_product_attention(..., is_causal=True)`, which on a GPU
runs cuDNN's flash attention in bfloat16. `--padding-mask` builds the
model with `pad_id=0` instead, so that a padding mask joins the causal
one and attention takes the explicit-mask path (for comparison).

Model FLOPs per step are counted analytically (matmuls only, the causal
mask not discounted, as in PaLM's MFU):

    forward per token = 2 * (N * (4 D^2 + 2 D F) + D V)   (projections, FFN, lm_head)
                      + N * 2 * 2 * T * D                 (Q K^T and weights @ V)
    step              = 3 * forward * B * T               (backward ~ 2x forward)

MFU = (model FLOPs per step / median step time) / peak. The peak is, in
order: `--peak-tflops`; the dense bfloat16 peak of a known GPU (H100 SXM
989 TFLOP/s, H100 PCIe 756, H200 989, A100 312, L4 121, read from
`jax.devices()[0].device_kind`); otherwise (a CPU) the machine's measured
bfloat16 matmul rate. The measured rate (a jit-compiled square bfloat16
matmul) is reported on every device, and `pct_of_matmul` relates the step
to it.

    python benchmarks/gpu_mfu.py                     # GPU-sized model (on a CPU: slow)
    python benchmarks/gpu_mfu.py --quick             # smoke run, tiny model (CPU)
    python benchmarks/gpu_mfu.py --num-hiddens 2048 --num-blks 16 --batch-size 8 --peak-tflops 989

Writes `outputs/benchmarks/gpu_mfu.csv` (`gpu_mfu_quick.csv` with `--quick`)
atomically.
"""

import argparse
import os
import statistics
import sys
import time

os.environ["KERAS_BACKEND"] = "jax"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

# Dense bfloat16 peaks (TFLOP/s, no sparsity) by a piece of `device_kind`; most specific first.
KNOWN_PEAKS = (
    ("H100 PCIe", 756.0),
    ("H100", 989.4),
    ("H200", 989.4),
    ("GH200", 989.4),
    ("A100", 312.0),
    ("L4", 121.0),
)
DEFAULTS = dict(
    vocab=32768, num_hiddens=1024, num_heads=16, num_blks=8, seq_len=1024, batch_size=16
)
QUICK = dict(vocab=1024, num_hiddens=128, num_heads=4, num_blks=2, seq_len=64, batch_size=8)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name in DEFAULTS:
        parser.add_argument(
            "--" + name.replace("_", "-"),
            type=int,
            default=None,
            help=f"Defaults to {DEFAULTS[name]} ({QUICK[name]} with --quick).",
        )
    parser.add_argument(
        "--ffn-num-hiddens", type=int, default=None, help="Defaults to 4 * num_hiddens."
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="Timed steps. Defaults to 20 (3 with --quick)."
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="Untimed steps (the first compiles). Defaults to 3 (1 with --quick).",
    )
    parser.add_argument(
        "--peak-tflops", type=float, default=None, help="Peak to compute MFU against (TFLOP/s)."
    )
    parser.add_argument(
        "--padding-mask",
        action="store_true",
        help="Build with pad_id=0 (padding mask + causal mask) instead of pad_id=None (causal only).",
    )
    parser.add_argument("--quick", action="store_true", help="Smoke run: tiny model, few steps.")
    parser.add_argument("--seed", type=int, default=0, help="Random seed. Defaults to 0.")
    parser.add_argument(
        "--out", default=None, help="CSV destination. Defaults to outputs/benchmarks/gpu_mfu.csv."
    )
    args = parser.parse_args(argv)
    base = QUICK if args.quick else DEFAULTS
    for name, value in base.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.ffn_num_hiddens = args.ffn_num_hiddens or 4 * args.num_hiddens
    args.steps = args.steps or (3 if args.quick else 20)
    args.warmup = args.warmup or (1 if args.quick else 3)
    if (
        min(
            args.vocab,
            args.num_hiddens,
            args.num_heads,
            args.num_blks,
            args.seq_len,
            args.batch_size,
            args.ffn_num_hiddens,
            args.steps,
            args.warmup,
        )
        < 1
    ):
        parser.error("sizes, --steps and --warmup must be >= 1.")
    if args.num_hiddens % args.num_heads:
        parser.error(
            f"--num-hiddens must be divisible by --num-heads; got {args.num_hiddens}, {args.num_heads}."
        )
    if args.peak_tflops is not None and not args.peak_tflops > 0:
        parser.error("--peak-tflops must be > 0.")
    if args.out is None:
        args.out = os.path.join(
            "outputs", "benchmarks", "gpu_mfu_quick.csv" if args.quick else "gpu_mfu.csv"
        )
    return args


def step_flops(vocab, num_hiddens, ffn_num_hiddens, num_blks, seq_len, batch_size):
    """Analytic model FLOPs of one training step (see the module docstring)."""
    D, F, N, T = num_hiddens, ffn_num_hiddens, num_blks, seq_len
    per_token = 2 * (N * (4 * D * D + 2 * D * F) + D * vocab) + N * 2 * 2 * T * D
    return 3 * per_token * batch_size * T


def jax_matmul_tflops(size, dtype, repeats=5):
    """TFLOP/s of a jit-compiled `size x size` matmul in `dtype` on the default JAX device."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.PRNGKey(0), (size, size), dtype)
    b = jax.random.normal(jax.random.PRNGKey(1), (size, size), dtype)
    matmul = jax.jit(jnp.matmul)
    matmul(a, b).block_until_ready()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).block_until_ready()
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e12


def known_peak(device_kind):
    for piece, peak in KNOWN_PEAKS:
        if piece.lower() in device_kind.lower():
            return peak
    return None


def main(argv=None):
    args = parse_args(argv)
    import jax
    import keras
    import numpy as np
    import pandas as pd

    from keras_attention import models

    device = jax.devices()[0]
    on_gpu = device.platform == "gpu"
    print(
        f"jax {jax.__version__}, keras {keras.__version__}, backend {keras.backend.backend()}, "
        f"device: {device.platform} {device.device_kind}",
        flush=True,
    )
    size = 8192 if on_gpu else (512 if args.quick else 2048)
    matmul_bf16 = jax_matmul_tflops(size, "bfloat16")
    print(f"matmul {size}x{size} bfloat16 (jit): {matmul_bf16:.3f} TFLOP/s", flush=True)
    if args.peak_tflops is not None:
        peak, peak_source = args.peak_tflops, "--peak-tflops"
    elif known_peak(device.device_kind) is not None:
        peak, peak_source = known_peak(device.device_kind), f"spec ({device.device_kind})"
    else:
        peak, peak_source = matmul_bf16, "measured bf16 matmul"

    with _common.dtype_policy("mixed_bfloat16"):
        keras.utils.set_random_seed(args.seed)
        model = models.gpt(
            args.vocab,
            args.num_hiddens,
            args.ffn_num_hiddens,
            args.num_heads,
            args.num_blks,
            0.0,
            max_len=args.seq_len,
            pad_id=0 if args.padding_mask else None,
        )
    model.compile(
        optimizer=keras.optimizers.AdamW(1e-4),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
    )
    rng = np.random.default_rng(args.seed)
    tokens = rng.integers(1, args.vocab, size=(args.batch_size, args.seq_len + 1)).astype("int32")
    x, y = jax.device_put(tokens[:, :-1]), jax.device_put(tokens[:, 1:])
    for _ in range(args.warmup):
        model.train_on_batch(x, y)
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        loss = model.train_on_batch(x, y)  # returns host numbers: waits for the step
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    flops = step_flops(
        args.vocab,
        args.num_hiddens,
        args.ffn_num_hiddens,
        args.num_blks,
        args.seq_len,
        args.batch_size,
    )
    achieved = flops / seconds / 1e12
    frame = pd.DataFrame(
        [
            {
                "device": f"{device.platform} {device.device_kind}",
                "policy": "mixed_bfloat16",
                "attention_mask": "causal + padding" if args.padding_mask else "causal (is_causal)",
                "parameters": model.count_params(),
                "vocab": args.vocab,
                "num_hiddens": args.num_hiddens,
                "ffn_num_hiddens": args.ffn_num_hiddens,
                "num_heads": args.num_heads,
                "num_blks": args.num_blks,
                "seq_len": args.seq_len,
                "batch": args.batch_size,
                "step_ms": round(1e3 * seconds, 2),
                "tokens_per_s": round(args.batch_size * args.seq_len / seconds, 1),
                "model_tflop_per_step": round(flops / 1e12, 4),
                "achieved_tflops": round(achieved, 3),
                "peak_tflops": round(peak, 3),
                "peak_source": peak_source,
                "mfu_pct": round(100 * achieved / peak, 1),
                "matmul_bf16_tflops": round(matmul_bf16, 3),
                "pct_of_matmul": round(100 * achieved / matmul_bf16, 1),
                "final_loss": round(float(np.asarray(loss).reshape(-1)[0]), 4),
            }
        ]
    )
    _common.print_table(frame.T.reset_index().rename(columns={"index": "field", 0: "value"}))
    _common.write_csv_atomic(frame, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
