"""Tests for keras_attention/layers/_attention_options.py: the blocks' `attention_options`."""

import re

import numpy as np
import pytest

from helpers import run_layer_test
from keras_attention.layers import GPTBlock, TransformerDecoderBlock, TransformerEncoderBlock

D, F, H = 8, 16, 2
ROTARY = {"use_rotary": True}


def inputs(batch=2, length=5, seed=0):
    return np.random.RandomState(seed).normal(size=(batch, length, D)).astype("float32")


@pytest.mark.parametrize("block_cls", [GPTBlock, TransformerEncoderBlock])
def test_blocks_with_rotary_options_pass_the_layer_test(block_cls):
    init = {"num_hiddens": D, "ffn_num_hiddens": F, "num_heads": H, "dropout": 0.0,
            "attention_options": ROTARY}
    run_layer_test(block_cls, init, inputs(), expected_output_shape=(2, 5, D))
    block = block_cls(**init)
    block(inputs())
    assert block.attention.use_rotary
    assert block.get_config()["attention_options"] == ROTARY


def test_decoder_block_options_reach_self_attention_only():
    init = {"num_hiddens": D, "ffn_num_hiddens": F, "num_heads": H, "dropout": 0.0,
            "attention_options": ROTARY}
    run_layer_test(TransformerDecoderBlock, init, [inputs(), inputs(length=4, seed=1)],
                   expected_output_shape=(2, 5, D), check_mixed_precision=False)
    block = TransformerDecoderBlock(**init)
    block(inputs(), inputs(length=4, seed=1))
    assert block.attention1.use_rotary and not block.attention2.use_rotary


@pytest.mark.parametrize(
    "options, message",
    [
        ([("use_rotary", True)], "`attention_options` must be a dict of keyword arguments (string keys) or None"),
        ({"dropout": 0.5}, "`attention_options` must not set ['dropout']: the layer sets them itself"),
        ({"name": "x", "num_hiddens": 4}, "`attention_options` must not set ['name', 'num_hiddens']"),
        ({"use_rotary": "yes"}, "`use_rotary` must be True or False; got use_rotary='yes'."),
        ({"rotate": True}, "`attention_options` must be keyword arguments of MultiHeadAttention"),
    ],
)
@pytest.mark.parametrize("block_cls", [GPTBlock, TransformerEncoderBlock, TransformerDecoderBlock])
def test_bad_options_raise_naming_them(block_cls, options, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        block_cls(D, F, H, 0.0, attention_options=options)
