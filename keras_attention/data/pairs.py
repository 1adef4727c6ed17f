"""The user's own sentence pairs: a TSV or CSV file as a `TranslationTask`.

Any language pair. Accepted layouts:

- `.tsv` or `.txt`: one pair per line, `source<TAB>target` (D2L's
  `fra.txt`; newer manythings.org files add a third attribution column,
  which is ignored);
- `.csv`: a header row naming the columns (`source` and `target` by
  default, or `source_column=` / `target_column=`), read with Python's
  `csv` module (quoted fields, commas inside quotes).

The file must be UTF-8; a line that is not, or that lacks a column, is an
error naming the file and the line.
"""

import csv
import io
import os
import pathlib

import numpy as np
import tensorflow as tf

from keras_attention.data import _checks
from keras_attention.data.tokenizers import (
    CharTokenizer,
    WordPieceTokenizer,
    WordTokenizer,
)
from keras_attention.data.translation import TranslationTask, split_by_source

__all__ = ["read_pairs_file", "load_pairs_file", "TOKENIZERS"]

TOKENIZERS = ("word", "char", "wordpiece")


def _decode(path, raw):
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ValueError(
            f"{path} is not UTF-8: line {line} holds bytes that cannot be decoded "
            f"(byte {err.start}). Convert the file to UTF-8."
        ) from None


def read_pairs_file(path, source_column="source", target_column="target"):
    """The `(source, target)` pairs of a `.tsv`/`.txt` or `.csv` file; see the module docstring.

    Returns:
        list of `(str, str)`, in file order; blank lines are skipped.
    """
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise TypeError(f"`path` must be a file path (str or path); got path={path!r:.80}.")
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No file of sentence pairs at {path}.")
    text = _decode(path, path.read_bytes())
    pairs = []
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        missing = [c for c in (source_column, target_column) if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(
                f"{path} must have a header row with the columns {source_column!r} and "
                f"{target_column!r}; it has {reader.fieldnames}."
            )
        for row in reader:
            source, target = row[source_column], row[target_column]
            if source is None or target is None:
                raise ValueError(f"{path}, line {reader.line_num}: a column is missing.")
            if source.strip() or target.strip():
                pairs.append((source.strip(), target.strip()))
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            columns = line.split("\t")
            if len(columns) < 2 or not columns[0].strip() or not columns[1].strip():
                raise ValueError(
                    f"{path}, line {number}: expected source<TAB>target; got {line[:80]!r}."
                )
            pairs.append((columns[0].strip(), columns[1].strip()))
    if not pairs:
        raise ValueError(f"{path} holds no sentence pairs.")
    return pairs


def _tokenizers(kind, sources, targets, vocab_size):
    if kind == "word":
        return WordTokenizer.build(sources, min_freq=1), WordTokenizer.build(targets, min_freq=1)
    if kind == "char":
        return CharTokenizer.build(sources), CharTokenizer.build(targets)
    size = vocab_size or 2000
    return (
        WordPieceTokenizer.build(sources, vocab_size=size),
        WordPieceTokenizer.build(targets, vocab_size=size),
    )


def load_pairs_file(
    path,
    tokenizer="word",
    vocab_size=None,
    num_steps=None,
    val_fraction=0.1,
    num_train=None,
    seed=0,
    source_column="source",
    target_column="target",
):
    """A `TranslationTask` from the user's file of sentence pairs.

    The held-out pairs (`val_fraction` of them, at least one) never share a
    source sentence with training (`split_by_source`); the tokenizers are
    learned from the training pairs only.

    Args:
        path: str or path. A `.tsv`/`.txt` or `.csv` file (module docstring).
        tokenizer: `"word"` (D2L's preprocessing: lower case, punctuation
            split off), `"char"` (characters as they are) or `"wordpiece"`.
        vocab_size: int or None. WordPiece vocabulary per language (default 2000).
        num_steps: int or None. Tokens per sequence, `<eos>` included.
            Defaults to `None`: the 95th percentile of the training pairs'
            lengths plus one, at least 4.
        val_fraction: float in (0, 1). Held-out share.
        num_train: int or None. Use at most this many training pairs.
        seed: int. Seed of the split.
        source_column, target_column: str. CSV column names.

    Returns:
        A `TranslationTask` named after the file.
    """
    tokenizer = _checks.check_choice("tokenizer", tokenizer, TOKENIZERS)
    vocab_size = _checks.check_int("vocab_size", vocab_size, low=8, allow_none=True)
    num_steps = _checks.check_positive_int("num_steps", num_steps, allow_none=True)
    val_fraction = _checks.check_float_in_range(
        "val_fraction", val_fraction, 0.0, 1.0, low_closed=False
    )
    num_train = _checks.check_positive_int("num_train", num_train, allow_none=True)
    pairs = read_pairs_file(path, source_column, target_column)
    if len(pairs) < 2:
        raise ValueError(
            f"{path} holds {len(pairs)} sentence pair; training and a held-out score need at "
            "least 2."
        )
    num_val = max(1, round(len(pairs) * val_fraction))
    train, val = split_by_source(pairs, min(num_val, len(pairs) - 1), seed=seed)
    train = train[:num_train] if num_train else train
    src_tokenizer, tgt_tokenizer = _tokenizers(
        tokenizer, [s for s, _ in train], [t for _, t in train], vocab_size
    )
    if num_steps is None:
        lengths = np.maximum(
            src_tokenizer.tokenize(tf.constant([s for s, _ in train])).row_lengths().numpy(),
            tgt_tokenizer.tokenize(tf.constant([t for _, t in train])).row_lengths().numpy(),
        )
        num_steps = max(4, int(np.percentile(lengths, 95)) + 1)
    print(
        f"{path}: {len(pairs)} pairs, {len(train)} for training and {len(val)} held out "
        f"(their sources never occur in training); {tokenizer} tokens, num_steps {num_steps}"
    )
    return TranslationTask(
        name=pathlib.Path(path).stem,
        train_pairs=train,
        val_pairs=val,
        src_tokenizer=src_tokenizer,
        tgt_tokenizer=tgt_tokenizer,
        num_steps=num_steps,
    )
