"""Pretrained-Transformer families, made small: GPT, BERT and T5.

D2L section "Large-Scale Pretraining with Transformers" (and, for BERT,
"Bidirectional Encoder Representations from Transformers" and "Fine-Tuning
BERT"): the three ways of using Transformer blocks for pretraining.

- Decoder-only (`gpt`): a stack of decoder blocks without cross-attention,
  trained to predict each next token. Token embeddings (not scaled) plus
  learned positions, `num_blks` pre-norm `GPTBlock`s, a final layer
  normalization and a linear map to vocabulary logits, optionally tied to
  the token embeddings (GPT-2). `keras_attention.generate.GPTStepDecoder`
  runs the prompt in one chunk that fills every block's key/value cache,
  then one token per step (see `keras_attention.generate.sample`).
- Encoder-only (`bert`): D2L's `BERTEncoder`: token, segment and learned
  position embeddings summed, then `num_blks` post-norm encoder blocks.
  `bert_mlm` puts D2L's `MaskLM` head on it (scoring every position; the
  loss keeps the masked ones), `bert_classifier` D2L's pooler and a dense
  layer on the `<cls>` position. Both call the encoder model itself, so its
  weights are shared: pretrain with `bert_mlm`, then fine-tune with
  `bert_classifier` on the trained encoder.
- Encoder-decoder (`t5`): both sides read ONE shared token embedding, with
  pre-norm blocks and final layer norms (Raffel et al., 2020).
  `keras_attention.generate.TransformerStepDecoder` decodes it step by step.

Letters used in shape comments: B batch, T sequence (or target) length,
S source length, P prompt length, D num_hiddens, V vocabulary, C classes,
N num_blks, L cache length.
"""

import keras

from keras_attention import _checks
from keras_attention.layers import (
    GPTBlock,
    LearnedPositionalEmbedding,
    SegmentEmbedding,
    TakeClassToken,
    TiedTokenEmbedding,
    TokenEmbedding,
    TransformerDecoderBlock,
    TransformerEncoderBlock,
)
from keras_attention.models import _positions

__all__ = [
    "gpt",
    "bert",
    "bert_mlm",
    "bert_classifier",
    "t5",
]


def gpt(
    vocab_size,
    num_hiddens,
    ffn_num_hiddens,
    num_heads,
    num_blks,
    dropout,
    max_len,
    pad_id=0,
    tie_embeddings=False,
    positions="learned",
    num_kv_heads=None,
    window=None,
    qk_norm=None,
    logit_softcap=None,
    rotary_scaling=None,
    rotary_scaling_factor=1.0,
    rotary_original_max_len=None,
    name="gpt",
):
    """Builds a decoder-only GPT language model.

    Args:
        vocab_size: int. Vocabulary size `V`.
        num_hiddens: int. Model width `D`.
        ffn_num_hiddens: int. Hidden width of each FFN (GPT: `4 * D`).
        num_heads: int. Attention heads per block.
        num_blks: int. Number of `GPTBlock`s.
        dropout: float. Dropout rate everywhere.
        max_len: int. Longest sequence (prompt plus generated tokens) the
            learned positional embedding covers.
        pad_id: int or None. Padding id: padded positions are never
            attended to. `None`: the batches hold no padding (packed
            pretraining text), so the blocks get no padding mask and their
            attention is causal only, which runs the backend's fused causal
            kernel where it has one (`is_causal`, e.g. cuDNN flash attention
            with JAX on a GPU). Defaults to `0`.
        tie_embeddings: bool. Compute the logits with the transposed token
            embedding matrix instead of a separate `lm_head` Dense layer.
            Defaults to `False`.
        positions: str. How order enters: `"learned"` (GPT-2's trained
            table `E[t]` added to the embeddings), `"sinusoidal"` (D2L's
            fixed `P[t]` added), `"rotary"` (queries and keys rotated by
            their positions in every block, RoFormer) or `"alibi"` (a
            per-head linear distance penalty on the scores). The additive
            kinds cover `max_len` positions; rotary and ALiBi have no
            table and no positional limit. Defaults to `"learned"`.
        num_kv_heads: int or None. Key/value heads of every block
            (grouped-query attention; `1`: multi-query): the cache holds
            `num_kv_heads * D / H` features per position instead of `D`.
            Defaults to `None` (`num_heads`).
        window: int or None. Sliding window: position `t` attends to
            `t - window < j <= t` only. Defaults to `None` (all earlier).
        qk_norm: `None`, `"rms"` or `"layer"`. Normalise queries and keys
            per head before the dot product. Defaults to `None`.
        logit_softcap: float or None. Soft-cap the scores,
            `c tanh(s / c)`. Defaults to `None`.
        rotary_scaling: `None`, `"linear"`, `"ntk"` or `"yarn"`
            (positions="rotary" only): stretch the rotations for contexts
            longer than trained. Defaults to `None`.
        rotary_scaling_factor: number. The stretch `s` (e.g. 2 to read
            twice the trained length). Defaults to `1.0`.
        rotary_original_max_len: int or None. The trained length, for
            `"yarn"`. Defaults to `None`.
        name: str. Model name.

    Returns:
        A `keras.Model` with input `token_ids` `(B, T)` (int32) and output
        logits `(B, T, V)` (float32): position `t` scores the token at
        `t + 1`. Layers: `token_embedding`, `positions` (learned and
        sinusoidal only), `gpt_block_{i}`, `final_norm`, and `lm_head`
        unless `tie_embeddings`.

    Example:
    >>> model = gpt(100, 32, 128, 4, 2, 0.1, max_len=64)
    >>> model.output.shape
    (None, None, 100)
    """
    vocab_size = _checks.check_positive_int("vocab_size", vocab_size)
    num_hiddens, ffn_num_hiddens, num_heads, num_blks, dropout = _checks.check_blocks(
        num_hiddens, ffn_num_hiddens, num_heads, num_blks, dropout
    )
    max_len = _checks.check_positive_int("max_len", max_len)
    pad_id = _checks.check_pad_id(pad_id, {"vocab_size": vocab_size}, allow_none=True)
    tie_embeddings = _checks.check_bool("tie_embeddings", tie_embeddings)
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
    layers = _gpt_layers(
        vocab_size, max_len, pad_id, tie_embeddings, positions, num_blks, block_args, variants
    )
    return _gpt_model(layers, name)


def _gpt_layers(
    vocab_size, max_len, pad_id, tie_embeddings, positions, num_blks, block_args, variants
):
    """`gpt`'s layers by role; `lm_head` is None with tied embeddings."""
    num_hiddens, dropout = block_args[0], block_args[3]
    embedding_cls = TiedTokenEmbedding if tie_embeddings else TokenEmbedding
    return {
        "token_embedding": embedding_cls(
            vocab_size, num_hiddens, pad_id=pad_id, name="token_embedding"
        ),
        "positions": _positions.position_layer(positions, max_len, num_hiddens, 0.0, "positions"),
        "embedding_dropout": keras.layers.Dropout(dropout, name="embedding_dropout"),
        "blocks": _positions.blocks(GPTBlock, "gpt_block", num_blks, block_args, variants),
        "final_norm": keras.layers.LayerNormalization(epsilon=1e-5, name="final_norm"),
        "lm_head": (
            None
            if tie_embeddings
            else keras.layers.Dense(vocab_size, dtype="float32", name="lm_head")
        ),
    }


def _gpt_model(layers, name):
    """`gpt`'s functional graph from `token_ids` to logits."""
    token_embedding = layers["token_embedding"]
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    X = _positions.add_positions(
        token_embedding(token_ids), layers["positions"], layers["embedding_dropout"]
    )  # (B, T, D), masked at pad_id
    for block in layers["blocks"]:
        X = block(X)  # (B, T, D)
    X = layers["final_norm"](X)
    lm_head = layers["lm_head"]
    logits = token_embedding(X, reverse=True) if lm_head is None else lm_head(X)  # (B, T, V)
    return keras.Model(token_ids, logits, name=name)


def bert(
    vocab_size,
    num_hiddens,
    ffn_num_hiddens,
    num_heads,
    num_blks,
    dropout,
    max_len,
    pad_id=0,
    num_segments=2,
    name="bert",
):
    """Builds D2L's BERT encoder.

    `X = E_token[ids] + E_segment[segments] + E_position[0 .. T-1]`, then
    `num_blks` post-norm `TransformerEncoderBlock`s (D2L's `BERTEncoder`).
    Padding (`pad_id`) is masked inside the graph.

    Args:
        vocab_size: int. Vocabulary size `V`.
        num_hiddens: int. Model width `D`.
        ffn_num_hiddens: int. Hidden width of each FFN.
        num_heads: int. Attention heads per block.
        num_blks: int. Number of encoder blocks.
        dropout: float. Dropout rate in the blocks.
        max_len: int. Longest sequence the learned positions cover.
        pad_id: int or None. Padding id: padded positions are never
            attended to. `None`: no padding mask. Defaults to `0`.
        num_segments: int. Number of segment ids. Defaults to `2`.
        name: str. Model name.

    Returns:
        A `keras.Model` with inputs `token_ids` and `segment_ids` `(B, T)`
        (int32, a dict) and output `encoded` `(B, T, D)`. Layers:
        `token_embedding`, `segment_embedding`, `positions`,
        `encoder_block_{i}`, `encoded`.

    Example:
    >>> model = bert(100, 32, 64, 4, 2, 0.1, max_len=64)
    >>> model.output.shape
    (None, None, 32)
    """
    vocab_size = _checks.check_positive_int("vocab_size", vocab_size)
    num_hiddens, ffn_num_hiddens, num_heads, num_blks, dropout = _checks.check_blocks(
        num_hiddens, ffn_num_hiddens, num_heads, num_blks, dropout
    )
    max_len = _checks.check_positive_int("max_len", max_len)
    pad_id = _checks.check_pad_id(pad_id, {"vocab_size": vocab_size}, allow_none=True)
    num_segments = _checks.check_positive_int("num_segments", num_segments)
    name = _checks.check_string("name", name)

    # Layers.
    token_embedding = TokenEmbedding(vocab_size, num_hiddens, pad_id=pad_id, name="token_embedding")
    segment_embedding = SegmentEmbedding(num_segments, num_hiddens, name="segment_embedding")
    positions = LearnedPositionalEmbedding(max_len, num_hiddens, name="positions")
    blocks = [
        TransformerEncoderBlock(
            num_hiddens, ffn_num_hiddens, num_heads, dropout, name=f"encoder_block_{i}"
        )
        for i in range(num_blks)
    ]
    encoded = keras.layers.Identity(name="encoded")

    # Functional graph.
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    segment_ids = keras.Input(shape=(None,), dtype="int32", name="segment_ids")
    X = segment_embedding(token_embedding(token_ids), segment_ids)  # (B, T, D), masked at pad_id
    X = positions(X)
    for block in blocks:
        X = block(X)  # (B, T, D)
    X = encoded(X)

    # Config.
    return keras.Model({"token_ids": token_ids, "segment_ids": segment_ids}, X, name=name)


def _check_bert_encoder(encoder_model):
    names = {layer.name for layer in getattr(encoder_model, "layers", [])}
    if not {"token_embedding", "segment_embedding", "encoder_block_0", "encoded"} <= names:
        raise ValueError(
            "`encoder_model` must be built by `keras_attention.models.bert`; got "
            f"{getattr(encoder_model, 'name', encoder_model)!r} without its layers."
        )
    return encoder_model.get_layer("token_embedding")


def _bert_inputs():
    return {
        "token_ids": keras.Input(shape=(None,), dtype="int32", name="token_ids"),
        "segment_ids": keras.Input(shape=(None,), dtype="int32", name="segment_ids"),
    }


def bert_mlm(encoder_model, vocab_size=None, name="bert_mlm"):
    """Puts D2L's masked-language-model head on a BERT encoder.

    `Dense(D, relu) -> LayerNorm -> Dense(V)` at every position (D2L's
    `MaskLM` gathers the masked positions first; here the loss picks them:
    give label `0` (`pad_id`) to every unmasked position and train with
    `SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)`).
    The encoder model is called as a layer, so its weights are shared
    with every other model built on it.

    Args:
        encoder_model: a `keras.Model` built by `bert`.
        vocab_size: int. Vocabulary size `V` of the logits; must equal the
            encoder's. Defaults to the encoder's.
        name: str. Model name.

    Returns:
        A `keras.Model` with inputs `token_ids` and `segment_ids` `(B, T)`
        and output float32 logits `(B, T, V)`. Layers: the encoder model,
        `mlm_dense`, `mlm_norm`, `mlm_logits`.

    Example:
    >>> encoder = bert(100, 32, 64, 4, 2, 0.1, max_len=64)
    >>> bert_mlm(encoder).output.shape
    (None, None, 100)
    """
    token_embedding = _check_bert_encoder(encoder_model)
    if vocab_size is None:
        vocab_size = token_embedding.vocab_size
    vocab_size = _checks.check_positive_int("vocab_size", vocab_size)
    name = _checks.check_string("name", name)
    if vocab_size != token_embedding.vocab_size:
        raise ValueError(
            "`vocab_size` must equal the encoder's vocabulary size "
            f"{token_embedding.vocab_size}; got vocab_size={vocab_size!r}."
        )
    num_hiddens = token_embedding.num_hiddens

    # Layers.
    mlm_dense = keras.layers.Dense(num_hiddens, activation="relu", name="mlm_dense")
    mlm_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="mlm_norm")
    mlm_logits = keras.layers.Dense(vocab_size, dtype="float32", name="mlm_logits")

    # Functional graph.
    inputs = _bert_inputs()
    X = encoder_model(inputs)  # (B, T, D)
    logits = mlm_logits(mlm_norm(mlm_dense(X)))  # (B, T, V)

    # Config.
    return keras.Model(inputs, logits, name=name)


def bert_classifier(encoder_model, num_classes, dropout=0.1, name="bert_classifier"):
    """Puts D2L's fine-tuning head on a BERT encoder: pooler and classifier.

    `Dense(D, tanh)` (the "pooler") on the encoding of the `<cls>` token
    at position 0, dropout, then `Dense(C)` logits (D2L's `BERTClassifier`).
    The encoder model is called as a layer, so its weights are shared.

    Args:
        encoder_model: a `keras.Model` built by `bert`.
        num_classes: int. Number of classes `C`.
        dropout: float. Dropout before the last layer. Defaults to `0.1`.
        name: str. Model name.

    Returns:
        A `keras.Model` with inputs `token_ids` and `segment_ids` `(B, T)`
        and output float32 logits `(B, C)`. Layers: the encoder model,
        `take_cls`, `pooler`, `classifier_dropout`, `classifier`.

    Example:
    >>> encoder = bert(100, 32, 64, 4, 2, 0.1, max_len=64)
    >>> bert_classifier(encoder, 3).output.shape
    (None, 3)
    """
    token_embedding = _check_bert_encoder(encoder_model)
    num_classes = _checks.check_positive_int("num_classes", num_classes)
    dropout = _checks.check_dropout(dropout)
    name = _checks.check_string("name", name)
    num_hiddens = token_embedding.num_hiddens

    # Layers.
    take_cls = TakeClassToken(name="take_cls")
    pooler = keras.layers.Dense(num_hiddens, activation="tanh", name="pooler")
    classifier_dropout = keras.layers.Dropout(dropout, name="classifier_dropout")
    classifier = keras.layers.Dense(num_classes, dtype="float32", name="classifier")

    # Functional graph.
    inputs = _bert_inputs()
    X = encoder_model(inputs)  # (B, T, D)
    logits = classifier(classifier_dropout(pooler(take_cls(X))))  # (B, C)

    # Config.
    return keras.Model(inputs, logits, name=name)


def t5(
    vocab_size,
    num_hiddens,
    ffn_num_hiddens,
    num_heads,
    num_blks,
    dropout,
    max_len,
    pad_id=0,
    position_bias=None,
    name="t5",
):
    """Builds a T5-style encoder-decoder.

    As in T5 (Raffel et al., 2020; D2L "Large-Scale Pretraining with
    Transformers"): one token embedding `shared_embedding` (not scaled)
    read by both the encoder and the decoder, pre-norm blocks
    (`norm_first=True`), dropout on the embeddings, and a final layer norm
    after each stack. Positions: learned absolute embeddings
    (`src_positions`, `tgt_positions`) by default; with
    `position_bias="t5"`, T5's own bucketed relative position bias
    (`layers.RelativePositionBias`) added to the scores of every
    self-attention (bidirectional in the encoder, causal in the decoder; one
    bias per block, where T5 shares the first block's), and no absolute
    positions. The layer norms are
    `LayerNormalization` (T5 uses RMS norm without bias). The logits come
    from a separate `lm_head` Dense layer, untied from the embedding (as in
    T5.1.1).

    Args:
        vocab_size: int. Vocabulary size `V`, shared by source and target.
        num_hiddens: int. Model width `D`.
        ffn_num_hiddens: int. Hidden width of each FFN.
        num_heads: int. Attention heads per block.
        num_blks: int. Encoder blocks, and decoder blocks.
        dropout: float. Dropout rate everywhere.
        max_len: int. Longest source or target sequence the learned
            positions cover.
        pad_id: int. Padding id. Defaults to `0`.
        position_bias: None or `"t5"`. T5's relative position bias instead
            of the learned positions (`max_len` then only bounds nothing:
            relative buckets cover any length). Defaults to `None`.
        name: str. Model name.

    Returns:
        A `keras.Model` with inputs `src_ids` `(B, S)` and `tgt_in_ids`
        `(B, T)` (int32, a dict, as `models.transformer`) and output float32
        logits `(B, T, V)`. Layers: `shared_embedding`, `src_positions`,
        `encoder_dropout`, `encoder_block_{i}`, `encoder_final_norm`,
        `tgt_positions`, `decoder_dropout`, `decoder_block_{i}`,
        `decoder_final_norm`, `lm_head`.

    Example:
    >>> model = t5(100, 32, 64, 4, 2, 0.1, max_len=64)
    >>> model.output.shape
    (None, None, 100)
    """
    vocab_size = _checks.check_positive_int("vocab_size", vocab_size)
    num_hiddens, ffn_num_hiddens, num_heads, num_blks, dropout = _checks.check_blocks(
        num_hiddens, ffn_num_hiddens, num_heads, num_blks, dropout
    )
    max_len = _checks.check_positive_int("max_len", max_len)
    pad_id = _checks.check_pad_id(pad_id, {"vocab_size": vocab_size})
    position_bias = _checks.check_choice("position_bias", position_bias, ("t5",), allow_none=True)
    name = _checks.check_string("name", name)
    block_args = (num_hiddens, ffn_num_hiddens, num_heads, dropout)
    block_options = {
        "norm_first": True,
        **({"position_bias": position_bias} if position_bias else {}),
    }

    # Layers.
    shared_embedding = TokenEmbedding(
        vocab_size, num_hiddens, pad_id=pad_id, name="shared_embedding"
    )
    encoder = _t5_stack(
        "src", "encoder", TransformerEncoderBlock, num_blks, block_args, block_options, max_len
    )
    decoder = _t5_stack(
        "tgt", "decoder", TransformerDecoderBlock, num_blks, block_args, block_options, max_len
    )
    lm_head = keras.layers.Dense(vocab_size, dtype="float32", name="lm_head")

    # Functional graph.
    src_ids = keras.Input(shape=(None,), dtype="int32", name="src_ids")
    tgt_in_ids = keras.Input(shape=(None,), dtype="int32", name="tgt_in_ids")
    X = _run_t5_stack(encoder, shared_embedding(src_ids))  # (B, S, D), masked at pad_id
    Y = _run_t5_stack(decoder, shared_embedding(tgt_in_ids), X)  # (B, T, D)
    logits = lm_head(Y)  # (B, T, V)
    return keras.Model({"src_ids": src_ids, "tgt_in_ids": tgt_in_ids}, logits, name=name)


def _t5_stack(side, stack, block_class, num_blks, block_args, block_options, max_len):
    """One side's layers: learned positions (None with a position bias), dropout, blocks, final norm."""
    num_hiddens, dropout = block_args[0], block_args[3]
    positions = (
        None
        if "position_bias" in block_options
        else LearnedPositionalEmbedding(max_len, num_hiddens, name=f"{side}_positions")
    )
    return (
        positions,
        keras.layers.Dropout(dropout, name=f"{stack}_dropout"),
        _positions.blocks(block_class, f"{stack}_block", num_blks, block_args, block_options),
        keras.layers.LayerNormalization(epsilon=1e-5, name=f"{stack}_final_norm"),
    )


def _run_t5_stack(layers, X, *enc_outputs):
    """`X` `(B, T, D)` through one side's `_t5_stack` (the decoder also reads `enc_outputs`)."""
    positions, dropout, blocks, final_norm = layers
    X = dropout(X if positions is None else positions(X))
    for block in blocks:
        X = block(X, *enc_outputs)
    return final_norm(X)
