"""Helpers shared by the benchmark scripts: CSV output, tables, matmul peak.

Imported by the scripts in this folder as `import _common` (Python puts
the script's folder first on `sys.path`). Nothing here imports TensorFlow
or JAX at module level.
"""

import contextlib
import os
import statistics
import time

CPU_ALLOCATORS = ("malloc", "bfc")
# The load average when the script started (other processes share the CPU).
_LOAD_AT_START = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def _cpu_module():
    """`keras_attention/recipes/cpu.py` of this checkout, loaded alone (standard library only:
    importing the package would import Keras and fix the backend)."""
    import importlib.util

    path = os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        "keras_attention",
        "recipes",
        "cpu.py",
    )
    spec = importlib.util.spec_from_file_location("_keras_attention_cpu", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def machine():
    """The machine a benchmark ran on: CPU model, its fast-path flags, cores, load.

    Every CSV gets these columns (`write_csv_atomic`) and every table this
    line (`print_table`): `cpu` (model name), `cpu_flags` (the AVX2 /
    AVX-512 / bfloat16 / AMX flags present, `unknown` where `/proc/cpuinfo`
    cannot be read), `cores` (CPUs this process may use), `load_start` and
    `load_end` (the 1-minute load average when the script started and now;
    the machine may be shared, so compare ratios measured in the same run).
    """
    info = _cpu_module().cpu_info()
    flags = "unknown" if info["flags"] is None else " ".join(info["flags"]) or "none"
    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {
        "cpu": info["model"],
        "cpu_flags": flags,
        "cores": info["cores"],
        "load_start": round(_LOAD_AT_START, 2),
        "load_end": round(load_end, 2),
    }


def machine_line():
    """`machine()` as one line, printed with every table."""
    m = machine()
    return (
        f"machine: {m['cpu']} ({m['cpu_flags']}), {m['cores']} cores, load average "
        f"{m['load_start']:.2f} at start, {m['load_end']:.2f} now"
    )


def with_machine(frame):
    """`frame` with the `machine()` columns added (those it has already are kept)."""
    frame = frame.copy()
    for key, value in machine().items():
        if key not in frame.columns:
            frame[key] = value
    return frame


def add_cpu_allocator_argument(parser):
    """`--cpu-allocator malloc|bfc`: TensorFlow's CPU memory allocator for the run."""
    parser.add_argument(
        "--cpu-allocator",
        choices=CPU_ALLOCATORS,
        default="malloc",
        help=(
            "TensorFlow's CPU allocator, the same for ours and the peers: malloc (TensorFlow's "
            "default; large tensors come fresh from the OS each step) or bfc (a pool, "
            "TF_CPU_ALLOCATOR_USE_BFC=true, as the keras-attention command uses). Defaults to malloc."
        ),
    )


def set_cpu_allocator(name):
    """Sets `TF_CPU_ALLOCATOR_USE_BFC` for `name`; call before the first tensor exists."""
    if name not in CPU_ALLOCATORS:
        raise ValueError(f"`name` must be one of {CPU_ALLOCATORS}; got name={name!r}.")
    os.environ["TF_CPU_ALLOCATOR_USE_BFC"] = "true" if name == "bfc" else "false"


_CPU_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_bf16",
    "avx512_vnni",
    "amx_tile",
    "amx_bf16",
    "neon",
)


def cpu_info():
    """`{"cpu": model name, "cpu_flags": the vector flags it has, "cpus": count}` of this machine.

    Read from /proc/cpuinfo (Linux); `platform.processor()` elsewhere, flags unknown.
    """
    import platform

    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    name = value.strip()
                elif key.strip() in ("flags", "Features"):
                    flags.update(value.split())
    except OSError:
        pass
    return {
        "cpu": name,
        "cpu_flags": " ".join(f for f in _CPU_FLAGS if f in flags),
        "cpus": os.cpu_count(),
    }


def write_csv_atomic(frame, path):
    """Writes a pandas frame as CSV to `path` atomically (`keras_attention._io`)."""
    # Imported here: importing the package imports Keras, and this module
    # must not fix the backend at import time (see the module docstring).
    from keras_attention import _io

    frame = with_machine(frame)
    with _io.atomic_write(path, "w") as f:
        frame.to_csv(f, index=False)
    print(f"wrote {path} ({machine_line()})", flush=True)


def print_table(frame, drop=()):
    """Prints `frame` without its index (and without the columns in `drop`), then the machine."""
    import pandas as pd

    drop = (*drop, *machine())
    with pd.option_context("display.width", 250, "display.max_columns", 40):
        print(frame.drop(columns=[c for c in drop if c in frame.columns]).to_string(index=False))
    print(machine_line(), flush=True)


def split_list(text, allowed, name):
    """`"a,b"` -> `["a", "b"]`, each checked against `allowed`; raises ValueError naming `name`."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in allowed]
    if not items or bad:
        raise ValueError(
            f"`{name}` must be a comma-separated subset of {','.join(allowed)}; got {text!r}."
        )
    return items


@contextlib.contextmanager
def dtype_policy(policy):
    """Builds the layers made inside under the Keras dtype `policy`; float32 again after."""
    import keras

    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy("float32")


def tf_sync():
    """Waits for queued TensorFlow device work (a no-op on CPU)."""
    import tensorflow as tf

    tf.test.experimental.sync_devices()


def tf_matmul_gflops(size, dtype="float32", jit=True, warmup=2, repeats=5, clock=time.perf_counter):
    """GFLOP/s of a `size x size` TensorFlow matmul in `dtype` (median of `repeats`).

    `jit=True` compiles it with XLA; `False` runs the eager kernel (oneDNN on
    CPU, which uses AMX / AVX512-BF16 for bfloat16 where the CPU has them).
    `clock` times it (`time.process_time` for CPU time); use the clock that
    times what the peak is compared with.
    """
    import tensorflow as tf

    a = tf.cast(tf.random.stateless_normal((size, size), seed=(1, 2)), dtype)
    b = tf.cast(tf.random.stateless_normal((size, size), seed=(3, 4)), dtype)
    matmul = tf.function(lambda a, b: tf.matmul(a, b), jit_compile=True) if jit else tf.matmul
    for _ in range(max(warmup, 1)):
        matmul(a, b).numpy()
    times = []
    for _ in range(repeats):
        start = clock()
        matmul(a, b).numpy()
        times.append(clock() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def tf_peak_gflops(size, dtype, warmup=2, repeats=5, clock=time.perf_counter):
    """The faster of the eager and the XLA matmul rate in `dtype`: `(gflops, "eager"|"xla")`."""
    rates = {
        "xla": tf_matmul_gflops(size, dtype, True, warmup, repeats, clock),
        "eager": tf_matmul_gflops(size, dtype, False, warmup, repeats, clock),
    }
    best = max(rates, key=rates.get)
    return rates[best], best
