"""CPU settings that must be made before TensorFlow creates its first tensor.

Standard library only, so the command can call it before anything heavy loads.
"""

import os

__all__ = ["use_pooled_cpu_memory"]


def use_pooled_cpu_memory():
    """Makes TensorFlow keep CPU memory in a pool (its BFC allocator).

    By default TensorFlow allocates each CPU tensor with `malloc`, which
    takes a large tensor (over glibc's 32 MiB mmap threshold) fresh from the
    operating system and gives it back when the tensor is freed, so every
    step pays a page fault per 4 KiB of its large activations: on the
    2-core development machine an `exp` over a `(8, 8, 512, 512)` float32
    tensor took 53 ms that way and 6 ms from the pool, a 256-wide attention
    layer's forward+backward ran up to 2.2x faster, and the large Transformer
    of `benchmarks/throughput.py` trained 1.17x faster. The pool keeps the
    process's peak memory until it exits.

    TensorFlow reads `TF_CPU_ALLOCATOR_USE_BFC` when it allocates its first
    tensor, so call this before any tensor is created; a value already set
    in the environment is kept. The `keras-attention` command and the
    training tutorials call it.
    Other backends ignore it.

    Returns:
        str: the value of `TF_CPU_ALLOCATOR_USE_BFC` now set.
    """
    return os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")
