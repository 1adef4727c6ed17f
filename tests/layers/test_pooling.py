import keras
import numpy as np
import pytest
from keras import ops

from keras_attention.layers import NadarayaWatson

from helpers import gradient, mask_from, run_layer_test

KERNEL_NAMES = ["gaussian", "boxcar", "constant", "epanechikov"]


# D2L's kernels and estimator, in numpy.
def np_kernel(name, x):
    if name == "gaussian":
        return np.exp(-(x**2) / 2)
    if name == "boxcar":
        return (np.abs(x) < 1.0).astype(np.float64)
    if name == "constant":
        return 1.0 + 0 * x
    return np.maximum(1 - np.abs(x), 0)


def np_nadaraya_watson(queries, keys, values, name, w=1.0):
    """(B, Q), (B, K), (B, K[, V]) -> (B, Q[, V]), weights (B, Q, K)."""
    x = (queries[:, :, None] - keys[:, None, :]) * w
    k = np_kernel(name, x)
    attention_w = k / k.sum(-1, keepdims=True)
    if values.ndim == 2:
        return np.einsum("bqk,bk->bq", attention_w, values), attention_w
    return attention_w @ values, attention_w


def d2l_data(n=20, seed=0):
    rng = np.random.RandomState(seed)
    x = np.sort(rng.rand(n) * 5).astype("float32")
    y = (2 * np.sin(x) + x + rng.randn(n)).astype("float32")
    return x, y


def data(batch=2, q=3, k=5, v=None, seed=0):
    rng = np.random.RandomState(seed)
    queries = (rng.rand(batch, q) * 3).astype("float32")
    # Keys close enough to every query that no kernel row is all zero.
    keys = (np.linspace(0, 3, k)[None] + 0.1 * rng.rand(batch, k)).astype("float32")
    shape = (batch, k) if v is None else (batch, k, v)
    values = rng.randn(*shape).astype("float32")
    return queries, keys, values


@pytest.mark.parametrize(
    "kernel, learnable_width, v",
    [
        ("gaussian", False, None),
        ("gaussian", True, 3),
        ("boxcar", False, None),
        ("constant", False, 2),
        ("epanechikov", True, None),
    ],
)
def test_shared_layer_checks(kernel, learnable_width, v):
    q, k, vals = data(v=v)
    out_shape = (2, 3) if v is None else (2, 3, v)
    # The query mask passes to the output. Keras losses take a (B, Q) mask
    # only for outputs of rank 3, so the masked check uses vector values.
    run_layer_test(
        NadarayaWatson,
        {"kernel": kernel, "learnable_width": learnable_width},
        [q, k, vals],
        expected_output_shape=out_shape,
        input_mask=None if v is None else np.array([[1, 1, 0], [1, 0, 0]], bool),
    )


def test_shared_layer_checks_with_attention_scores():
    q, k, vals = data()
    run_layer_test(
        NadarayaWatson,
        {"kernel": "epanechikov", "width": 2.0, "learnable_width": True},
        [q, k, vals],
        call_kwargs={"return_attention_scores": True},
        expected_output_shape=[(2, 3), (2, 3, 5)],
    )


@pytest.mark.parametrize("kernel", KERNEL_NAMES)
@pytest.mark.parametrize("width", [1.0, 0.5])
def test_matches_numpy_nadaraya_watson(kernel, width):
    q, k, vals = data(q=4, k=6)
    out, weights = NadarayaWatson(kernel, width=width)(q, k, vals, return_attention_scores=True)
    ref_out, ref_w = np_nadaraya_watson(
        q.astype(np.float64), k.astype(np.float64), vals, kernel, w=1 / width
    )
    np.testing.assert_allclose(ops.convert_to_numpy(weights), ref_w, atol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(out), ref_out, atol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(weights).sum(-1), 1.0, atol=1e-6)


@pytest.mark.parametrize("kernel", KERNEL_NAMES)
def test_vector_values_match_numpy(kernel):
    q, k, vals = data(v=3)
    out = NadarayaWatson(kernel)(q, k, vals)
    ref, _ = np_nadaraya_watson(q, k, vals, kernel)
    np.testing.assert_allclose(ops.convert_to_numpy(out), ref, atol=1e-5)


def test_d2l_regression_estimate():
    """D2L's setting: queries x_val, keys x_train, values y_train."""
    x_train, y_train = d2l_data(n=40)
    x_val = np.arange(0, 5, 0.1, dtype="float32")
    layer = NadarayaWatson("gaussian")
    y_hat = layer(x_val[None], x_train[None], y_train[None])
    ref, _ = np_nadaraya_watson(x_val[None], x_train[None], y_train[None], "gaussian")
    np.testing.assert_allclose(ops.convert_to_numpy(y_hat), ref, atol=1e-5)
    # A sensible fit of f(x) = 2 sin(x) + x.
    truth = 2 * np.sin(x_val) + x_val
    assert np.mean((ops.convert_to_numpy(y_hat)[0] - truth) ** 2) < 1.0


@pytest.mark.parametrize("kernel", ["boxcar", "epanechikov"])
def test_query_far_from_every_key_gets_zero_weights_not_nan(kernel):
    keys = np.array([[0.0, 0.5, 1.0]], "float32")
    values = np.array([[1.0, 2.0, 3.0]], "float32")
    queries = np.array([[0.4, 10.0]], "float32")  # the second is out of range
    layer = NadarayaWatson(kernel, learnable_width=True)
    out, weights = layer(queries, keys, values, return_attention_scores=True)
    out, weights = ops.convert_to_numpy(out), ops.convert_to_numpy(weights)
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(weights))
    np.testing.assert_array_equal(weights[0, 1], 0.0)
    assert out[0, 1] == 0.0
    np.testing.assert_allclose(weights[0, 0].sum(), 1.0, atol=1e-6)
    # Gradients through the empty row are finite too. (The boxcar is flat
    # in w: its gradient is zero.)
    grad = gradient(lambda: ops.sum(layer(queries, keys, values)), layer.w)
    assert np.all(np.isfinite(grad))


def test_gaussian_far_query_is_finite():
    """exp(-x^2/2) underflows to 0 for every key; the softmax does not."""
    keys = np.array([[0.0, 1.0, 2.0]], "float32")
    values = np.array([[1.0, 2.0, 3.0]], "float32")
    queries = np.array([[100.0]], "float32")
    out, weights = NadarayaWatson()(queries, keys, values, return_attention_scores=True)
    np.testing.assert_allclose(ops.convert_to_numpy(weights), [[[0, 0, 1]]], atol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(out), [[3.0]], atol=1e-6)


def test_masked_keys_are_ignored():
    q, k, vals = data(k=4)
    pad_k = np.concatenate([k, np.full((2, 2), 1.5, "float32")], axis=1)
    pad_v = np.concatenate([vals, np.full((2, 2), 99.0, "float32")], axis=1)
    key_mask = np.array([[True] * 4 + [False] * 2] * 2)
    for kernel in KERNEL_NAMES:
        layer = NadarayaWatson(kernel)
        expected, exp_w = layer(q, k, vals, return_attention_scores=True)
        got, w = layer(q, mask_from(pad_k, key_mask), pad_v, return_attention_scores=True)
        np.testing.assert_allclose(
            ops.convert_to_numpy(got), ops.convert_to_numpy(expected), atol=1e-5
        )
        np.testing.assert_array_equal(ops.convert_to_numpy(w)[..., 4:], 0.0)


def test_learnable_width_weight_and_gradient():
    layer = NadarayaWatson(learnable_width=True, width=0.5)
    q, k, vals = data()
    layer(q, k, vals)
    assert [v.name for v in layer.trainable_weights] == ["w"]
    assert float(ops.convert_to_numpy(layer.w)) == pytest.approx(2.0)
    fixed = NadarayaWatson()
    fixed(q, k, vals)
    assert fixed.weights == []
    grad = gradient(lambda: ops.mean(ops.square(layer(q, k, vals))), layer.w)
    assert np.isfinite(grad) and abs(grad) > 1e-6


def leave_one_out(x, y):
    """D2L's parametric training set: each x_i queries the other n-1 pairs."""
    n = len(x)
    keep = ~np.eye(n, dtype=bool)
    keys = np.tile(x, (n, 1))[keep].reshape(n, n - 1)
    values = np.tile(y, (n, 1))[keep].reshape(n, n - 1)
    return x[:, None], keys, values, y[:, None]


def test_fit_learns_width_and_reduces_loss():
    x, y = d2l_data(n=30)
    queries, keys, values, targets = leave_one_out(x, y)
    q_in = keras.Input(shape=(None,), name="queries")
    k_in = keras.Input(shape=(None,), name="keys")
    v_in = keras.Input(shape=(None,), name="values")
    layer = NadarayaWatson(learnable_width=True, name="nw")
    model = keras.Model([q_in, k_in, v_in], layer(q_in, k_in, v_in))
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    before = model.evaluate([queries, keys, values], targets, verbose=0)
    model.fit([queries, keys, values], targets, epochs=10, batch_size=30, verbose=0)
    after = model.evaluate([queries, keys, values], targets, verbose=0)
    assert after < before
    assert float(ops.convert_to_numpy(layer.w)) != pytest.approx(1.0)
    # The trained layer is still D2L's estimator with the learned w.
    w = float(ops.convert_to_numpy(layer.w))
    ref, _ = np_nadaraya_watson(queries, keys, values, "gaussian", w=w)
    np.testing.assert_allclose(ops.convert_to_numpy(model([queries, keys, values])), ref, atol=1e-5)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_is_close_to_float32(policy):
    q, k, vals = data()
    ref = ops.convert_to_numpy(NadarayaWatson()(q, k, vals))
    out = NadarayaWatson(dtype=policy)(q, k, vals)
    assert keras.backend.standardize_dtype(out.dtype) == policy.split("_")[1]
    np.testing.assert_allclose(ops.convert_to_numpy(ops.cast(out, "float32")), ref, atol=5e-2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            {"kernel": "triangle"},
            r"`kernel` must be one of \['boxcar', 'constant', "
            r"'epanechikov', 'gaussian'\]; got kernel='triangle'",
        ),
        ({"kernel": None}, r"`kernel` must be one of .*got kernel=None"),
        ({"width": 0.0}, r"`width` must be a positive finite number; got width=0.0"),
        ({"width": "1"}, r"`width` must be a positive finite number; got width='1'"),
        ({"width": float("nan")}, r"`width` must be a positive finite number; got width=nan"),
        ({"width": float("inf")}, r"`width` must be a positive finite number; got width=inf"),
        (
            {"learnable_width": "yes"},
            r"`learnable_width` must be True or False; got learnable_width='yes'",
        ),
        ({"learnable_width": 1}, r"`learnable_width` must be True or False; got learnable_width=1"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NadarayaWatson(**kwargs)


def test_keys_values_length_mismatch_raises_eagerly_and_symbolically():
    q, k, _ = data(k=5)
    v = np.zeros((2, 4), "float32")
    match = r"`keys` and `values` must have the same length \(axis 1\); got keys.shape=\(2, 5\)"
    with pytest.raises(ValueError, match=match):
        NadarayaWatson()(q, k, v)
    with pytest.raises(ValueError, match=r"`keys` and `values` must have the same length"):
        NadarayaWatson()(keras.Input((None,)), keras.Input((5,)), keras.Input((4,)))


def test_wrong_ranks_raise():
    q, k, vals = data()
    with pytest.raises(ValueError, match=r"`queries` and `keys` must be 2-D"):
        NadarayaWatson()(q[..., None], k, vals)
    with pytest.raises(ValueError, match=r"`values` must have shape \(batch, num_keys\)"):
        NadarayaWatson()(q, k, vals[..., None, None])


def test_batches_must_agree_not_broadcast():
    import re

    q, k, vals = data()
    message = "`queries`, `keys`, `values` must have the same batch size (axis 0); got queries.shape=(2, 3), keys.shape=(1, 5), values.shape=(1, 5)."
    with pytest.raises(ValueError, match=re.escape(message)):
        NadarayaWatson()(q, k[:1], vals[:1])
    with pytest.raises(
        ValueError,
        match=re.escape(
            "`keys_mask` must have shape (batch, num_keys)=(2, 5); got keys_mask.shape=(2, 3)."
        ),
    ):
        NadarayaWatson()(q, k, vals, keys_mask=np.ones((2, 3), bool))
