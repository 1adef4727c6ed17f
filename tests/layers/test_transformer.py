import re

import keras
import numpy as np
import pytest
from keras import ops

from keras_attention.layers import (
    AddNorm,
    PositionWiseFFN,
    TransformerDecoderBlock,
    TransformerEncoderBlock,
)

from helpers import mask_from, run_layer_test

D, F, H = 8, 16, 2  # num_hiddens, ffn_num_hiddens, num_heads


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


def np_layer_norm(x, gamma, beta, eps=1e-5):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def np_ffn(x, w1, b1, w2, b2):
    return np.maximum(x @ w1 + b1, 0.0) @ w2 + b2


def np_masked_softmax(scores, mask):
    scores = np.where(mask, scores, -1e30)
    e = np.exp(scores - scores.max(-1, keepdims=True)) * mask
    total = e.sum(-1, keepdims=True)
    return e / np.where(total > 0, total, 1.0)


def np_mha(queries, keys, values, wq, wk, wv, wo, num_heads, mask):
    """Multi-head attention without biases; mask `(B, Q, K)` True = attend."""

    def split(x):  # (B, T, D) -> (B, H, T, D/H)
        b, t, d = x.shape
        return x.reshape(b, t, num_heads, d // num_heads).transpose(0, 2, 1, 3)

    q, k, v = split(queries @ wq), split(keys @ wk), split(values @ wv)
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(q.shape[-1])  # (B, H, Q, K)
    weights = np_masked_softmax(scores, mask[:, None])
    out = (weights @ v).transpose(0, 2, 1, 3)  # (B, Q, H, d)
    return out.reshape(out.shape[0], out.shape[1], -1) @ wo, weights


def np_weights(block):
    att = block.attention
    return dict(
        wq=to_np(att.W_q.kernel),
        wk=to_np(att.W_k.kernel),
        wv=to_np(att.W_v.kernel),
        wo=to_np(att.W_o.kernel),
        ffn=[
            to_np(w)
            for w in (
                block.ffn.dense1.kernel,
                block.ffn.dense1.bias,
                block.ffn.dense2.kernel,
                block.ffn.dense2.bias,
            )
        ],
        ln1=(to_np(block.addnorm1.ln.gamma), to_np(block.addnorm1.ln.beta)),
        ln2=(to_np(block.addnorm2.ln.gamma), to_np(block.addnorm2.ln.beta)),
    )


def np_encoder_block(X, block, valid_lens, norm_first):
    w = np_weights(block)
    X = X.astype(np.float64)
    t = X.shape[1]
    mask = np.arange(t)[None, None, :] < np.asarray(valid_lens)[:, None, None]
    mask = np.broadcast_to(mask, (X.shape[0], t, t))

    def attend(Q):
        return np_mha(Q, Q, Q, w["wq"], w["wk"], w["wv"], w["wo"], block.num_heads, mask)

    if norm_first:
        attended, weights = attend(np_layer_norm(X, *w["ln1"]))
        Y = X + attended
        return Y + np_ffn(np_layer_norm(Y, *w["ln2"]), *w["ffn"]), weights
    attended, weights = attend(X)
    Y = np_layer_norm(X + attended, *w["ln1"])
    return np_layer_norm(Y + np_ffn(Y, *w["ffn"]), *w["ln2"]), weights


# ---------------------------------------------------------------------------
# shared layer checks
# ---------------------------------------------------------------------------

MASK = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)


@pytest.mark.parametrize("activation, input_mask", [("relu", None), ("gelu", MASK)])
def test_ffn_shared_layer_checks(activation, input_mask):
    run_layer_test(
        PositionWiseFFN,
        {"ffn_num_hiddens": 8, "ffn_num_outputs": 6, "activation": activation},
        rand(2, 5, 4),
        expected_output_shape=(2, 5, 6),
        input_mask=input_mask,
    )


@pytest.mark.parametrize("input_mask", [None, MASK])
def test_addnorm_shared_layer_checks(input_mask):
    run_layer_test(
        AddNorm,
        {"dropout": 0.5, "epsilon": 1e-3},
        [rand(2, 5, 4), rand(2, 5, 4, seed=1)],
        expected_output_shape=(2, 5, 4),
        input_mask=input_mask,
    )


@pytest.mark.parametrize("norm_first, input_mask", [(False, None), (True, MASK)])
def test_encoder_block_shared_layer_checks(norm_first, input_mask):
    run_layer_test(
        TransformerEncoderBlock,
        {
            "num_hiddens": D,
            "ffn_num_hiddens": F,
            "num_heads": H,
            "dropout": 0.5,
            "norm_first": norm_first,
        },
        rand(2, 5, D),
        call_kwargs={"valid_lens": np.array([3, 5], "int32")},
        expected_output_shape=(2, 5, D),
        input_mask=input_mask,
    )


@pytest.mark.parametrize("norm_first, input_mask", [(False, MASK), (True, None)])
def test_encoder_block_returns_attention_scores(norm_first, input_mask):
    run_layer_test(
        TransformerEncoderBlock,
        {
            "num_hiddens": D,
            "ffn_num_hiddens": F,
            "num_heads": H,
            "dropout": 0.1,
            "use_bias": True,
            "norm_first": norm_first,
        },
        rand(2, 5, D),
        call_kwargs={"valid_lens": np.array([3, 5], "int32"), "return_attention_scores": True},
        expected_output_shape=[(2, 5, D), (2, H, 5, 5)],
        input_mask=input_mask,
    )


@pytest.mark.parametrize(
    "norm_first, input_mask", [(False, None), (True, np.array([[1, 1, 0, 0], [1, 1, 1, 1]], bool))]
)
def test_decoder_block_shared_layer_checks(norm_first, input_mask):
    run_layer_test(
        TransformerDecoderBlock,
        {
            "num_hiddens": D,
            "ffn_num_hiddens": F,
            "num_heads": H,
            "dropout": 0.5,
            "norm_first": norm_first,
        },
        [rand(2, 4, D), rand(2, 6, D, seed=1)],
        call_kwargs={"enc_valid_lens": np.array([6, 2], "int32")},
        expected_output_shape=(2, 4, D),
        input_mask=input_mask,
    )


def test_decoder_block_returns_attention_scores():
    run_layer_test(
        TransformerDecoderBlock,
        {
            "num_hiddens": D,
            "ffn_num_hiddens": F,
            "num_heads": H,
            "dropout": 0.1,
            "norm_first": True,
            "use_bias": True,
        },
        [rand(2, 4, D), rand(2, 6, D, seed=1)],
        call_kwargs={"enc_valid_lens": np.array([6, 2], "int32"), "return_attention_scores": True},
        expected_output_shape=[(2, 4, D), (2, H, 4, 4), (2, H, 4, 6)],
    )


def test_decoder_block_with_cache_shared_layer_checks():
    """The cache is an input and an output of a functional model too."""
    run_layer_test(
        TransformerDecoderBlock,
        {"num_hiddens": D, "ffn_num_hiddens": F, "num_heads": H, "dropout": 0.0},
        [rand(2, 1, D), rand(2, 6, D, seed=1)],
        call_kwargs={
            "cache": np.zeros((2, 2, 5, D), "float32"),
            "cache_update_index": 0,
            "return_attention_scores": True,
        },
        expected_output_shape=[(2, 1, D), (2, H, 1, 5), (2, H, 1, 6), (2, 2, 5, D)],
        # The cache is for inference: on TensorFlow `ops.slice_update` is
        # XlaDynamicUpdateSlice, which has no registered gradient outside XLA.
        check_fit=False,
    )


def test_d2l_shape_examples():
    """D2L: ffn(ones(2, 3, 4)) -> (2, 3, 8); blocks keep X's shape."""
    ffn = PositionWiseFFN(4, 8)
    assert tuple(ffn(np.ones((2, 3, 4), "float32")).shape) == (2, 3, 8)
    add_norm = AddNorm(0.5)
    shape = (2, 3, 4)
    assert tuple(add_norm(np.ones(shape), np.ones(shape), training=False).shape) == shape
    X = np.ones((2, 100, 24), "float32")
    valid_lens = np.array([3, 2], "int32")
    encoder_blk = TransformerEncoderBlock(24, 48, 8, 0.5)
    assert tuple(encoder_blk(X, valid_lens, training=False).shape) == X.shape
    decoder_blk = TransformerDecoderBlock(24, 48, 8, 0.5)
    assert tuple(decoder_blk(X, encoder_blk(X, valid_lens), valid_lens).shape) == X.shape


# ---------------------------------------------------------------------------
# numeric references
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_ffn_matches_numpy(activation):
    X = rand(2, 3, 4)
    ffn = PositionWiseFFN(8, 5, activation=activation)
    out = to_np(ffn(X))
    w1, b1, w2, b2 = (
        to_np(w) for w in (ffn.dense1.kernel, ffn.dense1.bias, ffn.dense2.kernel, ffn.dense2.bias)
    )
    act = {"relu": lambda x: np.maximum(x, 0.0), "tanh": np.tanh}[activation]
    np.testing.assert_allclose(out, act(X @ w1 + b1) @ w2 + b2, atol=1e-5)


@pytest.mark.parametrize("epsilon", [1e-5, 1e-3])
def test_addnorm_matches_numpy(epsilon):
    X, Y = rand(2, 3, 4), rand(2, 3, 4, seed=1)
    layer = AddNorm(dropout=0.5, epsilon=epsilon)
    layer(X, Y)
    randomize(layer)
    gamma, beta = to_np(layer.ln.gamma), to_np(layer.ln.beta)
    assert not np.allclose(gamma, 1.0) and not np.allclose(beta, 0.0)
    out = to_np(layer(X, Y, training=False))
    expected = np_layer_norm(X.astype(np.float64) + Y, gamma, beta, eps=epsilon)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert layer.ln.epsilon == epsilon


def test_addnorm_default_epsilon_is_1e_5():
    layer = AddNorm()
    layer(rand(1, 2, 4), rand(1, 2, 4))
    assert layer.epsilon == 1e-5 and layer.ln.epsilon == 1e-5
    # Small variance: epsilon matters, and 1e-5 (not Keras' 1e-3) is used.
    X = rand(1, 2, 4, scale=0.01)
    expected = np_layer_norm(X.astype(np.float64), 1.0, 0.0, eps=1e-5)
    np.testing.assert_allclose(to_np(layer(X, np.zeros_like(X))), expected, atol=1e-4)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("valid_lens", [[3, 5, 1], [5, 5, 0]])
def test_encoder_block_matches_numpy(norm_first, valid_lens):
    X = rand(3, 5, D)
    valid_lens = np.array(valid_lens, "int32")
    block = TransformerEncoderBlock(D, F, H, dropout=0.3, norm_first=norm_first)
    block(X, valid_lens)
    randomize(block)
    out, weights = block(X, valid_lens, training=False, return_attention_scores=True)
    expected, exp_weights = np_encoder_block(X, block, valid_lens, norm_first)
    np.testing.assert_allclose(to_np(weights), exp_weights, atol=1e-5)
    np.testing.assert_allclose(to_np(out), expected, atol=1e-5)
    # The fused path (no weights requested) gives the same numbers.
    np.testing.assert_allclose(to_np(block(X, valid_lens)), expected, atol=1e-5)


# ---------------------------------------------------------------------------
# masks: padding invariance and causality
# ---------------------------------------------------------------------------


def perturb_after(X, lens, seed=5):
    """X with every position `t >= lens[b]` of row `b` replaced by noise."""
    X2 = X.copy()
    noise = rand(*X.shape, seed=seed, scale=3.0)
    for b, n in enumerate(lens):
        X2[b, n:] = noise[b, n:]
    return X2


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_padding_does_not_change_valid_outputs(norm_first):
    X = rand(2, 6, D)
    lens = np.array([3, 6], "int32")
    X2 = perturb_after(X, lens)
    block = TransformerEncoderBlock(D, F, H, 0.0, norm_first=norm_first)
    out1, out2 = to_np(block(X, lens)), to_np(block(X2, lens))
    np.testing.assert_allclose(out2[0, :3], out1[0, :3], atol=1e-6)
    np.testing.assert_allclose(out2[1], out1[1], atol=1e-6)
    # Without valid_lens the padding would leak.
    assert not np.allclose(to_np(block(X2))[0, :3], to_np(block(X))[0, :3], atol=1e-4)


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_keras_mask_padding_does_not_change_valid_outputs(norm_first):
    X = rand(2, 6, D)
    lens = np.array([3, 6], "int32")
    mask = np.arange(6)[None] < lens[:, None]
    X2 = perturb_after(X, lens)
    block = TransformerEncoderBlock(D, F, H, 0.0, norm_first=norm_first)
    out1 = to_np(block(mask_from(X, mask)))
    out2 = to_np(block(mask_from(X2, mask)))
    np.testing.assert_allclose(out2[0, :3], out1[0, :3], atol=1e-6)
    np.testing.assert_allclose(out2[1], out1[1], atol=1e-6)
    # The Keras mask does what valid_lens does at the valid positions.
    np.testing.assert_allclose(out1[0, :3], to_np(block(X, lens))[0, :3], atol=1e-6)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_encoder_padding_does_not_change_outputs(norm_first):
    X = rand(2, 4, D)
    enc = rand(2, 6, D, seed=1)
    lens = np.array([2, 6], "int32")
    enc2 = perturb_after(enc, lens)
    block = TransformerDecoderBlock(D, F, H, 0.0, norm_first=norm_first)
    out1 = to_np(block(X, enc, enc_valid_lens=lens))
    out2 = to_np(block(X, enc2, enc_valid_lens=lens))
    np.testing.assert_allclose(out2, out1, atol=1e-6)
    assert not np.allclose(to_np(block(X, enc2))[0], to_np(block(X, enc))[0], atol=1e-4)
    # The same with a Keras mask on enc_outputs.
    mask = np.arange(6)[None] < lens[:, None]
    out3 = to_np(block(X, mask_from(enc, mask)))
    out4 = to_np(block(X, mask_from(enc2, mask)))
    np.testing.assert_allclose(out4, out3, atol=1e-6)
    np.testing.assert_allclose(out3, out1, atol=1e-6)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("t", [1, 3, 4])
def test_decoder_position_never_sees_a_later_one(norm_first, t):
    X = rand(2, 5, D)
    enc = rand(2, 3, D, seed=1)
    X2 = X.copy()
    X2[:, t] = rand(2, D, seed=7, scale=3.0)
    block = TransformerDecoderBlock(D, F, H, 0.0, norm_first=norm_first)
    out1, self_w = block(X, enc, return_attention_scores=True)[:2]
    out2 = block(X2, enc)
    out1, out2 = to_np(out1), to_np(out2)
    np.testing.assert_allclose(out2[:, :t], out1[:, :t], atol=1e-6)
    assert not np.allclose(out2[:, t], out1[:, t], atol=1e-4)
    # Weights above the diagonal are exactly zero.
    self_w = to_np(self_w)
    np.testing.assert_array_equal(self_w * np.triu(np.ones((5, 5)), 1), 0.0)


# ---------------------------------------------------------------------------
# incremental decoding with a cache
# ---------------------------------------------------------------------------


def decode_in_chunks(block, X, enc, enc_lens, chunks, cache_len):
    cache = np.zeros((X.shape[0], 2, cache_len, X.shape[-1]), "float32")
    outputs, start = [], 0
    for size in chunks:
        out, cache = block(
            X[:, start : start + size],
            enc,
            enc_valid_lens=enc_lens,
            cache=cache,
            cache_update_index=start,
        )
        assert tuple(cache.shape) == (X.shape[0], 2, cache_len, X.shape[-1])
        outputs.append(to_np(out))
        start += size
    return np.concatenate(outputs, axis=1)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("chunks", [[1, 1, 1, 1, 1], [2, 1, 1, 1]])
def test_incremental_decoding_equals_full_pass(norm_first, chunks):
    X, enc = rand(2, 5, D), rand(2, 4, D, seed=1)
    enc_lens = np.array([4, 2], "int32")
    block = TransformerDecoderBlock(D, F, H, 0.2, norm_first=norm_first, use_bias=True)
    full = to_np(block(X, enc, enc_valid_lens=enc_lens))
    # A cache longer than the sequence: its empty tail is never attended.
    steps = decode_in_chunks(block, X, enc, enc_lens, chunks, cache_len=7)
    np.testing.assert_allclose(steps, full, atol=1e-5)


def test_incremental_decoding_attention_scores_and_cache():
    X, enc = rand(2, 3, D), rand(2, 4, D, seed=1)
    block = TransformerDecoderBlock(D, F, H, 0.0)
    _, full_self, full_cross = block(X, enc, return_attention_scores=True)
    cache = np.zeros((2, 2, 3, D), "float32")
    for i in range(3):
        out, self_w, cross_w, cache = block(
            X[:, i : i + 1],
            enc,
            cache=cache,
            cache_update_index=i,
            return_attention_scores=True,
        )
        assert tuple(self_w.shape) == (2, H, 1, 3)
        assert tuple(cross_w.shape) == (2, H, 1, 4)
        np.testing.assert_allclose(to_np(self_w)[:, :, 0], to_np(full_self)[:, :, i], atol=1e-6)
        np.testing.assert_allclose(to_np(cross_w)[:, :, 0], to_np(full_cross)[:, :, i], atol=1e-6)
    # The final cache holds W_k X and W_v X of the whole sequence.
    cache = to_np(cache)
    np.testing.assert_allclose(cache[:, 0], to_np(block.attention1.W_k(X)), atol=1e-6)
    np.testing.assert_allclose(cache[:, 1], to_np(block.attention1.W_v(X)), atol=1e-6)


@pytest.mark.tensorflow_only(reason="tf.function with XLA")
@pytest.mark.parametrize("norm_first", [False, True])
def test_incremental_decoding_in_tf_function_with_xla(norm_first):
    import tensorflow as tf

    X, enc = rand(2, 5, D), rand(2, 4, D, seed=1)
    enc_lens = np.array([3, 4], "int32")
    block = TransformerDecoderBlock(D, F, H, 0.0, norm_first=norm_first)
    full = to_np(block(X, enc, enc_valid_lens=enc_lens))

    @tf.function(jit_compile=True)
    def step(x, cache, index):
        return block(x, enc, enc_valid_lens=enc_lens, cache=cache, cache_update_index=index)

    cache = tf.zeros((2, 2, 5, D))
    outputs = []
    for i in range(5):
        out, cache = step(X[:, i : i + 1], cache, tf.constant(i, "int32"))
        outputs.append(to_np(out))
    np.testing.assert_allclose(np.concatenate(outputs, 1), full, atol=1e-5)
    # One trace serves every step: the index is a run-time value.
    assert step.experimental_get_tracing_count() == 1

    # The whole loop inside one compiled graph.
    @tf.function(jit_compile=True)
    def decode(X):
        cache = tf.zeros((2, 2, 5, D))
        outs = tf.TensorArray(tf.float32, size=5)
        for i in tf.range(5):
            # tf.slice, not X[:, i:i + 1]: a strided slice with a run-time
            # start has a dynamic size under XLA, and TF's XLA
            # dynamic_update_slice then mis-writes it (a TF quirk, not ours).
            out, cache = block(
                tf.slice(X, [0, i, 0], [2, 1, D]),
                enc,
                enc_valid_lens=enc_lens,
                cache=cache,
                cache_update_index=i,
            )
            outs = outs.write(i, out[:, 0])
        return tf.transpose(outs.stack(), (1, 0, 2))

    np.testing.assert_allclose(to_np(decode(tf.constant(X))), full, atol=1e-5)


# ---------------------------------------------------------------------------
# dropout
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [TransformerEncoderBlock, TransformerDecoderBlock])
@pytest.mark.parametrize("norm_first", [False, True])
def test_dropout_only_in_training(cls, norm_first):
    X = rand(2, 5, D)
    args = (X,) if cls is TransformerEncoderBlock else (X, rand(2, 3, D, seed=1))
    block = cls(D, F, H, 0.5, norm_first=norm_first)
    no_dropout = cls(D, F, H, 0.0, norm_first=norm_first)
    block(*args)
    no_dropout(*args)
    no_dropout.set_weights(block.get_weights())
    inference = to_np(block(*args, training=False))
    np.testing.assert_array_equal(to_np(block(*args)), inference)
    np.testing.assert_allclose(inference, to_np(no_dropout(*args, training=True)), atol=1e-6)
    train1, train2 = to_np(block(*args, training=True)), to_np(block(*args, training=True))
    assert not np.allclose(train1, inference, atol=1e-3)
    assert not np.allclose(train1, train2, atol=1e-3)


def test_addnorm_dropout_only_in_training():
    X, Y = rand(2, 5, D), rand(2, 5, D, seed=1)
    layer = AddNorm(0.5)
    inference = to_np(layer(X, Y, training=False))
    np.testing.assert_allclose(inference, to_np(AddNorm(0.0)(X, Y, training=True)), atol=1e-6)
    assert not np.allclose(to_np(layer(X, Y, training=True)), inference, atol=1e-3)


# ---------------------------------------------------------------------------
# bad arguments
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [TransformerEncoderBlock, TransformerDecoderBlock])
def test_num_hiddens_not_divisible_by_num_heads(cls):
    message = "`num_hiddens` must be divisible by `num_heads`; got num_hiddens=100, num_heads=3."
    with pytest.raises(ValueError, match=re.escape(message)):
        cls(100, 8, 3, 0.0)


@pytest.mark.parametrize("cls", [TransformerEncoderBlock, TransformerDecoderBlock])
@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("num_hiddens", dict(num_hiddens=0)),
        ("ffn_num_hiddens", dict(ffn_num_hiddens=2.5)),
        ("num_heads", dict(num_heads=-1)),
    ],
)
def test_non_positive_sizes(cls, name, kwargs):
    args = dict(num_hiddens=D, ffn_num_hiddens=F, num_heads=H, dropout=0.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=f"`{name}` must be a positive integer; got {name}="):
        cls(**args)


@pytest.mark.parametrize("cls", [TransformerEncoderBlock, TransformerDecoderBlock, AddNorm])
@pytest.mark.parametrize("dropout", [1.0, -0.1, "0.1", True])
def test_bad_dropout(cls, dropout):
    with pytest.raises(ValueError, match=r"`dropout` must be a float in \[0, 1\); got dropout="):
        if cls is AddNorm:
            AddNorm(dropout)
        else:
            cls(D, F, H, dropout)


@pytest.mark.parametrize("cls", [TransformerEncoderBlock, TransformerDecoderBlock])
@pytest.mark.parametrize("flag", ["norm_first", "use_bias"])
def test_bad_bool_flags(cls, flag):
    with pytest.raises(ValueError, match=f"`{flag}` must be True or False; got {flag}='yes'"):
        cls(D, F, H, 0.0, **{flag: "yes"})


@pytest.mark.parametrize("activation", ["no_such_activation", 3, None])
def test_bad_activation_name(activation):
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"`activation` must be the name of a Keras activation; got activation={activation!r}."
        ),
    ):
        PositionWiseFFN(8, 4, activation=activation)


@pytest.mark.parametrize("name", ["ffn_num_hiddens", "ffn_num_outputs"])
def test_ffn_bad_sizes(name):
    kwargs = {"ffn_num_hiddens": 8, "ffn_num_outputs": 4, name: 0}
    with pytest.raises(ValueError, match=f"`{name}` must be a positive integer; got {name}=0"):
        PositionWiseFFN(**kwargs)


@pytest.mark.parametrize("epsilon", [0, 0.0, -1e-5, "1e-5", True, float("nan"), float("inf")])
def test_bad_epsilon(epsilon):
    with pytest.raises(
        ValueError,
        match=re.escape(f"`epsilon` must be a positive finite number; got epsilon={epsilon!r}."),
    ):
        AddNorm(epsilon=epsilon)


def test_addnorm_shape_mismatch():
    with pytest.raises(ValueError, match="`X` and `Y` must have the same shape to be added"):
        AddNorm()(np.zeros((2, 3, 4), "float32"), np.zeros((2, 3, 5), "float32"))


@pytest.mark.parametrize("cls", [TransformerEncoderBlock, TransformerDecoderBlock])
def test_x_last_axis_must_equal_num_hiddens(cls):
    X = np.zeros((2, 3, 6), "float32")
    args = (X,) if cls is TransformerEncoderBlock else (X, X)
    message = (
        "The last axis of `X` must equal `num_hiddens`=8 (the residual connection "
        "adds them); got X.shape=(2, 3, 6)."
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        cls(D, F, H, 0.0)(*args)
    # Also on a symbolic input.
    with pytest.raises(ValueError, match=re.escape("got X.shape=(None, None, 6)")):
        sym = keras.Input(shape=(None, 6))
        cls(D, F, H, 0.0)(*((sym,) if cls is TransformerEncoderBlock else (sym, sym)))


@pytest.mark.parametrize("cls", [TransformerEncoderBlock, TransformerDecoderBlock])
@pytest.mark.parametrize("shape", [(2, D), (2, 3, 1, D)])
def test_x_must_be_3d(cls, shape):
    X = np.zeros(shape, "float32")
    args = (X,) if cls is TransformerEncoderBlock else (X, np.zeros((2, 3, D), "float32"))
    message = f"`X` must be 3-D (batch, length, num_hiddens); got X.shape={shape}."
    with pytest.raises(ValueError, match=re.escape(message)):
        cls(D, F, H, 0.0)(*args)


def test_decoder_enc_outputs_must_be_3d():
    X = np.zeros((2, 3, D), "float32")
    with pytest.raises(ValueError, match=re.escape("`enc_outputs` must be 3-D")):
        TransformerDecoderBlock(D, F, H, 0.0)(X, np.zeros((2, D), "float32"))


def test_cache_without_cache_update_index():
    X = rand(2, 1, D)
    block = TransformerDecoderBlock(D, F, H, 0.0)
    with pytest.raises(
        ValueError, match=re.escape("`cache_update_index` is required when `cache` is given.")
    ):
        block(X, rand(2, 3, D), cache=np.zeros((2, 2, 4, D), "float32"))


# ---------------------------------------------------------------------------
# bad inputs on every call (not only the first, which builds)
# ---------------------------------------------------------------------------


def _built(name):
    """A built layer and a call on `(B, T, D)` floats."""
    X, enc = rand(2, 3, D), rand(2, 4, D)
    if name == "encoder":
        layer = TransformerEncoderBlock(D, F, H, 0.0)
        call = lambda X, enc=enc: layer(X)
    elif name == "decoder":
        layer = TransformerDecoderBlock(D, F, H, 0.0)
        call = lambda X, enc=enc: layer(X, enc)
    elif name == "addnorm":
        layer = AddNorm()
        call = lambda X, enc=enc: layer(X, X)
    else:
        layer = PositionWiseFFN(F, D)
        call = lambda X, enc=enc: layer(X)
    call(X)
    return call


@pytest.mark.parametrize("name", ["encoder", "decoder", "addnorm", "ffn"])
def test_integer_inputs_are_a_type_error(name):
    call = _built(name)
    with pytest.raises(
        TypeError, match=re.escape("`X` must be a float tensor; got X.dtype=int32.")
    ):
        call(np.ones((2, 3, D), "int32"))


@pytest.mark.parametrize("name", ["encoder", "decoder", "addnorm", "ffn"])
def test_rank_and_width_are_checked_on_every_call(name):
    call = _built(name)
    if name in ("encoder", "decoder"):
        with pytest.raises(
            ValueError,
            match=re.escape("`X` must be 3-D (batch, length, num_hiddens); got X.shape=(2, 8)."),
        ):
            call(rand(2, D))
    else:  # position-wise: any rank >= 2
        assert tuple(call(rand(2, D)).shape) == (2, D)
        with pytest.raises(
            ValueError,
            match=re.escape("`X` must have rank >= 2 (batch, ..., features); got X.shape=(8,)."),
        ):
            call(rand(D))
    with pytest.raises(ValueError, match=re.escape("got X.shape=(2, 3, 6).")):
        call(rand(2, 3, 6))


def test_decoder_enc_outputs_are_checked_on_every_call():
    call = _built("decoder")
    message = "`X`, `enc_outputs` must have the same batch size (axis 0); got X.shape=(2, 3, 8), enc_outputs.shape=(1, 4, 8)."
    with pytest.raises(ValueError, match=re.escape(message)):
        call(rand(2, 3, D), rand(1, 4, D))
    message = "The last axis of `enc_outputs` must equal the 8 features the block was built with; got enc_outputs.shape=(2, 4, 6)."
    with pytest.raises(ValueError, match=re.escape(message)):
        call(rand(2, 3, D), rand(2, 4, 6))
    with pytest.raises(
        TypeError,
        match=re.escape("`enc_outputs` must be a float tensor; got enc_outputs.dtype=int32."),
    ):
        call(rand(2, 3, D), np.ones((2, 4, D), "int32"))


def test_addnorm_does_not_broadcast_a_batch_1_sub_layer_output():
    layer = AddNorm()
    message = "`X` and `Y` must have the same shape to be added; got X.shape=(2, 3, 8), Y.shape=(1, 3, 8)."
    with pytest.raises(ValueError, match=re.escape(message)):
        layer(rand(2, 3, D), rand(1, 3, D))
    layer(rand(2, 3, D), rand(2, 3, D))
    with pytest.raises(ValueError, match=re.escape("got X.shape=(2, 3, 8), Y.shape=(2, 4, 8).")):
        layer(rand(2, 3, D), rand(2, 4, D))


@pytest.mark.parametrize("name", ["encoder", "decoder"])
def test_valid_lens_of_another_batch_are_rejected_by_the_blocks(name):
    layer = (
        TransformerEncoderBlock(D, F, H, 0.0)
        if name == "encoder"
        else TransformerDecoderBlock(D, F, H, 0.0)
    )
    X = rand(2, 3, D)
    kwargs = (
        {"valid_lens": np.array([2])} if name == "encoder" else {"enc_valid_lens": np.array([2])}
    )
    with pytest.raises(ValueError, match=re.escape("must have the same batch size (axis 0)")):
        layer(X, **kwargs) if name == "encoder" else layer(X, X, **kwargs)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_block_cross_cache_gives_the_numbers_of_re_projecting(norm_first):
    block = TransformerDecoderBlock(D, F, H, 0.0, norm_first=norm_first)
    X, enc = rand(2, 1, D, seed=40), rand(2, 4, D, seed=41)
    cache = np.zeros((2, 2, 3, D), "float32")
    block(X, enc, cache=cache, cache_update_index=0)
    randomize(block, seed=42)
    enc_valid_lens = np.array([2, 4], "int32")
    cross_cache = block.project_encoder(enc)
    assert tuple(cross_cache.shape) == (2, 2, 4, D)
    for index in range(3):
        want = block(
            X,
            enc,
            enc_valid_lens=enc_valid_lens,
            cache=cache,
            cache_update_index=index,
            return_attention_scores=True,
        )
        got = block(
            X,
            enc,
            enc_valid_lens=enc_valid_lens,
            cache=cache,
            cache_update_index=index,
            return_attention_scores=True,
            cross_cache=cross_cache,
        )
        for w, g in zip(want, got):
            np.testing.assert_allclose(to_np(g), to_np(w), atol=1e-5)
        cache = want[-1]


# ---------------------------------------------------------------------------
# attention variants on the self-attention
# ---------------------------------------------------------------------------

BLOCK_VARIANTS = {
    "window_gqa": {"window": 2, "num_kv_heads": 1},
    "t5_qk_norm": {"position_bias": "t5", "qk_norm": "rms"},
    "alibi_softcap": {"position_bias": "alibi", "logit_softcap": 3.0},
}


@pytest.mark.parametrize("variant", sorted(BLOCK_VARIANTS))
def test_blocks_with_variants_pass_the_layer_test(variant):
    args = {
        "num_hiddens": D,
        "ffn_num_hiddens": F,
        "num_heads": H,
        "dropout": 0.1,
        **BLOCK_VARIANTS[variant],
    }
    run_layer_test(
        TransformerEncoderBlock,
        args,
        rand(2, 5, D),
        call_kwargs={"valid_lens": np.array([3, 5], "int32")},
        expected_output_shape=(2, 5, D),
        input_mask=MASK,
    )
    run_layer_test(
        TransformerDecoderBlock,
        args,
        [rand(2, 4, D), rand(2, 6, D, seed=1)],
        call_kwargs={"enc_valid_lens": np.array([6, 2], "int32")},
        expected_output_shape=(2, 4, D),
    )


@pytest.mark.parametrize("variant", sorted(BLOCK_VARIANTS))
def test_blocks_pass_variants_to_the_self_attention_only(variant):
    encoder = TransformerEncoderBlock(D, F, H, 0.0, **BLOCK_VARIANTS[variant])
    encoder(rand(2, 5, D))
    decoder = TransformerDecoderBlock(D, F, H, 0.0, **BLOCK_VARIANTS[variant])
    decoder(rand(2, 4, D), rand(2, 6, D, seed=1))
    for name, value in BLOCK_VARIANTS[variant].items():
        assert getattr(encoder.attention, name) == value
        assert getattr(decoder.attention1, name) == value
        assert getattr(decoder.attention2, name) in (None, H)  # plain cross-attention
    for block in (encoder, decoder):
        assert type(block).from_config(block.get_config()).get_config() == block.get_config()


@pytest.mark.parametrize("variant", sorted(BLOCK_VARIANTS))
def test_decoder_with_variants_never_sees_a_later_position_and_caches_equal_the_full_pass(variant):
    X, enc = rand(2, 5, D), rand(2, 4, D, seed=1)
    enc_lens = np.array([4, 2], "int32")
    block = TransformerDecoderBlock(D, F, H, 0.0, **BLOCK_VARIANTS[variant])
    full = to_np(block(X, enc, enc_valid_lens=enc_lens))
    X2 = X.copy()
    X2[:, 3:] = rand(2, 2, D, seed=9, scale=3.0)
    out2 = to_np(block(X2, enc, enc_valid_lens=enc_lens))
    np.testing.assert_allclose(out2[:, :3], full[:, :3], atol=1e-6)
    assert not np.allclose(out2[:, 3], full[:, 3], atol=1e-3)
    width = block.attention1.kv_hiddens
    cache = np.zeros((2, 2, 6, width), "float32")
    outputs = []
    for start, size in ((0, 2), (2, 1), (3, 1), (4, 1)):
        out, cache = block(
            X[:, start : start + size],
            enc,
            enc_valid_lens=enc_lens,
            cache=cache,
            cache_update_index=start,
        )
        outputs.append(to_np(out))
    assert tuple(cache.shape) == (2, 2, 6, width)
    np.testing.assert_allclose(np.concatenate(outputs, axis=1), full, atol=1e-5)


def test_encoder_window_is_two_sided_and_padding_invariant():
    block = TransformerEncoderBlock(D, F, H, 0.0, window=2)
    X = rand(2, 6, D)
    valid_lens = np.array([4, 6], "int32")
    out, weights = block(X, valid_lens=valid_lens, return_attention_scores=True)
    allowed = np.abs(np.arange(6)[:, None] - np.arange(6)[None, :]) < 2
    assert np.all(to_np(weights)[:, :, ~allowed] == 0)
    assert np.all(to_np(weights)[1][:, allowed] > 0)
    X2 = X.copy()
    X2[0, 4:] = rand(2, D, seed=3, scale=10.0)
    np.testing.assert_allclose(
        to_np(block(X2, valid_lens=valid_lens))[0, :4], to_np(out)[0, :4], atol=1e-6
    )


def test_encoder_bias_argument_is_added_to_the_self_attention_scores():
    from keras_attention.layers import RelativePositionBias

    with_option = TransformerEncoderBlock(D, F, H, 0.0, position_bias="t5")
    plain = TransformerEncoderBlock(D, F, H, 0.0)
    X = rand(2, 5, D)
    with_option(X)
    plain(X)
    shared = RelativePositionBias(H)
    shared(X)
    shared.embeddings.assign(with_option.attention.relative_bias.embeddings)
    weights = [w for w in with_option.get_weights() if w.shape != (32, H)]
    plain.set_weights(weights)
    np.testing.assert_allclose(to_np(plain(X, bias=shared(X))), to_np(with_option(X)), atol=1e-6)


@pytest.mark.parametrize("cls", [TransformerEncoderBlock, TransformerDecoderBlock])
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"num_kv_heads": 3},
            "`num_heads` must be divisible by `num_kv_heads`; got num_heads=2, num_kv_heads=3.",
        ),
        ({"window": 1.5}, "`window` must be None or a positive integer; got window=1.5."),
        (
            {"position_bias": "relative"},
            "`position_bias` must be None or one of ['alibi', 't5']; got position_bias='relative'.",
        ),
    ],
)
def test_blocks_check_variant_arguments(cls, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        cls(D, F, H, 0.0, **kwargs)


def test_blocks_with_rotary_self_attention_pass_the_layer_test_and_decode_with_the_cache():
    rng = np.random.RandomState(0)
    X, enc = (
        rng.normal(size=(2, 5, D)).astype("float32"),
        rng.normal(size=(2, 4, D)).astype("float32"),
    )
    init = {
        "num_hiddens": D,
        "ffn_num_hiddens": F,
        "num_heads": H,
        "dropout": 0.0,
        "use_rotary": True,
    }
    run_layer_test(TransformerEncoderBlock, init, X, expected_output_shape=(2, 5, D))
    run_layer_test(
        TransformerDecoderBlock,
        init,
        [X, enc],
        expected_output_shape=(2, 5, D),
        check_mixed_precision=False,
    )
    block = TransformerDecoderBlock(**init)
    full = ops.convert_to_numpy(block(X, enc))
    assert block.attention1.use_rotary and not block.attention2.use_rotary
    assert block.get_config()["use_rotary"] is True
    cache = np.zeros((2, 2, 5, D), "float32")
    for t in range(5):
        out, cache = block(X[:, t : t + 1], enc, cache=cache, cache_update_index=t)
        np.testing.assert_allclose(ops.convert_to_numpy(out)[:, 0], full[:, t], atol=1e-5)
    # Rotary changes the numbers (positions matter), unlike a plain block.
    changed = X.copy()
    changed[:, [0, 1]] = changed[:, [1, 0]]
    assert not np.allclose(ops.convert_to_numpy(block(changed, enc))[:, 2:], full[:, 2:])


@pytest.mark.parametrize("block_cls", [TransformerEncoderBlock, TransformerDecoderBlock])
def test_rotary_blocks_check_their_arguments(block_cls):
    with pytest.raises(
        ValueError, match=re.escape("`use_rotary` must be True or False; got use_rotary=1.")
    ):
        block_cls(D, F, H, 0.0, use_rotary=1)
    with pytest.raises(ValueError, match=re.escape("`use_rotary=True` needs an even head size")):
        block_cls(6, F, 2, 0.0, use_rotary=True)
