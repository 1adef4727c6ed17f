"""`AttentionImages`: attention heatmaps of a fixed example in TensorBoard, every epoch.

Writes with `tf.summary.image`, so it needs TensorFlow (installed with this
package); the model may run on any Keras backend: the weights come out as
numpy arrays (`keras_attention.viz.collect`) and are drawn with matplotlib.
"""

import io

import keras

from keras_attention import _checks
from keras_attention.viz.attention import collect
from keras_attention.viz.heatmaps import show_heatmaps

__all__ = ["AttentionImages", "attention_grid", "attention_png"]


def attention_grid(attention_map, max_tokens=48):
    """One map's weights as a figure: a row per block, a column per head, tokens on the axes.

    All panels share the 0..max colour scale (they are weights of one kind).
    Sequences longer than `max_tokens` keep their first `max_tokens` tokens.
    """
    weights = attention_map.weights[:, :, :max_tokens, :max_tokens]
    num_blks, num_heads, num_queries, num_keys = weights.shape
    size = max(1.6, min(4.0, 0.16 * max(num_queries, num_keys)))
    return show_heatmaps(
        weights,
        xlabel="keys",
        ylabel="queries",
        titles=[f"head {h + 1}" for h in range(num_heads)],
        figsize=(size * num_heads + 1.2, size * num_blks),
        xlabels=attention_map.keys[:num_keys],
        ylabels=attention_map.queries[:num_queries],
    )


def attention_png(attention_map, max_tokens=48):
    """PNG bytes of `attention_grid(attention_map)`."""
    buffer = io.BytesIO()
    attention_grid(attention_map, max_tokens).savefig(
        buffer, format="png", dpi=100, bbox_inches="tight"
    )
    return buffer.getvalue()


class AttentionImages(keras.callbacks.Callback):
    """Logs the attention of a fixed example to TensorBoard as images after each epoch.

    One image per kind of attention (e.g. `attention/encoder`,
    `attention/decoder_self`, `attention/cross` for a translator), each a
    grid of blocks x heads with the tokens on the axes, so a user sees the
    attention sharpen during training (`tensorboard --logdir LOG_DIR`, tab
    Images). Each epoch runs `keras_attention.viz.collect` on the model as
    it is (decoding included): a copy of the model and one forward pass.

    Args:
        log_dir: str or path-like. TensorBoard log directory (images go to
            `log_dir/attention`).
        inputs: one example, as `keras_attention.viz.explore` takes it.
        every: int. Log every `every` epochs. Defaults to `1`.
        max_tokens: int. Tokens kept per axis. Defaults to `48`.
        **options: what `viz.explore` takes besides them: `src_tokenizer`,
            `tgt_tokenizer`, `tokenizer`, `class_names`, `max_len`, ...

    Example:
    >>> callback = AttentionImages("logs", "the third of may", src_tokenizer=src,
    ...                            tgt_tokenizer=tgt)
    >>> model.fit(dataset, epochs=5, callbacks=[callback])
    """

    def __init__(self, log_dir, inputs, every=1, max_tokens=48, **options):
        super().__init__()
        try:
            import tensorflow as tf
        except ImportError as error:  # pragma: no cover - TensorFlow is a dependency
            raise ImportError(
                "`AttentionImages` writes TensorBoard images with tf.summary and needs "
                "TensorFlow installed."
            ) from error
        self._tf = tf
        self.log_dir = str(log_dir)
        self.inputs = inputs
        self.every = _checks.check_int("every", every, low=1, rule="an int >= 1")
        self.max_tokens = max_tokens
        self.options = options
        self._writer = None

    def images(self):
        """`{map key: PNG bytes}` for the model as it is now."""
        exploration = collect(self.model, self.inputs, **self.options)
        return {m.key: attention_png(m, self.max_tokens) for m in exploration.examples[0].maps}

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        tf = self._tf
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(f"{self.log_dir}/attention")
        with self._writer.as_default():
            for key, png in self.images().items():
                image = tf.image.decode_png(png, channels=3)[None]  # (1, h, w, 3)
                tf.summary.image(f"attention/{key}", image, step=epoch)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
