"""Tests for `keras_attention/ops.py`: masks and the masked softmax.

Every check compares numbers with a numpy reference written here, following
D2L's `sequence_mask` and `masked_softmax` (section "Attention Scoring
Functions"), with the package's two documented changes: the softmax runs in
float32, and a row with no valid key gets all-zero weights.
"""

import re

import keras
import numpy as np
import pytest
from keras import ops

from keras_attention import ops as ka_ops

ATOL = 1e-5


# ---------------------------------------------------------------------------
# numpy references
# ---------------------------------------------------------------------------


def np_sequence_mask(X, valid_len, value=0.0):
    """D2L's `sequence_mask`: along axis 1, positions `t >= valid_len[b]` -> value."""
    X = np.array(X, copy=True)
    for b, n in enumerate(valid_len):
        X[b, int(n) :] = value
    return X


def np_valid_lens_to_mask(valid_lens, num_queries, num_keys):
    valid_lens = np.asarray(valid_lens)
    if valid_lens.ndim == 1:
        valid_lens = np.repeat(valid_lens[:, None], num_queries, axis=1)
    return np.arange(num_keys)[None, None, :] < valid_lens[:, :, None]


def np_masked_softmax(X, valid_lens=None, mask=None):
    """Softmax over the last axis; masked keys 0; a row with no key all 0."""
    X = np.asarray(X, dtype=np.float64)
    allowed = np.ones(X.shape, bool)
    if valid_lens is not None:
        allowed &= np_valid_lens_to_mask(valid_lens, X.shape[1], X.shape[2])
    if mask is not None:
        allowed &= np.broadcast_to(np.asarray(mask, bool), X.shape)
    out = np.zeros_like(X)
    for idx in np.ndindex(*X.shape[:-1]):
        keep = allowed[idx]
        if keep.any():
            e = np.exp(X[idx][keep] - X[idx][keep].max())
            out[idx][keep] = e / e.sum()
    return out


def d2l_masked_softmax(X, valid_lens):
    """A numpy port of D2L's TensorFlow `masked_softmax` (fill value -1e6)."""
    X = np.asarray(X, dtype=np.float64)
    shape = X.shape
    valid_lens = np.asarray(valid_lens)
    if valid_lens.ndim == 1:
        valid_lens = np.repeat(valid_lens, shape[1])
    else:
        valid_lens = valid_lens.reshape(-1)
    flat = np_sequence_mask(X.reshape(-1, shape[-1]), valid_lens, value=-1e6)
    flat = np.exp(flat - flat.max(-1, keepdims=True))
    return (flat / flat.sum(-1, keepdims=True)).reshape(shape)


def to_np(x):
    return ops.convert_to_numpy(x)


# ---------------------------------------------------------------------------
# sequence_mask
# ---------------------------------------------------------------------------


def test_sequence_mask_docstring_example():
    got = to_np(ka_ops.sequence_mask(np.array([[1, 2, 3], [4, 5, 6]]), np.array([1, 2])))
    np.testing.assert_array_equal(got, [[1, 0, 0], [4, 5, 0]])


@pytest.mark.parametrize("shape", [(3, 5), (3, 5, 2), (3, 5, 2, 2)])
@pytest.mark.parametrize("value", [0.0, -1.0, 7.5])
def test_sequence_mask_matches_numpy(shape, value):
    rng = np.random.default_rng(1)
    X = rng.normal(size=shape).astype("float32")
    valid_len = np.array([0, 2, 5], "int32")
    got = to_np(ka_ops.sequence_mask(X, valid_len, value=value))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np_sequence_mask(X, valid_len, value))


def test_sequence_mask_valid_len_longer_than_sequence_keeps_everything():
    X = np.arange(6, dtype="float32").reshape(2, 3)
    got = to_np(ka_ops.sequence_mask(X, np.array([10, 3], "int64")))
    np.testing.assert_array_equal(got, X)


def test_sequence_mask_rejects_rank_2_valid_len():
    with pytest.raises(ValueError, match=r"`valid_len` must have shape \(batch,\)"):
        ka_ops.sequence_mask(np.zeros((2, 3)), np.array([[1, 2], [1, 2]]))


def test_sequence_mask_rejects_float_valid_len():
    with pytest.raises(ValueError, match="`valid_lens` must hold integers.*float32"):
        ka_ops.sequence_mask(np.zeros((2, 3)), np.array([1.0, 2.0], "float32"))


# ---------------------------------------------------------------------------
# valid_lens_to_mask, causal_mask, merge_masks
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("valid_lens", [np.array([2, 0, 4]), np.array([[1, 3], [0, 2], [4, 4]])])
def test_valid_lens_to_mask_matches_numpy(valid_lens):
    got = to_np(ka_ops.valid_lens_to_mask(valid_lens.astype("int32"), 2, 4))
    assert got.dtype == bool and got.shape == (3, 2, 4)
    np.testing.assert_array_equal(got, np_valid_lens_to_mask(valid_lens, 2, 4))


@pytest.mark.parametrize(
    "bad, message",
    [
        (
            np.ones((2, 2, 2), "int32"),
            r"`valid_lens` must have shape \(batch,\) or \(batch, num_queries\); got shape=\(2, 2, 2\)",
        ),
        (
            np.ones((), "int32"),
            r"`valid_lens` must have shape \(batch,\) or \(batch, num_queries\); got shape=\(\)",
        ),
        (np.array([1.0, 2.0], "float32"), "`valid_lens` must hold integers.*got dtype=float32"),
        (np.array([True, False]), "`valid_lens` must hold integers.*got dtype=bool"),
    ],
)
def test_valid_lens_to_mask_rejects_bad_valid_lens(bad, message):
    with pytest.raises(ValueError, match=message):
        ka_ops.valid_lens_to_mask(bad, 2, 4)


@pytest.mark.parametrize(
    "num_queries, num_keys, offset", [(4, 4, 0), (2, 5, 3), (1, 6, 5), (3, 5, 0)]
)
def test_causal_mask_matches_numpy(num_queries, num_keys, offset):
    expected = np.arange(num_keys)[None, :] <= (np.arange(num_queries)[:, None] + offset)
    got = to_np(ka_ops.causal_mask(num_queries, num_keys, offset=offset))
    assert got.dtype == bool
    np.testing.assert_array_equal(got, expected)


def test_causal_mask_square_is_lower_triangle():
    np.testing.assert_array_equal(to_np(ka_ops.causal_mask(5, 5)), np.tril(np.ones((5, 5), bool)))


def test_causal_mask_accepts_tensor_offset():
    got = to_np(ka_ops.causal_mask(1, 4, offset=ops.convert_to_tensor(2)))
    np.testing.assert_array_equal(got, [[True, True, True, False]])


def np_window_mask(num_queries, num_keys, window, offset=0, causal=True):
    """Loops: query i (position p = i + offset) sees key j when it lies in p's window."""
    out = np.zeros((num_queries, num_keys), bool)
    for i in range(num_queries):
        p = i + offset
        for j in range(num_keys):
            out[i, j] = (p - window < j <= p) if causal else abs(p - j) < window
    return out


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize(
    "num_queries, num_keys, window, offset",
    [(6, 6, 1, 0), (6, 6, 3, 0), (2, 7, 2, 5), (1, 8, 3, 7), (5, 5, 9, 0), (3, 6, 2, 1)],
)
def test_window_mask_matches_numpy(num_queries, num_keys, window, offset, causal):
    got = to_np(ka_ops.window_mask(num_queries, num_keys, window, offset=offset, causal=causal))
    assert got.dtype == bool and got.shape == (num_queries, num_keys)
    np.testing.assert_array_equal(
        got, np_window_mask(num_queries, num_keys, window, offset, causal)
    )


def test_window_mask_causal_is_banded_causal_and_wide_window_is_causal():
    band = to_np(ka_ops.window_mask(6, 6, 3))
    np.testing.assert_array_equal(
        band, np.tril(np.ones((6, 6), bool)) & ~np.tril(np.ones((6, 6), bool), -3)
    )
    # Each query sees min(window, i + 1) keys; AND with causal changes nothing.
    np.testing.assert_array_equal(band.sum(-1), [1, 2, 3, 3, 3, 3])
    np.testing.assert_array_equal(to_np(ka_ops.merge_masks(band, ka_ops.causal_mask(6, 6))), band)
    np.testing.assert_array_equal(
        to_np(ka_ops.window_mask(6, 6, 6)), to_np(ka_ops.causal_mask(6, 6))
    )
    assert to_np(ka_ops.window_mask(4, 4, 4, causal=False)).all()


def test_window_mask_accepts_tensor_window_and_offset():
    got = to_np(ka_ops.window_mask(1, 5, ops.convert_to_tensor(2), offset=ops.convert_to_tensor(3)))
    np.testing.assert_array_equal(got, [[False, False, True, True, False]])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"window": 0}, "`window` must be a positive integer; got window=0"),
        ({"window": 2.0}, "`window` must be a positive integer; got window=2.0"),
        ({"window": 2, "causal": "yes"}, "`causal` must be True or False; got causal='yes'"),
    ],
)
def test_window_mask_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ka_ops.window_mask(3, 3, **kwargs)


def test_merge_masks_is_broadcast_logical_and():
    rng = np.random.default_rng(2)
    a = rng.random((2, 3, 4)) > 0.3
    b = rng.random((2, 1, 4)) > 0.3
    c = np.tril(np.ones((3, 4), bool))
    got = to_np(ka_ops.merge_masks(a, None, b.astype("int32"), c))
    np.testing.assert_array_equal(got, a & b & c)
    assert ka_ops.merge_masks() is None
    assert ka_ops.merge_masks(None, None) is None
    np.testing.assert_array_equal(to_np(ka_ops.merge_masks(None, a)), a)


# ---------------------------------------------------------------------------
# mask_value
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_mask_value_is_large_negative_and_finite_in_its_dtype(dtype):
    value = ka_ops.mask_value(dtype)
    assert isinstance(value, float) and value < -1e4
    wide = "float64" if dtype == "float64" else "float32"
    if keras.backend.standardize_dtype(ops.convert_to_tensor(1.0, wide).dtype) != wide:
        pytest.skip(f"this backend has no {wide} tensors (JAX without jax_enable_x64)")
    # Round-trip through `dtype` (then back to a numpy-friendly width).
    as_dtype = ops.cast(ops.cast(ops.convert_to_tensor(value, wide), dtype), wide)
    assert np.isfinite(to_np(as_dtype))


def test_mask_value_float16_is_finite_in_float16():
    value = ka_ops.mask_value("float16")
    assert np.isfinite(np.float16(value))
    assert np.float16(value) < -1e4
    # D2L's -1e6 is not: that is why the value depends on the dtype.
    with np.errstate(over="ignore"):
        assert np.isinf(np.float16(-1e6))


def test_mask_value_rejects_integer_dtype():
    with pytest.raises(ValueError, match="`dtype` must be a floating dtype; got dtype=int32"):
        ka_ops.mask_value("int32")


# ---------------------------------------------------------------------------
# masked_softmax
# ---------------------------------------------------------------------------


def test_masked_softmax_d2l_example_valid_lens_2_3():
    """D2L: masked_softmax(uniform((2, 2, 4)), [2, 3]) zeroes columns past 2 and 3."""
    X = np.random.default_rng(0).uniform(size=(2, 2, 4)).astype("float32")
    got = to_np(ka_ops.masked_softmax(X, np.array([2, 3], "int32")))
    assert got.shape == (2, 2, 4) and got.dtype == np.float32
    np.testing.assert_array_equal(got[0, :, 2:], 0.0)
    np.testing.assert_array_equal(got[1, :, 3:], 0.0)
    assert np.all(got[0, :, :2] > 0) and np.all(got[1, :, :3] > 0)
    np.testing.assert_allclose(got.sum(-1), 1.0, atol=ATOL)
    np.testing.assert_allclose(got, np_masked_softmax(X, [2, 3]), atol=ATOL)
    # Same numbers as D2L's own masked_softmax when every row has a key.
    np.testing.assert_allclose(got, d2l_masked_softmax(X, [2, 3]), atol=ATOL)


def test_masked_softmax_d2l_example_per_query_valid_lens():
    """D2L: masked_softmax(uniform((2, 2, 4)), [[1, 3], [2, 4]])."""
    X = np.random.default_rng(1).uniform(size=(2, 2, 4)).astype("float32")
    valid_lens = np.array([[1, 3], [2, 4]], "int32")
    got = to_np(ka_ops.masked_softmax(X, valid_lens))
    np.testing.assert_array_equal(got[0, 0], [1.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(got[0, 1, 3:], 0.0)
    np.testing.assert_array_equal(got[1, 0, 2:], 0.0)
    assert np.all(got[1, 1] > 0)
    np.testing.assert_allclose(got, np_masked_softmax(X, valid_lens), atol=ATOL)
    np.testing.assert_allclose(got, d2l_masked_softmax(X, valid_lens), atol=ATOL)


@pytest.mark.parametrize(
    "valid_lens",
    [
        None,
        np.array([3, 1, 6], "int32"),
        np.array([[1, 2, 6, 4], [6, 5, 3, 1], [2, 2, 2, 2]], "int64"),
    ],
)
def test_masked_softmax_matches_numpy(valid_lens):
    X = (np.random.default_rng(2).normal(size=(3, 4, 6)) * 3).astype("float32")
    got = to_np(ka_ops.masked_softmax(X, valid_lens))
    np.testing.assert_allclose(got, np_masked_softmax(X, valid_lens), atol=ATOL)


@pytest.mark.parametrize("mask_shape", [(2, 3, 5), (2, 1, 5), (3, 5), (1, 1, 5)])
def test_masked_softmax_with_boolean_mask_matches_numpy(mask_shape):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(2, 3, 5)).astype("float32")
    mask = rng.random(mask_shape) > 0.4
    got = to_np(ka_ops.masked_softmax(X, mask=mask))
    np.testing.assert_allclose(got, np_masked_softmax(X, mask=mask), atol=ATOL)
    full = np.broadcast_to(mask, X.shape)
    np.testing.assert_array_equal(got[~full], 0.0)


def test_masked_softmax_valid_lens_and_mask_combine_with_and():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(2, 3, 5)).astype("float32")
    valid_lens = np.array([4, 2], "int32")
    mask = np.tril(np.ones((3, 5), bool), k=1)
    got = to_np(ka_ops.masked_softmax(X, valid_lens, mask=mask))
    np.testing.assert_allclose(got, np_masked_softmax(X, valid_lens, mask), atol=ATOL)
    allowed = np_valid_lens_to_mask(valid_lens, 3, 5) & mask
    np.testing.assert_array_equal(got[~allowed], 0.0)


def test_masked_softmax_4d_scores_with_mask():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(2, 3, 4, 5)).astype("float32")  # (B, H, Q, K)
    mask = rng.random((2, 1, 4, 5)) > 0.5
    got = to_np(ka_ops.masked_softmax(X, mask=mask))
    np.testing.assert_allclose(got, np_masked_softmax(X, mask=mask), atol=ATOL)


def test_masked_softmax_fully_masked_rows_are_exactly_zero():
    X = np.random.default_rng(6).normal(size=(3, 2, 4)).astype("float32")
    got = to_np(ka_ops.masked_softmax(X, np.array([0, 2, 0], "int32")))
    assert not np.any(np.isnan(got))
    np.testing.assert_array_equal(got[0], 0.0)
    np.testing.assert_array_equal(got[2], 0.0)
    np.testing.assert_allclose(got[1].sum(-1), 1.0, atol=ATOL)
    # Per-query lengths: only the row with length 0 is empty.
    got = to_np(ka_ops.masked_softmax(X, np.array([[0, 4], [1, 0], [3, 3]], "int32")))
    np.testing.assert_array_equal(got[0, 0], 0.0)
    np.testing.assert_array_equal(got[1, 1], 0.0)
    np.testing.assert_array_equal(got[1, 0], [1.0, 0.0, 0.0, 0.0])
    # An all-False boolean mask.
    got = to_np(ka_ops.masked_softmax(X, mask=np.zeros((3, 2, 4), bool)))
    np.testing.assert_array_equal(got, 0.0)


def test_masked_softmax_masked_keys_get_exactly_zero_even_for_huge_logits():
    X = np.array([[[1e30, -1e30, 0.0, 5.0]]], "float32")
    mask = np.array([[[False, True, True, True]]])
    got = to_np(ka_ops.masked_softmax(X, mask=mask))
    assert got[0, 0, 0] == 0.0
    np.testing.assert_allclose(got, np_masked_softmax(X, mask=mask), atol=ATOL)


def test_masked_softmax_is_shift_invariant_on_valid_keys():
    X = np.random.default_rng(7).normal(size=(2, 2, 5)).astype("float32")
    valid_lens = np.array([3, 5], "int32")
    a = to_np(ka_ops.masked_softmax(X, valid_lens))
    b = to_np(ka_ops.masked_softmax(X + 100.0, valid_lens))
    np.testing.assert_allclose(a, b, atol=ATOL)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_masked_softmax_low_precision_finite_and_normalized(dtype):
    """Large logits in float16/bfloat16: float32 softmax, no NaN or inf."""
    X = np.random.default_rng(8).normal(size=(2, 3, 6)).astype("float32") * 3e4
    X_low = ops.cast(X, dtype)
    valid_lens = np.array([[0, 3, 6], [1, 0, 2]], "int32")
    got = ops.convert_to_numpy(ops.cast(ka_ops.masked_softmax(X_low, valid_lens), "float32"))
    assert ka_ops.masked_softmax(X_low, valid_lens).dtype == X_low.dtype
    assert np.all(np.isfinite(got))
    np.testing.assert_array_equal(got[0, 0], 0.0)
    np.testing.assert_array_equal(got[1, 1], 0.0)
    has_key = np_valid_lens_to_mask(valid_lens, 3, 6).any(-1)
    np.testing.assert_allclose(got.sum(-1)[has_key], 1.0, atol=1e-2)
    X_ref = ops.convert_to_numpy(ops.cast(X_low, "float32"))
    np.testing.assert_allclose(got, np_masked_softmax(X_ref, valid_lens), atol=1e-2)


def test_masked_softmax_valid_lens_needs_3d_scores():
    with pytest.raises(
        ValueError,
        match=r"`X` must have shape \(batch, num_queries, num_keys\) when `valid_lens` is given",
    ):
        ka_ops.masked_softmax(np.zeros((2, 2, 3, 4), "float32"), np.array([1, 2], "int32"))


@pytest.mark.parametrize(
    "bad, message",
    [
        (
            np.ones((2, 3, 1), "int32"),
            r"`valid_lens` must have shape \(batch,\) or \(batch, num_queries\); got shape=\(2, 3, 1\)",
        ),
        (np.array([1.0, 2.0], "float32"), "`valid_lens` must hold integers.*got dtype=float32"),
    ],
)
def test_masked_softmax_rejects_bad_valid_lens(bad, message):
    with pytest.raises(ValueError, match=message):
        ka_ops.masked_softmax(np.zeros((2, 3, 4), "float32"), bad)


# ---------------------------------------------------------------------------
# valid_lens values: negative lengths raise, long ones mean every key, none wraps
# ---------------------------------------------------------------------------


NEGATIVE = "`valid_lens` must be in [0, num_keys=4] (a larger length means all keys are valid); got min(valid_lens)=-1."


@pytest.mark.parametrize("convert", [np.asarray, ops.convert_to_tensor], ids=["numpy", "tensor"])
@pytest.mark.parametrize(
    "call",
    [
        lambda vl: ka_ops.valid_lens_to_mask(vl, 2, 4),
        lambda vl: ka_ops.masked_softmax(np.zeros((2, 2, 4), "float32"), vl),
        lambda vl: ka_ops.sequence_mask(np.zeros((2, 4), "float32"), vl),
    ],
    ids=["valid_lens_to_mask", "masked_softmax", "sequence_mask"],
)
def test_negative_valid_lens_raise(call, convert):
    with pytest.raises(ValueError, match=re.escape(NEGATIVE)):
        call(convert(np.array([2, -1], "int32")))


@pytest.mark.parametrize("dtype", ["int64", "uint32", "uint8", "int8"])
def test_long_valid_lens_mean_every_key_and_never_wrap(dtype):
    big = {"int64": 2**32 + 1, "uint32": 2**32 - 1, "uint8": 255, "int8": 127}[dtype]
    valid_lens = np.array([big, 1], dtype)  # int64 2**32 + 1 is 1 in int32
    got = to_np(ka_ops.valid_lens_to_mask(valid_lens, 2, 300))
    np.testing.assert_array_equal(got, np_valid_lens_to_mask(np.array([min(big, 300), 1]), 2, 300))
    X = np.arange(6, dtype="float32").reshape(2, 3)
    np.testing.assert_array_equal(
        to_np(ka_ops.sequence_mask(X, valid_lens)), np_sequence_mask(X, [3, 1])
    )


@pytest.mark.tensorflow_only(reason="tf.function")
def test_valid_lens_in_a_graph_are_clipped_not_wrapped():
    import tensorflow as tf

    to_mask = tf.function(lambda vl: ka_ops.valid_lens_to_mask(vl, 1, 3))
    got = to_np(to_mask(tf.constant([2**32 + 1, -(2**32) + 2, 2], tf.int64)))
    np.testing.assert_array_equal(got[:, 0], [[True] * 3, [False] * 3, [True, True, False]])


def test_sequence_mask_batches_must_agree():
    message = "`X`, `valid_len` must have the same batch size (axis 0); got X.shape=(2, 3), valid_len.shape=(1,)."
    with pytest.raises(ValueError, match=re.escape(message)):
        ka_ops.sequence_mask(np.zeros((2, 3), "float32"), np.array([1], "int32"))


def test_masked_softmax_of_integer_scores_is_a_type_error():
    # (It would return integer weights: all zeros.)
    with pytest.raises(TypeError, match=re.escape("`X` must be float scores; got X.dtype=int32.")):
        ka_ops.masked_softmax(np.ones((2, 3, 4), "int32"))


def test_masked_softmax_refuses_a_float_mask():
    scores = np.zeros((1, 2, 2), "float32")
    with pytest.raises(TypeError, match=r"`mask` must be a boolean .*got mask.dtype=float32"):
        ka_ops.masked_softmax(scores, mask=np.array([[[0.0, -1e9]]], "float32"))
    weights = ka_ops.masked_softmax(scores, mask=np.array([[[1, 0]]], "int32"))
    np.testing.assert_allclose(ops.convert_to_numpy(weights), [[[1.0, 0.0], [1.0, 0.0]]])


def test_bad_sizes_shapes_and_values_are_named_not_backend_errors():
    """Each was a TensorFlow InvalidArgumentError (Range, BroadcastTo, SelectV2), an
    IndexError or an UnimplementedError (a string cast) before."""
    X = np.zeros((2, 3, 4), "float32")
    cases = [
        (
            lambda: ka_ops.causal_mask(-1, 3),
            "`num_queries` must be a non-negative integer; got num_queries=-1.",
        ),
        (
            lambda: ka_ops.window_mask(3, 2.5, 2),
            "`num_keys` must be a non-negative integer; got num_keys=2.5.",
        ),
        (
            lambda: ka_ops.valid_lens_to_mask(np.array([1, 2]), -1, 4),
            "`num_queries` must be a non-negative integer; got num_queries=-1.",
        ),
        (
            lambda: ka_ops.valid_lens_to_mask(np.ones((2, 2), "int32"), 3, 4),
            "`valid_lens` of shape (batch, num_queries) must have num_queries=3 columns; got valid_lens.shape=(2, 2).",
        ),
        (
            lambda: ka_ops.masked_softmax(X, np.array([1, 2, 3])),
            "`X`, `valid_lens` must have the same batch size (axis 0); got X.shape=(2, 3, 4), valid_lens.shape=(3,).",
        ),
        (
            lambda: ka_ops.masked_softmax(X, mask=np.ones((2, 3, 5), bool)),
            "`mask` must be broadcastable to the shape of `X`; got mask.shape=(2, 3, 5), X.shape=(2, 3, 4).",
        ),
        (
            lambda: ka_ops.sequence_mask(np.zeros(3), np.array([1])),
            "`X` must have shape (batch, length, ...); got X.shape=(3,).",
        ),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=re.escape(message)):
            call()
    with pytest.raises(TypeError, match=re.escape("`value` must be a number; got value='a'.")):
        ka_ops.sequence_mask(X, np.array([1, 2]), value="a")
    # Broadcastable masks, sizes as numpy integers and empty sizes still work.
    assert tuple(ka_ops.masked_softmax(X, mask=np.ones((1, 4), bool)).shape) == (2, 3, 4)
    assert tuple(ka_ops.causal_mask(np.int64(0), 3).shape) == (0, 3)
    assert tuple(ka_ops.valid_lens_to_mask(np.array([1, 2]), 0, 4).shape) == (2, 0, 4)
