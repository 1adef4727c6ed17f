"""Tests for keras_attention/models/_positions.py: `positions=` of `gpt` and `transformer`.

Each choice: a `.keras` round trip with `safe_mode=True`, padding and causal
properties, and cached decoding equal to the full (uncached) pass.
"""

import re

import keras
import numpy as np
import pytest
from keras import ops

from keras_attention import layers
from keras_attention.generate import GPTStepDecoder, TransformerStepDecoder, sample
from keras_attention.models import gpt, transformer

from helpers import assert_causal, assert_keras_round_trip

pytestmark = pytest.mark.filterwarnings("ignore:You are using a softmax over axis")

V, D, F, H, N, MAX_LEN = 20, 8, 16, 2, 2, 12
POSITIONS = ["learned", "sinusoidal", "rotary", "alibi"]
IDS = np.array([[3, 4, 5, 6, 7, 8], [9, 10, 11, 12, 13, 14]], "int32")


def build_gpt(positions, **kwargs):
    keras.utils.set_random_seed(0)
    return gpt(V, D, F, H, N, 0.0, max_len=MAX_LEN, positions=positions, **kwargs)


def build_transformer(positions, **kwargs):
    keras.utils.set_random_seed(0)
    return transformer(V, V, D, F, H, N, 0.0, max_len=MAX_LEN, positions=positions, **kwargs)


def numpy(x):
    return ops.convert_to_numpy(x)


@pytest.mark.parametrize("positions", POSITIONS)
def test_gpt_layers_of_each_choice(positions):
    model = build_gpt(positions)
    names = {layer.name for layer in model.layers}
    assert ("positions" in names) is (positions in ("learned", "sinusoidal"))
    kind = {
        "learned": layers.LearnedPositionalEmbedding,
        "sinusoidal": layers.SinusoidalPositionalEncoding,
    }.get(positions)
    if kind is not None:
        assert isinstance(model.get_layer("positions"), kind)
    block = model.get_layer("gpt_block_0")
    assert block.attention.use_rotary is (positions == "rotary")
    assert block.attention.position_bias == ("alibi" if positions == "alibi" else None)


def test_defaults_are_unchanged():
    assert isinstance(
        gpt(V, D, F, H, N, 0.0, max_len=MAX_LEN).get_layer("positions"),
        layers.LearnedPositionalEmbedding,
    )
    model = transformer(V, V, D, F, H, N, 0.0, max_len=MAX_LEN)
    assert isinstance(model.get_layer("src_positions"), layers.SinusoidalPositionalEncoding)
    assert isinstance(model.get_layer("tgt_positions"), layers.SinusoidalPositionalEncoding)
    assert "src_dropout" not in {layer.name for layer in model.layers}


@pytest.mark.parametrize("positions", POSITIONS)
def test_gpt_round_trip_padding_and_causality(positions, tmp_path):
    model = build_gpt(positions)
    padded = IDS.copy()
    padded[1, 4:] = 0
    assert_keras_round_trip(model, padded, tmp_path / "gpt.keras")
    # Padding after position 4 leaves the earlier logits alone.
    np.testing.assert_allclose(numpy(model(padded))[1, :4], numpy(model(IDS))[1, :4], atol=1e-6)
    assert_causal(model, IDS, 3)


@pytest.mark.parametrize("positions", POSITIONS)
def test_gpt_cached_decoding_equals_the_full_pass(positions):
    model = build_gpt(positions)
    full = numpy(model(IDS))
    decoder = GPTStepDecoder(model, max_len=8)
    logits, state = decoder.start(IDS[:, :3])
    np.testing.assert_allclose(numpy(logits), full[:, 2], atol=1e-5)
    for t in range(3, 6):
        logits, state, _ = decoder.step(IDS[:, t], state, t)
        np.testing.assert_allclose(numpy(logits), full[:, t], atol=1e-5)
    prompt = IDS[:, :3]
    for kwargs in ({"temperature": 0}, {"top_k": 5, "seed": 3}):
        cached = sample(model, prompt, 6, **kwargs)
        uncached = sample(model, prompt, 6, use_cache=False, **kwargs)
        np.testing.assert_array_equal(numpy(cached["tokens"]), numpy(uncached["tokens"]))


@pytest.mark.parametrize("positions", ["rotary", "alibi"])
def test_relative_gpt_has_no_positional_limit(positions):
    model = build_gpt(positions)
    decoder = GPTStepDecoder(model, max_len=3 * MAX_LEN)
    assert decoder.positional_limit is None
    long_ids = np.tile(IDS, (1, 4))  # 24 > max_len positions
    assert numpy(model(long_ids)).shape == (2, 24, V)
    out = sample(model, IDS, 2 * MAX_LEN, temperature=0)
    assert numpy(out["tokens"]).shape == (2, 6 + 2 * MAX_LEN)
    with pytest.raises(ValueError, match="longer than `max_len`"):
        build_gpt("learned")(long_ids)


@pytest.mark.parametrize("positions", POSITIONS)
def test_transformer_round_trip_padding_causality_and_cache(positions, tmp_path):
    model = build_transformer(positions)
    src = np.array([[3, 4, 5, 6, 0, 0], [7, 8, 9, 10, 11, 12]], "int32")
    inputs = {"src_ids": src, "tgt_in_ids": IDS}
    assert_keras_round_trip(model, inputs, tmp_path / "transformer.keras")
    full = numpy(model(inputs))
    # More source padding changes no logits.
    wider = np.concatenate([src, np.zeros((2, 3), "int32")], axis=1)
    np.testing.assert_allclose(numpy(model({"src_ids": wider, "tgt_in_ids": IDS})), full, atol=1e-5)
    assert_causal(lambda tgt: model({"src_ids": src, "tgt_in_ids": tgt}), IDS, 3)
    decoder = TransformerStepDecoder(model, max_len=8)
    state = decoder.encode(src)
    for t in range(IDS.shape[1]):
        logits, state, _ = decoder.step(IDS[:, t], state, t)
        np.testing.assert_allclose(numpy(logits), full[:, t], atol=1e-5)


@pytest.mark.parametrize("builder", [build_gpt, build_transformer])
def test_bad_positions_raise(builder):
    message = "`positions` must be one of ['alibi', 'learned', 'rotary', 'sinusoidal']; got positions='relative'."
    with pytest.raises(ValueError, match=re.escape(message)):
        builder("relative")


def test_transformer_positions_reach_every_self_attention_only():
    for positions, attribute, value in (
        ("rotary", "use_rotary", True),
        ("alibi", "position_bias", "alibi"),
    ):
        model = build_transformer(positions)
        for i in range(N):
            assert getattr(model.get_layer(f"encoder_block_{i}").attention, attribute) == value
            block = model.get_layer(f"decoder_block_{i}")
            assert getattr(block.attention1, attribute) == value
            assert getattr(block.attention2, attribute) != value


VARIANTS = [
    {"num_kv_heads": 1},
    {"window": 3},
    {"qk_norm": "rms"},
    {"logit_softcap": 5.0},
    {"positions": "rotary", "rotary_scaling": "ntk", "rotary_scaling_factor": 2.0},
    {
        "positions": "rotary",
        "rotary_scaling": "yarn",
        "rotary_scaling_factor": 2.0,
        "rotary_original_max_len": 6,
    },
    {"positions": "alibi", "num_kv_heads": 1, "window": 4},
]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(f"{k}={v[k]}" for k in v))
def test_gpt_variants_round_trip_and_decode_with_the_cache(variant, tmp_path):
    variant = dict(variant)
    model = build_gpt(variant.pop("positions", "learned"), **variant)
    attention = model.get_layer("gpt_block_0").attention
    for key, value in variant.items():
        assert getattr(attention, key, None) == value or key.startswith("rotary_")
    assert_keras_round_trip(model, IDS, tmp_path / "gpt.keras")
    assert_causal(model, IDS, 3)
    full = numpy(model(IDS))
    decoder = GPTStepDecoder(model, max_len=8)
    logits, state = decoder.start(IDS[:, :2])
    np.testing.assert_allclose(numpy(logits), full[:, 1], atol=1e-5)
    for t in range(2, 6):
        logits, state, _ = decoder.step(IDS[:, t], state, t)
        np.testing.assert_allclose(numpy(logits), full[:, t], atol=1e-5)
    kv_heads = variant.get("num_kv_heads", H)
    assert tuple(state["cache"].shape) == (N, 2, 2, 8, kv_heads * D // H)


def test_rotary_scaling_needs_rotary_positions():
    message = "`rotary_scaling`, `rotary_scaling_factor` and `rotary_original_max_len` need positions='rotary'; got positions='learned'"
    with pytest.raises(ValueError, match=re.escape(message)):
        build_gpt("learned", rotary_scaling="linear")
    with pytest.raises(
        ValueError, match=re.escape("`window` must be None or a positive integer; got window=0.")
    ):
        build_gpt("learned", window=0)


@pytest.mark.tensorflow_only(reason="SavedModel export")
@pytest.mark.parametrize("positions", ["rotary", "alibi"])
def test_exporting_a_gpt_without_a_position_table_needs_max_len(positions):
    from types import SimpleNamespace

    from keras_attention.export import LanguageModel

    model = build_gpt(positions)
    tokenizer = SimpleNamespace(vocab_size=V)
    message = (
        "Exporting a language model without a position table (positions='rotary' or 'alibi') "
        "needs `max_len`: the longest prompt plus new tokens the SavedModel serves"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        LanguageModel(model, tokenizer)
    with pytest.raises(ValueError, match=re.escape(message)):
        LanguageModel(model, tokenizer, max_len=None, max_new_tokens=4)
    # Given, it is the cache length; beyond the table of a learned GPT it is an error.
    assert LanguageModel(model, tokenizer, max_len=3 * MAX_LEN)._limits == {
        "max_len": 3 * MAX_LEN,
        "max_new_tokens": 3 * MAX_LEN - 1,
    }
    with pytest.raises(ValueError, match=re.escape(f"positional max_len={MAX_LEN}")):
        LanguageModel(build_gpt("learned"), tokenizer, max_len=MAX_LEN + 1)
