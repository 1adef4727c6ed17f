"""Relative position biases: additive terms on the attention scores.

Beyond D2L section "Self-Attention and Positional Encoding", which encodes
absolute positions in the inputs: here position enters as a bias `b[h, i, j]`
added to the scaled scores of head `h`, query `i` and key `j`, before the
softmax, and depending only on the relative position `j - p` of the key to
the query (`p = i + start_index`, the query's position in the key sequence):

    A = softmax(Q K^T / sqrt(d) + b)

* `ALiBi` (Press et al., 2022, "Train Short, Test Long"): a fixed linear
  penalty `b = -m_h |p - j|`, one slope `m_h` per head, no weights;
* `RelativePositionBias` (T5, Raffel et al., 2020): a learned scalar per head
  and per bucket of relative positions, exact for near keys and logarithmic
  for far ones.

Both return a bias of shape `(1, H, Q, K)` that the attention layers
(`DotProductAttention`, `MultiHeadAttention`) take as their `bias` call
argument; masked positions stay masked whatever the bias.

Letters used in shape comments: B batch, H heads, Q queries, K keys, N buckets.
"""

import math

import keras
import numpy as np
from keras import ops

from keras_attention import _checks

__all__ = [
    "relative_positions",
    "alibi_slopes",
    "relative_position_bucket",
    "ALiBi",
    "RelativePositionBias",
]


def relative_positions(num_queries, num_keys, offset=0):
    """The relative position `j - p` of key `j` to query `i` at `p = i + offset`.

    Args:
        num_queries: int or scalar tensor. `Q`.
        num_keys: int or scalar tensor. `K`.
        offset: int or scalar tensor. Position of the first query in the key
            sequence (the cache index when decoding with a cache). Defaults to `0`.

    Returns:
        An int32 tensor `(Q, K)`: negative for earlier keys, positive for later ones.
    """
    rows = ops.arange(num_queries, dtype="int32")[:, None] + ops.cast(offset, "int32")
    cols = ops.arange(num_keys, dtype="int32")[None, :]
    return cols - rows


def alibi_slopes(num_heads):
    """ALiBi's per-head slopes `m_h`, a geometric sequence (Press et al., 2022).

    For `H` a power of two, `m_h = 2^(-8 h / H)`, `h = 1..H` (8 heads:
    `1/2, 1/4, ..., 1/256`). Otherwise, as in the paper's code, the slopes of
    the largest power of two `n < H` followed by every other slope of `2n`
    (the odd-numbered ones), `H - n` of them.

    Args:
        num_heads: int. `H`.

    Returns:
        A float32 numpy array `(H,)`.
    """
    num_heads = _checks.check_positive_int("num_heads", num_heads)

    def power_of_2(n):
        return [2.0 ** (-8.0 * h / n) for h in range(1, n + 1)]

    n = 2 ** math.floor(math.log2(num_heads))
    slopes = power_of_2(n)
    if n < num_heads:
        slopes += power_of_2(2 * n)[0::2][: num_heads - n]
    return np.asarray(slopes, "float32")


def relative_position_bucket(
    relative_position, bidirectional=True, num_buckets=32, max_distance=128
):
    """T5's bucket of each relative position (Raffel et al., 2020).

    A transcription of T5's `_relative_position_bucket` in `keras.ops`.
    With `bidirectional=True` half of the `N` buckets are for keys after the
    query (`j - p > 0`) and half for the others; with `bidirectional=False`
    (causal attention) later keys all fall in bucket 0 and the `N` buckets
    cover `p - j >= 0`. Within a half of `n` buckets, distances `r < n / 2`
    have a bucket each, and larger ones share logarithmically spaced
    buckets up to `max_distance`, past which all share the last:

        bucket(r) = r                                          if r < n/2
                  = min(n/2 + floor(log(r / (n/2)) / log(max_distance / (n/2))
                                   * (n - n/2)), n - 1)        otherwise

    The logarithm is computed in float32, as in T5.

    Args:
        relative_position: integer tensor, `j - p` (key minus query).
        bidirectional: bool. Defaults to `True`.
        num_buckets: int `>= 4`. `N`. Defaults to `32` (T5).
        max_distance: int. Distances from here on share the last bucket;
            must exceed `num_buckets / 2`. Defaults to `128` (T5).

    Returns:
        An int32 tensor of the shape of `relative_position`, in `[0, N)`.
    """
    bidirectional, num_buckets, max_distance = _check_bucket_args(
        bidirectional, num_buckets, max_distance
    )
    relative_position = ops.cast(relative_position, "int32")
    buckets = ops.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + ops.cast(relative_position > 0, "int32") * num_buckets
        distance = ops.abs(relative_position)
    else:
        distance = -ops.minimum(relative_position, 0)
    max_exact = num_buckets // 2
    is_small = distance < max_exact
    # log(0) is never used (those distances are small); keep it finite.
    ratio = ops.cast(ops.maximum(distance, 1), "float32") / float(max_exact)
    scale = np.float32((num_buckets - max_exact) / math.log(max_distance / max_exact))
    large = max_exact + ops.cast(ops.log(ratio) * scale, "int32")
    large = ops.minimum(large, num_buckets - 1)
    return buckets + ops.where(is_small, distance, large)


def _check_bucket_args(bidirectional, num_buckets, max_distance):
    bidirectional = _checks.check_bool("bidirectional", bidirectional)
    num_buckets = _checks.check_int("num_buckets", num_buckets, low=4, rule="an integer >= 4")
    max_distance = _checks.check_int(
        "max_distance",
        max_distance,
        low=num_buckets // 2 + 1,
        rule=f"an integer > num_buckets / 2 = {num_buckets // 2}",
    )
    return bidirectional, num_buckets, max_distance


def _lengths(queries, keys):
    """`Q` and `K` from axis 1 of `queries` and `keys` (`keys` defaults to `queries`)."""
    for name, x in (("queries", queries), ("keys", keys)):
        if x is not None and len(x.shape) < 2:
            raise ValueError(
                f"`{name}` must have rank >= 2, (batch, length, ...); got {name}.shape={tuple(x.shape)}."
            )
    keys = queries if keys is None else keys
    return ops.shape(queries)[1], ops.shape(keys)[1]


@keras.saving.register_keras_serializable(package="keras_attention")
class ALiBi(keras.layers.Layer):
    """Attention with Linear Biases (Press et al., 2022): a fixed distance penalty.

    Head `h` adds `b[h, i, j] = -m_h |p - j|` to the scaled score of query
    `i` (at position `p = i + start_index`) and key `j`, with the geometric
    slopes `m_h` of `alibi_slopes`. No position embedding is then needed,
    and the penalty keeps working past the trained length (extrapolation).
    The same bias serves causal attention (the paper's `-m_h (p - j)` for
    the keys `j <= p` it sees; later keys are masked) and bidirectional
    attention (symmetric `|p - j|`). No weights.

    Which attention path applies: an additive bias needs the scores, so the
    attention layers take their reference (explicit) path with it; the
    fused `keras.ops.dot_product_attention` kernels take no bias.

    Args:
        num_heads: int. `H`.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        queries: `(B, Q, ...)`; only its length (axis 1) is used.
        keys: optional `(B, K, ...)`; only its length is used. Defaults to
            `queries` (self-attention). With a cache, pass a tensor of the
            cache length (e.g. the cached keys).
        start_index: int or scalar integer tensor. Position of the first
            query (`cache_update_index`). Defaults to `0`.

    Returns:
        `(1, H, Q, K)` in the layer's compute dtype.

    Example:
    >>> X = keras.Input(shape=(None, 16))
    >>> ALiBi(num_heads=4)(X).shape
    (1, 4, None, None)
    """

    def __init__(self, num_heads, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = _checks.check_positive_int("num_heads", num_heads)
        self.slopes = alibi_slopes(self.num_heads)

    def build(self, queries_shape, keys_shape=None):
        self.built = True

    def call(self, queries, keys=None, start_index=0):
        _checks.check_index("start_index", start_index)
        num_queries, num_keys = _lengths(queries, keys)
        distance = ops.cast(
            ops.abs(relative_positions(num_queries, num_keys, start_index)), "float32"
        )
        slopes = ops.convert_to_tensor(self.slopes)[:, None, None]  # (H, 1, 1)
        bias = -slopes * distance[None]  # (H, Q, K)
        return ops.cast(bias[None], self.compute_dtype)

    def compute_output_shape(self, queries_shape, keys_shape=None):
        keys_shape = queries_shape if keys_shape is None else keys_shape
        return (1, self.num_heads, queries_shape[1], keys_shape[1])

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads}


@keras.saving.register_keras_serializable(package="keras_attention")
class RelativePositionBias(keras.layers.Layer):
    """T5's learned, bucketed relative position bias (Raffel et al., 2020).

    Head `h` adds `b[h, i, j] = E[bucket(j - p), h]` to the score of query
    `i` (at `p = i + start_index`) and key `j`, where `E` is a learned
    `(N, H)` table and `bucket` is `relative_position_bucket` (exact for
    near keys, logarithmic for far ones, shared past `max_distance`).
    `bidirectional=True` for encoders, `False` for causal decoders. T5
    computes it once, in the first block, and every block adds the same
    bias; T5's scores are not scaled by `1 / sqrt(d)`, the package's are
    (the bias is added to the scaled scores).

    Which attention path applies: an additive bias needs the scores, so the
    attention layers take their reference (explicit) path with it.

    Args:
        num_heads: int. `H`.
        num_buckets: int `>= 4`. `N`. Defaults to `32` (T5).
        max_distance: int. Defaults to `128` (T5).
        bidirectional: bool. Defaults to `True`.
        embeddings_initializer: initializer of `E`. Defaults to
            `"glorot_uniform"`.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        queries: `(B, Q, ...)`; only its length is used.
        keys: optional `(B, K, ...)`; only its length is used. Defaults to `queries`.
        start_index: int or scalar integer tensor. Position of the first
            query (`cache_update_index`). Defaults to `0`.
        bidirectional: bool or None. Overrides the layer's `bidirectional`
            for this call (the same table serves both bucketings, e.g. in
            `MultiHeadAttention(position_bias="t5")`, which follows
            `use_causal_mask`). Defaults to `None` (the layer's).

    Returns:
        `(1, H, Q, K)` in the layer's compute dtype.

    Example:
    >>> X = keras.Input(shape=(None, 16))
    >>> RelativePositionBias(num_heads=4)(X).shape
    (1, 4, None, None)
    """

    def __init__(
        self,
        num_heads,
        num_buckets=32,
        max_distance=128,
        bidirectional=True,
        embeddings_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = _checks.check_positive_int("num_heads", num_heads)
        self.bidirectional, self.num_buckets, self.max_distance = _check_bucket_args(
            bidirectional, num_buckets, max_distance
        )
        self.embeddings_initializer = _checks.check_initializer(
            "embeddings_initializer", embeddings_initializer
        )

    def build(self, queries_shape, keys_shape=None):
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.num_buckets, self.num_heads),
            initializer=self.embeddings_initializer,
            trainable=True,
        )
        self.built = True

    def call(self, queries, keys=None, start_index=0, bidirectional=None):
        _checks.check_index("start_index", start_index)
        bidirectional = _checks.check_bool("bidirectional", bidirectional, allow_none=True)
        if bidirectional is None:
            bidirectional = self.bidirectional
        num_queries, num_keys = _lengths(queries, keys)
        buckets = relative_position_bucket(
            relative_positions(num_queries, num_keys, start_index),
            bidirectional,
            self.num_buckets,
            self.max_distance,
        )  # (Q, K)
        bias = ops.take(ops.convert_to_tensor(self.embeddings), buckets, axis=0)  # (Q, K, H)
        return ops.cast(ops.transpose(bias, (2, 0, 1))[None], self.compute_dtype)

    def compute_output_shape(self, queries_shape, keys_shape=None):
        keys_shape = queries_shape if keys_shape is None else keys_shape
        return (1, self.num_heads, queries_shape[1], keys_shape[1])

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "num_buckets": self.num_buckets,
            "max_distance": self.max_distance,
            "bidirectional": self.bidirectional,
            "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
        }
