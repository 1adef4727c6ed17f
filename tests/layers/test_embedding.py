"""Tests for `keras_attention/layers/embedding.py`: `TokenEmbedding`, `TiedTokenEmbedding`,
`SegmentEmbedding` and `lookup`.

Rows against the table itself, the `sqrt(num_hiddens)` scale, the padding
mask, the shared layer test, and what a bad id does: a float id is a
`TypeError`, an id outside `[0, vocab_size)` a `ValueError` where it is
known and a NaN row in traced code, never another row.
"""

import math
import re

import keras
import numpy as np
import pytest
from keras import ops

from keras_attention.layers import SegmentEmbedding, TiedTokenEmbedding, TokenEmbedding

from helpers import run_layer_test

V, D = 6, 4
IDS = np.array([[1, 2, 0], [5, 0, 0]], "int32")


def to_np(x):
    return ops.convert_to_numpy(ops.cast(x, "float32"))


def table(layer):
    return ops.convert_to_numpy(layer.embeddings)


@pytest.mark.parametrize("scale", [False, True])
def test_rows_of_the_table_scaled_and_masked(scale):
    layer = TokenEmbedding(V, D, pad_id=0, scale=scale)
    out = layer(IDS)
    expected = table(layer)[IDS] * (math.sqrt(D) if scale else 1.0)
    np.testing.assert_allclose(to_np(out), expected, rtol=1e-6)
    np.testing.assert_array_equal(ops.convert_to_numpy(out._keras_mask), IDS != 0)
    assert TokenEmbedding(V, D, pad_id=None).compute_mask(IDS) is None


def test_layer_contract():
    run_layer_test(
        TokenEmbedding,
        {"vocab_size": V, "num_hiddens": D, "pad_id": 0, "scale": True},
        [IDS],
        expected_output_shape=(2, 3, D),
    )


def test_tied_embedding_layer_contract_and_logits_are_the_transposed_table():
    run_layer_test(
        TiedTokenEmbedding,
        {"vocab_size": V, "num_hiddens": D, "pad_id": 0},
        [IDS],
        expected_output_shape=(2, 3, D),
    )
    layer = TiedTokenEmbedding(V, D, pad_id=0)
    X = np.random.default_rng(0).normal(size=(2, 3, D)).astype("float32")
    layer(IDS)
    np.testing.assert_allclose(
        to_np(layer(X, reverse=True)), X @ table(layer).T, rtol=1e-5, atol=1e-6
    )
    run_layer_test(
        TiedTokenEmbedding,
        {"vocab_size": V, "num_hiddens": D},
        [X],
        call_kwargs={"reverse": True},
        expected_output_shape=(2, 3, V),
        check_mixed_precision=False,
    )


def test_segment_embedding_layer_contract_adds_the_segment_rows_and_keeps_the_mask():
    X = np.random.default_rng(1).normal(size=(2, 3, D)).astype("float32")
    segment_ids = np.array([[0, 1, 1], [0, 0, 1]], "int32")
    run_layer_test(
        SegmentEmbedding,
        {"num_segments": 2, "num_hiddens": D},
        [X, segment_ids],
        expected_output_shape=(2, 3, D),
        input_mask=IDS != 0,
    )
    layer = SegmentEmbedding(2, D)
    out = to_np(layer(X, segment_ids))
    np.testing.assert_allclose(out, X + table(layer)[segment_ids], rtol=1e-6)


def test_the_old_import_paths_still_work_with_a_deprecation_warning():
    import keras_attention.models as models

    for name, cls in (
        ("TiedTokenEmbedding", TiedTokenEmbedding),
        ("SegmentEmbedding", SegmentEmbedding),
    ):
        with pytest.warns(DeprecationWarning, match=f"moved to keras_attention.layers.{name}"):
            assert getattr(models, name) is cls


@pytest.mark.parametrize("dtype", ["float32", "float16", "bool"])
def test_float_or_bool_ids_are_a_type_error(dtype):
    # (Keras casts float inputs to the layer's float32 before `call`.)
    message = (
        f"`ids` must be integer ids; got ids.dtype={'bool' if dtype == 'bool' else 'float32'}."
    )
    with pytest.raises(TypeError, match=re.escape(message)):
        TokenEmbedding(V, D)(IDS.astype(dtype))
    if dtype != "bool":  # Keras Inputs of bool are fine, but ours must be int
        with pytest.raises(TypeError, match=re.escape("`ids` must be integer ids; got ids.dtype=")):
            TokenEmbedding(V, D)(keras.Input((None,), dtype=dtype))


@pytest.mark.parametrize("convert", [np.asarray, ops.convert_to_tensor], ids=["numpy", "tensor"])
@pytest.mark.parametrize("bad", [-1, V, 2**31 + 3], ids=["negative", "vocab_size", "past_int32"])
def test_ids_out_of_range_are_rejected_where_known(bad, convert):
    if bad > 2**31 and keras.backend.backend() == "jax":
        pytest.skip("JAX without x64 has no int64 ids")
    ids = convert(np.array([[1, bad]], "int64"))
    message = f"`ids` must be in [0, vocab_size={V}); got ids from "
    with pytest.raises(ValueError, match=re.escape(message)):
        TokenEmbedding(V, D)(ids)


@pytest.mark.tensorflow_only(reason="tf.function")
@pytest.mark.parametrize("jit_compile", [False, True])
def test_ids_out_of_range_give_nan_rows_in_a_graph_never_another_row(jit_compile):
    import tensorflow as tf

    layer = TokenEmbedding(V, D, scale=True)
    layer(IDS)
    embed = tf.function(
        layer, jit_compile=jit_compile, input_signature=[tf.TensorSpec((None, None), tf.int32)]
    )
    out = to_np(embed(np.array([[-1, 2, V, 0]], "int32")))
    assert np.all(np.isnan(out[0, [0, 2]]))  # -1 is not the last row, V not a clamped one
    np.testing.assert_allclose(out[0, [1, 3]], table(layer)[[2, 0]] * math.sqrt(D), rtol=1e-6)


@pytest.mark.xla(reason="jit_compile")
def test_ids_out_of_range_give_nan_rows_under_jit_on_any_backend():
    layer = TokenEmbedding(V, D)
    inputs = keras.Input((None,), dtype="int32")
    model = keras.Model(inputs, layer(inputs))
    model.compile(jit_compile=True)
    out = to_np(model.predict(np.array([[-1, 3, V]], "int32"), verbose=0))
    assert np.all(np.isnan(out[0, [0, 2]]))
    np.testing.assert_allclose(out[0, 1], table(layer)[3], rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"vocab_size": 0}, "`vocab_size` must be a positive integer; got vocab_size=0."),
        ({"num_hiddens": 2.0}, "`num_hiddens` must be a positive integer; got num_hiddens=2.0."),
        (
            {"pad_id": V},
            f"`pad_id` must be None or an integer in [0, vocab_size={V}); got pad_id={V}.",
        ),
        (
            {"pad_id": -1},
            f"`pad_id` must be None or an integer in [0, vocab_size={V}); got pad_id=-1.",
        ),
        (
            {"pad_id": True},
            f"`pad_id` must be None or an integer in [0, vocab_size={V}); got pad_id=True.",
        ),
        ({"scale": 1}, "`scale` must be True or False; got scale=1."),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        TokenEmbedding(**{"vocab_size": V, "num_hiddens": D, **kwargs})


def test_numpy_integer_arguments():
    layer = TokenEmbedding(np.int64(V), np.int32(D), pad_id=np.int64(0))
    assert layer.get_config()["pad_id"] == 0 and type(layer.get_config()["pad_id"]) is int
    assert tuple(layer(IDS).shape) == (2, 3, D)


def test_tied_and_segment_embeddings_check_ids_the_same_way():
    tied = TiedTokenEmbedding(V, D)
    with pytest.raises(
        ValueError, match=re.escape(f"`ids` must be in [0, vocab_size={V}); got ids from -2 to 1.")
    ):
        tied(np.array([[-2, 1]], "int32"))
    with pytest.raises(
        TypeError, match=re.escape("`ids` must be integer ids; got ids.dtype=float32.")
    ):
        tied(keras.Input((None,), dtype="float32"))
    with pytest.raises(
        TypeError,
        match=re.escape(
            "`inputs` must be float hidden states when reverse=True; got inputs.dtype=int32."
        ),
    ):
        tied(keras.Input((None, D), dtype="int32"), reverse=True)
    segments = SegmentEmbedding(2, D)
    X = np.zeros((2, 3, D), "float32")
    with pytest.raises(
        ValueError,
        match=re.escape(
            "`segment_ids` must be in [0, num_segments=2); got segment_ids from 0 to 2."
        ),
    ):
        segments(X, np.array([[0, 1, 2], [0, 0, 0]], "int32"))
    with pytest.raises(
        TypeError,
        match=re.escape("`segment_ids` must be integer ids; got segment_ids.dtype=float32."),
    ):
        segments(X, np.zeros((2, 3), "float32"))
    with pytest.raises(
        ValueError,
        match=re.escape(
            "`X`, `segment_ids` must have the same batch size (axis 0); got X.shape=(2, 3, 4), segment_ids.shape=(1, 3)."
        ),
    ):
        segments(X, np.zeros((1, 3), "int32"))


def test_segment_ids_of_another_length_or_hidden_states_of_another_width_are_named():
    # Both were TensorFlow's "Incompatible shapes" InvalidArgumentError from the add.
    segments = SegmentEmbedding(2, D)
    X = np.zeros((2, 3, D), "float32")
    with pytest.raises(
        ValueError,
        match=re.escape(
            "`segment_ids` must have shape (the axes of X but the last)=(2, 3); "
            "got segment_ids.shape=(2, 2)."
        ),
    ):
        segments(X, np.zeros((2, 2), "int32"))
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"The last axis of `X` must equal {D} (`num_hiddens`); got X.shape=(2, 3, {D + 2})."
        ),
    ):
        segments(X, np.zeros((2, 3), "int32"))  # built at width D
        segments(np.zeros((2, 3, D + 2), "float32"), np.zeros((2, 3), "int32"))
    # Symbolic lengths pass, and the layer still adds the rows.
    out = segments(keras.Input((None, D)), keras.Input((None,), dtype="int32"))
    assert tuple(out.shape) == (None, None, D)
    tied = TiedTokenEmbedding(V, D)
    tied(IDS)
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"The last axis of `inputs` must equal {D} (`num_hiddens`, the embedding size); "
            f"got inputs.shape=(2, 3, {D + 1})."
        ),
    ):
        tied(np.zeros((2, 3, D + 1), "float32"), reverse=True)  # was a MatMul error
    with pytest.raises(
        ValueError, match=re.escape("`reverse` must be True or False; got reverse='yes'.")
    ):
        tied(np.zeros((2, 3, D), "float32"), reverse="yes")  # a truthy string meant True
    with pytest.raises(TypeError, match=re.escape("`ids` must be integer ids; got ids=None.")):
        TokenEmbedding(V, D)(None)


# The table's gradient: dense, one row per id summed (`take_rows`).

REPEATED = np.array([[1, 1, 1, 2], [2, 3, 1, 1]], "int32")  # id 1 five times, id 2 twice


def dense_gradient(ids, upstream, num_rows):
    """d sum(rows * upstream) / d table, in numpy: each id's upstream rows summed."""
    expected = np.zeros((num_rows, upstream.shape[-1]))
    np.add.at(expected, ids.reshape(-1), upstream.reshape(-1, upstream.shape[-1]))
    return expected


@pytest.mark.tensorflow_only(reason="tf.GradientTape; JAX and PyTorch gradients are dense already")
@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("mode", ["eager", "graph", "jit"])
@pytest.mark.parametrize("layer_class", [TokenEmbedding, TiedTokenEmbedding, SegmentEmbedding])
def test_the_table_gradient_is_dense_and_sums_repeated_ids(layer_class, mode, policy):
    import tensorflow as tf

    upstream = np.random.default_rng(0).normal(size=REPEATED.shape + (D,)).astype("float32")
    if layer_class is SegmentEmbedding:
        layer = SegmentEmbedding(V, D, dtype=policy)
        call = lambda ids: layer(tf.zeros(ids.shape + (D,), layer.compute_dtype), ids)  # noqa: E731
    else:
        layer = layer_class(V, D, dtype=policy)
        call = layer
    call(REPEATED)

    def gradient(ids):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.cast(call(ids), "float32") * upstream)
        return tape.gradient(loss, layer.embeddings.value)

    if mode != "eager":
        gradient = tf.function(gradient, jit_compile=(mode == "jit"))
    grad = gradient(tf.constant(REPEATED))
    assert not isinstance(grad, tf.IndexedSlices)  # Keras' optimizers mishandle repeats in those
    assert grad.dtype == tf.float32
    tolerance = 1e-6 if policy == "float32" else 3e-2
    np.testing.assert_allclose(
        grad.numpy(), dense_gradient(REPEATED, upstream, V), rtol=tolerance, atol=tolerance
    )


def numpy_adam(table, gradients, learning_rate, clipnorm, beta_1=0.9, beta_2=0.999, eps=1e-7):
    """Keras' Adam with per-variable `clipnorm`, on dense gradients, in numpy."""
    m, v = np.zeros_like(table), np.zeros_like(table)
    for t, g in enumerate(gradients, start=1):
        g = g * min(1.0, clipnorm / max(np.linalg.norm(g), 1e-12))
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        alpha = learning_rate * math.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        table = table - alpha * m / (np.sqrt(v) + eps)
    return table


def test_adam_steps_on_repeated_ids_are_the_dense_equations():
    # Before `take_rows`, on TensorFlow the token repeated five times moved
    # about twice as far as the equations say (Adam squared each repeat).
    layer = TokenEmbedding(V, D, pad_id=None)
    inputs = keras.Input((None,), dtype="int32")
    model = keras.Model(inputs, layer(inputs))
    model.compile(optimizer=keras.optimizers.Adam(0.1, clipnorm=1.0), loss="mean_squared_error")
    targets = np.random.default_rng(1).normal(size=REPEATED.shape + (D,)).astype("float32")
    start = table(layer).astype("float64")
    tables, gradients = start.copy(), []
    for _ in range(3):  # the dense gradient of the mean squared error at the current table
        upstream = 2.0 * (tables[REPEATED] - targets) / targets.size
        gradients.append(dense_gradient(REPEATED, upstream, V))
        tables = numpy_adam(start, gradients, 0.1, 1.0)
        model.train_on_batch(REPEATED, targets)
    np.testing.assert_allclose(table(layer), tables, rtol=1e-4, atol=1e-5)
