"""Decoder-only language models (GPT) as functional Keras models.

D2L section "Large-Scale Pretraining with Transformers": a GPT is a stack
of Transformer decoder blocks without cross-attention, trained to predict
each next token. Token embeddings (not scaled) plus learned positions,
`num_blks` pre-norm `GPTBlock`s, a final layer normalization and a linear
map to vocabulary logits, optionally tied to the token embeddings (GPT-2).

`GPTInference` runs the same layers for generation: the prompt in one
chunk that fills every block's key/value cache, then one token per step
(see `keras_attention.generate.sample`).

Letters used in shape comments: B batch, T sequence length, P prompt
length, D num_hiddens, V vocabulary, N num_blks, L cache length.
"""

import keras
from keras import ops

from keras_attention.layers import GPTBlock, LearnedPositionalEmbedding, TokenEmbedding
from keras_attention.layers.checks import check_bool as _check_bool
from keras_attention.layers.checks import check_positive_int as _check_positive_int

__all__ = ["gpt", "GPTInference", "TiedTokenEmbedding"]


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
        if not reverse:
            return super().call(inputs)
        E = ops.cast(self.embeddings, "float32")  # (V, D)
        X = ops.cast(inputs, "float32")
        return ops.matmul(X, ops.transpose(E))  # (B, T, V)

    def compute_mask(self, inputs, previous_mask=None):
        # Hidden states (reverse call) are 3-D; ids are 2-D.
        if len(inputs.shape) == 3:
            return previous_mask
        return super().compute_mask(inputs, previous_mask)

    def compute_output_spec(self, inputs, reverse=False):
        if not reverse:
            return keras.KerasTensor(tuple(inputs.shape) + (self.num_hiddens,), self.compute_dtype)
        return keras.KerasTensor(tuple(inputs.shape[:-1]) + (self.vocab_size,), "float32")


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
        pad_id: int. Padding id: padded positions are never attended to.
            Defaults to `0`.
        tie_embeddings: bool. Compute the logits with the transposed token
            embedding matrix instead of a separate `lm_head` Dense layer.
            Defaults to `False`.
        name: str. Model name.

    Returns:
        A `keras.Model` with input `token_ids` `(B, T)` (int32) and output
        logits `(B, T, V)` (float32): position `t` scores the token at
        `t + 1`. Layers: `token_embedding`, `positions`, `gpt_block_{i}`,
        `final_norm`, and `lm_head` unless `tie_embeddings`.

    Example:
    >>> model = gpt(100, 32, 128, 4, 2, 0.1, max_len=64)
    >>> model.output.shape
    (None, None, 100)
    """
    num_blks = _check_positive_int("num_blks", num_blks)
    tie_embeddings = _check_bool("tie_embeddings", tie_embeddings)

    # Layers.
    embedding_cls = TiedTokenEmbedding if tie_embeddings else TokenEmbedding
    token_embedding = embedding_cls(vocab_size, num_hiddens, pad_id=pad_id, name="token_embedding")
    positions = LearnedPositionalEmbedding(max_len, num_hiddens, name="positions")
    embedding_dropout = keras.layers.Dropout(dropout, name="embedding_dropout")
    blocks = [
        GPTBlock(num_hiddens, ffn_num_hiddens, num_heads, dropout, name=f"gpt_block_{i}")
        for i in range(num_blks)
    ]
    final_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="final_norm")
    lm_head = (
        None if tie_embeddings else keras.layers.Dense(vocab_size, dtype="float32", name="lm_head")
    )

    # Functional graph.
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    X = embedding_dropout(positions(token_embedding(token_ids)))  # (B, T, D), masked at pad_id
    for block in blocks:
        X = block(X)  # (B, T, D)
    X = final_norm(X)
    logits = token_embedding(X, reverse=True) if tie_embeddings else lm_head(X)  # (B, T, V)

    # Config.
    return keras.Model(token_ids, logits, name=name)


class GPTInference:
    """Prompt-then-step decoding with a model built by `gpt`.

    Holds the model's layers (found by name). `start` runs the prompt
    through every block in one chunk, filling each block's key/value cache
    at positions `0 .. P-1`; `step` then feeds one token at a time. The
    state is `{"cache": (N, B, 2, L, D)}`.

    Args:
        model: a `keras.Model` built by `gpt`.
        max_len: int. Cache length `L`: prompt plus generated tokens. At
            most the model's positional `max_len`.
    """

    def __init__(self, model, max_len):
        names = {layer.name for layer in model.layers}
        if "gpt_block_0" not in names or "token_embedding" not in names:
            raise ValueError(
                "`model` must be built by `keras_attention.models.gpt`; got a model "
                f"named {model.name!r} without its layers."
            )
        self.model = model
        self.max_len = _check_positive_int("max_len", max_len)
        self.num_blks = sum(n.startswith("gpt_block_") for n in names)
        self.token_embedding = model.get_layer("token_embedding")
        self.positions = model.get_layer("positions")
        self.blocks = [model.get_layer(f"gpt_block_{i}") for i in range(self.num_blks)]
        self.final_norm = model.get_layer("final_norm")
        self.lm_head = model.get_layer("lm_head") if "lm_head" in names else None
        self.pad_id = self.token_embedding.pad_id
        self.vocab_size = self.token_embedding.vocab_size
        self.num_hiddens = self.token_embedding.num_hiddens
        if self.max_len > self.positions.max_len:
            raise ValueError(
                f"`max_len` must be at most the model's positional max_len="
                f"{self.positions.max_len}; got max_len={max_len}."
            )

    def _run(self, token_ids, cache, index):
        """Runs `(B, T)` ids at positions `index ..` through the blocks with the cache."""
        X = self.token_embedding(token_ids)  # (B, T, D)
        X = self.positions(X, start_index=index)
        caches = []
        for i, block in enumerate(self.blocks):
            X, block_cache = block(
                X, training=False, cache=cache[i], cache_update_index=index
            )
            caches.append(block_cache)
        X = self.final_norm(X)
        if self.lm_head is None:
            logits = self.token_embedding(X, reverse=True)  # (B, T, V)
        else:
            logits = self.lm_head(X)  # (B, T, V)
        return ops.cast(logits, "float32"), ops.stack(caches, axis=0)

    def start(self, token_ids):
        """Runs the prompt `(B, P)` (no padding) in one chunk.

        Returns:
            `(logits (B, V), state)`: the logits at the last prompt position
            (scoring the token at position `P`) and the filled cache.
        """
        token_ids = ops.convert_to_tensor(token_ids, "int32")
        batch = ops.shape(token_ids)[0]
        compute_dtype = self.blocks[0].compute_dtype
        cache = ops.zeros(
            (self.num_blks, batch, 2, self.max_len, self.num_hiddens), dtype=compute_dtype
        )  # (N, B, 2, L, D)
        logits, cache = self._run(token_ids, cache, 0)
        return logits[:, -1], {"cache": cache}

    def step(self, tokens, state, index):
        """Feeds one token per row.

        Args:
            tokens: `(B,)` int. The tokens at position `index`.
            state: dict from `start` (or a previous `step`).
            index: scalar int. Position of `tokens`.

        Returns:
            `(logits (B, V), new_state)`: the logits scoring position `index + 1`.
        """
        tokens = ops.expand_dims(ops.convert_to_tensor(tokens, "int32"), 1)  # (B, 1)
        logits, cache = self._run(tokens, state["cache"], index)
        return logits[:, 0], {**state, "cache": cache}

    @staticmethod
    def batch_axes():
        """The batch axis of each state entry, for reordering beams."""
        return {"cache": 1}
