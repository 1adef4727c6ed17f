"""The shared layer test, called by every layer's test file.

`run_layer_test` checks what every layer of the package promises (DESIGN.md,
"Rules every layer keeps"): the config round trip, a build on symbolic
`keras.Input`s with unknown batch and lengths, an eager run, one `fit` step,
Keras-mask propagation, `mixed_float16` / `mixed_bfloat16` without NaN or
inf, and a `.keras` save/load with `safe_mode=True` that gives the same
outputs bit for bit. The layer's own numeric tests come after it, in its file.
"""

import os
import tempfile

import keras
import numpy as np
from keras import ops


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _symbolic_input(array, name, shape=None):
    array = np.asarray(array)
    if shape is None:
        # Unknown batch and length(s); only the last (feature) axis is known
        # for float inputs of rank >= 3.
        if array.ndim >= 3 and array.dtype.kind == "f":
            shape = (None,) * (array.ndim - 2) + (array.shape[-1],)
        else:
            shape = (None,) * (array.ndim - 1)
    return keras.Input(shape=shape, dtype=str(array.dtype), name=name)


def run_layer_test(
    layer_cls,
    init_kwargs,
    inputs,
    call_kwargs=None,
    expected_output_shape=None,
    symbolic_shapes=None,
    input_mask=None,
    expect_output_mask=None,
    check_fit=True,
    check_mixed_precision=True,
    atol=1e-6,
):
    """Runs the checks every layer of the package must pass.

    Args:
        layer_cls: the layer class.
        init_kwargs: dict. Constructor arguments.
        inputs: numpy array or list of arrays. Positional call inputs.
        call_kwargs: dict. Extra keyword call arguments given as numpy arrays
            (e.g. `valid_lens`) or Python values (e.g. `use_causal_mask`).
            Arrays become symbolic inputs of the functional model too.
        expected_output_shape: tuple, or list of tuples for several outputs.
        symbolic_shapes: list of shapes (without batch) for the
            `keras.Input`s; defaults to unknown lengths.
        input_mask: boolean numpy array `(B, T)` or None. When given, the
            first input carries it as a Keras mask, and the test checks that
            the layer's output carries the same mask (`expect_output_mask`).
        expect_output_mask: bool. Defaults to `input_mask is not None`.
        check_fit: bool. Run one `fit` step.
        check_mixed_precision: bool. Run under `mixed_float16` and
            `mixed_bfloat16` and check that outputs are finite.
        atol: float. Tolerance between eager and functional outputs.

    Returns:
        The eager outputs (list of numpy arrays) for further checks.
    """
    call_kwargs = dict(call_kwargs or {})
    inputs = _as_list(inputs)
    array_kwargs = {k: v for k, v in call_kwargs.items() if isinstance(v, np.ndarray)}
    static_kwargs = {k: v for k, v in call_kwargs.items() if k not in array_kwargs}

    # 1. Config round trip.
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    for key in init_kwargs:
        assert key in config, f"get_config() lacks constructor argument {key!r}"
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config

    # 2. Eager run.
    eager = layer(*inputs, **call_kwargs)
    eager = [ops.convert_to_numpy(t) for t in _as_list(eager)]
    if expected_output_shape is not None:
        shapes = expected_output_shape
        if not isinstance(shapes, list):
            shapes = [shapes]
        assert [tuple(e.shape) for e in eager] == [tuple(s) for s in shapes]

    # 3. Functional model on symbolic inputs with unknown batch and lengths.
    sym_inputs = [
        _symbolic_input(x, f"input_{i}", None if symbolic_shapes is None else symbolic_shapes[i])
        for i, x in enumerate(inputs)
    ]
    sym_kwargs = {
        k: _symbolic_input(v, k)
        if v.ndim > 1
        else keras.Input(shape=(), dtype=str(v.dtype), name=k)
        for k, v in array_kwargs.items()
    }
    layer_inputs = list(sym_inputs)
    if input_mask is not None:
        sym_mask = keras.Input(shape=(None,), dtype="bool", name="input_mask")
        layer_inputs[0] = _MaskFrom()((sym_inputs[0], sym_mask))
    outputs = layer(*layer_inputs, **sym_kwargs, **static_kwargs)
    model_inputs = sym_inputs + list(sym_kwargs.values())
    if input_mask is not None:
        model_inputs.append(sym_mask)
        if expect_output_mask is None:
            expect_output_mask = True
        first = _as_list(outputs)[0]
        has_mask = getattr(first, "_keras_mask", None) is not None
        assert has_mask == expect_output_mask, (
            f"output mask present={has_mask}, expected {expect_output_mask}"
        )
    model = keras.Model(model_inputs, outputs)
    feed = list(inputs) + list(array_kwargs.values())
    if input_mask is not None:
        feed.append(np.asarray(input_mask, bool))
    functional = [ops.convert_to_numpy(t) for t in _as_list(model(feed, training=False))]
    if input_mask is None:
        for e, f in zip(eager, functional):
            np.testing.assert_allclose(f, e, atol=atol, rtol=1e-5)

    # 4. .keras round trip with safe_mode=True: identical outputs.
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        restored = keras.saving.load_model(path, safe_mode=True)
    again = [ops.convert_to_numpy(t) for t in _as_list(restored(feed, training=False))]
    for f, a in zip(functional, again):
        np.testing.assert_array_equal(a, f)

    # 5. One fit step: gradients flow and the loss is finite.
    if check_fit and model.trainable_weights:
        float_outputs = [o for o in _as_list(model.outputs)]
        model.compile(optimizer="sgd", loss=["mse"] * len(float_outputs))
        targets = [np.zeros(f.shape, "float32") for f in functional]
        history = model.fit(feed, targets, epochs=1, batch_size=len(inputs[0]), verbose=0)
        assert np.isfinite(history.history["loss"][0])

    # 6. Mixed precision: no NaN or inf.
    if check_mixed_precision:
        for policy in ("mixed_float16", "mixed_bfloat16"):
            mp_layer = layer_cls(**init_kwargs, dtype=policy)
            mp_inputs = [
                x.astype("float32") if np.asarray(x).dtype.kind == "f" else x for x in inputs
            ]
            mp_out = mp_layer(*mp_inputs, **call_kwargs)
            for t in _as_list(mp_out):
                t = ops.convert_to_numpy(ops.cast(t, "float32"))
                assert np.all(np.isfinite(t)), f"non-finite output under {policy}"
    return eager


@keras.saving.register_keras_serializable(package="keras_attention_tests")
class _MaskFrom(keras.layers.Layer):
    """Test-only layer: returns `x` carrying `mask` as its Keras mask."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs):
        x, _ = inputs
        return ops.copy(x)

    def compute_mask(self, inputs, previous_mask=None):
        return ops.cast(inputs[1], "bool")


def mask_from(x, mask):
    """Eagerly attaches a boolean Keras mask `(B, T)` to `x`."""
    return _MaskFrom()((x, ops.convert_to_tensor(np.asarray(mask, bool))))


def gradient(loss_fn, variable):
    """d loss_fn() / d variable on any backend, as a numpy array.

    Args:
        loss_fn: callable with no arguments returning a scalar tensor; it
            reads `variable` (e.g. by calling the layer that owns it).
        variable: a `keras.Variable`.

    Returns:
        A numpy array shaped like `variable`; zeros where the loss does not
        depend on it.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_fn()
        grad = tape.gradient(
            loss, variable.value, unconnected_gradients=tf.UnconnectedGradients.ZERO
        )
        return ops.convert_to_numpy(tf.convert_to_tensor(grad))
    if backend == "jax":
        import jax

        def loss_of(value):
            with keras.StatelessScope(state_mapping=[(variable, value)]):
                return loss_fn()

        return np.asarray(jax.grad(loss_of)(variable.value))
    if backend == "torch":
        import torch

        loss = loss_fn()
        grad = None
        if loss.requires_grad:  # False when no operation reads a trainable variable
            (grad,) = torch.autograd.grad(loss, variable.value, allow_unused=True)
        if grad is None:
            return np.zeros(variable.shape, variable.dtype)
        return grad.detach().cpu().numpy()
    raise NotImplementedError(f"no gradient helper for the {backend} backend")


# Bad values of the sizes every Transformer builder takes (`transformer`,
# `gpt`, `bert`, `t5`, called with num_hiddens=8, num_heads=2), and the
# message each gets.
BAD_BLOCK_ARGUMENTS = [
    ({"num_blks": 0}, "`num_blks` must be a positive integer; got num_blks=0."),
    ({"num_blks": 1.5}, "`num_blks` must be a positive integer; got num_blks=1.5."),
    ({"num_blks": np.int64(-1)}, "`num_blks` must be a positive integer; got num_blks=-1."),
    ({"num_blks": True}, "`num_blks` must be a positive integer; got num_blks=True."),
    ({"num_hiddens": 0}, "`num_hiddens` must be a positive integer; got num_hiddens=0."),
    ({"num_hiddens": 8.0}, "`num_hiddens` must be a positive integer; got num_hiddens=8.0."),
    (
        {"ffn_num_hiddens": -4},
        "`ffn_num_hiddens` must be a positive integer; got ffn_num_hiddens=-4.",
    ),
    (
        {"num_heads": 3},
        "`num_hiddens` must be divisible by `num_heads`; got num_hiddens=8, num_heads=3.",
    ),
    ({"num_heads": 0}, "`num_heads` must be a positive integer; got num_heads=0."),
    ({"dropout": 1.0}, "`dropout` must be a float in [0, 1); got dropout=1.0."),
    ({"dropout": float("nan")}, "`dropout` must be a float in [0, 1); got dropout=nan."),
    ({"dropout": "0.1"}, "`dropout` must be a float in [0, 1); got dropout='0.1'."),
    ({"max_len": 0}, "`max_len` must be a positive integer; got max_len=0."),
    ({"max_len": 16.0}, "`max_len` must be a positive integer; got max_len=16.0."),
    ({"name": ""}, "`name` must be a non-empty string; got name=''."),
    ({"name": 3}, "`name` must be a non-empty string; got name=3."),
]


def assert_keras_round_trip(model, inputs, path):
    """Saves `model` to `path` (.keras), loads it with `safe_mode=True`; returns the copy.

    The loaded model gives the same outputs bit for bit on `inputs`.
    """
    model.save(str(path))
    restored = keras.saving.load_model(str(path), safe_mode=True)
    expected, got = model(inputs, training=False), restored(inputs, training=False)
    for a, b in zip(keras.tree.flatten(expected), keras.tree.flatten(got)):
        np.testing.assert_array_equal(ops.convert_to_numpy(b), ops.convert_to_numpy(a))
    return restored


def assert_causal(call, ids, split, atol=1e-6):
    """Changing the ids at and after `split` leaves `call(ids)[:, :split]` alone.

    `call` maps `(B, T)` int ids to `(B, T, ...)` outputs (a decoder's logits).
    """
    changed = np.array(ids, copy=True)
    changed[:, split:] = (changed[:, split:] % 7) + 1
    np.testing.assert_allclose(
        ops.convert_to_numpy(call(changed))[:, :split],
        ops.convert_to_numpy(call(ids))[:, :split],
        atol=atol,
    )


def xla_functions(saved_model_dir):
    """Names of the functions in a SavedModel marked for XLA (`_XlaMustCompile`)."""
    import pathlib

    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((pathlib.Path(saved_model_dir) / "saved_model.pb").read_bytes())
    return [
        fn.signature.name
        for meta in proto.meta_graphs
        for fn in meta.graph_def.library.function
        if fn.attr["_XlaMustCompile"].b
    ]
