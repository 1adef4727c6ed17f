"""Image classifier SavedModel: uint8 images of any size and rank in a fresh process."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_attention import export
from keras_attention.data import SHAPE_LABELS, generate_shapes

NAMES = list(SHAPE_LABELS)


def _stand_in(num_classes=10, num_channels=1):
    """The vision-transformer contract: float images (B, H, W, C) in 0..255 of any size -> logits."""
    inputs = keras.Input((None, None, num_channels))
    x = keras.layers.Resizing(14, 14)(inputs)
    x = keras.layers.Rescaling(1 / 255)(x)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes)(x))


def _model(num_classes=10, num_channels=1):
    keras.utils.set_random_seed(2)
    try:
        from keras_attention.models import vision_transformer
    except ImportError:
        return _stand_in(num_classes, num_channels)
    return vision_transformer(
        img_size=16,
        patch_size=4,
        num_hiddens=16,
        mlp_num_hiddens=32,
        num_heads=2,
        num_blks=1,
        emb_dropout=0.0,
        blk_dropout=0.0,
        num_classes=num_classes,
        num_channels=num_channels,
    )


def _trained(num_channels=1):
    """A few steps on shapes, so that predictions depend on the image."""
    model = _model(num_channels=num_channels)
    x, y = generate_shapes(256, seed=0)
    x = x[..., None].astype("float32")
    if num_channels == 3:
        x = np.repeat(x, 3, axis=-1)
    model.compile(
        keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    model.fit(x, y, batch_size=64, epochs=2, verbose=0)
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = _trained()
    path = tmp_path_factory.mktemp("img") / "classifier"
    assert export.export_image_classifier(model, NAMES, path=path) == path
    return model, path


# Runs in a fresh interpreter that imports only tensorflow.
LOAD_AND_CLASSIFY = r"""
import json, sys
import numpy as np
import tensorflow as tf
assert "keras_attention" not in sys.modules
path, batches = sys.argv[1], json.loads(sys.argv[2])
loaded = tf.saved_model.load(path)
serve, gray = loaded.signatures["serving_default"], loaded.signatures["serving_grayscale"]
results = {"class_names": [c.decode() for c in loaded.class_names.numpy()], "batches": [], "errors": {}}
for spec in batches:
    x = np.asarray(spec["data"], np.uint8).reshape(spec["shape"])
    out = loaded.classify(x)
    sig = (serve if x.ndim == 4 else gray)(images=tf.constant(x))
    other = (gray if x.ndim == 4 else serve)(images=tf.constant(x))  # both take both ranks
    np.testing.assert_allclose(other["probabilities"].numpy(), sig["probabilities"].numpy())
    np.testing.assert_allclose(out["probabilities"].numpy(), sig["probabilities"].numpy(), rtol=1e-5)
    np.testing.assert_array_equal(out["labels"].numpy(), sig["labels"].numpy())
    assert out["probabilities"].dtype == tf.float32 and out["class_ids"].dtype == tf.int32
    assert out["labels"].dtype == tf.string
    results["batches"].append({k: (v.numpy().tolist() if k != "labels" else [s.decode() for s in v.numpy()])
                               for k, v in out.items()})
bad = {
    "float32": lambda: loaded.classify(np.zeros((1, 8, 8, 1), np.float32)),
    "float32_signature": lambda: serve(images=tf.zeros((1, 8, 8, 1), tf.float32)),
    "rank2": lambda: loaded.classify(np.zeros((8, 8), np.uint8)),
    "rank5_signature": lambda: serve(images=tf.zeros((1, 1, 8, 8, 1), tf.uint8)),
    "zero_height": lambda: loaded.classify(np.zeros((2, 0, 8, 1), np.uint8)),
    "zero_width_rank3": lambda: loaded.classify(np.zeros((2, 8, 0), np.uint8)),
    "five_channels": lambda: loaded.classify(np.zeros((1, 8, 8, 5), np.uint8)),
}
for name, call in bad.items():
    try:
        call()
        results["errors"][name] = None
    except Exception as err:  # the process must survive every bad call
        results["errors"][name] = type(err).__name__ + ": " + str(err)
ok = loaded.classify(np.zeros((1, 8, 8), np.uint8))  # still serving after the errors
assert ok["probabilities"].shape == (1, len(results["class_names"]))
assert "keras_attention" not in sys.modules
print("RESULT=" + json.dumps(results))
"""


def _run_fresh(path, batches):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    payload = json.dumps([{"shape": list(b.shape), "data": b.ravel().tolist()} for b in batches])
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_AND_CLASSIFY, str(path), payload],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(path.parent),
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT=")]
    assert line, proc.stdout[-2000:]
    return json.loads(line[-1][len("RESULT=") :])


def _expected(model, images):
    """In-process reference: float32 pixels straight into the Keras model."""
    x = images.astype("float32")
    if x.ndim == 3:
        x = x[..., None]
    return keras.ops.convert_to_numpy(keras.ops.softmax(model(x, training=False), axis=-1))


def test_fresh_process_classifies_both_ranks_any_size_like_python(exported):
    model, path = exported
    x, _ = generate_shapes(6, seed=7)  # (6, 28, 28)
    big, _ = generate_shapes(3, img_size=40, seed=8)  # another size
    batches = [x[..., None], x, big, np.zeros((0, 28, 28, 1), np.uint8)]
    served = _run_fresh(path, batches)
    assert served["class_names"] == NAMES
    for batch, result in zip(batches[:3], served["batches"][:3]):
        expected = _expected(model, batch)
        np.testing.assert_allclose(result["probabilities"], expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.sum(result["probabilities"], -1), 1.0, atol=1e-5)
        assert result["class_ids"] == expected.argmax(-1).tolist()
        assert result["labels"] == [NAMES[i] for i in expected.argmax(-1)]
    # (B, H, W) gives what (B, H, W, 1) gives.
    np.testing.assert_allclose(
        served["batches"][0]["probabilities"], served["batches"][1]["probabilities"], rtol=1e-5
    )
    assert served["batches"][0]["labels"] == served["batches"][1]["labels"]
    empty = served["batches"][3]
    assert empty["probabilities"] == [] and empty["class_ids"] == [] and empty["labels"] == []
    # Input-dependent outputs, so the equality checks mean something.
    assert len({tuple(np.round(p, 5)) for p in served["batches"][0]["probabilities"]}) > 1


def test_fresh_process_rejects_bad_images_clearly(exported):
    _, path = exported
    errors = _run_fresh(path, [])["errors"]
    assert errors["float32"].startswith("ValueError") and "float32" in errors["float32"]
    assert "expected to be a uint8 tensor" in errors["float32_signature"]
    for name in ("rank2", "rank5_signature"):
        assert errors[name].startswith("InvalidArgumentError"), errors[name]
        assert (
            "`images` must have shape (batch, height, width) or (batch, height, width, "
            "channels)" in errors[name]
        )
    for name in ("zero_height", "zero_width_rank3"):
        assert errors[name].startswith("InvalidArgumentError"), errors[name]
        assert "positive height and width" in errors[name]
    assert "1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA) channels" in errors["five_channels"]


def test_in_process_errors_name_the_problem(exported):
    model, _ = exported
    module = export.ImageClassifier(model, NAMES)
    with pytest.raises(TypeError, match="`images` must be uint8; got dtype float32"):
        module.classify(tf.zeros((1, 8, 8, 1)))
    with pytest.raises(ValueError, match="must have shape"):
        module.classify(tf.zeros((8, 8), tf.uint8))
    with pytest.raises(tf.errors.InvalidArgumentError, match="positive height and width"):
        module.classify(tf.zeros((1, 8, 0, 1), tf.uint8))


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_channels_convert_to_grayscale_model(exported, channels):
    model, _ = exported
    module = export.ImageClassifier(model, NAMES)
    gray, _ = generate_shapes(2, seed=3)
    x = np.repeat(gray[..., None], min(channels, 3) if channels != 2 else 1, axis=-1)
    if channels in (2, 4):
        x = np.concatenate([x, np.full_like(x[..., :1], 255)], axis=-1)  # opaque alpha
    out = module.classify(tf.constant(x))
    # Equal R, G, B make the same gray (weights sum to 1), alpha is dropped.
    np.testing.assert_allclose(
        out["probabilities"].numpy(), _expected(model, gray), rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_channels_convert_to_rgb_model(channels):
    model = _stand_in(num_channels=3)
    module = export.ImageClassifier(model, NAMES, num_channels=3)
    gray, _ = generate_shapes(2, seed=3)
    x = np.repeat(gray[..., None], min(channels, 3), axis=-1)
    if channels == 4:
        x = np.concatenate([x, np.zeros_like(x[..., :1])], axis=-1)
    out = module.classify(tf.constant(x))
    expected = _expected(model, np.repeat(gray[..., None], 3, axis=-1))
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, rtol=1e-5, atol=1e-6)


def test_rgb_to_grayscale_uses_luma_weights():
    inputs = keras.Input((None, None, 1))
    model = keras.Model(
        inputs, keras.layers.GlobalAveragePooling2D()(inputs)
    )  # "logits" = mean gray
    module = export.ImageClassifier(model, ["only"])
    red = np.zeros((1, 2, 2, 3), np.uint8)
    red[..., 0] = 100
    out = module.classify(tf.constant(red))
    assert out["probabilities"].numpy().tolist() == [[1.0]]
    assert module._to_model_channels(tf.constant(red, tf.float32)).numpy()[
        0, 0, 0, 0
    ] == pytest.approx(29.89)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(class_names=NAMES[:3]), "model's 10 classes; got 3 names"),
        (dict(class_names=[]), "class_names"),
        (dict(class_names="square"), "class_names"),
        (dict(class_names=[1, 2]), "class_names"),
        (dict(num_channels=2), "num_channels"),
    ],
)
def test_classifier_rejects_bad_arguments(kwargs, match):
    args = dict(model=_stand_in(), class_names=NAMES)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        export.ImageClassifier(**args)


def test_export_replaces_existing_atomically(tmp_path):
    dest = tmp_path / "c"
    export.export_image_classifier(_stand_in(num_classes=3), ["a", "b", "c"], path=dest)
    (dest / "stale_marker").write_text("old")
    export.export_image_classifier(_stand_in(num_classes=2), ["x", "y"], path=dest)
    assert not (dest / "stale_marker").exists()
    assert sorted(os.listdir(tmp_path)) == ["c"]  # no temp dirs left behind
    loaded = tf.saved_model.load(str(dest))
    assert loaded.classify(np.zeros((1, 5, 5), np.uint8))["probabilities"].shape == (1, 2)
    assert [c.decode() for c in loaded.class_names.numpy()] == ["x", "y"]


def test_failed_export_keeps_previous(tmp_path, monkeypatch):
    dest = tmp_path / "c"
    export.export_image_classifier(_stand_in(num_classes=3), ["a", "b", "c"], path=dest)

    def boom(*args, **kwargs):
        os.makedirs(os.path.join(args[1], "variables"), exist_ok=True)  # a half-written export
        raise OSError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        export.export_image_classifier(_stand_in(num_classes=2), ["x", "y"], path=dest)
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["c"]
    loaded = tf.saved_model.load(str(dest))
    assert loaded.classify(np.zeros((1, 5, 5), np.uint8))["probabilities"].shape == (1, 3)
