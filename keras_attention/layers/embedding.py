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
from keras_attention.layers._custom_gradient import read_variables, upstream_gradient

__all__ = ["TokenEmbedding", "TiedTokenEmbedding", "SegmentEmbedding", "lookup", "take_rows"]


def lookup(table, ids, name="ids", size_name="vocab_size"):
    """Rows of `table` `(N, D)` at integer `ids` `(...)`, never another row for a bad id.

    Ids must be in `[0, N)`. Float ids are a `TypeError` (they would be
    truncated). Where the ids are known (eager), one out of range is a
    `ValueError` naming `name` and `[0, size_name=N)`; in traced code
    (`tf.function`, XLA, `jax.jit`), where no error can be raised, its row
    is NaN: not the last row (a negative id), not a backend's own error or
    a clamped row, and the loss shows it.

    The gradient with respect to `table` is dense on every backend (see
    `take_rows`).

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
        return take_rows(table, ops.cast(ids, "int32"))
    valid = ops.logical_and(ids >= 0, ids < size)  # (...), in the ids' own dtype
    rows = take_rows(table, ops.cast(ops.where(valid, ids, 0), "int32"))  # (..., D)
    return ops.where(ops.expand_dims(valid, -1), rows, float("nan"))


def take_rows(table, ids):
    """`ops.take(table, ids, axis=0)`, with a dense gradient for `table` on TensorFlow too.

    TensorFlow differentiates a gather into `tf.IndexedSlices`: one slice
    per id, a repeated id repeated. Keras 3's optimizers on TensorFlow then
    treat every repeat as a row of its own: Adam, AdamW and RMSprop square
    each slice instead of their sum, and `clipnorm` measures the slices
    before they are summed. A token that occurs `n` times in a batch then
    takes another step than the equations give (at Adam's first step up to
    `sqrt(n)` times the dense one), and a character-level or BERT model
    (segment ids: `B * T` repeats of two rows) trains differently than on
    JAX or PyTorch, whose gradients are dense. Here the table's gradient is
    the dense per-row sum of the slices (`segment_sum`, accumulated in
    float32), the gradient JAX and PyTorch compute, so every optimizer gets
    the same numbers on every backend.

    Args:
        table: `(N, D)` tensor or variable.
        ids: int32 tensor `(...)`, values in `[0, N)`.

    Returns:
        `(..., D)`.
    """
    if keras.backend.backend() != "tensorflow":
        return ops.take(table, ids, axis=0)
    num_rows, depth = table.shape
    (table,) = read_variables(table)

    @ops.custom_gradient
    def take(table):
        def grad(*args, upstream=None):
            upstream = upstream_gradient(args, upstream)
            slices = ops.cast(ops.reshape(upstream, (-1, depth)), "float32")  # (n, D)
            rows = ops.segment_sum(slices, ops.reshape(ids, (-1,)), num_segments=num_rows)
            return ops.cast(rows, table.dtype)  # (N, D)

        return ops.take(table, ids, axis=0), grad

    return take(table)


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


@keras.saving.register_keras_serializable(package="keras_attention")
class TiedTokenEmbedding(TokenEmbedding):
    """A `TokenEmbedding` that also maps hidden states back to vocabulary logits.

    Weight tying (Press & Wolf, 2017; GPT-2): the output layer's weight is
    the transposed token-embedding matrix `E` `(V, D)`, so the model holds
    one matrix and calls this one layer twice, first on ids, then with
    `reverse=True` on the final hidden states: `logits = X @ E^T`.

    Args:
        Those of `TokenEmbedding`.

    Call arguments:
        inputs: ids `(B, T)` (int), or with `reverse=True` hidden states
            `(B, T, D)`.
        reverse: bool. Map hidden states to logits. Defaults to `False`.

    Returns:
        `(B, T, D)` embeddings carrying the mask `ids != pad_id`; with
        `reverse=True` float32 logits `(B, T, V)` (a Keras mask on the
        inputs passes through).

    Example:
    >>> ids = keras.Input(shape=(None,), dtype="int32")
    >>> embedding = TiedTokenEmbedding(100, 16)
    >>> embedding(embedding(ids), reverse=True).shape
    (None, None, 100)
    """

    def call(self, inputs, reverse=False):
        if not _checks.check_bool("reverse", reverse):
            return super().call(inputs)
        self._check_hidden_states(inputs)
        E = ops.cast(self.embeddings, "float32")  # (V, D)
        X = ops.cast(inputs, "float32")
        return ops.matmul(X, ops.transpose(E))  # (B, T, V)

    def compute_mask(self, inputs, previous_mask=None):
        # Hidden states (reverse call) are 3-D; ids are 2-D.
        if len(inputs.shape) == 3:
            return previous_mask
        return super().compute_mask(inputs, previous_mask)

    def _check_hidden_states(self, inputs):
        _checks.check_float_tensor("inputs", inputs, what="float hidden states when reverse=True")
        _checks.check_features(
            "inputs", inputs.shape, self.num_hiddens, why=" (`num_hiddens`, the embedding size)"
        )

    def compute_output_spec(self, inputs, reverse=False):
        if not _checks.check_bool("reverse", reverse):
            return super().compute_output_spec(inputs)
        self._check_hidden_states(inputs)
        return keras.KerasTensor(tuple(inputs.shape[:-1]) + (self.vocab_size,), "float32")


@keras.saving.register_keras_serializable(package="keras_attention")
class SegmentEmbedding(keras.layers.Layer):
    """Adds the embedding of each token's segment (sentence A or B) to `X`.

    D2L section "BERT": the input of a sentence pair is
    `<cls> A <sep> B <sep>`, and every token gets the embedding of its
    segment id (0 for A, 1 for B) added. A layer of its own rather than
    `keras.layers.Embedding` plus `Add`, because segment id 0 is a real
    segment (not padding) and `Add` would drop the token embedding's
    padding mask; this layer passes the mask of `X` through.

    Args:
        num_segments: int. Number of segment ids. Defaults to `2`.
        num_hiddens: int. Feature size `D` of `X`.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        X: `(B, T, D)`. Token embeddings.
        segment_ids: integer tensor `(B, T)`, values in `[0, num_segments)`
            (checked as token ids are, see `layers.embedding.lookup`).

    Returns:
        `(B, T, D)`, the dtype of `X`. A Keras mask on `X` passes through.

    Example:
    >>> X = keras.Input(shape=(None, 16))
    >>> segments = keras.Input(shape=(None,), dtype="int32")
    >>> SegmentEmbedding(2, 16)(X, segments).shape
    (None, None, 16)
    """

    def __init__(self, num_segments, num_hiddens, **kwargs):
        super().__init__(**kwargs)
        self.num_segments = _checks.check_positive_int("num_segments", num_segments)
        self.num_hiddens = _checks.check_positive_int("num_hiddens", num_hiddens)
        self.supports_masking = True

    def build(self, X_shape, segment_ids_shape=None):
        if X_shape[-1] is not None and X_shape[-1] != self.num_hiddens:
            raise ValueError(
                "The last axis of `X` must equal `num_hiddens`; got "
                f"X.shape={tuple(X_shape)}, num_hiddens={self.num_hiddens}."
            )
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.num_segments, self.num_hiddens),
            initializer="uniform",
        )
        self.built = True

    def _check_inputs(self, X, segment_ids):
        _checks.check_float_tensor("X", X)
        _checks.check_int_tensor("segment_ids", segment_ids, what="integer ids")
        _checks.check_features("X", X.shape, self.num_hiddens, why=" (`num_hiddens`)")
        _checks.check_same_batch(("X", X.shape), ("segment_ids", segment_ids.shape))
        # One segment id per token: a shorter row would broadcast or fail inside the add.
        _checks.check_shape(
            "segment_ids", segment_ids.shape, tuple(X.shape[:-1]), "the axes of X but the last"
        )

    def call(self, X, segment_ids):
        self._check_inputs(X, segment_ids)
        E = lookup(self.embeddings, segment_ids, "segment_ids", "num_segments")  # (B, T, D)
        return X + ops.cast(E, X.dtype)

    def compute_output_spec(self, X, segment_ids):
        self._check_inputs(X, segment_ids)
        return keras.KerasTensor(X.shape, X.dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "num_segments": self.num_segments,
            "num_hiddens": self.num_hiddens,
        }
