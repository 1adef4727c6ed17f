"""Tests for the attention variants of keras_attention/models/transformer.py.

`transformer(..., num_kv_heads=, window=, qk_norm=, logit_softcap=,
rotary_scaling=...)`: the options reach every self-attention (encoder and
decoder) and never the cross-attention; each model saves and loads with
`safe_mode=True`, ignores source padding, never lets a target position see a
later one, and decodes with `TransformerStepDecoder`'s cache to the logits
and greedy tokens of the full forward pass (the cache `num_kv_heads * D / H`
wide, the window applied at every cached step).
"""

import re

import keras
import numpy as np
import pytest
from keras import ops

from keras_attention.generate import TransformerStepDecoder, greedy_search
from keras_attention.models import transformer

from helpers import assert_causal, assert_keras_round_trip

pytestmark = pytest.mark.filterwarnings("ignore:You are using a softmax over axis")

V, D, F, H, N, MAX_LEN = 20, 16, 32, 4, 2, 12
SRC = np.array([[3, 4, 5, 6, 0, 0], [7, 8, 9, 10, 11, 12]], "int32")
TGT = np.array([[1, 4, 5, 6, 7, 8, 9], [1, 10, 11, 12, 13, 14, 15]], "int32")

# Every option in the default run, combined three ways (the `.keras` round
# trip and the decoding loops are what cost); each option alone is `slow`.
VARIANTS = {
    "gqa_qk_norm_softcap": {"num_kv_heads": 2, "qk_norm": "rms", "logit_softcap": 5.0},
    "rotary_yarn_gqa_window": {
        "positions": "rotary",
        "rotary_scaling": "yarn",
        "rotary_scaling_factor": 2.0,
        "rotary_original_max_len": 6,
        "num_kv_heads": 2,
        "window": 2,
    },
    "alibi_mqa_window_layer_norm": {
        "positions": "alibi",
        "window": 3,
        "num_kv_heads": 1,
        "qk_norm": "layer",
    },
}
SLOW_VARIANTS = {
    "gqa": {"num_kv_heads": 2},
    "mqa": {"num_kv_heads": 1},
    "window": {"window": 3},
    "qk_norm": {"qk_norm": "layer"},
    "softcap": {"logit_softcap": 3.0},
    "rotary_linear": {
        "positions": "rotary",
        "rotary_scaling": "linear",
        "rotary_scaling_factor": 2.0,
    },
    "rotary_ntk_window": {
        "positions": "rotary",
        "rotary_scaling": "ntk",
        "rotary_scaling_factor": 2.0,
        "window": 3,
    },
    "alibi_gqa_softcap": {"positions": "alibi", "num_kv_heads": 2, "logit_softcap": 5.0},
}
ALL_VARIANTS = {**VARIANTS, **SLOW_VARIANTS}
VARIANT_PARAMS = [pytest.param(name) for name in sorted(VARIANTS)] + [
    pytest.param(name, marks=pytest.mark.slow) for name in sorted(SLOW_VARIANTS)
]

# What a plain cross-attention holds.
PLAIN = {
    "num_kv_heads": H,
    "window": None,
    "qk_norm": None,
    "logit_softcap": None,
    "use_rotary": False,
    "position_bias": None,
    "rotary_scaling": None,
}


def build(seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    return transformer(V, V, D, F, H, N, 0.0, max_len=MAX_LEN, **kwargs)


def numpy(x):
    return ops.convert_to_numpy(x)


def expected_attributes(variant):
    """The self-attention attributes `variant` sets."""
    variant = dict(variant)
    positions = variant.pop("positions", "sinusoidal")
    expected = {**variant, "use_rotary": positions == "rotary"}
    expected["position_bias"] = "alibi" if positions == "alibi" else None
    return expected


@pytest.mark.parametrize("name", VARIANT_PARAMS)
def test_variant_round_trip_padding_causality_and_cached_decoding(name, tmp_path):
    variant = ALL_VARIANTS[name]
    model = build(**variant)
    # The options reach every self-attention, never the cross-attention.
    expected = expected_attributes(variant)
    for i in range(N):
        encoder = model.get_layer(f"encoder_block_{i}").attention
        decoder = model.get_layer(f"decoder_block_{i}")
        for key, value in expected.items():
            assert getattr(encoder, key) == value, (key, i)
            assert getattr(decoder.attention1, key) == value, (key, i)
        for key, value in PLAIN.items():
            assert getattr(decoder.attention2, key) == value, (key, i)

    inputs = {"src_ids": SRC, "tgt_in_ids": TGT}
    restored = assert_keras_round_trip(model, inputs, tmp_path / "transformer.keras")
    assert restored.get_layer("decoder_block_1").get_config() == (
        model.get_layer("decoder_block_1").get_config()
    )
    full = numpy(model(inputs))

    # More source padding changes no logits.
    wider = np.concatenate([SRC, np.zeros((2, 3), "int32")], axis=1)
    np.testing.assert_allclose(numpy(model({"src_ids": wider, "tgt_in_ids": TGT})), full, atol=1e-5)
    # A target position never sees a later one.
    assert_causal(lambda tgt: model({"src_ids": SRC, "tgt_in_ids": tgt}), TGT, 3)

    # Cached decoding, one token per step, gives the full pass's logits.
    decoder = TransformerStepDecoder(model, max_len=8)
    state = decoder.encode(SRC)
    kv_width = variant.get("num_kv_heads", H) * D // H  # num_kv_heads * head_dim
    assert decoder.cache_width == kv_width
    assert tuple(state["cache"].shape) == (N, 2, 2, 8, kv_width)
    for t in range(TGT.shape[1]):
        logits, state, _ = decoder.step(TGT[:, t], state, t)
        np.testing.assert_allclose(numpy(logits), full[:, t], atol=1e-5)
    assert tuple(state["cache"].shape) == (N, 2, 2, 8, kv_width)

    # Greedy tokens: cached == uncached, and each is the full pass's argmax.
    cached = greedy_search(model, SRC, 7, bos_id=1, eos_id=-1)
    uncached = greedy_search(model, SRC, 7, bos_id=1, eos_id=-1, use_cache=False)
    tokens = numpy(cached["tokens"])
    np.testing.assert_array_equal(numpy(uncached["tokens"]), tokens)
    tgt_in = np.concatenate([np.ones((2, 1), "int32"), tokens[:, :-1]], axis=1)
    logits = numpy(model({"src_ids": SRC, "tgt_in_ids": tgt_in}))
    logits[..., 0] = -np.inf  # greedy never writes pad_id
    np.testing.assert_array_equal(np.argmax(logits, axis=-1), tokens)


def test_window_hides_the_decoder_positions_out_of_it_at_every_cached_step():
    """Same weights with and without `window=3`: the target positions before 3
    agree, later ones differ, and the cached steps follow the windowed pass."""
    windowed = build(window=3)
    plain = build()
    plain.set_weights(windowed.get_weights())
    src = SRC[:, :3]  # |i - j| < 3 covers the whole source: the encoders agree
    inputs = {"src_ids": src, "tgt_in_ids": TGT}
    with_window, without = numpy(windowed(inputs)), numpy(plain(inputs))
    np.testing.assert_allclose(with_window[:, :3], without[:, :3], atol=1e-5)
    assert np.abs(with_window[:, 3:] - without[:, 3:]).max(axis=-1).min() > 1e-4
    decoder = TransformerStepDecoder(windowed, max_len=TGT.shape[1])
    state = decoder.encode(src)
    for t in range(TGT.shape[1]):
        logits, state, _ = decoder.step(TGT[:, t], state, t)
        np.testing.assert_allclose(numpy(logits), with_window[:, t], atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"num_kv_heads": 3},
            "`num_heads` must be divisible by `num_kv_heads`; got num_heads=4, num_kv_heads=3.",
        ),
        (
            {"num_kv_heads": 0},
            "`num_kv_heads` must be None or a positive integer; got num_kv_heads=0.",
        ),
        ({"window": 0}, "`window` must be None or a positive integer; got window=0."),
        ({"window": 2.5}, "`window` must be None or a positive integer; got window=2.5."),
        (
            {"qk_norm": "batch"},
            "`qk_norm` must be None or one of ['layer', 'rms']; got qk_norm='batch'.",
        ),
        (
            {"logit_softcap": -1.0},
            "`logit_softcap` must be None or a positive finite number; got logit_softcap=-1.0.",
        ),
        (
            {"rotary_scaling": "linear"},
            "`rotary_scaling`, `rotary_scaling_factor` and `rotary_original_max_len` need "
            "positions='rotary'; got positions='sinusoidal'",
        ),
        (
            {"positions": "alibi", "rotary_scaling_factor": 2.0},
            "need positions='rotary'; got positions='alibi'",
        ),
        (
            {"positions": "rotary", "rotary_scaling": "cubic"},
            "`rotary_scaling` must be None or one of ['linear', 'ntk', 'yarn']; "
            "got rotary_scaling='cubic'.",
        ),
        (
            {"positions": "rotary", "rotary_scaling": "linear", "rotary_scaling_factor": 0},
            "`rotary_scaling_factor` must be a positive finite number; got rotary_scaling_factor=0.",
        ),
        (
            {"positions": "rotary", "rotary_scaling": "yarn", "rotary_scaling_factor": 2.0},
            "`scaling='yarn'` needs `original_max_len`, the trained context length.",
        ),
    ],
)
def test_bad_variant_arguments_raise_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        build(**kwargs)


def test_rotary_needs_an_even_head_size():
    with pytest.raises(ValueError, match=re.escape("`use_rotary=True` needs an even head size")):
        transformer(V, V, 12, F, 4, 1, 0.0, max_len=MAX_LEN, positions="rotary")
