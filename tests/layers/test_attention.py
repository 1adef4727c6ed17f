"""Tests for `keras_attention/layers/attention.py`.

`DotProductAttention`, `AdditiveAttention` and `MultiHeadAttention` are
checked against numpy references written here (D2L section "Attention
Scoring Functions" and "Multi-Head Attention", heads split as D2L's
`transpose_qkv`), against `keras.layers.MultiHeadAttention` with copied
weights, and for the promises of DESIGN.md: padding invariance, no causal
leak, incremental decoding with a cache, rotary positions, mixed precision
and the error messages.
"""

import re

import keras
import numpy as np
import pytest
from keras import ops

from keras_attention.layers import AdditiveAttention, DotProductAttention, MultiHeadAttention
from keras_attention.layers.attention import _attend

from helpers import gradient, mask_from, run_layer_test

ATOL = 1e-5
B, Q, K, D, H = 2, 3, 5, 8, 2  # batch, queries, keys, num_hiddens, heads


def rand(*shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).normal(size=shape) * scale).astype("float32")


def to_np(x):
    return ops.convert_to_numpy(ops.cast(x, "float32"))


# ---------------------------------------------------------------------------
# numpy references
# ---------------------------------------------------------------------------


def np_allowed(batch, num_queries, num_keys, valid_lens=None, mask=None):
    """Boolean "may attend" `(B, Q, K)` from valid_lens (B,) / (B, Q) and a mask."""
    allowed = np.ones((batch, num_queries, num_keys), bool)
    if valid_lens is not None:
        valid_lens = np.asarray(valid_lens)
        if valid_lens.ndim == 1:
            valid_lens = np.repeat(valid_lens[:, None], num_queries, axis=1)
        allowed &= np.arange(num_keys)[None, None, :] < valid_lens[:, :, None]
    if mask is not None:
        allowed &= np.broadcast_to(np.asarray(mask, bool), allowed.shape)
    return allowed


def np_masked_softmax(scores, allowed):
    """Softmax over the last axis; disallowed keys 0; rows without keys all 0."""
    scores = np.asarray(scores, np.float64)
    allowed = np.broadcast_to(allowed, scores.shape)
    out = np.zeros_like(scores)
    for idx in np.ndindex(*scores.shape[:-1]):
        keep = allowed[idx]
        if keep.any():
            e = np.exp(scores[idx][keep] - scores[idx][keep].max())
            out[idx][keep] = e / e.sum()
    return out


def np_dot_product_attention(q, k, v, valid_lens=None, mask=None):
    """D2L: softmax(q k^T / sqrt(d)) v. Returns (output, weights)."""
    q, k, v = (np.asarray(t, np.float64) for t in (q, k, v))
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    weights = np_masked_softmax(
        scores, np_allowed(q.shape[0], q.shape[1], k.shape[1], valid_lens, mask)
    )
    return weights @ v, weights


def np_additive_attention(q, k, v, W_q, W_k, w_v, valid_lens=None, mask=None):
    """D2L: w_v^T tanh(W_q q + W_k k), masked softmax, weighted values."""
    q, k, v = (np.asarray(t, np.float64) for t in (q, k, v))
    features = np.tanh((q @ W_q)[:, :, None, :] + (k @ W_k)[:, None, :, :])
    scores = (features @ w_v)[..., 0]  # (B, Q, K)
    weights = np_masked_softmax(
        scores, np_allowed(q.shape[0], q.shape[1], k.shape[1], valid_lens, mask)
    )
    return weights @ v, weights


def np_rotary(x, start=0, max_wavelength=10000.0):
    """RoPE, "rotate half": pairs (x[i], x[i + d/2]) rotated by pos * theta_i.

    x: (B, T, H, d); positions start, start + 1, ...
    """
    x = np.asarray(x, np.float64)
    dim = x.shape[-1]
    inv_freq = 1.0 / max_wavelength ** (np.arange(0, dim, 2) / dim)
    angles = (np.arange(x.shape[1]) + start)[:, None] * inv_freq[None, :]
    angles = np.concatenate([angles, angles], -1)[None, :, None, :]  # (1, T, 1, d)
    x1, x2 = np.split(x, 2, axis=-1)
    return x * np.cos(angles) + np.concatenate([-x2, x1], -1) * np.sin(angles)


def dense_params(layer, names):
    """Copies {name: (kernel, bias or None)} of a layer's Dense sub-layers."""
    params = {}
    for name in names:
        dense = getattr(layer, name)
        bias = ops.convert_to_numpy(dense.bias).astype(np.float64) if dense.use_bias else None
        params[name] = (ops.convert_to_numpy(dense.kernel).astype(np.float64), bias)
    return params


def np_dense(x, kernel_bias):
    kernel, bias = kernel_bias
    y = np.asarray(x, np.float64) @ kernel
    return y if bias is None else y + bias


def np_mha_d2l(queries, keys, values, params, num_heads, valid_lens=None, mask=None, rotary=False):
    """D2L's MultiHeadAttention: transpose_qkv to (B * H, T, d), repeat
    valid_lens over heads, attend, transpose_output, W_o.

    Returns (output (B, Q, D), weights (B, H, Q, K)).
    """
    batch = queries.shape[0]

    def split(X):  # (B, T, D) -> (B, T, H, d)
        return X.reshape(X.shape[0], X.shape[1], num_heads, -1)

    def transpose_qkv(X):  # (B, T, H, d) -> (B * H, T, d)
        X = X.transpose(0, 2, 1, 3)
        return X.reshape(-1, X.shape[2], X.shape[3])

    q = split(np_dense(queries, params["W_q"]))
    k = split(np_dense(keys, params["W_k"]))
    v = split(np_dense(values, params["W_v"]))
    if rotary:
        q, k = np_rotary(q), np_rotary(k)
    q, k, v = transpose_qkv(q), transpose_qkv(k), transpose_qkv(v)
    allowed = np_allowed(batch, queries.shape[1], keys.shape[1], valid_lens, mask)
    # On axis 0, copy each example's mask num_heads times (D2L's tf.repeat).
    allowed = np.repeat(allowed, num_heads, axis=0)
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    weights = np_masked_softmax(scores, allowed)  # (B * H, Q, K)
    out = weights @ v  # (B * H, Q, d)
    # transpose_output: (B * H, Q, d) -> (B, Q, H * d)
    out = out.reshape(batch, num_heads, out.shape[1], out.shape[2]).transpose(0, 2, 1, 3)
    out = out.reshape(batch, out.shape[1], -1)
    weights = weights.reshape(batch, num_heads, weights.shape[1], weights.shape[2])
    return np_dense(out, params["W_o"]), weights


def randomize_weights(layer, seed=0, scale=0.5):
    """Random kernels and biases (biases start at zero, which hides bugs)."""
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        w.assign((rng.normal(size=tuple(w.shape)) * scale).astype("float32"))


def make_mha(seed=0, queries=None, keys=None, values=None, **kwargs):
    kwargs.setdefault("num_hiddens", D)
    kwargs.setdefault("num_heads", H)
    layer = MultiHeadAttention(**kwargs)
    queries = rand(B, Q, D, seed=100) if queries is None else queries
    keys = rand(B, K, D, seed=101) if keys is None else keys
    values = keys if values is None else values
    layer(queries, keys, values)
    randomize_weights(layer, seed)
    return layer


MHA_NAMES = ("W_q", "W_k", "W_v", "W_o")


# ---------------------------------------------------------------------------
# DotProductAttention: numbers
# ---------------------------------------------------------------------------


def test_dot_product_attention_d2l_example():
    """D2L: queries (2, 1, 2), keys (2, 10, 2), values (2, 10, 4), valid_lens [2, 6]."""
    queries, keys, values = rand(2, 1, 2, seed=1), rand(2, 10, 2, seed=2), rand(2, 10, 4, seed=3)
    valid_lens = np.array([2, 6], "int32")
    attention = DotProductAttention(dropout=0.5)
    out, weights = attention(
        queries, keys, values, valid_lens, training=False, return_attention_scores=True
    )
    assert tuple(out.shape) == (2, 1, 4) and tuple(weights.shape) == (2, 1, 10)
    weights = to_np(weights)
    # "the attention weights actually vanish for anything beyond the second
    # and sixth column respectively"
    np.testing.assert_array_equal(weights[0, :, 2:], 0.0)
    np.testing.assert_array_equal(weights[1, :, 6:], 0.0)
    ref_out, ref_w = np_dot_product_attention(queries, keys, values, valid_lens)
    np.testing.assert_allclose(to_np(out), ref_out, atol=ATOL)
    np.testing.assert_allclose(weights, ref_w, atol=ATOL)


@pytest.mark.parametrize("use_fused_op", [True, False])
@pytest.mark.parametrize(
    "valid_lens",
    [None, np.array([2, 5], "int32"), np.array([[1, 4, 5], [3, 2, 1]], "int64")],
    ids=["none", "per_batch", "per_query"],
)
def test_dot_product_attention_matches_numpy(use_fused_op, valid_lens):
    queries, keys, values = rand(B, Q, 4, seed=1), rand(B, K, 4, seed=2), rand(B, K, 6, seed=3)
    layer = DotProductAttention(use_fused_op=use_fused_op)
    out = layer(queries, keys, values, valid_lens=valid_lens)
    ref_out, ref_w = np_dot_product_attention(queries, keys, values, valid_lens)
    np.testing.assert_allclose(to_np(out), ref_out, atol=ATOL)
    out2, w = layer(queries, keys, values, valid_lens=valid_lens, return_attention_scores=True)
    np.testing.assert_allclose(to_np(out2), ref_out, atol=ATOL)
    np.testing.assert_allclose(to_np(w), ref_w, atol=ATOL)


def test_dot_product_attention_with_boolean_mask_and_valid_lens():
    queries, keys, values = rand(B, Q, 4, seed=4), rand(B, K, 4, seed=5), rand(B, K, 3, seed=6)
    mask = np.random.default_rng(7).random((B, Q, K)) > 0.3
    mask[:, :, 0] = True
    valid_lens = np.array([4, 2], "int32")
    out, w = DotProductAttention()(
        queries,
        keys,
        values,
        valid_lens=valid_lens,
        attention_mask=mask,
        return_attention_scores=True,
    )
    ref_out, ref_w = np_dot_product_attention(queries, keys, values, valid_lens, mask)
    np.testing.assert_allclose(to_np(out), ref_out, atol=ATOL)
    np.testing.assert_allclose(to_np(w), ref_w, atol=ATOL)
    allowed = np_allowed(B, Q, K, valid_lens, mask)
    np.testing.assert_array_equal(to_np(w)[~allowed], 0.0)


def test_dot_product_attention_4d_heads_layout_matches_numpy():
    """(B, T, H, d) inputs: each head attends on its own, weights (B, H, Q, K)."""
    queries, keys, values = (
        rand(B, Q, H, 4, seed=8),
        rand(B, K, H, 4, seed=9),
        rand(B, K, H, 3, seed=10),
    )
    valid_lens = np.array([3, 5], "int32")
    out, w = DotProductAttention()(
        queries, keys, values, valid_lens=valid_lens, return_attention_scores=True
    )
    assert tuple(out.shape) == (B, Q, H, 3) and tuple(w.shape) == (B, H, Q, K)
    for h in range(H):
        ref_out, ref_w = np_dot_product_attention(
            queries[:, :, h], keys[:, :, h], values[:, :, h], valid_lens
        )
        np.testing.assert_allclose(to_np(out)[:, :, h], ref_out, atol=ATOL)
        np.testing.assert_allclose(to_np(w)[:, h], ref_w, atol=ATOL)


@pytest.mark.parametrize("use_fused_op", [True, False])
def test_dot_product_attention_fully_masked_rows_give_zero(use_fused_op):
    queries, keys, values = rand(3, Q, 4, seed=11), rand(3, K, 4, seed=12), rand(3, K, 2, seed=13)
    valid_lens = np.array([0, 2, 0], "int32")
    layer = DotProductAttention(use_fused_op=use_fused_op)
    out = to_np(layer(queries, keys, values, valid_lens=valid_lens))
    assert not np.any(np.isnan(out))
    np.testing.assert_array_equal(out[0], 0.0)
    np.testing.assert_array_equal(out[2], 0.0)
    out, w = layer(queries, keys, values, valid_lens=valid_lens, return_attention_scores=True)
    w = to_np(w)
    np.testing.assert_array_equal(w[[0, 2]], 0.0)
    np.testing.assert_array_equal(w[1, :, 2:], 0.0)
    np.testing.assert_allclose(w[1].sum(-1), 1.0, atol=ATOL)


@pytest.mark.parametrize("heads", [False, True], ids=["3d", "4d"])
@pytest.mark.parametrize("masking", ["none", "valid_lens", "mask_with_empty_row", "keras_masks"])
def test_dot_product_attention_fused_equals_explicit(heads, masking):
    extra = (H,) if heads else ()
    queries = rand(B, Q, *extra, 4, seed=14)
    keys = rand(B, K, *extra, 4, seed=15)
    values = rand(B, K, *extra, 4, seed=16)  # the fused kernel needs the size of queries
    kwargs = {}
    if masking == "valid_lens":
        kwargs["valid_lens"] = np.array([[1, 5, 3], [2, 2, 4]], "int32")
    elif masking == "mask_with_empty_row":
        mask = np.random.default_rng(17).random((B, Q, K)) > 0.5
        mask[0, 1] = False  # query 1 of example 0 sees nothing
        mask[1, 0] = True
        kwargs["attention_mask"] = mask[:, None] if heads else mask
    elif masking == "keras_masks":
        queries = mask_from(queries, [[True, True, False], [True, True, True]])
        keys = mask_from(keys, [[True, True, True, False, False], [False, True, True, True, True]])
    fused = to_np(DotProductAttention(use_fused_op=True)(queries, keys, values, **kwargs))
    explicit = to_np(DotProductAttention(use_fused_op=False)(queries, keys, values, **kwargs))
    default = to_np(DotProductAttention()(queries, keys, values, **kwargs))
    np.testing.assert_allclose(default, fused, atol=1e-6, rtol=1e-6)
    with_scores, _ = DotProductAttention(use_fused_op=True)(
        queries, keys, values, return_attention_scores=True, **kwargs
    )
    assert not np.any(np.isnan(fused))
    np.testing.assert_allclose(fused, explicit, atol=1e-6, rtol=1e-6)
    np.testing.assert_allclose(fused, to_np(with_scores), atol=1e-6, rtol=1e-6)
    if masking == "mask_with_empty_row":
        np.testing.assert_array_equal(fused[0, 1], 0.0)
    if masking == "keras_masks":
        np.testing.assert_array_equal(fused[0, 2], 0.0)  # padded query


@pytest.mark.parametrize("use_fused_op", [False, True], ids=["explicit", "fused"])
@pytest.mark.parametrize("heads", [False, True], ids=["3d", "4d"])
@pytest.mark.parametrize("num_queries", [K, Q], ids=["self", "fewer_queries"])
def test_dot_product_attention_causal_matches_numpy(use_fused_op, heads, num_queries):
    # Causal alone takes the kernel's `is_causal` path when fused; with a
    # padding mask it is merged into the mask. Both are query i -> keys j <= i.
    extra = (H,) if heads else ()
    queries = rand(B, num_queries, *extra, 4, seed=61)
    keys = rand(B, K, *extra, 4, seed=62)
    values = rand(B, K, *extra, 4, seed=63)
    causal = np.tril(np.ones((num_queries, K), bool))[None]  # (1, Q, K)
    layer = DotProductAttention(use_fused_op=use_fused_op)
    out = to_np(layer(queries, keys, values, use_causal_mask=True))
    padded = to_np(
        layer(queries, keys, values, valid_lens=np.array([K, 2], "int32"), use_causal_mask=True)
    )
    valid = np.arange(K)[None, None, :] < np.array([K, 2])[:, None, None]  # (B, 1, K)
    if heads:  # the numpy reference is 3-D: one head at a time
        for h in range(H):
            ref, _ = np_dot_product_attention(
                queries[:, :, h], keys[:, :, h], values[:, :, h], mask=causal
            )
            np.testing.assert_allclose(out[:, :, h], ref, atol=ATOL)
            ref, _ = np_dot_product_attention(
                queries[:, :, h], keys[:, :, h], values[:, :, h], mask=causal & valid
            )
            np.testing.assert_allclose(padded[:, :, h], ref, atol=ATOL)
    else:
        ref, _ = np_dot_product_attention(queries, keys, values, mask=causal)
        np.testing.assert_allclose(out, ref, atol=ATOL)
        ref, _ = np_dot_product_attention(queries, keys, values, mask=causal & valid)
        np.testing.assert_allclose(padded, ref, atol=ATOL)


def test_dot_product_attention_keras_masks_match_numpy():
    queries, keys, values = rand(B, Q, 4, seed=18), rand(B, K, 4, seed=19), rand(B, K, 2, seed=20)
    q_mask = np.array([[True, True, False], [True, True, True]])
    k_mask = np.array([[True, True, True, False, False], [True, False, True, True, True]])
    out, w = DotProductAttention()(
        mask_from(queries, q_mask),
        mask_from(keys, k_mask),
        mask_from(values, k_mask),
        return_attention_scores=True,
    )
    ref_out, ref_w = np_dot_product_attention(
        queries, keys, values, mask=q_mask[:, :, None] & k_mask[:, None, :]
    )
    np.testing.assert_allclose(to_np(out), ref_out, atol=ATOL)
    np.testing.assert_allclose(to_np(w), ref_w, atol=ATOL)
    np.testing.assert_array_equal(to_np(out._keras_mask), q_mask)


# ---------------------------------------------------------------------------
# AdditiveAttention: numbers
# ---------------------------------------------------------------------------


def additive_params(layer):
    return tuple(
        ops.convert_to_numpy(getattr(layer, n).kernel).astype(np.float64)
        for n in ("W_q", "W_k", "w_v")
    )


@pytest.mark.parametrize(
    "valid_lens",
    [None, np.array([2, 6], "int32"), np.array([[1], [10]], "int32")],
    ids=["none", "per_batch", "per_query"],
)
def test_additive_attention_d2l_example_matches_numpy(valid_lens):
    """D2L: queries (2, 1, 20), keys (2, 10, 2), values (2, 10, 4), num_hiddens 8."""
    queries, keys, values = (
        rand(2, 1, 20, seed=21),
        rand(2, 10, 2, seed=22),
        rand(2, 10, 4, seed=23),
    )
    layer = AdditiveAttention(num_hiddens=8, dropout=0.1)
    out, w = layer(queries, keys, values, valid_lens, training=False, return_attention_scores=True)
    assert tuple(out.shape) == (2, 1, 4) and tuple(w.shape) == (2, 1, 10)
    assert [tuple(v.shape) for v in (layer.W_q.kernel, layer.W_k.kernel, layer.w_v.kernel)] == [
        (20, 8),
        (2, 8),
        (8, 1),
    ]
    ref_out, ref_w = np_additive_attention(
        queries, keys, values, *additive_params(layer), valid_lens
    )
    np.testing.assert_allclose(to_np(out), ref_out, atol=ATOL)
    np.testing.assert_allclose(to_np(w), ref_w, atol=ATOL)
    if valid_lens is not None and valid_lens.ndim == 1:
        np.testing.assert_array_equal(to_np(w)[0, :, 2:], 0.0)
        np.testing.assert_array_equal(to_np(w)[1, :, 6:], 0.0)


def test_additive_attention_with_mask_and_fully_masked_row():
    queries, keys, values = rand(B, Q, 3, seed=24), rand(B, K, 5, seed=25), rand(B, K, 2, seed=26)
    layer = AdditiveAttention(num_hiddens=4)
    mask = np.random.default_rng(27).random((B, Q, K)) > 0.4
    mask[1, 2] = False
    mask[0, 0, 0] = mask[1, 0, 0] = True
    out, w = layer(queries, keys, values, attention_mask=mask, return_attention_scores=True)
    out, w = to_np(out), to_np(w)
    ref_out, ref_w = np_additive_attention(
        queries, keys, values, *additive_params(layer), mask=mask
    )
    np.testing.assert_allclose(out, ref_out, atol=ATOL)
    np.testing.assert_allclose(w, ref_w, atol=ATOL)
    np.testing.assert_array_equal(w[~mask], 0.0)
    np.testing.assert_array_equal(out[1, 2], 0.0)
    assert not np.any(np.isnan(out))


@pytest.mark.parametrize("training", [False, True])
def test_additive_attention_given_dropout_mask_is_applied_to_the_weights(training):
    # A caller-drawn dropout (e.g. once before a loop over time) replaces the
    # layer's own draw: output = (weights * dropout_mask) @ values.
    queries, keys, values = rand(B, Q, 3, seed=64), rand(B, K, 5, seed=65), rand(B, K, 2, seed=66)
    layer = AdditiveAttention(num_hiddens=4, dropout=0.5)
    dropout_mask = (np.random.default_rng(67).random((B, Q, K)) > 0.5).astype("float32") * 2.0
    out, w = layer(
        queries,
        keys,
        values,
        training=training,
        dropout_mask=dropout_mask,
        return_attention_scores=True,
    )
    _, ref_w = np_additive_attention(queries, keys, values, *additive_params(layer))
    np.testing.assert_allclose(to_np(w), ref_w, atol=ATOL)  # weights before dropout
    np.testing.assert_allclose(to_np(out), (ref_w * dropout_mask) @ values, atol=ATOL)


def test_additive_attention_keras_masks_match_numpy():
    queries, keys, values = rand(B, Q, 3, seed=28), rand(B, K, 5, seed=29), rand(B, K, 2, seed=30)
    q_mask = np.array([[True, False, True], [True, True, True]])
    k_mask = np.array([[True, True, False, False, False], [True, True, True, True, False]])
    layer = AdditiveAttention(num_hiddens=4)
    out, w = layer(
        mask_from(queries, q_mask), mask_from(keys, k_mask), values, return_attention_scores=True
    )
    ref_out, ref_w = np_additive_attention(
        queries, keys, values, *additive_params(layer), mask=q_mask[:, :, None] & k_mask[:, None, :]
    )
    np.testing.assert_allclose(to_np(out), ref_out, atol=ATOL)
    np.testing.assert_allclose(to_np(w), ref_w, atol=ATOL)
    np.testing.assert_array_equal(to_np(out._keras_mask), q_mask)


# ---------------------------------------------------------------------------
# MultiHeadAttention: numbers
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("use_bias", [False, True])
@pytest.mark.parametrize(
    "valid_lens",
    [None, np.array([3, 2], "int32"), np.array([[1, 5, 2], [4, 0, 3]], "int32")],
    ids=["none", "per_batch", "per_query"],
)
def test_multi_head_attention_matches_d2l_numpy(use_bias, valid_lens):
    """D2L: W_q/W_k/W_v projections, heads split by transpose_qkv, W_o."""
    queries, keys, values = rand(B, Q, 6, seed=31), rand(B, K, 7, seed=32), rand(B, K, 5, seed=33)
    layer = make_mha(queries=queries, keys=keys, values=values, use_bias=use_bias)
    out, w = layer(queries, keys, values, valid_lens=valid_lens, return_attention_scores=True)
    assert tuple(out.shape) == (B, Q, D)
    assert tuple(w.shape) == (B, H, Q, K)
    ref_out, ref_w = np_mha_d2l(
        queries, keys, values, dense_params(layer, MHA_NAMES), H, valid_lens
    )
    np.testing.assert_allclose(to_np(out), ref_out, atol=ATOL)
    np.testing.assert_allclose(to_np(w), ref_w, atol=ATOL)
    fused = MultiHeadAttention(D, H, use_bias=use_bias, use_fused_op=True)
    fused(queries, keys, values)
    fused.set_weights(layer.get_weights())
    np.testing.assert_allclose(
        to_np(fused(queries, keys, values, valid_lens=valid_lens)), ref_out, atol=ATOL
    )


def test_multi_head_attention_d2l_example_shapes():
    """D2L: num_hiddens 100, 5 heads, 4 queries, 6 key-value pairs, valid_lens [3, 2]."""
    X, Y = rand(2, 4, 100, seed=34), rand(2, 6, 100, seed=35)
    attention = MultiHeadAttention(num_hiddens=100, num_heads=5, dropout=0.5)
    out, w = attention(
        X, Y, Y, np.array([3, 2], "int32"), training=False, return_attention_scores=True
    )
    assert tuple(out.shape) == (2, 4, 100)
    assert tuple(w.shape) == (2, 5, 4, 6)
    w = to_np(w)
    np.testing.assert_array_equal(w[0, :, :, 3:], 0.0)
    np.testing.assert_array_equal(w[1, :, :, 2:], 0.0)
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=ATOL)


@pytest.mark.parametrize("use_fused_op", [True, False])
def test_multi_head_attention_fully_masked_rows_give_zero_weights_and_bias_output(use_fused_op):
    queries, keys = rand(B, Q, D, seed=36), rand(B, K, D, seed=37)
    layer = make_mha(use_bias=True, use_fused_op=use_fused_op, queries=queries, keys=keys)
    valid_lens = np.array([[0, 2, 0], [5, 0, 1]], "int32")
    for kwargs in ({}, {"return_attention_scores": True}):
        result = layer(queries, keys, keys, valid_lens=valid_lens, **kwargs)
        out = to_np(result[0] if kwargs else result)
        assert np.all(np.isfinite(out))
        # The attended vector is zero, so the output is W_o's bias.
        bias = ops.convert_to_numpy(layer.W_o.bias)
        for b, q in ((0, 0), (0, 2), (1, 1)):
            np.testing.assert_allclose(out[b, q], bias, atol=1e-6)
        if kwargs:
            w = to_np(result[1])
            np.testing.assert_array_equal(w[0, :, 0], 0.0)
            np.testing.assert_array_equal(w[1, :, 1], 0.0)
            np.testing.assert_array_equal(w[0, :, 1, 2:], 0.0)


@pytest.mark.parametrize(
    "masking", ["none", "valid_lens", "mask_with_empty_row", "causal", "keras_masks"]
)
def test_multi_head_attention_fused_equals_explicit(masking):
    queries, keys = rand(B, Q, D, seed=38), rand(B, K, D, seed=39)
    kwargs = {}
    if masking == "valid_lens":
        kwargs["valid_lens"] = np.array([0, 4], "int32")
    elif masking == "mask_with_empty_row":
        mask = np.random.default_rng(40).random((B, Q, K)) > 0.5
        mask[1, 2] = False
        kwargs["attention_mask"] = mask
    elif masking == "causal":
        kwargs["use_causal_mask"] = True
    elif masking == "keras_masks":
        queries = mask_from(queries, [[True, True, False], [True, True, True]])
        keys = mask_from(
            keys, [[True, True, True, False, False], [False, False, False, False, False]]
        )
    fused_layer = make_mha(use_bias=True, use_fused_op=True)
    explicit_layer = make_mha(use_bias=True, use_fused_op=False)
    fused = to_np(fused_layer(queries, keys, keys, **kwargs))
    explicit = to_np(explicit_layer(queries, keys, keys, **kwargs))
    default_layer = make_mha(use_bias=True)
    default = to_np(default_layer(queries, keys, keys, **kwargs))
    np.testing.assert_allclose(default, fused, atol=1e-6, rtol=1e-6)
    scores_out = to_np(fused_layer(queries, keys, keys, return_attention_scores=True, **kwargs)[0])
    assert np.all(np.isfinite(fused))
    np.testing.assert_allclose(fused, explicit, atol=1e-6, rtol=1e-6)
    np.testing.assert_allclose(fused, scores_out, atol=1e-6, rtol=1e-6)


def test_multi_head_attention_weights_sum_to_one_and_masked_keys_get_zero():
    queries, keys = rand(B, Q, D, seed=41), rand(B, K, D, seed=42)
    mask = np.ones((B, Q, K), bool)
    mask[0, :, 1] = False
    mask[1, 2, :] = False
    valid_lens = np.array([4, 5], "int32")
    _, w = make_mha()(
        queries,
        keys,
        keys,
        valid_lens=valid_lens,
        attention_mask=mask,
        return_attention_scores=True,
    )
    w = to_np(w)
    allowed = np_allowed(B, Q, K, valid_lens, mask)[:, None]  # (B, 1, Q, K)
    np.testing.assert_array_equal(w[np.broadcast_to(~allowed, w.shape)], 0.0)
    sums = w.sum(-1)
    np.testing.assert_allclose(sums[1, :, 2], 0.0)
    np.testing.assert_allclose(sums[0], 1.0, atol=ATOL)
    np.testing.assert_allclose(sums[1, :, :2], 1.0, atol=ATOL)


# ---------------------------------------------------------------------------
# MultiHeadAttention against keras.layers.MultiHeadAttention
# ---------------------------------------------------------------------------


def keras_mha_pair(use_bias, q_dim=D, k_dim=D, v_dim=D, seed=0):
    """A keras MHA with random weights, and ours carrying the same weights."""
    queries, keys, values = (
        rand(B, Q, q_dim, seed=50),
        rand(B, K, k_dim, seed=51),
        rand(B, K, v_dim, seed=52),
    )
    theirs = keras.layers.MultiHeadAttention(
        num_heads=H, key_dim=D // H, use_bias=use_bias, output_shape=D
    )
    theirs(queries, values, key=keys)
    randomize_weights(theirs, seed)
    ours = MultiHeadAttention(num_hiddens=D, num_heads=H, use_bias=use_bias)
    ours(queries, keys, values)
    by_name = {"/".join(w.path.split("/")[-2:]): ops.convert_to_numpy(w) for w in theirs.weights}
    for mine, their in (("W_q", "query"), ("W_k", "key"), ("W_v", "value")):
        dense = getattr(ours, mine)
        kernel = by_name[f"{their}/kernel"]  # (D_in, H, d)
        assert kernel.shape[1:] == (H, D // H)
        dense.kernel.assign(kernel.reshape(kernel.shape[0], -1))
        if use_bias:
            dense.bias.assign(by_name[f"{their}/bias"].reshape(-1))  # (H, d) -> (D,)
    kernel = by_name["attention_output/kernel"]  # (H, d, D)
    assert kernel.shape == (H, D // H, D)
    ours.W_o.kernel.assign(kernel.reshape(-1, kernel.shape[-1]))
    if use_bias:
        ours.W_o.bias.assign(by_name["attention_output/bias"])
    return ours, theirs, (queries, keys, values)


@pytest.mark.parametrize("use_bias", [True, False])
def test_multi_head_attention_equals_keras_mha(use_bias):
    ours, theirs, (queries, keys, values) = keras_mha_pair(use_bias, q_dim=6, k_dim=5, v_dim=7)
    out, w = ours(queries, keys, values, return_attention_scores=True)
    ref_out, ref_w = theirs(queries, values, key=keys, return_attention_scores=True)
    np.testing.assert_allclose(to_np(out), to_np(ref_out), atol=ATOL)
    np.testing.assert_allclose(to_np(w), to_np(ref_w), atol=ATOL)
    np.testing.assert_allclose(to_np(ours(queries, keys, values)), to_np(ref_out), atol=ATOL)


@pytest.mark.parametrize("use_bias", [True, False])
def test_multi_head_attention_equals_keras_mha_with_attention_mask(use_bias):
    ours, theirs, (queries, keys, values) = keras_mha_pair(use_bias, seed=1)
    mask = np.random.default_rng(53).random((B, Q, K)) > 0.5
    mask[0, 1] = False  # an empty row: keras gives it uniform weights, we give zeros
    mask[:, [0, 2], 0] = True
    mask[1, 1, 0] = True
    has_key = mask.any(-1)  # (B, Q)
    out, w = ours(queries, keys, values, attention_mask=mask, return_attention_scores=True)
    ref_out, ref_w = theirs(
        queries, values, key=keys, attention_mask=mask, return_attention_scores=True
    )
    np.testing.assert_allclose(to_np(out)[has_key], to_np(ref_out)[has_key], atol=ATOL)
    w, ref_w = to_np(w).transpose(0, 2, 1, 3), to_np(ref_w).transpose(0, 2, 1, 3)  # (B, Q, H, K)
    np.testing.assert_allclose(w[has_key], ref_w[has_key], atol=ATOL)
    np.testing.assert_array_equal(w[~has_key], 0.0)


@pytest.mark.parametrize("use_bias", [True, False])
def test_multi_head_attention_equals_keras_mha_with_causal_mask(use_bias):
    ours, theirs, (queries, keys, values) = keras_mha_pair(use_bias, seed=2)
    out, w = ours(queries, keys, values, use_causal_mask=True, return_attention_scores=True)
    ref_out, ref_w = theirs(
        queries, values, key=keys, use_causal_mask=True, return_attention_scores=True
    )
    np.testing.assert_allclose(to_np(out), to_np(ref_out), atol=ATOL)
    np.testing.assert_allclose(to_np(w), to_np(ref_w), atol=ATOL)
    # Query i sees keys j <= i.
    np.testing.assert_array_equal(to_np(w)[..., ~np.tril(np.ones((Q, K), bool))], 0.0)
    self_out = ours(queries, queries, queries, use_causal_mask=True)
    self_ref = theirs(queries, queries, use_causal_mask=True)
    np.testing.assert_allclose(to_np(self_out), to_np(self_ref), atol=ATOL)


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("use_causal_mask", [False, True])
def test_multi_head_attention_equals_keras_mha_with_keras_masks(use_bias, use_causal_mask):
    ours, theirs, (queries, keys, values) = keras_mha_pair(use_bias, seed=3)
    q_mask = np.array([[True, True, False], [True, True, True]])
    k_mask = np.array([[True, True, True, False, False], [False, True, True, True, True]])

    def masked():
        # Fresh tensors per call: keras' MHA deletes the masks of its inputs.
        return mask_from(queries, q_mask), mask_from(keys, k_mask), mask_from(values, k_mask)

    out, w = ours(*masked(), use_causal_mask=use_causal_mask, return_attention_scores=True)
    mq, mk, mv = masked()
    ref_out, ref_w = theirs(
        mq, mv, key=mk, use_causal_mask=use_causal_mask, return_attention_scores=True
    )
    allowed = q_mask[:, :, None] & k_mask[:, None, :]
    if use_causal_mask:
        allowed &= np.tril(np.ones((Q, K), bool))
    has_key = allowed.any(-1)
    assert has_key.sum() >= 3  # the comparison covers real rows
    np.testing.assert_allclose(to_np(out)[has_key], to_np(ref_out)[has_key], atol=ATOL)
    w, ref_w = to_np(w).transpose(0, 2, 1, 3), to_np(ref_w).transpose(0, 2, 1, 3)
    np.testing.assert_allclose(w[has_key], ref_w[has_key], atol=ATOL)
    np.testing.assert_array_equal(w[~has_key], 0.0)
    np.testing.assert_array_equal(to_np(out._keras_mask), q_mask)
    fused = MultiHeadAttention(D, H, use_bias=use_bias, use_fused_op=True)
    fused(queries, keys, values)
    fused.set_weights(ours.get_weights())
    fused = fused(*masked(), use_causal_mask=use_causal_mask)
    np.testing.assert_allclose(to_np(fused)[has_key], to_np(ref_out)[has_key], atol=ATOL)


# ---------------------------------------------------------------------------
# Padding invariance and causality
# ---------------------------------------------------------------------------


def _layers_for_padding():
    return {
        "dot": DotProductAttention(use_fused_op=False),
        "dot_fused": DotProductAttention(use_fused_op=True),
        "additive": AdditiveAttention(num_hiddens=4),
        "mha": make_mha(use_bias=True, use_fused_op=False),
        "mha_fused": make_mha(use_bias=True, use_fused_op=True),
    }


@pytest.mark.parametrize("name", ["dot", "dot_fused", "additive", "mha", "mha_fused"])
def test_padding_past_valid_lens_does_not_change_outputs(name):
    layer = _layers_for_padding()[name]
    queries, keys, values = rand(B, Q, D, seed=60), rand(B, K, D, seed=61), rand(B, K, D, seed=62)
    valid_lens = np.array([2, 4], "int32")
    keys2, values2 = keys.copy(), values.copy()
    for b, n in enumerate(valid_lens):
        keys2[b, n:] = rand(K - n, D, seed=63 + b, scale=10.0)
        values2[b, n:] = rand(K - n, D, seed=65 + b, scale=10.0)
    for kwargs in ({}, {"return_attention_scores": True}):
        a = layer(queries, keys, values, valid_lens=valid_lens, **kwargs)
        c = layer(queries, keys2, values2, valid_lens=valid_lens, **kwargs)
        a, c = (to_np(t[0] if kwargs else t) for t in (a, c))
        np.testing.assert_allclose(c, a, atol=1e-6)
    # Sanity: the same change inside the valid length does change outputs.
    keys3 = keys.copy()
    keys3[:, 0] += 5.0
    changed = to_np(layer(queries, keys3, values, valid_lens=valid_lens))
    assert not np.allclose(changed, a, atol=1e-3)


@pytest.mark.parametrize("name", ["dot", "dot_fused", "additive", "mha", "mha_fused"])
def test_padding_under_keras_mask_does_not_change_valid_outputs(name):
    layer = _layers_for_padding()[name]
    x = rand(B, K, D, seed=70)
    mask = np.array([[True, True, True, False, False], [True, True, True, True, False]])
    x2 = x.copy()
    x2[~mask] = rand(int((~mask).sum()), D, seed=71, scale=10.0)
    a = to_np(layer(mask_from(x, mask), mask_from(x, mask), mask_from(x, mask)))
    c = to_np(layer(mask_from(x2, mask), mask_from(x2, mask), mask_from(x2, mask)))
    np.testing.assert_allclose(c[mask], a[mask], atol=1e-6)
    assert np.all(np.isfinite(c))


@pytest.mark.parametrize("use_rotary", [False, True])
@pytest.mark.parametrize("use_fused_op", [True, False])
def test_causal_mask_no_leak_from_later_tokens(use_rotary, use_fused_op):
    layer = make_mha(use_bias=True, use_rotary=use_rotary, use_fused_op=use_fused_op)
    T = 6
    x = rand(B, T, D, seed=72)
    base = to_np(layer(x, x, x, use_causal_mask=True))
    for t in range(1, T):
        x2 = x.copy()
        x2[:, t:] = rand(B, T - t, D, seed=73 + t, scale=5.0)
        out = to_np(layer(x2, x2, x2, use_causal_mask=True))
        np.testing.assert_allclose(out[:, :t], base[:, :t], atol=1e-6)
        assert not np.allclose(out[:, t], base[:, t], atol=1e-3)


# ---------------------------------------------------------------------------
# Incremental decoding with a cache
# ---------------------------------------------------------------------------


def _expected_cache(layer, x, cache_len, use_rotary):
    params = dense_params(layer, MHA_NAMES)
    k = np_dense(x, params["W_k"])
    v = np_dense(x, params["W_v"])
    if use_rotary:
        k = np_rotary(k.reshape(x.shape[0], x.shape[1], H, -1)).reshape(k.shape)
    cache = np.zeros((x.shape[0], 2, cache_len, D))
    cache[:, 0, : x.shape[1]] = k
    cache[:, 1, : x.shape[1]] = v
    return cache


@pytest.mark.parametrize("use_fused_op", [True, False])
@pytest.mark.parametrize("use_rotary", [False, True])
@pytest.mark.parametrize(
    "chunks",
    [(1, 1, 1, 1, 1), (2, 1, 1, 1), (3, 2)],
    ids=["steps", "chunk2_then_steps", "chunk3_chunk2"],
)
@pytest.mark.parametrize("extra_cache", [0, 2])
def test_incremental_decoding_equals_full_causal_pass(
    use_rotary, chunks, extra_cache, use_fused_op
):
    T = sum(chunks)
    layer = make_mha(use_bias=True, use_rotary=use_rotary, use_fused_op=use_fused_op)
    x = rand(B, T, D, seed=80)
    full = to_np(layer(x, x, x, use_causal_mask=True))
    cache = ops.zeros((B, 2, T + extra_cache, D))
    outs, start = [], 0
    for n in chunks:
        step = x[:, start : start + n]
        out, cache = layer(
            step, step, step, use_causal_mask=True, cache=cache, cache_update_index=start
        )
        assert tuple(out.shape) == (B, n, D)
        assert tuple(cache.shape) == (B, 2, T + extra_cache, D)
        outs.append(to_np(out))
        start += n
    np.testing.assert_allclose(np.concatenate(outs, axis=1), full, atol=ATOL)
    np.testing.assert_allclose(
        to_np(cache), _expected_cache(layer, x, T + extra_cache, use_rotary), atol=ATOL
    )


def test_incremental_decoding_matches_rotary_numpy_reference():
    layer = make_mha(use_bias=True, use_rotary=True)
    T = 4
    x = rand(B, T, D, seed=81)
    causal = np.tril(np.ones((T, T), bool))
    ref_out, ref_w = np_mha_d2l(
        x, x, x, dense_params(layer, MHA_NAMES), H, mask=causal, rotary=True
    )
    out, w = layer(x, x, x, use_causal_mask=True, return_attention_scores=True)
    np.testing.assert_allclose(to_np(out), ref_out, atol=ATOL)
    np.testing.assert_allclose(to_np(w), ref_w, atol=ATOL)
    cache = ops.zeros((B, 2, T, D))
    for t in range(T):
        step = x[:, t : t + 1]
        out, w, cache = layer(
            step,
            step,
            step,
            cache=cache,
            cache_update_index=ops.convert_to_tensor(t, "int32"),
            return_attention_scores=True,
        )
        assert tuple(w.shape) == (B, H, 1, T)
        np.testing.assert_allclose(to_np(out)[:, 0], ref_out[:, t], atol=ATOL)
        # Unfilled cache slots get zero weight.
        np.testing.assert_allclose(to_np(w)[:, :, 0], ref_w[:, :, t], atol=ATOL)


@pytest.mark.tensorflow_only(reason="XLA through tf.function")
def test_incremental_decoding_in_compiled_loop_equals_full_pass():
    """A generate-style loop (`keras.ops.while_loop`, tensor index) under XLA."""
    import tensorflow as tf

    layer = make_mha(use_bias=True, use_rotary=True)
    T = 5
    x = rand(B, T, D, seed=83)
    full = to_np(layer(x, x, x, use_causal_mask=True))

    def decode(x):
        def body(t, cache, outs):
            step = ops.slice(x, (0, t, 0), (B, 1, D))
            out, cache = layer(
                step, step, step, use_causal_mask=True, cache=cache, cache_update_index=t
            )
            return t + 1, cache, ops.slice_update(outs, (0, t, 0), out)

        init = (ops.convert_to_tensor(0, "int32"), ops.zeros((B, 2, T, D)), ops.zeros((B, T, D)))
        return ops.while_loop(lambda t, *_: t < T, body, init)

    _, cache, outs = tf.function(decode, jit_compile=True)(ops.convert_to_tensor(x))
    np.testing.assert_allclose(to_np(outs), full, atol=ATOL)
    np.testing.assert_allclose(to_np(cache), _expected_cache(layer, x, T, True), atol=ATOL)


def test_cache_call_on_symbolic_inputs_gives_shapes():
    layer = MultiHeadAttention(D, H, use_rotary=True)
    step, cache = keras.Input((None, D)), keras.Input((2, None, D))
    out, weights, new_cache = layer(
        step,
        step,
        step,
        use_causal_mask=True,
        cache=cache,
        cache_update_index=0,
        return_attention_scores=True,
    )
    assert tuple(out.shape) == (None, None, D)
    assert tuple(weights.shape) == (None, H, None, None)
    assert tuple(new_cache.shape) == (None, 2, None, D)


def test_prompt_chunk_with_keras_mask_through_cache_equals_full_pass():
    """A left-padded prompt (Keras mask) fed through the cache at index 0:
    its padded keys must stay masked, as in the full pass (padding never
    changes outputs at unpadded positions)."""
    layer = make_mha(use_bias=True)
    T = 4
    x = rand(B, T, D, seed=84)
    mask = np.array([[False, True, True, True], [True, True, True, True]])
    full = to_np(
        layer(mask_from(x, mask), mask_from(x, mask), mask_from(x, mask), use_causal_mask=True)
    )
    out, _ = layer(
        mask_from(x, mask),
        mask_from(x, mask),
        mask_from(x, mask),
        use_causal_mask=True,
        cache=ops.zeros((B, 2, T, D)),
        cache_update_index=0,
    )
    np.testing.assert_allclose(to_np(out)[mask], full[mask], atol=ATOL)


def test_cache_with_valid_lens_masks_padded_prefix():
    """A left-padded prompt: valid_lens masks nothing past the filled cache."""
    layer = make_mha(use_bias=True)
    T = 4
    x = rand(B, T, D, seed=82)
    attention_mask = np.array([[False, True, True, True], [True, True, True, True]])[:, None, :]
    full = to_np(layer(x, x, x, use_causal_mask=True, attention_mask=attention_mask))
    cache = ops.zeros((B, 2, T, D))
    for t in range(T):
        step = x[:, t : t + 1]
        out, cache = layer(
            step,
            step,
            step,
            use_causal_mask=True,
            cache=cache,
            cache_update_index=t,
            attention_mask=attention_mask,
        )
        np.testing.assert_allclose(to_np(out)[:, 0], full[:, t], atol=ATOL)


# ---------------------------------------------------------------------------
# Rotary positions
# ---------------------------------------------------------------------------


def test_rotary_changes_outputs():
    x = rand(B, 5, D, seed=90)
    plain = make_mha(use_bias=True, seed=3)
    rotary = MultiHeadAttention(num_hiddens=D, num_heads=H, use_bias=True, use_rotary=True)
    rotary(x, x, x)
    rotary.set_weights(plain.get_weights())
    a, c = to_np(plain(x, x, x)), to_np(rotary(x, x, x))
    assert not np.allclose(a, c, atol=1e-3)
    # Position 0 is not rotated, so in a causal pass the first output agrees.
    a = to_np(plain(x, x, x, use_causal_mask=True))
    c = to_np(rotary(x, x, x, use_causal_mask=True))
    np.testing.assert_allclose(c[:, 0], a[:, 0], atol=ATOL)
    assert not np.allclose(c[:, 1:], a[:, 1:], atol=1e-3)


@pytest.mark.parametrize("shift", [1, 7])
def test_rotary_attention_depends_only_on_relative_position(shift):
    """Shift every position by `shift` (a cache offset): weights stay equal."""
    layer = make_mha(use_bias=True, use_rotary=True, seed=4)
    T = 5
    x = rand(B, T, D, seed=91)
    base_out, base_w = layer(x, x, x, use_causal_mask=True, return_attention_scores=True)
    cache = ops.zeros((B, 2, shift + T, D))
    # Hide the empty first `shift` slots; queries sit at positions shift..shift+T-1.
    hide = (np.arange(shift + T) >= shift)[None, None, :]
    out, w, cache = layer(
        x,
        x,
        x,
        use_causal_mask=True,
        cache=cache,
        cache_update_index=shift,
        attention_mask=hide,
        return_attention_scores=True,
    )
    # The keys really sit at absolute positions shift..shift+T-1 ...
    k = np_dense(x, dense_params(layer, ("W_k",))["W_k"]).reshape(B, T, H, -1)
    np.testing.assert_allclose(
        to_np(cache)[:, 0, shift:], np_rotary(k, start=shift).reshape(B, T, D), atol=ATOL
    )
    assert not np.allclose(to_np(cache)[:, 0, shift:], np_rotary(k).reshape(B, T, D), atol=1e-3)
    # ... yet outputs and weights equal the unshifted pass.
    np.testing.assert_allclose(to_np(out), to_np(base_out), atol=ATOL)
    np.testing.assert_allclose(to_np(w)[..., shift:], to_np(base_w), atol=ATOL)
    np.testing.assert_array_equal(to_np(w)[..., :shift], 0.0)


def test_rotary_logits_depend_on_offset_numpy():
    """The numpy rotation the tests use has the RoPE property, so the layer's
    agreement with it (above) pins the relative-position behaviour."""
    rng = np.random.default_rng(92)
    q, k = rng.normal(size=(1, 1, 1, 4)), rng.normal(size=(1, 1, 1, 4))
    logits = {
        (m, n): float((np_rotary(q, m) * np_rotary(k, n)).sum()) for m in range(4) for n in range(4)
    }
    assert logits[(3, 1)] == pytest.approx(logits[(2, 0)])
    assert logits[(3, 3)] == pytest.approx(float((q * k).sum()))
    assert logits[(3, 1)] != pytest.approx(logits[(3, 2)])


# ---------------------------------------------------------------------------
# Gradients (the explicit path's backward is written by hand, see `_attend`)
# ---------------------------------------------------------------------------


def np_swap_heads(t):
    """numpy `(B, T, H, d)` <-> `(B, H, T, d)`: numpy works per head."""
    return np.swapaxes(t, 1, 2)


def np_attention_grads(q, k, v, d_out, allowed, dropout_mask=None):
    """numpy backward of `softmax(q k^T / sqrt(d)) v` for the loss `sum(out * d_out)`.

    The textbook chain rule through the weights `P` (not the row-sum form
    `_attend` uses): dV = P~^T dO, dP = (dO V^T) * M, dS = P (dP - rowsum(dP P)).
    Shapes `(..., Q, d)`, `(..., K, d)`, `(..., K, v)`, `(..., Q, v)`; `allowed`
    and `dropout_mask` broadcast to `(..., Q, K)`. Returns `(dq, dk, dv)`.
    """
    q, k, v, d_out = (np.asarray(t, np.float64) for t in (q, k, v, d_out))
    scale = 1.0 / np.sqrt(q.shape[-1])
    weights = np_masked_softmax(q @ np.swapaxes(k, -1, -2) * scale, allowed)
    keep = (
        np.ones_like(weights)
        if dropout_mask is None
        else np.broadcast_to(dropout_mask, weights.shape)
    )
    d_v = np.swapaxes(weights * keep, -1, -2) @ d_out
    d_weights = (d_out @ np.swapaxes(v, -1, -2)) * keep
    d_scores = weights * (d_weights - np.sum(d_weights * weights, axis=-1, keepdims=True))
    return d_scores @ k * scale, np.swapaxes(d_scores, -1, -2) @ q * scale, d_v


def input_grads(fn, inputs, d_out):
    """Gradients of `sum(fn(*inputs) * d_out)` w.r.t. each input, on any backend."""
    variables = [keras.Variable(x) for x in inputs]
    d_out = ops.convert_to_tensor(d_out)
    loss = lambda: ops.sum(ops.cast(fn(*variables), "float32") * d_out)  # noqa: E731
    return [gradient(loss, var) for var in variables]


@pytest.mark.parametrize("use_fused_op", [None, False, True])
@pytest.mark.parametrize("masking", [None, "valid_lens", "causal"])
@pytest.mark.parametrize("heads", [False, True])
def test_dot_product_attention_gradients_match_numpy(use_fused_op, masking, heads):
    shape = (B, Q, H, D) if heads else (B, Q, D)
    k_shape = (B, K) + shape[2:]
    q, k, v = rand(*shape, seed=200), rand(*k_shape, seed=201), rand(*k_shape, seed=202)
    d_out = rand(*shape, seed=203)
    layer = DotProductAttention(use_fused_op=use_fused_op)
    kwargs, allowed = {}, np.ones((B, Q, K), bool)
    if masking == "valid_lens":
        valid_lens = np.array([0, 3], "int32")  # the first batch row has no valid key
        kwargs["valid_lens"] = valid_lens
        allowed = np_allowed(B, Q, K, valid_lens)
    elif masking == "causal":
        kwargs["use_causal_mask"] = True
        allowed = np.broadcast_to(np.tril(np.ones((Q, K), bool)), (B, Q, K))
    grads = input_grads(lambda q, k, v: layer(q, k, v, **kwargs), (q, k, v), d_out)
    if heads:
        expected = np_attention_grads(*map(np_swap_heads, (q, k, v, d_out)), allowed[:, None])
        expected = [np_swap_heads(g) for g in expected]
    else:
        expected = np_attention_grads(q, k, v, d_out, allowed)
    for name, got, want in zip("qkv", grads, expected):
        np.testing.assert_allclose(got, want, atol=2e-5, err_msg=f"d{name}")
    if masking == "valid_lens":
        np.testing.assert_array_equal(grads[0][0], 0.0)  # no key: output 0, no gradient


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_attend_with_mask_and_dropout_mask_matches_numpy(policy):
    """`_attend` itself: forward and hand-written backward, dropout mask given."""
    compute = "float32" if policy == "float32" else "bfloat16"
    q, k, v = rand(B, Q, H, 4, seed=210), rand(B, K, H, 4, seed=211), rand(B, K, H, 6, seed=212)
    d_out = rand(B, Q, H, 6, seed=213)
    rng = np.random.default_rng(214)
    allowed = rng.random((B, 1, Q, K)) > 0.3  # (B, 1, Q, K): the same for every head
    allowed[0, 0, 1] = False  # a query with no key
    allowed[:, :, [0, 2], 0] = True
    dropout_mask = (rng.random((B, H, Q, K)) > 0.4) / 0.6  # rate 0.4
    scale = 1.0 / np.sqrt(4)

    def attend(q, k, v):
        return _attend(
            ops.cast(q, compute) * ops.cast(scale, compute),
            ops.cast(k, compute),
            ops.cast(v, compute),
            mask=ops.convert_to_tensor(allowed),
            dropout_mask=ops.convert_to_tensor(dropout_mask.astype("float32")),
        )

    weights = np_masked_softmax(
        np_swap_heads(q) @ np.swapaxes(np_swap_heads(k), -1, -2) * scale, allowed
    )
    expected_out = np_swap_heads((weights * dropout_mask) @ np_swap_heads(v))
    expected = [
        np_swap_heads(g)
        for g in np_attention_grads(*map(np_swap_heads, (q, k, v, d_out)), allowed, dropout_mask)
    ]
    atol = 2e-5 if policy == "float32" else 0.15
    out = to_np(attend(q, k, v))
    np.testing.assert_allclose(out, expected_out, atol=atol)
    np.testing.assert_array_equal(out[0, 1], 0.0)
    grads = input_grads(attend, (q, k, v), d_out)
    for name, got, want in zip("qkv", grads, expected):
        assert np.all(np.isfinite(got))
        np.testing.assert_allclose(
            got, want, atol=atol, rtol=0.05 if compute == "bfloat16" else 1e-6, err_msg=f"d{name}"
        )
    np.testing.assert_array_equal(grads[0][0, 1], 0.0)


def test_dropout_gradients_equal_the_op_by_op_path():
    """Training with attention dropout: the hand-written backward (no weights
    returned) and the op-by-op path (`return_attention_scores=True`) draw the
    same dropout mask and give the same output and gradients."""
    q, k, v = rand(B, Q, H, D, seed=220), rand(B, K, H, D, seed=221), rand(B, K, H, D, seed=222)
    d_out = rand(B, Q, H, D, seed=223)
    results = []
    for return_scores in (False, True):
        keras.utils.set_random_seed(7)
        layer = DotProductAttention(dropout=0.4)

        def fn(q, k, v, layer=layer, return_scores=return_scores):
            keras.utils.set_random_seed(8)
            out = layer(
                q,
                k,
                v,
                valid_lens=np.array([2, 4], "int32"),
                training=True,
                return_attention_scores=return_scores,
            )
            return out[0] if return_scores else out

        results.append((to_np(fn(q, k, v)), input_grads(fn, (q, k, v), d_out)))
    (out, grads), (ref_out, ref_grads) = results
    np.testing.assert_allclose(out, ref_out, atol=1e-5)
    assert not np.allclose(
        out, to_np(DotProductAttention()(q, k, v, valid_lens=np.array([2, 4], "int32")))
    )
    for name, got, want in zip("qkv", grads, ref_grads):
        np.testing.assert_allclose(got, want, atol=2e-5, err_msg=f"d{name}")


@pytest.mark.parametrize("use_causal_mask", [False, True])
def test_multi_head_attention_gradients_equal_keras_mha(use_causal_mask):
    """Gradients for the inputs and every kernel equal Keras' layer's."""
    ours, theirs, (x, _, _) = keras_mha_pair(use_bias=True, seed=4)
    x = rand(B, K, D, seed=230)
    d_out = ops.convert_to_tensor(rand(B, K, D, seed=231))
    k_mask = np.array([[True, True, True, False, False], [True] * 5])
    mask = np.broadcast_to(k_mask[:, None, :], (B, K, K))

    def loss(layer, inputs):
        if layer is ours:
            out = ours(inputs, inputs, inputs, attention_mask=mask, use_causal_mask=use_causal_mask)
        else:
            out = theirs(inputs, inputs, attention_mask=mask, use_causal_mask=use_causal_mask)
        return ops.sum(out * d_out)

    ours_x, theirs_x = keras.Variable(x), keras.Variable(x)
    np.testing.assert_allclose(
        gradient(lambda: loss(ours, ours_x), ours_x),
        gradient(lambda: loss(theirs, theirs_x), theirs_x),
        atol=1e-5,
    )
    pairs = (
        ("W_q", "_query_dense"),
        ("W_k", "_key_dense"),
        ("W_v", "_value_dense"),
        ("W_o", "_output_dense"),
    )
    for mine, their in pairs:
        for attr in ("kernel", "bias"):
            got = gradient(lambda: loss(ours, x), getattr(getattr(ours, mine), attr))
            want = gradient(lambda: loss(theirs, x), getattr(getattr(theirs, their), attr))
            np.testing.assert_allclose(
                got, want.reshape(got.shape), atol=1e-5, rtol=1e-5, err_msg=f"{mine}.{attr}"
            )


# ---------------------------------------------------------------------------
# Dropout
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["dot", "additive", "mha"])
def test_dropout_active_only_in_training(name):
    queries, keys, values = (
        rand(B, Q, D, seed=100),
        rand(B, K, D, seed=101),
        rand(B, K, D, seed=102),
    )
    if name == "dot":
        layer, reference = DotProductAttention(dropout=0.5), DotProductAttention()
        reference(queries, keys, values)
    elif name == "additive":
        layer, reference = AdditiveAttention(4, dropout=0.5), AdditiveAttention(4)
        layer(queries, keys, values)
        reference(queries, keys, values)
        reference.set_weights(layer.get_weights())
    else:
        layer = make_mha(dropout=0.5, queries=queries, keys=keys, values=values)
        reference = make_mha(queries=queries, keys=keys, values=values)
        reference.set_weights(layer.get_weights())
    expected = to_np(reference(queries, keys, values))
    np.testing.assert_allclose(
        to_np(layer(queries, keys, values, training=False)), expected, atol=1e-6
    )
    np.testing.assert_allclose(to_np(layer(queries, keys, values)), expected, atol=1e-6)
    trained = to_np(layer(queries, keys, values, training=True))
    assert not np.allclose(trained, expected, atol=1e-3)
    assert np.all(np.isfinite(trained))


# ---------------------------------------------------------------------------
# Mixed precision
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("name", ["dot", "additive", "mha", "mha_rotary"])
def test_mixed_precision_large_inputs_and_empty_rows_stay_finite(policy, name):
    queries, keys, values = (
        rand(B, Q, D, seed=110) * 30,
        rand(B, K, D, seed=111) * 30,
        rand(B, K, D, seed=112) * 30,
    )
    valid_lens = np.array([[0, 3, 5], [2, 0, 1]], "int32")
    # `out` takes the fused path where there is one, `out2` the explicit one.
    if name == "dot":
        layer = DotProductAttention(use_fused_op=True, dtype=policy)
    elif name == "additive":
        layer = AdditiveAttention(num_hiddens=4, dtype=policy)
    else:
        layer = MultiHeadAttention(
            D, H, use_bias=True, use_rotary=name == "mha_rotary", use_fused_op=True, dtype=policy
        )
    out = layer(queries, keys, values, valid_lens=valid_lens)
    out2, w = layer(queries, keys, values, valid_lens=valid_lens, return_attention_scores=True)
    assert keras.backend.standardize_dtype(out.dtype) == policy.split("_")[1]
    for t in (out, out2, w):
        assert np.all(np.isfinite(to_np(t))), f"non-finite under {policy}"
    w = to_np(w)
    if w.ndim == 4:
        w = w.transpose(0, 2, 1, 3)  # (B, Q, H, K)
    has_key = valid_lens > 0
    np.testing.assert_array_equal(w[~has_key], 0.0)
    np.testing.assert_allclose(w[has_key].sum(-1), 1.0, atol=2e-2)
    if name == "dot":
        np.testing.assert_array_equal(to_np(out)[~has_key], 0.0)


# ---------------------------------------------------------------------------
# The shared layer test
# ---------------------------------------------------------------------------


def test_dot_product_attention_layer_contract():
    queries, keys, values = (
        rand(B, Q, 4, seed=120),
        rand(B, K, 4, seed=121),
        rand(B, K, 6, seed=122),
    )
    run_layer_test(
        DotProductAttention,
        {"dropout": 0.1, "use_fused_op": True},
        [queries, keys, values],
        call_kwargs={"valid_lens": np.array([2, 5], "int32")},
        expected_output_shape=(B, Q, 6),
    )
    run_layer_test(
        DotProductAttention,
        {"use_fused_op": False},
        [queries, keys, values],
        call_kwargs={"return_attention_scores": True},
        expected_output_shape=[(B, Q, 6), (B, Q, K)],
        input_mask=np.array([[True, True, False], [True, True, True]]),
        check_fit=False,
        check_mixed_precision=False,
    )


def test_additive_attention_layer_contract():
    queries, keys, values = (
        rand(B, Q, 20, seed=123),
        rand(B, K, 2, seed=124),
        rand(B, K, 4, seed=125),
    )
    run_layer_test(
        AdditiveAttention,
        {"num_hiddens": 8, "dropout": 0.1},
        [queries, keys, values],
        call_kwargs={
            "valid_lens": np.array([[1, 2, 5], [5, 3, 0]], "int32"),
            "return_attention_scores": True,
        },
        expected_output_shape=[(B, Q, 4), (B, Q, K)],
        input_mask=np.array([[True, True, False], [True, True, True]]),
    )


def test_multi_head_attention_layer_contract():
    x = rand(B, K, D, seed=126)
    run_layer_test(
        MultiHeadAttention,
        {"num_hiddens": D, "num_heads": H, "dropout": 0.1, "use_bias": True, "use_rotary": True},
        [x, x, x],
        call_kwargs={"use_causal_mask": True, "valid_lens": np.array([3, 5], "int32")},
        expected_output_shape=(B, K, D),
        input_mask=np.array([[True, True, True, False, False], [True] * 5]),
    )
    queries, keys = rand(B, Q, 6, seed=127), rand(B, K, 5, seed=128)
    run_layer_test(
        MultiHeadAttention,
        {"num_hiddens": D, "num_heads": H, "use_fused_op": False},
        [queries, keys, keys],
        call_kwargs={"return_attention_scores": True},
        expected_output_shape=[(B, Q, D), (B, H, Q, K)],
        check_mixed_precision=False,
    )


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


def test_num_hiddens_not_divisible_by_num_heads():
    with pytest.raises(
        ValueError,
        match=r"`num_hiddens` must be divisible by `num_heads`; got num_hiddens=100, num_heads=3",
    ):
        MultiHeadAttention(num_hiddens=100, num_heads=3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"num_hiddens": 8, "num_heads": 0},
            r"`num_heads` must be a positive integer; got num_heads=0",
        ),
        (
            {"num_hiddens": 8, "num_heads": -2},
            r"`num_heads` must be a positive integer; got num_heads=-2",
        ),
        (
            {"num_hiddens": 0, "num_heads": 2},
            r"`num_hiddens` must be a positive integer; got num_hiddens=0",
        ),
        (
            {"num_hiddens": 8.0, "num_heads": 2},
            r"`num_hiddens` must be a positive integer; got num_hiddens=8.0",
        ),
        (
            {"num_hiddens": 8, "num_heads": 2, "use_bias": "yes"},
            r"`use_bias` must be True or False; got use_bias='yes'",
        ),
        (
            {"num_hiddens": 8, "num_heads": 2, "use_rotary": 1},
            r"`use_rotary` must be True or False; got use_rotary=1",
        ),
        (
            {"num_hiddens": 8, "num_heads": 2, "use_fused_op": "maybe"},
            r"`use_fused_op` must be True, False or None; got use_fused_op='maybe'",
        ),
        (
            {"num_hiddens": 8, "num_heads": 2, "rotary_max_wavelength": 0},
            r"`rotary_max_wavelength` must be a positive integer",
        ),
        (
            {"num_hiddens": 6, "num_heads": 2, "use_rotary": True},
            r"`use_rotary=True` needs an even head size `num_hiddens / num_heads`; got num_hiddens=6, num_heads=2",
        ),
    ],
)
def test_multi_head_attention_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MultiHeadAttention(**kwargs)


@pytest.mark.parametrize(
    "cls, args",
    [
        (DotProductAttention, {}),
        (AdditiveAttention, {"num_hiddens": 4}),
        (MultiHeadAttention, {"num_hiddens": 8, "num_heads": 2}),
    ],
)
@pytest.mark.parametrize(
    "dropout, message",
    [
        (1.5, r"`dropout` must be a float in \[0, 1\); got dropout=1.5"),
        (1.0, r"`dropout` must be a float in \[0, 1\); got dropout=1.0"),
        (-0.1, r"`dropout` must be a float in \[0, 1\); got dropout=-0.1"),
        ("x", r"`dropout` must be a float in \[0, 1\); got dropout='x'"),
        (True, r"`dropout` must be a float in \[0, 1\); got dropout=True"),
    ],
)
def test_bad_dropout(cls, args, dropout, message):
    with pytest.raises(ValueError, match=message):
        cls(dropout=dropout, **args)


def test_additive_attention_rejects_bad_num_hiddens():
    with pytest.raises(
        ValueError, match=r"`num_hiddens` must be a positive integer; got num_hiddens=0"
    ):
        AdditiveAttention(num_hiddens=0)


def test_dot_product_attention_rejects_bad_use_fused_op():
    with pytest.raises(
        ValueError, match=r"`use_fused_op` must be True, False or None; got use_fused_op='no'"
    ):
        DotProductAttention(use_fused_op="no")
    with pytest.raises(
        ValueError, match=r"`use_fused_op` must be True, False or None; got use_fused_op=1"
    ):
        DotProductAttention(use_fused_op=1)


def test_use_fused_op_defaults_to_none_and_round_trips():
    for layer in (DotProductAttention(), MultiHeadAttention(D, H)):
        assert layer.use_fused_op is None
        assert type(layer).from_config(layer.get_config()).use_fused_op is None


def _attention_layer(name):
    """A new layer of each of the three attention kinds by a short name."""
    if name == "dot":
        return DotProductAttention()
    return AdditiveAttention(4) if name == "additive" else MultiHeadAttention(D, H)


@pytest.mark.parametrize("name", ["dot", "additive", "mha"])
def test_keys_and_values_of_different_lengths(name):
    layer = _attention_layer(name)
    with pytest.raises(
        ValueError,
        match=r"`keys` and `values` must have the same length \(axis 1\); got keys.shape=\(2, 5, 8\), values.shape=\(2, 4, 8\)",
    ):
        layer(rand(B, Q, D), rand(B, K, D), rand(B, K - 1, D))


@pytest.mark.parametrize("name", ["dot", "additive", "mha"])
def test_keys_and_values_of_different_lengths_symbolic(name):
    layer = _attention_layer(name)
    with pytest.raises(ValueError, match=r"`keys` and `values` must have the same length"):
        layer(keras.Input((None, D)), keras.Input((5, D)), keras.Input((4, D)))


@pytest.mark.parametrize("name", ["dot", "additive", "mha"])
@pytest.mark.parametrize(
    "valid_lens, message",
    [
        (
            np.ones((B, Q, 1), "int32"),
            r"`valid_lens` must have shape \(batch,\) or \(batch, num_queries\); got shape=\(2, 3, 1\)",
        ),
        (
            np.array([1.0, 2.0], "float32"),
            r"`valid_lens` must hold integers \(the number of valid keys\); got dtype=float32",
        ),
    ],
    ids=["rank3", "float"],
)
def test_bad_valid_lens(name, valid_lens, message):
    layer = _attention_layer(name)
    with pytest.raises(ValueError, match=message):
        layer(rand(B, Q, D), rand(B, K, D), rand(B, K, D), valid_lens=valid_lens)


@pytest.mark.parametrize("name", ["dot", "additive", "mha"])
def test_valid_lens_and_masks_as_python_values(name):
    """A list or an int has no `.shape`: the static checks raised an AttributeError (and an
    IndexError for an int) before `ops.valid_lens_to_mask`, which takes them, was reached."""
    layer = _attention_layer(name)
    q, k = rand(B, Q, D), rand(B, K, D)
    np.testing.assert_allclose(
        layer(q, k, k, valid_lens=[1, 3]), layer(q, k, k, valid_lens=np.array([1, 3])), atol=ATOL
    )
    with pytest.raises(ValueError, match=r"`valid_lens` must have shape \(batch,\) or .*\(\)"):
        layer(q, k, k, valid_lens=3)
    with pytest.raises(ValueError, match=r"`queries`, `valid_lens` must have the same batch"):
        layer(q, k, k, valid_lens=[1, 2, 3])
    with pytest.raises(TypeError, match=r"`attention_mask` must be a boolean tensor or array"):
        layer(q, k, k, attention_mask=np.ones((B, Q, K), bool).tolist())
    with pytest.raises(TypeError, match=r"`keys_mask` must be a boolean tensor or array"):
        layer(q, k, k, keys_mask=[[True] * K] * B)


@pytest.mark.parametrize("name", ["dot", "additive", "mha"])
@pytest.mark.parametrize("flag", ["use_causal_mask", "return_attention_scores"])
@pytest.mark.parametrize("value", ["yes", 1, np.ones(2, bool)])
def test_flags_must_be_bools(name, flag, value):
    """A truthy string or 1 silently meant True (an array raised numpy's ambiguity error)."""
    if name == "additive" and flag == "use_causal_mask":
        pytest.skip("AdditiveAttention has no causal mask")
    layer = _attention_layer(name)
    q, k = rand(B, Q, D), rand(B, K, D)
    with pytest.raises(ValueError, match=rf"`{flag}` must be True or False"):
        layer(q, k, k, **{flag: value})


def test_cache_without_cache_update_index():
    layer = MultiHeadAttention(D, H)
    x = rand(B, 1, D)
    with pytest.raises(ValueError, match=r"`cache_update_index` is required when `cache` is given"):
        layer(x, x, x, cache=np.zeros((B, 2, 4, D), "float32"))


def test_dot_product_attention_feature_size_mismatch():
    with pytest.raises(
        ValueError,
        match=r"`queries` and `keys` must have the same feature size; got queries.shape=\(2, 3, 4\), keys.shape=\(2, 5, 3\)",
    ):
        DotProductAttention()(rand(B, Q, 4), rand(B, K, 3), rand(B, K, 6))


def test_dot_product_attention_rank_mismatch():
    with pytest.raises(
        ValueError, match=r"`queries`, `keys` and `values` must all be 3-D .* or all 4-D"
    ):
        DotProductAttention()(rand(B, Q, 4), rand(B, K, H, 4), rand(B, K, 6))


@pytest.mark.parametrize("name", ["additive", "mha"])
def test_projection_layers_need_3d_inputs(name):
    layer = {"additive": AdditiveAttention(4), "mha": MultiHeadAttention(D, H)}[name]
    with pytest.raises(
        ValueError,
        match=r"`queries` must be 3-D \(batch, length, features\); got queries.shape=\(2, 3\)",
    ):
        layer(rand(B, Q), rand(B, K, D), rand(B, K, D))


@pytest.mark.parametrize("use_bias", [False, True])
def test_multi_head_self_attention_fast_path_equals_separate_projections(use_bias):
    # mha(X, X, X) projects with one matmul of the W_q | W_k | W_v kernels;
    # a copy of X as keys and values takes W_q alone and W_k | W_v together.
    X = ops.convert_to_tensor(rand(B, Q, D, seed=7))  # a tensor: numpy arrays get converted thrice
    layer = make_mha(queries=X, keys=X, use_bias=use_bias, use_fused_op=False)
    calls = []
    project_together = layer._project_together
    layer._project_together = lambda X, denses: (
        calls.append(len(denses)) or project_together(X, denses)
    )
    mask = np.array([[True] * Q, [True] * (Q - 2) + [False] * 2])
    fast, w_fast = layer(
        X, X, X, return_attention_scores=True, queries_mask=mask, keys_mask=mask, values_mask=mask
    )
    copy = ops.convert_to_tensor(np.array(to_np(X)))
    slow, w_slow = layer(
        X,
        copy,
        copy,
        return_attention_scores=True,
        queries_mask=mask,
        keys_mask=mask,
        values_mask=mask,
    )
    assert calls == [3, 2]  # W_q|W_k|W_v for (X, X, X); W_k|W_v for (X, copy, copy)
    np.testing.assert_allclose(to_np(fast), to_np(slow), atol=1e-6, rtol=1e-6)
    np.testing.assert_allclose(to_np(w_fast), to_np(w_slow), atol=1e-6, rtol=1e-6)
    ref, _ = np_mha_d2l(
        to_np(X),
        to_np(X),
        to_np(X),
        dense_params(layer, MHA_NAMES),
        H,
        mask=mask[:, None, :] & mask[:, :, None],
    )
    np.testing.assert_allclose(to_np(fast)[mask], ref[mask], atol=ATOL)
    # The weights stay in W_q, W_k, W_v, W_o (checkpoint layout unchanged).
    assert len(layer.weights) == (8 if use_bias else 4)
    assert layer.W_q.kernel.shape == (D, D)
    calls.clear()
    separate = layer(
        X,
        copy,
        ops.convert_to_tensor(np.array(to_np(X))),
        queries_mask=mask,
        keys_mask=mask,
        values_mask=mask,
    )
    assert calls == []  # three different tensors: three projections
    np.testing.assert_allclose(to_np(separate), to_np(fast), atol=1e-6, rtol=1e-6)


# ---------------------------------------------------------------------------
# Bad inputs: batches that don't agree, valid_lens values, dtypes, shapes
# ---------------------------------------------------------------------------


def make_layer(name):
    """One layer of each kind (and path) on (B, T, D) inputs."""
    if name.startswith("dot"):
        return DotProductAttention(use_fused_op=name == "dot_fused")
    if name == "additive":
        return AdditiveAttention(4)
    return make_mha(use_fused_op=name == "mha_fused")


LAYER_NAMES = ["dot", "dot_fused", "additive", "mha", "mha_fused"]


@pytest.mark.parametrize("name", LAYER_NAMES)
@pytest.mark.parametrize("keys_batch", [1, 3])
def test_keys_and_values_of_another_batch_are_an_error_not_a_broadcast(name, keys_batch):
    layer = make_layer(name)
    queries, keys = rand(B, Q, D), rand(keys_batch, K, D)
    message = (
        "`queries`, `keys`, `values` must have the same batch size (axis 0); got "
        f"queries.shape=(2, 3, 8), keys.shape=({keys_batch}, 5, 8), values.shape=({keys_batch}, 5, 8)."
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        layer(queries, keys, keys)
    with pytest.raises(ValueError, match=re.escape("must have the same batch size")):
        layer(
            keras.Input((Q, D), batch_size=2),
            keras.Input((K, D), batch_size=keys_batch),
            keras.Input((K, D), batch_size=keys_batch),
        )


@pytest.mark.parametrize("name", LAYER_NAMES)
@pytest.mark.parametrize(
    "valid_lens",
    [np.array([2], "int32"), np.array([[1, 2, 3]], "int32"), np.array([1, 2, 3], "int32")],
    ids=["B1", "B1xQ", "B3"],
)
def test_valid_lens_of_another_batch_is_an_error_not_a_broadcast(name, valid_lens):
    layer = make_layer(name)
    message = (
        "`queries`, `valid_lens` must have the same batch size (axis 0); got "
        f"queries.shape=(2, 3, 8), valid_lens.shape={valid_lens.shape}."
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        layer(rand(B, Q, D), rand(B, K, D), rand(B, K, D), valid_lens=valid_lens)


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_valid_lens_of_another_number_of_queries(name):
    message = "`valid_lens` of shape (batch, num_queries) must have num_queries=3 columns; got valid_lens.shape=(2, 2)."
    with pytest.raises(ValueError, match=re.escape(message)):
        make_layer(name)(
            rand(B, Q, D), rand(B, K, D), rand(B, K, D), valid_lens=np.ones((B, 2), "int32")
        )


@pytest.mark.tensorflow_only(reason="tf.function with an unknown batch")
@pytest.mark.parametrize("name", LAYER_NAMES)
@pytest.mark.parametrize("bad", ["keys", "valid_lens"])
def test_batches_that_differ_at_run_time_fail_in_a_graph(name, bad):
    """Batch sizes known only at run time: an error, never a silent broadcast."""
    import tensorflow as tf

    layer = make_layer(name)
    spec = tf.TensorSpec((None, None, D), "float32")

    @tf.function(input_signature=[spec, spec, tf.TensorSpec((None,), "int32")])
    def attend(queries, keys, valid_lens):
        return layer(queries, keys, keys, valid_lens=valid_lens)

    keys = rand(1 if bad == "keys" else B, K, D)
    valid_lens = np.array([2] if bad == "valid_lens" else [2, 3], "int32")
    good = attend(rand(B, Q, D), rand(B, K, D), np.array([2, 3], "int32"))
    assert tuple(good.shape) == (B, Q, D)
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=f"{bad}_batch_must_equal_queries_batch"
    ):
        attend(rand(B, Q, D), keys, valid_lens)


@pytest.mark.parametrize("name", LAYER_NAMES)
@pytest.mark.parametrize(
    "shape", [(0, Q, D, K), (B, 0, D, K), (B, Q, D, 0)], ids=["batch0", "T0", "K0"]
)
def test_empty_inputs_still_work(name, shape):
    batch, num_queries, dim, num_keys = shape
    layer = make_layer(name)
    out = layer(
        rand(batch, num_queries, dim),
        rand(batch, num_keys, dim),
        rand(batch, num_keys, dim),
        valid_lens=np.zeros((batch,), "int32") + min(num_keys, 2),
    )
    assert tuple(out.shape) == (batch, num_queries, D)
    if num_keys == 0:  # nothing to attend to: zeros (no bias in these layers)
        np.testing.assert_array_equal(to_np(out), 0.0)


@pytest.mark.parametrize("name", LAYER_NAMES)
@pytest.mark.parametrize(
    "valid_lens", [np.array([-1, 2], "int32"), np.array([[0, 1, 2], [3, -5, 1]], "int64")]
)
def test_negative_valid_lens_are_rejected(name, valid_lens):
    message = "`valid_lens` must be in [0, num_keys=5] (a larger length means all keys are valid); got min(valid_lens)="
    with pytest.raises(ValueError, match=re.escape(message)):
        make_layer(name)(rand(B, Q, D), rand(B, K, D), rand(B, K, D), valid_lens=valid_lens)
    with pytest.raises(ValueError, match=re.escape(message)):
        make_layer(name)(
            rand(B, Q, D),
            rand(B, K, D),
            rand(B, K, D),
            valid_lens=ops.convert_to_tensor(valid_lens),
        )


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_valid_lens_past_int32_mean_all_keys_and_do_not_wrap(name):
    if keras.backend.backend() == "jax":
        pytest.skip(
            "JAX without x64 has no int64: Keras converts the array to int32 before the layer"
        )
    layer = make_layer(name)
    queries, keys = rand(B, Q, D, seed=1), rand(B, K, D, seed=2)
    huge = np.array([2**32 + 1, 2**40], "int64")  # 2**32 + 1 wraps to 1 in int32
    expected = to_np(layer(queries, keys, keys))  # every key valid
    np.testing.assert_allclose(
        to_np(layer(queries, keys, keys, valid_lens=huge)), expected, atol=ATOL
    )


@pytest.mark.tensorflow_only(reason="tf.function")
def test_valid_lens_past_int32_do_not_wrap_in_a_graph():
    import tensorflow as tf

    layer = make_layer("dot")
    queries, keys = rand(B, Q, D, seed=1), rand(B, K, D, seed=2)
    attend = tf.function(lambda q, k, vl: layer(q, k, k, valid_lens=vl))
    expected = to_np(layer(queries, keys, keys))
    out = attend(queries, keys, tf.constant([2**32 + 1, 2**33 + 2], tf.int64))
    np.testing.assert_allclose(to_np(out), expected, atol=ATOL)
    # A negative length can't be reported in a graph: it masks every key, as 0 does.
    out = attend(queries, keys, tf.constant([-(2**32) + 1, 2], tf.int64))
    np.testing.assert_allclose(to_np(out)[0], 0.0)
    np.testing.assert_allclose(
        to_np(out)[1], to_np(layer(queries, keys, keys, valid_lens=np.array([0, 2])))[1], atol=ATOL
    )


@pytest.mark.parametrize("name", LAYER_NAMES)
@pytest.mark.parametrize("which", ["queries", "keys", "values"])
def test_integer_inputs_are_a_type_error(name, which):
    inputs = {"queries": rand(B, Q, D), "keys": rand(B, K, D), "values": rand(B, K, D)}
    inputs[which] = np.ones(inputs[which].shape, "int32")
    with pytest.raises(
        TypeError, match=re.escape(f"`{which}` must be a float tensor; got {which}.dtype=int32.")
    ):
        make_layer(name)(**inputs)


@pytest.mark.parametrize("name", ["additive", "mha", "mha_fused"])
def test_inputs_of_another_size_or_rank_after_build(name):
    layer = make_layer(name)
    layer(rand(B, Q, D), rand(B, K, D), rand(B, K, D))
    with pytest.raises(
        ValueError,
        match=re.escape(
            "`keys` must have the feature size the layer was built with (8); got keys.shape=(2, 5, 6)."
        ),
    ):
        layer(rand(B, Q, D), rand(B, K, 6), rand(B, K, D))
    with pytest.raises(
        ValueError,
        match=re.escape(
            "`queries` must be 3-D (batch, length, features); got queries.shape=(2, 3)."
        ),
    ):
        layer(rand(B, Q), rand(B, K, D), rand(B, K, D))


def test_dot_product_attention_checks_shapes_on_every_call():
    layer = DotProductAttention()
    layer(rand(B, Q, D), rand(B, K, D), rand(B, K, 6))
    with pytest.raises(
        ValueError,
        match=re.escape(
            "`queries` and `keys` must have the same feature size; got queries.shape=(2, 3, 8), keys.shape=(2, 5, 4)."
        ),
    ):
        layer(rand(B, Q, D), rand(B, K, 4), rand(B, K, 6))
    with pytest.raises(
        ValueError,
        match=re.escape(
            "`queries`, `keys` and `values` must have the same number of heads (axis 2); got queries.shape=(2, 3, 2, 4), keys.shape=(2, 5, 1, 4), values.shape=(2, 5, 1, 4)."
        ),
    ):
        layer(rand(B, Q, H, 4), rand(B, K, 1, 4), rand(B, K, 1, 4))


@pytest.mark.parametrize("name", LAYER_NAMES)
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"attention_mask": np.ones((B, K, Q), bool)},
            "`attention_mask` must be broadcastable to (batch, num_queries, num_keys)=(2, 3, 5); got attention_mask.shape=(2, 5, 3).",
        ),
        (
            {"attention_mask": np.ones((3, Q, K), bool)},
            "`attention_mask` must be broadcastable to (batch, num_queries, num_keys)=(2, 3, 5); got attention_mask.shape=(3, 3, 5).",
        ),
        (
            {"attention_mask": np.ones((K,), bool)},
            "`attention_mask` must be broadcastable to (batch, num_queries, num_keys)=(2, 3, 5); got attention_mask.shape=(5,).",
        ),
        (
            {"queries_mask": np.ones((B, K), bool)},
            "`queries_mask` must have shape (batch, num_queries)=(2, 3); got queries_mask.shape=(2, 5).",
        ),
        (
            {"keys_mask": np.ones((B, Q), bool)},
            "`keys_mask` must have shape (batch, num_keys)=(2, 5); got keys_mask.shape=(2, 3).",
        ),
        (
            {"values_mask": np.ones((1, K), bool)},
            "`values_mask` must have shape (batch, num_keys)=(2, 5); got values_mask.shape=(1, 5).",
        ),
    ],
    ids=["transposed", "batch3", "rank1", "queries_mask", "keys_mask", "values_mask"],
)
def test_masks_of_the_wrong_shape(name, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make_layer(name)(rand(B, Q, D), rand(B, K, D), rand(B, K, D), **kwargs)


def test_attention_masks_that_broadcast_are_accepted():
    layer = make_layer("mha")
    queries, keys = rand(B, Q, D), rand(B, K, D)
    mask = np.tril(np.ones((Q, K), bool))
    expected = to_np(layer(queries, keys, keys, attention_mask=np.broadcast_to(mask, (B, Q, K))))
    for m in (mask, mask[None], mask[None, :, :].repeat(B, 0)):
        np.testing.assert_allclose(
            to_np(layer(queries, keys, keys, attention_mask=m)), expected, atol=ATOL
        )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"cache": np.zeros((B, 2, 4), "float32"), "cache_update_index": 0},
            "`cache` must have shape (batch, 2, cache_length, num_hiddens=8); got cache.shape=(2, 2, 4).",
        ),
        (
            {"cache": np.zeros((B, 1, 4, D), "float32"), "cache_update_index": 0},
            "`cache` must have shape (batch, 2, cache_length, num_hiddens=8); got cache.shape=(2, 1, 4, 8).",
        ),
        (
            {"cache": np.zeros((B, 2, 4, 6), "float32"), "cache_update_index": 0},
            "`cache` must have shape (batch, 2, cache_length, num_hiddens=8); got cache.shape=(2, 2, 4, 6).",
        ),
        (
            {"cache": np.zeros((1, 2, 4, D), "float32"), "cache_update_index": 0},
            "`queries`, `keys`, `values`, `cache` must have the same batch size (axis 0); got queries.shape=(2, 1, 8), keys.shape=(2, 1, 8), values.shape=(2, 1, 8), cache.shape=(1, 2, 4, 8).",
        ),
        (
            {"cache": np.zeros((B, 2, 4, D), "float32"), "cache_update_index": 4},
            "`cache_update_index` + the number of new keys must be at most the cache length 4; got cache_update_index=4, 1 new keys.",
        ),
        (
            {"cache": np.zeros((B, 2, 4, D), "float32"), "cache_update_index": -1},
            "`cache_update_index` must be a non-negative integer; got cache_update_index=-1.",
        ),
        (
            {"cache": np.zeros((B, 2, 4, D), "float32"), "cache_update_index": 1.0},
            "`cache_update_index` must be an integer or an integer scalar tensor; got cache_update_index=1.0.",
        ),
    ],
    ids=["rank3", "one_of_keys_and_values", "width", "batch", "past_end", "negative", "float"],
)
def test_bad_cache_arguments(kwargs, message):
    x = rand(B, 1, D)
    with pytest.raises(ValueError, match=re.escape(message)):
        make_mha()(x, x, x, **kwargs)


@pytest.mark.parametrize(
    "cache, shown",
    [
        ((np.zeros((B, 4, D), "float32"),) * 2, "cache=a tuple"),
        ([np.zeros((B, 4, D), "float32")] * 2, "cache=a list"),
        ({"keys": np.zeros((B, 4, D), "float32")}, "cache=a dict"),
        (np.zeros((B, 2, 4, D), "int32"), "cache.dtype=int32"),
    ],
    ids=["tuple", "list", "dict", "int"],
)
def test_a_cache_that_is_no_float_tensor_is_a_type_error(cache, shown):
    """A (keys, values) pair, as other libraries keep a cache, was an AttributeError on `.shape`."""
    x = rand(B, 1, D)
    message = f"`cache` must be a float tensor (batch, 2, cache_length, num_hiddens); got {shown}."
    with pytest.raises(TypeError, match=re.escape(message)):
        make_mha()(x, x, x, cache=cache, cache_update_index=0)


def test_cache_update_index_tensor_past_the_end_is_checked_eagerly():
    x = rand(B, 1, D)
    with pytest.raises(ValueError, match=re.escape("got cache_update_index=4, 1 new keys")):
        make_mha()(
            x,
            x,
            x,
            cache=np.zeros((B, 2, 4, D), "float32"),
            cache_update_index=ops.convert_to_tensor(4),
        )


# ---------------------------------------------------------------------------
# float16: scores that overflow 65504 stay finite, on every path
# ---------------------------------------------------------------------------


FLOAT16_PATHS = [
    "dot_explicit",
    "dot_attend",
    "dot_fused",
    "additive",
    "mha",
    "mha_explicit",
    "mha_cache",
]


def _float16_case(path, policy, scale):
    """A layer on `path` under `policy` and a loss of inputs of magnitude `scale`.

    Returns `(loss_fn, variables)`: `loss_fn()` is the float32 mean of the
    outputs (and weights; a mean, so that the kernels' own float16 gradients
    `X^T dY` stay in range, as loss scaling keeps them); `variables` the
    tensors to differentiate.
    """
    queries = keras.Variable(rand(B, Q, D, seed=130, scale=scale), name="queries")
    keys = keras.Variable(rand(B, K, D, seed=131, scale=scale), name="keys")
    if path.startswith("dot"):
        layer = DotProductAttention(use_fused_op=path == "dot_fused", dtype=policy)
        call = lambda: layer(
            queries,
            keys,
            keys,
            valid_lens=np.array([3, 5]),
            return_attention_scores=path == "dot_explicit",
        )
        variables = [queries, keys]
    elif path == "additive":
        layer = AdditiveAttention(4, dtype=policy)
        call = lambda: layer(
            queries, keys, keys, valid_lens=np.array([3, 5]), return_attention_scores=True
        )
        variables = [queries, keys]
    else:
        layer = MultiHeadAttention(
            D, H, use_bias=True, use_fused_op=None if path == "mha" else False, dtype=policy
        )
        layer(queries, keys, keys)
        randomize_weights(layer, seed=3, scale=0.3)
        if path == "mha_cache":
            cache = np.zeros((B, 2, K, D), "float32")
            call = lambda: layer(
                queries[:, :1],
                queries[:, :1],
                queries[:, :1],
                cache=cache,
                cache_update_index=0,
                use_causal_mask=True,
            )[0]
        else:
            call = lambda: layer(
                queries,
                keys,
                keys,
                use_causal_mask=True,
                return_attention_scores=path == "mha_explicit",
            )
        # The cache is for decoding: no gradients (TensorFlow has none for its update).
        variables = (
            [] if path == "mha_cache" else [layer.W_q.kernel, layer.W_k.kernel, layer.W_v.kernel]
        )

    def loss_fn():
        outputs = call()
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        return sum(ops.mean(ops.cast(t, "float32")) for t in outputs)

    return loss_fn, variables


@pytest.mark.parametrize("scale", [300.0, 1e4])
@pytest.mark.parametrize("policy", ["mixed_float16", "float16"])
@pytest.mark.parametrize("path", FLOAT16_PATHS)
def test_float16_large_inputs_give_finite_outputs_and_gradients(path, policy, scale):
    loss_fn, variables = _float16_case(path, policy, scale)
    assert np.isfinite(to_np(loss_fn())), f"non-finite output on {path} under {policy}"
    for variable in variables:
        assert np.all(np.isfinite(gradient(loss_fn, variable))), (
            f"non-finite gradient of {variable.name}"
        )


@pytest.mark.parametrize("path", ["dot_explicit", "dot_attend", "mha"])
def test_float16_attention_equals_float32_attention(path):
    """Under float16 the attention core runs in float32: same numbers, to float16 rounding."""
    loss16, _ = _float16_case(path, "mixed_float16", 1.0)
    loss32, _ = _float16_case(path, "float32", 1.0)
    np.testing.assert_allclose(to_np(loss16()), to_np(loss32()), rtol=2e-2, atol=2e-2)


def test_keras_multi_head_attention_overflows_where_ours_does_not():
    """What the float16 handling buys: Keras' own layer gives NaN at magnitude 300."""
    x = rand(B, K, D, seed=132, scale=300.0)
    ours = MultiHeadAttention(D, H, dtype="mixed_float16")
    assert np.all(np.isfinite(to_np(ours(x, x, x))))
    theirs = keras.layers.MultiHeadAttention(H, D // H, dtype="mixed_float16")
    if np.all(np.isfinite(to_np(theirs(x, x)))):
        pytest.skip("this Keras version keeps float16 attention finite at magnitude 300")


# ---------------------------------------------------------------------------
# Cross-attention over keys and values projected once
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("use_rotary", [False, True])
@pytest.mark.parametrize("use_bias", [False, True])
def test_projected_keys_values_give_the_numbers_of_projecting_each_call(use_bias, use_rotary):
    layer = make_mha(use_bias=use_bias, use_rotary=use_rotary)
    queries, keys = rand(B, Q, D, seed=300), rand(B, K, D, seed=301)
    valid_lens = np.array([2, 5], "int32")
    keys_mask = np.array([[True] * 4 + [False], [True] * 5])
    projected = layer.project_keys_values(keys)
    assert tuple(projected.shape) == (2, B, K, D)
    # Index 0 is W_k keys (rotated at positions 0.. with use_rotary), index 1 is W_v values.
    if not use_rotary:
        np.testing.assert_allclose(to_np(projected[0]), to_np(layer.W_k(keys)), atol=1e-6)
    np.testing.assert_allclose(to_np(projected[1]), to_np(layer.W_v(keys)), atol=1e-6)
    for kwargs in ({}, {"valid_lens": valid_lens}, {"keys_mask": keys_mask}):
        want_out, want_w = layer(queries, keys, keys, return_attention_scores=True, **kwargs)
        got_out, got_w = layer(
            queries,
            None,
            None,
            projected_keys_values=projected,
            return_attention_scores=True,
            **kwargs,
        )
        np.testing.assert_allclose(to_np(got_out), to_np(want_out), atol=1e-5)
        np.testing.assert_allclose(to_np(got_w), to_np(want_w), atol=1e-6)
        fast = layer(queries, keys, keys, projected_keys_values=projected, **kwargs)
        np.testing.assert_allclose(to_np(fast), to_np(want_out), atol=1e-5)


def test_projected_keys_values_of_the_wrong_shape_or_batch_are_refused():
    layer = make_mha()
    queries = rand(B, Q, D, seed=302)
    projected = layer.project_keys_values(rand(B, K, D, seed=303))
    with pytest.raises(
        ValueError,
        match=re.escape(
            "`projected_keys_values` must have shape (2, batch, num_keys, num_hiddens=8)"
        ),
    ):
        layer(queries, None, None, projected_keys_values=projected[..., :4])
    with pytest.raises(ValueError, match=re.escape("got projected_keys_values.shape=(2, 5, 8)")):
        layer(queries, None, None, projected_keys_values=projected[0])
    with pytest.raises(
        ValueError,
        match=re.escape(
            "with the batch of `queries`; got projected_keys_values.shape=(2, 1, 5, 8)"
        ),
    ):
        layer(queries, None, None, projected_keys_values=projected[:, :1])
    with pytest.raises(TypeError, match="`projected_keys_values` must be a float tensor"):
        layer(queries, None, None, projected_keys_values=np.zeros((2, B, K, D), "int32"))


@pytest.mark.parametrize(
    "make",
    [
        lambda: DotProductAttention(),
        lambda: AdditiveAttention(num_hiddens=8),
        lambda: MultiHeadAttention(num_hiddens=8, num_heads=2),
    ],
    ids=["dot", "additive", "multihead"],
)
def test_a_float_attention_mask_is_refused_not_cast(make):
    """Issue 14: an additive mask (0 allowed, -1e9 not) cast to bool means its opposite."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1, 3, 8)).astype("float32")
    causal = np.tril(np.ones((3, 3), bool))[None]
    additive = np.where(causal, 0.0, -1e9).astype("float32")
    layer = make()
    expected = ops.convert_to_numpy(layer(X, X, X, attention_mask=causal))
    with pytest.raises(TypeError, match=r'`attention_mask` must be a boolean "may attend" mask'):
        layer(X, X, X, attention_mask=additive)
    # The conversion the message gives, and integer 0/1 masks, mean what they say.
    for mask in (additive == 0, causal.astype("int32")):
        np.testing.assert_allclose(
            ops.convert_to_numpy(layer(X, X, X, attention_mask=mask)), expected, atol=1e-6
        )


@pytest.mark.parametrize("name", LAYER_NAMES)
@pytest.mark.parametrize("which", ["queries_mask", "keys_mask", "values_mask"])
def test_a_float_keras_mask_is_refused_as_attention_mask_is(name, which):
    """A float `(B, T)` mask was cast to bool: an additive one (0 kept, -1e9 dropped) then
    meant its opposite. It is a TypeError, as for `attention_mask`; bool and 0/1 work."""
    layer = make_layer(name)
    q, k = rand(B, Q, D), rand(B, K, D)
    length = Q if which == "queries_mask" else K
    keep = np.ones((B, length), bool)
    keep[0, -1] = False
    expected = to_np(layer(q, k, k, **{which: keep}))
    with pytest.raises(TypeError, match=f'`{which}` must be a boolean "may attend" mask'):
        layer(q, k, k, **{which: np.where(keep, 0.0, -1e9).astype("float32")})
    np.testing.assert_allclose(
        to_np(layer(q, k, k, **{which: keep.astype("int32")})), expected, atol=ATOL
    )


@pytest.mark.parametrize("name", LAYER_NAMES)
@pytest.mark.parametrize("which", ["queries", "keys", "values"])
def test_none_inputs_are_a_type_error_naming_them(name, which):
    """`keys=None` (Keras' own MultiHeadAttention defaults it to `value`) was an
    AttributeError on `None.dtype`."""
    inputs = {"queries": rand(B, Q, D), "keys": rand(B, K, D), "values": rand(B, K, D)}
    layer = make_layer(name)
    layer(**inputs)  # built (unbuilt, Keras' build() is missing the argument's shape)
    inputs[which] = None
    with pytest.raises(
        TypeError, match=re.escape(f"`{which}` must be a float tensor; got {which}=None.")
    ):
        layer(**inputs)
