"""Greedy and beam search for the encoder-decoders.

D2L sections "Sequence-to-Sequence Learning" (prediction, one token at a
time) and "Beam Search". Both searches drive the model's step decoder
(`keras_attention.generate.decoders.decoder_for`): the encoder once, then
one decoding step per output token, with the Transformer's key/value cache
or the GRU's hidden states carried between steps.

Everything here is written with `keras.ops`: the steps run inside
`keras.ops.while_loop` with loop-invariant shapes (preallocated
`(B, max_len)` buffers written with selects), so the searches work on any
backend, eagerly, and inside a TensorFlow `tf.function` (also with
`jit_compile=True`) or an exported SavedModel. Tokenization is the caller's
business; `decode_to_lists` turns the returned ids into Python lists.

Special ids: `bos_id` starts every output, a row stops at its first
`eos_id`, and `pad_id` fills a row after it and is never generated. Each
comes from the argument when given, else from `tokenizer` (any object with
`bos_id`, `eos_id`, `pad_id`, e.g. the package's tokenizers), else
`bos_id=1`, `eos_id=2` (the package's reserved ids) and the model's own
`pad_id` (its embedding's).

Conventions shared by both searches:

- Output position `t` holds the token predicted after reading `<bos>` and
  output tokens `0 .. t-1`; `<bos>` itself is not returned.
- A `pad_id` in the output always means "after `<eos>`". `<eos>` is kept
  in the output.
- A row (or beam) stops at its first `<eos>`; the loop stops as soon as
  every row has stopped, or after `max_len` tokens.

Letters used in shape comments: B batch, K beam size, S source length,
L max_len (output length), V target vocabulary.
"""

import numpy as np
from keras import ops

from keras_attention import _checks
from keras_attention.generate.decoders import UncachedSeq2SeqDecoder, decoder_for

__all__ = ["greedy_search", "beam_search", "decode_to_lists", "special_ids"]

# The package's reserved ids (`keras_attention.data.RESERVED_TOKENS`).
DEFAULT_BOS_ID = 1
DEFAULT_EOS_ID = 2
# Decoding buffers hold `max_len` positions per row: a bound on it keeps a
# typo (max_len=10**9) a clear error instead of an out-of-memory crash.
MAX_DECODE_LEN = 2**16
_SEQ2SEQ = ("transformer", "t5", "bahdanau_seq2seq")


def special_ids(decoder, tokenizer=None, bos_id=None, eos_id=None, pad_id=None):
    """`(bos_id, eos_id, pad_id)` for decoding: arguments, else `tokenizer`, else defaults.

    The defaults are the package's reserved ids for `<bos>` (1) and
    `<eos>` (2) and the model's own `pad_id`; a model without one (a GPT
    built with `pad_id=None`) fills with `eos_id`.
    """
    ids = {}
    for name, value, default in (
        ("bos_id", bos_id, DEFAULT_BOS_ID),
        ("eos_id", eos_id, DEFAULT_EOS_ID),
        ("pad_id", pad_id, None),
    ):
        if value is None and tokenizer is not None:
            value = getattr(tokenizer, name, None)
        if value is None:
            value = default
        # eos_id=-1: never stop (e.g. to time a fixed number of steps).
        low = -1 if name == "eos_id" else 0
        ids[name] = None if value is None else _checks.check_int(name, value, low=low)
        _check_in_vocab(name, ids[name], _output_vocab_size(decoder), never_stop=True)
    if ids["pad_id"] is None:
        model_pad = decoder.pad_id
        ids["pad_id"] = ids["eos_id"] if model_pad is None else int(model_pad)
    return ids["bos_id"], ids["eos_id"], ids["pad_id"]


def _output_vocab_size(decoder):
    """The size of the vocabulary a step decoder reads and writes, or None where unknown."""
    embedding = getattr(decoder, "tgt_embedding", None)
    size = getattr(embedding, "vocab_size", None) or getattr(decoder, "vocab_size", None)
    return size if _checks.is_int(size) else None


def _check_in_vocab(name, value, vocab_size, never_stop=False):
    """A special id outside the model's vocabulary: `bos_id` fails deep in the embedding, an
    `eos_id` or `pad_id` is never generated (decoding never stops, padding never shows)."""
    if value is None or vocab_size is None or value < vocab_size:
        return
    never = " (or -1: never stop)" if never_stop and name == "eos_id" else ""
    raise ValueError(
        f"`{name}` must be an id of the model's vocabulary, in [0, vocab_size={vocab_size})"
        f"{never}; got {name}={value}. Do the tokenizer and the model match?"
    )


def _check_max_len(max_len):
    max_len = _checks.check_positive_int("max_len", max_len)
    if max_len > MAX_DECODE_LEN:
        raise ValueError(
            f"`max_len` must be at most {MAX_DECODE_LEN} (the decoding buffers hold "
            f"max_len positions per row); got max_len={max_len}."
        )
    return max_len


def _check_nonnegative_number(name, value):
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not 0 <= value < float("inf")
    ):
        raise ValueError(f"`{name}` must be a finite number >= 0; got {name}={value!r}.")
    return float(value)


def check_token_ids(name, ids, vocab_size=None):
    """`ids` as an int32 tensor `(B, T)`: a clear error for another rank, a float
    dtype, or (where the values are known) an id outside `[0, vocab_size)`."""
    if not ops.is_tensor(ids):
        ids = np.asarray(ids)
    dtype = str(getattr(ids, "dtype", ""))
    if "int" not in dtype:
        raise TypeError(f"`{name}` must hold integer token ids; got dtype {dtype}.")
    if len(ids.shape) != 2:
        raise ValueError(
            f"`{name}` must have shape (batch, length); got shape {tuple(ids.shape)}. "
            "Wrap a single sequence in a list: [ids]."
        )
    values = _checks.concrete_value(ids) if vocab_size is not None else None
    if values is not None and values.size and (values.min() < 0 or values.max() >= vocab_size):
        bad = values.min() if values.min() < 0 else values.max()
        raise ValueError(
            f"`{name}` must hold ids in [0, vocab_size={vocab_size}) (the model's vocabulary); "
            f"got {int(bad)}."
        )
    return ops.convert_to_tensor(ids, "int32")


def _prepare(
    model, src_ids, max_len, use_cache, return_attention, tokenizer, bos_id, eos_id, pad_id
):
    """The checked arguments of a search: its step decoder, source ids and special ids."""
    max_len = _check_max_len(max_len)
    use_cache = _checks.check_bool("use_cache", use_cache)
    return_attention = _checks.check_bool("return_attention", return_attention)
    decoder = decoder_for(model, max_len, return_attention=return_attention, kinds=_SEQ2SEQ)
    src_ids = check_token_ids("src_ids", src_ids, decoder.src_embedding.vocab_size)
    ids = special_ids(decoder, tokenizer, bos_id, eos_id, pad_id)
    if not use_cache:
        decoder = UncachedSeq2SeqDecoder(model, max_len, bos_id=ids[0], fill_id=ids[2])
    return decoder, src_ids, ids


def _or_zeros(attention, batch, num_keys):
    """A step's cross-attention `(B, S)` as float32, zeros when the decoder gave none."""
    if attention is None:
        return ops.zeros((batch, num_keys), "float32")
    return ops.cast(attention, "float32")


def _mask_token(logits, token_id):
    """Sets column `token_id` of `(..., V)` logits or log-probabilities to `-inf`."""
    vocab = ops.arange(ops.shape(logits)[-1], dtype="int32")
    return ops.where(vocab == token_id, -np.inf, logits)


def greedy_search(
    model,
    src_ids,
    max_len,
    bos_id=None,
    eos_id=None,
    pad_id=None,
    use_cache=True,
    return_attention=True,
    tokenizer=None,
):
    """Translates `src_ids` by taking the most probable token at every step.

    Args:
        model: a `keras.Model` built by `keras_attention.models.transformer`,
            `t5` or `bahdanau_seq2seq` (with or without
            `return_attention_scores`).
        src_ids: `(B, S)` int. Source token ids, padded with the model's `pad_id`.
        max_len: int. Most output tokens per row, `<eos>` included. For the
            Transformer at most the `max_len` of its positional encoding.
        bos_id: int or None. First decoder input. Defaults to `None`
            (`tokenizer.bos_id`, else 1).
        eos_id: int or None. End of sentence; `-1` never stops. Defaults to
            `None` (`tokenizer.eos_id`, else 2).
        pad_id: int or None. Written after `<eos>`; never generated.
            Defaults to `None` (`tokenizer.pad_id`, else the model's).
        use_cache: bool. Decode incrementally with the model's step decoder
            (the Transformer's key/value cache). With `False` the whole
            model runs on the full `(B, L)` prefix buffer at every step
            (quadratic work; a reference for tests). Its attention then comes
            from the model's outputs when the model was built with
            `return_attention_scores=True` (last decoder block, averaged over
            heads), and is zeros otherwise. Defaults to `True`.
        return_attention: bool. Compute the cross-attention weights returned
            as `"attention"`; with `False` they are zeros and the decoder
            blocks run their fast attention path (what an export serves).
            Defaults to `True`.
        tokenizer: optional target tokenizer whose `bos_id`, `eos_id` and
            `pad_id` are the defaults of those arguments.

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
    inference, src_ids, (bos_id, eos_id, pad_id) = _prepare(
        model, src_ids, max_len, use_cache, return_attention, tokenizer, bos_id, eos_id, pad_id
    )
    max_len = inference.max_len
    batch, num_keys = ops.shape(src_ids)[0], ops.shape(src_ids)[1]
    positions = ops.arange(max_len, dtype="int32")[None, :]  # (1, L)
    state = inference.encode(src_ids)

    def cond(i, inputs, finished, tokens, lengths, attention, state):
        return ops.logical_and(i < max_len, ops.logical_not(ops.all(finished)))

    def body(i, inputs, finished, tokens, lengths, attention, state):
        logits, state, step_attention = inference.step(inputs, state, i)  # inputs: (B,) at i
        step_attention = _or_zeros(step_attention, batch, num_keys)  # (B, S)
        logits = _mask_token(ops.cast(logits, "float32"), pad_id)
        next_tokens = ops.cast(ops.argmax(logits, axis=-1), "int32")  # (B,)
        next_tokens = ops.where(finished, pad_id, next_tokens)
        write = positions == i  # (1, L)
        tokens = ops.where(write, next_tokens[:, None], tokens)  # (B, L)
        step_attention = ops.where(finished[:, None], 0.0, step_attention)
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


def _gnmt_penalty(lengths, alpha):
    """GNMT's length normalizer `((5 + |y|) / 6) ** alpha`."""
    return ops.power((5.0 + ops.cast(lengths, "float32")) / 6.0, alpha)


def _best_extensions(log_probs, step_log_probs, finished, lengths, i, pad_id, alpha):
    """The `K` best one-token extensions of each row's `K` hypotheses.

    Candidates are the live hypotheses extended by every token and the
    finished ones extended by `pad_id` only, at their own score; they are
    ranked by length-normalized score.

    Args:
        log_probs: `(B, K)` float32. Each hypothesis' log-probability.
        step_log_probs: `(B, K, V)` float32. The next token's log-probabilities.
        finished: `(B, K)` bool. Hypotheses that produced `<eos>`.
        lengths: `(B, K)` int32. Their lengths.
        i: the step (a live hypothesis extended now has length `i + 1`).
        pad_id: int. The extension of a finished hypothesis.
        alpha: float. GNMT's length penalty.

    Returns:
        `(parents, next_tokens, log_probs)`, each `(B, K)`: the beam index of
        each survivor's parent, its new token and its log-probability.
    """
    batch, K, vocab_size = ops.shape(step_log_probs)
    is_pad = (ops.arange(vocab_size, dtype="int32") == pad_id)[None, None, :]  # (1, 1, V)
    candidates = ops.where(
        finished[:, :, None],
        ops.where(is_pad, log_probs[:, :, None], -np.inf),
        log_probs[:, :, None] + step_log_probs,
    )  # (B, K, V)
    candidate_lengths = ops.where(finished, lengths, i + 1)  # (B, K)
    normalized = candidates / _gnmt_penalty(candidate_lengths, alpha)[:, :, None]  # (B, K, V)
    _, best = ops.top_k(ops.reshape(normalized, (batch, K * vocab_size)), K)  # (B, K)
    best = ops.cast(best, "int32")
    candidates = ops.reshape(candidates, (batch, K * vocab_size))
    return best // vocab_size, best % vocab_size, ops.take_along_axis(candidates, best, axis=1)


def _write_step(tokens, attention, next_tokens, step_attention, live, i):
    """Writes step `i`'s tokens `(B*K,)` and attention `(B*K, S)` (zeros where not `live`)."""
    write = ops.arange(ops.shape(tokens)[1], dtype="int32")[None, :] == i  # (1, L)
    tokens = ops.where(write, next_tokens[:, None], tokens)
    step_attention = ops.where(live[:, None], step_attention, 0.0)  # (B*K, S)
    return tokens, ops.where(write[:, :, None], step_attention[:, None, :], attention)


def _initial_beams(batch, K, max_len, num_keys, bos_id, pad_id):
    """The loop variables of `beam_search` before its first step (the state aside)."""
    # Only hypothesis 0 is live at first, so the first step does not pick K
    # copies of the same token.
    first = ops.arange(K, dtype="int32")[None, :] == 0  # (1, K)
    return (
        ops.convert_to_tensor(0, "int32"),
        ops.full((batch * K,), bos_id, "int32"),  # decoder inputs
        ops.where(first, 0.0, -np.inf) + ops.zeros((batch, 1), "float32"),  # log-probs (B, K)
        ops.zeros((batch, K), "bool"),  # finished
        ops.full((batch * K, max_len), pad_id, "int32"),  # tokens
        ops.full((batch, K), max_len, "int32"),  # lengths
        ops.zeros((batch * K, max_len, num_keys), "float32"),  # attention
    )


def _encode_beams(inference, src_ids, K):
    """Encodes once, then copies every state entry K times along its batch axis.

    Hypothesis k of row b lives at flat index b * K + k. Returns the state
    and its batch axes.
    """
    state = inference.encode(src_ids)
    axes = inference.batch_axes()
    state = {name: ops.repeat(value, K, axis=axes[name]) for name, value in state.items()}
    return state, axes


def _beam_log_probs(logits, pad_id, batch, K):
    """One step's float32 log-probabilities `(B, K, V)` from `(B*K, V)` logits, `pad_id` masked."""
    step_log_probs = _mask_token(ops.log_softmax(ops.cast(logits, "float32"), axis=-1), pad_id)
    vocab_size = ops.shape(step_log_probs)[-1]
    return ops.reshape(step_log_probs, (batch, K, vocab_size))  # (B, K, V)


def _take_parents(parents, tokens, attention, step_attention, state, axes):
    """Reorders the `(B*K, ...)` buffers and the decoder state by `parents` `(B, K)`."""
    batch, K = ops.shape(parents)[0], ops.shape(parents)[1]
    # Hypothesis k of row b lives at flat index b * K + k.
    row_offsets = ops.arange(batch, dtype="int32")[:, None] * K  # (B, 1)
    flat_parents = ops.reshape(parents + row_offsets, (-1,))  # (B*K,)
    tokens = ops.take(tokens, flat_parents, axis=0)  # (B*K, L)
    attention = ops.take(attention, flat_parents, axis=0)  # (B*K, L, S)
    step_attention = ops.take(ops.cast(step_attention, "float32"), flat_parents, axis=0)
    state = {name: ops.take(v, flat_parents, axis=axes[name]) for name, v in state.items()}
    return tokens, attention, step_attention, state


def _next_inputs(parent_finished, next_tokens, lengths, i, eos_id):
    """After step `i`: which hypotheses are finished, their lengths, the next inputs `(B*K,)`."""
    just_finished = ops.logical_and(ops.logical_not(parent_finished), next_tokens == eos_id)
    lengths = ops.where(parent_finished, lengths, i + 1)
    finished = ops.logical_or(parent_finished, just_finished)
    # Finished hypotheses keep reading <eos>; their outputs are discarded.
    inputs = ops.where(ops.reshape(finished, (-1,)), eos_id, ops.reshape(next_tokens, (-1,)))
    return finished, lengths, inputs


def beam_search(
    model,
    src_ids,
    max_len,
    beam_size=4,
    length_penalty=0.6,
    bos_id=None,
    eos_id=None,
    pad_id=None,
    use_cache=True,
    return_attention=True,
    tokenizer=None,
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
        src_ids: `(B, S)` int. Source token ids, padded with the model's `pad_id`.
        max_len: int. Most output tokens per hypothesis, `<eos>` included.
        beam_size: int. Hypotheses kept per row, `K`. Defaults to `4`.
        length_penalty: float >= 0. GNMT's `alpha`. Defaults to `0.6`
            (GNMT's value).
        bos_id, eos_id, pad_id, use_cache, return_attention, tokenizer: as
            in `greedy_search`; with `use_cache=False` every hypothesis runs
            the whole model on its full `(L,)` prefix buffer at every step
            (a reference for tests and `benchmarks/decoding.py`).

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
    beam_size = _checks.check_positive_int("beam_size", beam_size)
    alpha = _check_nonnegative_number("length_penalty", length_penalty)
    inference, src_ids, (bos_id, eos_id, pad_id) = _prepare(
        model, src_ids, max_len, use_cache, return_attention, tokenizer, bos_id, eos_id, pad_id
    )
    K = beam_size
    batch, num_keys = ops.shape(src_ids)[0], ops.shape(src_ids)[1]
    max_len = inference.max_len

    state, axes = _encode_beams(inference, src_ids, K)

    def cond(i, inputs, log_probs, finished, tokens, lengths, attention, state):
        alive = ops.logical_and(ops.logical_not(finished), log_probs > -np.inf)  # (B, K)
        return ops.logical_and(i < max_len, ops.any(alive))

    def body(i, inputs, log_probs, finished, tokens, lengths, attention, state):
        logits, state, step_attention = inference.step(inputs, state, i)  # (B*K, V), (B*K, S)
        step_attention = _or_zeros(step_attention, batch * K, num_keys)
        step_log_probs = _beam_log_probs(logits, pad_id, batch, K)  # (B, K, V)
        parents, next_tokens, log_probs = _best_extensions(
            log_probs, step_log_probs, finished, lengths, i, pad_id, alpha
        )

        # Reorder everything by parent.
        parent_finished = ops.take_along_axis(finished, parents, axis=1)  # (B, K)
        lengths = ops.take_along_axis(lengths, parents, axis=1)
        tokens, attention, step_attention, state = _take_parents(
            parents, tokens, attention, step_attention, state, axes
        )

        # Write step i of the survivors.
        flat_next = ops.reshape(next_tokens, (-1,))  # (B*K,)
        live = ops.reshape(ops.logical_not(parent_finished), (-1,))  # (B*K,)
        tokens, attention = _write_step(tokens, attention, flat_next, step_attention, live, i)
        finished, lengths, inputs = _next_inputs(parent_finished, next_tokens, lengths, i, eos_id)
        return i + 1, inputs, log_probs, finished, tokens, lengths, attention, state

    loop_vars = _initial_beams(batch, K, max_len, num_keys, bos_id, pad_id) + (state,)
    _, _, log_probs, _, tokens, lengths, attention, _ = ops.while_loop(
        cond, body, loop_vars, maximum_iterations=max_len
    )
    return _beam_results(log_probs, tokens, lengths, attention, K, alpha)


def _beam_results(log_probs, tokens, lengths, attention, K, alpha):
    """`beam_search`'s dict from the loop's final `(B, K)` and `(B*K, ...)` hypotheses."""
    # The last top_k sorted the hypotheses best first by the score each has
    # now (live ones were scored with length i + 1, which is their length).
    scores = log_probs / _gnmt_penalty(lengths, alpha)  # (B, K)
    batch, max_len, num_keys = ops.shape(lengths)[0], ops.shape(tokens)[1], ops.shape(attention)[2]
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
