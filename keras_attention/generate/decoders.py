"""Step decoders: a trained model run one token at a time, for search and sampling.

D2L sections "Sequence-to-Sequence Learning" (prediction, one token at a
time) and "Large-Scale Pretraining with Transformers" (GPT generates
autoregressively). The searches (`search.py`) and the sampler
(`sampling.py`) never look inside a model: they drive a *step decoder*,
an object that holds the model's layers (found by the names its builder
gives them) and keeps the decoding state between steps.

The protocol (`StepDecoder`), written once:

- `pad_id`: the model's padding id, which only decides what its attention
  masks (`None` for a GPT built with `pad_id=None`). The ids a search
  writes and stops on (`bos_id`, `eos_id`, the filler after `<eos>`) are
  the caller's, from the tokenizer or explicit arguments.
- Encoder-decoders: `encode(src_ids)` runs the encoder once and returns
  the state; decoder-only models: `start(prompt_ids, max_len)` runs the
  prompt in one chunk and returns `(logits, state)`.
- `step(tokens, state, index)`: feeds the `(B,)` tokens at position
  `index`, returns `(logits (B, V), new_state, attention)`, with
  `attention` the last block's cross-attention `(B, S)` averaged over
  heads, or `None` where there is none (GPT) or it was not asked for.
- `batch_axes()`: the batch axis of each state entry, so that beam search
  can reorder hypotheses.

Which decoder steps which model goes through one table, `decoder_for`,
keyed by the builders' layer names (their naming contract, documented in
each builder's docstring): `transformer` and `t5` share
`TransformerStepDecoder` (they differ only by layer names),
`bahdanau_seq2seq` has `BahdanauStepDecoder`, `gpt` has `GPTStepDecoder`.
Beside each cached decoder sits its uncached reference (`Uncached*`): the
whole model on the whole prefix at every step (quadratic work), for tests
and `benchmarks/decoding.py`.

Letters used in shape comments: B batch, S source length, L cache length
(longest output), D num_hiddens, V vocabulary, N blocks, P prompt length.
"""

import collections

from keras import ops

from keras_attention import _checks

__all__ = [
    "StepDecoder",
    "TransformerStepDecoder",
    "BahdanauStepDecoder",
    "GPTStepDecoder",
    "UncachedSeq2SeqDecoder",
    "UncachedGPTDecoder",
    "decoder_for",
]


class StepDecoder:
    """The step-decoder protocol; see the module docstring.

    Subclasses set `model`, `max_len` and `pad_id` and implement `step`,
    `batch_axes` and either `encode` (encoder-decoders) or `start`
    (decoder-only models).
    """

    is_encoder_decoder = True

    def encode(self, src_ids):
        """Runs the encoder on `(B, S)` source ids; returns the decoding state."""
        raise NotImplementedError

    def start(self, prompt_ids, max_len=None):
        """Runs a `(B, P)` prompt; returns `(logits (B, V), state)`."""
        raise NotImplementedError

    def step(self, tokens, state, index):
        """Feeds `(B,)` tokens at `index`; returns `(logits (B, V), state, attention)`."""
        raise NotImplementedError

    def batch_axes(self):
        """`{state entry: batch axis}`."""
        raise NotImplementedError

    @property
    def positional_limit(self):
        """The longest output the model's positions cover, or None."""
        return None


# The layer names of `transformer` and of `t5` (None: the builder has no such layer).
_Layout = collections.namedtuple(
    "_Layout",
    "src_embedding tgt_embedding src_positions tgt_positions encoder_norm decoder_norm output",
)
TRANSFORMER_LAYOUT = _Layout(
    "src_embedding",
    "tgt_embedding",
    "src_positions",
    "tgt_positions",
    None,
    "final_norm",
    "output_dense",
)
T5_LAYOUT = _Layout(
    "shared_embedding",
    "shared_embedding",
    "src_positions",
    "tgt_positions",
    "encoder_final_norm",
    "decoder_final_norm",
    "lm_head",
)


def _layer_names(model):
    return {layer.name for layer in model.layers} if hasattr(model, "layers") else set()


def _check_built_by(model, builders):
    """Raises unless `model` has the layers one of `builders` names (the naming contract)."""
    names = _layer_names(model)
    if any(required <= names for builder, required, _ in _DECODERS if builder in builders):
        return
    expected = " or ".join(f"`keras_attention.models.{b}`" for b in builders)
    raise ValueError(
        f"`model` must be built by {expected}; got {type(model).__name__} "
        f"{getattr(model, 'name', '')!r} without its layers."
    )


def _optional_layer(model, name, names):
    return model.get_layer(name) if name is not None and name in names else None


def _kv_width(attention, num_hiddens):
    """The width `D_kv` of an attention layer's key/value cache (`D` without kv heads)."""
    return getattr(attention, "kv_hiddens", num_hiddens)


def _add_positions(layer, X, index):
    """`X` `(B, T, D)` plus the positions from `index` on, if the model has a position layer."""
    return X if layer is None else layer(X, start_index=index, training=False)


class TransformerStepDecoder(StepDecoder):
    """Steps a model built by `models.transformer` or `models.t5`.

    `encode` runs the embedding, the positions and every encoder block once
    (and the encoder's final norm, T5), and projects the encoder outputs
    into each decoder block's cross-attention keys and values once
    (`(N, 2, B, S, D)`); `step` runs the decoder blocks on one token per row
    with each block's self-attention key/value cache `(N, B, 2, L, D_kv)`
    (`D_kv = D` unless the blocks use grouped-query heads).

    Args:
        model: a `keras.Model` built by `transformer` or `t5`.
        max_len: int. Longest output the cache holds, `L`.
        layout: `TRANSFORMER_LAYOUT` or `T5_LAYOUT`: the builder's layer names.
        return_attention: bool. Ask the last block for its cross-attention
            weights (the `attention` of `step`); without them the blocks run
            their fast attention path. Defaults to `True`.
    """

    def __init__(self, model, max_len, layout=TRANSFORMER_LAYOUT, return_attention=True):
        _check_built_by(model, ("t5",) if layout == T5_LAYOUT else ("transformer",))
        names = _layer_names(model)
        self.model = model
        self.max_len = _checks.check_positive_int("max_len", max_len)
        self.return_attention = _checks.check_bool("return_attention", return_attention)
        self.num_blks = sum(n.startswith("decoder_block_") for n in names)
        self.src_embedding = model.get_layer(layout.src_embedding)
        self.tgt_embedding = model.get_layer(layout.tgt_embedding)
        # None where the positions live in the attention (rotary, ALiBi).
        self.src_positions = _optional_layer(model, layout.src_positions, names)
        self.tgt_positions = _optional_layer(model, layout.tgt_positions, names)
        self.encoder_blocks = [model.get_layer(f"encoder_block_{i}") for i in range(self.num_blks)]
        self.decoder_blocks = [model.get_layer(f"decoder_block_{i}") for i in range(self.num_blks)]
        self.encoder_norm = _optional_layer(model, layout.encoder_norm, names)
        self.decoder_norm = _optional_layer(model, layout.decoder_norm, names)
        self.output_layer = model.get_layer(layout.output)
        self.pad_id = self.src_embedding.pad_id
        self.num_hiddens = self.tgt_embedding.num_hiddens
        # D_kv: the self-attention's key/value width (smaller with grouped-query heads).
        self.cache_width = _kv_width(self.decoder_blocks[0].attention1, self.num_hiddens)
        limit = self.positional_limit
        if limit is not None and self.max_len > limit:
            raise ValueError(
                f"`max_len` must be at most the model's positional max_len={limit}; got "
                f"max_len={self.max_len} (decoder positions 0..{limit - 1} exist). Decode "
                "fewer tokens or build the model with a larger `max_len`."
            )

    @property
    def positional_limit(self):
        return getattr(self.tgt_positions, "max_len", None)

    def encode(self, src_ids):
        """The state: encoder outputs `(B, S, D)`, source mask `(B, S)`, an empty cache."""
        src_ids = ops.convert_to_tensor(src_ids, "int32")
        src_mask = ops.not_equal(src_ids, self.pad_id)  # (B, S)
        X = _add_positions(self.src_positions, self.src_embedding(src_ids), 0)  # (B, S, D)
        for block in self.encoder_blocks:
            X = block(X, training=False, X_mask=src_mask)
        if self.encoder_norm is not None:
            X = self.encoder_norm(X)
        cache = ops.zeros(
            (self.num_blks, ops.shape(src_ids)[0], 2, self.max_len, self.cache_width), X.dtype
        )  # (N, B, 2, L, D_kv)
        # Each block's cross-attention keys and values, projected once.
        cross_cache = ops.stack([block.project_encoder(X) for block in self.decoder_blocks])
        return {"enc_outputs": X, "src_mask": src_mask, "cache": cache, "cross_cache": cross_cache}

    def step(self, tokens, state, index):
        tokens = ops.convert_to_tensor(tokens, "int32")
        Y = self.tgt_embedding(ops.expand_dims(tokens, 1))  # (B, 1, D)
        Y = _add_positions(self.tgt_positions, Y, index)
        caches, cross_weights = [], None
        for i, block in enumerate(self.decoder_blocks):
            want_weights = self.return_attention and i == self.num_blks - 1
            outputs = block(
                Y,
                state["enc_outputs"],
                training=False,
                return_attention_scores=want_weights,
                cache=state["cache"][i],
                cache_update_index=index,
                cross_cache=state["cross_cache"][i],
                enc_outputs_mask=state["src_mask"],
            )
            if want_weights:
                Y, _, cross_weights, cache = outputs  # cross: (B, H, 1, S)
            else:
                Y, cache = outputs
            caches.append(cache)
        if self.decoder_norm is not None:
            Y = self.decoder_norm(Y)
        logits = ops.cast(self.output_layer(Y)[:, 0], "float32")  # (B, V)
        attention = None if cross_weights is None else ops.mean(cross_weights[:, :, 0], axis=1)
        return logits, {**state, "cache": ops.stack(caches, axis=0)}, attention  # attention (B, S)

    def batch_axes(self):
        return {"enc_outputs": 0, "src_mask": 0, "cache": 1, "cross_cache": 2}


class BahdanauStepDecoder(StepDecoder):
    """Steps a model built by `models.bahdanau_seq2seq`: GRU encoder once, then one
    `BahdanauDecoder.step` per token with the GRU hidden states `(N, B, H)`.

    Args:
        model: a `keras.Model` built by `bahdanau_seq2seq`.
        max_len: int. Longest output (the state does not depend on it).
        return_attention: bool. Kept for the protocol: the additive
            attention's weights cost nothing extra, so they are always returned.
    """

    def __init__(self, model, max_len, return_attention=True):
        _check_built_by(model, ("bahdanau_seq2seq",))
        self.model = model
        self.max_len = _checks.check_positive_int("max_len", max_len)
        self.return_attention = _checks.check_bool("return_attention", return_attention)
        self.src_embedding = model.get_layer("src_embedding")
        self.decoder = model.get_layer("decoder")
        self.encoder_grus = [
            model.get_layer(f"encoder_gru_{i}") for i in range(self.decoder.num_layers)
        ]
        self.tgt_embedding = model.get_layer("tgt_embedding")
        self.output_dense = model.get_layer("output_dense")
        self.pad_id = self.src_embedding.pad_id

    def encode(self, src_ids):
        """The state: encoder outputs, source mask, hidden states `(N, B, H)`."""
        src_ids = ops.convert_to_tensor(src_ids, "int32")
        src_mask = ops.not_equal(src_ids, self.pad_id)
        X = self.src_embedding(src_ids)
        states = []
        for gru in self.encoder_grus:
            X, state = gru(X, mask=src_mask, training=False)
            states.append(state)
        return {"enc_outputs": X, "src_mask": src_mask, "hidden": ops.stack(states, axis=0)}

    def step(self, tokens, state, index):
        x = self.tgt_embedding(ops.convert_to_tensor(tokens, "int32"))  # (B, E)
        hidden = [state["hidden"][i] for i in range(self.decoder.num_layers)]
        output, hidden, attention = self.decoder.step(
            x, hidden, state["enc_outputs"], state["src_mask"], training=False
        )
        logits = ops.cast(self.output_dense(output), "float32")  # (B, V)
        return logits, {**state, "hidden": ops.stack(hidden, axis=0)}, attention

    def batch_axes(self):
        return {"enc_outputs": 0, "src_mask": 0, "hidden": 1}


class GPTStepDecoder(StepDecoder):
    """Steps a model built by `models.gpt`: the prompt in one chunk, then one token
    per step, with each block's key/value cache `(N, B, 2, L, D_kv)`
    (`D_kv = num_kv_heads * D / H`, `D` without grouped-query heads).

    Args:
        model: a `keras.Model` built by `gpt`.
        max_len: int. Cache length `L`: prompt plus generated tokens, at most
            the model's positional `max_len`.
    """

    is_encoder_decoder = False

    def __init__(self, model, max_len):
        _check_built_by(model, ("gpt",))
        names = _layer_names(model)
        self.model = model
        self.max_len = _checks.check_positive_int("max_len", max_len)
        self.num_blks = sum(n.startswith("gpt_block_") for n in names)
        self.token_embedding = model.get_layer("token_embedding")
        self.positions = _optional_layer(model, "positions", names)  # None: rotary, ALiBi
        self.blocks = [model.get_layer(f"gpt_block_{i}") for i in range(self.num_blks)]
        self.final_norm = model.get_layer("final_norm")
        self.lm_head = model.get_layer("lm_head") if "lm_head" in names else None
        self.pad_id = self.token_embedding.pad_id
        self.vocab_size = self.token_embedding.vocab_size
        self.num_hiddens = self.token_embedding.num_hiddens
        self.cache_width = _kv_width(self.blocks[0].attention, self.num_hiddens)  # D_kv
        if self.positional_limit is not None and self.max_len > self.positional_limit:
            raise ValueError(
                f"`max_len` must be at most the model's positional max_len="
                f"{self.positional_limit}; got max_len={max_len}."
            )

    @property
    def positional_limit(self):
        """The positional `max_len`, or None (rotary, ALiBi: no table, no limit)."""
        return None if self.positions is None else self.positions.max_len

    def _run(self, token_ids, cache, index):
        """`(B, T)` ids at positions `index ..` through the blocks, with the cache."""
        X = _add_positions(self.positions, self.token_embedding(token_ids), index)  # (B, T, D)
        caches = []
        for i, block in enumerate(self.blocks):
            X, block_cache = block(X, training=False, cache=cache[i], cache_update_index=index)
            caches.append(block_cache)
        X = self.final_norm(X)
        if self.lm_head is None:
            logits = self.token_embedding(X, reverse=True)  # (B, T, V)
        else:
            logits = self.lm_head(X)  # (B, T, V)
        return ops.cast(logits, "float32"), ops.stack(caches, axis=0)

    def start(self, prompt_ids, max_len=None):
        """Runs the `(B, P)` prompt (no padding) in one chunk.

        Args:
            prompt_ids: `(B, P)` int.
            max_len: int, scalar int tensor or None. Cache length for this
                call, `P <=` it `<= self.max_len` (a tensor when lengths are
                only known at run time, as in a SavedModel). Defaults to
                `None` (`self.max_len`).

        Returns:
            `(logits (B, V), state)`: the logits scoring position `P`, and
            the cache filled at positions `0 .. P-1`.
        """
        prompt_ids = ops.convert_to_tensor(prompt_ids, "int32")
        length = self.max_len if max_len is None else max_len
        cache = ops.zeros(
            (self.num_blks, ops.shape(prompt_ids)[0], 2, length, self.cache_width),
            dtype=self.blocks[0].compute_dtype,
        )  # (N, B, 2, L, D_kv)
        logits, cache = self._run(prompt_ids, cache, 0)
        return logits[:, -1], {"cache": cache}

    def step(self, tokens, state, index):
        tokens = ops.expand_dims(ops.convert_to_tensor(tokens, "int32"), 1)  # (B, 1)
        logits, cache = self._run(tokens, state["cache"], index)
        return logits[:, 0], {**state, "cache": cache}, None

    def batch_axes(self):
        return {"cache": 1}


class UncachedSeq2SeqDecoder(StepDecoder):
    """The reference for an encoder-decoder: the whole model on the whole prefix.

    The state is the source ids and the `(B, L)` decoder input buffer
    (`bos_id`, then the tokens so far); every step writes its tokens and runs
    the model on the buffer (quadratic work). Position `i` of the causal
    decoder sees positions `<= i` only, so its logits are those of the
    cached decoder. Attention comes from the model's outputs when it was
    built with `return_attention_scores=True` (the last decoder block's
    cross-attention averaged over heads, or Bahdanau's), zeros otherwise.

    Args:
        model: an encoder-decoder from `models`.
        max_len: int. `L`.
        bos_id: int. First decoder input.
        fill_id: int. What the buffer holds past the prefix (never read by
            a causal decoder).
    """

    def __init__(self, model, max_len, bos_id, fill_id):
        self.model = model
        self.max_len = _checks.check_positive_int("max_len", max_len)
        self.bos_id, self.fill_id = bos_id, fill_id
        self.pad_id = decoder_for(model, max_len).pad_id

    def encode(self, src_ids):
        src_ids = ops.convert_to_tensor(src_ids, "int32")
        positions = ops.arange(self.max_len, dtype="int32")[None, :]  # (1, L)
        first = ops.where(positions == 0, self.bos_id, self.fill_id)  # (1, L)
        prefix = first + ops.zeros((ops.shape(src_ids)[0], 1), "int32")  # (B, L)
        return {"src_ids": src_ids, "prefix": prefix}

    def step(self, tokens, state, index):
        src_ids = state["src_ids"]
        positions = ops.arange(self.max_len, dtype="int32")[None, :]  # (1, L)
        prefix = ops.where(positions == index, tokens[:, None], state["prefix"])  # (B, L)
        outputs = self.model({"src_ids": src_ids, "tgt_in_ids": prefix}, training=False)
        logits, attention = _logits_and_attention(outputs, src_ids, self.max_len)
        logits = ops.take(logits, index, axis=1)  # (B, V)
        attention = ops.take(attention, index, axis=1)  # (B, S)
        return logits, {"src_ids": src_ids, "prefix": prefix}, attention

    def batch_axes(self):
        return {"src_ids": 0, "prefix": 0}


class UncachedGPTDecoder(StepDecoder):
    """The reference for a GPT: the whole model on the `(B, L)` token buffer at every step.

    Args:
        model: a `keras.Model` built by `gpt`.
        fill_id: int. What the buffer holds past the tokens so far (never
            read by the causal model).
    """

    is_encoder_decoder = False

    def __init__(self, model, fill_id=0):
        self.model = model
        self.fill_id = fill_id
        self.pad_id = model.get_layer("token_embedding").pad_id

    def _logits(self, buffer, index):
        return ops.take(ops.cast(self.model(buffer, training=False), "float32"), index, axis=1)

    def start(self, prompt_ids, max_len=None):
        prompt_ids = ops.convert_to_tensor(prompt_ids, "int32")
        batch, prompt_len = ops.shape(prompt_ids)
        buffer = ops.concatenate(
            [prompt_ids, ops.full((batch, max_len - prompt_len), self.fill_id, "int32")], axis=1
        )  # (B, L)
        return self._logits(buffer, prompt_len - 1), {"tokens": buffer}

    def step(self, tokens, state, index):
        buffer = state["tokens"]
        positions = ops.arange(ops.shape(buffer)[1], dtype="int32")[None, :]  # (1, L)
        buffer = ops.where(positions == index, tokens[:, None], buffer)  # (B, L)
        return self._logits(buffer, index), {"tokens": buffer}, None

    def batch_axes(self):
        return {"tokens": 0}


def _logits_and_attention(outputs, src_ids, max_len):
    """A model's outputs as logits `(B, L, V)` and cross-attention `(B, L, S)`."""
    batch, num_keys = ops.shape(src_ids)[0], ops.shape(src_ids)[1]
    if not isinstance(outputs, dict):
        return outputs, ops.zeros((batch, max_len, num_keys), "float32")
    logits = outputs["logits"]
    if "attention" in outputs:  # bahdanau_seq2seq: (B, L, S)
        return logits, ops.cast(outputs["attention"], "float32")
    cross = sorted(
        (k for k in outputs if k.startswith("decoder_cross_attention_")),
        key=lambda k: int(k.rsplit("_", 1)[1]),
    )
    if not cross:
        return logits, ops.zeros((batch, max_len, num_keys), "float32")
    # transformer: the last block's (B, H, L, S), averaged over heads.
    return logits, ops.mean(ops.cast(outputs[cross[-1]], "float32"), axis=1)


# The builders' naming contract: layers that identify each builder's models,
# checked in order, and the decoder that steps them.
_DECODERS = (
    (
        "t5",
        {"shared_embedding", "decoder_block_0", "lm_head"},
        lambda m, n, a: TransformerStepDecoder(m, n, T5_LAYOUT, return_attention=a),
    ),
    (
        "transformer",
        {"src_embedding", "decoder_block_0", "output_dense"},
        lambda m, n, a: TransformerStepDecoder(m, n, TRANSFORMER_LAYOUT, return_attention=a),
    ),
    (
        "bahdanau_seq2seq",
        {"src_embedding", "decoder", "encoder_gru_0", "output_dense"},
        lambda m, n, a: BahdanauStepDecoder(m, n, return_attention=a),
    ),
    ("gpt", {"token_embedding", "gpt_block_0", "final_norm"}, lambda m, n, a: GPTStepDecoder(m, n)),
)


def builder_of(model):
    """The name of the `keras_attention.models` builder that made `model`, or None."""
    names = _layer_names(model)
    for builder, required, _ in _DECODERS:
        if required <= names:
            return builder
    return None


def decoder_for(model, max_len, return_attention=True, kinds=None):
    """The step decoder for `model`, chosen by its builder's layer names.

    Args:
        model: a `keras.Model` built by `models.transformer`, `t5`,
            `bahdanau_seq2seq` or `gpt`.
        max_len: int. Longest output (encoder-decoders) or cache length
            (GPT) the decoder must hold.
        return_attention: bool. Whether `step` computes the cross-attention
            it returns. Defaults to `True`.
        kinds: optional tuple of builder names the caller accepts (e.g.
            `("transformer", "t5", "bahdanau_seq2seq")` for translation).

    Returns:
        A `StepDecoder`.

    Raises:
        ValueError: the model was not built by one of those builders.
    """
    names = _layer_names(model)
    for builder, required, make in _DECODERS:
        if (kinds is None or builder in kinds) and required <= names:
            return make(model, max_len, return_attention)
    _check_built_by(model, kinds or tuple(b for b, _, _ in _DECODERS))
    raise ValueError(f"`model` {getattr(model, 'name', '')!r} has no step decoder.")
