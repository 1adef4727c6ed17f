"""The Transformer's building blocks.

D2L section "The Transformer Architecture": the position-wise feed-forward
network, the residual connection with layer normalization ("add & norm"),
and the encoder and decoder blocks. Both blocks also come in the pre-norm
variant (`norm_first=True`) used by ViT and GPT.

Letters used in shape comments: B batch, T target (or sequence) length,
S source length, D num_hiddens, H heads, L cache length.
"""

import keras

from keras_attention import _checks
from keras_attention.layers._policies import policy_map_config, sublayer_policy
from keras_attention.layers.attention import MultiHeadAttention, check_block_variants

__all__ = [
    "PositionWiseFFN",
    "AddNorm",
    "TransformerEncoderBlock",
    "TransformerDecoderBlock",
]


def residual(X, sublayer, norm, dropout=None, norm_first=False, training=None):
    """A sub-layer inside its residual connection, pre-norm or post-norm.

    The one place the blocks write the idiom (as keras_hub does):

        residual = X
        if norm_first: X = norm(X)
        X = sublayer(X)
        X = residual + dropout(X)
        if not norm_first: X = norm(X)

    Post-norm is D2L's `AddNorm`, `LN(X + dropout(f(X)))`; pre-norm
    (ViT, GPT) keeps the residual path un-normalized, `X + dropout(f(LN(X)))`.

    Args:
        X: `(B, T, D)`.
        sublayer: callable on `(B, T, D)`, returning `(B, T, D)` or a tuple
            whose first element is (the rest, e.g. attention weights and a
            cache, is passed through).
        norm: the layer normalization.
        dropout: optional dropout layer on the sub-layer output.
        norm_first: bool. Pre-norm instead of post-norm.
        training: bool. Whether dropout is active.

    Returns:
        The output `(B, T, D)` and a tuple of the sub-layer's other outputs.
    """
    residual_X = X
    if norm_first:
        X = norm(X)
    X = sublayer(X)
    extras = ()
    if isinstance(X, (tuple, list)):
        X, *extras = X
    if dropout is not None:
        X = dropout(X, training=training)
    X = residual_X + X
    if not norm_first:
        X = norm(X)
    return X, tuple(extras)


@keras.saving.register_keras_serializable(package="keras_attention")
class PositionWiseFFN(keras.layers.Layer):
    """The position-wise feed-forward network: `dense2(activation(dense1(X)))`.

    D2L section "The Transformer Architecture": the same two-layer MLP is
    applied at every position.

    Args:
        ffn_num_hiddens: int. Width of the hidden layer.
        ffn_num_outputs: int. Output size.
        activation: str. Activation of the hidden layer. Defaults to `"relu"`.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        X: `(B, T, D)`.

    Returns:
        `(B, T, ffn_num_outputs)`.

    Example:
    >>> X = keras.Input(shape=(None, 4))
    >>> PositionWiseFFN(ffn_num_hiddens=8, ffn_num_outputs=4)(X).shape
    (None, None, 4)
    """

    def __init__(self, ffn_num_hiddens, ffn_num_outputs, activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.ffn_num_hiddens = _checks.check_positive_int("ffn_num_hiddens", ffn_num_hiddens)
        self.ffn_num_outputs = _checks.check_positive_int("ffn_num_outputs", ffn_num_outputs)
        self.activation = _checks.check_activation("activation", activation)
        self.supports_masking = True

    def build(self, X_shape):
        self._width = X_shape[-1]
        self.dense1 = keras.layers.Dense(
            self.ffn_num_hiddens,
            activation=self.activation,
            dtype=sublayer_policy(self, "dense1"),
            name="dense1",
        )
        self.dense1.build(X_shape)
        self.dense2 = keras.layers.Dense(
            self.ffn_num_outputs, dtype=sublayer_policy(self, "dense2"), name="dense2"
        )
        self.dense2.build(tuple(X_shape[:-1]) + (self.ffn_num_hiddens,))
        self.built = True

    def call(self, X):
        _checks.check_float_tensor("X", X)
        _checks.check_features("X", X.shape, self._width)
        return self.dense2(self.dense1(X))

    def compute_output_shape(self, X_shape):
        return tuple(X_shape[:-1]) + (self.ffn_num_outputs,)

    def get_config(self):
        return {
            **super().get_config(),
            **policy_map_config(self),
            "ffn_num_hiddens": self.ffn_num_hiddens,
            "ffn_num_outputs": self.ffn_num_outputs,
            "activation": self.activation,
        }


@keras.saving.register_keras_serializable(package="keras_attention")
class AddNorm(keras.layers.Layer):
    """Residual connection followed by layer normalization: `LayerNorm(dropout(Y) + X)`.

    D2L section "The Transformer Architecture". The blocks call `around`,
    which wraps a whole sub-layer in this residual connection, post-norm
    (this layer's own `LN(X + dropout(f(X)))`) or pre-norm.

    Args:
        dropout: float. Dropout rate on `Y`. Defaults to `0.0`.
        epsilon: float. Layer-normalization epsilon. Defaults to `1e-5`
            (the Transformer paper's and PyTorch's value; Keras' own is 1e-3).
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        X: `(B, T, D)`. The residual (sub-layer input).
        Y: `(B, T, D)`. The sub-layer output.
        training: bool. Whether dropout is active.

    Returns:
        `(B, T, D)`.

    Example:
    >>> X = keras.Input(shape=(None, 4))
    >>> AddNorm(dropout=0.5)(X, X).shape
    (None, None, 4)
    """

    def __init__(self, dropout=0.0, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.dropout = _checks.check_dropout(dropout)
        self.epsilon = _checks.check_positive_float("epsilon", epsilon)
        self.supports_masking = True

    @staticmethod
    def _check_shapes(X_shape, Y_shape, width=None):
        _checks.check_features("X", X_shape, width)
        if len(X_shape) != len(Y_shape) or any(
            _checks.sizes_differ(a, b) for a, b in zip(X_shape, Y_shape)
        ):
            raise ValueError(
                "`X` and `Y` must have the same shape to be added; got "
                f"X.shape={tuple(X_shape)}, Y.shape={tuple(Y_shape)}."
            )

    def build(self, X_shape, Y_shape=None):
        self._check_shapes(X_shape, X_shape if Y_shape is None else Y_shape)
        self._width = X_shape[-1]
        self.drop = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy, name="drop")
        self.ln = keras.layers.LayerNormalization(
            epsilon=self.epsilon, dtype=self.dtype_policy, name="ln"
        )
        self.ln.build(X_shape)
        self.built = True

    def call(self, X, Y, training=None):
        _checks.check_float_tensor("X", X)
        _checks.check_float_tensor("Y", Y)
        self._check_shapes(X.shape, Y.shape, self._width)
        return self.ln(self.drop(Y, training=training) + X)

    def around(self, X, sublayer, norm_first=False, training=None):
        """`sublayer` inside this residual connection: `residual` with this layer's norm and dropout.

        Args:
            X: `(B, T, D)`.
            sublayer: callable on `(B, T, D)`, returning `(B, T, D)` or a
                tuple whose first element is (the rest is passed through).
            norm_first: bool. Pre-norm `X + dropout(f(LN(X)))` instead of
                post-norm `LN(X + dropout(f(X)))`.
            training: bool. Whether dropout is active.

        Returns:
            The output `(B, T, D)` and a tuple of the sub-layer's other outputs.
        """
        return residual(X, sublayer, self.ln, self.drop, norm_first, training)

    def compute_output_shape(self, X_shape, Y_shape=None):
        return X_shape

    def get_config(self):
        return {**super().get_config(), "dropout": self.dropout, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="keras_attention")
class TransformerEncoderBlock(keras.layers.Layer):
    """A Transformer encoder block: self-attention and FFN, each with add & norm.

    D2L section "The Transformer Architecture". Post-norm (D2L, the paper):
    `Y = AddNorm(X, MHA(X)); out = AddNorm(Y, FFN(Y))`. Pre-norm
    (`norm_first=True`): `Y = X + MHA(LN(X)); out = Y + FFN(LN(Y))`.

    Args:
        num_hiddens: int. Model width `D`.
        ffn_num_hiddens: int. Hidden width of the FFN.
        num_heads: int. Attention heads; must divide `num_hiddens`.
        dropout: float. Dropout on attention weights and sub-layer outputs.
        use_bias: bool. Biases in the attention projections. Defaults to `False`.
        norm_first: bool. Pre-norm instead of post-norm. Defaults to `False`.
        num_kv_heads: int or None. Key/value heads of the self-attention
            (grouped-query attention). Defaults to `None` (`num_heads`).
        window: int or None. Sliding window of the self-attention.
            Defaults to `None`.
        qk_norm: `None`, `"rms"` or `"layer"` (self-attention). Defaults to `None`.
        logit_softcap: float or None (self-attention). Defaults to `None`.
        position_bias: `None`, `"alibi"` or `"t5"` (self-attention).
            Defaults to `None`.
        use_rotary: bool. Rotary positions in the self-attention (queries
            and keys rotated by their positions, at the cache index while
            decoding). Defaults to `False`.
        rotary_scaling: `None`, `"linear"`, `"ntk"` or `"yarn"`: stretch the
            rotations for contexts longer than trained (`RotaryEmbedding`'s
            `scaling`). Defaults to `None`.
        rotary_scaling_factor: number. The stretch. Defaults to `1.0`.
        rotary_original_max_len: int or None. The trained length, for
            `"yarn"` only. Defaults to `None`.
        **kwargs: base `keras.layers.Layer` arguments.

    The variant arguments are those of `MultiHeadAttention`, for the
    self-attention.

    Call arguments:
        X: `(B, T, D)`.
        valid_lens: optional integer tensor `(B,)`: positions at or past it
            are padding, never attended to.
        training: bool. Whether dropout is active.
        return_attention_scores: bool. Also return the self-attention weights.
        bias: optional float tensor broadcastable to `(B, H, T, T)`, added to
            the self-attention scores (e.g. a T5 bias shared by the blocks).

    Returns:
        `(B, T, D)`; with `return_attention_scores=True` also `(B, H, T, T)`.

    Example:
    >>> X = keras.Input(shape=(None, 24))
    >>> TransformerEncoderBlock(24, 48, 8, 0.5)(X).shape
    (None, None, 24)
    """

    def __init__(
        self,
        num_hiddens,
        ffn_num_hiddens,
        num_heads,
        dropout,
        use_bias=False,
        norm_first=False,
        num_kv_heads=None,
        window=None,
        qk_norm=None,
        logit_softcap=None,
        position_bias=None,
        use_rotary=False,
        rotary_scaling=None,
        rotary_scaling_factor=1.0,
        rotary_original_max_len=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_hiddens = _checks.check_positive_int("num_hiddens", num_hiddens)
        self.ffn_num_hiddens = _checks.check_positive_int("ffn_num_hiddens", ffn_num_hiddens)
        self.num_heads = _checks.check_heads(num_hiddens, num_heads)
        self.dropout = _checks.check_dropout(dropout)
        self.use_bias = _checks.check_bool("use_bias", use_bias)
        self.norm_first = _checks.check_bool("norm_first", norm_first)
        self.attention_variants = check_block_variants(
            self.num_hiddens,
            self.num_heads,
            num_kv_heads,
            window,
            qk_norm,
            logit_softcap,
            position_bias,
            use_rotary,
            rotary_scaling,
            rotary_scaling_factor,
            rotary_original_max_len,
        )
        self.supports_masking = True

    def build(self, X_shape):
        _checks.check_sequence("X", X_shape, self.num_hiddens)
        self.attention = MultiHeadAttention(
            self.num_hiddens,
            self.num_heads,
            self.dropout,
            use_bias=self.use_bias,
            **self.attention_variants,
            dtype=sublayer_policy(self, "attention"),
            name="attention",
        )
        self.attention.build(X_shape, X_shape, X_shape)
        self.addnorm1 = AddNorm(
            self.dropout, dtype=sublayer_policy(self, "addnorm1"), name="addnorm1"
        )
        self.addnorm1.build(X_shape)
        self.ffn = PositionWiseFFN(
            self.ffn_num_hiddens, self.num_hiddens, dtype=sublayer_policy(self, "ffn"), name="ffn"
        )
        self.ffn.build(X_shape)
        self.addnorm2 = AddNorm(
            self.dropout, dtype=sublayer_policy(self, "addnorm2"), name="addnorm2"
        )
        self.addnorm2.build(X_shape)
        self.built = True

    def call(
        self,
        X,
        valid_lens=None,
        training=None,
        return_attention_scores=False,
        bias=None,
        X_mask=None,
    ):
        return_attention_scores = _checks.check_bool(
            "return_attention_scores", return_attention_scores
        )
        _checks.check_sequence_tensor("X", X, self.num_hiddens)

        def self_attention(Q):  # over the valid positions
            return self.attention(
                Q,
                Q,
                Q,
                valid_lens=valid_lens,
                training=training,
                bias=bias,
                return_attention_scores=return_attention_scores,
                queries_mask=X_mask,
                keys_mask=X_mask,
                values_mask=X_mask,
            )

        Y, weights = self.addnorm1.around(X, self_attention, self.norm_first, training)
        output, _ = self.addnorm2.around(Y, self.ffn, self.norm_first, training)
        return (output, *weights) if return_attention_scores else output

    def compute_mask(self, X, previous_mask=None):
        return previous_mask

    def get_config(self):
        return {
            **super().get_config(),
            **policy_map_config(self),
            "num_hiddens": self.num_hiddens,
            "ffn_num_hiddens": self.ffn_num_hiddens,
            "num_heads": self.num_heads,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "norm_first": self.norm_first,
            **self.attention_variants,
        }


@keras.saving.register_keras_serializable(package="keras_attention")
class TransformerDecoderBlock(keras.layers.Layer):
    """A Transformer decoder block: causal self-attention, cross-attention, FFN.

    D2L section "The Transformer Architecture". Each sub-layer is followed
    by add & norm (post-norm), or preceded by layer normalization with a
    plain residual (`norm_first=True`). Position `t` of `X` attends to
    positions `<= t` only, and to every valid encoder position.

    Incremental decoding: pass `cache` (the self-attention keys and values
    of earlier steps, `(B, 2, L, D)`, zeros at first) and
    `cache_update_index` (the position of the first row of `X`); the block
    returns the updated cache, and feeding a sequence one step at a time
    gives the same outputs as the full causal pass.

    Args:
        num_hiddens: int. Model width `D`.
        ffn_num_hiddens: int. Hidden width of the FFN.
        num_heads: int. Attention heads; must divide `num_hiddens`.
        dropout: float. Dropout on attention weights and sub-layer outputs.
        use_bias: bool. Biases in the attention projections. Defaults to `False`.
        norm_first: bool. Pre-norm instead of post-norm. Defaults to `False`.
        num_kv_heads: int or None. Key/value heads of the self-attention
            (grouped-query attention). Defaults to `None` (`num_heads`).
        window: int or None. Sliding window of the self-attention.
            Defaults to `None`.
        qk_norm: `None`, `"rms"` or `"layer"` (self-attention). Defaults to `None`.
        logit_softcap: float or None (self-attention). Defaults to `None`.
        position_bias: `None`, `"alibi"` or `"t5"` (self-attention).
            Defaults to `None`.
        use_rotary: bool. Rotary positions in the self-attention (queries
            and keys rotated by their positions, at the cache index while
            decoding). Defaults to `False`.
        rotary_scaling: `None`, `"linear"`, `"ntk"` or `"yarn"`: stretch the
            rotations for contexts longer than trained (`RotaryEmbedding`'s
            `scaling`). Defaults to `None`.
        rotary_scaling_factor: number. The stretch. Defaults to `1.0`.
        rotary_original_max_len: int or None. The trained length, for
            `"yarn"` only. Defaults to `None`.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        X: `(B, T, D)`. Decoder inputs.
        enc_outputs: `(B, S, D)`. Encoder outputs.
        enc_valid_lens: optional integer tensor `(B,)`: encoder positions at
            or past it are padding.
        training: bool. Whether dropout is active.
        return_attention_scores: bool. Also return the self- and
            cross-attention weights.
        cache: optional `(B, 2, L, D)` self-attention cache.
        cache_update_index: int or scalar tensor; required with `cache`.
        cross_cache: optional `(2, B, S, D)` from `project_encoder(enc_outputs)`:
            the cross-attention keys and values, projected once per decoding
            instead of at every step.
        bias: optional float tensor broadcastable to `(B, H, T, T or L)`,
            added to the self-attention scores.

    The variant arguments are those of `MultiHeadAttention`, for the causal
    self-attention (`attention1`; with `num_kv_heads` the cache is
    `num_kv_heads * D / H` wide); the cross-attention stays plain.

    Returns:
        `(B, T, D)`; then, with `return_attention_scores=True`, the
        self-attention weights `(B, H, T, T or L)` and cross-attention
        weights `(B, H, T, S)`; then, with `cache`, the updated cache.

    Example:
    >>> X = keras.Input(shape=(None, 24))
    >>> enc = keras.Input(shape=(None, 24))
    >>> TransformerDecoderBlock(24, 48, 8, 0.5)(X, enc).shape
    (None, None, 24)
    """

    def __init__(
        self,
        num_hiddens,
        ffn_num_hiddens,
        num_heads,
        dropout,
        use_bias=False,
        norm_first=False,
        num_kv_heads=None,
        window=None,
        qk_norm=None,
        logit_softcap=None,
        position_bias=None,
        use_rotary=False,
        rotary_scaling=None,
        rotary_scaling_factor=1.0,
        rotary_original_max_len=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_hiddens = _checks.check_positive_int("num_hiddens", num_hiddens)
        self.ffn_num_hiddens = _checks.check_positive_int("ffn_num_hiddens", ffn_num_hiddens)
        self.num_heads = _checks.check_heads(num_hiddens, num_heads)
        self.dropout = _checks.check_dropout(dropout)
        self.use_bias = _checks.check_bool("use_bias", use_bias)
        self.norm_first = _checks.check_bool("norm_first", norm_first)
        self.attention_variants = check_block_variants(
            self.num_hiddens,
            self.num_heads,
            num_kv_heads,
            window,
            qk_norm,
            logit_softcap,
            position_bias,
            use_rotary,
            rotary_scaling,
            rotary_scaling_factor,
            rotary_original_max_len,
        )
        self.supports_masking = True

    def build(self, X_shape, enc_outputs_shape=None):
        _checks.check_sequence("X", X_shape, self.num_hiddens)
        enc_outputs_shape = X_shape if enc_outputs_shape is None else enc_outputs_shape
        _checks.check_sequence("enc_outputs", enc_outputs_shape)

        def mha(name, **variants):
            return MultiHeadAttention(
                self.num_hiddens,
                self.num_heads,
                self.dropout,
                use_bias=self.use_bias,
                **variants,
                dtype=sublayer_policy(self, name),
                name=name,
            )

        def addnorm(name):
            layer = AddNorm(self.dropout, dtype=sublayer_policy(self, name), name=name)
            layer.build(X_shape)
            return layer

        self.attention1 = mha("attention1", **self.attention_variants)
        self.attention1.build(X_shape, X_shape, X_shape)
        self.addnorm1 = addnorm("addnorm1")
        self.attention2 = mha("attention2")
        self.attention2.build(X_shape, enc_outputs_shape, enc_outputs_shape)
        self._enc_size = enc_outputs_shape[-1]
        self.addnorm2 = addnorm("addnorm2")
        self.ffn = PositionWiseFFN(
            self.ffn_num_hiddens, self.num_hiddens, dtype=sublayer_policy(self, "ffn"), name="ffn"
        )
        self.ffn.build(X_shape)
        self.addnorm3 = addnorm("addnorm3")
        self.built = True

    def call(
        self,
        X,
        enc_outputs,
        enc_valid_lens=None,
        training=None,
        return_attention_scores=False,
        cache=None,
        cache_update_index=None,
        cross_cache=None,
        bias=None,
        X_mask=None,
        enc_outputs_mask=None,
    ):
        return_attention_scores = _checks.check_bool(
            "return_attention_scores", return_attention_scores
        )
        self._check_inputs(X, enc_outputs)

        def self_attention(Q):  # causal, with the cache when decoding step by step
            return self.attention1(
                Q,
                Q,
                Q,
                use_causal_mask=True,
                training=training,
                return_attention_scores=return_attention_scores,
                cache=cache,
                cache_update_index=cache_update_index,
                bias=bias,
                queries_mask=X_mask,
                keys_mask=X_mask,
                values_mask=X_mask,
            )

        def cross_attention(Q):  # over the valid encoder positions
            return self.attention2(
                Q,
                enc_outputs,
                enc_outputs,
                valid_lens=enc_valid_lens,
                training=training,
                return_attention_scores=return_attention_scores,
                projected_keys_values=cross_cache,
                queries_mask=X_mask,
                keys_mask=enc_outputs_mask,
                values_mask=enc_outputs_mask,
            )

        Y, self_extras = self.addnorm1.around(X, self_attention, self.norm_first, training)
        Z, cross_extras = self.addnorm2.around(Y, cross_attention, self.norm_first, training)
        output, _ = self.addnorm3.around(Z, self.ffn, self.norm_first, training)
        results = (output,)  # self_extras: (weights, cache), (weights,), (cache,) or ()
        if return_attention_scores:
            results += (self_extras[0], cross_extras[0])
        if cache is not None:
            results += (self_extras[-1],)
        return results[0] if len(results) == 1 else results

    def _check_inputs(self, X, enc_outputs):
        _checks.check_sequence_tensor("X", X, self.num_hiddens)
        _checks.check_float_tensor("enc_outputs", enc_outputs)
        _checks.check_sequence("enc_outputs", enc_outputs.shape)
        if _checks.sizes_differ(enc_outputs.shape[-1], self._enc_size):
            raise ValueError(
                f"The last axis of `enc_outputs` must equal the {self._enc_size} features the "
                f"block was built with; got enc_outputs.shape={tuple(enc_outputs.shape)}."
            )
        _checks.check_same_batch(("X", X.shape), ("enc_outputs", enc_outputs.shape))

    def project_encoder(self, enc_outputs):
        """The cross-attention keys and values of `enc_outputs` `(B, S, D)`, `(2, B, S, D)`.

        Computed once per decoding and passed to every step as `cross_cache`.
        """
        return self.attention2.project_keys_values(enc_outputs)

    def compute_mask(self, X, previous_mask=None):
        return previous_mask

    def get_config(self):
        return {
            **super().get_config(),
            **policy_map_config(self),
            "num_hiddens": self.num_hiddens,
            "ffn_num_hiddens": self.ffn_num_hiddens,
            "num_heads": self.num_heads,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "norm_first": self.norm_first,
            **self.attention_variants,
        }
