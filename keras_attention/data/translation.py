"""Translation tasks: sentence pairs, tokenizers and `tf.data` pipelines.

D2L's `MTFraEng` (sections "Machine Translation and the Dataset" and
"Encoder-Decoder Seq2Seq for Machine Translation") as a `TranslationTask`,
with three loaders:

- `load_dates`: the embedded default, dates in words to ISO dates (no files).
- `load_fra_eng`: D2L's English-French configuration (the first lines of
  `fra.txt`, word tokens, `min_freq=2`, `num_steps=9`).
- `load_fra_eng_full`: all 167,130 pairs with a held-out split, word or
  WordPiece tokens.

Batches are `({"src_ids": (B, T), "tgt_in_ids": (B, T)}, tgt_out_ids (B, T))`,
int32, `T = num_steps`, with D2L's truncation: the source is
`(tokens + [<eos>])[:T]` padded with `<pad>`; the target is
`[<bos>] + (tokens + [<eos>])[:T]` padded to `T + 1`, of which the decoder
reads `[:-1]` and predicts `[1:]`.
"""

import dataclasses
import itertools
import random

import tensorflow as tf

from keras_attention.data import _checks, download
from keras_attention.data import dates as dates_lib
from keras_attention.data.tokenizers import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    RESERVED_TOKENS,
    CharTokenizer,
    WordPieceTokenizer,
    WordTokenizer,
    preprocess_d2l,
)

FRA_ENG_PATH = "fra-eng/fra.txt"
FRA_ENG_URL = "http://d2l-data.s3-accelerate.amazonaws.com/fra-eng.zip"
FRA_ENG_SHA256 = "0bb85dbaa1c896844649094d7eaf2e34bee34e84fe362b26ce7e8f2e12aae104"


def _fit(ragged_ids, length):
    """`(B, None)` ragged ids -> `(B, length)` int32: cut or padded with `<pad>`."""
    return ragged_ids.to_tensor(default_value=PAD_ID, shape=[None, length])


def _column(ragged_ids, token_id):
    """A `(B, 1)` ragged column of `token_id`, batch size taken from `ragged_ids`."""
    batch = ragged_ids.nrows(out_type=tf.int64)
    return tf.RaggedTensor.from_tensor(tf.fill(tf.stack([batch, 1]), token_id))


def encode_source_ids(tokenizer, strings, num_steps):
    """`(B,)` strings -> `(B, num_steps)` int32: `(tokens + [<eos>])[:num_steps]`, padded.

    D2L's source encoding; training data and exported translators share it.
    """
    tokens = tokenizer.tokenize(strings)
    return _fit(tf.concat([tokens, _column(tokens, EOS_ID)], axis=1), num_steps)


def valid_lengths(ids, pad_id=PAD_ID):
    """D2L's `valid_len`: how many ids in each row are not `<pad>`, `(B, T)` -> `(B,)` int32."""
    return tf.reduce_sum(tf.cast(tf.not_equal(ids, pad_id), tf.int32), axis=1)


@dataclasses.dataclass
class TranslationTask:
    """Sentence pairs with their tokenizers and fixed sequence length.

    Args:
        name: str. E.g. `"dates"`, `"fra-eng"`.
        train_pairs: list of `(source, target)` str.
        val_pairs: list of `(source, target)` str.
        src_tokenizer: a tokenizer from `keras_attention.data.tokenizers`.
        tgt_tokenizer: a tokenizer from `keras_attention.data.tokenizers`.
        num_steps: int. `T`, the length of every id sequence.
    """

    name: str
    train_pairs: list = dataclasses.field(repr=False)
    val_pairs: list = dataclasses.field(repr=False)
    src_tokenizer: object
    tgt_tokenizer: object
    num_steps: int

    def __post_init__(self):
        self.num_steps = _checks.check_positive_int("num_steps", self.num_steps)
        self.train_pairs = check_pairs("train_pairs", self.train_pairs)
        self.val_pairs = check_pairs("val_pairs", self.val_pairs)

    @property
    def pad_id(self):
        return PAD_ID

    # -- encoding (TensorFlow ops; usable in tf.data and in tf.function) --

    def encode_source(self, strings):
        """`(B,)` strings -> `src_ids` `(B, T)` int32: `(tokens + [<eos>])[:T]`, padded."""
        return encode_source_ids(self.src_tokenizer, strings, self.num_steps)

    def encode_target(self, strings):
        """`(B,)` strings -> `(tgt_in_ids, tgt_out_ids)`, each `(B, T)` int32.

        The full target is `[<bos>] + (tokens + [<eos>])[:T]` padded to `T + 1`;
        `tgt_in_ids` is its `[:-1]` and `tgt_out_ids` its `[1:]`.
        """
        tokens = self.tgt_tokenizer.tokenize(strings)
        full = tf.concat([_column(tokens, BOS_ID), tokens, _column(tokens, EOS_ID)], axis=1)
        full = _fit(full, self.num_steps + 1)  # (B, T + 1)
        return full[:, :-1], full[:, 1:]

    def encode(self, src_strings, tgt_strings, include_valid_len=False):
        """A batch of string pairs -> `(features, tgt_out_ids)` as in the datasets."""
        src_ids = self.encode_source(src_strings)
        tgt_in_ids, tgt_out_ids = self.encode_target(tgt_strings)
        features = {"src_ids": src_ids, "tgt_in_ids": tgt_in_ids}
        if include_valid_len:
            features["src_valid_len"] = valid_lengths(src_ids)
        return features, tgt_out_ids

    def decode_target(self, ids):
        """`(B, T)` target ids -> `(B,)` strings (stops at the first `<eos>`)."""
        return self.tgt_tokenizer.detokenize(ids)

    # -- datasets -----------------------------------------------------------

    def _dataset(self, pairs, batch_size, shuffle, seed, drop_remainder, include_valid_len):
        batch_size = _checks.check_positive_int("batch_size", batch_size)
        _checks.check_bool("shuffle", shuffle)
        seed = None if seed is None else _checks.check_int("seed", seed)
        _checks.check_bool("drop_remainder", drop_remainder)
        _checks.check_bool("include_valid_len", include_valid_len)
        _checks.check_some_batch(f"{len(pairs)} pairs", len(pairs), batch_size, drop_remainder)
        sources = tf.constant([s for s, _ in pairs], dtype=tf.string, shape=[len(pairs)])
        targets = tf.constant([t for _, t in pairs], dtype=tf.string, shape=[len(pairs)])
        ds = tf.data.Dataset.from_tensor_slices((sources, targets))
        if shuffle and pairs:
            ds = ds.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        # Full batches keep a static batch size through the encoding (XLA
        # needs it to compile the Bahdanau decoder loop's gradient).
        batch = batch_size if drop_remainder else None

        def encode(src, tgt):
            features, labels = self.encode(src, tgt, include_valid_len)
            return tf.nest.map_structure(
                lambda t: tf.ensure_shape(t, [batch] + t.shape[1:].as_list()), (features, labels)
            )

        ds = ds.map(encode, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)

    def train_dataset(
        self, batch_size, shuffle=True, seed=0, drop_remainder=False, include_valid_len=False
    ):
        """Training batches, reshuffled every epoch.

        Args:
            batch_size: int.
            shuffle: bool. Shuffle all pairs (the same order for the same `seed`).
                Defaults to `True`.
            seed: int. Shuffle seed. Defaults to `0`.
            drop_remainder: bool. Drop the last, smaller batch. Defaults to `False`.
            include_valid_len: bool. Add `"src_valid_len"` `(B,)` to the
                features. Defaults to `False`.

        Returns:
            `tf.data.Dataset` of `({"src_ids", "tgt_in_ids"}, tgt_out_ids)`,
            each `(B, num_steps)` int32.
        """
        return self._dataset(
            self.train_pairs, batch_size, shuffle, seed, drop_remainder, include_valid_len
        )

    def bucketed_train_dataset(self, batch_size, boundaries, seed=0):
        """Full training batches from length buckets: less padding, fewer wasted FLOPs.

        A pair goes to the first bucket whose length (a boundary, or
        `num_steps` for the last) holds its source and target (`<eos>`
        included); each batch comes from one bucket and is padded to that
        bucket's length, so XLA compiles one program per bucket. An epoch
        holds every full batch of every bucket once, interleaved in a seeded
        order that changes every epoch.

        Args:
            batch_size: int.
            boundaries: increasing ints below `num_steps`, e.g. `(12,)`.
            seed: int. Shuffle and interleaving seed.

        Returns:
            `tf.data.Dataset` of `({"src_ids", "tgt_in_ids"}, tgt_out_ids)`,
            each `(batch_size, bucket length)` int32.
        """
        batch_size = _checks.check_positive_int("batch_size", batch_size)
        seed = _checks.check_int("seed", seed)
        boundaries = list(boundaries)
        if boundaries != sorted(set(boundaries)) or not all(
            0 < b < self.num_steps for b in boundaries
        ):
            raise ValueError(
                "`boundaries` must be increasing lengths between 0 and num_steps="
                f"{self.num_steps}; got boundaries={boundaries!r}."
            )
        lengths = [self.num_steps] + boundaries[::-1]
        sources = tf.constant([src for src, _ in self.train_pairs])
        targets = tf.constant([tgt for _, tgt in self.train_pairs])
        src_len = self.src_tokenizer.tokenize(sources).row_lengths().numpy() + 1
        tgt_len = self.tgt_tokenizer.tokenize(targets).row_lengths().numpy() + 1
        needed = [max(a, b) for a, b in zip(src_len, tgt_len)]
        buckets = [[] for _ in lengths]
        for pair, n in zip(self.train_pairs, needed):
            # The shortest bucket that holds it (the last one holds the rest, cut).
            index = next(
                (i for i, length in enumerate(lengths[::-1]) if n <= length), len(lengths) - 1
            )
            buckets[len(lengths) - 1 - index].append(pair)
        datasets, choices = [], []
        for length, pairs in zip(lengths, buckets):
            if len(pairs) < batch_size:
                continue
            task = dataclasses.replace(self, train_pairs=pairs, num_steps=length)
            choices += [len(datasets)] * (len(pairs) // batch_size)
            datasets.append(task.train_dataset(batch_size, seed=seed, drop_remainder=True))
        if not datasets:
            raise ValueError(
                f"no length bucket holds a full batch of batch_size={batch_size} training pairs "
                f"(bucket sizes {[len(b) for b in buckets]}); lower `batch_size` or change "
                f"`boundaries`."
            )
        # Every full batch of every bucket once per epoch, in a seeded order
        # that changes from epoch to epoch.
        order = tf.data.Dataset.from_tensor_slices(tf.constant(choices, tf.int64)).shuffle(
            len(choices), seed=seed, reshuffle_each_iteration=True
        )
        return tf.data.Dataset.choose_from_datasets(datasets, order).prefetch(tf.data.AUTOTUNE)

    def val_dataset(self, batch_size, include_valid_len=False):
        """Validation batches, in order; as `train_dataset`."""
        return self._dataset(self.val_pairs, batch_size, False, None, False, include_valid_len)


# --------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------


def load_dates(num_train=20000, num_val=1000, num_steps=None, seed=0, forms=None):
    """The embedded default task: dates in words to ISO dates.

    Args:
        num_train: int. Training pairs. Defaults to `20000`.
        num_val: int. Validation pairs (no source shared with training), at
            least 1. Defaults to `1000`.
        num_steps: int. Sequence length `T`. Defaults to `None`: the longest
            source plus `<eos>` (ISO targets need 11).
        seed: int. Seed of `generate_dates`. Defaults to `0`.
        forms: list[str]. Surface forms from `dates.DATE_FORMS`. Defaults to all.

    Returns:
        A `TranslationTask` whose source tokenizer is a `WordTokenizer` over
        every word a date can contain and whose target tokenizer is a
        `CharTokenizer` over `-0123456789`, so `decode_target` gives
        `"1994-03-23"`.
    """
    num_train = _checks.check_positive_int("num_train", num_train)
    num_val = _checks.check_positive_int("num_val", num_val)
    num_steps = _checks.check_positive_int("num_steps", num_steps, allow_none=True)
    pairs = dates_lib.generate_dates(num_train + num_val, seed=seed, forms=forms)
    src_tokenizer = WordTokenizer(list(RESERVED_TOKENS) + dates_lib.source_words())
    tgt_tokenizer = CharTokenizer(list(RESERVED_TOKENS) + list(dates_lib.TARGET_CHARS))
    if num_steps is None:
        num_steps = max(
            max((len(src.split(" ")) + 1 for src, _ in pairs), default=1),
            max((len(tgt) + 1 for _, tgt in pairs), default=1),
        )
    return TranslationTask(
        name="dates",
        train_pairs=pairs[:num_train],
        val_pairs=pairs[num_train:],
        src_tokenizer=src_tokenizer,
        tgt_tokenizer=tgt_tokenizer,
        num_steps=num_steps,
    )


def fra_eng_path(data_dir=None):
    """Path of `fra-eng/fra.txt`, found or downloaded (see `find_or_download`)."""
    return download.find_or_download(
        FRA_ENG_PATH, url=FRA_ENG_URL, sha256=FRA_ENG_SHA256, extract="zip", data_dir=data_dir
    )


def check_pairs(name, pairs):
    """`pairs` as a list, if it is a list or tuple of `(source, target)` str pairs."""
    if isinstance(pairs, (list, tuple)) and all(
        isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(x, str) for x in p)
        for p in pairs
    ):
        return [tuple(p) for p in pairs]
    raise ValueError(
        f"`{name}` must be a list of (source, target) str pairs; got {name}={pairs!r:.80}."
    )


def _read_pairs(path, max_lines=None):
    """The `(english, french)` pairs of the first `max_lines` lines of `path`."""
    pairs = []
    with download.reading(path, "UTF-8 text"), open(path, encoding="utf-8") as f:
        for number, line in enumerate(itertools.islice(f, max_lines), start=1):
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 2:
                fields = f"{len(parts)} field{'s' if len(parts) != 1 else ''}"
                raise ValueError(
                    f"{path}: line {number} must be English<TAB>French; got {fields}: "
                    f"{line.rstrip()[:80]!r}. The file is damaged or another release; "
                    f"delete or replace it."
                )
            pairs.append((parts[0], parts[1]))
    return pairs


def read_fra_eng(data_dir=None, max_lines=None):
    """English-French pairs from `fra.txt`, in file order.

    Every line must hold exactly one tab (D2L's file does; D2L's `_tokenize`
    would skip a line that does not, here it is an error naming the line).

    Args:
        data_dir: str or path. Searched first for `fra-eng/fra.txt`.
        max_lines: int. Read only this many lines. Defaults to `None` (all).

    Returns:
        list of `(english, french)` raw strings.

    Raises:
        ValueError: the file's sha256 is not D2L's (see `find_or_download`),
            it is not UTF-8, or a line is not `English<TAB>French`.
    """
    max_lines = _checks.check_positive_int("max_lines", max_lines, allow_none=True)
    return _read_pairs(fra_eng_path(data_dir), max_lines)


def load_fra_eng(num_train=512, num_val=128, num_steps=9, min_freq=2, data_dir=None):
    """D2L's English-French task (`MTFraEng`), on the first lines of `fra.txt`.

    Reproduces D2L exactly: its `_tokenize` stops *after* line index
    `num_train + num_val`, so it reads `num_train + num_val + 1` lines; the
    first `num_train` pairs train and the rest (`num_val + 1` of them)
    validate. The vocabularies count, as D2L's do, each sentence's first
    `num_steps` tokens across all those lines, keeping those seen `min_freq`
    times. With the defaults they hold 195 source tokens (D2L's 194 plus
    `<bos>`, which D2L's source vocabulary lacks) and 214 target tokens.

    Args:
        num_train: int. Defaults to `512`.
        num_val: int. At least 0 (D2L's split still validates on one pair).
            Defaults to `128`.
        num_steps: int. Defaults to `9`.
        min_freq: int. Defaults to `2`.
        data_dir: str or path. Searched first for `fra-eng/fra.txt`.

    Returns:
        A `TranslationTask` with `WordTokenizer`s (D2L preprocessing).

    Raises:
        ValueError: an argument is bad, the file is not D2L's (see
            `read_fra_eng`), or it holds fewer than `num_train + num_val + 1`
            pairs.
    """
    num_train = _checks.check_positive_int("num_train", num_train)
    num_val = _checks.check_non_negative_int("num_val", num_val)
    num_steps = _checks.check_positive_int("num_steps", num_steps)
    min_freq = _checks.check_positive_int("min_freq", min_freq)
    path = fra_eng_path(data_dir)
    needed = num_train + num_val + 1
    pairs = _read_pairs(path, max_lines=needed)
    if len(pairs) < needed:
        raise ValueError(
            f"{path} holds {len(pairs)} sentence pairs; load_fra_eng(num_train={num_train}, "
            f"num_val={num_val}) needs num_train + num_val + 1 = {needed}. Lower `num_train` "
            f"or `num_val`."
        )
    src_tokenizer = WordTokenizer.build([s for s, _ in pairs], min_freq=min_freq, max_len=num_steps)
    tgt_tokenizer = WordTokenizer.build([t for _, t in pairs], min_freq=min_freq, max_len=num_steps)
    return TranslationTask(
        name="fra-eng",
        train_pairs=pairs[:num_train],
        val_pairs=pairs[num_train:],
        src_tokenizer=src_tokenizer,
        tgt_tokenizer=tgt_tokenizer,
        num_steps=num_steps,
    )


def split_by_source(pairs, num_val, seed=0):
    """A deterministic held-out split that never shares a source sentence.

    Pairs are grouped by their preprocessed source; groups are visited in a
    `random.Random(seed)` order and go to validation while they fit in
    `num_val`. Both parts keep the file order.

    Returns:
        `(train_pairs, val_pairs)` with `len(val_pairs) == num_val`.

    Raises:
        ValueError: `num_val` is not below `len(pairs)`, or no choice of
            whole groups holds exactly `num_val` pairs.
    """
    pairs = check_pairs("pairs", pairs)
    num_val = _checks.check_non_negative_int("num_val", num_val)
    seed = _checks.check_int("seed", seed)
    if pairs and num_val >= len(pairs):
        raise ValueError(
            f"`num_val` must be below the number of pairs ({len(pairs)}), so that some pairs "
            f"train; got num_val={num_val}."
        )
    groups = {}
    for index, (src, _) in enumerate(pairs):
        groups.setdefault(preprocess_d2l(src), []).append(index)
    order = list(groups.values())
    random.Random(seed).shuffle(order)
    val_indices = set()
    for group in order:
        if len(val_indices) >= num_val:
            break
        if len(val_indices) + len(group) <= num_val:
            val_indices.update(group)
    if len(val_indices) < num_val:
        raise ValueError(
            f"could hold out only {len(val_indices)} of num_val={num_val} pairs without sharing "
            f"a source sentence with training; lower `num_val`."
        )
    train = [p for i, p in enumerate(pairs) if i not in val_indices]
    val = [p for i, p in enumerate(pairs) if i in val_indices]
    return train, val


def load_fra_eng_full(
    num_val=5000, num_steps=32, tokenizer="word", vocab_size=8000, min_freq=2, seed=0, data_dir=None
):
    """All English-French pairs, with a held-out validation split.

    Args:
        num_val: int. Validation pairs; their English sentences never occur in
            training (see `split_by_source`). Defaults to `5000`.
        num_steps: int. Sequence length `T`; 32 keeps all but a few dozen of
            the 167,130 pairs whole in word tokens. Defaults to `32`.
        tokenizer: str. `"word"` (D2L preprocessing, `min_freq`) or
            `"wordpiece"` (subwords, `vocab_size` per language; learning them
            takes about a minute). Defaults to `"word"`.
        vocab_size: int. WordPiece vocabulary size. Defaults to `8000`.
        min_freq: int. Word vocabulary threshold. Defaults to `2`.
        seed: int. Seed of the split. Defaults to `0`.
        data_dir: str or path. Searched first for `fra-eng/fra.txt`.

    Returns:
        A `TranslationTask`; vocabularies come from the training pairs only.
    """
    num_val = _checks.check_positive_int("num_val", num_val)
    num_steps = _checks.check_positive_int("num_steps", num_steps)
    _checks.check_choice("tokenizer", tokenizer, ("word", "wordpiece"))
    vocab_size = _checks.check_positive_int("vocab_size", vocab_size)
    min_freq = _checks.check_positive_int("min_freq", min_freq)
    seed = _checks.check_int("seed", seed)
    path = fra_eng_path(data_dir)
    pairs = _read_pairs(path)
    if len(pairs) <= num_val:
        raise ValueError(
            f"{path} holds {len(pairs)} sentence pairs; load_fra_eng_full(num_val={num_val}) "
            f"needs more than num_val (the held-out pairs and some to train on). Lower `num_val`."
        )
    train, val = split_by_source(pairs, num_val, seed=seed)
    sources, targets = [s for s, _ in train], [t for _, t in train]
    if tokenizer == "word":
        src_tokenizer = WordTokenizer.build(sources, min_freq=min_freq)
        tgt_tokenizer = WordTokenizer.build(targets, min_freq=min_freq)
    else:
        src_tokenizer = WordPieceTokenizer.build(sources, vocab_size=vocab_size)
        tgt_tokenizer = WordPieceTokenizer.build(targets, vocab_size=vocab_size)
    return TranslationTask(
        name=f"fra-eng-full-{tokenizer}",
        train_pairs=train,
        val_pairs=val,
        src_tokenizer=src_tokenizer,
        tgt_tokenizer=tgt_tokenizer,
        num_steps=num_steps,
    )
