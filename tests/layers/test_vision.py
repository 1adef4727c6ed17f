import math
import re

import keras
import numpy as np
import pytest
from keras import ops

from keras_attention.layers import (
    ClassToken,
    PatchEmbedding,
    TakeClassToken,
    ViTBlock,
    ViTMLP,
)

from helpers import mask_from, run_layer_test

D, F, H = 8, 16, 2  # num_hiddens, mlp_num_hiddens, num_heads


def rand(*shape, seed=0, scale=1.0):
    return (np.random.RandomState(seed).randn(*shape) * scale).astype("float32")


def to_np(x):
    return ops.convert_to_numpy(x)


def randomize(layer, seed=1):
    """Random weights everywhere, gamma near 1, so no weight is trivial."""
    rng = np.random.RandomState(seed)
    for w in layer.weights:
        value = rng.randn(*w.shape) * 0.4
        if w.name == "gamma":
            value = 1.0 + 0.2 * value
        w.assign(value.astype("float32"))


# ---------------------------------------------------------------------------
# numpy references (D2L's equations)
# ---------------------------------------------------------------------------


def np_patch_embedding(X, kernel, bias, patch_size):
    """Each `(p_h, p_w, C)` patch, flattened, times the kernel as a matrix."""
    b, h, w, c = X.shape
    ph, pw = patch_size
    patches = X.reshape(b, h // ph, ph, w // pw, pw, c).transpose(0, 1, 3, 2, 4, 5)
    patches = patches.reshape(
        b, (h // ph) * (w // pw), ph * pw * c
    )  # (B, P, p_h p_w C), row by row
    return patches @ kernel.reshape(ph * pw * c, -1) + bias


def np_gelu(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def np_layer_norm(x, gamma, beta, eps=1e-5):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def np_mlp(x, mlp):
    w1, b1, w2, b2 = (
        to_np(w) for w in (mlp.dense1.kernel, mlp.dense1.bias, mlp.dense2.kernel, mlp.dense2.bias)
    )
    return np_gelu(x @ w1 + b1) @ w2 + b2


def np_mha(x, att, num_heads, mask):
    """Multi-head self-attention, optional biases; mask `(B, Q, K)` True = attend."""

    def dense(layer, v):
        out = v @ to_np(layer.kernel)
        return out + to_np(layer.bias) if layer.use_bias else out

    def split(v):  # (B, T, D) -> (B, H, T, D/H)
        b, t, d = v.shape
        return v.reshape(b, t, num_heads, d // num_heads).transpose(0, 2, 1, 3)

    q, k, v = split(dense(att.W_q, x)), split(dense(att.W_k, x)), split(dense(att.W_v, x))
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(q.shape[-1])  # (B, H, Q, K)
    scores = np.where(mask[:, None], scores, -1e30)
    e = np.exp(scores - scores.max(-1, keepdims=True)) * mask[:, None]
    weights = e / e.sum(-1, keepdims=True)
    out = (weights @ v).transpose(0, 2, 1, 3)  # (B, Q, H, d)
    return dense(att.W_o, out.reshape(out.shape[0], out.shape[1], -1)), weights


def np_vit_block(X, block, valid_lens):
    X = X.astype(np.float64)
    t = X.shape[1]
    mask = np.arange(t)[None, None, :] < np.asarray(valid_lens)[:, None, None]
    mask = np.broadcast_to(mask, (X.shape[0], t, t))
    ln1 = (to_np(block.ln1.gamma), to_np(block.ln1.beta))
    ln2 = (to_np(block.ln2.gamma), to_np(block.ln2.beta))
    attended, weights = np_mha(np_layer_norm(X, *ln1), block.attention, block.num_heads, mask)
    X = X + attended
    return X + np_mlp(np_layer_norm(X, *ln2), block.mlp), weights


# ---------------------------------------------------------------------------
# shared layer checks
# ---------------------------------------------------------------------------

MASK = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)


@pytest.mark.parametrize(
    "init_kwargs, symbolic_shapes",
    [
        ({"img_size": 8, "patch_size": 4, "num_hiddens": D}, None),
        (
            {"img_size": (8, 8), "patch_size": (2, 4), "num_hiddens": D, "num_channels": 3},
            [(8, 8, 3)],
        ),
    ],
)
def test_patch_embedding_shared_layer_checks(init_kwargs, symbolic_shapes):
    layer = PatchEmbedding(**init_kwargs)
    run_layer_test(
        PatchEmbedding,
        init_kwargs,
        rand(2, 8, 8, 3),
        expected_output_shape=(2, layer.num_patches, D),
        symbolic_shapes=symbolic_shapes,
    )


@pytest.mark.parametrize("input_mask", [None, MASK])
def test_class_token_shared_layer_checks(input_mask):
    run_layer_test(
        ClassToken,
        {"initializer": "random_normal"},
        rand(2, 5, 4),
        expected_output_shape=(2, 6, 4),
        input_mask=input_mask,
    )


@pytest.mark.parametrize("input_mask", [None, MASK])
def test_take_class_token_shared_layer_checks(input_mask):
    run_layer_test(
        TakeClassToken,
        {},
        rand(2, 5, 4),
        expected_output_shape=(2, 4),
        input_mask=input_mask,
        expect_output_mask=False,
    )


@pytest.mark.parametrize("input_mask", [None, MASK])
def test_vit_mlp_shared_layer_checks(input_mask):
    run_layer_test(
        ViTMLP,
        {"mlp_num_hiddens": F, "mlp_num_outputs": 6, "dropout": 0.5},
        rand(2, 5, 4),
        expected_output_shape=(2, 5, 6),
        input_mask=input_mask,
    )


@pytest.mark.parametrize("use_bias, input_mask", [(False, None), (True, MASK)])
def test_vit_block_shared_layer_checks(use_bias, input_mask):
    run_layer_test(
        ViTBlock,
        {
            "num_hiddens": D,
            "mlp_num_hiddens": F,
            "num_heads": H,
            "dropout": 0.5,
            "use_bias": use_bias,
        },
        rand(2, 5, D),
        call_kwargs={"valid_lens": np.array([3, 5], "int32")},
        expected_output_shape=(2, 5, D),
        input_mask=input_mask,
    )


def test_vit_block_returns_attention_scores():
    run_layer_test(
        ViTBlock,
        {"num_hiddens": D, "mlp_num_hiddens": F, "num_heads": H, "dropout": 0.1},
        rand(2, 5, D),
        call_kwargs={"return_attention_scores": True},
        expected_output_shape=[(2, 5, D), (2, H, 5, 5)],
    )


# ---------------------------------------------------------------------------
# numbers
# ---------------------------------------------------------------------------


def test_d2l_shape_examples():
    X = np.zeros((4, 32, 32, 3), "float32")
    out = PatchEmbedding(img_size=32, patch_size=16, num_hiddens=24)(X)
    assert tuple(out.shape) == (4, (32 // 16) ** 2, 24)
    X = np.ones((2, 10, 24), "float32")
    assert tuple(ViTBlock(24, 48, 8, 0.5)(X, training=False).shape) == X.shape


@pytest.mark.parametrize("img_size, patch_size", [(8, 4), ((8, 12), (2, 4))])
def test_patch_embedding_is_a_matmul_of_flattened_patches(img_size, patch_size):
    layer = PatchEmbedding(img_size, patch_size, num_hiddens=D, num_channels=2)
    X = rand(3, *layer.img_size, 2)
    layer(X)
    randomize(layer)
    out = to_np(layer(X))
    expected = np_patch_embedding(
        X.astype(np.float64), to_np(layer.conv.kernel), to_np(layer.conv.bias), layer.patch_size
    )
    assert layer.num_patches == (layer.img_size[0] // layer.patch_size[0]) * (
        layer.img_size[1] // layer.patch_size[1]
    )
    np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-5)
    assert [w.path for w in layer.weights] == [
        f"{layer.name}/conv/kernel",
        f"{layer.name}/conv/bias",
    ]


def test_class_token_is_prepended_and_taken_back():
    layer = ClassToken()
    X = rand(2, 3, 4)
    out = to_np(layer(X))
    np.testing.assert_array_equal(out[:, 0], np.zeros((2, 4)))  # zeros at first, as in D2L
    layer.token.assign(rand(1, 1, 4, seed=3))
    out = to_np(layer(X))
    np.testing.assert_array_equal(out[:, 1:], X)
    np.testing.assert_array_equal(out[:, 0], np.broadcast_to(rand(1, 1, 4, seed=3)[0], (2, 4)))
    np.testing.assert_array_equal(to_np(TakeClassToken()(out)), out[:, 0])


def test_class_token_mask_gets_true_in_front():
    out = ClassToken()(mask_from(rand(2, 5, 4), MASK))
    np.testing.assert_array_equal(to_np(out._keras_mask), np.concatenate([[[1], [1]], MASK], 1))


def test_vit_mlp_matches_numpy_and_drops_out_when_training():
    layer = ViTMLP(F, 6, dropout=0.5)
    X = rand(2, 5, 4)
    layer(X)
    randomize(layer)
    out = to_np(layer(X, training=False))
    np.testing.assert_allclose(out, np_mlp(X.astype(np.float64), layer), atol=1e-5, rtol=1e-5)
    assert not np.allclose(to_np(layer(X, training=True)), out)


@pytest.mark.parametrize("use_bias, valid_lens", [(False, [5, 5]), (True, [2, 4])])
def test_vit_block_matches_numpy(use_bias, valid_lens):
    block = ViTBlock(D, F, H, dropout=0.2, use_bias=use_bias)
    X = rand(2, 5, D)
    block(X)
    randomize(block)
    out, weights = block(
        X, valid_lens=np.array(valid_lens, "int32"), training=False, return_attention_scores=True
    )
    expected, expected_weights = np_vit_block(X, block, valid_lens)
    np.testing.assert_allclose(to_np(out), expected, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(to_np(weights), expected_weights, atol=1e-5)
    assert block.ln1.epsilon == block.ln2.epsilon == 1e-5
    paths = {w.path.split("/", 1)[1] for w in block.weights}
    assert {"ln1/gamma", "attention/W_q/kernel", "ln2/beta", "mlp/dense1/kernel"} <= paths


def test_vit_block_padding_does_not_change_valid_outputs():
    block = ViTBlock(D, F, H, dropout=0.0)
    X = rand(2, 5, D)
    block(X)
    randomize(block)
    padded = to_np(block(X, valid_lens=np.array([3, 3], "int32")))
    alone = to_np(block(X[:, :3]))
    np.testing.assert_allclose(padded[:, :3], alone, atol=1e-5)
    masked = to_np(block(mask_from(X, MASK)))
    np.testing.assert_allclose(masked[0, :3], alone[0], atol=1e-5)


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"img_size": 10, "patch_size": 4},
            "`img_size` must be divisible by `patch_size` in both height and width; "
            "got img_size=(10, 10), patch_size=(4, 4).",
        ),
        (
            {"img_size": (8, 6), "patch_size": (4, 4)},
            "`img_size` must be divisible by `patch_size`",
        ),
        (
            {"img_size": (8, 8, 8)},
            "`img_size` must be a positive integer or a pair of positive "
            "integers; got img_size=(8, 8, 8).",
        ),
        (
            {"img_size": 8, "patch_size": (4, 0)},
            "`patch_size` must be a positive integer or a pair "
            "of positive integers; got patch_size=(4, 0).",
        ),
        (
            {"img_size": 8, "patch_size": 0},
            "`patch_size` must be a positive integer or a pair of "
            "positive integers; got patch_size=0.",
        ),
        (
            {"img_size": 8, "patch_size": 1.5},
            "`patch_size` must be a positive integer or a pair of "
            "positive integers; got patch_size=1.5.",
        ),
        (
            {"img_size": 8, "patch_size": 4, "num_hiddens": 0},
            "`num_hiddens` must be a positive integer",
        ),
        (
            {"img_size": 8, "patch_size": 4, "num_channels": 2.0},
            "`num_channels` must be a positive integer; got num_channels=2.0.",
        ),
    ],
)
def test_patch_embedding_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        PatchEmbedding(**kwargs)


@pytest.mark.parametrize(
    "shape, kwargs, message",
    [
        (
            (None, 8, 8),
            {},
            "`X` must be 4-D channels-last images (batch, height, width, "
            "channels); got X.shape=(None, 8, 8).",
        ),
        (
            (None, 12, 8, 3),
            {},
            "The image height must match `img_size`=(8, 8) (resize the "
            "images first); got X.shape=(None, 12, 8, 3).",
        ),
        ((None, 8, 4, 3), {}, "The image width must match `img_size`=(8, 8)"),
        (
            (None, 8, 8, 1),
            {"num_channels": 3},
            "The images must have `num_channels`=3 channels (last axis); got X.shape=(None, 8, 8, 1).",
        ),
        (
            (None, 8, 8, None),
            {},
            "The channel axis of `X` must be known, or `num_channels` "
            "given; got X.shape=(None, 8, 8, None), num_channels=None.",
        ),
    ],
)
def test_patch_embedding_shape_errors(shape, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        PatchEmbedding(8, 4, D, **kwargs).build(shape)


def test_patch_embedding_checks_every_call():
    layer = PatchEmbedding(8, 4, D)
    layer(rand(1, 8, 8, 3))
    with pytest.raises(ValueError, match=re.escape("got X.shape=(1, 12, 12, 3)")):
        layer(rand(1, 12, 12, 3))
    with pytest.raises(ValueError, match="The image height must match `img_size`"):
        PatchEmbedding(8, 4, D)(keras.Input(shape=(16, 16, 3)))


@pytest.mark.parametrize(
    "layer, shape, message",
    [
        (
            ClassToken(),
            (None, 4),
            "`X` must be 3-D (batch, length, num_hiddens); got X.shape=(None, 4).",
        ),
        (
            ClassToken(),
            (None, 5, None),
            "The last axis of `X` (num_hiddens) must be known; got X.shape=(None, 5, None).",
        ),
        (TakeClassToken(), (None, 2, 5, 4), "`X` must be 3-D (batch, length, num_hiddens)"),
        (ViTBlock(D, F, H, 0.1), (None, 5), "`X` must be 3-D"),
        (
            ViTBlock(D, F, H, 0.1),
            (None, 5, 6),
            "The last axis of `X` must equal `num_hiddens`=8; got X.shape=(None, 5, 6).",
        ),
    ],
)
def test_shape_errors(layer, shape, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        layer.build(shape)


@pytest.mark.parametrize(
    "build, message",
    [
        (
            lambda: ClassToken(initializer="nope"),
            "`initializer` must be a Keras initializer or its name; got initializer='nope'.",
        ),
        (
            lambda: ViTMLP(0, 4),
            "`mlp_num_hiddens` must be a positive integer; got mlp_num_hiddens=0.",
        ),
        (lambda: ViTMLP(4, None), "`mlp_num_outputs` must be a positive integer"),
        (
            lambda: ViTMLP(4, 4, dropout=1.0),
            "`dropout` must be a float in [0, 1); got dropout=1.0.",
        ),
        (
            lambda: ViTBlock(10, F, 3, 0.1),
            "`num_hiddens` must be divisible by `num_heads`; got num_hiddens=10, num_heads=3.",
        ),
        (lambda: ViTBlock(D, 0, H, 0.1), "`mlp_num_hiddens` must be a positive integer"),
        (lambda: ViTBlock(D, F, H, -0.1), "`dropout` must be a float in [0, 1)"),
        (
            lambda: ViTBlock(D, F, H, 0.1, use_bias=1),
            "`use_bias` must be True or False; got use_bias=1.",
        ),
    ],
)
def test_argument_errors(build, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        build()


def test_vision_layers_check_inputs_on_every_call():
    block = ViTBlock(D, F, H, 0.0)
    block(rand(2, 3, D))
    with pytest.raises(
        TypeError, match=re.escape("`X` must be a float tensor; got X.dtype=int32.")
    ):
        block(np.ones((2, 3, D), "int32"))
    with pytest.raises(
        ValueError,
        match=re.escape("`X` must be 3-D (batch, length, num_hiddens); got X.shape=(2, 8)."),
    ):
        block(rand(2, D))
    token = ClassToken()
    token(rand(2, 3, D))
    with pytest.raises(
        ValueError,
        match=re.escape(
            "The last axis of `X` must equal `num_hiddens`=8 (the size of the class token); got X.shape=(2, 3, 6)."
        ),
    ):
        token(rand(2, 3, 6))
    with pytest.raises(
        TypeError, match=re.escape("`X` must be a float tensor; got X.dtype=int32.")
    ):
        token(np.ones((2, 3, D), "int32"))
    with pytest.raises(
        ValueError,
        match=re.escape(
            "`X` must have at least one position (the class token); got X.shape=(2, 0, 8)."
        ),
    ):
        TakeClassToken()(rand(2, 0, D))
    with pytest.raises(
        TypeError,
        match=re.escape(
            "`X` must be float images (rescale uint8 pixels first); got X.dtype=uint8."
        ),
    ):
        PatchEmbedding(8, 4, D)(np.zeros((1, 8, 8, 3), "uint8"))
    mlp = ViTMLP(F, D)
    with pytest.raises(
        TypeError, match=re.escape("`X` must be a float tensor; got X.dtype=int32.")
    ):
        mlp(np.ones((2, 3, D), "int32"))
    assert tuple(mlp(rand(2, D)).shape) == (2, D)  # position-wise: the class token's (B, D) too
    with pytest.raises(
        ValueError,
        match=re.escape(
            "The last axis of `X` must equal 8 (the width the layer was built with); got X.shape=(2, 6)."
        ),
    ):
        mlp(rand(2, 6))
