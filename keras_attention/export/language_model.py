"""A language-model SavedModel: prompt strings in, sampled text out.

`export_language_model` wraps a GPT from `keras_attention.models.gpt`, its
tokenizer and the sampler of `keras_attention.generate.sample` into a
`LanguageModel` whose `generate` signature takes prompt strings and the
sampling options as tensors. Everything runs inside the SavedModel, so a
fresh process needs only `tensorflow` (and `tensorflow_text` for a
WordPiece tokenizer).

`encode_prompts` is the one prompt policy: the exported model and the
in-process generation of `keras_attention.recipes` both use it.

Letters in shape comments: B batch, P prompt length (the longest row), N
new tokens, L = P + N.

TensorFlow only (this module imports it).
"""

import functools

import tensorflow as tf

from keras_attention import _checks, generate
from keras_attention.export import _compiled
from keras_attention.export._save import atomic_save, check_tensorflow_backend, resolve_path

__all__ = [
    "LanguageModel",
    "export_language_model",
    "encode_prompts",
    "serving_length",
    "stateless_seed",
]

LM_SIGNATURE = [
    tf.TensorSpec(None, tf.string, name="prompt"),
    tf.TensorSpec([], tf.int32, name="max_new_tokens"),
    tf.TensorSpec([], tf.float32, name="temperature"),
    tf.TensorSpec([], tf.int32, name="top_k"),
    tf.TensorSpec([], tf.float32, name="top_p"),
    tf.TensorSpec([], tf.int32, name="seed"),
]


def encode_prompts(tokenizer, prompts, max_new_tokens, max_len):
    """The prompt policy: text to the ids the model reads, and what was cut.

    - The tokenizer's own normalisation applies (the one used in training).
    - An empty prompt (no tokens) starts from `<eos>`, the separator the
      model saw between texts in training (GPT-2's `<|endoftext|>`).
    - Prompt plus new tokens must fit `max_len` positions: a longer prompt
      keeps its last `max_len - max_new_tokens` tokens and is reported in
      `truncated`, never cut silently.

    Args:
        tokenizer: the model's tokenizer.
        prompts: `(B,)` string tensor.
        max_new_tokens: int or int32 scalar tensor, `N`.
        max_len: int. The longest prompt plus new tokens: the model's
            positional `max_len`, or, for a model without a position table
            (rotary, ALiBi), the length it is served at (the cache length
            of an export; the trained length in a run).

    Returns:
        `(ids, lengths, truncated, empty)`: `(B, P)` int32 right-padded with
        `<pad>`, `(B,)` int32 prompt lengths, `(B,)` bool rows that were
        cut, `(B,)` bool rows that were empty.
    """
    ids = tf.cast(tokenizer.tokenize(prompts), tf.int32)  # (B, None) ragged
    lengths = tf.cast(ids.row_lengths(), tf.int32)
    empty = tf.equal(lengths, 0)
    eos = tf.RaggedTensor.from_row_lengths(
        tf.fill([tf.reduce_sum(tf.cast(empty, tf.int32))], tf.constant(tokenizer.eos_id, tf.int32)),
        tf.cast(empty, tf.int64),
    )
    ids = tf.concat([eos, ids], axis=1)  # <eos> in the empty rows only
    lengths = tf.cast(ids.row_lengths(), tf.int32)
    keep = max_len - tf.cast(max_new_tokens, tf.int32)
    truncated = lengths > keep
    # Keep each row's last `keep` tokens.
    start = tf.cast(tf.maximum(lengths - keep, 0), tf.int64)
    row_starts = ids.row_starts() + start
    values = tf.gather(
        ids.flat_values,
        tf.ragged.range(row_starts, ids.row_limits()).flat_values,
    )
    ids = tf.RaggedTensor.from_row_lengths(values, ids.row_lengths() - start)
    dense = ids.to_tensor(default_value=tokenizer.pad_id)  # (B, P)
    # At least one column, also for an empty batch (every row has a token).
    dense = tf.pad(
        dense,
        [[0, 0], [0, tf.maximum(1 - tf.shape(dense)[1], 0)]],
        constant_values=tokenizer.pad_id,
    )
    return dense, tf.cast(ids.row_lengths(), tf.int32), truncated, empty


def serving_length(positional_limit, max_len=None):
    """The `max_len` a language model is served at: prompt plus new tokens.

    Args:
        positional_limit: int or None. The model's positional `max_len`
            (`GPTStepDecoder.positional_limit`; None without a position table).
        max_len: int or None. The length asked for; at most
            `positional_limit`, and required where that is None.

    Returns:
        An int >= 2 (one prompt token and one new token).

    Raises:
        ValueError: naming `max_len` and the rule.
    """
    if max_len is None:
        if positional_limit is None:
            raise ValueError(
                "Exporting a language model without a position table (positions='rotary' or "
                "'alibi') needs `max_len`: the longest prompt plus new tokens the SavedModel "
                "serves (its key/value cache length), e.g. the trained sequence length; got "
                "max_len=None."
            )
        max_len = positional_limit
        if max_len < 2:
            raise ValueError(
                "The model's positional max_len must be at least 2 (one prompt token and "
                f"one new token); got max_len={max_len}."
            )
        return max_len
    max_len = _checks.check_int("max_len", max_len, low=2)
    if positional_limit is not None and max_len > positional_limit:
        raise ValueError(
            f"`max_len` must be at most the model's positional max_len={positional_limit} "
            f"(its position table has no row past it); got max_len={max_len}."
        )
    return max_len


def stateless_seed(seed):
    """The `(2,)` int32 seed `keras.random.uniform(seed=int(seed))` uses on TensorFlow.

    Keras turns an int seed into `[seed, 0]` (int64) and folds it into int32
    with `floormod(., 2**31 - 2)`; doing the same to a seed tensor gives the
    same random stream as `generate.sample(..., seed=int)`.
    """
    pair = tf.stack([tf.cast(seed, tf.int64), tf.constant(0, tf.int64)])
    return tf.cast(tf.math.floormod(pair, tf.int32.max - 1), tf.int32)


class LanguageModel(tf.Module):
    """A prompt in, sampled text out: tokenizer + GPT + `generate.sample`'s sampler.

    `generate(prompt, max_new_tokens, temperature, top_k, top_p, seed)`
    checks its arguments, encodes the prompts (`encode_prompts`), samples
    `max_new_tokens` tokens with temperature, top-k and top-p (the loop and
    random stream of `keras_attention.generate.sample`) and detokenizes the
    prompt and its continuation. For the same prompt ids and arguments it
    returns the tokens of `generate.sample(model, ids, N, temperature,
    top_k or None, top_p, seed, tokenizer=tokenizer)` on the TensorFlow
    backend (up to float rounding: XLA's kernels are not oneDNN's), for a
    batch of prompts of one length or of several (sampled in one batch,
    each row with its own column of the random numbers, which is what
    `generate.sample` does with a list of prompts).

    Prompts: a scalar string or a `(B,)` batch, any bytes (invalid UTF-8 is
    replaced with U+FFFD; what the vocabulary lacks becomes `<unk>`).
    Generation stops in a row after `<eos>`; `text` ends before it.

    Limits: prompt plus new tokens fit `max_len` positions (the model's
    positional `max_len`, or the `max_len` given for a model without a
    position table), and a call asks for at most `max_new_tokens` tokens
    (set at export, at most `max_len - 1`: the prompt needs one token).
    There is no other cap.

    Args:
        model: a `keras.Model` built by `keras_attention.models.gpt`.
        tokenizer: its tokenizer (`keras_attention.data.tokenizers`), with
            the model's vocabulary size.
        max_new_tokens: int or None. Most tokens one call may ask for, in
            `[1, max_len - 1]`. Defaults to `None` (`max_len - 1`).
        max_len: int or None. The longest prompt plus new tokens the
            SavedModel serves, its key/value cache length, at least 2.
            Required for a model without a position table
            (`positions="rotary"` or `"alibi"`: nothing else bounds it; the
            length it was trained at is the safe choice, a longer one relies
            on the positions extrapolating); at most the positional
            `max_len` of one with a table. Defaults to `None` (the model's
            positional `max_len`).
        jit_compile: bool. Compile the decoding steps with XLA (one program
            per batch bucket 1, 2, 4, ..., compiled on the first call of
            that bucket in each process, a few seconds; then, on 2 CPU
            cores, 6.8x the op-by-op tokens/s at batch 1 and 1.6x at batch
            32 for the small GPT of `benchmarks/serving.py`).
            `False` runs them op by op: no compile, for a runtime without
            XLA. Defaults to `True`.
    """

    def __init__(self, model, tokenizer, max_new_tokens=None, max_len=None, jit_compile=True):
        check_tensorflow_backend()
        super().__init__(name="language_model")
        self._jit_compile = _compiled.check_jit_compile(jit_compile)
        decoder = generate.decoder_for(model, 1, kinds=("gpt",))
        if decoder.vocab_size != tokenizer.vocab_size:
            raise ValueError(
                "`tokenizer` must have the model's vocabulary size; got model "
                f"vocab_size={decoder.vocab_size} and tokenizer vocab_size={tokenizer.vocab_size}."
            )
        limit = serving_length(decoder.positional_limit, max_len)
        max_new_tokens = _checks.check_int_in_range(
            "max_new_tokens",
            limit - 1 if max_new_tokens is None else max_new_tokens,
            1,
            limit - 1,
            high_name="max_len - 1",
            closed=True,
        )
        self.model = model
        self.tokenizer = tokenizer
        self._limits = {"max_len": limit, "max_new_tokens": max_new_tokens}
        # Saved with the module, for callers of the SavedModel.
        self.max_len = tf.Variable(limit, dtype=tf.int32, trainable=False, name="max_len")
        self.max_new_tokens = tf.Variable(
            max_new_tokens, dtype=tf.int32, trainable=False, name="max_new_tokens"
        )

    def _argument_checks(self, prompt, max_new_tokens, temperature, top_k, top_p):
        """The argument checks: the rule of `generate.check_sampling_options`, as assertions."""
        limit = self._limits["max_new_tokens"]
        assert_ = tf.debugging
        return [
            assert_.assert_less_equal(
                tf.rank(prompt), 1, message="`prompt` must be a string scalar or a 1-D batch"
            ),
            assert_.assert_greater_equal(
                max_new_tokens, 1, message="`max_new_tokens` must be >= 1"
            ),
            assert_.assert_less_equal(
                max_new_tokens,
                limit,
                message=f"`max_new_tokens` must be at most {limit} (set at export)",
            ),
            assert_.assert_equal(
                tf.logical_and(temperature >= 0.0, temperature < float("inf")),
                True,
                message="`temperature` must be a finite number >= 0 (0: greedy)",
            ),
            assert_.assert_greater_equal(top_k, 0, message="`top_k` must be >= 0 (0: off)"),
            assert_.assert_equal(
                tf.logical_and(top_p > 0.0, top_p <= 1.0),
                True,
                message="`top_p` must be in (0, 1] (1: off)",
            ),
        ]

    def _sample_rows(self, ids, lengths, num_new, uniforms, options):
        """Samples every row in one loop, prompts of any lengths together.

        The batch is padded to its bucket (`_compiled.bucket`) and every
        buffer to the served length, so the steps have fixed shapes; the
        part all prompts share (the shortest one's length) runs in one
        chunk op by op, then `generate.sample_steps` runs the rest, compiled
        with XLA unless the export was made with `jit_compile=False`. Each
        row gets the tokens `generate.sample` gives it alone.
        """
        limit = self._limits["max_len"]
        pad_id = self.tokenizer.pad_id
        batch, width = tf.shape(ids)[0], tf.shape(ids)[1]  # B, P
        size = _compiled.bucket(batch)
        ids = _compiled.pad_rows(ids, size, filler=pad_id)  # (B', P)
        lengths = _compiled.pad_rows(lengths, size, filler=1)  # (B',)
        uniforms = _compiled.pad_rows(uniforms, size, axis=1)  # (N, B')
        uniforms = tf.pad(uniforms, [[0, self._limits["max_new_tokens"] - num_new], [0, 0]])
        decoder = generate.GPTStepDecoder(self.model, limit)
        logits, state = decoder.start(ids[:, : tf.reduce_min(lengths)], limit)
        tokens = tf.pad(ids, [[0, 0], [0, limit - width]], constant_values=pad_id)  # (B', L_max)
        steps = functools.partial(
            generate.sample_steps,
            decoder,
            eos_id=self.tokenizer.eos_id,
            fill_id=pad_id,
            ban_id=pad_id,
        )  # what XLA compiles
        steps = _compiled.decode_function(steps, self._jit_compile)
        tokens, out_lengths = steps(logits, state, tokens, lengths, num_new, uniforms, **options)
        return tokens[:batch, : width + num_new], out_lengths[:batch]  # (B, P + N), (B,)

    @tf.function(input_signature=LM_SIGNATURE)
    def generate(self, prompt, max_new_tokens, temperature, top_k, top_p, seed):
        """Continues the prompt(s).

        Args:
            prompt: string scalar or `(B,)` strings; see the class docstring.
            max_new_tokens: int32 scalar in `[1, max_new_tokens]` (the limit
                set at export). `N`.
            temperature: float32 scalar, finite, >= 0; `0` is greedy decoding.
            top_k: int32 scalar >= 0. Keep the `top_k` most probable tokens;
                `0` keeps all.
            top_p: float32 scalar in (0, 1]. Nucleus sampling; `1` keeps all.
            seed: int32 scalar. Same seed, same arguments: same text.

        Returns:
            dict: `text` `(B,)` strings (prompt and continuation,
            detokenized), `tokens` `(B, P + N)` int32 (each prompt as the
            model read it, then the new tokens, `<eos>`, then `<pad>`),
            `lengths` `(B,)` int32 (tokens up to and including `<eos>`),
            `prompt_truncated` `(B,)` bool (the prompt was cut to its last
            `max_len - N` tokens to fit the served length). Bad
            arguments raise `InvalidArgumentError` naming the argument.
        """
        with tf.control_dependencies(
            self._argument_checks(prompt, max_new_tokens, temperature, top_k, top_p)
        ):
            prompt = tf.reshape(prompt, [-1])  # (B,)
        ids, lengths, truncated, empty = encode_prompts(
            self.tokenizer, prompt, max_new_tokens, self._limits["max_len"]
        )  # (B, P), (B,), (B,), (B,)
        # The uniforms `generate.sample(..., seed=int)` draws: one per row and new token.
        uniforms = tf.random.stateless_uniform(
            tf.stack([max_new_tokens, tf.shape(ids)[0]]),
            seed=stateless_seed(seed),
            minval=0.0,
            maxval=1.0,
            dtype=tf.float32,
        )  # (N, B)
        options = dict(temperature=temperature, top_k=top_k, top_p=top_p)
        tokens, out_lengths = self._sample_rows(ids, lengths, max_new_tokens, uniforms, options)
        # An empty prompt's leading <eos> is not text.
        ragged = tf.RaggedTensor.from_tensor(tokens, lengths=out_lengths)
        text_ids = tf.ragged.boolean_mask(
            ragged,
            tf.logical_not(
                tf.logical_and(empty[:, None], tf.equal(tf.ragged.range(out_lengths), 0))
            ),
        )
        return {
            "text": self.tokenizer.detokenize(text_ids),
            "tokens": tokens,
            "lengths": out_lengths,
            "prompt_truncated": truncated,
        }


def export_language_model(
    model,
    tokenizer,
    path=None,
    max_new_tokens=None,
    overwrite=True,
    metadata=None,
    max_len=None,
    jit_compile=True,
):
    """Exports a GPT language model as a SavedModel that takes prompt strings.

    Args:
        model: a trained `keras.Model` built by `keras_attention.models.gpt`.
        tokenizer: its tokenizer (char or WordPiece, from
            `keras_attention.data.build_lm_tokenizer`).
        path: destination directory. Defaults to `saved_models/language_model`.
        max_new_tokens: int or None. Most new tokens a call may ask for, in
            `[1, max_len - 1]`. Defaults to `None` (`max_len - 1`).
        overwrite: bool. Replace a previous export at `path` (never anything
            else: see `atomic_save`). Defaults to `True`.
        metadata: optional dict written into the export (see `atomic_save`).
        max_len: int or None. Longest prompt plus new tokens served (the
            cache length), see `LanguageModel`: required for a rotary or
            ALiBi GPT (no position table), at most the positional `max_len`
            otherwise. Defaults to `None` (the positional `max_len`).
        jit_compile: bool. Compile the decoding steps with XLA; see
            `LanguageModel`. Defaults to `True`.

    Returns:
        The path of the SavedModel. In a fresh process (import
        `tensorflow_text` first for a WordPiece tokenizer),
        `loaded = tf.saved_model.load(path)`, then
        `loaded.generate(prompt, max_new_tokens, temperature, top_k, top_p, seed)`
        or `loaded.signatures["serving_default"](prompt=..., max_new_tokens=...,
        temperature=..., top_k=..., top_p=..., seed=...)` (every argument
        given; `top_k=0` and `top_p=1.0` turn those filters off). They return
        `text` `(B,)` strings, `tokens`, `lengths` and `prompt_truncated`;
        see `LanguageModel.generate`. `loaded.max_len` and
        `loaded.max_new_tokens` hold the limits.
    """
    check_tensorflow_backend()
    module = LanguageModel(
        model, tokenizer, max_new_tokens=max_new_tokens, max_len=max_len, jit_compile=jit_compile
    )
    return atomic_save(
        module,
        resolve_path(path, "language_model"),
        signatures={"serving_default": module.generate},
        overwrite=overwrite,
        metadata=metadata,
    )
