"""Tests for keras_attention/models/quantization.py: int8 inference on every builder's model.

Each model: the int8 logits agree with float32, the quantized model saves
to `.keras` and loads with `safe_mode=True` giving the same outputs bit for
bit, and the loaded copy saves and loads again (its sub-layers' quantized
policies travel in the blocks' configs, keras_attention/layers/_policies.py).
Then int4, `mixed_bfloat16`, Keras' own `Model.quantize` and the GPT's cached
decoding after loading.
"""

import importlib.util
import os
import re
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
from keras.dtype_policies import DTypePolicyMap

from keras_attention import models
from tests.models.test_lora import KINDS, build, first_output

from helpers import assert_keras_round_trip


def quantized_policies(model):
    """`{path: policy name}` of every quantized layer of `model`."""
    return {
        layer.path: layer.dtype_policy.name
        for layer in model._flatten_layers(include_self=False)
        if layer.quantization_mode is not None
    }


def assert_saves_twice(model, inputs, path):
    """Saves, loads, saves the copy and loads it: same outputs, same quantized layers.

    Returns the second copy.
    """
    policies = quantized_policies(model)
    restored = model
    for i in range(2):
        restored = assert_keras_round_trip(restored, inputs, path / f"{i}.keras")
        assert quantized_policies(restored) == policies
        # A Dense never holds a DTypePolicyMap (it would save no kernel scale).
        assert not any(
            isinstance(layer.dtype_policy, DTypePolicyMap)
            for layer in restored._flatten_layers()
            if isinstance(layer, keras.layers.Dense)
        )
    np.testing.assert_array_equal(first_output(restored, inputs), first_output(model, inputs))
    return restored


@pytest.mark.parametrize("kind", KINDS)
def test_int8_outputs_agree_with_float32_and_save_and_load(kind, tmp_path):
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

    restored = assert_saves_twice(model, inputs, tmp_path)
    assert len(quantized_policies(restored)) == len(chosen)
    assert models.quantize(restored) == []  # loaded quantized
    assert models.quantize(model) == []  # already quantized


def test_int4_saves_and_loads(tmp_path):
    model, inputs, _, _ = build("gpt")
    reference = first_output(model, inputs).astype("float64")
    chosen = models.quantize(model, "int4")
    assert all(layer.quantization_mode == "int4" for layer in chosen)
    got = first_output(model, inputs).astype("float64")
    cosine = np.sum(got * reference) / np.sqrt(np.sum(got**2) * np.sum(reference**2))
    assert cosine > 0.97, cosine
    assert_saves_twice(model, inputs, tmp_path)


@pytest.mark.parametrize("kind", ["gpt", "vision_transformer"])
def test_int8_under_mixed_bfloat16_saves_and_loads_without_nan(kind, tmp_path):
    keras.config.set_dtype_policy("mixed_bfloat16")
    model, inputs, _, _ = build(kind)
    models.quantize(model)
    assert "int8_from_mixed_bfloat16" in quantized_policies(model).values()
    restored = assert_saves_twice(model, inputs, tmp_path)
    assert np.all(np.isfinite(first_output(restored, inputs)))


def test_keras_own_quantize_saves_and_loads(tmp_path):
    # `model.quantize("int8")` (not `models.quantize`) quantizes the same Dense
    # layers (warning about each layer it cannot quantize); the file loads too.
    model, inputs, _, _ = build("gpt")
    with warnings.catch_warnings(), models.quantization._one_collection():
        warnings.simplefilter("ignore")
        model.quantize("int8")
    assert len(quantized_policies(model)) == 2 * 6 + 1  # W_q, W_k, W_v, W_o, FFN; lm_head
    assert_saves_twice(model, inputs, tmp_path)


def test_int8_gpt_decodes_with_the_cache_before_and_after_loading(tmp_path):
    from keras_attention.generate import sample

    model, ids, _, _ = build("gpt")
    models.quantize(model)
    prompt = ids[:, :3]
    cached = np.asarray(sample(model, prompt, 5, temperature=0)["tokens"])
    uncached = sample(model, prompt, 5, temperature=0, use_cache=False)
    np.testing.assert_array_equal(cached, np.asarray(uncached["tokens"]))
    model.save(str(tmp_path / "gpt.keras"))
    restored = keras.saving.load_model(str(tmp_path / "gpt.keras"), safe_mode=True)
    np.testing.assert_array_equal(
        np.asarray(sample(restored, prompt, 5, temperature=0)["tokens"]), cached
    )


_LOAD_ELSEWHERE = """
import sys, keras, numpy as np
import keras_attention  # registers the layers
from keras import ops
work = sys.argv[1]
inputs = dict(np.load(work + "/inputs.npz"))
outputs = {}
for kind in sys.argv[2:]:
    model = keras.saving.load_model(f"{work}/{kind}.keras", safe_mode=True)
    given = {k.split("/", 1)[1]: v for k, v in inputs.items() if k.startswith(kind + "/")}
    out = model(given or inputs[kind], training=False)
    outputs[kind] = ops.convert_to_numpy(keras.tree.flatten(out)[0])
    outputs[kind + "/quantized"] = np.array(
        sum(layer.quantization_mode == "int8" for layer in model._flatten_layers())
    )
np.savez(work + "/outputs.npz", **outputs)
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend",
    [
        pytest.param(
            b,
            marks=pytest.mark.skipif(importlib.util.find_spec(b) is None, reason=f"no {b}"),
        )
        for b in ("tensorflow", "jax", "torch")
        if b != keras.backend.backend()
    ],
)
def test_an_int8_file_loads_on_the_other_backends(backend, tmp_path):
    kinds = ["gpt", "transformer", "vision_transformer", "bahdanau_seq2seq"]
    expected, flat = {}, {}
    for kind in kinds:
        model, inputs, _, _ = build(kind)
        models.quantize(model)
        model.save(str(tmp_path / f"{kind}.keras"))
        expected[kind] = (first_output(model, inputs), len(quantized_policies(model)))
        if isinstance(inputs, dict):
            flat.update({f"{kind}/{k}": v for k, v in inputs.items()})
        else:
            flat[kind] = inputs
    np.savez(tmp_path / "inputs.npz", **flat)
    result = subprocess.run(
        [sys.executable, "-c", _LOAD_ELSEWHERE, str(tmp_path), *kinds],
        capture_output=True,
        text=True,
        env=dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2"),
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    got = dict(np.load(tmp_path / "outputs.npz"))
    for kind, (reference, num_quantized) in expected.items():
        assert int(got[kind + "/quantized"]) == num_quantized, kind
        # Equal up to float rounding, which can flip the int8 rounding of an
        # activation (a step of the quantized input) between backends.
        np.testing.assert_allclose(got[kind], reference, atol=0.05 * np.abs(reference).max())


def test_bad_mode_raises():
    model, _, _, _ = build("gpt")
    with pytest.raises(
        ValueError, match=re.escape("`mode` must be one of ['int4', 'int8']; got mode='fp8'.")
    ):
        models.quantize(model, "fp8")
