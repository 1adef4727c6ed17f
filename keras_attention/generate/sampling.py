"""Sampling from decoder-only language models: temperature, top-k, top-p, from a seed.

D2L section "Large-Scale Pretraining with Transformers" (GPT generates text
autoregressively). `sample` checks its arguments, draws the random numbers
from its seed and runs `sample_loop`: the prompt once through the blocks,
then one cached step per new token (`decoders.GPTStepDecoder`).
`sample_loop` takes the options as tensors too (one trace serves every
value); its steps, `sample_steps`, also take prompts of several lengths
in one batch with fixed-shape buffers: `keras_attention.export.LanguageModel`
runs them, compiled with XLA, in a SavedModel.

The model's `pad_id` only decides what its attention masks. The ids the
sampler stops on (`eos_id`), never generates and fills a finished row with
(`pad_id`) are the caller's: arguments, else the tokenizer's, else the
model's `pad_id` (a GPT built with `pad_id=None` for packed batches bans no
token and fills with `eos_id`).

Letters used in shape comments: B batch, P prompt length, N new tokens,
L = P + N, V vocabulary.
"""

import math

import keras
import numpy as np
from keras import ops

from keras_attention import _checks
from keras_attention.generate.decoders import GPTStepDecoder, UncachedGPTDecoder, decoder_for
from keras_attention.generate.search import _check_in_vocab, _mask_token, check_token_ids

__all__ = ["sample", "sample_loop", "sample_steps", "check_sampling_options"]


def check_sampling_options(temperature=1.0, top_k=None, top_p=None):
    """The one rule for sampling options, used by `sample` and the exported model.

    `temperature` a finite number >= 0 (`0`: greedy), `top_k` None or an
    integer >= 1 (`0` is accepted as "off", as in the export), `top_p` None
    or a number in (0, 1].

    Returns:
        `(temperature float, top_k int or None, top_p float or None)`.
    """
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, (int, float, np.integer, np.floating))
        or not (temperature >= 0 and math.isfinite(temperature))
    ):
        raise ValueError(
            "`temperature` must be a finite number >= 0 (0: greedy); got "
            f"temperature={temperature!r}."
        )
    top_k = _checks.check_non_negative_int("top_k", top_k, allow_none=True)
    if (top_p is not None) and (
        isinstance(top_p, bool)
        or not isinstance(top_p, (int, float, np.integer, np.floating))
        or not 0 < top_p <= 1
    ):
        raise ValueError(f"`top_p` must be None or a number in (0, 1]; got top_p={top_p!r}.")
    return float(temperature), (top_k or None), (None if top_p is None else float(top_p))


def _sampling_ids(decoder, tokenizer, eos_id, pad_id):
    """`(eos_id, fill_id, ban_id)`: arguments, else the tokenizer's, else the model's pad_id."""
    if eos_id is None and tokenizer is not None:
        eos_id = getattr(tokenizer, "eos_id", None)
    if pad_id is None and tokenizer is not None:
        pad_id = getattr(tokenizer, "pad_id", None)
    if pad_id is None:
        pad_id = decoder.pad_id
    eos_id = _checks.check_non_negative_int("eos_id", eos_id, allow_none=True)
    pad_id = _checks.check_non_negative_int("pad_id", pad_id, allow_none=True)
    for name, value in (("eos_id", eos_id), ("pad_id", pad_id)):
        _check_in_vocab(name, value, decoder.vocab_size)
    fill_id = pad_id if pad_id is not None else (eos_id if eos_id is not None else 0)
    return eos_id, fill_id, pad_id


def sample(
    model,
    prompt_ids,
    max_new_tokens,
    temperature=1.0,
    top_k=None,
    top_p=None,
    seed=None,
    eos_id=None,
    pad_id=None,
    use_cache=True,
    tokenizer=None,
):
    """Continues prompts by sampling from a GPT model, one token at a time.

    D2L section "Large-Scale Pretraining with Transformers" (GPT generates
    text autoregressively). At every step the next-token logits are divided
    by `temperature`, cut to the `top_k` most probable tokens, then to the
    smallest set whose probability reaches `top_p` (nucleus sampling,
    Holtzman et al., 2020), and one token is drawn from the softmax of what
    is left. `temperature=0` takes the argmax instead (greedy decoding).
    Tokens tied with the last one kept by `top_k` or `top_p` are kept too.

    Randomness: one `keras.random.uniform` draw of `(N, B)` numbers from
    `seed`, made before the loop; step `n` picks, in row `b`, the token where
    the cumulative probability first passes `u[n, b]` (inverse-CDF
    sampling, the same distribution as `keras.random.categorical`). No
    random state changes inside the loop, so the same `seed` gives the same
    tokens with or without the cache, eagerly or in a `tf.function`. (It
    also runs with `jit_compile=True`, but TensorFlow's XLA kernels draw a
    different random stream for the same seed.) The steps run inside
    `keras.ops.while_loop` with fixed-shape buffers written with selects.

    Prompts of different lengths: pass a list of id lists; they are grouped
    by length and each group sampled as a batch, every row with its own
    column of the `(N, B)` random numbers drawn for the whole batch (what
    the exported model does), and `"tokens"` is right-padded with the fill
    id to the longest. A `(B, P)` array holds prompts of one length, no
    padding.

    Args:
        model: a `keras.Model` built by `keras_attention.models.gpt`.
        prompt_ids: `(B, P)` int, `P >= 1` known when called, or a list of
            `B` id lists of any lengths >= 1. The prompts.
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
        eos_id: int or None. End of text: a row stops after generating it.
            Defaults to `None` (`tokenizer.eos_id`, else always generate `N`
            tokens).
        pad_id: int or None. Never generated; fills a row after `eos_id`.
            Defaults to `None`: `tokenizer.pad_id`, else the model's
            `pad_id`; a model built with `pad_id=None` (packed batches, no
            padding) bans no token and fills with `eos_id`. The model's own
            `pad_id` only decides what its attention masks.
        use_cache: bool. Run the prompt once and then one token per step
            with the blocks' key/value cache (`GPTStepDecoder`). With `False`
            the whole `(B, P + N)` buffer runs through the model at every
            step (quadratic work; a reference for tests). Defaults to `True`.
        tokenizer: optional tokenizer whose `eos_id` and `pad_id` are the
            defaults of those arguments.

    Returns:
        A dict:
        - `"tokens"`: `(B, P + N)` int32. The prompt, then the generated
          tokens (`eos_id` included), then the fill id after `eos_id`.
        - `"lengths"`: `(B,)` int32. `P` plus the tokens generated up to and
          including `eos_id` (`P + N` for a row that never produced it).

    Example:
    >>> from keras_attention.models import gpt
    >>> model = gpt(50, 16, 32, 2, 1, 0.0, max_len=16)
    >>> out = sample(model, np.array([[5, 6, 7]]), max_new_tokens=4, top_k=10, seed=1)
    >>> tuple(out["tokens"].shape)
    (1, 7)
    """
    num_new = _checks.check_positive_int("max_new_tokens", max_new_tokens)
    temperature, top_k, top_p = check_sampling_options(temperature, top_k, top_p)
    if seed is not None and not isinstance(seed, keras.random.SeedGenerator):
        seed = _checks.check_int(
            "seed", seed, rule="None, an integer or a `keras.random.SeedGenerator`"
        )
    use_cache = _checks.check_bool("use_cache", use_cache)
    decoder = decoder_for(model, 1, kinds=("gpt",))
    groups, batch = _prompt_groups(prompt_ids, decoder.vocab_size)
    longest = max(ids.shape[1] for _, ids in groups)
    _check_fits(longest, num_new, decoder.positional_limit)
    eos_id, fill_id, ban_id = _sampling_ids(decoder, tokenizer, eos_id, pad_id)
    if temperature > 0:
        uniforms = keras.random.uniform(
            (num_new, batch), dtype="float32", seed=_as_seed(seed)
        )  # (N, B), one per generated token
    else:
        uniforms = ops.zeros((num_new, batch), "float32")  # greedy: never read
    options = dict(
        temperature=temperature,
        top_k=0 if top_k is None else int(top_k),
        top_p=1.0 if top_p is None else float(top_p),
        eos_id=eos_id,
        fill_id=fill_id,
        ban_id=ban_id,
    )
    results = []
    for rows, ids in groups:  # one group unless the prompts' lengths differ
        total = ids.shape[1] + num_new
        inference = (
            GPTStepDecoder(model, total) if use_cache else UncachedGPTDecoder(model, fill_id)
        )
        group_uniforms = uniforms if rows is None else ops.take(uniforms, rows, axis=1)
        results.append(sample_loop(inference, ids, num_new, group_uniforms, **options))
    if groups[0][0] is None:
        tokens, lengths = results[0]
        return {"tokens": tokens, "lengths": lengths}
    # Rows of several lengths: back in their order, right-padded with the fill id.
    tokens = np.full((batch, longest + num_new), fill_id, "int32")
    lengths = np.zeros((batch,), "int32")
    for (rows, _), (group_tokens, group_lengths) in zip(groups, results):
        group_tokens = ops.convert_to_numpy(group_tokens)
        tokens[rows, : group_tokens.shape[1]] = group_tokens
        lengths[rows] = ops.convert_to_numpy(group_lengths)
    return {"tokens": ops.convert_to_tensor(tokens), "lengths": ops.convert_to_tensor(lengths)}


def _prompt_groups(prompt_ids, vocab_size):
    """`([(rows, ids (b, P)), ...], B)`: the prompts grouped by length.

    A `(B, P)` array or tensor is one group with `rows=None`; a list of
    id lists of several lengths gives one group per length, `rows` the
    numpy indices of its prompts.
    """
    if (
        isinstance(prompt_ids, (list, tuple))
        and prompt_ids
        and all(isinstance(row, (list, tuple, np.ndarray)) for row in prompt_ids)
    ):
        sizes = [len(row) for row in prompt_ids]
        if len(set(sizes)) > 1:
            groups = []
            for size in sorted(set(sizes)):
                rows = np.array([b for b, n in enumerate(sizes) if n == size], "int32")
                ids = check_token_ids(
                    "prompt_ids", np.array([list(prompt_ids[b]) for b in rows]), vocab_size
                )
                _check_prompt_length(ids)
                groups.append((rows, ids))
            return groups, len(sizes)
    ids = check_token_ids("prompt_ids", prompt_ids, vocab_size)
    _check_prompt_length(ids)
    return [(None, ids)], ops.shape(ids)[0]


def _check_prompt_length(ids):
    if ids.shape[1] is None or ids.shape[1] < 1:
        raise ValueError(
            "`prompt_ids` must hold at least one token per row, with the prompt "
            f"length known when `sample` is called; got shape {tuple(ids.shape)}."
        )


def _check_fits(prompt_len, num_new, limit):
    """Prompt plus new tokens must fit the model's positions: a clear error, never a cut.

    `limit` None: the model has no positional table (rotary, ALiBi), anything fits.
    """
    if limit is not None and prompt_len + num_new > limit:
        raise ValueError(
            "The prompt length plus `max_new_tokens` must be at most the model's "
            f"positional max_len={limit}; got prompt length {prompt_len} + "
            f"max_new_tokens={num_new} = {prompt_len + num_new}. Cut the prompt (to its "
            f"last {max(limit - num_new, 1)} tokens) or ask for fewer tokens."
        )


def _token_chooser(temperature, top_k, top_p, ban_id, vocab_size):
    """`choose(logits, u)`: the tokens `(B,)` from logits `(B, V)` and uniforms `u` `(B,)`.

    Options given as Python numbers that switch a step off skip its work;
    tensors are selected with `ops.where`, so one trace serves every value.
    """
    greedy_only = isinstance(temperature, (int, float)) and temperature == 0
    skip_top_k = isinstance(top_k, int) and top_k <= 0
    skip_top_p = isinstance(top_p, (int, float)) and top_p >= 1
    temperature = ops.convert_to_tensor(temperature, "float32")
    top_k = ops.convert_to_tensor(top_k, "int32")
    top_p = ops.convert_to_tensor(top_p, "float32")
    sampling = temperature > 0
    safe_temperature = ops.where(sampling, temperature, 1.0)
    k = ops.where(top_k > 0, ops.minimum(top_k, vocab_size), vocab_size)

    def choose(logits, u):
        logits = ops.cast(logits, "float32")
        if ban_id is not None:
            logits = _mask_token(logits, ban_id)
        greedy = ops.cast(ops.argmax(logits, axis=-1), "int32")
        if greedy_only:
            return greedy
        scaled = logits / safe_temperature
        if not skip_top_k:
            scaled = ops.where(top_k > 0, _top_k_filter(scaled, k), scaled)
        if not skip_top_p:
            scaled = ops.where(top_p < 1, _top_p_filter(scaled, top_p), scaled)
        return ops.where(sampling, _inverse_cdf_sample(scaled, u, greedy), greedy)

    return choose


def sample_loop(
    inference,
    prompt_ids,
    num_new,
    uniforms,
    temperature=1.0,
    top_k=0,
    top_p=1.0,
    eos_id=None,
    fill_id=0,
    ban_id=None,
):
    """The sampling loop of `sample`, with its options as numbers or tensors.

    `sample` checks its arguments, draws `uniforms` from its seed and calls
    this. Every option is applied with `keras.ops.where` (nothing is
    decided in Python), so with tensor arguments one trace serves every
    value: `temperature == 0` takes the argmax, `top_k <= 0` and
    `top_p >= 1` turn those filters off. The prompt runs once through
    `inference.start` with a cache of length `P + N`, then `sample_steps`
    feeds one token per iteration of a `keras.ops.while_loop` that stops
    when every row has produced `eos_id` or after `N` tokens. See `sample`
    for the algorithm and the outputs.

    Args:
        inference: a decoder-only step decoder (`GPTStepDecoder`, its
            `max_len` at least `P + N`, or `UncachedGPTDecoder`).
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
        fill_id: int. Fills a row after `eos_id`. Defaults to `0`.
        ban_id: int or None. Never generated. Defaults to `None` (none).

    Returns:
        `(tokens, lengths)`: `(B, P + N)` int32 and `(B,)` int32, the
        `"tokens"` and `"lengths"` of `sample`.
    """
    prompt_ids = ops.convert_to_tensor(prompt_ids, "int32")
    batch, prompt_len = ops.shape(prompt_ids)
    total = prompt_len + num_new  # L
    # The prompt, then the fill id.
    tokens = ops.concatenate(
        [prompt_ids, ops.full((batch, num_new), fill_id, "int32")], axis=1
    )  # (B, L)
    logits, state = inference.start(prompt_ids, total)  # (B, V) scoring position P
    return sample_steps(
        inference,
        logits,
        state,
        tokens,
        ops.full((batch,), prompt_len, "int32"),
        num_new,
        uniforms,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        eos_id=eos_id,
        fill_id=fill_id,
        ban_id=ban_id,
    )


def sample_steps(
    inference,
    logits,
    state,
    tokens,
    lengths,
    num_new,
    uniforms,
    temperature=1.0,
    top_k=0,
    top_p=1.0,
    eos_id=None,
    fill_id=0,
    ban_id=None,
):
    """The steps of `sample_loop` after the prompt, for prompts of several lengths.

    Every row steps through the same positions (one cache index for the
    batch): from the shortest prompt's end, a row still inside its prompt
    reads its next prompt token (teacher forcing, which refills its cache
    there), and a row past it generates, drawing with its own uniforms
    `uniforms[i - length, b]`. Each row gets exactly the tokens
    `sample_loop` gives it alone. Every buffer has a fixed shape, so the
    loop also compiles with XLA for one batch size (what the exported
    language model does).

    Args:
        inference: the step decoder whose `start` gave `logits` and `state`.
        logits: `(B, V)` float. The logits scoring position `min(lengths)`.
        state: the decoder's state after the first `min(lengths)` positions.
        tokens: `(B, L)` int32. Each prompt right-padded with `fill_id`;
            `L >= max(lengths + N)`, at most the decoder's cache length.
        lengths: `(B,)` int32 >= 1. The prompts' lengths.
        num_new, uniforms, temperature, top_k, top_p, eos_id, fill_id,
        ban_id: as in `sample_loop` (`uniforms` may have more than `N`
            rows; the extra ones are not read).

    Returns:
        `(tokens, lengths)`: `(B, L)` int32, each row its prompt, its new
        tokens, then `fill_id`; and `(B,)` int32, its length up to and
        including `eos_id` (`length + N` for a row that never produced it).
    """
    eos_id = -1 if eos_id is None else eos_id  # -1: never generated
    tokens = ops.convert_to_tensor(tokens, "int32")
    lengths = ops.convert_to_tensor(lengths, "int32")
    total = ops.shape(tokens)[1]  # L
    positions = ops.arange(total, dtype="int32")[None, :]  # (1, L)
    ends = lengths + num_new  # (B,): one past each row's last new token
    last_uniform = ops.shape(uniforms)[0] - 1
    choose = _token_chooser(temperature, top_k, top_p, ban_id, ops.shape(logits)[-1])

    def cond(i, logits, finished, tokens, out_lengths, state):
        return ops.logical_and(i < total, ops.logical_not(ops.all(finished)))

    def body(i, logits, finished, tokens, out_lengths, state):
        in_prompt = i < lengths  # (B,)
        u = ops.take_along_axis(uniforms, ops.clip(i - lengths, 0, last_uniform)[None], axis=0)
        chosen = ops.where(finished, fill_id, choose(logits, u[0]))  # (B,)
        next_tokens = ops.where(in_prompt, ops.take(tokens, i, axis=1), chosen)
        tokens = ops.where(positions == i, next_tokens[:, None], tokens)  # (B, L)
        generated = ops.logical_and(ops.logical_not(in_prompt), ops.logical_not(finished))
        just_finished = ops.logical_and(generated, next_tokens == eos_id)
        out_lengths = ops.where(just_finished, i + 1, out_lengths)
        finished = ops.logical_or(ops.logical_or(finished, just_finished), i + 1 >= ends)
        # A stopped row keeps reading eos_id; its outputs are discarded. The
        # last step's logits are never used.
        inputs = ops.where(finished, eos_id if eos_id >= 0 else fill_id, next_tokens)
        logits, state, _ = inference.step(inputs, state, i)
        return i + 1, ops.cast(logits, "float32"), finished, tokens, out_lengths, state

    start = ops.min(lengths)
    loop_vars = (start, ops.cast(logits, "float32"), ops.zeros_like(lengths, "bool"))
    loop_vars += (tokens, ends, state)
    _, _, _, tokens, lengths, _ = ops.while_loop(
        cond, body, loop_vars, maximum_iterations=total - start
    )
    return tokens, lengths


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
