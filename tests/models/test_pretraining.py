"""Tests for keras_attention/models/pretraining.py (GPT) and `generate.sample`."""

import re

import keras
import numpy as np
import pytest
from keras import ops

from keras_attention.generate import GPTStepDecoder, decoder_for, sample
from keras_attention.layers import TiedTokenEmbedding
from keras_attention.models import gpt

from helpers import BAD_BLOCK_ARGUMENTS

# One-step self-attention (a single key) is expected while decoding.
pytestmark = pytest.mark.filterwarnings("ignore:You are using a softmax over axis")

V, D, F, H, N, MAX_LEN = 20, 8, 16, 2, 2, 12
PAD = 0


def build(tie_embeddings=False, seed=0):
    keras.utils.set_random_seed(seed)
    return gpt(V, D, F, H, N, 0.0, max_len=MAX_LEN, tie_embeddings=tie_embeddings)


@pytest.fixture(scope="module")
def model():
    return build()


@pytest.fixture(scope="module")
def tied_model():
    return build(tie_embeddings=True)


PROMPT = np.array([[3, 4, 5], [6, 7, 8]], "int32")


@pytest.mark.parametrize("tie", [False, True])
def test_logits_shape_and_dtype(tie):
    model = build(tie)
    logits = model(np.array([[1, 2, 3, 4, 5], [6, 7, 8, 0, 0]], "int32"))
    assert tuple(logits.shape) == (2, 5, V)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    assert model.input.name == "token_ids"
    names = {layer.name for layer in model.layers}
    assert {"token_embedding", "positions", "gpt_block_0", "gpt_block_1", "final_norm"} <= names
    assert ("lm_head" in names) is not tie


def test_padding_does_not_change_earlier_logits(model):
    ids = np.array([[3, 4, 5, 6, 7]], "int32")
    padded = np.array([[3, 4, 5, 0, 0]], "int32")
    np.testing.assert_allclose(
        ops.convert_to_numpy(model(padded))[:, :3],
        ops.convert_to_numpy(model(ids))[:, :3],
        atol=1e-6,
    )


@pytest.mark.parametrize("use_fused_op", [None, False, True])
def test_pad_id_none_gives_the_same_logits_on_unpadded_batches(model, use_fused_op):
    # pad_id=None: no padding mask, so attention is causal only (the fused
    # `is_causal` path where the layer uses the fused op); same weights.
    packed = gpt(V, D, F, H, N, 0.0, max_len=MAX_LEN, pad_id=None)
    packed.set_weights(model.get_weights())
    for block in range(N):
        packed.get_layer(f"gpt_block_{block}").attention.attention.use_fused_op = use_fused_op
    ids = np.array([[3, 4, 5, 6, 7], [8, 9, 10, 11, 12]], "int32")
    np.testing.assert_allclose(
        ops.convert_to_numpy(packed(ids)), ops.convert_to_numpy(model(ids)), atol=1e-5
    )
    assert packed.get_layer("token_embedding").compute_mask(ids) is None
    assert packed.get_layer("token_embedding").get_config()["pad_id"] is None
    # Still causal: changing later tokens leaves earlier logits alone.
    changed = ids.copy()
    changed[:, 3:] = 1
    np.testing.assert_allclose(
        ops.convert_to_numpy(packed(changed))[:, :3],
        ops.convert_to_numpy(packed(ids))[:, :3],
        atol=1e-6,
    )


@pytest.mark.parametrize("tie", [False, True])
def test_keras_file_round_trip_is_bit_identical(tie, tmp_path):
    model = build(tie)
    ids = np.array([[1, 2, 3, 4], [5, 6, 0, 0]], "int32")
    path = str(tmp_path / "gpt.keras")
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(
        ops.convert_to_numpy(restored(ids)), ops.convert_to_numpy(model(ids))
    )
    assert len(restored.weights) == len(model.weights)


def test_tied_embeddings_share_one_variable(tied_model, model):
    tables = [w for w in tied_model.weights if tuple(w.shape) == (V, D)]
    assert len(tables) == 1
    assert len(model.weights) == len(tied_model.weights) + 2  # lm_head kernel and bias
    E = ops.convert_to_numpy(tied_model.get_layer("token_embedding").embeddings)
    # Zeroing the one table zeroes the logits.
    embedding = tied_model.get_layer("token_embedding")
    assert isinstance(embedding, TiedTokenEmbedding)
    embedding.embeddings.assign(np.zeros_like(E))
    try:
        assert np.all(ops.convert_to_numpy(tied_model(PROMPT)) == 0)
    finally:
        embedding.embeddings.assign(E)


def test_tied_model_trains_the_shared_table(tied_model):
    model = build(tie_embeddings=True, seed=1)
    before = ops.convert_to_numpy(model.get_layer("token_embedding").embeddings).copy()
    model.compile(
        optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    ids = np.array([[1, 2, 3, 4]], "int32")
    model.fit(ids, np.array([[2, 3, 4, 5]], "int32"), epochs=1, verbose=0)
    after = ops.convert_to_numpy(model.get_layer("token_embedding").embeddings)
    # Row 5 is only ever a target: it changes through the output side only.
    assert not np.allclose(after[5], before[5])


@pytest.mark.parametrize("tie", [False, True])
def test_inference_start_and_step_match_the_full_pass(tie):
    model = build(tie)
    ids = np.array([[3, 4, 5, 6, 7, 8], [9, 10, 11, 12, 13, 14]], "int32")
    full = ops.convert_to_numpy(model(ids))
    inference = GPTStepDecoder(model, max_len=8)
    logits, state = inference.start(ids[:, :3])
    np.testing.assert_allclose(ops.convert_to_numpy(logits), full[:, 2], atol=1e-5)
    for t in range(3, 6):
        logits, state, attention = inference.step(ids[:, t], state, t)
        assert attention is None
        np.testing.assert_allclose(ops.convert_to_numpy(logits), full[:, t], atol=1e-5)
    assert tuple(state["cache"].shape) == (N, 2, 2, 8, D)


def greedy_reference(model, prompt, num_new):
    """Argmax loop over the whole model, in numpy; pad is never generated."""
    tokens = np.asarray(prompt)
    for _ in range(num_new):
        logits = ops.convert_to_numpy(model(tokens))[:, -1].copy()
        logits[:, PAD] = -np.inf
        tokens = np.concatenate([tokens, logits.argmax(-1)[:, None].astype("int32")], axis=1)
    return tokens


@pytest.mark.parametrize("tie", [False, True])
def test_temperature_zero_is_the_argmax_loop(tie):
    model = build(tie)
    out = sample(model, PROMPT, 6, temperature=0)
    np.testing.assert_array_equal(
        ops.convert_to_numpy(out["tokens"]), greedy_reference(model, PROMPT, 6)
    )
    np.testing.assert_array_equal(ops.convert_to_numpy(out["lengths"]), [9, 9])


@pytest.mark.parametrize(
    "kwargs",
    [{"temperature": 0}, {"temperature": 1.0, "top_k": 5, "seed": 3}, {"top_p": 0.8, "seed": 4}],
)
def test_cached_sampling_equals_uncached_sampling(model, kwargs):
    cached = sample(model, PROMPT, 7, **kwargs)
    uncached = sample(model, PROMPT, 7, use_cache=False, **kwargs)
    np.testing.assert_array_equal(
        ops.convert_to_numpy(cached["tokens"]), ops.convert_to_numpy(uncached["tokens"])
    )


def test_top_k_one_and_tiny_top_p_are_greedy(model):
    greedy = ops.convert_to_numpy(sample(model, PROMPT, 7, temperature=0)["tokens"])
    for kwargs in ({"top_k": 1}, {"top_p": 1e-6}, {"top_k": 1, "temperature": 5.0}):
        for seed in (0, 1):
            tokens = ops.convert_to_numpy(sample(model, PROMPT, 7, seed=seed, **kwargs)["tokens"])
            np.testing.assert_array_equal(tokens, greedy, err_msg=str(kwargs))


def test_same_seed_same_tokens_and_different_seeds_differ(model):
    def run(seed):
        return ops.convert_to_numpy(sample(model, PROMPT, 8, temperature=2.0, seed=seed)["tokens"])

    first = run(7)
    np.testing.assert_array_equal(run(7), first)
    np.testing.assert_array_equal(first[:, :3], PROMPT)
    others = [run(seed) for seed in (8, 9, 10)]
    assert any(not np.array_equal(o, first) for o in others)


def test_pad_is_never_generated(model):
    tokens = ops.convert_to_numpy(sample(model, PROMPT, 9, temperature=5.0, seed=0)["tokens"])
    assert np.all(tokens != PAD)


def test_top_k_restricts_the_candidates(model):
    # With top_k=2 every sampled token is among the two most probable ones.
    out = ops.convert_to_numpy(
        sample(model, PROMPT, 6, top_k=2, temperature=10.0, seed=5)["tokens"]
    )
    for t in range(3, 9):
        logits = ops.convert_to_numpy(model(out[:, :t]))[:, -1].copy()
        logits[:, PAD] = -np.inf
        top2 = np.argsort(-logits, axis=-1)[:, :2]
        assert all(out[b, t] in top2[b] for b in range(2))


def test_generation_stops_at_eos(model):
    greedy = ops.convert_to_numpy(sample(model, PROMPT, 7, temperature=0)["tokens"])
    eos = int(greedy[0, 5])  # row 0's third generated token
    out = sample(model, PROMPT, 7, temperature=0, eos_id=eos)
    tokens = ops.convert_to_numpy(out["tokens"])
    lengths = ops.convert_to_numpy(out["lengths"])
    first = 3 + list(greedy[0, 3:]).index(eos)
    assert lengths[0] == first + 1
    np.testing.assert_array_equal(tokens[0, : first + 1], greedy[0, : first + 1])
    assert np.all(tokens[0, first + 1 :] == PAD)
    for b in range(2):  # every row: up to its first eos, then pad
        row = list(greedy[b, 3:])
        stop = 3 + row.index(eos) + 1 if eos in row else 10
        assert lengths[b] == stop
        np.testing.assert_array_equal(tokens[b, :stop], greedy[b, :stop])
        assert np.all(tokens[b, stop:] == PAD)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"top_k": -1}, "`top_k` must be None or a non-negative integer; got top_k=-1"),
        ({"top_p": 0.0}, r"`top_p` must be None or a number in \(0, 1\]"),
        ({"top_p": 1.5}, r"`top_p` must be None or a number in \(0, 1\]"),
        ({"temperature": -0.5}, "`temperature` must be a finite number >= 0"),
        ({"temperature": float("inf")}, "`temperature` must be a finite number >= 0"),
        (
            {"max_new_tokens": 10},
            r"positional max_len=12; got prompt length 3 \+ max_new_tokens=10",
        ),
        (
            {"max_new_tokens": 0},
            "`max_new_tokens` must be a positive integer; got max_new_tokens=0",
        ),
        ({"use_cache": "yes"}, "`use_cache` must be True or False"),
        ({"prompt_ids": [[3, -1, 4]]}, r"`prompt_ids` must hold ids in \[0, vocab_size="),
        ({"prompt_ids": [[3, 1000, 4]]}, r"`prompt_ids` must hold ids in \[0, vocab_size="),
    ],
)
def test_bad_sampling_arguments_raise(model, kwargs, match):
    args = {"max_new_tokens": 4, **kwargs}
    prompt = args.pop("prompt_ids", PROMPT)
    with pytest.raises(ValueError, match=match):
        sample(model, prompt, **args)


GPT_ARGS = dict(
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
        ({"vocab_size": 0}, "`vocab_size` must be a positive integer; got vocab_size=0."),
        (
            {"pad_id": V},
            f"`pad_id` must be None or an integer in [0, vocab_size={V}); got pad_id={V}.",
        ),
        (
            {"pad_id": 0.0},
            f"`pad_id` must be None or an integer in [0, vocab_size={V}); got pad_id=0.0.",
        ),
        (
            {"tie_embeddings": None},
            "`tie_embeddings` must be True or False; got tie_embeddings=None.",
        ),
    ],
)
def test_gpt_checks_every_argument(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        gpt(**{**GPT_ARGS, **kwargs})


def test_gpt_accepts_numpy_integers_and_no_pad_id():
    model = gpt(
        **{k: np.int64(v) if isinstance(v, int) else v for k, v in GPT_ARGS.items()}, pad_id=None
    )
    assert tuple(model(np.array([[1, 2, 3]], "int32")).shape) == (1, 3, V)


def test_bad_builder_and_inference_arguments_raise(model):
    with pytest.raises(ValueError, match="`num_blks` must be a positive integer"):
        gpt(V, D, F, H, 0, 0.0, max_len=MAX_LEN)
    with pytest.raises(ValueError, match="`pad_id` must be None or an integer"):
        gpt(V, D, F, H, 1, 0.0, max_len=MAX_LEN, pad_id=-1)
    with pytest.raises(ValueError, match="`tie_embeddings` must be True or False"):
        gpt(V, D, F, H, 1, 0.0, max_len=MAX_LEN, tie_embeddings="yes")
    with pytest.raises(ValueError, match="positional max_len=12"):
        GPTStepDecoder(model, max_len=13)
    with pytest.raises(ValueError, match="must be built by `keras_attention.models.gpt`"):
        decoder_for(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]), 4, kinds=("gpt",))


@pytest.mark.tensorflow_only(reason="tf.function")
def test_sampling_in_a_tf_function_equals_eager_sampling(model):
    import tensorflow as tf

    eager = sample(model, PROMPT, 5, top_k=5, seed=1)["tokens"]
    graph = tf.function(lambda x: sample(model, x, 5, top_k=5, seed=1)["tokens"])(PROMPT)
    np.testing.assert_array_equal(ops.convert_to_numpy(graph), ops.convert_to_numpy(eager))


def test_a_seed_generator_continues_its_stream(model):
    first = sample(model, PROMPT, 6, seed=keras.random.SeedGenerator(3))["tokens"]
    generator = keras.random.SeedGenerator(3)
    again = sample(model, PROMPT, 6, seed=generator)["tokens"]
    np.testing.assert_array_equal(ops.convert_to_numpy(again), ops.convert_to_numpy(first))
    with pytest.raises(ValueError, match="`seed` must be None, an integer or a"):
        sample(model, PROMPT, 2, seed=1.5)


def test_inverse_cdf_sampling_follows_the_softmax():
    from keras_attention.generate.sampling import _inverse_cdf_sample

    probs = np.array([0.1, 0.0, 0.6, 0.3], "float32")
    logits = np.where(probs > 0, np.log(np.maximum(probs, 1e-30)), -np.inf).astype("float32")
    u = np.random.RandomState(0).uniform(size=20000).astype("float32")
    logits, u = ops.convert_to_tensor(np.tile(logits, (20000, 1))), ops.convert_to_tensor(u)
    drawn = ops.convert_to_numpy(_inverse_cdf_sample(logits, u, ops.zeros(20000, "int32")))
    frequencies = np.bincount(drawn, minlength=4) / 20000
    assert frequencies[1] == 0
    np.testing.assert_allclose(frequencies, probs, atol=0.02)
