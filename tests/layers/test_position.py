import re

import keras
import numpy as np
import pytest
from keras import ops

from keras_attention.layers import (
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
)
from keras_attention.layers.position import sinusoidal_encoding

from helpers import gradient, mask_from, run_layer_test

MASK = np.array([[True, True, True, False, False], [True, True, False, False, False]])


def np_P(max_len, d):
    """D2L's P matrix, written out entry by entry."""
    P = np.zeros((max_len, d))
    for i in range(max_len):
        for col in range(d):
            j = col // 2
            angle = i / 10000 ** (2 * j / d)
            P[i, col] = np.sin(angle) if col % 2 == 0 else np.cos(angle)
    return P


def np_rotary(x, start_index=0, max_wavelength=10000, scaling_factor=1.0, scaling=None):
    """RoPE, rotate-half convention, on x of shape (B, T, ..., D).

    Scaling: linear interpolation divides positions by the factor; NTK-aware
    scaling multiplies the base by factor ** (D / (D - 2)) (bloc97's formula).
    """
    x = np.asarray(x, np.float64)
    T, D = x.shape[1], x.shape[-1]
    base, divisor = max_wavelength, scaling_factor
    if scaling == "ntk":
        base, divisor = max_wavelength * scaling_factor ** (D / (D - 2)), 1.0
    inv_freq = 1.0 / base ** (np.arange(0, D, 2) / D)
    pos = (np.arange(T) + start_index) / divisor
    ang = np.concatenate([np.outer(pos, inv_freq)] * 2, axis=-1)  # (T, D)
    ang = ang.reshape((1, T) + (1,) * (x.ndim - 3) + (D,))
    x1, x2 = x[..., : D // 2], x[..., D // 2 :]
    return x * np.cos(ang) + np.concatenate([-x2, x1], -1) * np.sin(ang)


def hf_yarn_inv_freq(
    dim, base, factor, original_max_position_embeddings, beta_fast=32, beta_slow=1
):
    """transformers' `_compute_yarn_parameters` (rope_type="yarn"), transcribed to numpy."""
    import math

    def find_correction_dim(num_rotations, dim, base, max_position_embeddings):
        return (dim * math.log(max_position_embeddings / (num_rotations * 2 * math.pi))) / (
            2 * math.log(base)
        )

    def find_correction_range(low_rot, high_rot, dim, base, max_position_embeddings):
        low = math.floor(find_correction_dim(low_rot, dim, base, max_position_embeddings))
        high = math.ceil(find_correction_dim(high_rot, dim, base, max_position_embeddings))
        return max(low, 0), min(high, dim - 1)

    def linear_ramp_factor(min, max, dim):
        if min == max:
            max += 0.001
        linear_func = (np.arange(dim, dtype=np.float32) - min) / (max - min)
        return np.clip(linear_func, 0, 1)

    pos_freqs = base ** (np.arange(0, dim, 2).astype(np.float32) / dim)
    inv_freq_extrapolation = 1.0 / pos_freqs
    inv_freq_interpolation = 1.0 / (factor * pos_freqs)
    low, high = find_correction_range(
        beta_fast, beta_slow, dim, base, original_max_position_embeddings
    )
    inv_freq_extrapolation_factor = 1 - linear_ramp_factor(low, high, dim // 2)
    inv_freq = (
        inv_freq_interpolation * (1 - inv_freq_extrapolation_factor)
        + inv_freq_extrapolation * inv_freq_extrapolation_factor
    )
    attention_factor = 0.1 * math.log(factor) + 1.0 if factor > 1 else 1.0
    return inv_freq, attention_factor


def np_rotary_yarn(x, factor, original_max_len, start_index=0, max_wavelength=10000.0):
    x = np.asarray(x, np.float64)
    T, D = x.shape[1], x.shape[-1]
    inv_freq, attention_factor = hf_yarn_inv_freq(D, max_wavelength, factor, original_max_len)
    ang = np.concatenate([np.outer(np.arange(T) + start_index, inv_freq)] * 2, axis=-1)
    ang = ang.reshape((1, T) + (1,) * (x.ndim - 3) + (D,))
    x1, x2 = x[..., : D // 2], x[..., D // 2 :]
    return (x * np.cos(ang) + np.concatenate([-x2, x1], -1) * np.sin(ang)) * attention_factor


def rand(*shape, seed=0):
    return np.random.RandomState(seed).randn(*shape).astype("float32")


# --- SinusoidalPositionalEncoding -------------------------------------------


@pytest.mark.parametrize("call_kwargs", [{}, {"start_index": 3}])
def test_sinusoidal_shared_layer_checks(call_kwargs):
    run_layer_test(
        SinusoidalPositionalEncoding,
        {"num_hiddens": 8, "dropout": 0.1, "max_len": 16},
        rand(2, 5, 8),
        call_kwargs=call_kwargs,
        expected_output_shape=(2, 5, 8),
        input_mask=MASK,
    )


@pytest.mark.parametrize("d", [32, 7, 1])
def test_P_matches_d2l_formula(d):
    layer = SinusoidalPositionalEncoding(d, max_len=60)
    out = layer(np.zeros((1, 60, d), "float32"), training=False)
    np.testing.assert_allclose(ops.convert_to_numpy(out)[0], np_P(60, d), atol=1e-6)
    np.testing.assert_allclose(layer.P, np_P(60, d), atol=1e-6)
    np.testing.assert_allclose(sinusoidal_encoding(60, d), np_P(60, d), atol=1e-6)


def test_odd_num_hiddens_has_one_cosine_column_fewer():
    P = sinusoidal_encoding(10, 5)
    # Columns 0, 2, 4 are sines (P[0] = 0), columns 1, 3 cosines (P[0] = 1).
    np.testing.assert_array_equal(P[0], [0, 1, 0, 1, 0])


def test_sinusoidal_adds_P_to_inputs():
    X = rand(2, 6, 4)
    out = SinusoidalPositionalEncoding(4)(X)
    np.testing.assert_allclose(ops.convert_to_numpy(out), X + np_P(6, 4)[None], atol=1e-6)


@pytest.mark.parametrize("start", [0, 4, np.int64(4), np.array(4)])
def test_sinusoidal_start_index_equals_slice_of_full_sequence(start):
    layer = SinusoidalPositionalEncoding(8, max_len=20)
    X = rand(2, 10, 8)
    full = ops.convert_to_numpy(layer(X))
    s = int(start)
    part = ops.convert_to_numpy(layer(X[:, s : s + 3], start_index=start))
    np.testing.assert_allclose(part, full[:, s : s + 3], atol=1e-6)


def test_sinusoidal_start_index_as_tensor_in_graph():
    layer = SinusoidalPositionalEncoding(8, max_len=20)
    X = rand(2, 10, 8)
    full = ops.convert_to_numpy(layer(X))
    step = ops.convert_to_numpy(layer(X[:, 7:8], start_index=ops.convert_to_tensor(7)))
    np.testing.assert_allclose(step, full[:, 7:8], atol=1e-6)
    # A functional model fed a per-batch start index of shape ().
    x_in = keras.Input(shape=(None, 8))
    s_in = keras.Input(batch_shape=(), dtype="int32")
    model = keras.Model([x_in, s_in], layer(x_in, start_index=s_in))
    got = ops.convert_to_numpy(model([X[:, 5:7], np.array(5, "int32")]))
    np.testing.assert_allclose(got, full[:, 5:7], atol=1e-6)


@pytest.mark.parametrize(
    "length, start, match",
    [
        (
            11,
            0,
            r"longer than `max_len`.*max_len=10.*start_index=0 \+ sequence "
            r"length=11 = 11 > max_len",
        ),
        (
            3,
            8,
            r"longer than `max_len`.*start_index=8 \+ sequence length=3 = 11 > "
            r"max_len",
        ),
    ],
)
@pytest.mark.parametrize("cls", ["sinusoidal", "learned"])
def test_sequence_longer_than_max_len_raises(cls, length, start, match):
    layer = (
        SinusoidalPositionalEncoding(4, max_len=10)
        if cls == "sinusoidal"
        else LearnedPositionalEmbedding(10, 4)
    )
    layer(np.zeros((1, 10, 4), "float32"))  # exactly max_len is fine
    with pytest.raises(ValueError, match=match):
        layer(np.zeros((1, length, 4), "float32"), start_index=start)


@pytest.mark.parametrize("cls", ["sinusoidal", "learned", "rotary"])
@pytest.mark.parametrize(
    "start, message",
    [
        (-1, "`start_index` must be a non-negative integer; got start_index=-1."),
        (np.int64(-2), "`start_index` must be a non-negative integer; got start_index=-2."),
        (1.0, "`start_index` must be an integer or an integer scalar tensor; got start_index=1.0."),
        (
            np.array([1], "int32"),
            "`start_index` must be an integer or an integer scalar tensor; got start_index.shape=(1,), dtype=int32.",
        ),
    ],
)
def test_bad_start_index_raises(cls, start, message):
    layer = {
        "sinusoidal": SinusoidalPositionalEncoding(4),
        "learned": LearnedPositionalEmbedding(10, 4),
        "rotary": RotaryEmbedding(),
    }[cls]
    with pytest.raises(ValueError, match=re.escape(message)):
        layer(np.zeros((1, 2, 4), "float32"), start_index=start)


@pytest.mark.parametrize("cls", ["sinusoidal", "learned"])
def test_eager_tensor_start_index_past_max_len_raises(cls):
    layer = (
        SinusoidalPositionalEncoding(4, max_len=10)
        if cls == "sinusoidal"
        else LearnedPositionalEmbedding(10, 4)
    )
    with pytest.raises(
        ValueError, match=re.escape("start_index=9 + sequence length=2 = 11 > max_len")
    ):
        layer(np.zeros((1, 2, 4), "float32"), start_index=ops.convert_to_tensor(9))


def _position_layer(cls):
    if cls == "sinusoidal":
        return SinusoidalPositionalEncoding(4, max_len=6)
    layer = LearnedPositionalEmbedding(6, 4, embeddings_initializer="random_normal")
    layer.build((None, None, 4))
    return layer


def _table(layer):
    return (
        layer.P
        if isinstance(layer, SinusoidalPositionalEncoding)
        else ops.convert_to_numpy(layer.embeddings)
    )


@pytest.mark.tensorflow_only(reason="tf.function with an unknown length")
@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("cls", ["sinusoidal", "learned"])
def test_positions_past_max_len_in_a_graph_are_nan_never_clamped(cls, jit_compile):
    """Length known only at run time: no error can be raised; rows past
    max_len are NaN, the others the right positions (XLA would otherwise
    clamp the slice to the last rows, TensorFlow raise its own error)."""
    import tensorflow as tf

    layer = _position_layer(cls)
    add = tf.function(
        lambda X, start: layer(X, start_index=start),
        jit_compile=jit_compile,
        input_signature=[tf.TensorSpec((None, None, 4), tf.float32), tf.TensorSpec((), tf.int32)],
    )
    table = _table(layer)
    np.testing.assert_allclose(
        ops.convert_to_numpy(add(np.zeros((1, 6, 4), "float32"), 0))[0], table, atol=1e-6
    )
    out = ops.convert_to_numpy(add(np.zeros((2, 8, 4), "float32"), 0))  # 8 > max_len=6
    np.testing.assert_allclose(out[:, :6], np.broadcast_to(table, (2, 6, 4)), atol=1e-6)
    assert np.all(np.isnan(out[:, 6:]))
    out = ops.convert_to_numpy(add(np.zeros((1, 3, 4), "float32"), 4))  # positions 4, 5, 6
    np.testing.assert_allclose(out[0, :2], table[4:6], atol=1e-6)
    assert np.all(np.isnan(out[0, 2]))


@pytest.mark.xla(reason="jit_compile")
@pytest.mark.parametrize("cls", ["sinusoidal", "learned"])
def test_traced_start_index_past_max_len_is_nan_under_jit(cls):
    layer = _position_layer(cls)
    x_in = keras.Input((3, 4))
    s_in = keras.Input(batch_shape=(), dtype="int32")
    model = keras.Model([x_in, s_in], layer(x_in, start_index=s_in))
    model.compile(jit_compile=True)
    run = lambda start: ops.convert_to_numpy(
        model.predict_on_batch([np.zeros((1, 3, 4), "float32"), np.array(start, "int32")])
    )
    np.testing.assert_allclose(run(2)[0], _table(layer)[2:5], atol=1e-6)
    out = run(4)[0]  # positions 4, 5, 6: the last is past max_len=6
    np.testing.assert_allclose(out[:2], _table(layer)[4:6], atol=1e-6)
    assert np.all(np.isnan(out[2]))


@pytest.mark.parametrize("cls", ["sinusoidal", "learned", "rotary"])
def test_integer_inputs_and_wrong_rank_raise(cls):
    layer = {
        "sinusoidal": SinusoidalPositionalEncoding(4),
        "learned": LearnedPositionalEmbedding(10, 4),
        "rotary": RotaryEmbedding(),
    }[cls]
    name = "inputs" if cls == "rotary" else "X"
    with pytest.raises(
        TypeError, match=re.escape(f"`{name}` must be a float tensor; got {name}.dtype=int32.")
    ):
        layer(np.zeros((1, 2, 4), "int32"))
    layer(np.zeros((1, 2, 4), "float32"))
    rank = (
        "`inputs` must have rank >= 3"
        if cls == "rotary"
        else "`X` must be 3-D (batch, length, num_hiddens)"
    )
    with pytest.raises(ValueError, match=re.escape(rank)):
        layer(np.zeros((2, 4), "float32"))


def test_sinusoidal_dropout_only_in_training():
    layer = SinusoidalPositionalEncoding(16, dropout=0.5)
    X = np.ones((4, 10, 16), "float32")
    eval_out = ops.convert_to_numpy(layer(X, training=False))
    np.testing.assert_allclose(eval_out, X + np_P(10, 16)[None], atol=1e-6)
    train_out = ops.convert_to_numpy(layer(X, training=True))
    zeros = np.mean(train_out == 0)
    assert 0.3 < zeros < 0.7
    kept = train_out != 0
    np.testing.assert_allclose(train_out[kept], (2 * (X + np_P(10, 16)[None]))[kept], rtol=1e-5)


def test_sinusoidal_passes_mask_through():
    X = mask_from(rand(2, 5, 4), MASK)
    out = SinusoidalPositionalEncoding(4)(X)
    np.testing.assert_array_equal(ops.convert_to_numpy(out._keras_mask), MASK)


def test_sinusoidal_has_no_weights_and_saves_no_P():
    layer = SinusoidalPositionalEncoding(4)
    layer(np.zeros((1, 3, 4), "float32"))
    assert layer.weights == []


# --- LearnedPositionalEmbedding ---------------------------------------------


@pytest.mark.parametrize("call_kwargs", [{}, {"start_index": 2}])
def test_learned_shared_layer_checks(call_kwargs):
    run_layer_test(
        LearnedPositionalEmbedding,
        {"max_len": 12, "num_hiddens": 8},
        rand(2, 5, 8),
        call_kwargs=call_kwargs,
        expected_output_shape=(2, 5, 8),
        input_mask=MASK,
    )


def test_learned_adds_rows_of_embeddings():
    layer = LearnedPositionalEmbedding(10, 4, embeddings_initializer="random_normal")
    X = rand(2, 6, 4)
    out = ops.convert_to_numpy(layer(X))
    assert [w.name for w in layer.trainable_weights] == ["embeddings"]
    E = ops.convert_to_numpy(layer.embeddings)
    assert E.shape == (10, 4)
    np.testing.assert_allclose(out, X + E[None, :6], atol=1e-6)
    part = ops.convert_to_numpy(layer(X[:, 3:5], start_index=3))
    np.testing.assert_allclose(part, out[:, 3:5], atol=1e-6)
    step = ops.convert_to_numpy(layer(X[:, 4:5], start_index=ops.convert_to_tensor(4)))
    np.testing.assert_allclose(step, out[:, 4:5], atol=1e-6)


def test_learned_embeddings_get_gradients_only_at_used_positions():
    layer = LearnedPositionalEmbedding(6, 2)
    X = rand(1, 3, 2)
    layer(X, start_index=2)  # builds the embeddings
    grad = gradient(lambda: ops.sum(layer(X, start_index=2)), layer.embeddings)
    np.testing.assert_allclose(grad[2:5], 1.0)
    np.testing.assert_allclose(grad[[0, 1, 5]], 0.0)


@pytest.mark.parametrize(
    "cls, kwargs, match",
    [
        (
            SinusoidalPositionalEncoding,
            {"num_hiddens": 0},
            r"`num_hiddens` must be a positive integer; got num_hiddens=0",
        ),
        (
            SinusoidalPositionalEncoding,
            {"num_hiddens": 8.0},
            r"`num_hiddens` must be a positive integer; got num_hiddens=8.0",
        ),
        (
            SinusoidalPositionalEncoding,
            {"num_hiddens": 8, "dropout": 1.0},
            r"`dropout` must be a float in \[0, 1\); got dropout=1.0",
        ),
        (
            SinusoidalPositionalEncoding,
            {"num_hiddens": 8, "dropout": "0.1"},
            r"`dropout` must be a float in \[0, 1\); got dropout='0.1'",
        ),
        (
            SinusoidalPositionalEncoding,
            {"num_hiddens": 8, "max_len": -1},
            r"`max_len` must be a positive integer; got max_len=-1",
        ),
        (
            LearnedPositionalEmbedding,
            {"max_len": 0, "num_hiddens": 8},
            r"`max_len` must be a positive integer; got max_len=0",
        ),
        (
            LearnedPositionalEmbedding,
            {"max_len": 8, "num_hiddens": True},
            r"`num_hiddens` must be a positive integer; got num_hiddens=True",
        ),
        (
            LearnedPositionalEmbedding,
            {"max_len": 8, "num_hiddens": 4, "embeddings_initializer": "nope"},
            r"`embeddings_initializer` must be a Keras initializer or its name; got "
            r"embeddings_initializer='nope'",
        ),
        (
            RotaryEmbedding,
            {"max_wavelength": 0},
            r"`max_wavelength` must be a positive finite number; got max_wavelength=0",
        ),
        (
            RotaryEmbedding,
            {"scaling_factor": -2.0},
            r"`scaling_factor` must be a positive finite number; got scaling_factor=-2.0",
        ),
        (
            RotaryEmbedding,
            {"max_wavelength": float("nan")},
            r"`max_wavelength` must be a positive finite number; got max_wavelength=nan",
        ),
        (
            RotaryEmbedding,
            {"scaling_factor": float("inf")},
            r"`scaling_factor` must be a positive finite number; got scaling_factor=inf",
        ),
        (
            RotaryEmbedding,
            {"scaling_factor": None},
            r"`scaling_factor` must be a positive finite number; got scaling_factor=None",
        ),
        (
            RotaryEmbedding,
            {"scaling": "dynamic"},
            r"`scaling` must be None or one of \['linear', 'ntk', 'yarn'\]; got scaling='dynamic'",
        ),
        (
            RotaryEmbedding,
            {"scaling": "yarn", "scaling_factor": 2.0},
            r"`scaling='yarn'` needs `original_max_len`, the trained context length.",
        ),
        (
            RotaryEmbedding,
            {"scaling": "yarn", "original_max_len": 0},
            r"`original_max_len` must be a positive integer; got original_max_len=0",
        ),
        (
            RotaryEmbedding,
            {"scaling": "ntk", "original_max_len": 64},
            r"`original_max_len` is used by `scaling='yarn'` only; got scaling='ntk', original_max_len=64",
        ),
    ],
)
def test_bad_arguments(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


@pytest.mark.parametrize(
    "layer",
    [SinusoidalPositionalEncoding(8), LearnedPositionalEmbedding(10, 8)],
    ids=["sinusoidal", "learned"],
)
def test_feature_size_must_equal_num_hiddens(layer):
    with pytest.raises(
        ValueError,
        match=r"The last axis of `X` must equal `num_hiddens`; got "
        r"X.shape=\(2, 3, 6\), num_hiddens=8",
    ):
        layer(np.zeros((2, 3, 6), "float32"))


# --- RotaryEmbedding ----------------------------------------------------------


@pytest.mark.parametrize("shape", [(2, 5, 8), (2, 5, 3, 8)])
def test_rotary_shared_layer_checks(shape):
    run_layer_test(
        RotaryEmbedding,
        {"max_wavelength": 100, "scaling_factor": 2.0},
        rand(*shape),
        expected_output_shape=shape,
        input_mask=MASK,
    )


@pytest.mark.parametrize(
    "shape, kwargs",
    [
        ((2, 6, 8), {}),
        ((2, 6, 3, 4), {}),  # (B, T, H, d): what MultiHeadAttention passes
        ((1, 5, 2, 2, 6), {"max_wavelength": 50, "scaling_factor": 4.0}),
        ((2, 6, 8), {"scaling_factor": 4.0, "scaling": "linear"}),
        ((2, 6, 3, 8), {"scaling_factor": 4.0, "scaling": "ntk"}),
        ((1, 9, 16), {"max_wavelength": 500, "scaling_factor": 2.5, "scaling": "ntk"}),
        ((1, 9, 4), {"scaling_factor": 1.0, "scaling": "ntk"}),
    ],
)
def test_rotary_matches_numpy(shape, kwargs):
    x = rand(*shape)
    out = RotaryEmbedding(**kwargs)(x)
    np.testing.assert_allclose(ops.convert_to_numpy(out), np_rotary(x, **kwargs), atol=1e-5)


@pytest.mark.parametrize("scaling", ["linear", "ntk"])
def test_rotary_scaling_shared_layer_checks(scaling):
    run_layer_test(
        RotaryEmbedding,
        {"scaling_factor": 4.0, "scaling": scaling},
        rand(2, 5, 3, 8),
        call_kwargs={"start_index": 2},
        expected_output_shape=(2, 5, 3, 8),
    )


def test_rotary_scaling_none_is_linear_and_factor_1_is_plain():
    x = rand(1, 7, 8)
    plain = ops.convert_to_numpy(RotaryEmbedding()(x))
    for scaling in (None, "linear", "ntk"):
        same = ops.convert_to_numpy(RotaryEmbedding(scaling=scaling)(x))
        np.testing.assert_allclose(same, plain, atol=1e-6)
    np.testing.assert_array_equal(
        ops.convert_to_numpy(RotaryEmbedding(scaling_factor=3.0)(x)),
        ops.convert_to_numpy(RotaryEmbedding(scaling_factor=3.0, scaling="linear")(x)),
    )


def test_rotary_linear_scaling_is_the_unscaled_rotation_at_divided_positions():
    # Position 4 under factor 4 rotates like position 1 unscaled.
    x = rand(1, 1, 8)
    scaled = RotaryEmbedding(scaling_factor=4.0, scaling="linear")(x, start_index=4)
    np.testing.assert_allclose(
        ops.convert_to_numpy(scaled),
        ops.convert_to_numpy(RotaryEmbedding()(x, start_index=1)),
        atol=1e-6,
    )


def test_rotary_ntk_scaling_keeps_the_highest_and_divides_the_lowest_frequency():
    # One pair per frequency: x = e_i (and 0 in its partner) rotates at theta_i.
    D, s, t = 8, 4.0, 5
    angles = {}
    for scaling in (None, "ntk"):
        layer = RotaryEmbedding(scaling_factor=s if scaling else 1.0, scaling=scaling)
        x = np.eye(D, dtype="float32")[None, None, : D // 2]  # (1, 1, D/2, D): head i is e_i
        out = ops.convert_to_numpy(layer(x, start_index=t))[0, 0]  # (D/2, D)
        angles[scaling] = np.arctan2(
            out[np.arange(D // 2), np.arange(D // 2) + D // 2],
            out[np.arange(D // 2), np.arange(D // 2)],
        )
    np.testing.assert_allclose(angles["ntk"][0], angles[None][0], atol=1e-6)  # theta_0 = 1
    theta_low = 10000.0 ** (-(D - 2) / D)
    np.testing.assert_allclose(angles[None][-1], t * theta_low, atol=1e-5)
    np.testing.assert_allclose(angles["ntk"][-1], t * theta_low / s, atol=1e-5)


@pytest.mark.parametrize(
    "shape, factor, original_max_len, max_wavelength",
    [
        ((2, 9, 3, 16), 4.0, 32, 10000.0),
        ((1, 7, 64), 2.0, 512, 10000.0),
        ((1, 5, 8), 8.0, 16, 500.0),
        ((1, 5, 2, 8), 1.0, 16, 10000.0),
    ],
)
def test_rotary_yarn_equals_the_transformers_formula(
    shape, factor, original_max_len, max_wavelength
):
    x = rand(*shape)
    layer = RotaryEmbedding(
        max_wavelength=max_wavelength,
        scaling_factor=factor,
        scaling="yarn",
        original_max_len=original_max_len,
    )
    out = ops.convert_to_numpy(layer(x, start_index=3))
    expected = np_rotary_yarn(
        x, factor, original_max_len, start_index=3, max_wavelength=max_wavelength
    )
    np.testing.assert_allclose(out, expected, atol=1e-4, rtol=1e-5)


def test_rotary_yarn_interpolates_long_and_keeps_short_wavelengths():
    from keras_attention.layers.position import rotary_frequencies

    plain, _ = rotary_frequencies(64)
    yarn, factor = rotary_frequencies(64, scaling="yarn", scaling_factor=4.0, original_max_len=4096)
    # Over 4096 positions pairs 0..10 turn >= 32 times (kept), pairs 23.. less than once (interpolated).
    turns = 4096 * plain / (2 * np.pi)
    assert np.all(turns[:10] > 32) and np.all(turns[23:] < 1.5)
    np.testing.assert_allclose(yarn[:11], plain[:11], rtol=1e-6)
    np.testing.assert_allclose(yarn[23:], plain[23:] / 4.0, rtol=1e-6)
    assert np.all(yarn <= plain * (1 + 1e-6)) and np.all(yarn >= plain / 4.0 * (1 - 1e-6))
    np.testing.assert_allclose(factor, 0.1 * np.log(4.0) + 1.0)


def test_rotary_yarn_shared_layer_checks():
    run_layer_test(
        RotaryEmbedding,
        {"scaling_factor": 4.0, "scaling": "yarn", "original_max_len": 16},
        rand(2, 5, 3, 8),
        expected_output_shape=(2, 5, 3, 8),
    )


def test_rotary_ntk_needs_more_than_2_features():
    with pytest.raises(ValueError, match=re.escape("`scaling='ntk'` needs more than 2 features")):
        RotaryEmbedding(scaling_factor=2.0, scaling="ntk")(rand(1, 3, 2))


def test_rotary_on_heads_equals_rotary_per_head():
    x = rand(2, 6, 3, 4)  # (B, T, H, d)
    layer = RotaryEmbedding()
    out = ops.convert_to_numpy(layer(x))
    for h in range(3):
        per_head = ops.convert_to_numpy(layer(x[:, :, h]))
        np.testing.assert_allclose(out[:, :, h], per_head, atol=1e-6)


def test_rotary_preserves_norms():
    x = rand(2, 7, 8)
    out = ops.convert_to_numpy(RotaryEmbedding()(x))
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-5)


def test_rotary_dot_product_depends_only_on_relative_position():
    """<R_m q, R_n k> is a function of m - n alone."""
    layer = RotaryEmbedding(max_wavelength=100)
    q, k = rand(8, seed=1), rand(8, seed=2)
    T = 12
    # The same q and k at every position.
    rq = ops.convert_to_numpy(layer(np.tile(q, (1, T, 1))))[0]  # (T, D)
    rk = ops.convert_to_numpy(layer(np.tile(k, (1, T, 1))))[0]
    scores = rq @ rk.T  # (T, T): scores[m, n]
    for offset in range(-T + 1, T):
        diagonal = np.diagonal(scores, offset=-offset)  # entries with m - n = offset
        np.testing.assert_allclose(diagonal, diagonal[0], atol=1e-4)
    assert not np.allclose(scores[0, 0], scores[3, 0])  # but it does vary with m - n


@pytest.mark.parametrize("start", [5, ops.convert_to_tensor(5)], ids=["int", "tensor"])
def test_rotary_start_index_equals_slice_of_full_sequence(start):
    layer = RotaryEmbedding()
    x = rand(2, 9, 2, 6)
    full = ops.convert_to_numpy(layer(x))
    part = ops.convert_to_numpy(layer(x[:, 5:8], start_index=start))
    np.testing.assert_allclose(part, full[:, 5:8], atol=1e-5)


def test_rotary_position_zero_is_identity():
    x = rand(1, 1, 6)
    np.testing.assert_allclose(ops.convert_to_numpy(RotaryEmbedding()(x)), x, atol=1e-7)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_rotary_keeps_input_dtype_and_is_close_to_float32(policy):
    x = rand(2, 5, 8)
    out = RotaryEmbedding(dtype=policy)(x)
    dtype = policy.split("_")[1]
    assert keras.backend.standardize_dtype(out.dtype) == dtype
    np.testing.assert_allclose(
        ops.convert_to_numpy(ops.cast(out, "float32")), np_rotary(x), atol=5e-2
    )


def test_rotary_odd_features_raise():
    with pytest.raises(
        ValueError,
        match=r"The last axis of `inputs` \(features\) must be even to rotate "
        r"feature pairs; got inputs.shape=\(2, 3, 5\)",
    ):
        RotaryEmbedding()(np.zeros((2, 3, 5), "float32"))


def test_rotary_rank_and_unknown_features_raise():
    with pytest.raises(ValueError, match=r"`inputs` must have rank >= 3"):
        RotaryEmbedding()(np.zeros((2, 4), "float32"))
    with pytest.raises(ValueError, match=r"The last axis of `inputs` \(features\) must be known"):
        RotaryEmbedding()(keras.Input(shape=(None, None)))


def test_rotary_has_no_weights():
    layer = RotaryEmbedding()
    layer(rand(1, 2, 4))
    assert layer.weights == []
