"""Word, character and WordPiece tokenizers made of TensorFlow ops.

D2L's `Vocab` (section "Text Sequence Data") and `MTFraEng._preprocess` /
`_tokenize` (section "Machine Translation and the Dataset"), rewritten as
`tf.lookup` tables, `tf.strings` and tensorflow-text ops, so the same
tokenizer runs in Python, inside a `tf.data` pipeline and inside an exported
SavedModel. Every tokenizer is a `tf.Module`: attached to a module that is
saved, its lookup tables travel with it.

All three share one interface:

- `tokenize(strings)`: `(B,)` strings -> `tf.RaggedTensor` of int32 ids,
  `(B, None)`, without `<bos>`/`<eos>`; unknown tokens become `unk_id`.
- `detokenize(ids)`: `(B, T)` ids, dense or ragged -> `(B,)` strings; drops
  `<pad>` and `<bos>`, and stops at the first `<eos>`.
- `to_tokens(ids)`: Python list of token strings, for heatmap labels.
- `save(path)` / `load(path)`, and `build(texts, ...)` to learn a vocabulary.

The reserved tokens always take the first four ids: `<pad>`=0, `<bos>`=1,
`<eos>`=2, `<unk>`=3. (D2L sorts its vocabulary alphabetically, so its ids
differ; the token sets are the same.)
"""

import collections
import inspect
import json
import pathlib
import re

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from keras_attention import _io
from keras_attention.data import _checks, download

RESERVED_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
VOCAB_FILE = "vocab.txt"
CONFIG_FILE = "tokenizer.json"
_PUNCTUATION = ",.!?"


# --------------------------------------------------------------------------
# D2L's preprocessing, in Python and as TensorFlow ops
# --------------------------------------------------------------------------


def preprocess_d2l(text):
    """D2L's `MTFraEng._preprocess`, character for character.

    Replaces the non-breaking spaces U+202F and U+00A0 with spaces, lower-cases,
    and inserts a space before each of `, . ! ?` that does not follow a space.

    Args:
        text: str.

    Returns:
        str.

    Example:
        >>> preprocess_d2l("Hi.\u202fÇa va?!")
        'hi . ça va ? !'
    """
    text = _checks.check_text("text", text).replace("\u202f", " ").replace("\xa0", " ")
    lowered = text.lower()
    return "".join(
        " " + char if i > 0 and char in _PUNCTUATION and text[i - 1] != " " else char
        for i, char in enumerate(lowered)
    )


def is_special_token(token):
    """Whether `token` looks like `<mask>`: a name in angle brackets."""
    return len(token) > 2 and token.startswith("<") and token.endswith(">")


def split_words(text):
    """D2L's word split: on single spaces, empty pieces dropped."""
    return [token for token in text.split(" ") if token]


def valid_utf8(strings):
    """Replaces invalid UTF-8 in a string tensor with U+FFFD."""
    return tf.strings.unicode_transcode(
        strings, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
    )


def preprocess_d2l_tf(strings):
    """`preprocess_d2l` as TensorFlow ops, on a string tensor of any shape.

    The output strings may hold extra spaces where D2L's hold one (a space is
    inserted before every `, . ! ?`), so they split into exactly D2L's tokens
    with `split_words_tf`; invalid UTF-8 is replaced with U+FFFD first.
    """
    strings = valid_utf8(strings)
    strings = tf.strings.regex_replace(strings, "[\u202f\u00a0]", " ")
    strings = tf.strings.lower(strings, encoding="utf-8")
    return tf.strings.regex_replace(strings, r"([,.!?])", r" \1")


def split_words_tf(strings):
    """Splits `(B,)` strings on spaces into `(B, None)` ragged words, empties dropped."""
    words = tf.strings.split(strings, sep=" ")
    return tf.ragged.boolean_mask(words, tf.strings.length(words) > 0)


# --------------------------------------------------------------------------
# Shared machinery
# --------------------------------------------------------------------------


def _python_words(text, preprocess):
    return split_words(preprocess_d2l(text) if preprocess == "d2l" else text)


def _is_tokenizer_dir(path):
    """Whether `path` is a folder a tokenizer's `save` wrote (it holds the config file)."""
    return (pathlib.Path(path) / CONFIG_FILE).is_file()


def _count_words(texts, preprocess, max_len=None):
    """Word counts of `texts` (an iterable of str), each text's first `max_len` words."""
    counter = collections.Counter()
    for text in _checks.iter_strings("texts", texts):
        counter.update(_python_words(text, preprocess)[:max_len])
    return counter


def _sorted_by_count(counter, min_freq):
    """Tokens with count >= `min_freq`, most frequent first, ties by token."""
    items = [(t, c) for t, c in counter.items() if c >= min_freq and t not in RESERVED_TOKENS]
    return [t for t, _ in sorted(items, key=lambda tc: (-tc[1], tc[0]))]


class _Tokenizer(tf.Module):
    """Base class: vocabulary tables, detokenization, saving."""

    kind = None
    separator = " "

    def __init__(self, vocab, name=None):
        super().__init__(name=name)
        vocab = _checks.check_strings("vocab", vocab)
        if tuple(vocab[:4]) != RESERVED_TOKENS:
            raise ValueError(
                f"`vocab` must start with the reserved tokens {list(RESERVED_TOKENS)}; "
                f"got vocab[:4]={vocab[:4]}."
            )
        seen = set()
        for token in vocab:
            if not token or "\n" in token or "\r" in token:
                raise ValueError(
                    f"`vocab` tokens must be non-empty and hold no line breaks; got {token!r}."
                )
            if token in seen:
                raise ValueError(f"`vocab` must not repeat tokens; got {token!r} twice.")
            seen.add(token)
        # Kept as one string so tf.Module's tracking leaves it alone.
        self._vocab_text = "\n".join(vocab)
        keys = tf.constant(vocab, dtype=tf.string)
        ids = tf.range(len(vocab), dtype=tf.int64)
        self.token_to_id = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(keys, ids), default_value=UNK_ID
        )
        self.id_to_token = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(ids, keys), default_value=""
        )

    # -- attributes ---------------------------------------------------------

    @property
    def vocab(self):
        """list[str]. Token strings by id."""
        return self._vocab_text.split("\n")

    @property
    def vocab_size(self):
        return self._vocab_text.count("\n") + 1

    pad_id = PAD_ID
    bos_id = BOS_ID
    eos_id = EOS_ID
    unk_id = UNK_ID

    def __len__(self):
        return self.vocab_size

    def __repr__(self):
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"

    # -- ops ----------------------------------------------------------------

    def _lookup(self, tokens):
        """Ragged token strings -> ragged int32 ids."""
        return tf.cast(tf.ragged.map_flat_values(self.token_to_id.lookup, tokens), tf.int32)

    def _join(self, tokens):
        """`(B, None)` ragged token strings -> `(B,)` strings."""
        return tf.strings.reduce_join(tokens, axis=1, separator=self.separator)

    @tf.function(reduce_retracing=True)
    def detokenize(self, ids):
        """Ids back to text.

        Args:
            ids: int tensor `(B, T)` or ragged `(B, None)`.

        Returns:
            `(B,)` strings. `<pad>` and `<bos>` are dropped, and so is
            everything from the first `<eos>` on.
        """
        if isinstance(ids, tf.RaggedTensor):
            ids = ids.to_tensor(default_value=PAD_ID)
        ids = tf.cast(ids, tf.int64)  # (B, T)
        before_eos = tf.equal(tf.cumsum(tf.cast(tf.equal(ids, EOS_ID), tf.int32), axis=1), 0)
        keep = before_eos & tf.not_equal(ids, PAD_ID) & tf.not_equal(ids, BOS_ID)
        tokens = tf.ragged.boolean_mask(self.id_to_token.lookup(ids), keep)  # (B, None)
        return self._join(tokens)

    def to_tokens(self, ids):
        """Ids to token strings in Python, e.g. for heatmap labels.

        Args:
            ids: int, 1-D or 2-D ids (list, numpy, tensor or ragged tensor).

        Returns:
            str, list[str] or list[list[str]], following the input's rank.
            Every id is kept, pads included; ids out of range give `<unk>`.
        """
        if isinstance(ids, tf.RaggedTensor):
            ids = ids.to_list()
        elif isinstance(ids, tf.Tensor):
            ids = ids.numpy().tolist()
        elif isinstance(ids, np.ndarray):
            ids = ids.tolist()
        vocab = self.vocab

        def one(i):
            i = int(i)
            return vocab[i] if 0 <= i < len(vocab) else RESERVED_TOKENS[UNK_ID]

        def convert(x):
            if isinstance(x, (list, tuple)):
                return [convert(item) for item in x]
            return one(x)

        return convert(ids)

    # -- files --------------------------------------------------------------

    def _config(self):
        return {"kind": self.kind, "format_version": 1}

    def save(self, path):
        """Writes `vocab.txt` (one token a line) and `tokenizer.json` into folder `path`.

        The whole folder is written under a temporary name and then put at
        `path` in one step (`keras_attention._io.replace_dir`): a reader, or a
        process killed while saving, sees the old tokenizer or the new one,
        never a mix. An existing `path` is replaced only when it is empty or
        a previous tokenizer folder (one holding `tokenizer.json`).

        Returns:
            `path` as a `pathlib.Path`.

        Raises:
            FileExistsError: `path` is a file or a folder holding other things.
        """

        def build(folder):
            _io.write_text(folder / VOCAB_FILE, self._vocab_text + "\n")
            _io.write_json(folder / CONFIG_FILE, self._config())

        return _io.replace_dir(
            path, build, is_previous=_is_tokenizer_dir, what="a tokenizer directory"
        )

    @classmethod
    def load(cls, path):
        """Reads a tokenizer written by `save`; the kind is read from the folder.

        Raises:
            FileNotFoundError: `path`, its `tokenizer.json` or its `vocab.txt`
                does not exist.
            ValueError: `path` is a file, the config is not valid JSON or
                holds unknown settings, the vocabulary is not UTF-8 or not a
                valid vocabulary, or the folder holds another kind of tokenizer
                than `cls`. Every message names the path.
        """
        path = pathlib.Path(path)
        config_path, vocab_path = path / CONFIG_FILE, path / VOCAB_FILE
        if not path.exists():
            raise FileNotFoundError(f"No tokenizer at {path}: it does not exist.")
        if not path.is_dir():
            raise ValueError(
                f"{path} is a file, not a tokenizer directory (a folder holding {CONFIG_FILE} "
                f"and {VOCAB_FILE})."
            )
        for file in (config_path, vocab_path):
            if not file.is_file():
                raise FileNotFoundError(
                    f"{path} holds no {file.name}: not a directory written by a tokenizer's save()."
                )
        with download.reading(config_path, "UTF-8 JSON"):
            text = config_path.read_text(encoding="utf-8")
        try:
            config = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(
                f"{config_path} is not valid JSON ({err}); save the tokenizer again."
            ) from err
        if not isinstance(config, dict):
            raise ValueError(f"{config_path} must hold a JSON object; got {type(config).__name__}.")
        kinds = {k.kind: k for k in (WordTokenizer, CharTokenizer, WordPieceTokenizer)}
        kind = config.pop("kind", None)
        version = config.pop("format_version", None)
        if kind not in kinds:
            raise ValueError(f"Unknown tokenizer kind {kind!r} in {config_path}.")
        if version != 1:
            raise ValueError(f"{config_path} has format_version {version!r}; this version reads 1.")
        if cls is not _Tokenizer and kinds[kind] is not cls:
            raise ValueError(
                f"{path} holds a {kind!r} tokenizer, not a {cls.kind!r} one; "
                f"use keras_attention.data.load_tokenizer."
            )
        settings = set(inspect.signature(kinds[kind]).parameters) - {"vocab", "name"}
        if set(config) - settings:
            raise ValueError(
                f"{config_path}: unexpected settings {sorted(set(config) - settings)} for a "
                f"{kind!r} tokenizer."
            )
        with (
            download.reading(vocab_path, "UTF-8 text"),
            open(vocab_path, encoding="utf-8", newline="") as f,
        ):
            vocab = f.read().split("\n")
        if vocab and vocab[-1] == "":
            vocab = vocab[:-1]
        try:
            return kinds[kind](vocab, **config)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err


def load_tokenizer(path):
    """Loads any tokenizer saved with `save` (see `_Tokenizer.load` for the errors)."""
    return _Tokenizer.load(path)


# --------------------------------------------------------------------------
# The three tokenizers
# --------------------------------------------------------------------------


class WordTokenizer(_Tokenizer):
    """Word tokens split on spaces, after D2L's preprocessing.

    Args:
        vocab: list[str]. Tokens by id, starting with `<pad> <bos> <eos> <unk>`.
        preprocess: str. `"d2l"` applies D2L's `_preprocess` (lower case, a
            space before `, . ! ?`, non-breaking spaces to spaces) before
            splitting; `"none"` only splits. Defaults to `"d2l"`.

    Example:
        >>> tok = WordTokenizer.build(["Go.", "Go now!"], min_freq=1)
        >>> tok.vocab
        ['<pad>', '<bos>', '<eos>', '<unk>', 'go', '!', '.', 'now']
        >>> tok.tokenize(["Go now?"])  # "?" is unknown -> 3
        <tf.RaggedTensor [[4, 7, 3]]>
    """

    kind = "word"
    separator = " "

    def __init__(self, vocab, preprocess="d2l", name=None):
        _checks.check_choice("preprocess", preprocess, ("d2l", "none"))
        super().__init__(vocab, name=name)
        self.preprocess = preprocess

    def _config(self):
        return {**super()._config(), "preprocess": self.preprocess}

    def python_tokens(self, text):
        """The token strings `tokenize` produces for one Python string."""
        return _python_words(text, self.preprocess)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def tokenize(self, strings):
        """`(B,)` strings -> `(B, None)` ragged int32 ids."""
        if self.preprocess == "d2l":
            strings = preprocess_d2l_tf(strings)
        else:
            strings = valid_utf8(strings)
        return self._lookup(split_words_tf(strings))

    @classmethod
    def build(cls, texts, min_freq=2, preprocess="d2l", max_len=None, max_tokens=None):
        """Learns a vocabulary from Python strings.

        Args:
            texts: iterable of str.
            min_freq: int. Keep tokens seen at least this often. Defaults to `2`
                (D2L's `MTFraEng`).
            preprocess: str. As in the constructor. Defaults to `"d2l"`.
            max_len: int. Count only each text's first `max_len` tokens, as D2L
                does by building its vocabulary from truncated sequences.
                Defaults to `None` (all).
            max_tokens: int. Keep at most this many tokens besides the reserved
                ones. Defaults to `None` (no limit).

        Returns:
            A `WordTokenizer`; tokens sorted by count (descending), then text.
        """
        _checks.check_choice("preprocess", preprocess, ("d2l", "none"))
        min_freq = _checks.check_positive_int("min_freq", min_freq)
        max_len = _checks.check_positive_int("max_len", max_len, allow_none=True)
        max_tokens = _checks.check_non_negative_int("max_tokens", max_tokens, allow_none=True)
        counter = _count_words(texts, preprocess, max_len)
        tokens = _sorted_by_count(counter, min_freq)[:max_tokens]
        return cls(list(RESERVED_TOKENS) + tokens, preprocess=preprocess)


CHAR_NORMALIZATIONS = ("none", "time_machine")


class CharTokenizer(_Tokenizer):
    """One token per Unicode character.

    Args:
        vocab: list[str]. Single characters by id, after `<pad> <bos> <eos> <unk>`.
        normalize: str. `"none"` (characters as they are) or
            `"time_machine"` (D2L's `TimeMachine._preprocess`: every run of
            non-letters becomes one space, then lower case), applied before
            tokenizing, in Python and in TensorFlow alike, so that a model
            trained on normalised text sees prompts normalised the same way
            (also in an export). Defaults to `"none"`.

    Example:
        >>> tok = CharTokenizer(["<pad>", "<bos>", "<eos>", "<unk>"] + list("-0123456789"))
        >>> tok.detokenize(tok.tokenize(["1994-03-23"]))
        <tf.Tensor: shape=(1,), dtype=string, numpy=array([b'1994-03-23'], dtype=object)>
    """

    kind = "char"
    separator = ""

    def __init__(self, vocab, normalize="none", name=None):
        self.normalize = _checks.check_choice("normalize", normalize, CHAR_NORMALIZATIONS)
        super().__init__(vocab, name=name)
        for token in list(vocab)[4:]:
            if len(token) != 1 and not is_special_token(token):
                raise ValueError(
                    f"`vocab` of a CharTokenizer must hold single characters after the "
                    f"reserved tokens (or special tokens like `<mask>`, which text never "
                    f"tokenizes to); got {token!r}."
                )

    def _config(self):
        return {**super()._config(), "normalize": self.normalize}

    def python_tokens(self, text):
        if self.normalize == "time_machine":
            text = re.sub("[^A-Za-z]+", " ", text).lower()
        return list(text)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def tokenize(self, strings):
        """`(B,)` strings -> `(B, None)` ragged int32 ids, one per character."""
        if self.normalize == "time_machine":
            strings = tf.strings.lower(
                tf.strings.regex_replace(valid_utf8(strings), "[^A-Za-z]+", " ")
            )
        chars = tf.strings.unicode_split(
            strings, "UTF-8", errors="replace", replacement_char=0xFFFD
        )
        return self._lookup(chars)

    @classmethod
    def build(cls, texts, min_freq=1, normalize="none"):
        """Learns the character set of `texts` (line breaks left out), after `normalize`."""
        min_freq = _checks.check_positive_int("min_freq", min_freq)
        counter = collections.Counter()
        normalized = cls(list(RESERVED_TOKENS), normalize=normalize)
        for text in _checks.iter_strings("texts", texts):
            counter.update(normalized.python_tokens(text))
        counter.pop("\n", None)
        counter.pop("\r", None)
        return cls(list(RESERVED_TOKENS) + _sorted_by_count(counter, min_freq), normalize=normalize)


class WordPieceTokenizer(_Tokenizer):
    """WordPiece subwords (`##` marks a word's continuation), via tensorflow-text.

    Text is preprocessed and split into words as in `WordTokenizer` (D2L's
    preprocessing), then each word is split greedily into the longest pieces
    of the vocabulary by `tensorflow_text.WordpieceTokenizer`.

    Args:
        vocab: list[str]. Pieces by id, after `<pad> <bos> <eos> <unk>`.

    Example:
        >>> tok = WordPieceTokenizer.build(["i am calm .", "you are calm ."] * 50, vocab_size=40)
        >>> tok.detokenize(tok.tokenize(["Calm."]))
        <tf.Tensor: shape=(1,), dtype=string, numpy=array([b'calm .'], dtype=object)>
    """

    kind = "wordpiece"
    separator = " "
    suffix_indicator = "##"
    max_bytes_per_word = 100

    def __init__(self, vocab, name=None):
        import tensorflow_text

        super().__init__(vocab, name=name)
        self.wordpiece = tensorflow_text.WordpieceTokenizer(
            self.token_to_id,
            suffix_indicator=self.suffix_indicator,
            max_bytes_per_word=self.max_bytes_per_word,
            token_out_type=tf.int64,
            unknown_token=RESERVED_TOKENS[UNK_ID],
        )

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def tokenize(self, strings):
        """`(B,)` strings -> `(B, None)` ragged int32 piece ids."""
        words = split_words_tf(preprocess_d2l_tf(strings))  # (B, W)
        pieces = self.wordpiece.tokenize(words)  # (B, W, P)
        return tf.cast(pieces.merge_dims(1, 2), tf.int32)

    def _join(self, tokens):
        joined = tf.strings.reduce_join(tokens, axis=1, separator=" ")
        return tf.strings.regex_replace(joined, " " + self.suffix_indicator, "")

    @classmethod
    def build(cls, texts, vocab_size=8000, **learn_params):
        """Learns a WordPiece vocabulary of at most `vocab_size` pieces.

        Words come from D2L's preprocessing and split; the pieces from
        `tensorflow_text.tools.wordpiece_vocab`'s learner (the one behind
        `bert_vocab_from_dataset`), given the same word counts.

        Args:
            texts: iterable of str.
            vocab_size: int. Target size, reserved tokens included. Defaults to `8000`.
            **learn_params: passed to `learn_wordpiece_vocab`.
        """
        vocab_size = _checks.check_positive_int("vocab_size", vocab_size)
        if vocab_size <= len(RESERVED_TOKENS):
            raise ValueError(f"`vocab_size` must be larger than 4; got vocab_size={vocab_size}.")
        counter = _count_words(texts, "d2l")
        if not counter:
            raise ValueError("`texts` hold no words to learn a WordPiece vocabulary from.")
        vocab = learn_wordpiece_vocab(counter, vocab_size, **learn_params)
        return cls(vocab)


def learn_wordpiece_vocab(word_counts, vocab_size, slack_ratio=0.05, **learn_params):
    """A WordPiece vocabulary of at most `vocab_size` tokens, reserved ones first.

    Runs tensorflow-text's learner (`wordpiece_tokenizer_learner_lib.learn`,
    the one `bert_vocab_from_dataset` uses) at single count thresholds, and
    searches the threshold itself: bracketed by the word counts and bisected
    geometrically, it needs about a third of the learner's own passes, which
    start from the largest count.

    Args:
        word_counts: dict word -> count.
        vocab_size: int. Largest size allowed, reserved tokens included.
        slack_ratio: float. Stop once the size is within
            `[vocab_size * (1 - slack_ratio), vocab_size]`. Defaults to `0.05`.
        **learn_params: passed to `learn` (`num_iterations`, `max_token_length`, ...).

    Returns:
        list[str].
    """
    from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib

    items = sorted(word_counts.items())
    counts = sorted(word_counts.values(), reverse=True)
    sizes = {}
    # A bar where learning takes more than a few seconds (a large corpus).
    with tqdm(
        desc=f"learning a WordPiece vocabulary from {len(items)} words",
        unit=" passes",
        disable=len(items) < 20000,
        leave=False,
    ) as progress:

        def at(thresh):
            if thresh not in sizes:
                progress.update(1)
                vocab = wordpiece_tokenizer_learner_lib.learn(
                    items,
                    vocab_size,
                    list(RESERVED_TOKENS),
                    upper_thresh=thresh,
                    lower_thresh=thresh,
                    **learn_params,
                )
                sizes[thresh] = [t for t in vocab if t and "\n" not in t and "\r" not in t]
            return sizes[thresh]

        def fits(thresh):
            return len(at(thresh)) <= vocab_size

        # Each word counted at least `thresh` times is (roughly) one token.
        lo = max(1, counts[min(vocab_size, len(counts)) - 1])
        hi = max(lo + 1, counts[min(vocab_size // 4, len(counts) - 1)])
        while not fits(hi):
            if hi > counts[0]:
                raise ValueError(
                    f"`vocab_size` is too small: the single characters alone need "
                    f"{len(at(hi))} tokens; got vocab_size={vocab_size}."
                )
            lo, hi = hi, hi * 2
        while lo > 1 and fits(lo):
            hi, lo = lo, max(1, lo // 2)
        if fits(lo):
            return at(lo)
        # Invariant: at(lo) is too large, at(hi) fits.
        while hi - lo > 1 and len(at(hi)) < vocab_size * (1 - slack_ratio):
            mid = min(max(lo + 1, round((lo * hi) ** 0.5)), hi - 1)
            if fits(mid):
                hi = mid
            else:
                lo = mid
        return at(hi)
