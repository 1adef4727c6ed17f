"""Data: downloads, tokenizers, translation and image sets, tf.data pipelines.

This subpackage needs TensorFlow (tf.data, tf.lookup, tensorflow-text); the
rest of `keras_attention` does not import it.
"""

from keras_attention.data.corpus import (
    build_lm_tokenizer,
    causal_lm_dataset,
    encode_lines,
    encode_text,
    generate_corpus,
    load_time_machine,
    mask_tokens,
    mlm_dataset,
    preprocess_time_machine,
    span_corruption_dataset,
)
from keras_attention.data.dates import DATE_FORMS, format_date, generate_dates
from keras_attention.data.download import find_or_download
from keras_attention.data.images import (
    FASHION_MNIST_LABELS,
    SHAPE_LABELS,
    generate_shapes,
    image_dataset,
    load_fashion_mnist,
    read_idx,
)
from keras_attention.data.tokenizers import (
    RESERVED_TOKENS,
    CharTokenizer,
    WordPieceTokenizer,
    WordTokenizer,
    load_tokenizer,
    preprocess_d2l,
)
from keras_attention.data.translation import (
    TranslationTask,
    load_dates,
    load_fra_eng,
    load_fra_eng_full,
    read_fra_eng,
    split_by_source,
    valid_lengths,
)

__all__ = [
    "DATE_FORMS",
    "FASHION_MNIST_LABELS",
    "SHAPE_LABELS",
    "RESERVED_TOKENS",
    "CharTokenizer",
    "TranslationTask",
    "WordPieceTokenizer",
    "WordTokenizer",
    "find_or_download",
    "format_date",
    "generate_dates",
    "generate_shapes",
    "image_dataset",
    "load_dates",
    "load_fashion_mnist",
    "load_fra_eng",
    "load_fra_eng_full",
    "load_tokenizer",
    "preprocess_d2l",
    "read_fra_eng",
    "read_idx",
    "split_by_source",
    "valid_lengths",
    "build_lm_tokenizer",
    "causal_lm_dataset",
    "encode_lines",
    "encode_text",
    "generate_corpus",
    "load_time_machine",
    "mask_tokens",
    "mlm_dataset",
    "preprocess_time_machine",
    "span_corruption_dataset",
]
