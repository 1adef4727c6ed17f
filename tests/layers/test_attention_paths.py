"""Which attention path each block takes, in training and inference, on each backend.

`DotProductAttention` has four paths (`attention_path`): the reference
equation (needed whenever weights are returned), the fused kernel (JAX,
PyTorch), the fused kernel with its own causal masking, and TensorFlow's
hand-written backward. The table below states the path of every attention
inside every block; the first test checks the rule on all three backends,
the second runs the blocks on this process's backend with the path
functions spied on and checks that the table holds there.
"""

import keras
import numpy as np
import pytest

from keras_attention.layers import (
    GPTBlock,
    TransformerDecoderBlock,
    TransformerEncoderBlock,
    ViTBlock,
)
from keras_attention.layers import attention as attention_module
from keras_attention.layers.attention import attention_path

B, T, S, D, F, H = 2, 5, 4, 8, 16, 2

# (block, mode) -> backend -> paths of its attentions, in call order.
# "training" has attention dropout 0.1; "training_no_dropout" has none.
# The blocks' masks here: the encoder and ViT get `valid_lens` (a padding
# mask), the decoder's self-attention and GPT are causal only, the decoder's
# cross-attention has the encoder's `valid_lens`.
FAST = {"tensorflow": "hand_gradient", "jax": "fused", "torch": "fused"}
FAST_CAUSAL = {"tensorflow": "hand_gradient", "jax": "fused_causal", "torch": "fused_causal"}
DROPOUT = {"tensorflow": "hand_gradient", "jax": "reference", "torch": "reference"}
EXPECTED = {
    ("encoder", "inference"): [FAST],
    ("encoder", "training"): [DROPOUT],
    ("encoder", "training_no_dropout"): [FAST],
    ("decoder", "inference"): [FAST_CAUSAL, FAST],
    ("decoder", "training"): [DROPOUT, DROPOUT],
    ("decoder", "training_no_dropout"): [FAST_CAUSAL, FAST],
    ("gpt", "inference"): [FAST_CAUSAL],
    ("gpt", "training"): [DROPOUT],
    ("gpt", "training_no_dropout"): [FAST_CAUSAL],
    ("vit", "inference"): [FAST],
    ("vit", "training"): [DROPOUT],
    ("vit", "training_no_dropout"): [FAST],
}
MASKS = {
    "encoder": ["padding"],
    "decoder": ["causal", "padding"],
    "gpt": ["causal"],
    "vit": ["padding"],
}


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
@pytest.mark.parametrize("block, mode", list(EXPECTED))
def test_the_path_table_follows_the_rule_on_every_backend(backend, block, mode):
    for expected, mask in zip(EXPECTED[block, mode], MASKS[block]):
        path = attention_path(
            backend,
            dropout_active=mode == "training",
            causal_only=mask == "causal",
        )
        assert path == expected[backend]
        # Returning the weights always takes the reference path.
        assert (
            attention_path(backend, needs_weights=True, causal_only=mask == "causal") == "reference"
        )


def run_block(block, mode, return_attention_scores=False):
    dropout = 0.1 if mode == "training" else 0.0
    training = mode != "inference"
    rng = np.random.default_rng(0)
    X = rng.normal(size=(B, T, D)).astype("float32")
    scores = {"return_attention_scores": return_attention_scores}
    if block == "encoder":
        layer = TransformerEncoderBlock(D, F, H, dropout)
        return layer(X, valid_lens=np.array([3, 5], "int32"), training=training, **scores)
    if block == "decoder":
        enc = rng.normal(size=(B, S, D)).astype("float32")
        layer = TransformerDecoderBlock(D, F, H, dropout)
        return layer(X, enc, enc_valid_lens=np.array([2, 4], "int32"), training=training, **scores)
    if block == "gpt":
        return GPTBlock(D, F, H, dropout)(X, training=training, **scores)
    return ViTBlock(D, F, H, dropout)(
        X, valid_lens=np.array([3, 5], "int32"), training=training, **scores
    )


@pytest.fixture
def taken(monkeypatch):
    """The names of the path functions called, in order."""
    calls = []
    for name, path in (
        ("reference_attention", "reference"),
        ("fused_attention", "fused"),
        ("hand_gradient_attention", "hand_gradient"),
    ):
        original = getattr(attention_module, name)

        def spy(*args, _original=original, _path=path, **kwargs):
            if _path == "fused" and kwargs.get("is_causal"):
                _path = "fused_causal"
            calls.append(_path)
            return _original(*args, **kwargs)

        monkeypatch.setattr(attention_module, name, spy)
    return calls


@pytest.mark.parametrize("block, mode", list(EXPECTED))
def test_each_block_takes_the_stated_path_here(taken, block, mode):
    backend = keras.backend.backend()
    run_block(block, mode)
    assert taken == [expected[backend] for expected in EXPECTED[block, mode]]


@pytest.mark.parametrize("block", ["encoder", "decoder", "gpt", "vit"])
def test_weights_are_computed_only_when_asked_for(taken, block):
    # The decoder block used to ask both attentions for weights on every call.
    outputs = run_block(block, "inference", return_attention_scores=True)
    assert taken == ["reference"] * len(MASKS[block])
    assert len(outputs) == 1 + len(MASKS[block])  # output, then one weights tensor per attention
