"""The RNN encoder-decoder with Bahdanau attention.

D2L section "The Bahdanau Attention Mechanism": a GRU encoder reads the
source; at every decoding step the decoder's top hidden state queries the
encoder outputs with additive attention, and the context vector is fed to
the decoder GRU together with the embedded target token.

The decoder (`keras_attention.layers.BahdanauDecoder`) steps through time
in the graph, never with a Python loop over time.

Letters used in shape comments: B batch, S source length, T target length,
E embed_size, H num_hiddens, N num_layers, V target vocabulary.
"""

import keras

from keras_attention import _checks
from keras_attention.layers import BahdanauDecoder, TokenEmbedding

__all__ = ["bahdanau_seq2seq"]


def bahdanau_seq2seq(
    src_vocab_size,
    tgt_vocab_size,
    embed_size,
    num_hiddens,
    num_layers,
    dropout,
    pad_id=0,
    return_attention_scores=False,
    name="bahdanau_seq2seq",
):
    """Builds D2L's GRU encoder-decoder with Bahdanau (additive) attention.

    Args:
        src_vocab_size: int. Source vocabulary size.
        tgt_vocab_size: int. Target vocabulary size.
        embed_size: int. Embedding size `E`.
        num_hiddens: int. GRU width `H`.
        num_layers: int. GRU layers in the encoder and in the decoder.
        dropout: float. Dropout inside the encoder GRUs, on the decoder's
            embedded inputs and outputs, and on the attention weights.
        pad_id: int. Padding id of both vocabularies. Defaults to `0`.
        return_attention_scores: bool. Also output the attention weights.
        name: str. Model name.

    Returns:
        A `keras.Model` with inputs `src_ids` `(B, S)` and `tgt_in_ids`
        `(B, T)` and output `logits` `(B, T, V)`; with
        `return_attention_scores=True` a dict with `logits` and
        `attention` `(B, T, S)`.
    """
    src_vocab_size = _checks.check_positive_int("src_vocab_size", src_vocab_size)
    tgt_vocab_size = _checks.check_positive_int("tgt_vocab_size", tgt_vocab_size)
    embed_size = _checks.check_positive_int("embed_size", embed_size)
    num_hiddens = _checks.check_positive_int("num_hiddens", num_hiddens)
    num_layers = _checks.check_positive_int("num_layers", num_layers)
    dropout = _checks.check_dropout(dropout)
    pad_id = _checks.check_pad_id(
        pad_id, {"src_vocab_size": src_vocab_size, "tgt_vocab_size": tgt_vocab_size}
    )
    return_attention_scores = _checks.check_bool("return_attention_scores", return_attention_scores)
    name = _checks.check_string("name", name)
    # Layers.
    src_embedding = TokenEmbedding(src_vocab_size, embed_size, pad_id=pad_id, name="src_embedding")
    encoder_grus = [
        keras.layers.GRU(
            num_hiddens,
            return_sequences=True,
            return_state=True,
            dropout=dropout,
            name=f"encoder_gru_{i}",
        )
        for i in range(num_layers)
    ]
    tgt_embedding = TokenEmbedding(tgt_vocab_size, embed_size, pad_id=pad_id, name="tgt_embedding")
    input_dropout = keras.layers.Dropout(dropout, name="decoder_input_dropout")
    decoder = BahdanauDecoder(num_hiddens, num_layers, dropout, name="decoder")
    output_dropout = keras.layers.Dropout(dropout, name="decoder_output_dropout")
    output_dense = keras.layers.Dense(tgt_vocab_size, dtype="float32", name="output_dense")

    # Functional graph.
    src_ids = keras.Input(shape=(None,), dtype="int32", name="src_ids")
    tgt_in_ids = keras.Input(shape=(None,), dtype="int32", name="tgt_in_ids")
    X = src_embedding(src_ids)  # (B, S, E), masked where src == pad
    enc_states = []
    for gru in encoder_grus:
        X, state = gru(X)  # (B, S, H), (B, H) at the last valid position
        enc_states.append(state)
    Y = input_dropout(tgt_embedding(tgt_in_ids))  # (B, T, E)
    Y, attention = decoder(Y, X, enc_states, return_attention_scores=True)
    logits = output_dense(output_dropout(Y))  # (B, T, V)
    outputs = {"logits": logits, "attention": attention} if return_attention_scores else logits

    # Config.
    return keras.Model({"src_ids": src_ids, "tgt_in_ids": tgt_in_ids}, outputs, name=name)
