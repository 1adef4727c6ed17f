"""Tests for the attention variants of `keras_attention/layers/attention.py`.

Sliding windows (`window=`), grouped-query and multi-query attention
(`num_kv_heads=`), additive position biases (`bias=`, `position_bias=`:
ALiBi and T5's), QK normalisation (`qk_norm=`) and logit soft-capping
(`logit_softcap=`), each checked against a numpy reference written here
(weights included, `return_attention_scores`), against Keras'
`GroupQueryAttention` with copied weights, and for the promises every
attention layer keeps: padding invariance, no causal leak, incremental
decoding with a cache equal to the full pass, mixed precision without NaN,
and a `.keras` round trip.
"""

import re

import keras
import numpy as np
import pytest
from keras import ops

from keras_attention import ops as ka_ops
from keras_attention.layers import (
    ALiBi,
    DotProductAttention,
    MultiHeadAttention,
    RelativePositionBias,
)
from tests.layers.test_attention import (
    dense_params,
    np_dense,
    np_masked_softmax,
    rand,
    randomize_weights,
    to_np,
)
from tests.layers.test_attention_paths import taken  # noqa: F401  (the path spy fixture)
from tests.layers.test_bias import np_alibi, np_t5_bias

from helpers import gradient, run_layer_test

# One-step self-attention (a single key) is expected while decoding.
pytestmark = pytest.mark.filterwarnings("ignore:You are using a softmax over axis")

ATOL = 1e-5
B, T, D, H = 2, 6, 16, 4  # batch, length, num_hiddens, heads
EPSILON = 1e-6  # of qk_norm


# ---------------------------------------------------------------------------
# numpy references
# ---------------------------------------------------------------------------


def np_window(num_queries, num_keys, window, offset=0, causal=True):
    rows = np.arange(num_queries)[:, None] + offset
    cols = np.arange(num_keys)[None, :]
    return (rows - window < cols) & (cols <= rows) if causal else np.abs(rows - cols) < window


def np_qk_norm(x, kind, scale, center=None):
    """Per head over the last axis: RMS norm or layer norm, learned scale (and centre)."""
    if kind == "rms":
        return x / np.sqrt(np.mean(x**2, -1, keepdims=True) + EPSILON) * scale
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + EPSILON) * scale + center


def np_heads_attention(q, k, v, allowed, bias=None, softcap=None):
    """q `(B, Q, H, d)`, k and v `(B, K, G, d)` with `H / G` query heads per kv head.

    Query head `h` uses kv head `h // (H / G)`. Scores `q k^T / sqrt(d)`,
    soft-capped `cap tanh(s / cap)`, plus the bias, masked softmax.
    Returns `(B, Q, H, d)` and the weights `(B, H, Q, K)`.
    """
    q, k, v = (np.asarray(t, np.float64) for t in (q, k, v))
    group = q.shape[2] // k.shape[2]
    k, v = np.repeat(k, group, axis=2), np.repeat(v, group, axis=2)
    scores = np.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(q.shape[-1])
    if softcap is not None:
        scores = softcap * np.tanh(scores / softcap)
    if bias is not None:
        scores = scores + bias
    weights = np_masked_softmax(scores, np.broadcast_to(allowed, scores.shape))
    return np.einsum("bhqk,bkhd->bqhd", weights, v), weights


def np_mha(layer, queries, keys, allowed, bias=None, causal=False):
    """`MultiHeadAttention` with its variants, from the layer's weights (self or cross)."""
    params = dense_params(layer, ("W_q", "W_k", "W_v", "W_o"))
    heads, kv_heads = layer.num_heads, layer.num_kv_heads
    q = np_dense(queries, params["W_q"]).reshape(queries.shape[0], queries.shape[1], heads, -1)
    k = np_dense(keys, params["W_k"]).reshape(keys.shape[0], keys.shape[1], kv_heads, -1)
    v = np_dense(keys, params["W_v"]).reshape(keys.shape[0], keys.shape[1], kv_heads, -1)
    if layer.qk_norm is not None:
        for name, x in (("q_norm", q), ("k_norm", k)):
            norm = getattr(layer, name)
            weights = [ops.convert_to_numpy(w).astype(np.float64) for w in norm.weights]
            out = np_qk_norm(x, layer.qk_norm, *weights)
            q, k = (out, k) if name == "q_norm" else (q, out)
    if layer.position_bias == "alibi":
        bias = np_alibi(heads, queries.shape[1], keys.shape[1])
    elif layer.position_bias == "t5":
        table = ops.convert_to_numpy(layer.relative_bias.embeddings).astype(np.float64)
        bias = np_t5_bias(table, queries.shape[1], keys.shape[1], bidirectional=not causal)
    out, weights = np_heads_attention(q, k, v, allowed, bias, layer.logit_softcap)
    out = out.reshape(out.shape[0], out.shape[1], -1)
    return np_dense(out, params["W_o"]), weights


def make_mha(seed=0, num_hiddens=D, num_heads=H, **kwargs):
    layer = MultiHeadAttention(num_hiddens, num_heads, **kwargs)
    x = rand(B, T, num_hiddens, seed=100)
    layer(x, x, x)
    randomize_weights(layer, seed)
    return layer


# Each variant alone and some together, as MultiHeadAttention arguments.
VARIANTS = {
    "window": {"window": 3},
    "gqa": {"num_kv_heads": 2},
    "mqa": {"num_kv_heads": 1},
    "alibi": {"position_bias": "alibi"},
    "t5": {"position_bias": "t5"},
    "qk_rms": {"qk_norm": "rms"},
    "qk_layer": {"qk_norm": "layer"},
    "softcap": {"logit_softcap": 2.0},
    "all": {
        "window": 2,
        "num_kv_heads": 2,
        "position_bias": "alibi",
        "qk_norm": "rms",
        "logit_softcap": 5.0,
    },
}


# ---------------------------------------------------------------------------
# MultiHeadAttention variants against numpy, weights included
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("use_fused_op", [False, True])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_matches_numpy(variant, causal, use_fused_op):
    layer = make_mha(use_bias=True, use_fused_op=use_fused_op, **VARIANTS[variant])
    x = rand(B, T, D, seed=1)
    valid_lens = np.array([4, 6], "int32")
    allowed = np.arange(T)[None, None, :] < valid_lens[:, None, None]  # (B, 1, K)
    if causal:
        allowed = allowed & np.tril(np.ones((T, T), bool))
    if layer.window is not None:
        allowed = allowed & np_window(T, T, layer.window, causal=causal)
    allowed = allowed[:, None]  # (B, 1, Q, K)
    ref_out, ref_w = np_mha(layer, x, x, allowed, causal=causal)
    kwargs = {"valid_lens": valid_lens, "use_causal_mask": causal}
    out, weights = layer(x, x, x, return_attention_scores=True, **kwargs)
    np.testing.assert_allclose(to_np(out), ref_out, atol=ATOL)
    np.testing.assert_allclose(to_np(weights), ref_w, atol=ATOL)
    # Without the weights: the fused kernel where the variant allows it.
    np.testing.assert_allclose(to_np(layer(x, x, x, **kwargs)), ref_out, atol=ATOL)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_layer_contract(variant):
    x = rand(B, T, D, seed=2)
    run_layer_test(
        MultiHeadAttention,
        {"num_hiddens": D, "num_heads": H, "use_bias": True, "dropout": 0.1, **VARIANTS[variant]},
        [x, x, x],
        call_kwargs={"use_causal_mask": True, "valid_lens": np.array([3, 6], "int32")},
        expected_output_shape=(B, T, D),
        input_mask=np.array([[True] * 4 + [False] * 2, [True] * 6]),
    )


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_padding_past_valid_lens_does_not_change_outputs(variant):
    layer = make_mha(use_bias=True, **VARIANTS[variant])
    queries, keys = rand(B, 3, D, seed=3), rand(B, T, D, seed=4)
    valid_lens = np.array([2, 4], "int32")
    keys2 = keys.copy()
    for b, n in enumerate(valid_lens):
        keys2[b, n:] = rand(T - n, D, seed=5 + b, scale=10.0)
    a, wa = layer(queries, keys, keys, valid_lens=valid_lens, return_attention_scores=True)
    c, wc = layer(queries, keys2, keys2, valid_lens=valid_lens, return_attention_scores=True)
    np.testing.assert_allclose(to_np(c), to_np(a), atol=1e-6)
    np.testing.assert_allclose(to_np(wc), to_np(wa), atol=1e-6)
    assert np.all(to_np(wa)[0, :, :, 2:] == 0)


@pytest.mark.parametrize("use_fused_op", [False, True])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_causal_mask_no_leak_from_later_tokens(variant, use_fused_op):
    layer = make_mha(use_bias=True, use_rotary=True, use_fused_op=use_fused_op, **VARIANTS[variant])
    x = rand(B, T, D, seed=6)
    base = to_np(layer(x, x, x, use_causal_mask=True))
    for t in range(1, T):
        x2 = x.copy()
        x2[:, t:] = rand(B, T - t, D, seed=7 + t, scale=5.0)
        out = to_np(layer(x2, x2, x2, use_causal_mask=True))
        np.testing.assert_allclose(out[:, :t], base[:, :t], atol=1e-6)
        assert not np.allclose(out[:, t], base[:, t], atol=1e-3)


@pytest.mark.parametrize("use_fused_op", [False, True])
@pytest.mark.parametrize("chunks", [(1,) * T, (3, 1, 2)], ids=["steps", "chunks"])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_incremental_decoding_equals_full_causal_pass(variant, chunks, use_fused_op):
    layer = make_mha(use_bias=True, use_rotary=True, use_fused_op=use_fused_op, **VARIANTS[variant])
    x = rand(B, T, D, seed=8)
    full, full_w = layer(x, x, x, use_causal_mask=True, return_attention_scores=True)
    width = layer.num_kv_heads * (D // H)
    cache = ops.zeros((B, 2, T + 1, width))  # only the kv heads are cached
    outs, start = [], 0
    for n in chunks:
        step = x[:, start : start + n]
        out, weights, cache = layer(
            step,
            step,
            step,
            use_causal_mask=True,
            cache=cache,
            cache_update_index=start,
            return_attention_scores=True,
        )
        assert tuple(cache.shape) == (B, 2, T + 1, width)
        np.testing.assert_allclose(
            to_np(weights)[..., :T], to_np(full_w)[:, :, start : start + n], atol=ATOL
        )
        assert np.all(to_np(weights)[..., T:] == 0)
        outs.append(to_np(out))
        start += n
    np.testing.assert_allclose(np.concatenate(outs, axis=1), to_np(full), atol=ATOL)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_mixed_precision_large_inputs_and_empty_rows_stay_finite(variant, policy):
    layer = MultiHeadAttention(D, H, use_bias=True, dtype=policy, **VARIANTS[variant])
    x = rand(B, T, D, seed=9, scale=300.0)
    out, weights = layer(
        x,
        x,
        x,
        valid_lens=np.array([0, 6], "int32"),
        use_causal_mask=True,
        return_attention_scores=True,
    )
    assert np.all(np.isfinite(to_np(out))) and np.all(np.isfinite(to_np(weights)))
    assert np.all(to_np(weights)[0] == 0)  # no valid key: zero weights
    assert np.all(np.isfinite(to_np(layer(x, x, x, use_causal_mask=True))))


# ---------------------------------------------------------------------------
# Sliding window
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("use_fused_op", [False, True])
def test_window_output_does_not_depend_on_keys_outside_the_window(use_fused_op):
    window = 3
    layer = make_mha(window=window, use_fused_op=use_fused_op)
    x = rand(B, T, D, seed=10)
    base = to_np(layer(x, x, x, use_causal_mask=True))
    # Changing position 0 changes only the queries that see it: 0 .. window - 1.
    x2 = x.copy()
    x2[:, 0] += 5.0
    out = to_np(layer(x2, x2, x2, use_causal_mask=True))
    np.testing.assert_allclose(out[:, window:], base[:, window:], atol=1e-6)
    assert not np.allclose(out[:, window - 1], base[:, window - 1], atol=1e-3)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("heads", [False, True])
def test_dot_product_attention_window_and_softcap_match_numpy(causal, heads):
    q, k, v = rand(B, 5, 2, 4, seed=11), rand(B, 5, 2, 4, seed=12), rand(B, 5, 2, 4, seed=13)
    if not heads:
        q, k, v = q[:, :, 0], k[:, :, 0], v[:, :, 0]
    layer = DotProductAttention(window=2, logit_softcap=1.5)
    out, weights = layer(q, k, v, use_causal_mask=causal, return_attention_scores=True)
    allowed = np_window(5, 5, 2, causal=causal)
    expand = (lambda t: t) if heads else (lambda t: t[:, :, None])
    ref_out, ref_w = np_heads_attention(expand(q), expand(k), expand(v), allowed, softcap=1.5)
    if not heads:
        ref_out, ref_w = ref_out[:, :, 0], ref_w[:, 0]
    np.testing.assert_allclose(to_np(out), ref_out, atol=ATOL)
    np.testing.assert_allclose(to_np(weights), ref_w, atol=ATOL)


def test_dot_product_attention_variants_layer_contract():
    q, k, v = rand(B, 3, 4, seed=14), rand(B, 5, 4, seed=15), rand(B, 5, 4, seed=16)
    run_layer_test(
        DotProductAttention,
        {"window": 2, "logit_softcap": 3.0},
        [q, k, v],
        call_kwargs={"use_causal_mask": True, "valid_lens": np.array([2, 5], "int32")},
        expected_output_shape=(B, 3, 4),
    )


# ---------------------------------------------------------------------------
# Grouped-query attention against keras.layers.GroupQueryAttention
# ---------------------------------------------------------------------------


def keras_gqa_pair(num_kv_heads, use_bias, sliding_window=None, seed=0):
    """Keras' GroupQueryAttention with random weights, and ours carrying the same weights.

    Keras keeps heads on their own kernel axis: query `(D_in, H, d)`,
    key/value `(D_in, G, d)`, output `(H, d, D)`; ours flattens them to
    `(D_in, H d)`, `(D_in, G d)`, `(H d, D)` in the same (head-major) order,
    and both give query head `h` the kv head `h // (H / G)` (`ops.repeat`).
    """
    head_dim = D // H
    theirs = keras.layers.GroupQueryAttention(
        head_dim=head_dim,
        num_query_heads=H,
        num_key_value_heads=num_kv_heads,
        use_bias=use_bias,
        sliding_window=sliding_window,
    )
    x = rand(B, T, D, seed=20)
    theirs(x, x)
    randomize_weights(theirs, seed)
    ours = MultiHeadAttention(
        D, H, num_kv_heads=num_kv_heads, use_bias=use_bias, window=sliding_window
    )
    ours(x, x, x)
    by_name = {"/".join(w.path.split("/")[-2:]): ops.convert_to_numpy(w) for w in theirs.weights}
    for mine, their, heads in (
        ("W_q", "query", H),
        ("W_k", "key", num_kv_heads),
        ("W_v", "value", num_kv_heads),
    ):
        kernel = by_name[f"{their}/kernel"]
        assert kernel.shape == (D, heads, head_dim)
        getattr(ours, mine).kernel.assign(kernel.reshape(D, -1))
        if use_bias:
            getattr(ours, mine).bias.assign(by_name[f"{their}/bias"].reshape(-1))
    ours.W_o.kernel.assign(by_name["attention_output/kernel"].reshape(H * head_dim, D))
    if use_bias:
        ours.W_o.bias.assign(by_name["attention_output/bias"])
    return ours, theirs


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("sliding_window", [None, 3])
@pytest.mark.parametrize("num_kv_heads, use_bias", [(1, True), (2, False), (2, True), (4, True)])
def test_grouped_query_attention_equals_keras(num_kv_heads, use_bias, sliding_window, causal):
    ours, theirs = keras_gqa_pair(num_kv_heads, use_bias, sliding_window)
    queries, keys = rand(B, T, D, seed=21), rand(B, T, D, seed=22)
    out, weights = ours(queries, keys, keys, use_causal_mask=causal, return_attention_scores=True)
    ref, ref_w = theirs(queries, keys, use_causal_mask=causal, return_attention_scores=True)
    np.testing.assert_allclose(to_np(out), to_np(ref), atol=ATOL)
    np.testing.assert_allclose(to_np(weights), to_np(ref_w), atol=ATOL)
    np.testing.assert_allclose(
        to_np(ours(queries, keys, keys, use_causal_mask=causal)), to_np(ref), atol=ATOL
    )


def test_grouped_query_projections_and_cache_hold_only_the_kv_heads():
    layer = make_mha(num_kv_heads=2)
    assert tuple(layer.W_q.kernel.shape) == (D, D)
    assert tuple(layer.W_k.kernel.shape) == tuple(layer.W_v.kernel.shape) == (D, 2 * D // H)
    assert layer.kv_hiddens == 2 * D // H
    x = rand(B, 1, D, seed=23)
    _, cache = layer(x, x, x, cache=ops.zeros((B, 2, 4, layer.kv_hiddens)), cache_update_index=0)
    assert tuple(cache.shape) == (B, 2, 4, D // 2)
    with pytest.raises(
        ValueError,
        match=re.escape("`cache` must have shape (batch, 2, cache_length, kv_hiddens=8)"),
    ):
        layer(x, x, x, cache=ops.zeros((B, 2, 4, D)), cache_update_index=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"num_kv_heads": 3},
            "`num_heads` must be divisible by `num_kv_heads`; got num_heads=4, num_kv_heads=3.",
        ),
        (
            {"num_kv_heads": 0},
            "`num_kv_heads` must be None or a positive integer; got num_kv_heads=0.",
        ),
        (
            {"num_kv_heads": 8},
            "`num_heads` must be divisible by `num_kv_heads`; got num_heads=4, num_kv_heads=8.",
        ),
        ({"window": 0}, "`window` must be None or a positive integer; got window=0."),
        ({"window": 2.5}, "`window` must be None or a positive integer; got window=2.5."),
        ({"qk_norm": "l2"}, "`qk_norm` must be None or one of ['layer', 'rms']; got qk_norm='l2'."),
        (
            {"logit_softcap": 0.0},
            "`logit_softcap` must be None or a positive finite number; got logit_softcap=0.0.",
        ),
        (
            {"position_bias": "rope"},
            "`position_bias` must be None or one of ['alibi', 't5']; got position_bias='rope'.",
        ),
        (
            {"rotary_scaling": "dynamic"},
            "`rotary_scaling` must be None or one of ['linear', 'ntk', 'yarn']; got rotary_scaling='dynamic'.",
        ),
    ],
)
def test_variant_arguments_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        MultiHeadAttention(D, H, **kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"window": -1}, "`window` must be None or a positive integer; got window=-1."),
        (
            {"logit_softcap": float("inf")},
            "`logit_softcap` must be None or a positive finite number; got logit_softcap=inf.",
        ),
    ],
)
def test_dot_product_attention_variant_arguments_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        DotProductAttention(**kwargs)


# ---------------------------------------------------------------------------
# Additive biases: `bias=`, ALiBi and T5
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("use_fused_op", [False, True])
@pytest.mark.parametrize("heads", [False, True])
def test_dot_product_attention_bias_matches_numpy_and_masked_keys_stay_masked(heads, use_fused_op):
    q, k, v = rand(B, 3, 2, 4, seed=30), rand(B, 5, 2, 4, seed=31), rand(B, 5, 2, 4, seed=32)
    bias = rand(1, 2, 3, 5, seed=33, scale=2.0)
    bias[..., 4] = 1e4  # a huge bias on a key that valid_lens masks
    valid_lens = np.array([4, 4], "int32")
    allowed = (np.arange(5) < 4)[None, None, None, :]
    if not heads:
        q, k, v, bias = q[:, :, 0], k[:, :, 0], v[:, :, 0], bias[:, 0]
    layer = DotProductAttention(use_fused_op=use_fused_op)
    out, weights = layer(q, k, v, valid_lens=valid_lens, bias=bias, return_attention_scores=True)
    expand = (lambda t: t) if heads else (lambda t: t[:, :, None])
    ref_out, ref_w = np_heads_attention(
        expand(q), expand(k), expand(v), allowed, bias=bias if heads else bias[:, None]
    )
    if not heads:
        ref_out, ref_w = ref_out[:, :, 0], ref_w[:, 0]
    np.testing.assert_allclose(to_np(weights), ref_w, atol=ATOL)
    np.testing.assert_allclose(to_np(out), ref_out, atol=ATOL)
    assert np.all(to_np(weights)[..., 4] == 0)
    np.testing.assert_allclose(
        to_np(layer(q, k, v, valid_lens=valid_lens, bias=bias)), ref_out, atol=ATOL
    )


def test_multi_head_attention_bias_argument_equals_alibi_option():
    with_option = make_mha(position_bias="alibi")
    plain = MultiHeadAttention(D, H)
    x = rand(B, T, D, seed=34)
    plain(x, x, x)
    plain.set_weights(with_option.get_weights())
    bias = ALiBi(H)(x)
    np.testing.assert_allclose(
        to_np(plain(x, x, x, use_causal_mask=True, bias=bias)),
        to_np(with_option(x, x, x, use_causal_mask=True)),
        atol=1e-6,
    )
    # Not the same as no bias.
    assert not np.allclose(
        to_np(plain(x, x, x, use_causal_mask=True)),
        to_np(with_option(x, x, x, use_causal_mask=True)),
    )


@pytest.mark.parametrize("causal", [True, False])
def test_t5_position_bias_matches_numpy(causal):
    layer = make_mha(position_bias="t5")
    assert isinstance(layer.relative_bias, RelativePositionBias)
    x = rand(B, T, D, seed=35)
    table = to_np(layer.relative_bias.embeddings)
    bias = np_t5_bias(table, T, T, bidirectional=not causal)
    allowed = np.tril(np.ones((T, T), bool)) if causal else np.ones((T, T), bool)
    ref_out, ref_w = np_mha(layer, x, x, allowed, bias=bias)
    out, weights = layer(x, x, x, use_causal_mask=causal, return_attention_scores=True)
    np.testing.assert_allclose(to_np(weights), ref_w, atol=ATOL)
    np.testing.assert_allclose(to_np(out), ref_out, atol=ATOL)


def test_t5_position_bias_is_trained():
    layer = make_mha(position_bias="t5")
    x = rand(B, T, D, seed=36)
    grad = gradient(
        lambda: ops.sum(layer(x, x, x, use_causal_mask=True) ** 2), layer.relative_bias.embeddings
    )
    assert np.any(grad != 0)
    # Causal buckets of distances 0 .. T - 1 are 0 .. T - 1 (exact); the others are unused.
    assert np.all(grad[T:] == 0)


# ---------------------------------------------------------------------------
# QK normalisation, soft-capping and rotary scaling
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("qk_norm, names", [("rms", ["scale"]), ("layer", ["gamma", "beta"])])
def test_qk_norm_weights_are_per_head_size(qk_norm, names):
    layer = make_mha(qk_norm=qk_norm)
    for norm in (layer.q_norm, layer.k_norm):
        assert sorted(w.name for w in norm.weights) == sorted(names)
        assert all(tuple(w.shape) == (D // H,) for w in norm.weights)


def test_qk_norm_makes_scores_independent_of_the_input_scale():
    layer = make_mha(qk_norm="rms")
    x = rand(B, T, D, seed=37)
    _, small = layer(x, x, x, return_attention_scores=True)
    _, large = layer(100.0 * x, 100.0 * x, 100.0 * x, return_attention_scores=True)
    np.testing.assert_allclose(to_np(large), to_np(small), atol=1e-4)


def test_logit_softcap_bounds_the_logits():
    cap = 1.0
    layer = DotProductAttention(logit_softcap=cap)
    q, k, v = (
        rand(1, 2, 8, seed=38, scale=50.0),
        rand(1, 4, 8, seed=39, scale=50.0),
        rand(1, 4, 8, seed=40),
    )
    _, weights = layer(q, k, v, return_attention_scores=True)
    # Logits in (-cap, cap): no weight ratio above e^(2 cap).
    w = to_np(weights)
    assert w.max(-1).min() / w.min(-1).min() <= np.exp(2 * cap) * (1 + 1e-5)


@pytest.mark.parametrize("rotary_scaling", ["linear", "ntk", "yarn"])
def test_multi_head_attention_passes_rotary_scaling_on(rotary_scaling):
    original = 4 if rotary_scaling == "yarn" else None
    layer = make_mha(
        use_rotary=True,
        rotary_scaling=rotary_scaling,
        rotary_scaling_factor=4.0,
        rotary_original_max_len=original,
    )
    assert layer.rotary.scaling == rotary_scaling and layer.rotary.scaling_factor == 4.0
    assert layer.rotary.original_max_len == original
    plain = make_mha(use_rotary=True)
    x = rand(B, T, D, seed=41)
    assert not np.allclose(to_np(layer(x, x, x)), to_np(plain(x, x, x)))
    config = layer.get_config()
    assert config["rotary_scaling"] == rotary_scaling and config["rotary_scaling_factor"] == 4.0
    assert config["rotary_original_max_len"] == original


def test_yarn_needs_the_trained_length():
    with pytest.raises(ValueError, match=re.escape("`scaling='yarn'` needs `original_max_len`")):
        MultiHeadAttention(D, H, use_rotary=True, rotary_scaling="yarn", rotary_scaling_factor=2.0)


def test_window_mask_is_the_ops_one():
    # MultiHeadAttention's weights with a window are zero exactly where ops.window_mask is False.
    layer = make_mha(window=2)
    x = rand(1, T, D, seed=42)
    _, weights = layer(x, x, x, use_causal_mask=True, return_attention_scores=True)
    allowed = to_np(ka_ops.window_mask(T, T, 2))
    assert np.all(to_np(weights)[0][:, ~allowed.astype(bool)] == 0)
    assert np.all(to_np(weights)[0][:, allowed.astype(bool)] > 0)


# ---------------------------------------------------------------------------
# Which attention path each variant takes (the docstrings' statement)
# ---------------------------------------------------------------------------

FAST_MASKED = {"tensorflow": "hand_gradient", "jax": "fused", "torch": "fused"}
FAST_CAUSAL = {"tensorflow": "hand_gradient", "jax": "fused_causal", "torch": "fused_causal"}
REFERENCE = {"tensorflow": "reference", "jax": "reference", "torch": "reference"}
# variant -> path of a causal self-attention in inference, by backend
VARIANT_PATHS = {
    "window": FAST_MASKED,  # a window is a mask: the kernel in its masked form
    "gqa": FAST_CAUSAL,  # kv heads repeated, then the same kernel
    "mqa": FAST_CAUSAL,
    "qk_rms": FAST_CAUSAL,  # normalised before the kernel
    "qk_layer": FAST_CAUSAL,
    "alibi": REFERENCE,  # an additive bias needs the scores
    "t5": REFERENCE,
    "softcap": REFERENCE,  # so does soft-capping
    "all": REFERENCE,
}


@pytest.mark.parametrize("variant", sorted(VARIANT_PATHS))
def test_each_variant_takes_the_stated_path_here(taken, variant):  # noqa: F811
    layer = make_mha(**VARIANTS[variant])
    x = rand(B, T, D, seed=50)
    taken.clear()  # the build's call
    layer(x, x, x, use_causal_mask=True)
    assert taken == [VARIANT_PATHS[variant][keras.backend.backend()]]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_keys_values_projected_once_equal_the_projecting_call(variant):
    """Cross-attention while decoding: `project_keys_values` then `projected_keys_values`."""
    layer = make_mha(use_bias=True, use_rotary=True, **VARIANTS[variant])
    queries, keys = rand(B, 3, D, seed=51), rand(B, T, D, seed=52)
    valid_lens = np.array([4, 6], "int32")
    projected = layer.project_keys_values(keys)
    assert tuple(projected.shape) == (2, B, T, layer.kv_hiddens)
    out, weights = layer(
        queries,
        None,
        None,
        valid_lens=valid_lens,
        projected_keys_values=projected,
        return_attention_scores=True,
    )
    ref, ref_w = layer(queries, keys, keys, valid_lens=valid_lens, return_attention_scores=True)
    np.testing.assert_allclose(to_np(out), to_np(ref), atol=ATOL)
    np.testing.assert_allclose(to_np(weights), to_np(ref_w), atol=ATOL)


@pytest.mark.parametrize("bias_layer", ["alibi", "t5"])
def test_a_bias_layer_shared_by_two_blocks_in_a_functional_model_saves_and_loads(
    bias_layer, tmp_path
):
    """As a builder would: one bias computed once, added in every block (T5's way)."""
    from keras_attention.layers import GPTBlock

    X = keras.Input(shape=(None, D))
    shared = (
        ALiBi(H, name="bias")
        if bias_layer == "alibi"
        else RelativePositionBias(H, bidirectional=False, name="bias")
    )
    bias = shared(X)
    assert tuple(bias.shape) == (1, H, None, None)
    Y = GPTBlock(D, 2 * D, H, 0.0, name="block_0")(X, bias=bias)
    Y = GPTBlock(D, 2 * D, H, 0.0, name="block_1")(Y, bias=bias)
    model = keras.Model(X, Y)
    x = rand(B, T, D, seed=60)
    out = to_np(model(x))
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(to_np(restored(x)), out)
    # The bias is the layer's, added before the softmax: no bias gives other outputs.
    plain = GPTBlock(D, 2 * D, H, 0.0)
    plain(x)
    plain.set_weights(model.get_layer("block_0").get_weights())
    biased = model.get_layer("block_0")(x, bias=shared(x))
    assert not np.allclose(to_np(plain(x)), to_np(biased), atol=1e-4)
    # And causal: later positions do not leak through the shared bias.
    x2 = x.copy()
    x2[:, 4:] = rand(B, T - 4, D, seed=61, scale=3.0)
    np.testing.assert_allclose(to_np(model(x2))[:, :4], out[:, :4], atol=1e-5)
