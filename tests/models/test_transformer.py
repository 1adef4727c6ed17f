"""Tests for keras_attention/models/transformer.py: the builder's argument checks.

The model's numbers (training, decoding, padding, export) are tested in
tests/test_integration.py, tests/test_generate.py and tests/test_export.py.
"""

import re

import numpy as np
import pytest
from keras import ops

from keras_attention.generate import TransformerStepDecoder
from keras_attention.models import transformer

from helpers import BAD_BLOCK_ARGUMENTS

SMALL = dict(
    src_vocab_size=12,
    tgt_vocab_size=10,
    num_hiddens=8,
    ffn_num_hiddens=16,
    num_heads=2,
    num_blks=1,
    dropout=0.0,
    max_len=16,
)


@pytest.mark.parametrize(
    "kwargs, message",
    BAD_BLOCK_ARGUMENTS
    + [
        (
            {"src_vocab_size": 0},
            "`src_vocab_size` must be a positive integer; got src_vocab_size=0.",
        ),
        (
            {"tgt_vocab_size": 2.5},
            "`tgt_vocab_size` must be a positive integer; got tgt_vocab_size=2.5.",
        ),
        ({"pad_id": -1}, "`pad_id` must be an integer in [0, src_vocab_size=12); got pad_id=-1."),
        ({"pad_id": 10}, "`pad_id` must be an integer in [0, tgt_vocab_size=10); got pad_id=10."),
        (
            {"pad_id": None},
            "`pad_id` must be an integer in [0, src_vocab_size=12); got pad_id=None.",
        ),
        ({"norm_first": "yes"}, "`norm_first` must be True or False; got norm_first='yes'."),
        (
            {"return_attention_scores": 1},
            "`return_attention_scores` must be True or False; got return_attention_scores=1.",
        ),
    ],
)
def test_bad_arguments_raise_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        transformer(**{**SMALL, **kwargs})


def test_numpy_integer_arguments_are_accepted():
    model = transformer(
        **{k: np.int64(v) if isinstance(v, int) else v for k, v in SMALL.items()},
        pad_id=np.int64(0),
    )
    logits = model(
        {"src_ids": np.array([[3, 4, 0]], "int32"), "tgt_in_ids": np.array([[1, 2]], "int32")}
    )
    assert tuple(logits.shape) == (1, 2, 10)
    assert np.all(np.isfinite(ops.convert_to_numpy(logits)))
    assert type(model.get_layer("src_embedding").get_config()["vocab_size"]) is int


def test_inference_max_len_is_checked():
    model = transformer(**SMALL)
    with pytest.raises(
        ValueError, match=re.escape("`max_len` must be a positive integer; got max_len=0.")
    ):
        TransformerStepDecoder(model, 0)
