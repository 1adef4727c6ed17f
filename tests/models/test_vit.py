import os
import re
import tempfile

import keras
import numpy as np
import pytest
from keras import ops

from keras_attention.models import vision_transformer

H, K = 2, 3  # num_heads, num_classes
SMALL = dict(
    img_size=8,
    patch_size=4,
    num_hiddens=8,
    mlp_num_hiddens=16,
    num_heads=H,
    num_blks=1,
    emb_dropout=0.1,
    blk_dropout=0.1,
    num_classes=K,
)
P = (8 // 4) ** 2  # patches


def images(n, size=8, channels=1, seed=0):
    """uint8 images with values 0..255."""
    return np.random.RandomState(seed).randint(0, 256, (n, size, size, channels)).astype("uint8")


def to_np(x):
    return ops.convert_to_numpy(x)


def test_logits_shape_dtype_and_layer_names():
    model = vision_transformer(**SMALL)
    logits = model(images(2), training=False)
    assert tuple(logits.shape) == (2, K)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    assert model.input_shape == (None, None, None, 1)
    names = [layer.name for layer in model.layers]
    for name in (
        "rescaling",
        "resizing",
        "patch_embedding",
        "cls_token",
        "pos_embedding",
        "emb_dropout",
        "vit_block_0",
        "final_norm",
        "take_cls_token",
        "head",
    ):
        assert name in names
    assert model.get_layer("pos_embedding").max_len == P + 1


def test_keras_round_trip_is_bit_identical():
    model = vision_transformer(**SMALL, num_channels=3, use_bias=True)
    x = images(2, channels=3)
    before = to_np(model(x, training=False))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "vit.keras")
        model.save(path)
        restored = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(to_np(restored(x, training=False)), before)


def test_each_image_is_classified_independently_of_its_batch():
    model = vision_transformer(**SMALL)
    x = images(3)
    together = to_np(model(x, training=False))
    for i in range(3):
        alone = to_np(model(x[i : i + 1], training=False))
        np.testing.assert_allclose(together[i : i + 1], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_logits_are_finite_float32(policy):
    keras.config.set_dtype_policy(policy)
    model = vision_transformer(**SMALL, return_attention_scores=True)
    out = model(images(2), training=False)
    assert keras.backend.standardize_dtype(out["logits"].dtype) == "float32"
    for value in out.values():
        assert np.all(np.isfinite(to_np(ops.cast(value, "float32"))))


def test_uint8_and_float32_images_give_the_same_logits():
    model = vision_transformer(**SMALL)
    x = images(2)
    np.testing.assert_array_equal(
        to_np(model(x.astype("float32"), training=False)), to_np(model(x, training=False))
    )
    np.testing.assert_array_equal(
        model.predict(x.astype("float32"), verbose=0), model.predict(x, verbose=0)
    )


def test_images_of_another_size_are_resized_inside():
    model = vision_transformer(**SMALL)
    raw = images(2, size=12)
    logits = to_np(model(raw, training=False))
    assert logits.shape == (2, K) and np.all(np.isfinite(logits))
    # The same as resizing first: resizing an image already of `img_size` is the identity.
    resized = to_np(keras.layers.Resizing(8, 8)(raw.astype("float32")))
    np.testing.assert_allclose(to_np(model(resized, training=False)), logits, atol=1e-4)


def test_fixed_input_size():
    model = vision_transformer(**SMALL, num_channels=3, input_size=(12, 10))
    assert model.input_shape == (None, 12, 10, 3)
    assert tuple(model(images(1, size=12, channels=3)[:, :, :10]).shape) == (1, K)


def test_attention_scores_outputs():
    model = vision_transformer(**{**SMALL, "num_blks": 2}, return_attention_scores=True)
    out = model(images(2), training=False)
    assert sorted(out) == ["attention_0", "attention_1", "logits"]
    assert tuple(out["logits"].shape) == (2, K)
    for i in range(2):
        weights = to_np(out[f"attention_{i}"])
        assert weights.shape == (2, H, 1 + P, 1 + P)
        np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    plain = vision_transformer(**SMALL)
    assert plain.get_layer("vit_block_0").name == "vit_block_0"


@pytest.mark.xla(reason="fit with jit_compile=True")
def test_one_jit_compiled_fit_step_has_finite_loss():
    model = vision_transformer(**SMALL)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=True,
    )
    history = model.fit(images(4), np.array([0, 1, 2, 0]), batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_blks": 0}, "`num_blks` must be a positive integer; got num_blks=0."),
        ({"num_classes": 1.5}, "`num_classes` must be a positive integer; got num_classes=1.5."),
        ({"num_channels": 0}, "`num_channels` must be a positive integer"),
        ({"emb_dropout": 1.0}, "`emb_dropout` must be a float in [0, 1); got emb_dropout=1.0."),
        ({"blk_dropout": -0.1}, "`blk_dropout` must be a float in [0, 1); got blk_dropout=-0.1."),
        ({"img_size": 10}, "`img_size` must be divisible by `patch_size`"),
        (
            {"input_size": (8, 8, 8)},
            "`input_size` must be a positive integer or a pair of positive "
            "integers; got input_size=(8, 8, 8).",
        ),
        ({"num_heads": 3}, "`num_hiddens` must be divisible by `num_heads`"),
        ({"return_attention_scores": "yes"}, "`return_attention_scores` must be True or False"),
        ({"num_blks": 1.5}, "`num_blks` must be a positive integer; got num_blks=1.5."),
        ({"num_hiddens": 0}, "`num_hiddens` must be a positive integer; got num_hiddens=0."),
        (
            {"mlp_num_hiddens": -1},
            "`mlp_num_hiddens` must be a positive integer; got mlp_num_hiddens=-1.",
        ),
        (
            {"patch_size": (4, 0)},
            "`patch_size` must be a positive integer or a pair of positive "
            "integers; got patch_size=(4, 0).",
        ),
        (
            {"blk_dropout": float("nan")},
            "`blk_dropout` must be a float in [0, 1); got blk_dropout=nan.",
        ),
        ({"use_bias": "no"}, "`use_bias` must be True or False; got use_bias='no'."),
        ({"name": ""}, "`name` must be a non-empty string; got name=''."),
    ],
)
def test_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        vision_transformer(**{**SMALL, **kwargs})


def test_numpy_integer_arguments_are_accepted():
    model = vision_transformer(
        **{k: np.int64(v) if isinstance(v, int) else v for k, v in SMALL.items()}
    )
    assert tuple(model(images(1), training=False).shape) == (1, K)
