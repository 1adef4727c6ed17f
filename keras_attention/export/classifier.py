"""An image-classifier SavedModel: uint8 images of any size in, labels out.

`export_image_classifier` wraps an image classifier (e.g.
`keras_attention.models.vision_transformer`) and its class names into an
`ImageClassifier` whose signatures take uint8 images of any size and
channel count and return probabilities, class ids and label strings.

TensorFlow only (this module imports it).
"""

import keras
import tensorflow as tf

from keras_attention import _checks
from keras_attention.export._save import atomic_save, check_tensorflow_backend, resolve_path

__all__ = ["ImageClassifier", "export_image_classifier"]

# Letters in shape comments below: B batch, H height, W width, C channels, K classes.
# Any rank, so that a wrong one gets `classify`'s message instead of a signature error.
IMAGES_SPEC = tf.TensorSpec(None, tf.uint8, name="images")
RGB_TO_GRAY = (0.2989, 0.5870, 0.1140)  # ITU-R 601, as tf.image.rgb_to_grayscale


class ImageClassifier(tf.Module):
    """uint8 images in, probabilities and label strings out.

    `classify(images)` takes a batch of uint8 images `(B, H, W)` (grayscale)
    or `(B, H, W, C)` with `C` of 1 (grayscale), 2 (grayscale + alpha), 3
    (RGB) or 4 (RGBA), of any height and width. Alpha is dropped, channels
    are converted to the model's `num_channels` (grayscale is repeated into
    RGB; RGB becomes grayscale with ITU-R 601 weights), and the pixels go to
    the model as float32 in 0..255 (the model rescales and resizes itself).

    Args:
        model: a `keras.Model` mapping float32 images `(B, H, W, num_channels)`
            in 0..255 to logits `(B, K)`.
        class_names: list of `K` str. Names of the classes, in logit order.
        num_channels: int. Channels the model takes, 1 or 3. Defaults to `1`.
    """

    def __init__(self, model, class_names, num_channels=1):
        check_tensorflow_backend()
        super().__init__(name="image_classifier")
        if isinstance(class_names, (str, bytes)) or not all(
            isinstance(c, str) for c in class_names
        ):
            raise ValueError(
                f"`class_names` must be a list of str; got class_names={class_names!r}."
            )
        class_names = list(class_names)
        if not class_names:
            raise ValueError("`class_names` must not be empty; got class_names=[].")
        if not _checks.is_int(num_channels) or num_channels not in (1, 3):
            raise ValueError(f"`num_channels` must be 1 or 3; got num_channels={num_channels!r}.")
        num_channels = int(num_channels)
        num_classes = model.outputs[0].shape[-1] if getattr(model, "outputs", None) else None
        if num_classes is not None and num_classes != len(class_names):
            raise ValueError(
                f"`class_names` must name each of the model's {num_classes} classes; "
                f"got {len(class_names)} names."
            )
        self.model = model
        self.num_channels = num_channels
        self.num_classes = len(class_names)
        self.class_names = tf.Variable(
            class_names, dtype=tf.string, trainable=False, name="class_names"
        )

    @tf.function
    def classify(self, images):
        """Classifies a batch of uint8 images.

        Args:
            images: uint8 `(B, H, W)` or `(B, H, W, C)`, `C` in 1..4, `H` and
                `W` positive and any size. `B` may be 0.

        Returns:
            dict: `probabilities` `(B, K)` float32, `class_ids` `(B,)` int32,
            `labels` `(B,)` string.
        """
        if images.dtype != tf.uint8:
            raise TypeError(f"`images` must be uint8; got dtype {images.dtype.name}.")
        if images.shape.rank is not None and images.shape.rank not in (3, 4):
            raise ValueError(
                "`images` must have shape (batch, height, width) or (batch, height, width, "
                f"channels); got shape {images.shape}."
            )
        rank = tf.rank(images)  # unknown in the signatures, which take any rank
        rank_ok = tf.debugging.assert_equal(
            tf.logical_or(tf.equal(rank, 3), tf.equal(rank, 4)),
            True,
            message="`images` must have shape (batch, height, width) or (batch, height, width, "
            "channels)",
        )
        with tf.control_dependencies([rank_ok]):
            images = tf.cond(
                tf.equal(rank, 3), lambda: tf.expand_dims(images, -1), lambda: tf.identity(images)
            )
        images = tf.ensure_shape(images, [None, None, None, None])  # (B, H, W, C)
        shape = tf.shape(images)
        checks = [
            tf.debugging.assert_positive(
                shape[1:3],
                message="`images` must have a positive height and width; got a zero-size image",
            ),
            tf.debugging.assert_less_equal(
                shape[3],
                4,
                message="`images` must have 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA) channels",
            ),
            tf.debugging.assert_positive(
                shape[3],
                message="`images` must have 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA) channels",
            ),
        ]
        with tf.control_dependencies(checks):
            x = self._to_model_channels(tf.cast(images, tf.float32))  # (B, H, W, num_channels)
        logits = tf.cond(
            shape[0] > 0,
            lambda: tf.cast(self.model(self._to_model_dtype(x), training=False), tf.float32),
            lambda: tf.zeros([0, self.num_classes], tf.float32),
        )  # (B, K)
        logits = tf.ensure_shape(logits, [None, self.num_classes])
        probabilities = tf.nn.softmax(logits, axis=-1)
        class_ids = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        labels = tf.gather(tf.convert_to_tensor(self.class_names), class_ids)
        return {"probabilities": probabilities, "class_ids": class_ids, "labels": labels}

    def _to_model_channels(self, x):
        """(B, H, W, C) float32, C in 1..4 -> (B, H, W, num_channels)."""
        channels = tf.shape(x)[3]
        x = tf.cond(
            tf.logical_or(tf.equal(channels, 2), tf.equal(channels, 4)),
            lambda: x[..., :-1],  # drop alpha
            lambda: x,
        )  # (B, H, W, 1 or 3)
        is_rgb = tf.equal(tf.shape(x)[3], 3)
        if self.num_channels == 1:
            weights = tf.constant(RGB_TO_GRAY, tf.float32)
            x = tf.cond(
                is_rgb, lambda: tf.reduce_sum(x * weights, axis=-1, keepdims=True), lambda: x
            )
        else:
            x = tf.cond(is_rgb, lambda: x, lambda: tf.tile(x, [1, 1, 1, 3]))
        return tf.ensure_shape(x, [None, None, None, self.num_channels])

    def _to_model_dtype(self, x):
        dtype = tf.as_dtype(keras.backend.standardize_dtype(self.model.inputs[0].dtype))
        if dtype.is_integer:
            x = tf.round(x)
        return tf.cast(x, dtype)


def export_image_classifier(
    model, class_names, path=None, num_channels=1, overwrite=True, metadata=None
):
    """Exports an image classifier as a SavedModel that takes uint8 images.

    Args:
        model: a trained `keras.Model` mapping float32 images
            `(B, H, W, num_channels)` in 0..255, of any size, to logits
            `(B, K)`, e.g. from `keras_attention.models.vision_transformer`.
        class_names: list of `K` str, e.g. `data.FASHION_MNIST_LABELS`.
        path: destination directory. Defaults to `saved_models/image_classifier`.
        num_channels: int. Channels the model takes, 1 or 3. Defaults to `1`.
        overwrite: bool. Replace a previous export at `path` (never anything
            else: see `atomic_save`). Defaults to `True`.
        metadata: optional dict written into the export (see `atomic_save`).

    Returns:
        The path of the SavedModel. In a fresh process,
        `loaded = tf.saved_model.load(path)`, then `loaded.classify(images)`
        with uint8 images `(B, H, W)` or `(B, H, W, C)`, or the signatures
        `serving_default` and `serving_grayscale` (the same function, both
        ranks; the second name is kept from earlier exports), called as
        `(images=...)`. They return `probabilities` `(B, K)` float32,
        `class_ids` `(B,)` int32 and `labels` `(B,)` string;
        `loaded.class_names` holds the names. Inputs of another dtype are
        rejected by the signatures; another rank and zero-size images fail
        with an `InvalidArgumentError` naming the problem.
    """
    check_tensorflow_backend()
    module = ImageClassifier(model, class_names, num_channels=num_channels)
    serve = module.classify.get_concrete_function(IMAGES_SPEC)
    signatures = {"serving_default": serve, "serving_grayscale": serve}
    return atomic_save(
        module,
        resolve_path(path, "image_classifier"),
        signatures=signatures,
        overwrite=overwrite,
        metadata=metadata,
    )
