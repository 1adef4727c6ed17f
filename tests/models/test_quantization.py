"""Tests for keras_attention/models/quantization.py: int8 inference on every builder's model."""

import re

import keras
import numpy as np
import pytest

from keras_attention import models
from tests.models.test_lora import KINDS, build, first_output


@pytest.mark.parametrize("kind", KINDS)
def test_int8_outputs_agree_with_float32(kind):
    model, inputs, _, _ = build(kind)
    reference = first_output(model, inputs).astype("float64")
    dense = [
        layer
        for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, keras.layers.Dense)
    ]
    chosen = models.quantize(model)
    assert set(map(id, chosen)) == set(map(id, dense))
    assert all(layer.quantization_mode == "int8" for layer in chosen)
    assert all(keras.backend.standardize_dtype(layer._kernel.dtype) == "int8" for layer in chosen)
    got = first_output(model, inputs).astype("float64")
    assert np.all(np.isfinite(got))
    cosine = np.sum(got * reference) / np.sqrt(np.sum(got**2) * np.sum(reference**2))
    assert cosine > 0.995, cosine
    assert np.abs(got - reference).max() < 0.1 * np.abs(reference).max()
    assert models.quantize(model) == []  # already quantized


def test_int8_gpt_decodes_with_the_cache():
    from keras_attention.generate import sample

    model, ids, _, _ = build("gpt")
    models.quantize(model)
    prompt = ids[:, :3]
    cached = sample(model, prompt, 5, temperature=0)
    uncached = sample(model, prompt, 5, temperature=0, use_cache=False)
    np.testing.assert_array_equal(np.asarray(cached["tokens"]), np.asarray(uncached["tokens"]))


def test_bad_mode_raises():
    model, _, _, _ = build("gpt")
    with pytest.raises(
        ValueError, match=re.escape("`mode` must be one of ['int4', 'int8']; got mode='fp8'.")
    ):
        models.quantize(model, "fp8")
