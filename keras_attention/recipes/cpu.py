"""CPU settings that must be made before TensorFlow creates its first tensor, and what the
CPU has: its model, its fast-path flags, bfloat16 units (for `--precision bf16`).

Standard library only, so the command can call it before anything heavy loads.
"""

import os

__all__ = [
    "use_pooled_cpu_memory",
    "cpu_info",
    "has_bf16_units",
    "precision_policy",
    "bf16_warning",
    "SPEED_FLAGS",
    "BF16_FLAGS",
    "PRECISIONS",
]


def use_pooled_cpu_memory():
    """Makes TensorFlow keep CPU memory in a pool (its BFC allocator).

    By default TensorFlow allocates each CPU tensor with `malloc`, which
    takes a large tensor (over glibc's 32 MiB mmap threshold) fresh from the
    operating system and gives it back when the tensor is freed, so every
    step pays a page fault per 4 KiB of its large activations (what that
    costs is measured in `benchmarks/NOTES.md`, "The pooled CPU allocator").
    The pool keeps the process's peak memory until it exits.

    TensorFlow reads `TF_CPU_ALLOCATOR_USE_BFC` when it allocates its first
    tensor, so call this before any tensor is created; a value already set
    in the environment is kept. The `keras-attention` command and the
    training tutorials call it.
    Other backends ignore it.

    Returns:
        str: the value of `TF_CPU_ALLOCATOR_USE_BFC` now set.
    """
    return os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")


# The instruction-set flags that decide which fast paths a CPU has, in the
# order they are reported: the AVX2/AVX-512 vector units, and the bfloat16
# ones (AVX512_BF16 dot products, AMX tiles) that `mixed_bfloat16` needs.
SPEED_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
CPUINFO = "/proc/cpuinfo"


def cpu_info(cpuinfo=None):
    """The CPU's model name and its `SPEED_FLAGS`, read from Linux's `/proc/cpuinfo`.

    Args:
        cpuinfo: str or path. The file to read. Defaults to `None`: `CPUINFO`
            (`/proc/cpuinfo`).

    Returns:
        dict: `model` (str), `flags` (tuple of the `SPEED_FLAGS` present, or
        `None` where the file cannot be read: another operating system) and
        `cores` (int, the CPUs this process may use).
    """
    import platform

    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        with open(cpuinfo or CPUINFO, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return {
            "model": platform.processor() or platform.machine() or "unknown",
            "flags": None,
            "cores": cores,
        }
    model, flags = "unknown", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model == "unknown":
            model = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
    return {"model": model, "flags": tuple(f for f in SPEED_FLAGS if f in flags), "cores": cores}


def has_bf16_units(cpuinfo=None):
    """Whether the CPU has bfloat16 matrix units (AVX512_BF16 or AMX-BF16).

    Returns:
        bool, or `None` where it cannot be told (no `/proc/cpuinfo`: not Linux).
    """
    flags = cpu_info(cpuinfo)["flags"]
    return None if flags is None else any(f in flags for f in BF16_FLAGS)


# `--precision` of the recipes and the command -> the Keras dtype policy.
PRECISIONS = {"float32": "float32", "bf16": "mixed_bfloat16", "mixed_bfloat16": "mixed_bfloat16"}
SLOW_BF16 = (
    "--precision bf16: this CPU ({model}) has no bfloat16 units (no avx512_bf16 or amx_bf16 "
    "in /proc/cpuinfo), so mixed_bfloat16 runs emulated and is usually slower than float32; "
    "use --precision float32 here"
)


def precision_policy(precision):
    """The Keras dtype policy of a recipe's `precision`: `"float32"` or `"bf16"`.

    `"bf16"` (also spelled `"mixed_bfloat16"`) is Keras' `mixed_bfloat16`:
    variables in float32, matmuls and activations in bfloat16, softmax and
    the loss in float32.

    Raises:
        ValueError: for another value, naming the choices.
    """
    if precision not in PRECISIONS:
        raise ValueError(
            f"`precision` must be one of float32, bf16 (or mixed_bfloat16); got precision={precision!r}."
        )
    return PRECISIONS[precision]


def bf16_warning(cpuinfo=None):
    """The one-line warning for `--precision bf16` on a CPU without bfloat16 units, or `None`.

    `None` where the CPU has them, and where it cannot be told (not Linux:
    bfloat16 is then allowed without a word).
    """
    if has_bf16_units(cpuinfo) is False:
        return SLOW_BF16.format(model=cpu_info(cpuinfo)["model"])
    return None
