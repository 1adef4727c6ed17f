"""Token embeddings that know the padding id.

D2L's encoder-decoders embed token ids and scale them by `sqrt(num_hiddens)`
before adding positions ("The Transformer Architecture"). This layer does
that and also computes the Keras padding mask from `pad_id`, so models take
bare token ids and every downstream layer sees which positions are padding.

Letters used in shape comments: B batch, T sequence length, D num_hiddens,
N rows of a table.
"""

import math

import keras
from keras import ops

from keras_attention import _checks

__all__ = ["TokenEmbedding", "lookup"]


def lookup(table, ids, name="ids", size_name="vocab_size"):
    """Rows of `table` `(N, D)` at integer `ids` `(...)`, never another row for a bad id.

    Ids must be in `[0, N)`. Float ids are a `TypeError` (they would be
    truncated). Where the ids are known (eager), one out of range is a
    `ValueError` naming `name` and `[0, size_name=N)`; in traced code
    (`tf.function`, XLA, `jax.jit`), where no error can be raised, its row
    is NaN: not the last row (a negative id), not a backend's own error or
    a clamped row, and the loss shows it.

    Returns:
        `(..., D)`.
    """
    _checks.check_int_tensor(name, ids, what="integer ids")
    size = table.shape[0]
    values = _checks.concrete_value(ids)
    if values is not None:
        if values.size and (values.min() < 0 or values.max() >= size):
            raise ValueError(
                f"`{name}` must be in [0, {size_name}={size}); got {name} from "
                f"{values.min()} to {values.max()}."
            )
        return ops.take(table, ops.cast(ids, "int32"), axis=0)
    valid = ops.logical_and(ids >= 0, ids < size)  # (...), in the ids' own dtype
    rows = ops.take(table, ops.cast(ops.where(valid, ids, 0), "int32"), axis=0)  # (..., D)
    return ops.where(ops.expand_dims(valid, -1), rows, float("nan"))


@keras.saving.register_keras_serializable(package="keras_attention")
class TokenEmbedding(keras.layers.Layer):
    """Embeds token ids, optionally scaled by `sqrt(num_hiddens)`; masks `pad_id`.

    Args:
        vocab_size: int. Number of token ids.
        num_hiddens: int. Embedding size `D`.
        pad_id: int or None. The padding id; positions holding it get a
            False Keras mask. `None`: no padding, no mask (e.g. packed
            language-model batches). Defaults to `0`.
        scale: bool. Multiply the embeddings by `sqrt(num_hiddens)`, as the
            Transformer does. Defaults to `False`.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        ids: integer tensor `(B, T)`, values in `[0, vocab_size)`: float ids
            are a `TypeError`, ids out of range a `ValueError` where they
            are known (eager) and a NaN embedding in traced code (see
            `lookup`).

    Returns:
        `(B, T, D)`, carrying the Keras mask `ids != pad_id` (none when
        `pad_id` is `None`).

    Example:
    >>> ids = keras.Input(shape=(None,), dtype="int32")
    >>> TokenEmbedding(100, 32, scale=True)(ids).shape
    (None, None, 32)
    """

    def __init__(self, vocab_size, num_hiddens, pad_id=0, scale=False, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = _checks.check_positive_int("vocab_size", vocab_size)
        self.num_hiddens = _checks.check_positive_int("num_hiddens", num_hiddens)
        self.pad_id = _checks.check_int_in_range(
            "pad_id", pad_id, 0, self.vocab_size, high_name="vocab_size", allow_none=True
        )
        self.scale = _checks.check_bool("scale", scale)

    def build(self, ids_shape):
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.vocab_size, self.num_hiddens),
            initializer="uniform",
        )
        self.built = True

    def call(self, ids):
        X = lookup(self.embeddings, ids)  # (B, T, D)
        if self.scale:
            X = X * ops.cast(math.sqrt(self.num_hiddens), X.dtype)
        return X

    def compute_mask(self, ids, previous_mask=None):
        if self.pad_id is None:
            return None
        return ops.not_equal(ids, self.pad_id)

    def compute_output_spec(self, ids):
        _checks.check_int_tensor("ids", ids, what="integer ids")
        return keras.KerasTensor(tuple(ids.shape) + (self.num_hiddens,), self.compute_dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "num_hiddens": self.num_hiddens,
            "pad_id": self.pad_id,
            "scale": self.scale,
        }
