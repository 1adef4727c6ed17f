"""Tests for `keras_attention/_checks.py`: the one set of argument checks."""

import math
import re

import keras
import numpy as np
import pytest
from keras import ops

from keras_attention import _checks

NAN, INF = float("nan"), float("inf")


def _message(name, rule, shown):
    return re.escape(f"`{name}` must be {rule}; got {name}={shown}.")


@pytest.mark.parametrize("value", [1, 7, np.int64(3), np.int32(1), np.uint8(2), np.array(5)])
def test_positive_int_accepts_python_and_numpy_integers(value):
    got = _checks.check_positive_int("num_blks", value)
    assert got == int(value) and type(got) is int


@pytest.mark.parametrize(
    "value, shown",
    [
        (0, "0"),
        (-3, "-3"),
        (np.int64(0), "0"),
        (1.5, "1.5"),
        (2.0, "2.0"),
        (True, "True"),
        (np.bool_(True), "True"),
        ("2", "'2'"),
        (None, "None"),
        (NAN, "nan"),
        (np.array([2]), "array([2])"),
    ],
)
def test_positive_int_rejects(value, shown):
    with pytest.raises(ValueError, match=_message("num_blks", "a positive integer", shown)):
        _checks.check_positive_int("num_blks", value)


def test_optional_variants_accept_none_and_say_so():
    assert _checks.check_positive_int("max_len", None, allow_none=True) is None
    assert _checks.check_bool("use_fused_op", None, allow_none=True) is None
    assert _checks.check_positive_float("width", None, allow_none=True) is None
    assert _checks.check_choice("kernel", None, ["a"], allow_none=True) is None
    with pytest.raises(ValueError, match=_message("max_len", "None or a positive integer", "0")):
        _checks.check_positive_int("max_len", 0, allow_none=True)
    with pytest.raises(ValueError, match=_message("use_fused_op", "True, False or None", "1")):
        _checks.check_bool("use_fused_op", 1, allow_none=True)


@pytest.mark.parametrize("value", [0, 5, np.int64(0)])
def test_non_negative_int_accepts(value):
    assert _checks.check_non_negative_int("index", value) == int(value)


@pytest.mark.parametrize("value, shown", [(-1, "-1"), (0.0, "0.0"), (False, "False")])
def test_non_negative_int_rejects(value, shown):
    with pytest.raises(ValueError, match=_message("index", "a non-negative integer", shown)):
        _checks.check_non_negative_int("index", value)


@pytest.mark.parametrize("value", [0, 99, np.int64(0), np.int16(42)])
def test_int_in_range_accepts(value):
    assert _checks.check_int_in_range("pad_id", value, 0, 100, high_name="vocab_size") == int(value)


@pytest.mark.parametrize(
    "value, shown", [(-1, "-1"), (100, "100"), (np.int64(100), "100"), (1.0, "1.0"), (True, "True")]
)
def test_int_in_range_rejects_and_names_the_bound(value, shown):
    rule = "an integer in [0, vocab_size=100)"
    with pytest.raises(ValueError, match=_message("pad_id", rule, shown)):
        _checks.check_int_in_range("pad_id", value, 0, 100, high_name="vocab_size")


def test_int_in_closed_range_includes_the_bound():
    assert _checks.check_int_in_range("k", 5, 0, 5, closed=True) == 5
    with pytest.raises(ValueError, match=_message("k", "an integer in [0, 5]", "6")):
        _checks.check_int_in_range("k", 6, 0, 5, closed=True)
    with pytest.raises(ValueError, match=_message("pad_id", "None or an integer in [0, 3)", "3")):
        _checks.check_int_in_range("pad_id", 3, 0, 3, allow_none=True)


@pytest.mark.parametrize(
    "value", [1e-5, 1, 2.5, np.float32(0.5), np.float64(3.0), np.int64(2), 1e300]
)
def test_positive_float_accepts_finite_positive_numbers(value):
    got = _checks.check_positive_float("epsilon", value)
    assert got == float(value) and type(got) is float


@pytest.mark.parametrize(
    "value, shown",
    [
        (0, "0"),
        (0.0, "0.0"),
        (-1e-3, "-0.001"),
        (NAN, "nan"),
        (INF, "inf"),
        (-INF, "-inf"),
        (np.float32("nan"), "nan"),
        (True, "True"),
        ("1e-5", "'1e-5'"),
        (None, "None"),
    ],
)
def test_positive_float_rejects_nan_inf_and_non_positive(value, shown):
    with pytest.raises(ValueError, match=_message("epsilon", "a positive finite number", shown)):
        _checks.check_positive_float("epsilon", value)


def test_float_in_range_bounds():
    assert _checks.check_float_in_range("p", 1.0, 0.0, 1.0, high_closed=True) == 1.0
    assert _checks.check_float_in_range("p", 0, 0.0, 1.0) == 0.0
    for value, shown in ((1.0, "1.0"), (NAN, "nan"), (-0.5, "-0.5")):
        with pytest.raises(ValueError, match=_message("p", "a number in [0.0, 1.0)", shown)):
            _checks.check_float_in_range("p", value, 0.0, 1.0)
    with pytest.raises(ValueError, match=_message("p", "a number in (0.0, 1.0]", "0.0")):
        _checks.check_float_in_range("p", 0.0, 0.0, 1.0, low_closed=False, high_closed=True)


@pytest.mark.parametrize("value", [0, 0.0, 0.5, np.float32(0.25), 0.999])
def test_dropout_accepts_rates(value):
    assert _checks.check_dropout(value) == float(value)


@pytest.mark.parametrize(
    "value, shown",
    [
        (1.0, "1.0"),
        (1, "1"),
        (-0.1, "-0.1"),
        (NAN, "nan"),
        (INF, "inf"),
        ("x", "'x'"),
        (True, "True"),
        (None, "None"),
    ],
)
def test_dropout_rejects(value, shown):
    with pytest.raises(ValueError, match=_message("dropout", "a float in [0, 1)", shown)):
        _checks.check_dropout(value)
    with pytest.raises(ValueError, match=_message("emb_dropout", "a float in [0, 1)", shown)):
        _checks.check_dropout(value, "emb_dropout")


@pytest.mark.parametrize("value", [True, False, np.bool_(True)])
def test_bool_accepts(value):
    got = _checks.check_bool("use_bias", value)
    assert got == bool(value) and type(got) is bool


@pytest.mark.parametrize(
    "value, shown", [(1, "1"), (0, "0"), ("yes", "'yes'"), (None, "None"), (np.int64(1), "1")]
)
def test_bool_rejects(value, shown):
    with pytest.raises(ValueError, match=_message("use_bias", "True or False", shown)):
        _checks.check_bool("use_bias", value)


def test_choice():
    assert _checks.check_choice("kernel", "boxcar", ("gaussian", "boxcar")) == "boxcar"
    for value, shown in (("Boxcar", "'Boxcar'"), (1, "1"), (None, "None")):
        with pytest.raises(
            ValueError, match=_message("kernel", "one of ['boxcar', 'gaussian']", shown)
        ):
            _checks.check_choice("kernel", value, ("gaussian", "boxcar"))


def test_string():
    assert _checks.check_string("name", "gpt") == "gpt"
    for value, shown in (("", "''"), (3, "3"), (None, "None")):
        with pytest.raises(ValueError, match=_message("name", "a non-empty string", shown)):
            _checks.check_string("name", value)


@pytest.mark.parametrize(
    "value, expected",
    [(4, (4, 4)), (np.int64(4), (4, 4)), ((2, 3), (2, 3)), ([np.int32(2), 3], (2, 3))],
)
def test_pair_accepts(value, expected):
    assert _checks.check_pair("patch_size", value) == expected


@pytest.mark.parametrize(
    "value, shown",
    [
        (0, "0"),
        ((2, 0), "(2, 0)"),
        ((2,), "(2,)"),
        ((2, 3, 4), "(2, 3, 4)"),
        ((2, 1.5), "(2, 1.5)"),
        (2.0, "2.0"),
        ((True, 2), "(True, 2)"),
    ],
)
def test_pair_rejects(value, shown):
    rule = "a positive integer or a pair of positive integers"
    with pytest.raises(ValueError, match=_message("patch_size", rule, shown)):
        _checks.check_pair("patch_size", value)


def test_heads_must_divide_hiddens():
    assert _checks.check_heads(8, np.int64(2)) == 2
    with pytest.raises(
        ValueError,
        match=re.escape(
            "`num_hiddens` must be divisible by `num_heads`; got num_hiddens=8, num_heads=3."
        ),
    ):
        _checks.check_heads(8, 3)
    with pytest.raises(ValueError, match=_message("num_heads", "a positive integer", "0")):
        _checks.check_heads(8, 0)


def test_activation_and_initializer():
    assert _checks.check_activation("activation", "gelu") == "gelu"
    for value, shown in (("nope", "'nope'"), (None, "None"), (3, "3")):
        with pytest.raises(
            ValueError, match=_message("activation", "the name of a Keras activation", shown)
        ):
            _checks.check_activation("activation", value)
    assert isinstance(_checks.check_initializer("initializer", "zeros"), keras.initializers.Zeros)
    for value, shown in (("nope", "'nope'"), (None, "None"), (3, "3")):
        with pytest.raises(
            ValueError, match=_message("initializer", "a Keras initializer or its name", shown)
        ):
            _checks.check_initializer("initializer", value)


def test_tensor_dtype_checks_raise_type_errors():
    _checks.check_float_tensor("queries", np.zeros((2,), "float16"))
    _checks.check_int_tensor("ids", ops.zeros((2,), "int32"))
    with pytest.raises(
        TypeError, match=re.escape("`queries` must be a float tensor; got queries.dtype=int32.")
    ):
        _checks.check_float_tensor("queries", ops.zeros((2,), "int32"))
    with pytest.raises(
        TypeError, match=re.escape("`ids` must be token ids (integers); got ids.dtype=float32.")
    ):
        _checks.check_int_tensor("ids", keras.Input((3,)), what="token ids (integers)")


def test_tensor_checks_name_an_argument_that_is_no_tensor():
    # `None` or a list where a tensor belongs was an AttributeError on `.dtype`.
    for check, what in (
        (_checks.check_float_tensor, "a float tensor"),
        (_checks.check_int_tensor, "an integer tensor"),
        (_checks.check_mask_tensor, 'a boolean "may attend" mask'),
    ):
        with pytest.raises(TypeError, match=re.escape(f"`keys` must be {what}; got keys=None.")):
            check("keys", None)
        with pytest.raises(TypeError, match=re.escape(f"`keys` must be {what}; got keys=a list.")):
            check("keys", [[1.0, 2.0]])


def test_same_batch():
    _checks.check_same_batch(("queries", (2, 3, 4)), ("keys", (None, 5, 4)), ("valid_lens", None))
    message = "`queries`, `keys`, `values` must have the same batch size (axis 0); got queries.shape=(2, 3, 4), keys.shape=(1, 5, 4)."
    with pytest.raises(ValueError, match=re.escape(message)):
        _checks.check_same_batch(
            ("queries", (2, 3, 4)), ("keys", (1, 5, 4)), ("values", (None, 5, 4))
        )


def test_concrete_value_of_eager_and_symbolic_tensors():
    np.testing.assert_array_equal(_checks.concrete_value([1, 2]), [1, 2])
    np.testing.assert_array_equal(_checks.concrete_value(ops.convert_to_tensor([3])), [3])
    assert _checks.concrete_value(keras.Input((3,))) is None
    assert math.isclose(float(_checks.concrete_value(np.float32(0.5))), 0.5)


@pytest.mark.tensorflow_only(reason="tf.function")
def test_concrete_value_of_traced_tensor_is_none():
    import tensorflow as tf

    seen = []

    @tf.function
    def traced(x):
        seen.append(_checks.concrete_value(x))
        return x

    traced(tf.constant([1, 2]))
    assert seen == [None]


def test_blocks_and_pad_id():
    assert _checks.check_blocks(np.int64(8), 16, 2, 1, 0) == (8, 16, 2, 1, 0.0)
    with pytest.raises(ValueError, match=_message("mlp_num_hiddens", "a positive integer", "0")):
        _checks.check_blocks(8, 0, 2, 1, 0.1, ffn_name="mlp_num_hiddens")
    with pytest.raises(ValueError, match=_message("blk_dropout", "a float in [0, 1)", "1.0")):
        _checks.check_blocks(8, 16, 2, 1, 1.0, dropout_name="blk_dropout")
    sizes = {"src_vocab_size": 12, "tgt_vocab_size": 10}
    assert _checks.check_pad_id(np.int64(9), sizes) == 9
    assert _checks.check_pad_id(None, sizes, allow_none=True) is None
    with pytest.raises(
        ValueError, match=_message("pad_id", "an integer in [0, tgt_vocab_size=10)", "10")
    ):
        _checks.check_pad_id(10, sizes)


def test_shape_and_sequence_tensor():
    _checks.check_shape("keys_mask", (None, 5), (2, 5), "batch, num_keys")
    for shape in ((2, 3), (2, 5, 1)):
        with pytest.raises(
            ValueError,
            match=re.escape(
                f"`keys_mask` must have shape (batch, num_keys)=(2, 5); got keys_mask.shape={shape}."
            ),
        ):
            _checks.check_shape("keys_mask", shape, (2, 5), "batch, num_keys")
    _checks.check_sequence_tensor("X", np.zeros((2, 3, 4), "float32"), 4)
    with pytest.raises(
        TypeError, match=re.escape("`X` must be a float tensor; got X.dtype=int64.")
    ):
        _checks.check_sequence_tensor("X", np.zeros((2, 3, 4), "int64"), 4)
    with pytest.raises(
        ValueError,
        match=re.escape("The last axis of `X` must equal `num_hiddens`=4; got X.shape=(2, 3, 5)."),
    ):
        _checks.check_sequence_tensor("X", np.zeros((2, 3, 5), "float32"), 4, why="")


def test_index():
    assert _checks.check_index("start_index", np.int64(3)) == 3
    assert _checks.check_index("start_index", ops.convert_to_tensor(2)) == 2
    assert _checks.check_index("start_index", keras.Input(batch_shape=(), dtype="int32")) is None
    with pytest.raises(
        ValueError,
        match=re.escape("`start_index` must be a non-negative integer; got start_index=-1."),
    ):
        _checks.check_index("start_index", ops.convert_to_tensor(-1))
    with pytest.raises(
        ValueError,
        match=re.escape(
            "`start_index` must be an integer or an integer scalar tensor; got start_index=True."
        ),
    ):
        _checks.check_index("start_index", True)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "`start_index` must be an integer or an integer scalar tensor; got start_index.shape=(), dtype=float32."
        ),
    ):
        _checks.check_index("start_index", ops.convert_to_tensor(1.0))


def test_features():
    _checks.check_features("X", (None, 4), 4)
    _checks.check_features("X", (2, 3, 5, None), 4)
    with pytest.raises(
        ValueError,
        match=re.escape("`X` must have rank >= 2 (batch, ..., features); got X.shape=(4,)."),
    ):
        _checks.check_features("X", (4,), 4)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "The last axis of `X` must equal 4 (the width the layer was built with); got X.shape=(2, 5)."
        ),
    ):
        _checks.check_features("X", (2, 5), 4)


def test_static_sizes():
    assert _checks.static_size(np.int64(3)) == 3 and _checks.static_size(None) is None
    assert _checks.sizes_differ(2, 3) and not _checks.sizes_differ(2, None)
    assert not _checks.sizes_differ(None, None) and not _checks.sizes_differ(4, np.int32(4))


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="JAX's symbolic sizes")
def test_jax_symbolic_sizes_are_unknown():
    from jax import export

    (size,) = export.symbolic_shape("(n)", constraints=["n>=2"])
    assert _checks.static_size(size) is None and not _checks.sizes_differ(size, 2)
    _checks.check_shape(
        "cache", (size, 2, size, 8), (2, 2, None, 8), "batch, 2, cache_length, num_hiddens"
    )


def test_numpy_scalars_are_accepted_by_the_checks_outside_the_layers(tmp_path):
    """Issue 14: numpy integers (and floats) wherever a Python number is, stored as Python ones."""
    from keras_attention import distribute, metrics, scaling
    from keras_attention.recipes import training
    from keras_attention.viz.callbacks import AttentionImages

    for cls in (metrics.MaskedSparseCategoricalCrossentropy, metrics.MaskedAccuracy):
        made = cls(pad_id=np.int64(3))
        assert made.pad_id == 3 and type(made.pad_id) is int
        assert type(made.get_config()["pad_id"]) is int
    budget = training.TimeBudget(
        np.int64(2), peak_learning_rate=np.float32(0.5), warmup=np.float64(0.25)
    )
    assert budget.seconds == 120.0 and budget.peak_learning_rate == 0.5 and budget.warmup == 0.25
    assert distribute._check_num_devices(np.int64(2)) == 2
    assert AttentionImages(tmp_path, inputs=None, every=np.int32(2)).every == 2
    x, y = [1.0, 2.0, 4.0, 8.0], [5.0, 3.5, 2.8, 2.4]
    assert scaling.fit_power_law(x, y, irreducible=True, num_grid=np.int64(50)) == (
        scaling.fit_power_law(x, y, irreducible=True, num_grid=50)
    )


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: __import__("keras_attention").metrics.MaskedAccuracy(pad_id=np.bool_(True)),
            "`pad_id` must be an int; got pad_id=True.",
        ),
        (
            lambda: __import__("keras_attention").metrics.MaskedAccuracy(pad_id=1.0),
            "`pad_id` must be an int; got pad_id=1.0.",
        ),
    ],
)
def test_numpy_bools_and_floats_are_still_refused_as_ints(make, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make()
