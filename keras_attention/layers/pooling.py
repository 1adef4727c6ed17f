"""Attention pooling by similarity: Nadaraya-Watson kernel regression.

D2L section "Attention Pooling by Similarity" (Nadaraya, 1964; Watson,
1964). A query attends to every key with a weight given by a kernel of
their distance, normalised over the keys; the output is the weighted sum of
the values. With a learnable width this is D2L's parametric attention
pooling, the simplest attention with a trained parameter.

Letters used in shape comments: B batch, Q queries, K keys (key-value
pairs), V value features.
"""

import keras
from keras import ops

from keras_attention import _checks
from keras_attention import ops as ka_ops

__all__ = ["NadarayaWatson", "KERNELS"]


def _gaussian(x):
    return ops.exp(-0.5 * ops.square(x))


def _boxcar(x):
    return ops.cast(ops.abs(x) < 1.0, x.dtype)


def _constant(x):
    return ops.ones_like(x)


def _epanechikov(x):
    return ops.maximum(1.0 - ops.abs(x), 0.0)


# Kernel name -> alpha(x) for x = (query - key) * w, as in D2L.
KERNELS = {
    "gaussian": _gaussian,
    "boxcar": _boxcar,
    "constant": _constant,
    "epanechikov": _epanechikov,
}


@keras.saving.register_keras_serializable(package="keras_attention")
class NadarayaWatson(keras.layers.Layer):
    """Nadaraya-Watson attention pooling of scalar keys and queries.

    D2L section "Attention Pooling by Similarity":
    `f(q) = sum_i alpha(q, k_i) / sum_j alpha(q, k_j) * v_i`, with
    `alpha(q, k) = kernel((q - k) * w)` and the kernels

    - `"gaussian"`: `exp(-x^2 / 2)` (normalised with a float32 softmax),
    - `"boxcar"`: `1` if `|x| < 1` else `0`,
    - `"constant"`: `1` (the output is the mean of the values),
    - `"epanechikov"`: `max(1 - |x|, 0)`.

    `w = 1 / width` is fixed, or, with `learnable_width=True`, a trainable
    scalar weight named `w` that starts at `1 / width` (D2L's parametric
    pooling `exp(-((q - k) w)^2 / 2)`). A query whose kernel is zero for
    every key (boxcar or epanechikov, far from all keys) gets all-zero
    weights and output 0, never NaN. Computed in float32 whatever the
    compute dtype; results are cast to the compute dtype.

    Args:
        kernel: str. One of `"gaussian"`, `"boxcar"`, `"constant"`,
            `"epanechikov"`. Defaults to `"gaussian"`.
        width: float > 0. The kernel width `sigma`: `x = (q - k) / sigma`
            (D2L's `gaussian_with_width`). Defaults to `1.0`.
        learnable_width: bool. Learn the scale `w` (initialised to
            `1 / width`). Defaults to `False`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        queries: `(B, Q)`. Scalar queries (e.g. the points to predict at).
        keys: `(B, K)`. Scalar keys (e.g. training inputs `x_i`).
        values: `(B, K)` or `(B, K, V)`. Values (e.g. training labels `y_i`).
        return_attention_scores: bool. Also return the attention weights.
            Defaults to `False`.
        keys_mask, values_mask: optional boolean `(B, K)`, True for real
            keys. Filled in by Keras from the inputs' masks; masked keys get
            weight 0. A Keras mask on `queries` passes to the output (Keras
            losses apply a `(B, Q)` mask only to `(B, Q, V)` outputs).

    Returns:
        `(B, Q)` (values `(B, K)`) or `(B, Q, V)` (values `(B, K, V)`); with
        `return_attention_scores=True` also the weights `(B, Q, K)`, each
        row summing to 1 (or all 0).

    Example:
    >>> queries = keras.Input(shape=(None,))
    >>> keys = keras.Input(shape=(None,))
    >>> values = keras.Input(shape=(None,))
    >>> y_hat, weights = NadarayaWatson(learnable_width=True)(
    ...     queries, keys, values, return_attention_scores=True)
    >>> y_hat.shape, weights.shape
    ((None, None), (None, None, None))
    """

    def __init__(self, kernel="gaussian", width=1.0, learnable_width=False, **kwargs):
        super().__init__(**kwargs)
        self.kernel = _checks.check_choice("kernel", kernel, KERNELS)
        self.width = _checks.check_positive_float("width", width)
        self.learnable_width = _checks.check_bool("learnable_width", learnable_width)
        self.supports_masking = True

    @staticmethod
    def _check_shapes(queries_shape, keys_shape, values_shape):
        """Ranks and the key/value pairing, on static shapes."""
        if len(queries_shape) != 2 or len(keys_shape) != 2:
            raise ValueError(
                "`queries` and `keys` must be 2-D, (batch, num_queries) and "
                "(batch, num_keys) of scalars; got "
                f"queries.shape={tuple(queries_shape)}, keys.shape={tuple(keys_shape)}."
            )
        if len(values_shape) not in (2, 3):
            raise ValueError(
                "`values` must have shape (batch, num_keys) or (batch, num_keys, "
                f"value_features); got values.shape={tuple(values_shape)}."
            )
        k_len, v_len = keys_shape[1], values_shape[1]
        if _checks.sizes_differ(k_len, v_len):
            raise ValueError(
                "`keys` and `values` must have the same length (axis 1); got "
                f"keys.shape={tuple(keys_shape)}, values.shape={tuple(values_shape)}."
            )
        _checks.check_same_batch(
            ("queries", queries_shape), ("keys", keys_shape), ("values", values_shape)
        )

    def build(self, queries_shape, keys_shape=None, values_shape=None):
        keys_shape = queries_shape if keys_shape is None else keys_shape
        values_shape = keys_shape if values_shape is None else values_shape
        self._check_shapes(queries_shape, keys_shape, values_shape)
        if self.learnable_width:
            self.w = self.add_weight(
                name="w",
                shape=(),
                initializer=keras.initializers.Constant(1.0 / self.width),
                trainable=True,
            )
        self.built = True

    def call(
        self,
        queries,
        keys,
        values,
        return_attention_scores=False,
        keys_mask=None,
        values_mask=None,
    ):
        return_attention_scores = _checks.check_bool(
            "return_attention_scores", return_attention_scores
        )
        self._check_shapes(queries.shape, keys.shape, values.shape)
        for name, mask in (("keys_mask", keys_mask), ("values_mask", values_mask)):
            if mask is not None:
                _checks.check_mask_tensor(name, mask)
                _checks.check_shape(name, mask.shape, keys.shape[:2], "batch, num_keys")
        queries = ops.cast(queries, "float32")
        keys = ops.cast(keys, "float32")
        values = ops.cast(values, "float32")
        if self.learnable_width:
            scale = ops.cast(self.w, "float32")
        else:
            scale = 1.0 / self.width
        x = (queries[:, :, None] - keys[:, None, :]) * scale  # (B, Q, K)
        mask = ka_ops.merge_masks(keys_mask, values_mask)
        if mask is not None:
            mask = mask[:, None, :]  # (B, 1, K)

        if self.kernel == "gaussian":
            # softmax(-x^2 / 2) = exp(-x^2 / 2) / sum exp(-x^2 / 2), but it
            # cannot underflow to 0 / 0 for queries far from every key.
            weights = ka_ops.masked_softmax(-0.5 * ops.square(x), mask=mask)
        else:
            alpha = KERNELS[self.kernel](x)  # (B, Q, K)
            if mask is not None:
                alpha = ops.where(mask, alpha, 0.0)
            total = ops.sum(alpha, axis=-1, keepdims=True)  # (B, Q, 1)
            # A row with no key in range keeps alpha = 0 and weights = 0.
            weights = alpha / ops.where(total > 0.0, total, 1.0)

        if len(values.shape) == 2:
            output = ops.einsum("bqk,bk->bq", weights, values)  # (B, Q)
        else:
            output = ops.matmul(weights, values)  # (B, Q, V)
        output = ops.cast(output, self.compute_dtype)
        if return_attention_scores:
            return output, ops.cast(weights, self.compute_dtype)
        return output

    def compute_output_spec(self, queries, keys, values, return_attention_scores=False, **kwargs):
        self._check_shapes(queries.shape, keys.shape, values.shape)
        batch, num_queries = queries.shape
        output = keras.KerasTensor(
            (batch, num_queries) + tuple(values.shape[2:]), dtype=self.compute_dtype
        )
        if not return_attention_scores:
            return output
        num_keys = keys.shape[1] if keys.shape[1] is not None else values.shape[1]
        weights = keras.KerasTensor((batch, num_queries, num_keys), dtype=self.compute_dtype)
        return output, weights

    def get_config(self):
        return {
            **super().get_config(),
            "kernel": self.kernel,
            "width": self.width,
            "learnable_width": self.learnable_width,
        }
