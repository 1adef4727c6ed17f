"""Tests for keras_attention/models/seq2seq.py: the builder's argument checks.

The model's numbers (training, decoding) are tested in tests/test_integration.py,
tests/test_generate.py and tests/test_backends.py.
"""

import re

import numpy as np
import pytest
from keras import ops

from keras_attention.generate import BahdanauStepDecoder
from keras_attention.models import bahdanau_seq2seq

SMALL = dict(
    src_vocab_size=12, tgt_vocab_size=10, embed_size=4, num_hiddens=8, num_layers=1, dropout=0.0
)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"src_vocab_size": 0},
            "`src_vocab_size` must be a positive integer; got src_vocab_size=0.",
        ),
        (
            {"tgt_vocab_size": None},
            "`tgt_vocab_size` must be a positive integer; got tgt_vocab_size=None.",
        ),
        ({"embed_size": 1.5}, "`embed_size` must be a positive integer; got embed_size=1.5."),
        ({"num_hiddens": -8}, "`num_hiddens` must be a positive integer; got num_hiddens=-8."),
        ({"num_layers": 0}, "`num_layers` must be a positive integer; got num_layers=0."),
        ({"num_layers": np.int64(0)}, "`num_layers` must be a positive integer; got num_layers=0."),
        ({"dropout": 1.5}, "`dropout` must be a float in [0, 1); got dropout=1.5."),
        ({"pad_id": 12}, "`pad_id` must be an integer in [0, src_vocab_size=12); got pad_id=12."),
        ({"pad_id": 11}, "`pad_id` must be an integer in [0, tgt_vocab_size=10); got pad_id=11."),
        ({"return_attention_scores": "no"}, "`return_attention_scores` must be True or False"),
        ({"name": None}, "`name` must be a non-empty string; got name=None."),
    ],
)
def test_bad_arguments_raise_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        bahdanau_seq2seq(**{**SMALL, **kwargs})


def test_numpy_integer_arguments_are_accepted():
    model = bahdanau_seq2seq(
        **{k: np.int64(v) if isinstance(v, int) else v for k, v in SMALL.items()}
    )
    logits = model(
        {"src_ids": np.array([[3, 4, 0]], "int32"), "tgt_in_ids": np.array([[1, 2]], "int32")}
    )
    assert tuple(logits.shape) == (1, 2, 10)
    assert np.all(np.isfinite(ops.convert_to_numpy(logits)))
    with pytest.raises(
        ValueError, match=re.escape("`max_len` must be a positive integer; got max_len=-1.")
    ):
        BahdanauStepDecoder(model, -1)
