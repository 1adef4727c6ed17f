"""Decoding loops compiled with XLA, one compiled program per batch bucket.

A decoding loop run op by op pays TensorFlow's per-op dispatch at every step
(hundreds of small ops per generated token); compiled with XLA the whole
`while_loop` is one program. XLA compiles for fixed shapes, so an export
pads its batch to the next power of two (`bucket`, `pad_rows`) and its other
buffers to lengths fixed at export: a server then compiles at most one
program per bucket (1, 2, 4, ...), on the first call that needs it (1-5 s
for the package's small models on a 2-core CPU), and every later call of
that bucket runs the compiled one.

TensorFlow only (this module imports it).
"""

import tensorflow as tf

from keras_attention import _checks

__all__ = ["bucket", "pad_rows", "decode_function", "check_jit_compile"]


def check_jit_compile(jit_compile):
    """`jit_compile` as a bool (the exports' argument), else the `ValueError` of `_checks`."""
    return _checks.check_bool("jit_compile", jit_compile)


def bucket(batch):
    """The smallest power of two >= `batch` (a scalar int32 tensor); 1 for an empty batch."""
    batch = tf.cast(batch, tf.int32)
    return tf.while_loop(lambda size: size < batch, lambda size: [2 * size], [tf.constant(1)])[0]


def pad_rows(x, size, axis=0, filler=0):
    """Pads `x` along `axis` to `size` rows by repeating its rows cyclically.

    Repeating real rows (not filling with zeros) keeps every statistic of the
    batch that a loop depends on (the shortest prompt, when all rows stop).
    An empty `x` is padded with `filler`. The caller slices the first
    `batch` rows of the results.
    """
    x = tf.convert_to_tensor(x)
    batch = tf.shape(x)[axis]
    shape = tf.tensor_scatter_nd_update(tf.shape(x), [[axis]], [1])
    with_filler = tf.concat([x, tf.fill(shape, tf.cast(filler, x.dtype))], axis=axis)
    rows = tf.math.floormod(tf.range(size), tf.maximum(batch, 1))
    rows = tf.where(batch > 0, rows, batch)  # the filler row of an empty batch
    return tf.gather(with_filler, rows, axis=axis)


def decode_function(fn, jit_compile):
    """`fn` as a `tf.function`, compiled with XLA when `jit_compile` is True.

    `reduce_retracing`: the batch dimension is the only one that changes
    between calls, so one trace serves every bucket (XLA still compiles
    once per bucket's shape).
    """
    return tf.function(fn, jit_compile=jit_compile, reduce_retracing=True)
