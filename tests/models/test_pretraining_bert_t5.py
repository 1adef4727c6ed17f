"""Tests for keras_attention/models/pretraining.py (BERT and T5)."""

import re

import keras
import numpy as np
import pytest
from keras import ops

from keras_attention.generate import TransformerStepDecoder, beam_search, decoder_for, greedy_search
from keras_attention.generate.decoders import T5_LAYOUT
from keras_attention.layers import SegmentEmbedding
from keras_attention.models import (
    bert,
    bert_classifier,
    bert_mlm,
    t5,
)

from helpers import BAD_BLOCK_ARGUMENTS

# One-step self-attention (a single key) is expected while decoding.
pytestmark = pytest.mark.filterwarnings("ignore:You are using a softmax over axis")

V, D, F, H, N, MAX_LEN, C = 20, 8, 16, 2, 2, 12, 3
PAD, BOS, EOS = 0, 1, 2

TOKENS = np.array([[1, 5, 6, 7, 3, 8, 9], [1, 10, 11, 3, 12, 0, 0]], "int32")
SEGMENTS = np.array([[0, 0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 1, 0, 0]], "int32")
BERT_INPUTS = {"token_ids": TOKENS, "segment_ids": SEGMENTS}

SRC = np.array([[5, 6, 7, 8], [9, 10, 0, 0]], "int32")
TGT_IN = np.array([[1, 4, 5, 6, 0], [1, 7, 0, 0, 0]], "int32")
T5_INPUTS = {"src_ids": SRC, "tgt_in_ids": TGT_IN}


def build_bert(seed=0):
    keras.utils.set_random_seed(seed)
    encoder = bert(V, D, F, H, N, 0.0, max_len=MAX_LEN)
    return encoder, bert_mlm(encoder, V), bert_classifier(encoder, C, dropout=0.0)


def build_t5(seed=0, dropout=0.0, num_blks=N):
    keras.utils.set_random_seed(seed)
    return t5(V, D, F, H, num_blks, dropout, max_len=MAX_LEN)


def numpy(x):
    return ops.convert_to_numpy(x)


# BERT.


def test_bert_shapes_names_and_dtypes():
    encoder, mlm, classifier = build_bert()
    assert tuple(encoder(BERT_INPUTS).shape) == (2, 7, D)
    assert encoder.output_names == ["encoded"]
    logits = mlm(BERT_INPUTS)
    assert tuple(logits.shape) == (2, 7, V)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    class_logits = classifier(BERT_INPUTS)
    assert tuple(class_logits.shape) == (2, C)
    assert keras.backend.standardize_dtype(class_logits.dtype) == "float32"
    names = {layer.name for layer in encoder.layers}
    assert {
        "token_embedding",
        "segment_embedding",
        "positions",
        "encoder_block_0",
        "encoder_block_1",
        "encoded",
    } <= names
    assert all(not encoder.get_layer(f"encoder_block_{i}").norm_first for i in range(N))
    assert {"mlm_dense", "mlm_norm", "mlm_logits"} <= {layer.name for layer in mlm.layers}
    assert {"take_cls", "pooler", "classifier"} <= {layer.name for layer in classifier.layers}
    # Symbolic inputs with unknown batch and length.
    assert tuple(mlm.output.shape) == (None, None, V)
    assert tuple(classifier.output.shape) == (None, C)


def test_segments_change_the_encoding():
    encoder, _, _ = build_bert()
    other = {"token_ids": TOKENS, "segment_ids": 1 - SEGMENTS}
    assert not np.allclose(numpy(encoder(BERT_INPUTS)), numpy(encoder(other)))


def test_bert_padding_does_not_change_valid_encodings():
    encoder, _, classifier = build_bert()
    ids = np.array([[1, 5, 6, 3, 7]], "int32")
    segments = np.array([[0, 0, 0, 0, 1]], "int32")
    padded_ids = np.concatenate([ids, np.zeros((1, 3), "int32")], axis=1)
    padded_segments = np.concatenate([segments, np.zeros((1, 3), "int32")], axis=1)
    short = numpy(encoder({"token_ids": ids, "segment_ids": segments}))
    long = numpy(encoder({"token_ids": padded_ids, "segment_ids": padded_segments}))
    np.testing.assert_allclose(long[:, :5], short, atol=1e-5)
    np.testing.assert_allclose(
        numpy(classifier({"token_ids": padded_ids, "segment_ids": padded_segments})),
        numpy(classifier({"token_ids": ids, "segment_ids": segments})),
        atol=1e-5,
    )


def test_heads_share_the_encoder_weights():
    encoder, mlm, classifier = build_bert()
    encoder_ids = {id(v) for v in encoder.weights}
    assert encoder_ids <= {id(v) for v in mlm.weights}
    assert encoder_ids <= {id(v) for v in classifier.weights}
    # 2 (mlm_dense) + 2 (mlm_norm) + 2 (mlm_logits); 2 (pooler) + 2 (classifier).
    assert len(mlm.weights) == len(encoder.weights) + 6
    assert len(classifier.weights) == len(encoder.weights) + 4

    before_encoded = numpy(encoder(BERT_INPUTS))
    before_logits = numpy(classifier(BERT_INPUTS))
    labels = np.where(TOKENS == 6, 6, 0).astype("int32")  # one "masked" position
    mlm.compile(
        optimizer=keras.optimizers.SGD(0.5),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0),
    )
    mlm.fit(BERT_INPUTS, labels, epochs=2, verbose=0)
    # Pretraining the MLM moved the encoder the classifier reads.
    assert not np.allclose(numpy(encoder(BERT_INPUTS)), before_encoded)
    assert not np.allclose(numpy(classifier(BERT_INPUTS)), before_logits)


@pytest.mark.parametrize("which", ["encoder", "mlm", "classifier"])
def test_bert_keras_file_round_trip_is_bit_identical(which, tmp_path):
    model = dict(zip(["encoder", "mlm", "classifier"], build_bert()))[which]
    path = str(tmp_path / f"{which}.keras")
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(numpy(restored(BERT_INPUTS)), numpy(model(BERT_INPUTS)))
    assert len(restored.weights) == len(model.weights)


@pytest.mark.xla(reason="fit with jit_compile=True")
@pytest.mark.parametrize("which", ["mlm", "classifier"])
def test_bert_jit_fit_step_is_finite(which):
    _, mlm, classifier = build_bert()
    if which == "mlm":
        model, labels = mlm, np.where(TOKENS > 5, TOKENS, 0).astype("int32")
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)
    else:
        model, labels = classifier, np.array([0, 2], "int32")
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer="adam", loss=loss, jit_compile=True)
    history = model.fit(BERT_INPUTS, labels, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert all(np.all(np.isfinite(numpy(w))) for w in model.weights)


def test_segment_embedding_config_round_trip_and_mask():
    layer = SegmentEmbedding(3, D, name="segments")
    again = SegmentEmbedding.from_config(layer.get_config())
    assert again.get_config() == layer.get_config()
    X = keras.Input(shape=(None, D))
    segments = keras.Input(shape=(None,), dtype="int32")
    assert tuple(layer(X, segments).shape) == (None, None, D)


SIZES = dict(
    vocab_size=V,
    num_hiddens=D,
    ffn_num_hiddens=F,
    num_heads=H,
    num_blks=1,
    dropout=0.0,
    max_len=MAX_LEN,
)


@pytest.mark.parametrize(
    "kwargs, message",
    BAD_BLOCK_ARGUMENTS
    + [
        ({"vocab_size": 1.5}, "`vocab_size` must be a positive integer; got vocab_size=1.5."),
        (
            {"pad_id": -1},
            f"`pad_id` must be None or an integer in [0, vocab_size={V}); got pad_id=-1.",
        ),
        (
            {"num_segments": True},
            "`num_segments` must be a positive integer; got num_segments=True.",
        ),
    ],
)
def test_bert_checks_every_argument(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        bert(**{**SIZES, **kwargs})


@pytest.mark.parametrize(
    "kwargs, message",
    BAD_BLOCK_ARGUMENTS
    + [
        ({"vocab_size": 0}, "`vocab_size` must be a positive integer; got vocab_size=0."),
        ({"pad_id": V}, f"`pad_id` must be an integer in [0, vocab_size={V}); got pad_id={V}."),
        ({"pad_id": None}, f"`pad_id` must be an integer in [0, vocab_size={V}); got pad_id=None."),
    ],
)
def test_t5_checks_every_argument(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        t5(**{**SIZES, **kwargs})


def test_bert_heads_check_their_arguments():
    encoder, _, _ = build_bert()
    with pytest.raises(
        ValueError, match=re.escape("`vocab_size` must be a positive integer; got vocab_size=20.0.")
    ):
        bert_mlm(encoder, 20.0)
    with pytest.raises(
        ValueError, match=re.escape("`num_classes` must be a positive integer; got num_classes=0.")
    ):
        bert_classifier(encoder, np.int64(0))
    with pytest.raises(
        ValueError, match=re.escape("`dropout` must be a float in [0, 1); got dropout=inf.")
    ):
        bert_classifier(encoder, C, dropout=float("inf"))
    with pytest.raises(
        ValueError, match=re.escape("`name` must be a non-empty string; got name=''.")
    ):
        bert_classifier(encoder, C, name="")
    assert bert_classifier(encoder, np.int64(C), name="clf").output.shape == (None, C)


def test_bad_bert_arguments_raise():
    encoder, _, _ = build_bert()
    with pytest.raises(ValueError, match="`num_blks` must be a positive integer"):
        bert(V, D, F, H, 0, 0.0, max_len=MAX_LEN)
    with pytest.raises(ValueError, match="`num_segments` must be a positive integer"):
        bert(V, D, F, H, 1, 0.0, max_len=MAX_LEN, num_segments=0)
    with pytest.raises(
        ValueError, match=r"`pad_id` must be None or an integer in \[0, vocab_size=20\)"
    ):
        bert(V, D, F, H, 1, 0.0, max_len=MAX_LEN, pad_id=V)
    with pytest.raises(ValueError, match="`num_hiddens` must be divisible by `num_heads`"):
        bert(V, D, F, 3, 1, 0.0, max_len=MAX_LEN)
    with pytest.raises(
        ValueError, match="`vocab_size` must equal the encoder's vocabulary size 20"
    ):
        bert_mlm(encoder, V + 1)
    with pytest.raises(ValueError, match="`num_classes` must be a positive integer"):
        bert_classifier(encoder, 0)
    with pytest.raises(ValueError, match=r"`dropout` must be a float in \[0, 1\)"):
        bert_classifier(encoder, C, dropout=1.5)
    with pytest.raises(
        ValueError, match="`encoder_model` must be built by `keras_attention.models.bert`"
    ):
        bert_mlm(build_t5())
    with pytest.raises(
        ValueError, match="`encoder_model` must be built by `keras_attention.models.bert`"
    ):
        bert_classifier(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]), C)


# T5.


def test_t5_logits_shape_names_and_shared_embedding():
    model = build_t5()
    logits = model(T5_INPUTS)
    assert tuple(logits.shape) == (2, 5, V)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    assert tuple(model.output.shape) == (None, None, V)
    names = {layer.name for layer in model.layers}
    assert {
        "shared_embedding",
        "src_positions",
        "tgt_positions",
        "encoder_final_norm",
        "decoder_final_norm",
        "lm_head",
        "encoder_block_1",
        "decoder_block_1",
    } <= names
    assert "src_embedding" not in names and "tgt_embedding" not in names
    assert all(model.get_layer(f"decoder_block_{i}").norm_first for i in range(N))
    assert all(model.get_layer(f"encoder_block_{i}").norm_first for i in range(N))
    # One (V, D) table for both sides.
    assert len([w for w in model.weights if tuple(w.shape) == (V, D)]) == 1
    decoder = decoder_for(model, 6)
    assert isinstance(decoder, TransformerStepDecoder) and decoder.output_layer.name == "lm_head"


def test_t5_padding_and_causality():
    model = build_t5()
    full = numpy(model(T5_INPUTS))
    # Extra source padding changes nothing; later target tokens change nothing earlier.
    wider = {"src_ids": np.pad(SRC, ((0, 0), (0, 2))), "tgt_in_ids": TGT_IN}
    np.testing.assert_allclose(numpy(model(wider)), full, atol=1e-5)
    changed = TGT_IN.copy()
    changed[:, 3:] = 9
    np.testing.assert_allclose(
        numpy(model({"src_ids": SRC, "tgt_in_ids": changed}))[:, :3], full[:, :3], atol=1e-5
    )


def test_t5_inference_steps_match_the_full_pass():
    model = build_t5()
    tgt = np.array([[1, 4, 5, 6, 7], [1, 7, 8, 9, 3]], "int32")
    full = numpy(model({"src_ids": SRC, "tgt_in_ids": tgt}))
    inference = TransformerStepDecoder(model, max_len=6, layout=T5_LAYOUT)
    state = inference.encode(SRC)
    for t in range(5):
        logits, state, attention = inference.step(tgt[:, t], state, t)
        np.testing.assert_allclose(numpy(logits), full[:, t], atol=1e-5)
        np.testing.assert_allclose(numpy(attention).sum(-1), 1.0, atol=1e-5)
        np.testing.assert_array_equal(numpy(attention)[1, 2:], 0.0)  # source padding
    assert tuple(state["cache"].shape) == (N, 2, 2, 6, D)


def greedy_reference(model, src, max_len):
    """Row-by-row argmax loop over the whole model; pad never generated."""
    rows = []
    for b in range(src.shape[0]):
        tgt = [BOS]
        out = []
        while len(out) < max_len:
            logits = numpy(
                model({"src_ids": src[b : b + 1], "tgt_in_ids": np.array([tgt], "int32")})
            )
            logits = logits[0, -1].copy()
            logits[PAD] = -np.inf
            token = int(logits.argmax())
            out.append(token)
            if token == EOS:
                break
            tgt.append(token)
        rows.append(out + [PAD] * (max_len - len(out)))
    return np.array(rows, "int32")


def test_t5_greedy_search_cached_equals_uncached_and_the_argmax_loop():
    model = build_t5(seed=3)
    cached = greedy_search(model, SRC, max_len=7)
    uncached = greedy_search(model, SRC, max_len=7, use_cache=False)
    tokens = numpy(cached["tokens"])
    np.testing.assert_array_equal(tokens, numpy(uncached["tokens"]))
    np.testing.assert_array_equal(numpy(cached["lengths"]), numpy(uncached["lengths"]))
    np.testing.assert_array_equal(tokens, greedy_reference(model, SRC, 7))
    assert tuple(cached["attention"].shape) == (2, 7, 4)


def test_t5_beam_search_of_one_beam_is_greedy():
    model = build_t5(seed=3)
    greedy = numpy(greedy_search(model, SRC, max_len=6)["tokens"])
    beams = beam_search(model, SRC, max_len=6, beam_size=2)
    np.testing.assert_array_equal(
        numpy(beam_search(model, SRC, max_len=6, beam_size=1)["tokens"]), greedy
    )
    assert tuple(beams["all_tokens"].shape) == (2, 2, 6)


def test_t5_greedy_search_stops_at_eos():
    model = build_t5(seed=3)
    free = numpy(greedy_search(model, SRC, max_len=7, eos_id=V - 1)["tokens"])
    eos = int(free[0, 2])  # row 0's third token
    out = greedy_search(model, SRC, max_len=7, eos_id=eos)
    tokens, lengths = numpy(out["tokens"]), numpy(out["lengths"])
    stop = list(free[0]).index(eos) + 1
    assert lengths[0] == stop
    np.testing.assert_array_equal(tokens[0, :stop], free[0, :stop])
    assert np.all(tokens[0, stop:] == PAD)


def test_t5_keras_file_round_trip_is_bit_identical(tmp_path):
    model = build_t5()
    path = str(tmp_path / "t5.keras")
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(numpy(restored(T5_INPUTS)), numpy(model(T5_INPUTS)))
    assert len(restored.weights) == len(model.weights)
    np.testing.assert_array_equal(
        numpy(greedy_search(restored, SRC, max_len=5)["tokens"]),
        numpy(greedy_search(model, SRC, max_len=5)["tokens"]),
    )


@pytest.mark.xla(reason="fit with jit_compile=True")
def test_t5_jit_fit_step_is_finite():
    model = build_t5(dropout=0.1, num_blks=1)  # one block: shorter XLA compile
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD),
        jit_compile=True,
    )
    labels = np.array([[4, 5, 6, 2, 0], [7, 2, 0, 0, 0]], "int32")
    history = model.fit(T5_INPUTS, labels, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert all(np.all(np.isfinite(numpy(w))) for w in model.weights)


def test_bad_t5_arguments_raise():
    model = build_t5()
    with pytest.raises(ValueError, match="`num_blks` must be a positive integer"):
        t5(V, D, F, H, 0, 0.0, max_len=MAX_LEN)
    with pytest.raises(ValueError, match="`num_hiddens` must be divisible by `num_heads`"):
        t5(V, D, F, 3, 1, 0.0, max_len=MAX_LEN)
    with pytest.raises(ValueError, match="`max_len` must be a positive integer"):
        t5(V, D, F, H, 1, 0.0, max_len=0)
    with pytest.raises(ValueError, match="positional max_len=12; got max_len=13"):
        TransformerStepDecoder(model, max_len=13, layout=T5_LAYOUT)
    with pytest.raises(ValueError, match="positional max_len=12"):
        greedy_search(model, SRC, max_len=13)
    with pytest.raises(ValueError, match="must be built by `keras_attention.models.t5`"):
        decoder_for(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]), 4, kinds=("t5",))


def test_module_doctest_examples_run():
    import doctest

    from keras_attention.models import pretraining

    results = doctest.testmod(pretraining, optionflags=doctest.ELLIPSIS)
    assert results.attempted > 0 and results.failed == 0


def test_t5_with_its_relative_position_bias_saves_loads_and_decodes_with_the_cache(tmp_path):
    model = t5(30, 16, 32, 2, 2, 0.0, max_len=8, position_bias="t5")
    names = [layer.name for layer in model.layers]
    assert "src_positions" not in names and "tgt_positions" not in names
    assert model.get_layer("encoder_block_0").attention.position_bias == "t5"
    assert model.get_layer("decoder_block_0").attention1.position_bias == "t5"
    src = np.array([[5, 6, 7, 8, 0], [9, 10, 0, 0, 0]], "int32")
    tgt = np.array([[1, 5, 6], [1, 9, 0]], "int32")
    path = tmp_path / "t5.keras"
    model.save(path)
    again = keras.saving.load_model(path, safe_mode=True)
    feed = {"src_ids": src, "tgt_in_ids": tgt}
    np.testing.assert_array_equal(
        ops.convert_to_numpy(again(feed)), ops.convert_to_numpy(model(feed))
    )
    # Longer than max_len: relative buckets have no table to run out of.
    cached = greedy_search(model, src, max_len=12, eos_id=-1)
    uncached = greedy_search(model, src, max_len=12, eos_id=-1, use_cache=False)
    np.testing.assert_array_equal(
        ops.convert_to_numpy(cached["tokens"]), ops.convert_to_numpy(uncached["tokens"])
    )
    with pytest.raises(ValueError, match="position_bias"):
        t5(30, 16, 32, 2, 2, 0.0, max_len=8, position_bias="alibi")
