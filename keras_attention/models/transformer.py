"""The Transformer encoder-decoder as a functional Keras model.

D2L section "The Transformer Architecture": token embeddings scaled by
`sqrt(num_hiddens)`, sinusoidal positions, `num_blks` encoder blocks,
`num_blks` decoder blocks and a dense layer to target-vocabulary logits.
Padding masks come from `pad_id` inside the graph, so the model takes bare
token ids.

`TransformerInference` runs the same layers one decoding step at a time
with the decoder blocks' key/value cache, for `keras_attention.generate`.

Letters used in shape comments: B batch, S source length, T target length,
D num_hiddens, V target vocabulary, N num_blks, L cache length.
"""

import keras
from keras import ops

from keras_attention import _checks
from keras_attention.layers import (
    SinusoidalPositionalEncoding,
    TokenEmbedding,
    TransformerDecoderBlock,
    TransformerEncoderBlock,
)

__all__ = ["transformer", "TransformerInference"]


def transformer(
    src_vocab_size,
    tgt_vocab_size,
    num_hiddens,
    ffn_num_hiddens,
    num_heads,
    num_blks,
    dropout,
    max_len,
    pad_id=0,
    norm_first=False,
    return_attention_scores=False,
    name="transformer",
):
    """Builds D2L's Transformer encoder-decoder.

    Args:
        src_vocab_size: int. Source vocabulary size.
        tgt_vocab_size: int. Target vocabulary size.
        num_hiddens: int. Model width `D`.
        ffn_num_hiddens: int. Hidden width of each FFN.
        num_heads: int. Attention heads per block.
        num_blks: int. Encoder blocks, and decoder blocks.
        dropout: float. Dropout rate everywhere.
        max_len: int. Longest source or target sequence the positional
            encoding covers.
        pad_id: int. Padding id of both vocabularies. Defaults to `0`.
        norm_first: bool. Pre-norm blocks. Defaults to `False` (D2L).
        return_attention_scores: bool. Also output every block's attention
            weights (the D2L heatmaps). Defaults to `False`.
        name: str. Model name.

    Returns:
        A `keras.Model` with inputs `src_ids` `(B, S)` and `tgt_in_ids`
        `(B, T)` (int32) and output `logits` `(B, T, V)` (float32). With
        `return_attention_scores=True` the output is a dict: `logits`,
        `encoder_attention_{i}` `(B, H, S, S)`, `decoder_self_attention_{i}`
        `(B, H, T, T)` and `decoder_cross_attention_{i}` `(B, H, T, S)`.
    """
    src_vocab_size = _checks.check_positive_int("src_vocab_size", src_vocab_size)
    tgt_vocab_size = _checks.check_positive_int("tgt_vocab_size", tgt_vocab_size)
    num_hiddens, ffn_num_hiddens, num_heads, num_blks, dropout = _checks.check_blocks(
        num_hiddens, ffn_num_hiddens, num_heads, num_blks, dropout
    )
    max_len = _checks.check_positive_int("max_len", max_len)
    pad_id = _checks.check_pad_id(
        pad_id, {"src_vocab_size": src_vocab_size, "tgt_vocab_size": tgt_vocab_size}
    )
    norm_first = _checks.check_bool("norm_first", norm_first)
    return_attention_scores = _checks.check_bool("return_attention_scores", return_attention_scores)
    name = _checks.check_string("name", name)

    # Layers.
    src_embedding = TokenEmbedding(
        src_vocab_size, num_hiddens, pad_id=pad_id, scale=True, name="src_embedding"
    )
    src_positions = SinusoidalPositionalEncoding(
        num_hiddens, dropout, max_len=max_len, name="src_positions"
    )
    encoder_blocks = [
        TransformerEncoderBlock(
            num_hiddens, ffn_num_hiddens, num_heads, dropout, norm_first=norm_first,
            name=f"encoder_block_{i}",
        )
        for i in range(num_blks)
    ]
    tgt_embedding = TokenEmbedding(
        tgt_vocab_size, num_hiddens, pad_id=pad_id, scale=True, name="tgt_embedding"
    )
    tgt_positions = SinusoidalPositionalEncoding(
        num_hiddens, dropout, max_len=max_len, name="tgt_positions"
    )
    decoder_blocks = [
        TransformerDecoderBlock(
            num_hiddens, ffn_num_hiddens, num_heads, dropout, norm_first=norm_first,
            name=f"decoder_block_{i}",
        )
        for i in range(num_blks)
    ]
    final_norm = (
        keras.layers.LayerNormalization(epsilon=1e-5, name="final_norm") if norm_first else None
    )
    output_dense = keras.layers.Dense(tgt_vocab_size, dtype="float32", name="output_dense")

    # Functional graph.
    src_ids = keras.Input(shape=(None,), dtype="int32", name="src_ids")
    tgt_in_ids = keras.Input(shape=(None,), dtype="int32", name="tgt_in_ids")
    scores = {}
    X = src_positions(src_embedding(src_ids))  # (B, S, D), masked where src == pad
    for i, block in enumerate(encoder_blocks):
        X = block(X, return_attention_scores=return_attention_scores)
        if return_attention_scores:
            X, scores[f"encoder_attention_{i}"] = X
    Y = tgt_positions(tgt_embedding(tgt_in_ids))  # (B, T, D)
    for i, block in enumerate(decoder_blocks):
        Y = block(Y, X, return_attention_scores=return_attention_scores)
        if return_attention_scores:
            Y, scores[f"decoder_self_attention_{i}"], scores[f"decoder_cross_attention_{i}"] = Y
    if final_norm is not None:
        Y = final_norm(Y)
    logits = output_dense(Y)  # (B, T, V)
    outputs = {"logits": logits, **scores} if return_attention_scores else logits

    # Config.
    model = keras.Model({"src_ids": src_ids, "tgt_in_ids": tgt_in_ids}, outputs, name=name)
    return model


class TransformerInference:
    """Step-by-step decoding with a model built by `transformer`.

    Holds the model's layers (found by name) and runs the encoder once, then
    the decoder one token at a time with each decoder block's key/value cache.

    Args:
        model: a `keras.Model` built by `transformer`.
        max_len: int. Longest output the cache holds.
    """

    def __init__(self, model, max_len):
        self.model = model
        self.max_len = _checks.check_positive_int("max_len", max_len)
        names = {layer.name for layer in model.layers}
        self.num_blks = sum(n.startswith("decoder_block_") for n in names)
        self.src_embedding = model.get_layer("src_embedding")
        self.src_positions = model.get_layer("src_positions")
        self.encoder_blocks = [model.get_layer(f"encoder_block_{i}") for i in range(self.num_blks)]
        self.tgt_embedding = model.get_layer("tgt_embedding")
        self.tgt_positions = model.get_layer("tgt_positions")
        self.decoder_blocks = [model.get_layer(f"decoder_block_{i}") for i in range(self.num_blks)]
        self.final_norm = model.get_layer("final_norm") if "final_norm" in names else None
        self.output_dense = model.get_layer("output_dense")
        self.pad_id = self.src_embedding.pad_id
        self.num_hiddens = self.tgt_embedding.num_hiddens

    def encode(self, src_ids):
        """Returns the decoding state: encoder outputs `(B, S, D)` and source mask `(B, S)`."""
        src_ids = ops.convert_to_tensor(src_ids, "int32")
        src_mask = ops.not_equal(src_ids, self.pad_id)
        X = self.src_positions(self.src_embedding(src_ids), training=False)
        for block in self.encoder_blocks:
            X = block(X, training=False, X_mask=src_mask)
        cache = ops.zeros(
            (self.num_blks, ops.shape(src_ids)[0], 2, self.max_len, self.num_hiddens),
            dtype=X.dtype,
        )  # (N, B, 2, L, D)
        return {"enc_outputs": X, "src_mask": src_mask, "cache": cache}

    def step(self, tokens, state, index):
        """Decodes one step.

        Args:
            tokens: `(B,)` int. The tokens at position `index`.
            state: dict from `encode` (or a previous `step`).
            index: scalar int. Position of `tokens`.

        Returns:
            `(logits (B, V), new_state, cross_attention (B, S))`: the
            cross-attention weights of the last block, averaged over heads.
        """
        Y = self.tgt_embedding(ops.expand_dims(tokens, 1))  # (B, 1, D)
        Y = self.tgt_positions(Y, start_index=index, training=False)
        caches = []
        for i, block in enumerate(self.decoder_blocks):
            Y, _, cross_weights, cache = block(
                Y,
                state["enc_outputs"],
                training=False,
                return_attention_scores=True,
                cache=state["cache"][i],
                cache_update_index=index,
                enc_outputs_mask=state["src_mask"],
            )
            caches.append(cache)
        if self.final_norm is not None:
            Y = self.final_norm(Y)
        logits = self.output_dense(Y)[:, 0]  # (B, V)
        new_state = {**state, "cache": ops.stack(caches, axis=0)}
        attention = ops.mean(cross_weights[:, :, 0], axis=1)  # (B, S)
        return logits, new_state, attention

    @staticmethod
    def batch_axes():
        """The batch axis of each state entry, for reordering beams."""
        return {"enc_outputs": 0, "src_mask": 0, "cache": 1}
