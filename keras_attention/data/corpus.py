"""Text corpora and `tf.data` pipelines for language-model pretraining.

D2L sections "Text Sequence Data" (The Time Machine, random-offset
next-token windows), "Pretraining BERT" / "The Dataset for Pretraining
BERT" (masked language modelling) and the T5 objective of "Large-Scale
Pretraining with Transformers" (span corruption), made small:

- `load_time_machine` / `preprocess_time_machine`: D2L's corpus and its
  preprocessing (letters only, lower case).
- `generate_corpus`: the embedded default, English-like sentences from a
  small probabilistic grammar (no files, deterministic per seed).
- `build_lm_tokenizer`, `encode_text`, `encode_lines`: tokenizers with the
  special tokens pretraining needs (`<mask>`, `<extra_id_0>`, ...) right
  after `<pad> <bos> <eos> <unk>`, and the id arrays the pipelines take.
- `causal_lm_dataset` (GPT), `mlm_dataset` (BERT), `span_corruption_dataset`
  (T5): batch-first int32 `(features, labels)` datasets for `Model.fit`.

Randomness: every random choice is a function of `seed` and of the epoch.
Each pipeline draws one int64 per epoch (causal) or per element (MLM, span
corruption) from `tf.data.Dataset.random(seed, rerandomize_each_iteration=True)`
and seeds stateless ops (or a numpy generator) with it, so the first epoch of
two datasets built with the same seed is identical, later epochs see new
windows, masks and spans (RoBERTa's dynamic masking), and parallel `map`s
stay deterministic. (`tf.random.set_seed` changes the streams too.)

Letters used in shape comments: N sequences, B batch, T sequence length,
S target length.
"""

import math
import random
import re

import numpy as np
import tensorflow as tf

from keras_attention.data import _checks, download
from keras_attention.data.tokenizers import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    RESERVED_TOKENS,
    CharTokenizer,
    WordPieceTokenizer,
    _Tokenizer,
)

TIME_MACHINE_PATH = "timemachine/timemachine.txt"
TIME_MACHINE_URL = "http://d2l-data.s3-accelerate.amazonaws.com/timemachine.txt"
TIME_MACHINE_SHA256 = "8424dbd9532ac81f7e5f0b6add90e6952baea29158309d7d1bf3884f4e12c516"

RESERVED_IDS = tuple(range(len(RESERVED_TOKENS)))  # <pad> <bos> <eos> <unk>


# --------------------------------------------------------------------------
# Corpora
# --------------------------------------------------------------------------


def load_time_machine(data_dir=None):
    """The raw text of H. G. Wells' *The Time Machine*, as D2L downloads it.

    Args:
        data_dir: str or path. Searched first for `timemachine/timemachine.txt`
            (see `find_or_download`). Defaults to `None`.

    Returns:
        str.

    Raises:
        ValueError: the file's sha256 is not D2L's (see `find_or_download`)
            or it is not UTF-8 text.
    """
    path = download.find_or_download(
        TIME_MACHINE_PATH, url=TIME_MACHINE_URL, sha256=TIME_MACHINE_SHA256, data_dir=data_dir
    )
    with download.reading(path, "UTF-8 text"):
        return path.read_text(encoding="utf-8")


def preprocess_time_machine(text):
    """D2L's `TimeMachine._preprocess`: runs of non-letters become one space, lower case.

    Example:
        >>> preprocess_time_machine("The Time Machine, by H. G. Wells [1898]")
        'the time machine by h g wells '
    """
    return re.sub("[^A-Za-z]+", " ", _checks.check_text("text", text)).lower()


# A small grammar: agreement between subject and verb (and inside relative
# clauses), verbs that take only some kinds of objects, optional adjectives,
# places and adverbs. Nouns and verbs are (singular, plural) pairs.
_ANIMATE = [
    ("cat", "cats"),
    ("dog", "dogs"),
    ("bird", "birds"),
    ("child", "children"),
    ("teacher", "teachers"),
    ("farmer", "farmers"),
    ("robot", "robots"),
    ("king", "kings"),
    ("girl", "girls"),
    ("boy", "boys"),
]
_OBJECTS = {
    "food": [("apple", "apples"), ("bread", "breads"), ("fish", "fish"), ("cake", "cakes")],
    "text": [("book", "books"), ("letter", "letters"), ("story", "stories"), ("map", "maps")],
    "thing": [("ball", "balls"), ("box", "boxes"), ("stone", "stones"), ("hat", "hats")],
}
_TRANSITIVE = [  # (singular, plural, object kinds)
    (("eats", "eat"), ("food",)),
    (("reads", "read"), ("text",)),
    (("writes", "write"), ("text",)),
    (("throws", "throw"), ("thing", "food")),
    (("carries", "carry"), ("thing", "food", "text")),
    (("sees", "see"), ("thing", "food", "text", "animate")),
    (("likes", "like"), ("thing", "food", "text", "animate")),
    (("follows", "follow"), ("animate",)),
]
_INTRANSITIVE = [
    ("sleeps", "sleep"),
    ("runs", "run"),
    ("sings", "sing"),
    ("waits", "wait"),
    ("laughs", "laugh"),
]
_ADJECTIVES = {
    "animate": ["small", "old", "young", "happy", "quiet", "clever"],
    "food": ["fresh", "sweet", "warm", "small"],
    "text": ["old", "long", "short", "strange"],
    "thing": ["red", "heavy", "round", "small", "green"],
}
_DETERMINERS = (["the", "a", "this", "every"], ["the", "some", "these", "two", "many"])
_PLACES = [
    "in the garden",
    "near the river",
    "under the tree",
    "at home",
    "in the city",
    "behind the house",
    "on the hill",
]
_ADVERBS = ["quickly", "slowly", "again", "today", "every day", "at night"]


def _noun_phrase(rng, kind, depth):
    """A noun phrase of `kind`; returns (words, plural)."""
    plural = rng.random() < 0.35
    pairs = _ANIMATE if kind == "animate" else _OBJECTS[kind]
    noun = rng.choice(pairs)[plural]
    words = [rng.choice(_DETERMINERS[plural])]
    for _ in range(rng.choice([0, 0, 0, 1, 1, 2])):
        adjective = rng.choice(_ADJECTIVES[kind])
        if adjective not in words:
            words.append(adjective)
    words.append(noun)
    if words[0] == "a" and words[1][0] in "aeiou":
        words[0] = "an"
    if kind == "animate" and depth < 1 and rng.random() < 0.15:
        words += ["that"] + _verb_phrase(rng, plural, depth + 1)
    return words, plural


def _verb_phrase(rng, plural, depth):
    if rng.random() < 0.25:
        return [rng.choice(_INTRANSITIVE)[plural]]
    verb, kinds = rng.choice(_TRANSITIVE)
    obj, _ = _noun_phrase(rng, rng.choice(kinds), depth + 1)
    return [verb[plural]] + obj


def _sentence(rng):
    subject, plural = _noun_phrase(rng, "animate", 0)
    words = subject + _verb_phrase(rng, plural, 0)
    if rng.random() < 0.3:
        words.append(rng.choice(_PLACES))
    if rng.random() < 0.2:
        words.append(rng.choice(_ADVERBS))
    if rng.random() < 0.15:
        subject, plural = _noun_phrase(rng, "animate", 1)
        words += ["and"] + subject + _verb_phrase(rng, plural, 1)
    return " ".join(words) + " ."


def generate_corpus(num_sentences=2000, seed=0):
    """The embedded default corpus: English-like sentences from a small grammar.

    Subjects agree with their verbs (also inside relative clauses), verbs take
    only fitting objects ("reads a long letter", never "eats a letter"),
    adjectives fit their nouns, and places, adverbs and "and" clauses come
    with fixed probabilities. A language model can therefore get far below
    the unigram entropy, yet has to use context to do so.

    Args:
        num_sentences: int. Defaults to `2000` (about 20,000 words).
        seed: int. Seed of `random.Random`. Defaults to `0`.

    Returns:
        str: one lower-case sentence a line, each ending in `" ."`, e.g.
        `"the old cat that sees a red ball sleeps ."`.
    """
    num_sentences = _checks.check_non_negative_int("num_sentences", num_sentences)
    rng = random.Random(_checks.check_int("seed", seed))
    return "\n".join(_sentence(rng) for _ in range(num_sentences))


# --------------------------------------------------------------------------
# Tokenizers and id arrays
# --------------------------------------------------------------------------


def build_lm_tokenizer(text, kind="char", vocab_size=1000, extra_tokens=(), normalize="none"):
    """A tokenizer learned from `text`, with special tokens after the reserved four.

    The vocabulary is `<pad> <bos> <eos> <unk>`, then `extra_tokens` in the
    given order (so `<mask>` or `<extra_id_0>` get ids 4, 5, ... whatever the
    text), then the learned tokens.

    Args:
        text: str or list of str. Line breaks separate texts.
        kind: str. `"char"` (`CharTokenizer`, the most frequent characters) or
            `"wordpiece"` (`WordPieceTokenizer`). Defaults to `"char"`.
        vocab_size: int. Largest vocabulary size, reserved and extra tokens
            included. Defaults to `1000`.
        extra_tokens: sequence of str, e.g. `("<mask>",)`. Defaults to `()`.
        normalize: str. The character tokenizer's normalisation
            (`CharTokenizer`): `"none"` or `"time_machine"`. WordPiece always
            applies D2L's preprocessing. Defaults to `"none"`.

    Returns:
        A `CharTokenizer` or `WordPieceTokenizer`.

    Example:
        >>> tok = build_lm_tokenizer("the cat sat", extra_tokens=["<mask>"])
        >>> tok.vocab[:6]
        ['<pad>', '<bos>', '<eos>', '<unk>', '<mask>', 't']
    """
    _checks.check_choice("kind", kind, ("char", "wordpiece"))
    _checks.check_choice("normalize", normalize, ("none", "time_machine"))
    if not isinstance(text, str):
        if not isinstance(text, (list, tuple)) or not all(isinstance(t, str) for t in text):
            raise ValueError(
                f"`text` must be a str or a list of str; got {type(text).__name__} text={text!r:.80}."
            )
    extra_tokens = _checks.check_strings("extra_tokens", extra_tokens)
    if len(set(extra_tokens)) != len(extra_tokens) or set(extra_tokens) & set(RESERVED_TOKENS):
        raise ValueError(
            f"`extra_tokens` must be distinct and not reserved tokens; got extra_tokens={extra_tokens}."
        )
    num_fixed = len(RESERVED_TOKENS) + len(extra_tokens)
    if not _checks.is_int(vocab_size) or vocab_size <= num_fixed:
        raise ValueError(
            f"`vocab_size` must be an int larger than the {num_fixed} reserved and extra "
            f"tokens; got vocab_size={vocab_size!r}."
        )
    texts = text.split("\n") if isinstance(text, str) else [t for s in text for t in s.split("\n")]
    if kind == "char":
        learned = CharTokenizer.build(texts, normalize=normalize).vocab[len(RESERVED_TOKENS) :]
        learned = [t for t in learned if t not in extra_tokens][: vocab_size - num_fixed]
        return CharTokenizer(list(RESERVED_TOKENS) + extra_tokens + learned, normalize=normalize)
    learned = WordPieceTokenizer.build(texts, vocab_size=vocab_size - len(extra_tokens)).vocab
    learned = [t for t in learned[len(RESERVED_TOKENS) :] if t not in extra_tokens]
    return WordPieceTokenizer(list(RESERVED_TOKENS) + extra_tokens + learned)


def encode_text(tokenizer, text, separator_id=EOS_ID):
    """All of `text` as one 1-D int32 id array, for `causal_lm_dataset`.

    Args:
        tokenizer: a tokenizer from `keras_attention.data.tokenizers`.
        text: str; each non-empty line is tokenized on its own.
        separator_id: int. Id put after every line (GPT-2's end of text),
            or `None` for none. Defaults to `EOS_ID`.

    Returns:
        `np.ndarray` int32 `(L,)`.
    """
    _check_tokenizer(tokenizer)
    _checks.check_text("text", text)
    if separator_id is not None:
        separator_id = _checks.check_int("separator_id", separator_id)
    lines = [line for line in text.split("\n") if line]
    if not lines:
        return np.zeros([0], np.int32)
    ids = tokenizer.tokenize(tf.constant(lines))  # (lines, None)
    if separator_id is not None:
        column = tf.fill(tf.stack([ids.nrows(), 1]), tf.constant(separator_id, tf.int32))
        ids = tf.concat([ids, tf.RaggedTensor.from_tensor(column)], axis=1)
    return ids.flat_values.numpy().astype(np.int32)


def encode_lines(tokenizer, lines, max_len):
    """One row of ids per line, cut or padded with `<pad>`, for MLM and span corruption.

    Args:
        tokenizer: a tokenizer from `keras_attention.data.tokenizers`.
        lines: list of str (or a str, split at line breaks); empty lines are dropped.
        max_len: int. `T`.

    Returns:
        `np.ndarray` int32 `(N, T)`.
    """
    _check_tokenizer(tokenizer)
    max_len = _checks.check_positive_int("max_len", max_len)
    lines = lines.split("\n") if isinstance(lines, str) else _checks.check_strings("lines", lines)
    lines = [line for line in lines if line]
    if not lines:
        return np.zeros([0, max_len], np.int32)
    ids = tokenizer.tokenize(tf.constant(lines))
    return ids.to_tensor(default_value=PAD_ID, shape=[None, max_len]).numpy().astype(np.int32)


# --------------------------------------------------------------------------
# Shared checks and seeds
# --------------------------------------------------------------------------


def _check_tokenizer(tokenizer):
    if not isinstance(tokenizer, _Tokenizer):
        raise ValueError(
            "`tokenizer` must be a tokenizer of keras_attention.data.tokenizers (e.g. from "
            f"build_lm_tokenizer); got {type(tokenizer).__name__}."
        )


def _check_sequences(sequences, name="sequences"):
    sequences = np.asarray(sequences)
    if sequences.ndim != 2 or not np.issubdtype(sequences.dtype, np.integer):
        raise ValueError(
            f"`{name}` must be a 2-D int array (N, T) padded with {PAD_ID}; "
            f"got dtype={sequences.dtype}, shape={sequences.shape}."
        )
    return sequences.astype(np.int32)


def _check_pipeline(sequences, batch_size, seed, shuffle, drop_remainder):
    """The checks every pipeline over `(N, T)` sequences shares; returns them as int32."""
    sequences = _check_sequences(sequences)
    batch_size = _checks.check_positive_int("batch_size", batch_size)
    _checks.check_int("seed", seed)
    _checks.check_bool("shuffle", shuffle)
    _checks.check_bool("drop_remainder", drop_remainder)
    if not len(sequences):
        raise ValueError("`sequences` holds no sequences; an empty data set gives no batch.")
    _checks.check_some_batch(
        f"{len(sequences)} sequences", len(sequences), batch_size, drop_remainder
    )
    return sequences, batch_size


def _element_seeds(seed):
    """One int64 per element, new each epoch, the same for the same `seed`."""
    return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)


def _stateless_seed(seed, draw):
    """The `(2,)` int64 seed of stateless ops for one draw."""
    return tf.stack([tf.constant(seed, tf.int64), tf.cast(draw, tf.int64)])


# --------------------------------------------------------------------------
# Causal language modelling (GPT)
# --------------------------------------------------------------------------


def causal_lm_dataset(token_ids, seq_len, batch_size, shuffle=True, seed=0, drop_remainder=False):
    """Next-token windows from one long id sequence (D2L's `seq_data_iter_random`).

    The sequence is cut into `n` non-overlapping windows of `seq_len + 1` ids;
    each gives inputs `w[:-1]` and labels `w[1:]`. With `shuffle`, every epoch
    starts the cut at a new random offset in `[0, seq_len)` (so all
    subsequences are seen across epochs, as in D2L) and visits the windows in
    a new random order; `n = (L - seq_len) // seq_len` for every offset, so
    each epoch has the same number of batches. Without `shuffle`, the cut
    starts at 0, windows come in order and `n = (L - 1) // seq_len`.

    Args:
        token_ids: int array `(L,)`, e.g. from `encode_text`.
        seq_len: int. `T`.
        batch_size: int. `B`.
        shuffle: bool. Random offset and order per epoch. Defaults to `True`.
        seed: int. Defaults to `0`.
        drop_remainder: bool. Drop the last, smaller batch. Defaults to `False`.

    Returns:
        `tf.data.Dataset` of `({"token_ids": (B, T)}, labels (B, T))`, int32,
        with `labels[:, t] == token_ids[:, t + 1]` inside the corpus.
    """
    seq_len = _checks.check_positive_int("seq_len", seq_len)
    batch_size = _checks.check_positive_int("batch_size", batch_size)
    _checks.check_bool("shuffle", shuffle)
    seed = _checks.check_int("seed", seed)
    _checks.check_bool("drop_remainder", drop_remainder)
    token_ids = np.asarray(token_ids)
    if token_ids.ndim != 1 or not np.issubdtype(token_ids.dtype, np.integer):
        raise ValueError(
            f"`token_ids` must be a 1-D int array; got dtype={token_ids.dtype}, "
            f"shape={token_ids.shape}."
        )
    if token_ids.size and token_ids.min() < 0:
        raise ValueError(f"`token_ids` must be ids >= 0; got {token_ids.min()}.")
    length = len(token_ids)
    num_windows = (length - seq_len) // seq_len if shuffle else (length - 1) // seq_len
    if num_windows < 1:
        raise ValueError(
            f"`token_ids` is too short for one window of seq_len={seq_len} "
            f"({'2 * seq_len' if shuffle else 'seq_len + 1'} ids needed); got {length} ids. "
            f"Lower `seq_len` or pass more text."
        )
    _checks.check_some_batch(
        f"`token_ids` gives {num_windows} windows of seq_len={seq_len}",
        num_windows,
        batch_size,
        drop_remainder,
    )
    tokens = tf.constant(token_ids.astype(np.int32))
    offsets = tf.range(seq_len + 1)  # (T + 1,)

    def windows(offset, order_seed):
        starts = offset + seq_len * tf.range(num_windows)  # (n,)
        if order_seed is not None:
            order = tf.argsort(tf.random.stateless_uniform([num_windows], seed=order_seed))
            starts = tf.gather(starts, order)
        ids = tf.gather(tokens, starts[:, None] + offsets[None, :])  # (n, T + 1)
        return tf.data.Dataset.from_tensor_slices(({"token_ids": ids[:, :-1]}, ids[:, 1:]))

    if shuffle:
        draw = _element_seeds(seed).take(1)  # one draw per epoch
        ds = draw.flat_map(
            lambda r: windows(
                tf.cast(tf.math.floormod(r, seq_len), tf.int32), _stateless_seed(seed, r)
            )
        )
        ds = ds.apply(tf.data.experimental.assert_cardinality(num_windows))
    else:
        ds = windows(0, None)
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


# --------------------------------------------------------------------------
# Masked language modelling (BERT)
# --------------------------------------------------------------------------


def mask_tokens(
    token_ids, seed, mask_id, special_ids=RESERVED_IDS, vocab_size=None, mask_prob=0.15
):
    """BERT's masking rule on `(..., T)` ids, with stateless random ops.

    Of the positions holding a non-special id (special: `special_ids`,
    `<pad>` and `mask_id`), `max(1, round(mask_prob * n))` are chosen per row
    of `n` such positions (as Google's `create_pretraining_data.py` does, so
    every non-empty row predicts at least one token; rows without any such
    position choose none). Each chosen position becomes `mask_id` with
    probability 0.8, a uniformly random non-special id with probability 0.1,
    and keeps its id otherwise.

    Args:
        token_ids: int tensor `(..., T)`.
        seed: int tensor `(2,)`. Seed of the stateless ops.
        mask_id: int.
        special_ids: ints never chosen nor drawn. Defaults to `(0, 1, 2, 3)`.
        vocab_size: int. Random ids are drawn from `[0, vocab_size)` minus the
            special ids.
        mask_prob: float. Defaults to `0.15`.

    Returns:
        `(inputs, labels)`, int32 `(..., T)`: `labels` hold the original id at
        chosen positions and `<pad>` (0, ignored by the loss) elsewhere.
    """
    specials = sorted(set(int(i) for i in special_ids) | {PAD_ID, int(mask_id)})
    pool = tf.constant([i for i in range(vocab_size) if i not in specials], tf.int32)
    tokens = tf.cast(token_ids, tf.int32)
    seeds = tf.random.experimental.stateless_split(seed, num=3)
    choosable = tf.reduce_all(tokens[..., None] != tf.constant(specials, tf.int32), axis=-1)
    num_choosable = tf.reduce_sum(tf.cast(choosable, tf.float32), axis=-1, keepdims=True)
    num_chosen = tf.where(
        num_choosable > 0, tf.maximum(1.0, tf.floor(num_choosable * mask_prob + 0.5)), 0.0
    )  # (..., 1)
    # The num_chosen choosable positions with the smallest random scores.
    scores = tf.where(choosable, tf.random.stateless_uniform(tf.shape(tokens), seeds[0]), 2.0)
    ranks = tf.argsort(tf.argsort(scores, axis=-1), axis=-1)  # (..., T)
    chosen = choosable & (tf.cast(ranks, tf.float32) < num_chosen)
    action = tf.random.stateless_uniform(tf.shape(tokens), seeds[1])
    random_ids = tf.gather(
        pool, tf.random.stateless_uniform(tf.shape(tokens), seeds[2], 0, tf.size(pool), tf.int32)
    )
    inputs = tf.where(chosen & (action < 0.8), tf.constant(mask_id, tf.int32), tokens)
    inputs = tf.where(chosen & (action >= 0.8) & (action < 0.9), random_ids, inputs)
    labels = tf.where(chosen, tokens, PAD_ID)
    return inputs, labels


def mlm_dataset(
    sequences,
    batch_size,
    vocab_size,
    mask_id,
    special_ids=RESERVED_IDS,
    mask_prob=0.15,
    seed=0,
    segment_ids=None,
    shuffle=True,
    drop_remainder=False,
):
    """Masked-language-model batches (BERT), masked anew every epoch.

    Args:
        sequences: int array `(N, T)` padded with `<pad>` (0), e.g. from
            `encode_lines`.
        batch_size: int. `B`.
        vocab_size: int. Random replacements are drawn below it.
        mask_id: int. The `<mask>` id.
        special_ids: ints never masked nor drawn (`<cls>`, `<sep>`, ...);
            `<pad>` and `mask_id` are always added. Defaults to `(0, 1, 2, 3)`.
        mask_prob: float. Share of non-special positions predicted. Defaults
            to `0.15`.
        seed: int. Defaults to `0`.
        segment_ids: int array `(N, T)`. Defaults to `None` (all 0).
        shuffle: bool. Reshuffle the sequences every epoch. Defaults to `True`.
        drop_remainder: bool. Defaults to `False`.

    Returns:
        `tf.data.Dataset` of `({"token_ids": (B, T), "segment_ids": (B, T)},
        labels (B, T))`, int32; see `mask_tokens`. Train with
        `MaskedSparseCategoricalCrossentropy(pad_id=0)` so only the chosen
        positions count.
    """
    sequences, batch_size = _check_pipeline(sequences, batch_size, seed, shuffle, drop_remainder)
    vocab_size = _checks.check_positive_int("vocab_size", vocab_size)
    mask_id = _checks.check_int("mask_id", mask_id)
    special_ids = _checks.check_ints("special_ids", special_ids)
    mask_prob = _checks.check_float_in_range("mask_prob", mask_prob, 0, 1, low_closed=False)
    if segment_ids is None:
        segment_ids = np.zeros_like(sequences)
    segment_ids = _check_sequences(segment_ids, "segment_ids")
    if segment_ids.shape != sequences.shape:
        raise ValueError(
            f"`segment_ids` must have the shape of `sequences` {sequences.shape}; "
            f"got {segment_ids.shape}."
        )
    specials = set(special_ids) | {PAD_ID, mask_id}
    if not 0 <= mask_id < vocab_size or len(specials & set(range(vocab_size))) >= vocab_size:
        raise ValueError(
            f"`mask_id` must be below `vocab_size` and some ids must be non-special; "
            f"got mask_id={mask_id}, vocab_size={vocab_size}."
        )
    if sequences.size and (sequences.max() >= vocab_size or sequences.min() < 0):
        raise ValueError(
            f"`sequences` ids must be in [0, vocab_size={vocab_size}); "
            f"got ids in [{sequences.min()}, {sequences.max()}]."
        )

    ds = tf.data.Dataset.from_tensor_slices((sequences, segment_ids))
    if shuffle and len(sequences):
        ds = ds.shuffle(len(sequences), seed=seed, reshuffle_each_iteration=True)

    def mask(pair, draw):
        tokens, segments = pair
        inputs, labels = mask_tokens(
            tokens, _stateless_seed(seed, draw), mask_id, sorted(specials), vocab_size, mask_prob
        )
        return {"token_ids": inputs, "segment_ids": segments}, labels

    ds = tf.data.Dataset.zip((ds, _element_seeds(seed)))
    ds = ds.map(mask, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


# --------------------------------------------------------------------------
# Span corruption (T5)
# --------------------------------------------------------------------------


def span_counts(length, noise_density=0.15, mean_span_length=3.0):
    """`(num_noise_tokens, num_spans)` for a sequence of `length` ids, as in T5.

    `num_noise = round(length * noise_density)` kept in `[1, length - 1]`,
    `num_spans = max(1, round(num_noise / mean_span_length))`, at most the
    number of noise and of kept ids; `(0, 0)` when `length < 2`.
    """
    if length < 2:
        return 0, 0
    num_noise = min(max(int(np.round(length * noise_density)), 1), length - 1)
    num_spans = max(1, int(np.round(num_noise / mean_span_length)))
    return num_noise, min(num_spans, num_noise, length - num_noise)


def _random_segmentation(num_items, num_segments, rng):
    """`num_items` split at random into `num_segments` positive lengths."""
    cuts = np.sort(rng.choice(num_items - 1, num_segments - 1, replace=False) + 1)
    return np.diff(np.concatenate([[0], cuts, [num_items]]))


def random_spans_noise_mask(length, noise_density, mean_span_length, rng):
    """T5's `random_spans_noise_mask` in numpy: bool `(length,)`, True = corrupted.

    Kept and noise spans alternate, starting with a kept span and ending with
    a noise span; both sets of lengths are random segmentations.
    """
    num_noise, num_spans = span_counts(length, noise_density, mean_span_length)
    if num_spans == 0:
        return np.zeros([length], bool)
    noise_lengths = _random_segmentation(num_noise, num_spans, rng)
    kept_lengths = _random_segmentation(length - num_noise, num_spans, rng)
    interleaved = np.stack([kept_lengths, noise_lengths], axis=1).reshape(-1)
    return np.repeat(np.arange(2 * num_spans) % 2 == 1, interleaved)


def corrupt_spans(tokens, sentinel_ids, noise_density, mean_span_length, rng):
    """One T5 example from 1-D ids without padding.

    Returns:
        `(source, target)` int32 1-D arrays: `source` is `tokens` with each
        noise span replaced by the next sentinel; `target` is
        `sentinel_0 span_0 sentinel_1 span_1 ... <eos>`.
    """
    tokens = np.asarray(tokens, np.int32)
    noise = random_spans_noise_mask(len(tokens), noise_density, mean_span_length, rng)
    starts = noise & ~np.concatenate([[False], noise[:-1]])  # first id of each noise span
    span_index = np.cumsum(starts) - 1
    sentinels = np.asarray(sentinel_ids, np.int32)
    source, target = [], []
    for i, token in enumerate(tokens):
        if noise[i]:
            if starts[i]:
                source.append(sentinels[span_index[i]])
                target.append(sentinels[span_index[i]])
            target.append(token)
        else:
            source.append(token)
    target.append(EOS_ID)
    return np.asarray(source, np.int32), np.asarray(target, np.int32)


def span_corruption_dataset(
    sequences,
    batch_size,
    sentinel_ids,
    noise_density=0.15,
    mean_span_length=3.0,
    seed=0,
    max_target_len=None,
    shuffle=True,
    drop_remainder=False,
):
    """Span-corruption batches (T5), with new spans every epoch.

    Each sequence's non-pad ids (those before its first `<pad>`) are cut into
    alternating kept and noise spans by T5's rule (`random_spans_noise_mask`,
    in numpy inside `tf.numpy_function`, seeded per element, see the module
    docstring). The source replaces the i-th noise span by `sentinel_ids[i]`
    (no `<eos>` is added, so it fits in `T`); the target is
    `sentinel_0 span_0 sentinel_1 span_1 ... <eos>`, and the decoder reads
    `<bos> + target[:-1]`. Substituting each sentinel in the source by the ids
    that follow it in the target gives back the sequence.

    Args:
        sequences: int array `(N, T)` padded with `<pad>` (0).
        batch_size: int. `B`.
        sentinel_ids: list of int, e.g. the ids of `<extra_id_0>`, ...; at least
            as many as the spans of a full-length sequence.
        noise_density: float. Share of ids corrupted. Defaults to `0.15`.
        mean_span_length: float. Defaults to `3.0`.
        seed: int. Defaults to `0`.
        max_target_len: int. `S`. Defaults to `None`: the longest possible
            target for length `T`, so none is cut. Shorter targets are cut.
        shuffle: bool. Reshuffle the sequences every epoch. Defaults to `True`.
        drop_remainder: bool. Defaults to `False`.

    Returns:
        `tf.data.Dataset` of `({"src_ids": (B, T), "tgt_in_ids": (B, S)},
        tgt_out_ids (B, S))`, int32, padded with `<pad>`.
    """
    sequences, batch_size = _check_pipeline(sequences, batch_size, seed, shuffle, drop_remainder)
    noise_density = _checks.check_float_in_range(
        "noise_density", noise_density, 0, 1, low_closed=False
    )
    mean_span_length = _checks.check_float_in_range(
        "mean_span_length", mean_span_length, 1, math.inf, rule="a number of at least 1"
    )
    seq_len = sequences.shape[1]
    counts = [span_counts(n, noise_density, mean_span_length) for n in range(seq_len + 1)]
    needed = max(spans for _, spans in counts)
    sentinel_ids = _checks.check_ints("sentinel_ids", sentinel_ids)
    if len(sentinel_ids) < needed:
        raise ValueError(
            f"`sentinel_ids` must hold at least {needed} ids (the spans of a sequence of "
            f"length {seq_len}); got {len(sentinel_ids)}."
        )
    if max_target_len is None:
        max_target_len = max(noise + spans for noise, spans in counts) + 1
    max_target_len = _checks.check_positive_int("max_target_len", max_target_len)

    def corrupt(tokens, draw):
        rng = np.random.default_rng([seed & (2**63 - 1), int(draw) & (2**64 - 1)])
        length = int(np.argmax(tokens == PAD_ID)) if (tokens == PAD_ID).any() else len(tokens)
        source, target = corrupt_spans(
            tokens[:length], sentinel_ids, noise_density, mean_span_length, rng
        )
        target = target[:max_target_len]
        src_ids = np.zeros([seq_len], np.int32)
        src_ids[: len(source)] = source
        tgt_out = np.zeros([max_target_len], np.int32)
        tgt_out[: len(target)] = target
        tgt_in = np.concatenate([[BOS_ID], tgt_out[:-1]]).astype(np.int32)
        return src_ids, tgt_in, tgt_out

    def corrupt_tf(tokens, draw):
        src_ids, tgt_in, tgt_out = tf.numpy_function(
            corrupt, [tokens, draw], [tf.int32, tf.int32, tf.int32], stateful=False
        )
        src_ids = tf.ensure_shape(src_ids, [seq_len])
        tgt_in = tf.ensure_shape(tgt_in, [max_target_len])
        tgt_out = tf.ensure_shape(tgt_out, [max_target_len])
        return {"src_ids": src_ids, "tgt_in_ids": tgt_in}, tgt_out

    ds = tf.data.Dataset.from_tensor_slices(sequences)
    if shuffle and len(sequences):
        ds = ds.shuffle(len(sequences), seed=seed, reshuffle_each_iteration=True)
    ds = tf.data.Dataset.zip((ds, _element_seeds(seed)))
    ds = ds.map(corrupt_tf, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
