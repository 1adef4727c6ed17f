"""Issue 15: the model's `pad_id` only decides masking; decoding takes its special ids
from explicit arguments, then the tokenizer, then the model (`generate.search.special_ids`,
`generate.sampling._sampling_ids`)."""

import re
import types

import numpy as np
import pytest
from keras import ops

from keras_attention import generate, models

V, D, MAX_LEN = 12, 8, 16
PROMPT = np.array([[3, 4, 5], [6, 7, 8]], "int32")


def _gpt(pad_id, favourite):
    """A tiny GPT whose head always prefers token `favourite` (a huge bias)."""
    model = models.gpt(V, D, 16, 2, 1, 0.0, max_len=MAX_LEN, pad_id=pad_id)
    head = model.get_layer("lm_head")
    kernel, bias = head.get_weights()
    bias = np.zeros_like(bias)
    bias[favourite] = 100.0
    head.set_weights([np.zeros_like(kernel), bias])
    return model


def _transformer(pad_id, favourite):
    model = models.transformer(
        V,
        V,
        num_hiddens=D,
        ffn_num_hiddens=16,
        num_heads=2,
        num_blks=1,
        dropout=0.0,
        max_len=MAX_LEN,
        pad_id=pad_id,
    )
    head = model.get_layer("output_dense")
    kernel, bias = head.get_weights()
    bias = np.zeros_like(bias)
    bias[favourite] = 100.0
    head.set_weights([np.zeros_like(kernel), bias])
    return model


@pytest.mark.parametrize("use_cache", [True, False])
def test_sampling_a_gpt_without_pad_id_works_and_bans_nothing(use_cache):
    # The packed-pretraining GPT (pad_id=None): no id is banned, so the
    # favourite token 0 is generated; the same model with pad_id=0 never does.
    tokens = sample_tokens(_gpt(None, 0), use_cache=use_cache)
    np.testing.assert_array_equal(tokens[:, 3:], 0)
    banned = sample_tokens(_gpt(0, 0), use_cache=use_cache)
    assert np.all(banned[:, 3:] != 0)


def sample_tokens(model, **kwargs):
    out = generate.sample(model, PROMPT, 4, temperature=0, **kwargs)
    return ops.convert_to_numpy(out["tokens"])


def test_sampling_without_pad_id_fills_after_eos_with_eos():
    # Token 5 is the favourite and the eos: generated once, then the row is filled.
    out = generate.sample(_gpt(None, 5), PROMPT, 4, temperature=0, eos_id=5)
    tokens = ops.convert_to_numpy(out["tokens"])
    np.testing.assert_array_equal(tokens[:, 3:], 5)


def test_explicit_and_tokenizer_ids_come_before_the_models():
    model = _gpt(None, 5)
    tokenizer = types.SimpleNamespace(eos_id=5, pad_id=9)
    tokens = sample_tokens(model, tokenizer=tokenizer)
    np.testing.assert_array_equal(tokens[:, 3], 5)
    np.testing.assert_array_equal(tokens[:, 4:], 9)  # the tokenizer's pad after its eos
    tokens = sample_tokens(model, tokenizer=tokenizer, pad_id=10)
    np.testing.assert_array_equal(tokens[:, 4:], 10)  # an explicit pad_id wins


@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_search_fills_after_eos_with_the_models_pad_id_not_zero(search):
    # eos (2) is the favourite: every row ends at once; the rest is the
    # model's pad_id 7, not a second default of 0.
    model = _transformer(7, 2)
    src = np.array([[3, 4, 5, 7], [6, 8, 7, 7]], "int32")
    if search == "greedy":
        out = generate.greedy_search(model, src, max_len=5)
    else:
        out = generate.beam_search(model, src, max_len=5, beam_size=2)
    tokens = ops.convert_to_numpy(out["tokens"])
    np.testing.assert_array_equal(tokens[:, 0], 2)
    np.testing.assert_array_equal(tokens[:, 1:], 7)
    np.testing.assert_array_equal(ops.convert_to_numpy(out["lengths"]), [1, 1])


@pytest.mark.parametrize(
    "search, kwargs, name, value",
    [
        ("greedy", {"bos_id": V}, "bos_id", V),  # was the embedding's error about `ids`
        ("greedy", {"eos_id": V + 3}, "eos_id", V + 3),  # never generated: never stopped
        ("beam", {"pad_id": 99}, "pad_id", 99),
        ("sample", {"eos_id": V}, "eos_id", V),
        ("sample", {"pad_id": V}, "pad_id", V),
    ],
)
def test_special_ids_outside_the_models_vocabulary_are_named(search, kwargs, name, value):
    """A tokenizer of another vocabulary than the model's: its ids are refused up front."""
    message = (
        f"`{name}` must be an id of the model's vocabulary, in [0, vocab_size={V})"
        + (" (or -1: never stop)" if name == "eos_id" and search != "sample" else "")
        + f"; got {name}={value}."
    )
    src = np.array([[3, 4, 5, 7]], "int32")
    with pytest.raises(ValueError, match=re.escape(message)):
        if search == "sample":
            generate.sample(_gpt(0, 5), PROMPT, 2, temperature=0, **kwargs)
        elif search == "greedy":
            generate.greedy_search(_transformer(0, 2), src, max_len=3, **kwargs)
        else:
            generate.beam_search(_transformer(0, 2), src, max_len=3, beam_size=2, **kwargs)
    # eos_id=-1 (never stop) still works, and the last id of the vocabulary is an id.
    out = generate.greedy_search(_transformer(0, 2), src, max_len=3, eos_id=-1, pad_id=V - 1)
    assert tuple(out["tokens"].shape) == (1, 3)
