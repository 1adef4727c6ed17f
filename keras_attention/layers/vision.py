"""The vision Transformer's building blocks.

D2L section "Transformers for Vision" (Dosovitskiy et al., 2021): an image is
cut into patches that a strided convolution embeds as tokens
(`PatchEmbedding`), a learned "<cls>" token is put in front of them
(`ClassToken`), pre-norm encoder blocks with a GELU MLP transform the
sequence (`ViTMLP`, `ViTBlock`), and the class token's representation is
taken out for the head (`TakeClassToken`).

Letters used in shape comments: B batch, H heads, D num_hiddens, C channels,
P patches, T sequence length (`P + 1` with the class token),
h, w image height and width, p_h, p_w patch height and width.
"""

import keras
from keras import ops

from keras_attention import _checks
from keras_attention.layers._policies import policy_map_config, sublayer_policy
from keras_attention.layers.attention import MultiHeadAttention
from keras_attention.layers.transformer import residual

__all__ = [
    "PatchEmbedding",
    "ClassToken",
    "TakeClassToken",
    "ViTMLP",
    "ViTBlock",
]

_EPSILON = 1e-5  # layer-normalization epsilon (PyTorch's, as in D2L; Keras' own is 1e-3)


@keras.saving.register_keras_serializable(package="keras_attention")
class PatchEmbedding(keras.layers.Layer):
    """Cuts images into patches and embeds each patch linearly.

    D2L section "Transformers for Vision": a `Conv2D` whose kernel size and
    stride both equal the patch size sees each patch exactly once, so it is
    one linear map of each flattened `p_h * p_w * C` patch to `num_hiddens`
    features. Its output is flattened row by row into a sequence of
    `num_patches = (h // p_h) * (w // p_w)` tokens. Images are channels-last.

    Args:
        img_size: int or `(height, width)`. Size of the input images; must be
            divisible by `patch_size`. Defaults to `96` (D2L).
        patch_size: int or `(height, width)`. Size of a patch. Defaults to
            `16` (D2L).
        num_hiddens: int. Embedding size `D`. Defaults to `512` (D2L).
        num_channels: int or None. Channels `C` the images must have; `None`
            (the default) accepts whatever the first call has.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        X: `(B, h, w, C)` float images with `(h, w) == img_size`.

    Returns:
        `(B, P, D)` with `P = num_patches`.

    Example:
    >>> X = keras.Input(shape=(28, 28, 1))
    >>> PatchEmbedding(img_size=28, patch_size=7, num_hiddens=16)(X).shape
    (None, 16, 16)
    """

    def __init__(self, img_size=96, patch_size=16, num_hiddens=512, num_channels=None, **kwargs):
        super().__init__(**kwargs)
        self.img_size = _checks.check_pair("img_size", img_size)
        self.patch_size = _checks.check_pair("patch_size", patch_size)
        if self.img_size[0] % self.patch_size[0] or self.img_size[1] % self.patch_size[1]:
            raise ValueError(
                "`img_size` must be divisible by `patch_size` in both height and "
                f"width; got img_size={self.img_size}, patch_size={self.patch_size}."
            )
        self.num_hiddens = _checks.check_positive_int("num_hiddens", num_hiddens)
        self.num_channels = (
            None
            if num_channels is None
            else _checks.check_positive_int("num_channels", num_channels)
        )
        self.grid_size = (
            self.img_size[0] // self.patch_size[0],
            self.img_size[1] // self.patch_size[1],
        )
        self.num_patches = self.grid_size[0] * self.grid_size[1]

    def _check_images(self, shape):
        shape = tuple(shape)
        if len(shape) != 4:
            raise ValueError(
                "`X` must be 4-D channels-last images (batch, height, width, channels); "
                f"got X.shape={shape}."
            )
        for axis, name in ((1, "height"), (2, "width")):
            if _checks.sizes_differ(shape[axis], self.img_size[axis - 1]):
                raise ValueError(
                    f"The image {name} must match `img_size`={self.img_size} (resize the "
                    f"images first); got X.shape={shape}."
                )
        if _checks.sizes_differ(shape[3], self.num_channels):
            raise ValueError(
                f"The images must have `num_channels`={self.num_channels} channels "
                f"(last axis); got X.shape={shape}."
            )

    def build(self, X_shape):
        self._check_images(X_shape)
        channels = X_shape[3] if X_shape[3] is not None else self.num_channels
        if channels is None:
            raise ValueError(
                "The channel axis of `X` must be known, or `num_channels` given; "
                f"got X.shape={tuple(X_shape)}, num_channels=None."
            )
        self.conv = keras.layers.Conv2D(
            self.num_hiddens,
            kernel_size=self.patch_size,
            strides=self.patch_size,
            padding="valid",
            data_format="channels_last",
            dtype=self.dtype_policy,
            name="conv",
        )
        self.conv.build((X_shape[0], self.img_size[0], self.img_size[1], channels))
        self.built = True

    def call(self, X):
        _checks.check_float_tensor("X", X, what="float images (rescale uint8 pixels first)")
        self._check_images(X.shape)
        Y = self.conv(X)  # (B, h / p_h, w / p_w, D)
        return ops.reshape(Y, (ops.shape(Y)[0], self.num_patches, self.num_hiddens))  # (B, P, D)

    def compute_output_shape(self, X_shape):
        return (X_shape[0], self.num_patches, self.num_hiddens)

    def get_config(self):
        return {
            **super().get_config(),
            "img_size": self.img_size,
            "patch_size": self.patch_size,
            "num_hiddens": self.num_hiddens,
            "num_channels": self.num_channels,
        }


@keras.saving.register_keras_serializable(package="keras_attention")
class ClassToken(keras.layers.Layer):
    """Puts a learned "<cls>" token in front of a sequence.

    D2L section "Transformers for Vision" (BERT's `<cls>`): a trainable
    `(1, 1, D)` weight named `token`, zeros at first as in D2L, is repeated
    over the batch and concatenated before position 0. Its output at the
    last block is the image representation the head classifies.

    Args:
        initializer: str or `keras.initializers.Initializer`. Initializer of
            the token. Defaults to `"zeros"` (D2L).
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        X: `(B, T, D)`.

    Returns:
        `(B, 1 + T, D)`, the dtype of `X`. A Keras mask on `X` gets a `True`
        in front (the class token is always attended to).

    Example:
    >>> X = keras.Input(shape=(16, 8))
    >>> ClassToken()(X).shape
    (None, 17, 8)
    """

    def __init__(self, initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.initializer = _checks.check_initializer("initializer", initializer)
        self.supports_masking = True

    def build(self, X_shape):
        _checks.check_sequence("X", X_shape)
        if X_shape[-1] is None:
            raise ValueError(
                f"The last axis of `X` (num_hiddens) must be known; got X.shape={tuple(X_shape)}."
            )
        self.token = self.add_weight(
            name="token", shape=(1, 1, X_shape[-1]), initializer=self.initializer, trainable=True
        )
        self.built = True

    def call(self, X):
        _checks.check_sequence_tensor(
            "X", X, self.token.shape[-1], why=" (the size of the class token)"
        )
        batch = ops.shape(X)[0]
        token = ops.cast(self.token, X.dtype)  # (1, 1, D)
        token = ops.broadcast_to(token, (batch, 1, ops.shape(X)[2]))  # (B, 1, D)
        return ops.concatenate([token, X], axis=1)  # (B, 1 + T, D)

    def compute_mask(self, X, previous_mask=None):
        if previous_mask is None:
            return None
        previous_mask = ops.cast(previous_mask, "bool")  # (B, T)
        first = ops.ones_like(previous_mask[:, :1])  # (B, 1)
        return ops.concatenate([first, previous_mask], axis=1)  # (B, 1 + T)

    def compute_output_shape(self, X_shape):
        length = None if X_shape[1] is None else X_shape[1] + 1
        return (X_shape[0], length, X_shape[2])

    def get_config(self):
        return {
            **super().get_config(),
            "initializer": keras.initializers.serialize(self.initializer),
        }


@keras.saving.register_keras_serializable(package="keras_attention")
class TakeClassToken(keras.layers.Layer):
    """Takes the representation at position 0 (the class token): `X[:, 0]`.

    D2L section "Transformers for Vision": the head classifies the "<cls>"
    token's output. A layer rather than a `Lambda`, so models load with
    `safe_mode=True`.

    Args:
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        X: `(B, T, D)`.

    Returns:
        `(B, D)`. No Keras mask.

    Example:
    >>> X = keras.Input(shape=(17, 8))
    >>> TakeClassToken()(X).shape
    (None, 8)
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def build(self, X_shape):
        _checks.check_sequence("X", X_shape)
        self.built = True

    def call(self, X):
        _checks.check_sequence("X", X.shape)
        if _checks.static_size(X.shape[1]) == 0:
            raise ValueError(
                "`X` must have at least one position (the class token); "
                f"got X.shape={tuple(X.shape)}."
            )
        return X[:, 0]  # (B, D)

    def compute_mask(self, X, previous_mask=None):
        return None

    def compute_output_shape(self, X_shape):
        return (X_shape[0], X_shape[2])


@keras.saving.register_keras_serializable(package="keras_attention")
class ViTMLP(keras.layers.Layer):
    """The vision Transformer's MLP: `dropout(dense2(dropout(gelu(dense1(X)))))`.

    D2L section "Transformers for Vision": unlike the position-wise FFN of
    the original Transformer, the activation is GELU (exact, erf form, as
    PyTorch's `nn.GELU`) and dropout follows each dense layer.

    Args:
        mlp_num_hiddens: int. Width of the hidden layer.
        mlp_num_outputs: int. Output size.
        dropout: float. Dropout rate after each dense layer. Defaults to
            `0.5` (D2L).
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        X: `(B, T, D)`.
        training: bool. Whether dropout is active.

    Returns:
        `(B, T, mlp_num_outputs)`. A Keras mask on `X` passes through.

    Example:
    >>> X = keras.Input(shape=(None, 8))
    >>> ViTMLP(mlp_num_hiddens=16, mlp_num_outputs=8)(X).shape
    (None, None, 8)
    """

    def __init__(self, mlp_num_hiddens, mlp_num_outputs, dropout=0.5, **kwargs):
        super().__init__(**kwargs)
        self.mlp_num_hiddens = _checks.check_positive_int("mlp_num_hiddens", mlp_num_hiddens)
        self.mlp_num_outputs = _checks.check_positive_int("mlp_num_outputs", mlp_num_outputs)
        self.dropout = _checks.check_dropout(dropout)
        self.supports_masking = True

    def build(self, X_shape):
        self._width = X_shape[-1]
        self.dense1 = keras.layers.Dense(
            self.mlp_num_hiddens,
            activation="gelu",
            dtype=sublayer_policy(self, "dense1"),
            name="dense1",
        )
        self.dense1.build(X_shape)
        self.dropout1 = keras.layers.Dropout(
            self.dropout, dtype=sublayer_policy(self, "dropout1"), name="dropout1"
        )
        self.dense2 = keras.layers.Dense(
            self.mlp_num_outputs, dtype=sublayer_policy(self, "dense2"), name="dense2"
        )
        self.dense2.build(tuple(X_shape[:-1]) + (self.mlp_num_hiddens,))
        self.dropout2 = keras.layers.Dropout(
            self.dropout, dtype=sublayer_policy(self, "dropout2"), name="dropout2"
        )
        self.built = True

    def call(self, X, training=None):
        _checks.check_float_tensor("X", X)
        _checks.check_features("X", X.shape, self._width)
        X = self.dropout1(self.dense1(X), training=training)  # (B, T, mlp_num_hiddens)
        return self.dropout2(self.dense2(X), training=training)  # (B, T, mlp_num_outputs)

    def compute_output_shape(self, X_shape):
        return tuple(X_shape[:-1]) + (self.mlp_num_outputs,)

    def get_config(self):
        return {
            **super().get_config(),
            **policy_map_config(self),
            "mlp_num_hiddens": self.mlp_num_hiddens,
            "mlp_num_outputs": self.mlp_num_outputs,
            "dropout": self.dropout,
        }


@keras.saving.register_keras_serializable(package="keras_attention")
class ViTBlock(keras.layers.Layer):
    """A vision Transformer encoder block (pre-norm).

    D2L section "Transformers for Vision": layer normalization comes
    *before* each sub-layer and the residual path stays un-normalized:
    `X = X + MHA(LN1(X)); out = X + MLP(LN2(X))`. Both layer normalizations
    use epsilon `1e-5` (PyTorch's `nn.LayerNorm`, as in D2L; Keras' default
    is 1e-3).

    Args:
        num_hiddens: int. Model width `D`.
        mlp_num_hiddens: int. Hidden width of the MLP.
        num_heads: int. Attention heads; must divide `num_hiddens`.
        dropout: float. Dropout on the attention weights and in the MLP.
        use_bias: bool. Biases in the attention projections. Defaults to `False`.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        X: `(B, T, D)`.
        valid_lens: optional integer tensor `(B,)` or `(B, T)`: key positions
            at or past it are not attended to.
        training: bool. Whether dropout is active.
        return_attention_scores: bool. Also return the attention weights.

    Returns:
        `(B, T, D)`; with `return_attention_scores=True` also the weights
        `(B, H, T, T)`. A Keras mask on `X` passes through (and masks keys).

    Example:
    >>> X = keras.Input(shape=(None, 24))
    >>> ViTBlock(num_hiddens=24, mlp_num_hiddens=48, num_heads=8, dropout=0.5)(X).shape
    (None, None, 24)
    """

    def __init__(self, num_hiddens, mlp_num_hiddens, num_heads, dropout, use_bias=False, **kwargs):
        super().__init__(**kwargs)
        self.num_hiddens = _checks.check_positive_int("num_hiddens", num_hiddens)
        self.mlp_num_hiddens = _checks.check_positive_int("mlp_num_hiddens", mlp_num_hiddens)
        self.num_heads = _checks.check_heads(num_hiddens, num_heads)
        self.dropout = _checks.check_dropout(dropout)
        self.use_bias = _checks.check_bool("use_bias", use_bias)
        self.supports_masking = True

    def build(self, X_shape):
        _checks.check_sequence("X", X_shape, self.num_hiddens, why="")
        self.ln1 = keras.layers.LayerNormalization(
            epsilon=_EPSILON, dtype=sublayer_policy(self, "ln1"), name="ln1"
        )
        self.ln1.build(X_shape)
        self.attention = MultiHeadAttention(
            self.num_hiddens,
            self.num_heads,
            self.dropout,
            use_bias=self.use_bias,
            dtype=sublayer_policy(self, "attention"),
            name="attention",
        )
        self.attention.build(X_shape, X_shape, X_shape)
        self.ln2 = keras.layers.LayerNormalization(
            epsilon=_EPSILON, dtype=sublayer_policy(self, "ln2"), name="ln2"
        )
        self.ln2.build(X_shape)
        self.mlp = ViTMLP(
            self.mlp_num_hiddens,
            self.num_hiddens,
            self.dropout,
            dtype=sublayer_policy(self, "mlp"),
            name="mlp",
        )
        self.mlp.build(X_shape)
        self.built = True

    def call(self, X, valid_lens=None, training=None, return_attention_scores=False, X_mask=None):
        return_attention_scores = _checks.check_bool(
            "return_attention_scores", return_attention_scores
        )
        _checks.check_sequence_tensor("X", X, self.num_hiddens, why="")

        def self_attention(Q):
            return self.attention(
                Q,
                Q,
                Q,
                valid_lens=valid_lens,
                training=training,
                return_attention_scores=return_attention_scores,
                queries_mask=X_mask,
                keys_mask=X_mask,
                values_mask=X_mask,
            )

        # Pre-norm, no dropout on the residual branch: X + MHA(LN1(X)), then X + MLP(LN2(X)).
        X, weights = residual(X, self_attention, self.ln1, norm_first=True, training=training)
        output, _ = residual(
            X,
            lambda Y: self.mlp(Y, training=training),
            self.ln2,
            norm_first=True,
            training=training,
        )  # (B, T, D)
        return (output, *weights) if return_attention_scores else output

    def compute_mask(self, X, previous_mask=None):
        return previous_mask

    def get_config(self):
        return {
            **super().get_config(),
            **policy_map_config(self),
            "num_hiddens": self.num_hiddens,
            "mlp_num_hiddens": self.mlp_num_hiddens,
            "num_heads": self.num_heads,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
        }
