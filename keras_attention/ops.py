"""Mask logic for attention, in `keras.ops` only.

D2L section "Attention Scoring Functions". This module owns every mask the
package builds: D2L's `valid_lens` become boolean "may attend" tensors, a
causal mask is a lower triangle, and masks combine with logical AND. A masked
softmax then turns scores into weights in float32, whatever the compute dtype,
and gives a row with no valid key all-zero weights instead of NaN.

Letters used in shape comments: B batch, Q queries, K keys (key-value pairs),
T sequence length, w window.
"""

import keras
import numpy as np
from keras import ops

from keras_attention import _checks

__all__ = [
    "sequence_mask",
    "valid_lens_to_mask",
    "causal_mask",
    "window_mask",
    "merge_masks",
    "masked_softmax",
    "mask_value",
]


def mask_value(dtype):
    """A large negative logit that is finite in `dtype`.

    Masked logits get this value before the softmax: finite (no `-inf - -inf`
    NaN), far below any real logit, and representable in float16 (D2L's
    `-1e6` overflows to `-inf` there).

    Args:
        dtype: str or dtype. The dtype of the logits.

    Returns:
        A Python float.
    """
    dtype = keras.backend.standardize_dtype(dtype)
    if dtype not in ("float16", "bfloat16", "float32", "float64"):
        raise ValueError(f"`dtype` must be a floating dtype; got dtype={dtype}.")
    if dtype == "bfloat16":
        finfo_max = 3.38953e38
    else:
        finfo_max = float(np.finfo(dtype).max)
    return -0.7 * finfo_max


_INT32_MAX = np.iinfo(np.int32).max


def _check_valid_lens(valid_lens, num_keys):
    """`valid_lens` as int32 in `[0, num_keys]`, if it is an integer tensor of rank 1 or 2.

    Lengths are numbers of valid keys: past `num_keys` they mean every key
    (D2L's semantics), and they are clipped to `num_keys` before the cast to
    int32, so that no length wraps (int64 `2**32 + 1` is not 1). Negative
    lengths raise where the values are known (eager); in traced code they
    are clipped to 0 (no valid key).
    """
    values = _checks.concrete_value(valid_lens)
    if not ops.is_tensor(valid_lens) and values is not None:
        # Python or numpy: clip before the conversion (JAX has no int64).
        if values.dtype.kind in "iu" and values.size and values.max() > _INT32_MAX:
            valid_lens = np.minimum(values, _INT32_MAX).astype(np.int32)
    valid_lens = ops.convert_to_tensor(valid_lens)
    dtype = keras.backend.standardize_dtype(valid_lens.dtype)
    if "int" not in dtype:
        raise ValueError(
            f"`valid_lens` must hold integers (the number of valid keys); got dtype={dtype}."
        )
    rank = len(valid_lens.shape)
    if rank not in (1, 2):
        raise ValueError(
            "`valid_lens` must have shape (batch,) or (batch, num_queries); "
            f"got shape={tuple(valid_lens.shape)}."
        )
    if values is not None and values.size and values.min() < 0:
        keys = f"num_keys={num_keys}" if _checks.is_int(num_keys) else "num_keys"
        raise ValueError(
            f"`valid_lens` must be in [0, {keys}] (a larger length means all keys "
            f"are valid); got min(valid_lens)={values.min()}."
        )
    if dtype not in ("int64", "uint32", "uint64"):
        valid_lens, dtype = ops.cast(valid_lens, "int32"), "int32"  # exact
    # (B,) or (B, Q), in [0, K]; clipped in the wide dtype, then cast
    # (bounds of that dtype: torch's `maximum` of int64 and an int is int32).
    valid_lens = ops.clip(valid_lens, ops.zeros((), dtype), ops.cast(num_keys, dtype))
    return ops.cast(valid_lens, "int32")


def _check_size(name, value):
    """`value`, a sequence length: a Python/numpy value must be an integer >= 0 (a tensor,
    known only when the graph runs, passes)."""
    if ops.is_tensor(value) or isinstance(value, keras.KerasTensor):
        return value
    if _checks.is_int(value) or isinstance(value, (bool, float, str, np.bool_, np.floating)):
        return _checks.check_non_negative_int(name, value)
    return value  # a symbolic size (JAX tracing a functional model)


def _check_broadcastable(name, shape, target_name, target_shape):
    """Raises unless `shape` broadcasts to `target_shape` where both sizes are known."""
    shape, target_shape = tuple(shape), tuple(target_shape)
    if len(shape) > len(target_shape) or any(
        _checks.sizes_differ(a, b) and _checks.static_size(a) != 1
        for a, b in zip(shape[::-1], target_shape[::-1])
    ):
        raise ValueError(
            f"`{name}` must be broadcastable to the shape of `{target_name}`; got "
            f"{name}.shape={shape}, {target_name}.shape={target_shape}."
        )


def sequence_mask(X, valid_len, value=0.0):
    """Replaces the entries of `X` at or past each row's valid length.

    D2L's `sequence_mask`: along axis 1, positions `t >= valid_len[b]` of
    row `b` are set to `value`.

    Args:
        X: tensor of shape `(B, T)` or `(B, T, ...)`.
        valid_len: integer tensor of shape `(B,)`.
        value: float. The fill value. Defaults to `0.0`.

    Returns:
        A tensor of the shape and dtype of `X`.

    Example:
    >>> sequence_mask(np.array([[1, 2, 3], [4, 5, 6]]), np.array([1, 2]))
    [[1, 0, 0], [4, 5, 0]]
    """
    X = ops.convert_to_tensor(X)
    if len(X.shape) < 2:
        raise ValueError(f"`X` must have shape (batch, length, ...); got X.shape={tuple(X.shape)}.")
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"`value` must be a number; got value={value!r}.")
    maxlen = ops.shape(X)[1]
    valid_len = _check_valid_lens(valid_len, maxlen)
    if len(valid_len.shape) != 1:
        raise ValueError(
            f"`valid_len` must have shape (batch,); got shape={tuple(valid_len.shape)}."
        )
    _checks.check_same_batch(("X", X.shape), ("valid_len", valid_len.shape))
    # (B, T)
    mask = ops.arange(maxlen, dtype="int32")[None, :] < valid_len[:, None]
    mask = ops.reshape(mask, ops.shape(mask) + (1,) * (len(X.shape) - 2))
    return ops.where(mask, X, ops.cast(value, X.dtype))


def valid_lens_to_mask(valid_lens, num_queries, num_keys):
    """Turns D2L's `valid_lens` into a boolean "may attend" mask.

    Args:
        valid_lens: integer tensor of shape `(B,)` (one length for every
            query of a row) or `(B, Q)` (one length per query).
        num_queries: int or scalar tensor. `Q`.
        num_keys: int or scalar tensor. `K`.

    Returns:
        A boolean tensor of shape `(B, Q, K)`: True where key `k < valid_len`.
    """
    num_queries = _check_size("num_queries", num_queries)
    num_keys = _check_size("num_keys", num_keys)
    valid_lens = _check_valid_lens(valid_lens, num_keys)
    _checks.check_valid_lens_columns(valid_lens.shape, num_queries)
    if len(valid_lens.shape) == 1:
        # (B, 1)
        valid_lens = valid_lens[:, None]
    # (B, Q or 1, 1) against (1, 1, K)
    mask = ops.arange(num_keys, dtype="int32")[None, None, :] < (valid_lens[:, :, None])
    return ops.broadcast_to(mask, (ops.shape(valid_lens)[0], num_queries, num_keys))


def causal_mask(num_queries, num_keys, offset=0):
    """A lower-triangular "may attend" mask: query `i` sees keys `j <= i`.

    Args:
        num_queries: int or scalar tensor. `Q`.
        num_keys: int or scalar tensor. `K`.
        offset: int or scalar tensor. The position of the first query in the
            key sequence, for incremental decoding with a cache: query `i`
            then sees keys `j <= i + offset`. Defaults to `0`.

    Returns:
        A boolean tensor of shape `(Q, K)`.
    """
    num_queries = _check_size("num_queries", num_queries)
    num_keys = _check_size("num_keys", num_keys)
    # (Q, 1) against (1, K)
    rows = ops.arange(num_queries, dtype="int32")[:, None] + ops.cast(offset, "int32")
    cols = ops.arange(num_keys, dtype="int32")[None, :]
    return cols <= rows


def window_mask(num_queries, num_keys, window, offset=0, causal=True):
    """A sliding-window (local attention) "may attend" mask.

    Local attention (Child et al., 2019; Beltagy et al., 2020, Longformer;
    Mistral, Jiang et al., 2023): query `i`, at position `p = i + offset` of
    the key sequence, sees only the `window` nearest keys:

    * `causal=True`: `p - window < j <= p`, the query's own position and the
      `window - 1` before it (Mistral's convention: `window=1` is each
      token alone; the upper bound is the causal mask's, so this mask needs
      no separate causal mask, and AND with one changes nothing);
    * `causal=False`: `|p - j| < window`, `window - 1` keys on each side
      (`2 window - 1` in all).

    With a key/value cache, `offset` is the cache position of the first
    query (`cache_update_index`), as in `causal_mask`. Combine with other
    masks (padding, `valid_lens`) by AND (`merge_masks`). A window at least
    as long as the sequence is the causal (or no) mask.

    Args:
        num_queries: int or scalar tensor. `Q`.
        num_keys: int or scalar tensor. `K`.
        window: int or scalar tensor `>= 1`. `w`.
        offset: int or scalar tensor. The position of the first query in the
            key sequence. Defaults to `0`.
        causal: bool. One-sided (past) window, or two-sided. Defaults to `True`.

    Returns:
        A boolean tensor of shape `(Q, K)`.
    """
    if not ops.is_tensor(window) and not isinstance(window, keras.KerasTensor):
        window = _checks.check_positive_int("window", window)
    causal = _checks.check_bool("causal", causal)
    num_queries = _check_size("num_queries", num_queries)
    num_keys = _check_size("num_keys", num_keys)
    # (Q, 1) against (1, K): the distance p - j
    rows = ops.arange(num_queries, dtype="int32")[:, None] + ops.cast(offset, "int32")
    cols = ops.arange(num_keys, dtype="int32")[None, :]
    distance = rows - cols
    window = ops.cast(window, "int32")
    if causal:
        return ops.logical_and(distance >= 0, distance < window)
    return ops.abs(distance) < window


def merge_masks(*masks):
    """Combines "may attend" masks with logical AND, broadcasting.

    `None` entries are skipped; returns `None` when every entry is `None`.
    """
    merged = None
    for mask in masks:
        if mask is None:
            continue
        mask = ops.cast(mask, "bool")
        merged = mask if merged is None else ops.logical_and(merged, mask)
    return merged


def masked_softmax(X, valid_lens=None, mask=None):
    """Softmax over the last axis that gives masked keys weight 0.

    D2L's `masked_softmax`, with two changes: the softmax runs in float32
    (the result is cast back to `X.dtype`), and a row with no valid key gets
    all-zero weights instead of a uniform row or NaN.

    Args:
        X: tensor of shape `(B, Q, K)` (or `(B, ..., Q, K)` with `mask`).
            Attention scores.
        valid_lens: `None`, or integer tensor of shape `(B,)` or `(B, Q)`.
            Keys at or past the valid length are masked.
        mask: `None`, or boolean tensor broadcastable to `X`: True where a
            query may attend to a key. Combined with `valid_lens` by AND.

    Returns:
        Attention weights: a tensor of the shape and dtype of `X`.
    """
    X = ops.convert_to_tensor(X)
    _checks.check_float_tensor("X", X, what="float scores")
    if mask is not None:
        mask = ops.convert_to_tensor(mask)
        _checks.check_mask_tensor("mask", mask)
        _check_broadcastable("mask", mask.shape, "X", X.shape)
    if valid_lens is not None:
        if len(X.shape) != 3:
            raise ValueError(
                "`X` must have shape (batch, num_queries, num_keys) when "
                f"`valid_lens` is given; got shape={tuple(X.shape)}."
            )
        _checks.check_same_batch(("X", X.shape), ("valid_lens", _checks.shape_of(valid_lens)))
        shape = ops.shape(X)
        mask = merge_masks(mask, valid_lens_to_mask(valid_lens, shape[1], shape[2]))
    logits = ops.cast(X, "float32")
    if mask is None:
        return ops.cast(ops.softmax(logits, axis=-1), X.dtype)
    logits = ops.where(mask, logits, mask_value("float32"))
    weights = ops.softmax(logits, axis=-1)
    # Masked keys get exactly 0; a row with no valid key is all zeros.
    weights = ops.where(mask, weights, 0.0)
    return ops.cast(weights, X.dtype)
