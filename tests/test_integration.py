"""Every public layer together: one functional model with Keras masks and
`valid_lens`, saved to `.keras`, exported as a SavedModel and served from a
fresh process, built under mixed precision, and trained with XLA."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from keras import ops

# Reshape (used to make NadarayaWatson's scalar queries and keys) warns that it
# drops the Keras mask; the model keeps the mask on the 3-D values instead.
pytestmark = pytest.mark.filterwarnings("ignore:.*does not support masking:UserWarning")

from keras_attention import layers as ka_layers  # noqa: E402
from keras_attention.layers import (  # noqa: E402
    AdditiveAttention,
    AddNorm,
    ALiBi,
    BahdanauDecoder,
    ClassToken,
    DotProductAttention,
    GPTBlock,
    LearnedPositionalEmbedding,
    MultiHeadAttention,
    NadarayaWatson,
    PatchEmbedding,
    PositionWiseFFN,
    RelativePositionBias,
    RotaryEmbedding,
    SegmentEmbedding,
    SinusoidalPositionalEncoding,
    TakeClassToken,
    TiedTokenEmbedding,
    TokenEmbedding,
    TransformerDecoderBlock,
    TransformerEncoderBlock,
    ViTBlock,
    ViTMLP,
)

VOCAB, D, F, H, MAX_LEN, IMG = 13, 8, 16, 2, 16, 8


def public_layer_classes():
    return {
        name: obj
        for name, obj in vars(ka_layers).items()
        if isinstance(obj, type) and issubclass(obj, keras.layers.Layer)
    }


def build_model(seed=0):
    """A small encoder-decoder touching every public layer.

    Inputs: `src_ids (B, S)`, `tgt_ids (B, T)` (0 is padding: `Embedding`
    with `mask_zero=True` and `TokenEmbedding` set Keras masks that flow
    through the blocks) and `src_valid_lens (B,)`.
    """
    keras.utils.set_random_seed(seed)
    src_ids = keras.Input(shape=(None,), dtype="int32", name="src_ids")
    tgt_ids = keras.Input(shape=(None,), dtype="int32", name="tgt_ids")
    valid_lens = keras.Input(shape=(), dtype="int32", name="src_valid_lens")
    images = keras.Input(shape=(IMG, IMG, 1), name="images")
    segment_ids = keras.Input(shape=(None,), dtype="int32", name="segment_ids")

    # Vision side: patches, class token, a ViT block, the class token's MLP.
    patches = PatchEmbedding(IMG, IMG // 2, D, num_channels=1, name="patches")(images)
    patches = ViTBlock(D, F, H, 0.1, name="vit_block")(ClassToken(name="cls_token")(patches))
    image_features = ViTMLP(F, D, dropout=0.1, name="vit_mlp")(
        TakeClassToken(name="take_cls")(patches)
    )
    image_logits = keras.layers.Dense(3, name="image_logits")(image_features)

    # Encoder side.
    src = keras.layers.Embedding(VOCAB, D, mask_zero=True, name="src_embedding")(src_ids)
    src = SinusoidalPositionalEncoding(D, dropout=0.1, max_len=MAX_LEN, name="sinusoidal")(src)
    src = TransformerEncoderBlock(D, F, H, 0.1, name="encoder_block_0")(src, valid_lens=valid_lens)
    src = TransformerEncoderBlock(D, F, H, 0.1, norm_first=True, name="encoder_block_1")(
        src, valid_lens=valid_lens
    )
    src = RotaryEmbedding(name="rotary")(src)
    attended = MultiHeadAttention(D, H, use_rotary=True, name="rotary_mha")(src, src, src)
    src = AddNorm(0.1, name="encoder_addnorm")(src, attended)
    dot = DotProductAttention(dropout=0.1, name="dot")(src, src, src, valid_lens=valid_lens)

    # Decoder side.
    tgt = TokenEmbedding(VOCAB, D, pad_id=0, scale=True, name="tgt_embedding")(tgt_ids)
    tgt = LearnedPositionalEmbedding(MAX_LEN, D, name="learned_positions")(tgt)
    tgt = GPTBlock(D, F, H, 0.1, name="gpt_block")(tgt)
    tgt = TransformerDecoderBlock(D, F, H, 0.1, name="decoder_block_0")(
        tgt, src, enc_valid_lens=valid_lens
    )
    tgt = TransformerDecoderBlock(D, F, H, 0.1, norm_first=True, name="decoder_block_1")(
        tgt, dot, enc_valid_lens=valid_lens
    )
    cross, cross_weights = MultiHeadAttention(D, H, use_bias=True, name="cross_mha")(
        tgt, src, src, valid_lens=valid_lens, return_attention_scores=True
    )
    additive = AdditiveAttention(4, name="additive")(tgt, src, src, valid_lens=valid_lens)
    tgt = keras.layers.Add(name="merge")([tgt, cross, additive])
    tgt = PositionWiseFFN(F, D, name="ffn")(tgt)

    # Nadaraya-Watson pooling of scalar queries over scalar keys. Reshape
    # drops the Keras masks of the 2-D queries and keys; the 3-D values
    # `(B, S, 1)` keep the source mask, which masks the keys.
    scalar_q = keras.layers.Reshape((-1,), name="scalar_q")(keras.layers.Dense(1, name="to_q")(tgt))
    scalar_k = keras.layers.Reshape((-1,), name="scalar_k")(keras.layers.Dense(1, name="to_k")(src))
    values = keras.layers.Dense(1, name="to_v")(src)
    pooled = NadarayaWatson(learnable_width=True, name="nadaraya_watson")(
        scalar_q, scalar_k, values
    )

    # Tied embeddings with segments, attention with ALiBi and T5 biases, and
    # the recurrent decoder of the Bahdanau model over the source.
    tied = TiedTokenEmbedding(VOCAB, D, pad_id=0, name="tied_embedding")
    side = SegmentEmbedding(2, D, name="segments")(tied(tgt_ids), segment_ids)
    alibi = ALiBi(H, name="alibi")(side)
    side = MultiHeadAttention(D, H, name="alibi_mha")(side, side, side, bias=alibi)
    t5_bias = RelativePositionBias(H, name="t5_bias")(side)
    side = MultiHeadAttention(D, H, name="t5_mha")(side, side, side, bias=t5_bias)
    # (its GRU state from the image: a pooled source would be 0 / 0 for an empty row)
    side = BahdanauDecoder(D, 1, name="bahdanau_decoder")(side, src, [image_features])
    tied_logits = tied(side, reverse=True)

    logits = keras.layers.Dense(VOCAB, name="logits")(tgt)
    outputs = {
        "tied_logits": tied_logits,
        "logits": logits,
        "pooled": pooled,
        "cross_weights": cross_weights,
        "image_logits": image_logits,
    }
    inputs = {
        "src_ids": src_ids,
        "tgt_ids": tgt_ids,
        "src_valid_lens": valid_lens,
        "images": images,
        "segment_ids": segment_ids,
    }
    return keras.Model(inputs, outputs, name="every_layer")


def make_batch(seed=0, with_empty_row=False):
    """Three rows; padding (0) at the end. Optionally a fully padded source row."""
    rng = np.random.RandomState(seed)
    src = rng.randint(1, VOCAB, size=(3, 6)).astype("int32")
    tgt = rng.randint(1, VOCAB, size=(3, 5)).astype("int32")
    src_lens = np.array([6, 3, 0 if with_empty_row else 4], "int32")
    tgt_lens = np.array([5, 2, 3])
    src[np.arange(6)[None] >= src_lens[:, None]] = 0
    tgt[np.arange(5)[None] >= tgt_lens[:, None]] = 0
    images = rng.uniform(0, 255, size=(3, IMG, IMG, 1)).astype("float32")
    segments = (np.arange(5)[None] >= 2).astype("int32").repeat(3, axis=0)  # A A B B B
    return {
        "src_ids": src,
        "tgt_ids": tgt,
        "src_valid_lens": src_lens,
        "images": images,
        "segment_ids": segments,
    }


def to_numpy(outputs):
    return {k: ops.convert_to_numpy(ops.cast(v, "float32")) for k, v in outputs.items()}


def layers_used(model):
    return {type(layer).__name__ for layer in model._flatten_layers(include_self=False)}


def test_model_uses_every_public_layer():
    model = build_model()
    missing = set(public_layer_classes()) - layers_used(model)
    assert not missing, f"public layers missing from the integration model: {missing}"
    rotary_mhas = [
        layer
        for layer in model.layers
        if isinstance(layer, MultiHeadAttention) and layer.use_rotary
    ]
    assert rotary_mhas


def test_keras_masks_flow_into_the_blocks():
    model = build_model()
    for name in ("encoder_block_0", "decoder_block_0"):
        node_input = model.get_layer(name).input
        first = node_input[0] if isinstance(node_input, (list, tuple)) else node_input
        assert getattr(first, "_keras_mask", None) is not None, name


def test_save_and_load_with_safe_mode_gives_identical_outputs(tmp_path):
    model = build_model()
    batch = make_batch()
    expected = to_numpy(model(batch, training=False))
    for value in expected.values():
        assert np.all(np.isfinite(value))
    path = str(tmp_path / "every_layer.keras")
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    got = to_numpy(restored(batch, training=False))
    assert set(got) == set(expected)
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    # predict (the compiled path) agrees too.
    predicted = restored.predict(batch, verbose=0)
    for key in expected:
        np.testing.assert_allclose(predicted[key], expected[key], atol=1e-6, err_msg=key)


def test_more_source_padding_changes_no_output():
    """Extra pad tokens (id 0, beyond every valid_len) are never attended to."""
    model = build_model()
    batch = make_batch(with_empty_row=True)
    expected = to_numpy(model(batch, training=False))
    longer = dict(batch, src_ids=np.pad(batch["src_ids"], ((0, 0), (0, 3))))
    got = to_numpy(model(longer, training=False))
    np.testing.assert_allclose(got["logits"], expected["logits"], atol=1e-5)
    np.testing.assert_allclose(got["pooled"], expected["pooled"], atol=1e-5)
    np.testing.assert_allclose(got["cross_weights"][..., :6], expected["cross_weights"], atol=1e-6)
    np.testing.assert_array_equal(got["cross_weights"][..., 6:], 0.0)
    np.testing.assert_array_equal(expected["cross_weights"][2], 0.0)  # valid_len 0


@pytest.mark.tensorflow_only(reason="SavedModel export")
def test_exported_saved_model_serves_from_a_fresh_process(tmp_path):
    model = build_model()
    batch = make_batch(with_empty_row=True)
    expected = to_numpy(model(batch, training=False))
    export_dir = str(tmp_path / "exported")
    model.export(export_dir, verbose=False)
    for name, value in batch.items():
        np.save(tmp_path / f"in_{name}.npy", value)

    code = textwrap.dedent(
        f"""
        import json, os
        import numpy as np
        import tensorflow as tf
        tmp = {str(tmp_path)!r}
        names = {sorted(batch)!r}
        loaded = tf.saved_model.load({export_dir!r})
        inputs = {{n: tf.constant(np.load(os.path.join(tmp, "in_" + n + ".npy"))) for n in names}}
        outputs = loaded.serve(inputs)
        for key, value in outputs.items():
            np.save(os.path.join(tmp, "out_" + key + ".npy"), value.numpy())
        print(json.dumps(sorted(outputs)))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(tmp_path),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    keys = json.loads(result.stdout.strip().splitlines()[-1])
    assert sorted(keys) == sorted(expected)
    for key in expected:
        served = np.load(tmp_path / f"out_{key}.npy")
        np.testing.assert_allclose(served, expected[key], atol=1e-5, err_msg=key)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_model_is_finite_and_trains(policy):
    keras.config.set_dtype_policy(policy)
    try:
        model = build_model()
        assert model.get_layer("encoder_block_0").compute_dtype == policy.split("_")[1]
        batch = make_batch(with_empty_row=True)  # row 2: valid_len 0, all padding
        outputs = to_numpy(model(batch, training=False))
        for key, value in outputs.items():
            assert np.all(np.isfinite(value)), f"non-finite {key} under {policy}"
        # The fully masked row attends to nothing: zero cross-attention weights.
        np.testing.assert_array_equal(outputs["cross_weights"][2], 0.0)

        model.compile(
            optimizer="adam",
            loss={
                "logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                "pooled": "mse",
                "cross_weights": None,
                "image_logits": None,
            },
            # Eager: tracing this model's mixed-precision train step costs
            # ~25 s on CI's CPUs; the traced (XLA) fit is tested below.
            run_eagerly=True,
        )
        targets = {"logits": batch["tgt_ids"], "pooled": np.zeros((3, 5, 1), "float32")}
        history = model.fit(batch, targets, batch_size=3, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
        after = to_numpy(model(batch, training=False))
        for key, value in after.items():
            assert np.all(np.isfinite(value)), f"non-finite {key} after fit under {policy}"
    finally:
        keras.config.set_dtype_policy("float32")


@pytest.mark.xla(reason="fit with jit_compile=True")
def test_fit_with_jit_compile_on_an_encoder_block_model():
    ids = keras.Input(shape=(None,), dtype="int32", name="src_ids")
    valid_lens = keras.Input(shape=(), dtype="int32", name="src_valid_lens")
    x = keras.layers.Embedding(VOCAB, D, mask_zero=True)(ids)
    x = SinusoidalPositionalEncoding(D, dropout=0.1, max_len=MAX_LEN)(x)
    x = TransformerEncoderBlock(D, F, H, 0.1)(x, valid_lens=valid_lens)
    x = TransformerEncoderBlock(D, F, H, 0.1, norm_first=True)(x, valid_lens=valid_lens)
    model = keras.Model([ids, valid_lens], keras.layers.Dense(VOCAB)(x))
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
    )
    batch = make_batch()
    src, lens = batch["src_ids"], batch["src_valid_lens"]
    src, lens = np.concatenate([src, src]), np.concatenate([lens, lens])  # 6 rows: 2 steps
    history = model.fit([src, lens], src, batch_size=3, epochs=1, verbose=0)
    assert int(ops.convert_to_numpy(model.optimizer.iterations)) == 2
    assert np.isfinite(history.history["loss"][0])
