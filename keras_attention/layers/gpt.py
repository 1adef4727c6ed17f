"""The decoder-only (GPT) Transformer block.

D2L section "Large-Scale Pretraining with Transformers": a GPT block is a
Transformer decoder block without cross-attention, so each position attends
only to itself and earlier positions. Like GPT-2 (and nanoGPT) it is
pre-norm: layer normalization before each sub-layer, a plain residual
around it, and a GELU feed-forward network.

Letters used in shape comments: B batch, T sequence length, D num_hiddens,
H heads, L cache length.
"""

import keras

from keras_attention import _checks
from keras_attention.layers._policies import policy_map_config, sublayer_policy
from keras_attention.layers.attention import MultiHeadAttention, check_block_variants
from keras_attention.layers.transformer import PositionWiseFFN, residual

__all__ = ["GPTBlock"]

# PyTorch's (and GPT-2's) layer-normalization epsilon; Keras' own is 1e-3.
_EPSILON = 1e-5


@keras.saving.register_keras_serializable(package="keras_attention")
class GPTBlock(keras.layers.Layer):
    """A GPT decoder block: causal self-attention and a GELU FFN, pre-norm.

    D2L section "Large-Scale Pretraining with Transformers" (decoder-only
    models; Radford et al., 2018, 2019):

        X = X + dropout(MHA(LN1(X)))      # causal: position t sees <= t
        out = X + dropout(FFN(LN2(X)))

    Incremental decoding: pass `cache` (the self-attention keys and values of
    earlier positions, `(B, 2, L, D)`, zeros at first) and
    `cache_update_index` (the position of the first row of `X`); the block
    writes the new keys and values there and also returns the updated cache.
    A whole prompt can be written in one call (`cache_update_index=0`) and
    then one token per call; the outputs equal those of the full causal pass.

    Attention variants (see `MultiHeadAttention`): grouped-query attention
    (`num_kv_heads`; the cache is then `(B, 2, L, num_kv_heads * D / H)`),
    a sliding window (`window`), QK normalisation (`qk_norm`), logit
    soft-capping (`logit_softcap`), a position bias (`position_bias`, or a
    `bias` given at call, e.g. one shared by every block) and rotary
    positions (`use_rotary`, with `rotary_scaling` for longer contexts).

    Args:
        num_hiddens: int. Model width `D`.
        ffn_num_hiddens: int. Hidden width of the FFN (GPT: `4 * D`).
        num_heads: int. Attention heads; must divide `num_hiddens`.
        dropout: float. Dropout on the attention weights and on both
            sub-layer outputs.
        use_bias: bool. Biases in the attention projections. Defaults to
            `True` (GPT-2).
        num_kv_heads: int or None. Key/value heads (grouped-query
            attention); must divide `num_heads`. Defaults to `None` (`num_heads`).
        window: int or None. Sliding-window size. Defaults to `None`.
        qk_norm: `None`, `"rms"` or `"layer"`. Defaults to `None`.
        logit_softcap: float or None. Defaults to `None`.
        position_bias: `None`, `"alibi"` or `"t5"`. Defaults to `None`.
        use_rotary: bool. Rotary positions in the attention. Defaults to `False`.
        rotary_scaling: `None`, `"linear"`, `"ntk"` or `"yarn"`. Defaults to `None`.
        rotary_scaling_factor: number. Defaults to `1.0`.
        rotary_original_max_len: int or None. The trained length, for
            `"yarn"` only. Defaults to `None`.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        X: `(B, T, D)`.
        training: bool. Whether dropout is active.
        cache: optional `(B, 2, L, D)` self-attention cache.
        cache_update_index: int or scalar integer tensor; required with
            `cache`.
        return_attention_scores: bool. Also return the attention weights.
        bias: optional float tensor broadcastable to `(B, H, T, T)` (`T` by
            `L` with a cache), added to the attention scores.

    Returns:
        `(B, T, D)`; with `return_attention_scores=True` also the weights
        `(B, H, T, T)` (`(B, H, T, L)` with a cache); with `cache` also the
        updated cache `(B, 2, L, D)` (`num_kv_heads * D / H` wide with
        `num_kv_heads`). Order: output, weights, cache. A Keras mask on `X`
        passes through (and masks keys).

    Example:
    >>> X = keras.Input(shape=(None, 24))
    >>> GPTBlock(num_hiddens=24, ffn_num_hiddens=96, num_heads=4, dropout=0.1)(X).shape
    (None, None, 24)
    """

    def __init__(
        self,
        num_hiddens,
        ffn_num_hiddens,
        num_heads,
        dropout,
        use_bias=True,
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
        # The attention's variant arguments, checked here and passed on as they are.
        self.attention_variants = check_block_variants(
            num_hiddens,
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
        self.ln1 = keras.layers.LayerNormalization(
            epsilon=_EPSILON, dtype=sublayer_policy(self, "ln1"), name="ln1"
        )
        self.ln1.build(X_shape)
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
        self.ln2 = keras.layers.LayerNormalization(
            epsilon=_EPSILON, dtype=sublayer_policy(self, "ln2"), name="ln2"
        )
        self.ln2.build(X_shape)
        self.ffn = PositionWiseFFN(
            self.ffn_num_hiddens,
            self.num_hiddens,
            activation="gelu",
            dtype=sublayer_policy(self, "ffn"),
            name="ffn",
        )
        self.ffn.build(X_shape)
        self.drop = keras.layers.Dropout(
            self.dropout, dtype=sublayer_policy(self, "drop"), name="drop"
        )
        self.built = True

    def call(
        self,
        X,
        training=None,
        cache=None,
        cache_update_index=None,
        return_attention_scores=False,
        bias=None,
        X_mask=None,
    ):
        return_attention_scores = _checks.check_bool(
            "return_attention_scores", return_attention_scores
        )
        _checks.check_sequence_tensor("X", X, self.num_hiddens)

        def self_attention(Q):  # causal, with the cache when decoding step by step
            return self.attention(
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

        # Pre-norm: X + dropout(MHA(LN1(X))), then X + dropout(FFN(LN2(X))).
        X, extras = residual(X, self_attention, self.ln1, self.drop, True, training)
        output, _ = residual(X, self.ffn, self.ln2, self.drop, True, training)  # (B, T, D)
        # extras: the weights (B, H, T, T or L) and/or the updated cache (B, 2, L, D_kv)
        return (output, *extras) if extras else output

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
            **self.attention_variants,
        }
