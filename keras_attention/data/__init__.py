"""Data: downloads, tokenizers, translation and image sets, tf.data pipelines.

Tokenizers, corpora, translation tasks and the `tf.data` pipelines need
TensorFlow (tf.data, tf.lookup, tensorflow-text); the rest of
`keras_attention` does not import it. The names below are imported on
first use, so the numpy-only parts (`generate_dates`, `generate_shapes`,
`read_idx`, `load_fashion_mnist`, `find_or_download`) also work where
TensorFlow is not installed (e.g. a JAX or PyTorch GPU machine).
"""

import importlib

# Public name -> the submodule that defines it.
_EXPORTS = {
    # corpus.py (TensorFlow)
    "build_lm_tokenizer": "corpus",
    "causal_lm_dataset": "corpus",
    "encode_lines": "corpus",
    "encode_text": "corpus",
    "generate_corpus": "corpus",
    "load_time_machine": "corpus",
    "mask_tokens": "corpus",
    "mlm_dataset": "corpus",
    "preprocess_time_machine": "corpus",
    "span_corruption_dataset": "corpus",
    # dates.py (pure Python)
    "DATE_FORMS": "dates",
    "format_date": "dates",
    "generate_dates": "dates",
    # download.py (standard library)
    "find_or_download": "download",
    # images.py (numpy; `image_dataset` imports TensorFlow when called)
    "FASHION_MNIST_LABELS": "images",
    "SHAPE_LABELS": "images",
    "generate_shapes": "images",
    "image_dataset": "images",
    "load_fashion_mnist": "images",
    "read_idx": "images",
    # pairs.py (TensorFlow): the user's own sentence pairs
    "load_pairs_file": "pairs",
    "read_pairs_file": "pairs",
    # tokenizers.py (TensorFlow)
    "RESERVED_TOKENS": "tokenizers",
    "CharTokenizer": "tokenizers",
    "WordPieceTokenizer": "tokenizers",
    "WordTokenizer": "tokenizers",
    "load_tokenizer": "tokenizers",
    "preprocess_d2l": "tokenizers",
    # translation.py (TensorFlow)
    "TranslationTask": "translation",
    "load_dates": "translation",
    "load_fra_eng": "translation",
    "load_fra_eng_full": "translation",
    "read_fra_eng": "translation",
    "split_by_source": "translation",
    "valid_lengths": "translation",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
