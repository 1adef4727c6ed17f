"""The Transformer encoder-decoder as a functional Keras model.

D2L section "The Transformer Architecture": token embeddings scaled by
`sqrt(num_hiddens)`, sinusoidal positions, `num_blks` encoder blocks,
`num_blks` decoder blocks and a dense layer to target-vocabulary logits.
Padding masks come from `pad_id` inside the graph, so the model takes bare
token ids. Beyond the chapter, the blocks' self-attention can take the
variants of `gpt`: grouped-query heads, a sliding window, QK normalisation,
logit soft-capping, rotary positions (with scaling) or ALiBi.

`keras_attention.generate.TransformerStepDecoder` runs the same layers one
decoding step at a time with the decoder blocks' key/value cache.

Letters used in shape comments: B batch, S source length, T target length,
D num_hiddens, V target vocabulary, N num_blks, L cache length.
"""

import keras

from keras_attention import _checks
from keras_attention.layers import (
    TokenEmbedding,
    TransformerDecoderBlock,
    TransformerEncoderBlock,
)
from keras_attention.models import _positions

__all__ = ["transformer"]


def _embedding_layers(side, vocab_size, num_hiddens, pad_id, positions, max_len, dropout):
    """One side's (`"src"` or `"tgt"`) scaled token embedding, positions and embedding dropout."""
    return (
        TokenEmbedding(
            vocab_size, num_hiddens, pad_id=pad_id, scale=True, name=f"{side}_embedding"
        ),
        _positions.position_layer(positions, max_len, num_hiddens, dropout, f"{side}_positions"),
        _positions.embedding_dropout(positions, dropout, f"{side}_dropout"),
    )


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
    positions="sinusoidal",
    num_kv_heads=None,
    window=None,
    qk_norm=None,
    logit_softcap=None,
    rotary_scaling=None,
    rotary_scaling_factor=1.0,
    rotary_original_max_len=None,
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
        positions: str. How order enters, on both sides: `"sinusoidal"`
            (D2L's fixed `P`, with dropout), `"learned"` (trained tables
            plus dropout), `"rotary"` (queries and keys of every
            self-attention rotated) or `"alibi"` (distance penalties on
            every self-attention's scores; the cross-attention gets none).
            Defaults to `"sinusoidal"` (D2L).
        num_kv_heads: int or None. Key/value heads of every self-attention
            (grouped-query attention; `1`: multi-query): the decoder's
            key/value cache holds `num_kv_heads * D / H` features per
            position instead of `D`. Defaults to `None` (`num_heads`).
        window: int or None. Sliding window of every self-attention: a
            decoder position `t` attends to `t - window < j <= t`, an
            encoder position `i` to `|i - j| < window`. Defaults to `None`.
        qk_norm: `None`, `"rms"` or `"layer"`. Normalise queries and keys
            per head in every self-attention. Defaults to `None`.
        logit_softcap: float or None. Soft-cap every self-attention's
            scores, `c tanh(s / c)`. Defaults to `None`.
        rotary_scaling: `None`, `"linear"`, `"ntk"` or `"yarn"`
            (positions="rotary" only): stretch the rotations for sequences
            longer than trained. Defaults to `None`.
        rotary_scaling_factor: number. The stretch `s`. Defaults to `1.0`.
        rotary_original_max_len: int or None. The trained length, for
            `"yarn"`. Defaults to `None`.
        name: str. Model name.

    The variants (positions included) apply to the self-attention of the
    encoder blocks and of the decoder blocks only: the decoder's
    cross-attention stays plain multi-head attention over every valid
    source position, since a target position and a source position have no
    positional relation for a window, a rotation or a distance penalty to
    use (and its keys and values are projected once per source, not cached
    per step).

    Returns:
        A `keras.Model` with inputs `src_ids` `(B, S)` and `tgt_in_ids`
        `(B, T)` (int32) and output `logits` `(B, T, V)` (float32). Layers:
        `src_embedding`, `src_positions` (sinusoidal and learned),
        `src_dropout` (not sinusoidal), `encoder_block_{i}`, the same with
        `tgt_`, `decoder_block_{i}`, `final_norm` (pre-norm) and
        `output_dense`. With
        `return_attention_scores=True` the output is a dict: `logits`,
        `encoder_attention_{i}` `(B, H, S, S)`, `decoder_self_attention_{i}`
        `(B, H, T, T)` and `decoder_cross_attention_{i}` `(B, H, T, S)`.
    """
    vocab_sizes, max_len, pad_id = _check_vocabularies(
        src_vocab_size, tgt_vocab_size, max_len, pad_id
    )
    num_hiddens, ffn_num_hiddens, num_heads, num_blks, dropout = _checks.check_blocks(
        num_hiddens, ffn_num_hiddens, num_heads, num_blks, dropout
    )
    norm_first = _checks.check_bool("norm_first", norm_first)
    return_attention_scores = _checks.check_bool("return_attention_scores", return_attention_scores)
    positions = _positions.check_positions(positions)
    variants = _positions.block_variants(
        num_hiddens,
        num_heads,
        positions,
        num_kv_heads,
        window,
        qk_norm,
        logit_softcap,
        rotary_scaling,
        rotary_scaling_factor,
        rotary_original_max_len,
    )
    name = _checks.check_string("name", name)
    block_args = (num_hiddens, ffn_num_hiddens, num_heads, dropout)
    block_options = dict(norm_first=norm_first, **variants)
    layers = _layers(vocab_sizes, num_blks, block_args, block_options, pad_id, positions, max_len)
    return _model(layers, return_attention_scores, name)


def _check_vocabularies(src_vocab_size, tgt_vocab_size, max_len, pad_id):
    """`((src_vocab_size, tgt_vocab_size), max_len, pad_id)`, checked."""
    src_vocab_size = _checks.check_positive_int("src_vocab_size", src_vocab_size)
    tgt_vocab_size = _checks.check_positive_int("tgt_vocab_size", tgt_vocab_size)
    max_len = _checks.check_positive_int("max_len", max_len)
    pad_id = _checks.check_pad_id(
        pad_id, {"src_vocab_size": src_vocab_size, "tgt_vocab_size": tgt_vocab_size}
    )
    return (src_vocab_size, tgt_vocab_size), max_len, pad_id


def _layers(vocab_sizes, num_blks, block_args, block_options, pad_id, positions, max_len):
    """Every layer of the model by role: the embeddings, the blocks, the final norm and dense."""
    (src_vocab_size, tgt_vocab_size), (num_hiddens, _, _, dropout) = vocab_sizes, block_args
    embedding_args = (num_hiddens, pad_id, positions, max_len, dropout)
    norm_first = block_options["norm_first"]
    return {
        "src": _embedding_layers("src", src_vocab_size, *embedding_args),
        "encoder_blocks": _positions.blocks(
            TransformerEncoderBlock, "encoder_block", num_blks, block_args, block_options
        ),
        "tgt": _embedding_layers("tgt", tgt_vocab_size, *embedding_args),
        "decoder_blocks": _positions.blocks(
            TransformerDecoderBlock, "decoder_block", num_blks, block_args, block_options
        ),
        "final_norm": (
            keras.layers.LayerNormalization(epsilon=1e-5, name="final_norm") if norm_first else None
        ),
        "output_dense": keras.layers.Dense(tgt_vocab_size, dtype="float32", name="output_dense"),
    }


def _model(layers, return_attention_scores, name):
    """The functional graph from token ids to logits (and the attention weights)."""
    src_ids = keras.Input(shape=(None,), dtype="int32", name="src_ids")
    tgt_in_ids = keras.Input(shape=(None,), dtype="int32", name="tgt_in_ids")
    scores = {}
    X = _positions.add_positions(layers["src"][0](src_ids), *layers["src"][1:])
    # X: (B, S, D), masked where src == pad
    for i, block in enumerate(layers["encoder_blocks"]):
        X = block(X, return_attention_scores=return_attention_scores)
        if return_attention_scores:
            X, scores[f"encoder_attention_{i}"] = X
    Y = _positions.add_positions(layers["tgt"][0](tgt_in_ids), *layers["tgt"][1:])  # (B, T, D)
    for i, block in enumerate(layers["decoder_blocks"]):
        Y = block(Y, X, return_attention_scores=return_attention_scores)
        if return_attention_scores:
            Y, scores[f"decoder_self_attention_{i}"], scores[f"decoder_cross_attention_{i}"] = Y
    if layers["final_norm"] is not None:
        Y = layers["final_norm"](Y)
    logits = layers["output_dense"](Y)  # (B, T, V)
    outputs = {"logits": logits, **scores} if return_attention_scores else logits
    return keras.Model({"src_ids": src_ids, "tgt_in_ids": tgt_in_ids}, outputs, name=name)
