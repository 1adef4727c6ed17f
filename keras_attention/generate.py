"""Decoding: greedy and beam search for the encoder-decoders, sampling for GPT.

`sample` (decoder-only models from `keras_attention.models.gpt`) draws with
temperature, top-k and top-p from a seed, the prompt run once through the
blocks and then one cached step per new token; see its docstring. Its loop
is `sample_loop`, which takes the options as tensors too (one trace for
every value): `keras_attention.export.LanguageModel` runs it in a SavedModel.

D2L sections "Sequence-to-Sequence Learning" (prediction, one token at a
time) and "Beam Search". Both searches run the decoder step by step through
the model's inference object (`keras_attention.models.inference_for`): the
encoder once, then one decoding step per output token, with the Transformer's
key/value cache or the GRU's hidden states carried between steps.

Everything here is written with `keras.ops`: the steps run inside
`keras.ops.while_loop` with loop-invariant shapes (preallocated
`(B, max_len)` buffers written with selects), so the searches work on any
backend, eagerly, and inside a TensorFlow `tf.function` (also with
`jit_compile=True`) or an exported SavedModel. Tokenization is the caller's
business; `decode_to_lists` turns the returned ids into Python lists.

Conventions shared by both searches:

- Output position `t` holds the token predicted after reading `<bos>` and
  output tokens `0 .. t-1`; `<bos>` itself is not returned.
- `pad_id` is never generated (its probability is set to zero), so a `pad_id`
  in the output always means "after `<eos>`". `<eos>` is kept in the output.
- A row (or beam) stops at its first `<eos>`; the loop stops as soon as
  every row has stopped, or after `max_len` tokens.

Letters used in shape comments: B batch, K beam size, S source length,
L max_len (output length), V target vocabulary.
"""

import numpy as np

from keras import ops

__all__ = ["greedy_search", "beam_search", "decode_to_lists"]


def greedy_search(model, src_ids, max_len, bos_id=1, eos_id=2, pad_id=0, use_cache=True):
    """Translates `src_ids` by taking the most probable token at every step.

    Args:
        model: a `keras.Model` built by `keras_attention.models.transformer`
            or `bahdanau_seq2seq` (with or without `return_attention_scores`).
        src_ids: `(B, S)` int. Source token ids, padded with `pad_id`.
        max_len: int. Most output tokens per row, `<eos>` included. For the
            Transformer at most the `max_len` of its positional encoding.
        bos_id: int. First decoder input. Defaults to `1`.
        eos_id: int. End of sentence. Defaults to `2`.
        pad_id: int. Written after `<eos>`; never generated. Defaults to `0`.
        use_cache: bool. Decode incrementally with the model's inference
            state (the Transformer's key/value cache). With `False` the whole
            model runs on the full `(B, L)` prefix buffer at every step
            (quadratic work; a reference for tests). Its attention then comes
            from the model's outputs when the model was built with
            `return_attention_scores=True` (last decoder block, averaged over
            heads), and is zeros otherwise. Defaults to `True`.

    Returns:
        A dict:
        - `"tokens"`: `(B, L)` int32. Output ids, `<eos>` included, `pad_id`
          after it.
        - `"lengths"`: `(B,)` int32. Tokens up to and including `<eos>`
          (`L` for a row that never produced it).
        - `"attention"`: `(B, L, S)` float32. Cross-attention weights of each
          output step over the source; zeros after the row stopped.

    Example:
    >>> from keras_attention.models import transformer
    >>> model = transformer(30, 25, 32, 64, 4, 2, 0.0, max_len=16)
    >>> out = greedy_search(model, np.array([[5, 6, 7, 0]]), max_len=5)
    >>> tuple(out["tokens"].shape), tuple(out["attention"].shape)
    ((1, 5), (1, 5, 4))
    """
    from keras_attention.models import inference_for

    max_len = _check_max_len(max_len)
    use_cache = _check_bool("use_cache", use_cache)
    src_ids = ops.convert_to_tensor(src_ids, "int32")
    inference = inference_for(model, max_len)
    _check_positional_limit(inference, max_len)
    batch, num_keys = ops.shape(src_ids)[0], ops.shape(src_ids)[1]
    positions = ops.arange(max_len, dtype="int32")[None, :]  # (1, L)

    if use_cache:
        state = inference.encode(src_ids)

        def decode(inputs, state, i):
            # `inputs`: (B,) the tokens at position i.
            return inference.step(inputs, state, i)

    else:
        # The state is the decoder input buffer: <bos> and the tokens so far.
        first = ops.where(positions == 0, bos_id, pad_id)  # (1, L)
        state = {"prefix": first + ops.zeros((batch, 1), "int32")}  # (B, L)

        def decode(inputs, state, i):
            prefix = ops.where(positions == i, inputs[:, None], state["prefix"])  # (B, L)
            outputs = model({"src_ids": src_ids, "tgt_in_ids": prefix}, training=False)
            logits, attention = _logits_and_attention(outputs, batch, num_keys, max_len)
            # Position i of a causal decoder sees positions <= i only.
            logits = ops.take(logits, i, axis=1)  # (B, V)
            attention = ops.take(attention, i, axis=1)  # (B, S)
            return logits, {"prefix": prefix}, attention

    def cond(i, inputs, finished, tokens, lengths, attention, state):
        return ops.logical_and(i < max_len, ops.logical_not(ops.all(finished)))

    def body(i, inputs, finished, tokens, lengths, attention, state):
        logits, state, step_attention = decode(inputs, state, i)
        logits = _mask_token(ops.cast(logits, "float32"), pad_id)
        next_tokens = ops.cast(ops.argmax(logits, axis=-1), "int32")  # (B,)
        next_tokens = ops.where(finished, pad_id, next_tokens)
        write = positions == i  # (1, L)
        tokens = ops.where(write, next_tokens[:, None], tokens)  # (B, L)
        step_attention = ops.where(finished[:, None], 0.0, ops.cast(step_attention, "float32"))
        attention = ops.where(write[:, :, None], step_attention[:, None, :], attention)  # (B, L, S)
        just_finished = ops.logical_and(ops.logical_not(finished), next_tokens == eos_id)
        lengths = ops.where(just_finished, i + 1, lengths)
        finished = ops.logical_or(finished, just_finished)
        # A stopped row keeps reading <eos>; its outputs are discarded.
        inputs = ops.where(finished, eos_id, next_tokens)
        return i + 1, inputs, finished, tokens, lengths, attention, state

    loop_vars = (
        ops.convert_to_tensor(0, "int32"),
        ops.full((batch,), bos_id, "int32"),  # decoder inputs
        ops.zeros((batch,), "bool"),  # finished
        ops.full((batch, max_len), pad_id, "int32"),  # output tokens
        ops.full((batch,), max_len, "int32"),  # lengths
        ops.zeros((batch, max_len, num_keys), "float32"),  # attention
        state,
    )
    _, _, _, tokens, lengths, attention, _ = ops.while_loop(
        cond, body, loop_vars, maximum_iterations=max_len
    )
    return {"tokens": tokens, "lengths": lengths, "attention": attention}


def beam_search(
    model,
    src_ids,
    max_len,
    beam_size=4,
    length_penalty=0.6,
    bos_id=1,
    eos_id=2,
    pad_id=0,
    use_cache=True,
):
    """Translates `src_ids` keeping the `beam_size` best hypotheses per row.

    D2L section "Beam Search". At every step each live hypothesis is extended
    by every token, and the `beam_size` best candidates by normalized score
    survive. The score of a hypothesis `y` of length `|y|` (`<eos>` included)
    is GNMT's length-normalized log-probability (Wu et al., 2016):

        score(y) = log P(y | x) / ((5 + |y|) / 6) ** length_penalty

    so `length_penalty=0` ranks by the plain sum of log-probabilities (D2L's
    score with its `alpha` being this `length_penalty`). A hypothesis that
    produced `<eos>` is finished: it keeps its score and stays in the beam
    (as one candidate, extended by `pad_id`) until better candidates push it
    out. The loop stops when no row has a live hypothesis left, or after
    `max_len` tokens. `beam_size=1` gives the same tokens as `greedy_search`.

    Args:
        model: a `keras.Model` built by `keras_attention.models.transformer`
            or `bahdanau_seq2seq`.
        src_ids: `(B, S)` int. Source token ids, padded with `pad_id`.
        max_len: int. Most output tokens per hypothesis, `<eos>` included.
        beam_size: int. Hypotheses kept per row, `K`. Defaults to `4`.
        length_penalty: float >= 0. GNMT's `alpha`. Defaults to `0.6`
            (GNMT's value).
        bos_id: int. First decoder input. Defaults to `1`.
        eos_id: int. End of sentence. Defaults to `2`.
        pad_id: int. Written after `<eos>`; never generated. Defaults to `0`.
        use_cache: bool. Decode incrementally with the model's inference
            state (the Transformer's key/value cache). With `False` every
            hypothesis runs the whole model on its full `(L,)` prefix buffer
            at every step (quadratic work; a reference for tests and
            `benchmarks/decoding.py`); attention as in `greedy_search`.
            Defaults to `True`.

    Returns:
        A dict:
        - `"tokens"`: `(B, L)` int32. The best hypothesis, `<eos>` included,
          `pad_id` after it.
        - `"lengths"`: `(B,)` int32. Its length up to and including `<eos>`.
        - `"scores"`: `(B,)` float32. Its score.
        - `"attention"`: `(B, L, S)` float32. Its cross-attention weights;
          zeros after `<eos>`.
        - `"all_tokens"`: `(B, K, L)`, `"all_lengths"`: `(B, K)` and
          `"all_scores"`: `(B, K)`: every final hypothesis, best first. When
          fewer than `K` hypotheses exist (a tiny vocabulary), the rest score
          `-inf`.

    Example:
    >>> from keras_attention.models import transformer
    >>> model = transformer(30, 25, 32, 64, 4, 2, 0.0, max_len=16)
    >>> out = beam_search(model, np.array([[5, 6, 7, 0]]), max_len=5, beam_size=3)
    >>> tuple(out["all_tokens"].shape), tuple(out["all_scores"].shape)
    ((1, 3, 5), (1, 3))
    """
    from keras_attention.models import inference_for

    max_len = _check_max_len(max_len)
    if isinstance(beam_size, bool) or not isinstance(beam_size, (int, np.integer)) or beam_size < 1:
        raise ValueError(f"`beam_size` must be an integer >= 1; got beam_size={beam_size!r}.")
    beam_size = int(beam_size)
    if (
        isinstance(length_penalty, bool)
        or not isinstance(length_penalty, (int, float, np.integer, np.floating))
        or not length_penalty >= 0
    ):
        raise ValueError(
            f"`length_penalty` must be a number >= 0; got length_penalty={length_penalty!r}."
        )
    alpha = float(length_penalty)
    use_cache = _check_bool("use_cache", use_cache)
    K = beam_size
    src_ids = ops.convert_to_tensor(src_ids, "int32")
    inference = inference_for(model, max_len)
    _check_positional_limit(inference, max_len)
    if not use_cache:
        inference = _Seq2SeqFullPass(model, max_len, bos_id, pad_id)
    batch, num_keys = ops.shape(src_ids)[0], ops.shape(src_ids)[1]
    positions = ops.arange(max_len, dtype="int32")[None, :]  # (1, L)

    # Encode once, then copy every state entry K times along its batch axis:
    # hypothesis k of row b lives at flat index b * K + k.
    state = inference.encode(src_ids)
    axes = inference.batch_axes()
    state = {name: ops.repeat(value, K, axis=axes[name]) for name, value in state.items()}
    # Row offsets of the flat index, (B, 1).
    row_offsets = ops.arange(batch, dtype="int32")[:, None] * K

    def penalty(lengths):
        return ops.power((5.0 + ops.cast(lengths, "float32")) / 6.0, alpha)

    def cond(i, inputs, log_probs, finished, tokens, lengths, attention, state):
        alive = ops.logical_and(ops.logical_not(finished), log_probs > -np.inf)  # (B, K)
        return ops.logical_and(i < max_len, ops.any(alive))

    def body(i, inputs, log_probs, finished, tokens, lengths, attention, state):
        logits, state, step_attention = inference.step(inputs, state, i)  # (B*K, V), (B*K, S)
        step_log_probs = _mask_token(ops.log_softmax(ops.cast(logits, "float32"), axis=-1), pad_id)
        vocab_size = ops.shape(step_log_probs)[-1]
        step_log_probs = ops.reshape(step_log_probs, (batch, K, vocab_size))  # (B, K, V)
        # Candidates: live hypotheses extended by every token; a finished one
        # extended by pad_id only, at its own score.
        is_pad = (ops.arange(vocab_size, dtype="int32") == pad_id)[None, None, :]  # (1, 1, V)
        candidates = ops.where(
            finished[:, :, None],
            ops.where(is_pad, log_probs[:, :, None], -np.inf),
            log_probs[:, :, None] + step_log_probs,
        )  # (B, K, V)
        candidate_lengths = ops.where(finished, lengths, i + 1)  # (B, K)
        normalized = candidates / penalty(candidate_lengths)[:, :, None]  # (B, K, V)
        _, best = ops.top_k(ops.reshape(normalized, (batch, K * vocab_size)), K)  # (B, K)
        best = ops.cast(best, "int32")
        parents = best // vocab_size  # (B, K) beam index of each survivor's parent
        next_tokens = best % vocab_size  # (B, K)
        candidates = ops.reshape(candidates, (batch, K * vocab_size))
        log_probs = ops.take_along_axis(candidates, best, axis=1)  # (B, K)

        # Reorder everything by parent.
        flat_parents = ops.reshape(parents + row_offsets, (-1,))  # (B*K,)
        parent_finished = ops.take_along_axis(finished, parents, axis=1)  # (B, K)
        lengths = ops.take_along_axis(lengths, parents, axis=1)
        tokens = ops.take(tokens, flat_parents, axis=0)  # (B*K, L)
        attention = ops.take(attention, flat_parents, axis=0)  # (B*K, L, S)
        step_attention = ops.take(ops.cast(step_attention, "float32"), flat_parents, axis=0)
        state = {name: ops.take(v, flat_parents, axis=axes[name]) for name, v in state.items()}

        # Write step i of the survivors.
        flat_next = ops.reshape(next_tokens, (-1,))  # (B*K,)
        write = positions == i  # (1, L)
        tokens = ops.where(write, flat_next[:, None], tokens)
        live = ops.reshape(ops.logical_not(parent_finished), (-1,))  # (B*K,)
        step_attention = ops.where(live[:, None], step_attention, 0.0)  # (B*K, S)
        attention = ops.where(write[:, :, None], step_attention[:, None, :], attention)
        just_finished = ops.logical_and(ops.logical_not(parent_finished), next_tokens == eos_id)
        lengths = ops.where(parent_finished, lengths, i + 1)
        finished = ops.logical_or(parent_finished, just_finished)
        # Finished hypotheses keep reading <eos>; their outputs are discarded.
        inputs = ops.where(ops.reshape(finished, (-1,)), eos_id, flat_next)
        return i + 1, inputs, log_probs, finished, tokens, lengths, attention, state

    # Only hypothesis 0 is live at first, so the first step does not pick K
    # copies of the same token.
    first = ops.arange(K, dtype="int32")[None, :] == 0  # (1, K)
    loop_vars = (
        ops.convert_to_tensor(0, "int32"),
        ops.full((batch * K,), bos_id, "int32"),  # decoder inputs
        ops.where(first, 0.0, -np.inf) + ops.zeros((batch, 1), "float32"),  # log-probs (B, K)
        ops.zeros((batch, K), "bool"),  # finished
        ops.full((batch * K, max_len), pad_id, "int32"),  # tokens
        ops.full((batch, K), max_len, "int32"),  # lengths
        ops.zeros((batch * K, max_len, num_keys), "float32"),  # attention
        state,
    )
    _, _, log_probs, _, tokens, lengths, attention, _ = ops.while_loop(
        cond, body, loop_vars, maximum_iterations=max_len
    )
    # The last top_k sorted the hypotheses best first by the score each has
    # now (live ones were scored with length i + 1, which is their length).
    scores = log_probs / penalty(lengths)  # (B, K)
    all_tokens = ops.reshape(tokens, (batch, K, max_len))
    attention = ops.reshape(attention, (batch, K, max_len, num_keys))
    return {
        "tokens": all_tokens[:, 0],
        "lengths": lengths[:, 0],
        "scores": scores[:, 0],
        "attention": attention[:, 0],
        "all_tokens": all_tokens,
        "all_lengths": lengths,
        "all_scores": scores,
    }


def decode_to_lists(tokens, lengths=None, eos_id=2, pad_id=0):
    """Turns a batch of output ids into Python lists without `<eos>` and padding.

    Args:
        tokens: `(B, L)` int array or tensor, e.g. `greedy_search(...)["tokens"]`.
        lengths: optional `(B,)` int. Tokens of each row to read (`<eos>`
            included). Defaults to reading up to the first `eos_id`.
        eos_id: int. End of sentence. Defaults to `2`.
        pad_id: int. Padding id. Defaults to `0`.

    Returns:
        A list of `B` lists of Python ints: each row up to (not including)
        its first `eos_id`, with `pad_id` dropped.

    Example:
    >>> decode_to_lists(np.array([[5, 6, 2, 0], [7, 8, 9, 4]]))
    [[5, 6], [7, 8, 9, 4]]
    """
    tokens = np.asarray(ops.convert_to_numpy(tokens))
    if tokens.ndim != 2:
        raise ValueError(f"`tokens` must have shape (batch, length); got shape {tokens.shape}.")
    if lengths is not None:
        lengths = np.asarray(ops.convert_to_numpy(lengths)).reshape(-1)
        if lengths.shape[0] != tokens.shape[0]:
            raise ValueError(
                "`lengths` must have one entry per row of `tokens`; got "
                f"{lengths.shape[0]} lengths for {tokens.shape[0]} rows."
            )
    results = []
    for b, row in enumerate(tokens.tolist()):
        if lengths is not None:
            row = row[: int(lengths[b])]
        if eos_id in row:
            row = row[: row.index(eos_id)]
        results.append([int(t) for t in row if t != pad_id])
    return results


# Helpers.


class _Seq2SeqFullPass:
    """An encoder-decoder's `encode`/`step` without a cache, for `beam_search(use_cache=False)`.

    The state is the source ids and the `(B, L)` decoder input buffer
    (`<bos>` and the tokens so far); every step writes its tokens and runs
    the whole model on the buffer (quadratic work). Position `i` of the
    causal decoder sees positions `<= i` only.
    """

    def __init__(self, model, max_len, bos_id, pad_id):
        self.model = model
        self.max_len = max_len
        self.bos_id = bos_id
        self.pad_id = pad_id

    def encode(self, src_ids):
        batch = ops.shape(src_ids)[0]
        positions = ops.arange(self.max_len, dtype="int32")[None, :]  # (1, L)
        first = ops.where(positions == 0, self.bos_id, self.pad_id)  # (1, L)
        return {"src_ids": src_ids, "prefix": first + ops.zeros((batch, 1), "int32")}  # (B, L)

    def step(self, tokens, state, index):
        src_ids = state["src_ids"]
        batch, num_keys = ops.shape(src_ids)[0], ops.shape(src_ids)[1]
        positions = ops.arange(self.max_len, dtype="int32")[None, :]  # (1, L)
        prefix = ops.where(positions == index, tokens[:, None], state["prefix"])  # (B, L)
        outputs = self.model({"src_ids": src_ids, "tgt_in_ids": prefix}, training=False)
        logits, attention = _logits_and_attention(outputs, batch, num_keys, self.max_len)
        logits = ops.take(logits, index, axis=1)  # (B, V)
        attention = ops.take(attention, index, axis=1)  # (B, S)
        return logits, {"src_ids": src_ids, "prefix": prefix}, attention

    @staticmethod
    def batch_axes():
        return {"src_ids": 0, "prefix": 0}


def _check_max_len(max_len):
    if isinstance(max_len, bool) or not isinstance(max_len, (int, np.integer)) or max_len < 1:
        raise ValueError(
            "`max_len` must be a Python integer >= 1 (it fixes the output "
            f"buffers' shapes); got max_len={max_len!r}."
        )
    return int(max_len)


def _check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"`{name}` must be a bool; got {name}={value!r}.")
    return bool(value)


def _check_positional_limit(inference, max_len):
    """Raises when the decoder's positions 0 .. max_len - 1 pass its positional `max_len`."""
    positions = getattr(inference, "tgt_positions", None)
    limit = getattr(positions, "max_len", None)
    if limit is not None and max_len > limit:
        raise ValueError(
            f"`max_len` must be at most the model's positional max_len={limit} "
            f"(decoder positions 0..{limit - 1}); got max_len={max_len}. Decode "
            "fewer tokens or build the model with a larger `max_len`."
        )


def _mask_token(logits, token_id):
    """Sets column `token_id` of `(..., V)` logits or log-probabilities to `-inf`."""
    vocab = ops.arange(ops.shape(logits)[-1], dtype="int32")
    return ops.where(vocab == token_id, -np.inf, logits)


def _logits_and_attention(outputs, batch, num_keys, max_len):
    """Splits a model's outputs into logits `(B, L, V)` and attention `(B, L, S)`."""
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


# Sampling from decoder-only language models.

__all__ += ["sample", "sample_loop"]


def sample(
    model,
    prompt_ids,
    max_new_tokens,
    temperature=1.0,
    top_k=None,
    top_p=None,
    seed=None,
    eos_id=None,
    use_cache=True,
):
    """Continues prompts by sampling from a GPT model, one token at a time.

    D2L section "Large-Scale Pretraining with Transformers" (GPT generates
    text autoregressively). At every step the next-token logits are divided
    by `temperature`, cut to the `top_k` most probable tokens, then to the
    smallest set whose probability reaches `top_p` (nucleus sampling,
    Holtzman et al., 2020), and one token is drawn from the softmax of what
    is left. `temperature=0` takes the argmax instead (greedy decoding).
    The model's `pad_id` is never generated. Tokens tied with the last one
    kept by `top_k` or `top_p` are kept too.

    Randomness: one `keras.random.uniform` draw of `(N, B)` numbers from
    `seed`, made before the loop; step `n` picks, in row `b`, the token where
    the cumulative probability first passes `u[n, b]` (inverse-CDF
    sampling, the same distribution as `keras.random.categorical`). No
    random state changes inside the loop, so the same `seed` gives the same
    tokens with or without the cache, eagerly or in a `tf.function`. (It
    also runs with `jit_compile=True`, but TensorFlow's XLA kernels draw a
    different random stream for the same seed.) The steps run inside
    `keras.ops.while_loop` with fixed-shape buffers written with selects.

    All prompts of a batch have the same length `P` and hold no padding:
    left-padding of shorter prompts is not supported yet.

    Args:
        model: a `keras.Model` built by `keras_attention.models.gpt`.
        prompt_ids: `(B, P)` int, `P >= 1` known when called. The prompts.
        max_new_tokens: int >= 1. Tokens generated per row, `N`;
            `P + N` must not pass the model's positional `max_len`.
        temperature: float >= 0. Softmax temperature; `0` means greedy.
            Defaults to `1.0`.
        top_k: int >= 1 or None. Keep only the `top_k` most probable tokens.
            Defaults to `None` (all).
        top_p: float in (0, 1] or None. Keep the most probable tokens until
            their probability reaches `top_p`. Defaults to `None` (all).
        seed: int, `keras.random.SeedGenerator` or None. Seed of the random
            draw. A generator advances once per call (the next call
            continues its stream). Defaults to `None` (Keras' global seed
            state; inside a `tf.function` pass an int or a generator made
            outside it).
        eos_id: int or None. End of text: a row stops after generating it,
            and the model's `pad_id` fills the rest of the row. Defaults to
            `None` (always generate `N` tokens).
        use_cache: bool. Run the prompt once and then one token per step
            with the blocks' key/value cache (`GPTInference`). With `False`
            the whole `(B, P + N)` buffer runs through the model at every
            step (quadratic work; a reference for tests). Defaults to `True`.

    Returns:
        A dict:
        - `"tokens"`: `(B, P + N)` int32. The prompt, then the generated
          tokens (`eos_id` included), then `pad_id` after `eos_id`.
        - `"lengths"`: `(B,)` int32. `P` plus the tokens generated up to and
          including `eos_id` (`P + N` for a row that never produced it).

    Example:
    >>> from keras_attention.models import gpt
    >>> model = gpt(50, 16, 32, 2, 1, 0.0, max_len=16)
    >>> out = sample(model, np.array([[5, 6, 7]]), max_new_tokens=4, top_k=10, seed=1)
    >>> tuple(out["tokens"].shape)
    (1, 7)
    """
    import keras

    from keras_attention.models import GPTInference

    if (
        isinstance(max_new_tokens, bool)
        or not isinstance(max_new_tokens, (int, np.integer))
        or max_new_tokens < 1
    ):
        raise ValueError(
            "`max_new_tokens` must be a Python integer >= 1 (it fixes the output "
            f"buffers' shapes); got max_new_tokens={max_new_tokens!r}."
        )
    num_new = int(max_new_tokens)
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, (int, float, np.integer, np.floating))
        or not temperature >= 0
    ):
        raise ValueError(
            f"`temperature` must be a number >= 0 (0: greedy); got temperature={temperature!r}."
        )
    temperature = float(temperature)
    if top_k is not None and (
        isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1
    ):
        raise ValueError(f"`top_k` must be None or an integer >= 1; got top_k={top_k!r}.")
    if top_p is not None and (
        isinstance(top_p, bool)
        or not isinstance(top_p, (int, float, np.integer, np.floating))
        or not 0 < top_p <= 1
    ):
        raise ValueError(f"`top_p` must be None or a number in (0, 1]; got top_p={top_p!r}.")
    if seed is not None and not isinstance(seed, keras.random.SeedGenerator) and (
        isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
    ):
        raise ValueError(
            f"`seed` must be None, an integer or a `keras.random.SeedGenerator`; got seed={seed!r}."
        )
    use_cache = _check_bool("use_cache", use_cache)

    prompt_ids = ops.convert_to_tensor(prompt_ids, "int32")
    if len(prompt_ids.shape) != 2:
        raise ValueError(
            f"`prompt_ids` must have shape (batch, prompt_length); got shape {tuple(prompt_ids.shape)}."
        )
    prompt_len = prompt_ids.shape[1]
    if prompt_len is None or prompt_len < 1:
        raise ValueError(
            "`prompt_ids` must hold at least one token per row, with the prompt "
            f"length known when `sample` is called; got shape {tuple(prompt_ids.shape)}."
        )
    total = prompt_len + num_new
    names = {layer.name for layer in model.layers}
    limit = model.get_layer("positions").max_len if "positions" in names else None
    if limit is not None and total > limit:
        raise ValueError(
            "The prompt length plus `max_new_tokens` must be at most the model's "
            f"positional max_len={limit}; got prompt length {prompt_len} + "
            f"max_new_tokens={num_new} = {total}."
        )
    inference = GPTInference(model, total)
    if not use_cache:
        inference = _FullPass(model, inference.pad_id)
    batch = ops.shape(prompt_ids)[0]
    if temperature > 0:
        uniforms = keras.random.uniform(
            (num_new, batch), dtype="float32", seed=_as_seed(seed)
        )  # (N, B), one per generated token
    else:
        uniforms = ops.zeros((num_new, batch), "float32")  # greedy: never read
    tokens, lengths = sample_loop(
        inference,
        prompt_ids,
        num_new,
        uniforms,
        temperature=temperature,
        top_k=0 if top_k is None else int(top_k),
        top_p=1.0 if top_p is None else float(top_p),
        eos_id=eos_id,
    )
    return {"tokens": tokens, "lengths": lengths}


def sample_loop(
    inference,
    prompt_ids,
    num_new,
    uniforms,
    temperature=1.0,
    top_k=0,
    top_p=1.0,
    eos_id=None,
    pad_id=None,
):
    """The sampling loop of `sample`, with its options as numbers or tensors.

    `sample` checks its arguments, draws `uniforms` from its seed and calls
    this; `keras_attention.export.LanguageModel` does the same with the
    tensors of its SavedModel signature. Every option is applied with
    `keras.ops.where` (nothing is decided in Python), so with tensor
    arguments one trace serves every value: `temperature == 0` takes the
    argmax, `top_k <= 0` and `top_p >= 1` turn those filters off. The
    prompt runs once through `inference.start` with a cache of length
    `P + N`, then `inference.step` feeds one token per iteration of a
    `keras.ops.while_loop` that stops when every row has produced `eos_id`
    or after `N` tokens. See `sample` for the algorithm and the outputs.

    Args:
        inference: a `keras_attention.models.GPTInference` (its
            `max_len` at least `P + N`), or any object with its `pad_id`,
            `start(prompt_ids, max_len)` and `step(tokens, state, index)`.
        prompt_ids: `(B, P)` int, `P >= 1`, no padding. The prompts.
        num_new: int or scalar int tensor >= 1. New tokens per row, `N`.
        uniforms: `(N, B)` float32 in `[0, 1)`: step `n` of row `b` draws
            its token with `uniforms[n, b]` (inverse CDF). Not read when
            `temperature` is 0.
        temperature: float or scalar float tensor >= 0; `0` is greedy.
            Defaults to `1.0`.
        top_k: int or scalar int tensor. Keep the `top_k` most probable
            tokens (ties kept); `<= 0` keeps all. Defaults to `0`.
        top_p: float or scalar float tensor in `(0, 1]`. Keep the most
            probable tokens until their probability reaches `top_p`; `>= 1`
            keeps all. Defaults to `1.0`.
        eos_id: int or None. A row stops after generating it. Defaults to
            `None` (always generate `N` tokens).
        pad_id: int or None. Never generated; fills a row after `eos_id`.
            Defaults to `None` (`inference.pad_id`).

    Returns:
        `(tokens, lengths)`: `(B, P + N)` int32 and `(B,)` int32, the
        `"tokens"` and `"lengths"` of `sample`.
    """
    pad_id = inference.pad_id if pad_id is None else pad_id
    eos_id = -1 if eos_id is None else eos_id  # -1: never generated
    prompt_ids = ops.convert_to_tensor(prompt_ids, "int32")
    batch, prompt_len = ops.shape(prompt_ids)
    total = prompt_len + num_new  # L
    # Options given as Python numbers that switch a step off skip its work;
    # tensors are selected with `ops.where`, so one trace serves every value.
    greedy_only = isinstance(temperature, (int, float)) and temperature == 0
    skip_top_k = isinstance(top_k, int) and top_k <= 0
    skip_top_p = isinstance(top_p, (int, float)) and top_p >= 1
    temperature = ops.convert_to_tensor(temperature, "float32")
    top_k = ops.convert_to_tensor(top_k, "int32")
    top_p = ops.convert_to_tensor(top_p, "float32")
    sampling = temperature > 0
    safe_temperature = ops.where(sampling, temperature, 1.0)
    positions = ops.arange(total, dtype="int32")[None, :]  # (1, L)
    # The prompt, then pad_id.
    tokens = ops.concatenate(
        [prompt_ids, ops.full((batch, num_new), pad_id, "int32")], axis=1
    )  # (B, L)
    logits, state = inference.start(prompt_ids, total)  # (B, V) scoring position P
    vocab_size = ops.shape(logits)[-1]
    k = ops.where(top_k > 0, ops.minimum(top_k, vocab_size), vocab_size)

    def choose(logits, i):
        """Picks the tokens at position `i`, `(B,)`, from logits `(B, V)`."""
        logits = _mask_token(ops.cast(logits, "float32"), pad_id)
        greedy = ops.cast(ops.argmax(logits, axis=-1), "int32")
        if greedy_only:
            return greedy
        scaled = logits / safe_temperature
        if not skip_top_k:
            scaled = ops.where(top_k > 0, _top_k_filter(scaled, k), scaled)
        if not skip_top_p:
            scaled = ops.where(top_p < 1, _top_p_filter(scaled, top_p), scaled)
        u = ops.take(uniforms, i - prompt_len, axis=0)  # (B,)
        return ops.where(sampling, _inverse_cdf_sample(scaled, u, greedy), greedy)

    def cond(i, logits, finished, tokens, lengths, state):
        return ops.logical_and(i < total, ops.logical_not(ops.all(finished)))

    def body(i, logits, finished, tokens, lengths, state):
        next_tokens = ops.where(finished, pad_id, choose(logits, i))  # (B,)
        tokens = ops.where(positions == i, next_tokens[:, None], tokens)  # (B, L)
        just_finished = ops.logical_and(ops.logical_not(finished), next_tokens == eos_id)
        lengths = ops.where(just_finished, i + 1, lengths)
        finished = ops.logical_or(finished, just_finished)
        # A stopped row keeps reading eos_id; its outputs are discarded. The
        # last step's logits (position P + N) are never used.
        inputs = ops.where(finished, eos_id if eos_id >= 0 else pad_id, next_tokens)
        logits, state = inference.step(inputs, state, i)
        return i + 1, ops.cast(logits, "float32"), finished, tokens, lengths, state

    loop_vars = (
        ops.convert_to_tensor(prompt_len, "int32"),
        ops.cast(logits, "float32"),
        ops.zeros((batch,), "bool"),  # finished
        tokens,
        ops.full((batch,), total, "int32"),  # lengths
        state,
    )
    _, _, _, tokens, lengths, _ = ops.while_loop(
        cond, body, loop_vars, maximum_iterations=num_new
    )
    return tokens, lengths


class _FullPass:
    """`GPTInference`'s `start`/`step` without a cache, for `sample(use_cache=False)`.

    The state is the `(B, L)` token buffer; every step writes its token and
    runs the whole model on the buffer (quadratic work; a reference for
    tests). Position `i` of a causal model sees positions `<= i` only.
    """

    def __init__(self, model, pad_id):
        self.model = model
        self.pad_id = pad_id

    def _logits(self, buffer, index):
        return ops.take(ops.cast(self.model(buffer, training=False), "float32"), index, axis=1)

    def start(self, token_ids, max_len):
        token_ids = ops.convert_to_tensor(token_ids, "int32")
        batch, prompt_len = ops.shape(token_ids)
        buffer = ops.concatenate(
            [token_ids, ops.full((batch, max_len - prompt_len), self.pad_id, "int32")], axis=1
        )  # (B, L)
        return self._logits(buffer, prompt_len - 1), {"tokens": buffer}

    def step(self, tokens, state, index):
        buffer = state["tokens"]
        positions = ops.arange(ops.shape(buffer)[1], dtype="int32")[None, :]  # (1, L)
        buffer = ops.where(positions == index, tokens[:, None], buffer)  # (B, L)
        return self._logits(buffer, index), {"tokens": buffer}


def _top_k_filter(logits, k):
    """Sets logits `(B, V)` below the `k`-th largest of their row to `-inf`.

    `k`: int or scalar int tensor in `[1, V]` (a sort rather than
    `ops.top_k`, whose `k` must be a Python int on some backends).
    """
    sorted_logits = ops.flip(ops.sort(logits, axis=-1), axis=-1)  # (B, V), largest first
    kth = ops.take(sorted_logits, k - 1, axis=-1)[:, None]  # (B, 1)
    return ops.where(logits < kth, -np.inf, logits)


def _top_p_filter(logits, top_p):
    """Keeps, per row of logits `(B, V)`, the most probable tokens until their
    probability reaches `top_p`; sets the others to `-inf`."""
    sorted_logits = ops.flip(ops.sort(logits, axis=-1), axis=-1)  # (B, V), largest first
    probs = ops.softmax(sorted_logits, axis=-1)
    mass_before = ops.cumsum(probs, axis=-1) - probs  # (B, V)
    # The first token is always kept; each next one while the mass before it is < top_p.
    keep = ops.logical_or(mass_before < top_p, ops.arange(ops.shape(logits)[-1]) == 0)
    threshold = ops.min(ops.where(keep, sorted_logits, np.inf), axis=-1, keepdims=True)  # (B, 1)
    return ops.where(logits < threshold, -np.inf, logits)


def _as_seed(seed):
    """An int seed as a Python int; None or a `SeedGenerator` as it is."""
    return int(seed) if isinstance(seed, (int, np.integer)) else seed


def _inverse_cdf_sample(logits, u, fallback):
    """Draws one token per row of logits `(B, V)` from uniforms `u` `(B,)` in [0, 1).

    The token is the first one whose cumulative probability passes
    `u * total`; tokens of probability zero (`-inf` logits) are never picked.
    Where rounding leaves no such token, `fallback` `(B,)` is returned.
    """
    probs = ops.softmax(logits, axis=-1)  # (B, V)
    cdf = ops.cumsum(probs, axis=-1)  # (B, V)
    threshold = u[:, None] * cdf[:, -1:]  # (B, 1)
    hit = ops.logical_and(cdf > threshold, probs > 0)  # (B, V)
    first = ops.cast(ops.argmax(ops.cast(hit, "int32"), axis=-1), "int32")  # (B,)
    return ops.where(ops.any(hit, axis=-1), first, fallback)
