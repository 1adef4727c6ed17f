"""Tests for keras_attention/layers/_policies.py: sub-layer policies from a DTypePolicyMap."""

import keras
import numpy as np
from keras import ops
from keras.dtype_policies import DTypePolicy, DTypePolicyMap

from keras_attention.layers import GPTBlock, MultiHeadAttention
from keras_attention.layers._policies import policy_map_config, sublayer_policy


def test_sublayer_policy_of_a_plain_policy_is_the_layer_policy():
    layer = GPTBlock(8, 16, 2, 0.0, dtype="mixed_bfloat16")
    assert sublayer_policy(layer, "attention") is layer.dtype_policy
    assert policy_map_config(layer) == {}  # nothing quantized, nothing built


def test_sublayer_policy_splits_the_map_by_name():
    int8 = keras.dtype_policies.get("int8_from_float32")
    policies = DTypePolicyMap(
        default_policy=DTypePolicy("float32"),
        policy_map={"attention/W_q": int8, "ffn/dense1": int8, "lm": int8},
    )
    layer = GPTBlock(8, 16, 2, 0.0, dtype=policies)
    assert sublayer_policy(layer, "lm") is int8
    below = sublayer_policy(layer, "attention")
    assert isinstance(below, DTypePolicyMap) and dict(below.items()) == {"W_q": int8}
    assert below.default_policy.name == "float32"
    plain = sublayer_policy(layer, "ln1")
    assert not isinstance(plain, DTypePolicyMap) and plain.name == "float32"
    assert layer.compute_dtype == "float32"


def test_a_quantized_layer_rebuilt_from_its_config_is_quantized():
    X = keras.Input((None, 8))
    model = keras.Model(X, MultiHeadAttention(8, 2, use_bias=True, name="mha")(X, X, X))
    model.quantize("int8", filters=lambda layer: layer.name in ("W_q", "W_o"))
    layer = model.get_layer("mha")
    config = layer.get_config()
    assert config["dtype"]["class_name"] == "DTypePolicyMap"
    copy = MultiHeadAttention.from_config(config)
    copy.build((None, None, 8), (None, None, 8), (None, None, 8))
    modes = {name: getattr(copy, name).quantization_mode for name in ("W_q", "W_k", "W_v", "W_o")}
    assert modes == {"W_q": "int8", "W_k": None, "W_v": None, "W_o": "int8"}
    assert copy.compute_dtype == "float32"
    copy.set_weights(layer.get_weights())
    x = np.random.RandomState(0).normal(size=(2, 3, 8)).astype("float32")
    np.testing.assert_array_equal(
        ops.convert_to_numpy(copy(x, x, x)), ops.convert_to_numpy(layer(x, x, x))
    )
    assert copy.get_config() == config
