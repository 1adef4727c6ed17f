"""The vision recipe: images, a vision transformer sized for them, training, a run.

prepared = recipes.vision_data("path/to/folder")    # one sub-folder per class
model = recipes.build_vision_model(len(prepared.class_names), prepared.num_channels)
run = recipes.train_vision(data="shapes", epochs=3, out="outputs/shapes")
run.classify(["shoe.png"])
"""

import dataclasses
import pathlib

import numpy as np

from keras_attention import _checks, _io, data, models
from keras_attention import export as _export
from keras_attention.recipes import configs, rundir, training
from keras_attention.recipes.rundir import Run, read_images, to_channels

__all__ = ["VisionData", "vision_data", "build_vision_model", "train_vision"]

NAMED_DATA = ("shapes", "fashion-mnist")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp")


@dataclasses.dataclass
class VisionData:
    """Images ready for `fit`: `tf.data` pipelines of `(images, labels)` batches.

    Attributes:
        train, test: `tf.data.Dataset`s of images `(B, H, W, C)` (uint8 or
            float 0..255) and int labels `(B,)`.
        class_names: list of str, in label order.
        num_channels: int. `C`.
        num_train, num_test: int. Images in each.
    """

    train: object
    test: object
    class_names: list
    num_channels: int
    num_train: int
    num_test: int


def _image_files(folder):
    """The image files under `folder` (those `image_dataset_from_directory` reads), sorted."""
    return [p for p in sorted(folder.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES]


def _folder_channels(folder, limit=20):
    """1 when the first `limit` images of `folder` are all grayscale, else 3."""
    import tensorflow as tf

    for path in _image_files(folder)[:limit]:
        try:
            image = tf.io.decode_image(tf.io.read_file(str(path)), expand_animations=False)
        except tf.errors.InvalidArgumentError:
            raise ValueError(
                f"Cannot read the image {path}: not a PNG, JPEG, GIF or BMP."
            ) from None
        if image.shape[-1] not in (1, 2):
            return 3
    return 1


def _folder_data(folder, img_size, batch_size, val_fraction, seed):
    import keras
    import tensorflow as tf

    folder = pathlib.Path(folder)
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise ValueError(
            f"`data` {str(folder)!r} must hold one sub-folder of images per class (at least 2); "
            f"found {len(classes)}: {classes}."
        )
    num_channels = _folder_channels(folder)
    train, test = keras.utils.image_dataset_from_directory(
        folder,
        validation_split=val_fraction,
        subset="both",
        seed=seed,
        image_size=(img_size, img_size),
        batch_size=batch_size,
        color_mode="grayscale" if num_channels == 1 else "rgb",
        verbose=False,
    )
    try:  # counting decodes every image
        num_test = int(sum(1 for _ in test.unbatch()))
        num_train = int(sum(1 for _ in train.unbatch()))
    except tf.errors.InvalidArgumentError:
        for path in _image_files(folder):
            read_images(path)  # a ValueError naming the file that is no image
        raise
    if num_test == 0:
        raise ValueError(
            f"{folder} left no held-out images ({num_train} training images); add images or "
            "raise `val_fraction`."
        )
    return VisionData(
        train.prefetch(2),
        test.prefetch(2),
        list(train.class_names),
        num_channels,
        num_train,
        num_test,
    )


def vision_data(
    data_spec="shapes",
    batch_size=128,
    num_train=None,
    num_test=None,
    data_dir=None,
    seed=0,
    img_size=None,
    val_fraction=0.2,
):
    """Images for a named data set or the user's folder.

    Args:
        data_spec: `"shapes"` (generated, offline), `"fashion-mnist"`, or a
            folder with one sub-folder of images per class (PNG, JPEG, GIF,
            BMP; any size, grayscale or RGB), read with
            `keras.utils.image_dataset_from_directory` and resized to `img_size`.
        batch_size: int.
        num_train, num_test: int or None. Images to use (named sets).
        data_dir: folder searched first for Fashion-MNIST's files.
        seed: int.
        img_size: int or None. The model's image size; named sets are resized
            in the pipeline when it differs. Defaults to the set's config.
        val_fraction: float. Held-out share of a folder. Defaults to `0.2`.

    Returns:
        A `VisionData`.
    """
    batch_size = _checks.check_positive_int("batch_size", batch_size)
    num_train = _checks.check_positive_int("num_train", num_train, allow_none=True)
    num_test = _checks.check_positive_int("num_test", num_test, allow_none=True)
    val_fraction = _checks.check_float_in_range("val_fraction", val_fraction, 0.0, 1.0)
    key = data_spec if data_spec in NAMED_DATA else "folder"
    img_size = img_size or configs.VISION_CONFIGS[key]["img_size"]
    if key == "folder":
        path = pathlib.Path(data_spec)
        if not path.is_dir():
            raise FileNotFoundError(
                f"`data` must be one of {', '.join(NAMED_DATA)} or a folder of class "
                f"sub-folders; {str(data_spec)!r} is neither."
            )
        return _folder_data(path, img_size, batch_size, val_fraction, seed)
    if key == "shapes":
        train = data.generate_shapes(num_train or 10000, seed=seed)
        test = data.generate_shapes(num_test or 2000, seed=seed + 1)
        names = list(data.SHAPE_LABELS)
    else:
        (x_train, y_train), (x_test, y_test) = data.load_fashion_mnist(data_dir=data_dir)
        train, test = (
            (x_train[:num_train], y_train[:num_train]),
            (x_test[:num_test], y_test[:num_test]),
        )
        names = list(data.FASHION_MNIST_LABELS)
    resize = img_size if img_size != train[0].shape[1] else None
    return VisionData(
        data.image_dataset(*train, batch_size, seed=seed, resize=resize),
        data.image_dataset(*test, batch_size, shuffle=False, resize=resize),
        names,
        1,
        len(train[0]),
        len(test[0]),
    )


def write_examples(dataset, class_names, folder, count=4):
    """Writes the first `count` images of `dataset` as `folder/NUMBER_LABEL.png`.

    So that `keras-attention classify` has files to try right after
    training (the README's command). Returns the paths.
    """
    import tensorflow as tf

    paths = []
    for images, labels in dataset.unbatch().take(count).batch(count):
        for i, (image, label) in enumerate(zip(images.numpy(), labels.numpy())):
            pixels = np.clip(np.round(image), 0, 255).astype("uint8")
            path = pathlib.Path(folder) / f"{i}_{class_names[int(label)].replace(' ', '_')}.png"
            _io.write_bytes(path, tf.io.encode_png(pixels).numpy())
            paths.append(path)
    return paths


def build_vision_model(num_classes, num_channels=1, **config):
    """`keras_attention.models.vision_transformer` with D2L's argument names.

    `config` holds `img_size`, `patch_size`, `num_hiddens`, `mlp_num_hiddens`,
    `num_heads`, `num_blks` and `dropout` (used for both `emb_dropout` and
    `blk_dropout`, as in D2L).
    """
    config = dict(config)
    dropout = config.pop("dropout")
    return models.vision_transformer(
        **config,
        emb_dropout=dropout,
        blk_dropout=dropout,
        num_classes=num_classes,
        num_channels=num_channels,
    )


def train_vision(
    data="shapes",
    epochs=10,
    batch_size=128,
    lr=0.001,
    lr_schedule="constant",
    warmup_steps=None,
    num_train=None,
    num_test=None,
    val_fraction=0.2,
    model_config=None,
    data_dir=None,
    out="outputs/vision",
    export=None,
    seed=0,
    verbose=1,
    distribute="none",
    num_cpu_devices=None,
    precision="float32",
):
    """Trains a vision transformer, reports test accuracy and writes a run directory.

    The recipe of `keras-attention train vision` (same arguments as its
    flags); `model_config` overrides `configs.VISION_CONFIGS[data]` (e.g.
    `configs.D2L_VISION_CONFIG` for D2L's size).
    `precision="bf16"` builds and trains in Keras' `mixed_bfloat16`
    (`training.precision_scope`; a warning where the CPU has no bfloat16 units).

    Returns:
        The run (`VisionRun`), as `keras_attention.load_run(out)` returns it.
    """
    return rundir.run_recipe(_train_vision, dict(locals()))


def _compile_vision(model, options, num_train):
    """Compiles `model` with Adam on the options' learning-rate schedule over the whole run."""
    import keras

    o = options
    steps = -(-num_train // o["batch_size"]) * o["epochs"]
    model.compile(
        optimizer=keras.optimizers.Adam(
            training.learning_rate_schedule(
                o["lr_schedule"], o["lr"], total_steps=max(steps, 2), warmup_steps=o["warmup_steps"]
            )
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=rundir.jit_compile(o["distribute"], "auto"),
    )


def _train_vision(options, out):
    o = options
    key = o["data"] if o["data"] in NAMED_DATA else "folder"
    config = {**configs.VISION_CONFIGS[key], **(o["model_config"] or {})}
    prepared = vision_data(
        o["data"],
        o["batch_size"],
        o["num_train"],
        o["num_test"],
        o["data_dir"],
        o["seed"],
        config["img_size"],
        o["val_fraction"],
    )
    model = build_vision_model(len(prepared.class_names), prepared.num_channels, **config)
    _compile_vision(model, o, prepared.num_train)
    print(
        f"{o['data']}: {prepared.num_train} train / {prepared.num_test} test images, "
        f"{len(prepared.class_names)} classes, {prepared.num_channels} channel(s); model "
        f"{model.name}: {model.count_params():,} parameters"
    )
    history = training.fit_with_logs(
        model,
        prepared.train,
        validation_data=prepared.test,
        epochs=o["epochs"],
        out_dir=out,
        verbose=o["verbose"],
        keep_backup=True,
        settings=rundir.training_settings(o),
    )
    run = VisionRun.write(
        out, model, prepared.class_names, prepared.num_channels, config, options=o
    )
    test_loss, test_accuracy = model.evaluate(prepared.test, verbose=0)
    scores = {
        "test_accuracy": float(test_accuracy),
        "test_loss": float(test_loss),
        "num_train": prepared.num_train,
        "num_test": prepared.num_test,
        "epochs": len(history),
        "chance": float(1 / len(prepared.class_names)),
    }
    run.write_scores(scores)
    examples = write_examples(prepared.test, prepared.class_names, out / "examples")
    print(
        f"test accuracy {test_accuracy:.4f} (loss {test_loss:.4f}) on {prepared.num_test} "
        f"images; {len(examples)} held-out images as PNG files in {out / 'examples'}"
    )
    print(
        f"wrote {out / 'history.csv'}, {out / 'loss.png'}, {out / 'model.keras'}, "
        f"{out / 'scores.json'}"
    )
    return run


class VisionRun(Run):
    """A run of `recipes.train_vision`: classify, evaluate, export."""

    kind = "vision"
    info_keys = ("class_names",)

    @classmethod
    def write(cls, out, model, class_names, num_channels, config, options=None):
        info = {
            "class_names": list(class_names),
            "num_channels": int(num_channels),
            "config": config,
        }
        return cls._write_common(out, model, info, options)

    @property
    def class_names(self):
        return list(self.info["class_names"])

    @property
    def num_channels(self):
        return int(self.info.get("num_channels", 1))

    def classify(self, images, top_k=1):
        """Classifies images: files, or uint8 arrays `(H, W)`, `(H, W, C)` or a batch.

        Channels are converted as the export converts them (alpha dropped,
        RGB to gray with ITU-R 601 weights or gray repeated into RGB); the
        model resizes itself.

        Returns:
            One list per image of `top_k` `(label, probability)` pairs, best first.
        """
        top_k = _checks.check_int_in_range(
            "top_k", top_k, 1, len(self.class_names), high_name="the number of classes", closed=True
        )
        results = []
        for image in read_images(images):
            x = to_channels(image, self.num_channels)[None].astype("float32")  # (1, H, W, C)
            logits = np.asarray(self.model.predict(x, verbose=0), "float64")[0]
            probabilities = np.exp(logits - logits.max())
            probabilities /= probabilities.sum()
            best = np.argsort(-probabilities, kind="stable")[:top_k]
            results.append([(self.class_names[i], float(probabilities[i])) for i in best])
        return results

    def evaluate(self):
        """Test loss and accuracy on the run's held-out images (rebuilt)."""
        o = self.options
        prepared = vision_data(
            o.get("data", "shapes"),
            batch_size=o.get("batch_size", 128),
            num_train=o.get("num_train"),
            num_test=o.get("num_test"),
            data_dir=o.get("data_dir"),
            seed=o.get("seed", 0),
            img_size=self.info.get("config", {}).get("img_size"),
        )
        loss, accuracy = self.model.evaluate(prepared.test, verbose=0)
        return {"test_loss": float(loss), "test_accuracy": float(accuracy)}

    def export(self, path=None, overwrite=True, jit_compile=True):
        """Exports the image-classifier SavedModel; returns its path.

        `jit_compile` is accepted like the other runs' and changes nothing:
        the classifier is one forward pass, run op by op, never with XLA.
        """
        return _export.export_image_classifier(
            self.model,
            self.class_names,
            path=path,
            num_channels=self.num_channels,
            overwrite=overwrite,
            metadata={"run": str(self.path.resolve())},
        )
