"""Tests for keras_attention/layers/gpt.py: GPTBlock."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_attention.layers import GPTBlock, MultiHeadAttention, PositionWiseFFN

from helpers import run_layer_test

# One-step self-attention (a single key) is expected while decoding.
pytestmark = pytest.mark.filterwarnings("ignore:You are using a softmax over axis")

D, F, H = 8, 16, 2


def inputs(batch=2, length=5, seed=0):
    return np.random.RandomState(seed).normal(size=(batch, length, D)).astype("float32")


def test_gpt_block_passes_the_layer_test():
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], bool)
    run_layer_test(
        GPTBlock,
        {"num_hiddens": D, "ffn_num_hiddens": F, "num_heads": H, "dropout": 0.1},
        inputs(),
        expected_output_shape=(2, 5, D),
    )
    run_layer_test(
        GPTBlock,
        {"num_hiddens": D, "ffn_num_hiddens": F, "num_heads": H, "dropout": 0.0, "use_bias": False},
        inputs(),
        call_kwargs={"return_attention_scores": True},
        expected_output_shape=[(2, 5, D), (2, H, 5, 5)],
        input_mask=mask,
        check_mixed_precision=False,
    )


def test_sub_layers_are_named_and_ffn_uses_gelu():
    block = GPTBlock(D, F, H, 0.0)
    block(inputs())
    assert isinstance(block.attention, MultiHeadAttention) and block.attention.use_bias
    assert isinstance(block.ffn, PositionWiseFFN) and block.ffn.activation == "gelu"
    paths = {w.path for w in block.weights}
    for name in ("ln1", "attention", "ln2", "ffn"):
        assert any(p.startswith(f"{block.name}/{name}/") for p in paths), name


def test_a_position_never_sees_a_later_one():
    block = GPTBlock(D, F, H, 0.0)
    X = inputs(length=6)
    changed = X.copy()
    changed[:, 3:] = np.random.RandomState(1).normal(size=changed[:, 3:].shape)
    out, weights = block(X, return_attention_scores=True)
    out_changed = ops.convert_to_numpy(block(changed))
    np.testing.assert_allclose(out_changed[:, :3], ops.convert_to_numpy(out)[:, :3], atol=1e-6)
    assert not np.allclose(out_changed[:, 3:], ops.convert_to_numpy(out)[:, 3:])
    upper = np.triu(np.ones((6, 6), bool), k=1)
    assert np.all(ops.convert_to_numpy(weights)[:, :, upper] == 0)


def test_prompt_chunk_then_cached_steps_equal_the_full_pass():
    block = GPTBlock(D, F, H, 0.0)
    X = inputs(length=7)
    full = ops.convert_to_numpy(block(X))
    cache = ops.zeros((2, 2, 7, D))  # (B, 2, L, D)
    # A 3-step prompt in one chunk, then one step at a time.
    out, cache = block(X[:, :3], cache=cache, cache_update_index=0)
    outputs = [ops.convert_to_numpy(out)]
    for t in range(3, 7):
        out, weights, cache = block(
            X[:, t : t + 1], cache=cache, cache_update_index=t, return_attention_scores=True
        )
        assert tuple(weights.shape) == (2, H, 1, 7)
        assert np.all(ops.convert_to_numpy(weights)[:, :, 0, t + 1 :] == 0)
        outputs.append(ops.convert_to_numpy(out))
    np.testing.assert_allclose(np.concatenate(outputs, axis=1), full, atol=1e-5)


def test_dropout_is_active_only_in_training():
    block = GPTBlock(D, F, H, 0.5)
    X = inputs()
    np.testing.assert_array_equal(
        ops.convert_to_numpy(block(X)), ops.convert_to_numpy(block(X, training=False))
    )
    assert not np.allclose(
        ops.convert_to_numpy(block(X, training=True)), ops.convert_to_numpy(block(X))
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_hiddens": 10, "num_heads": 3}, "`num_hiddens` must be divisible by `num_heads`"),
        ({"dropout": 1.0}, r"`dropout` must be a float in \[0, 1\)"),
        ({"ffn_num_hiddens": 0}, "`ffn_num_hiddens` must be a positive integer"),
        ({"use_bias": 1}, "`use_bias` must be True or False"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    args = {"num_hiddens": D, "ffn_num_hiddens": F, "num_heads": H, "dropout": 0.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        GPTBlock(**args)


def test_inputs_of_the_wrong_width_raise():
    with pytest.raises(ValueError, match="must equal `num_hiddens`=8"):
        GPTBlock(D, F, H, 0.0)(keras.Input(shape=(None, 6)))
    with pytest.raises(ValueError, match="`X` must be 3-D"):
        GPTBlock(D, F, H, 0.0)(keras.Input(shape=(D,)))


def test_gpt_block_checks_inputs_on_every_call():
    import re

    layer = GPTBlock(D, F, H, 0.0)
    layer(np.zeros((2, 3, D), "float32"))
    with pytest.raises(
        TypeError, match=re.escape("`X` must be a float tensor; got X.dtype=int32.")
    ):
        layer(np.zeros((2, 3, D), "int32"))
    with pytest.raises(
        ValueError,
        match=re.escape("`X` must be 3-D (batch, length, num_hiddens); got X.shape=(2, 8)."),
    ):
        layer(np.zeros((2, D), "float32"))
    with pytest.raises(ValueError, match=re.escape("got X.shape=(2, 3, 6).")):
        layer(np.zeros((2, 3, 6), "float32"))


# --- attention variants passed on to the attention -----------------------------

VARIANTS = {
    "gqa_window": {"num_kv_heads": 1, "window": 2},
    "alibi_qk_norm": {"position_bias": "alibi", "qk_norm": "rms", "logit_softcap": 4.0},
    "rotary_ntk": {"use_rotary": True, "rotary_scaling": "ntk", "rotary_scaling_factor": 2.0},
    "rotary_yarn": {
        "use_rotary": True,
        "rotary_scaling": "yarn",
        "rotary_scaling_factor": 2.0,
        "rotary_original_max_len": 4,
    },
    "t5": {"position_bias": "t5", "qk_norm": "layer"},
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_gpt_block_with_variants_passes_the_layer_test(variant):
    run_layer_test(
        GPTBlock,
        {
            "num_hiddens": D,
            "ffn_num_hiddens": F,
            "num_heads": H,
            "dropout": 0.1,
            **VARIANTS[variant],
        },
        inputs(),
        expected_output_shape=(2, 5, D),
        input_mask=np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], bool),
    )


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_gpt_block_passes_variants_to_its_attention(variant):
    block = GPTBlock(D, F, H, 0.0, **VARIANTS[variant])
    block(inputs())
    for name, value in VARIANTS[variant].items():
        assert getattr(block.attention, name) == value, name
    assert block.attention.kv_hiddens == D // H * block.attention.num_kv_heads
    assert GPTBlock.from_config(block.get_config()).get_config() == block.get_config()


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_gpt_block_with_variants_never_sees_a_later_position_and_caches_equal_the_full_pass(
    variant,
):
    block = GPTBlock(D, F, H, 0.0, **VARIANTS[variant])
    X = inputs(length=6)
    full = ops.convert_to_numpy(block(X))
    changed = X.copy()
    changed[:, 3:] = inputs(length=3, seed=5) * 3.0
    changed_out = ops.convert_to_numpy(block(changed))
    np.testing.assert_allclose(changed_out[:, :3], full[:, :3], atol=1e-6)
    assert not np.allclose(changed_out[:, 3], full[:, 3], atol=1e-3)
    width = block.attention.kv_hiddens
    cache = ops.zeros((2, 2, 6, width))
    out, cache = block(X[:, :2], cache=cache, cache_update_index=0)
    outputs = [ops.convert_to_numpy(out)]
    for t in range(2, 6):
        out, cache = block(X[:, t : t + 1], cache=cache, cache_update_index=t)
        outputs.append(ops.convert_to_numpy(out))
    assert tuple(cache.shape) == (2, 2, 6, width)
    np.testing.assert_allclose(np.concatenate(outputs, axis=1), full, atol=1e-5)


def test_gpt_block_window_hides_positions_out_of_the_window():
    block = GPTBlock(D, F, H, 0.0, window=2)
    X = inputs(length=6)
    changed = X.copy()
    changed[:, 1] = inputs(length=1, seed=6)[:, 0] * 3.0  # seen by positions 1 and 2 only
    out, changed_out = (ops.convert_to_numpy(block(x)) for x in (X, changed))
    np.testing.assert_allclose(changed_out[:, 3:], out[:, 3:], atol=1e-6)
    np.testing.assert_allclose(changed_out[:, :1], out[:, :1], atol=1e-6)
    assert not np.allclose(changed_out[:, 2], out[:, 2], atol=1e-3)


def test_gpt_block_grouped_query_cache_is_smaller():
    block = GPTBlock(D, F, 4, 0.0, num_kv_heads=1)
    block(inputs())
    assert block.attention.kv_hiddens == D // 4
    assert tuple(block.attention.W_k.kernel.shape) == (D, D // 4)


def test_gpt_block_bias_argument_equals_its_alibi_option():
    from keras_attention.layers import ALiBi

    with_option = GPTBlock(D, F, H, 0.0, position_bias="alibi")
    plain = GPTBlock(D, F, H, 0.0)
    X = inputs()
    with_option(X)
    plain(X)
    plain.set_weights(with_option.get_weights())
    np.testing.assert_allclose(
        ops.convert_to_numpy(plain(X, bias=ALiBi(H)(X))),
        ops.convert_to_numpy(with_option(X)),
        atol=1e-6,
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            {"num_kv_heads": 3, "num_heads": 2},
            "`num_heads` must be divisible by `num_kv_heads`; got num_heads=2, num_kv_heads=3.",
        ),
        ({"window": 0}, "`window` must be None or a positive integer; got window=0."),
        (
            {"qk_norm": "batch"},
            "`qk_norm` must be None or one of ['layer', 'rms']; got qk_norm='batch'.",
        ),
        (
            {"logit_softcap": -1.0},
            "`logit_softcap` must be None or a positive finite number; got logit_softcap=-1.0.",
        ),
        (
            {"position_bias": True},
            "`position_bias` must be None or one of ['alibi', 't5']; got position_bias=True.",
        ),
        ({"use_rotary": "yes"}, "`use_rotary` must be True or False; got use_rotary='yes'."),
        (
            {"rotary_scaling": "dynamic"},
            "`rotary_scaling` must be None or one of ['linear', 'ntk', 'yarn']; got rotary_scaling='dynamic'.",
        ),
        (
            {"num_hiddens": 6, "num_heads": 2, "use_rotary": True},
            "`use_rotary=True` needs an even head size",
        ),
    ],
)
def test_bad_variant_arguments_raise(kwargs, match):
    import re

    args = {"num_hiddens": D, "ffn_num_hiddens": F, "num_heads": H, "dropout": 0.0, **kwargs}
    with pytest.raises(ValueError, match=re.escape(match)):
        GPTBlock(**args)
