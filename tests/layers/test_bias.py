"""Tests for `keras_attention/layers/bias.py`: ALiBi and T5's relative position bias.

References written here: the ALiBi paper's `get_slopes` (Press et al., 2022,
github.com/ofirpress/attention_with_linear_biases) and a numpy transcription
of T5's `_relative_position_bucket` (mesh_tensorflow / HF transformers'
`T5Attention`), both entry by entry.
"""

import math
import re

import numpy as np
import pytest
from keras import ops

from keras_attention.layers import ALiBi, RelativePositionBias
from keras_attention.layers.bias import (
    alibi_slopes,
    relative_position_bucket,
    relative_positions,
)

from helpers import run_layer_test


def rand(*shape, seed=0):
    return np.random.RandomState(seed).randn(*shape).astype("float32")


def to_np(x):
    return ops.convert_to_numpy(x)


# --- numpy references ---------------------------------------------------------


def paper_get_slopes(n):
    """The ALiBi paper's `get_slopes`, as published."""

    def get_slopes_power_of_2(n):
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        ratio = start
        return [start * ratio**i for i in range(n)]

    if math.log2(n).is_integer():
        return get_slopes_power_of_2(n)
    closest_power_of_2 = 2 ** math.floor(math.log2(n))
    return (
        get_slopes_power_of_2(closest_power_of_2)
        + paper_get_slopes(2 * closest_power_of_2)[0::2][: n - closest_power_of_2]
    )


def np_alibi(num_heads, num_queries, num_keys, start=0):
    slopes = paper_get_slopes(num_heads)
    out = np.zeros((1, num_heads, num_queries, num_keys))
    for h in range(num_heads):
        for i in range(num_queries):
            for j in range(num_keys):
                out[0, h, i, j] = -slopes[h] * abs(i + start - j)
    return out


def t5_relative_position_bucket(
    relative_position, bidirectional=True, num_buckets=32, max_distance=128
):
    """T5's `_relative_position_bucket` transcribed to numpy (float32 logarithm, as in T5)."""
    relative_position = np.asarray(relative_position, np.int64)
    ret = np.zeros_like(relative_position)
    n = -relative_position
    if bidirectional:
        num_buckets //= 2
        ret += (n < 0).astype(np.int64) * num_buckets
        n = np.abs(n)
    else:
        n = np.maximum(n, 0)
    max_exact = num_buckets // 2
    is_small = n < max_exact
    with np.errstate(divide="ignore", invalid="ignore"):  # log(0) where unused
        val_if_large = max_exact + (
            np.log(n.astype(np.float32) / np.float32(max_exact))
            / np.float32(math.log(max_distance / max_exact))
            * np.float32(num_buckets - max_exact)
        ).astype(np.int64)
    val_if_large = np.minimum(val_if_large, num_buckets - 1)
    ret += np.where(is_small, n, val_if_large)
    return ret


def np_t5_bias(table, num_queries, num_keys, start=0, **bucket_kwargs):
    """`table[bucket(j - p), h]` for every head, query and key, `(1, H, Q, K)`."""
    rel = np.arange(num_keys)[None, :] - (np.arange(num_queries)[:, None] + start)
    buckets = t5_relative_position_bucket(rel, **bucket_kwargs)
    return np.transpose(table[buckets], (2, 0, 1))[None]


# --- relative_positions, alibi_slopes, relative_position_bucket ---------------


def test_relative_positions_are_key_minus_query():
    got = to_np(relative_positions(2, 4, offset=1))
    np.testing.assert_array_equal(got, [[-1, 0, 1, 2], [-2, -1, 0, 1]])


@pytest.mark.parametrize("num_heads", [1, 2, 3, 4, 5, 6, 8, 12, 16, 24])
def test_alibi_slopes_equal_the_papers(num_heads):
    np.testing.assert_allclose(alibi_slopes(num_heads), paper_get_slopes(num_heads), rtol=1e-6)


def test_alibi_slopes_of_8_heads_are_powers_of_one_half():
    np.testing.assert_allclose(alibi_slopes(8), [2.0**-h for h in range(1, 9)], rtol=1e-7)


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("num_buckets, max_distance", [(32, 128), (8, 20), (16, 64), (4, 3)])
def test_relative_position_bucket_equals_t5(bidirectional, num_buckets, max_distance):
    rel = np.arange(-300, 301)
    expected = t5_relative_position_bucket(rel, bidirectional, num_buckets, max_distance)
    got = to_np(
        relative_position_bucket(rel.astype("int32"), bidirectional, num_buckets, max_distance)
    )
    np.testing.assert_array_equal(got, expected)
    assert got.min() >= 0 and got.max() < num_buckets


def test_relative_position_bucket_t5_landmarks():
    # Bidirectional, 32 buckets: 0..7 exact for earlier keys, 16..23 for later ones.
    got = to_np(relative_position_bucket(np.array([0, -1, -7, -8, 1, 7, -1000, 1000], "int32")))
    np.testing.assert_array_equal(got, [0, 1, 7, 8, 17, 23, 15, 31])
    # Causal: every later key is bucket 0.
    got = to_np(relative_position_bucket(np.array([5, 1, 0, -3], "int32"), bidirectional=False))
    np.testing.assert_array_equal(got, [0, 0, 0, 3])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_buckets": 2}, "`num_buckets` must be an integer >= 4; got num_buckets=2."),
        ({"num_buckets": 8.0}, "`num_buckets` must be an integer >= 4; got num_buckets=8.0."),
        (
            {"max_distance": 16},
            "`max_distance` must be an integer > num_buckets / 2 = 16; got max_distance=16.",
        ),
        ({"bidirectional": 1}, "`bidirectional` must be True or False; got bidirectional=1."),
    ],
)
def test_relative_position_bucket_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        relative_position_bucket(np.zeros((2,), "int32"), **kwargs)
    with pytest.raises(ValueError, match=re.escape(message)):
        RelativePositionBias(num_heads=2, **kwargs)


# --- ALiBi --------------------------------------------------------------------


@pytest.mark.parametrize("call_kwargs", [{}, {"start_index": 3}])
def test_alibi_shared_layer_checks(call_kwargs):
    run_layer_test(
        ALiBi,
        {"num_heads": 3},
        rand(2, 5, 8),
        call_kwargs=call_kwargs,
        expected_output_shape=(1, 3, 5, 5),
    )


@pytest.mark.parametrize(
    "num_heads, num_queries, num_keys, start", [(4, 5, 5, 0), (3, 1, 7, 6), (6, 2, 9, 4)]
)
def test_alibi_matches_numpy(num_heads, num_queries, num_keys, start):
    layer = ALiBi(num_heads)
    got = to_np(layer(rand(2, num_queries, 4), rand(2, num_keys, 4), start_index=start))
    np.testing.assert_allclose(got, np_alibi(num_heads, num_queries, num_keys, start), rtol=1e-6)


def test_alibi_with_offset_is_the_rows_of_the_full_bias():
    layer = ALiBi(4)
    full = to_np(layer(rand(1, 8, 4)))
    step = to_np(layer(rand(1, 2, 4), rand(1, 8, 4), start_index=ops.convert_to_tensor(5)))
    np.testing.assert_array_equal(step, full[:, :, 5:7])


def test_alibi_rejects_bad_num_heads():
    with pytest.raises(
        ValueError, match=re.escape("`num_heads` must be a positive integer; got num_heads=0.")
    ):
        ALiBi(0)


# --- RelativePositionBias (T5) ------------------------------------------------


@pytest.mark.parametrize("bidirectional", [True, False])
def test_relative_position_bias_shared_layer_checks(bidirectional):
    run_layer_test(
        RelativePositionBias,
        {"num_heads": 2, "num_buckets": 8, "max_distance": 12, "bidirectional": bidirectional},
        rand(2, 5, 8),
        expected_output_shape=(1, 2, 5, 5),
        check_fit=False,  # batch-1 output; trained through the attention in test_attention.py
    )


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("num_queries, num_keys, start", [(40, 40, 0), (3, 50, 47), (1, 200, 199)])
def test_relative_position_bias_matches_t5_numpy(bidirectional, num_queries, num_keys, start):
    layer = RelativePositionBias(num_heads=3, bidirectional=bidirectional)
    got = to_np(layer(rand(1, num_queries, 4), rand(1, num_keys, 4), start_index=start))
    table = to_np(layer.embeddings)
    expected = np_t5_bias(table, num_queries, num_keys, start, bidirectional=bidirectional)
    assert got.shape == (1, 3, num_queries, num_keys)
    np.testing.assert_array_equal(got, expected)


def test_relative_position_bias_table_shape_and_round_trip_of_weights():
    layer = RelativePositionBias(num_heads=4, num_buckets=16, max_distance=32)
    layer(rand(1, 3, 4))
    assert tuple(layer.embeddings.shape) == (16, 4)
    clone = RelativePositionBias.from_config(layer.get_config())
    clone(rand(1, 3, 4))
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(to_np(clone(rand(1, 6, 4))), to_np(layer(rand(1, 6, 4))))


@pytest.mark.parametrize("cls, kwargs", [(ALiBi, {}), (RelativePositionBias, {})])
def test_bias_layers_reject_rank_1_queries(cls, kwargs):
    with pytest.raises(ValueError, match=re.escape("`queries` must have rank >= 2")):
        cls(2, **kwargs)(np.zeros((3,), "float32"))
