"""Tests for keras_attention/generate.py: greedy and beam search."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_attention import generate
from keras_attention.generate import beam_search, decode_to_lists, greedy_search
from keras_attention.models import (
    bahdanau_seq2seq,
    transformer,
)

# One-step self-attention (a single key) is expected while decoding.
pytestmark = pytest.mark.filterwarnings("ignore:You are using a softmax over axis")

PAD, BOS, EOS = 0, 1, 2
MAX_LEN = 10


def build(kind, tgt_vocab_size=25, return_attention_scores=False):
    if kind == "transformer":
        return transformer(
            30,
            tgt_vocab_size,
            32,
            64,
            4,
            2,
            0.0,
            max_len=32,
            return_attention_scores=return_attention_scores,
        )
    return bahdanau_seq2seq(
        30, tgt_vocab_size, 16, 32, 2, 0.0, return_attention_scores=return_attention_scores
    )


def reversal_task(num, seed):
    """Sources of 2..6 ids in [4, 20); targets are the reversed sources."""
    rng = np.random.default_rng(seed)
    src = np.zeros((num, 6), "int32")
    tgt_in = np.zeros((num, 7), "int32")
    tgt_out = np.zeros((num, 7), "int32")
    for n in range(num):
        ids = rng.integers(4, 20, rng.integers(2, 7))
        src[n, : len(ids)] = ids
        tgt_in[n, : len(ids) + 1] = [BOS, *ids[::-1]]
        tgt_out[n, : len(ids) + 1] = [*ids[::-1], EOS]
    return src, tgt_in, tgt_out


def train(model, steps_per_epoch, epochs):
    """A short fit on the reversal task, so that argmax is not degenerate."""
    src, tgt_in, tgt_out = reversal_task(32 * steps_per_epoch, seed=1)
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(
        {"src_ids": src, "tgt_in_ids": tgt_in},
        tgt_out,
        sample_weight=(tgt_out != PAD).astype("float32"),
        batch_size=32,
        epochs=epochs,
        verbose=0,
    )
    return model


@pytest.fixture(scope="module")
def models():
    keras.utils.set_random_seed(0)
    return {
        "transformer": train(build("transformer"), steps_per_epoch=8, epochs=6),
        "bahdanau": train(build("bahdanau"), steps_per_epoch=8, epochs=3),
    }


@pytest.fixture(scope="module")
def src():
    """Rows of different lengths, padded with PAD."""
    return reversal_task(5, seed=7)[0]


def logits_of(model, src_ids, tgt_in_ids):
    outputs = model({"src_ids": src_ids, "tgt_in_ids": tgt_in_ids}, training=False)
    outputs = outputs["logits"] if isinstance(outputs, dict) else outputs
    return keras.ops.convert_to_numpy(outputs).astype("float64")


def log_softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def reference_greedy(model, src_ids, max_len):
    """Greedy decoding the plain way: the whole model on the growing prefix."""
    batch = src_ids.shape[0]
    prefix = np.full((batch, 1), BOS, "int32")
    tokens = np.full((batch, max_len), PAD, "int32")
    lengths = np.full((batch,), max_len, "int32")
    finished = np.zeros((batch,), bool)
    for t in range(max_len):
        logits = logits_of(model, src_ids, prefix)[:, -1]  # (B, V)
        logits[:, PAD] = -np.inf  # pad is never generated
        next_tokens = logits.argmax(-1).astype("int32")
        tokens[~finished, t] = next_tokens[~finished]
        lengths[~finished & (next_tokens == EOS)] = t + 1
        finished |= next_tokens == EOS
        prefix = np.concatenate([prefix, next_tokens[:, None]], axis=1)
        if finished.all():
            break
    return tokens, lengths


def token_log_probs(model, src_ids, tokens, lengths):
    """The model's log-probability of each of `tokens[b, :lengths[b]]`, 0 after; (B, L)."""
    tgt_in = np.concatenate([np.full((len(tokens), 1), BOS, "int32"), tokens[:, :-1]], axis=1)
    log_probs = log_softmax(logits_of(model, src_ids, tgt_in))  # (B, L, V)
    picked = np.take_along_axis(log_probs, tokens[:, :, None].astype("int64"), axis=-1)[..., 0]
    valid = np.arange(tokens.shape[1])[None, :] < np.asarray(lengths)[:, None]
    return np.where(valid, picked, 0.0)


def sequence_log_probs(model, src_ids, tokens, lengths):
    """Sum of the model's log-probabilities of `tokens[b, :lengths[b]]`, (B,)."""
    return token_log_probs(model, src_ids, tokens, lengths).sum(axis=1)


def gnmt_penalty(lengths, alpha):
    return ((5.0 + lengths) / 6.0) ** alpha


def numpy_dict(outputs):
    return {k: keras.ops.convert_to_numpy(v) for k, v in outputs.items()}


KINDS = ["transformer", "bahdanau"]


@pytest.mark.tensorflow_only(
    reason="its check that both branches were exercised relies on the weights TensorFlow's "
    "seeded initializers draw; other backends draw others (decoding itself is compared "
    "across backends in tests/test_backends.py)"
)
@pytest.mark.parametrize("kind", KINDS)
def test_greedy_matches_python_loop_reference(models, src, kind):
    out = numpy_dict(greedy_search(models[kind], src, MAX_LEN))
    tokens, lengths = reference_greedy(models[kind], src, MAX_LEN)
    np.testing.assert_array_equal(out["tokens"], tokens)
    np.testing.assert_array_equal(out["lengths"], lengths)
    # The trained models translate: some rows stop early, on different steps.
    assert (lengths < MAX_LEN).any() and len(set(lengths.tolist())) > 1


@pytest.mark.parametrize("kind", KINDS)
def test_cached_greedy_equals_uncached(models, src, kind):
    # A twin built with attention outputs, so the uncached pass returns them too.
    twin = build(kind, return_attention_scores=True)
    twin.set_weights(models[kind].get_weights())
    cached = numpy_dict(greedy_search(models[kind], src, MAX_LEN))
    uncached = numpy_dict(greedy_search(twin, src, MAX_LEN, use_cache=False))
    np.testing.assert_array_equal(cached["tokens"], uncached["tokens"])
    np.testing.assert_array_equal(cached["lengths"], uncached["lengths"])
    np.testing.assert_allclose(cached["attention"], uncached["attention"], atol=1e-5)
    plain = numpy_dict(greedy_search(models[kind], src, MAX_LEN, use_cache=False))
    np.testing.assert_array_equal(plain["tokens"], cached["tokens"])
    np.testing.assert_array_equal(plain["attention"], 0.0)  # no attention outputs to read


@pytest.mark.parametrize("kind", KINDS)
def test_cached_beam_equals_uncached(models, src, kind):
    twin = build(kind, return_attention_scores=True)
    twin.set_weights(models[kind].get_weights())
    cached = numpy_dict(beam_search(models[kind], src, MAX_LEN, beam_size=3))
    uncached = numpy_dict(beam_search(twin, src, MAX_LEN, beam_size=3, use_cache=False))
    for key in ("tokens", "lengths", "all_tokens", "all_lengths"):
        np.testing.assert_array_equal(cached[key], uncached[key])
    np.testing.assert_allclose(cached["all_scores"], uncached["all_scores"], atol=1e-4)
    np.testing.assert_allclose(cached["attention"], uncached["attention"], atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_cached_step_logits_match_full_model(models, src, kind):
    model = models[kind]
    tokens = keras.ops.convert_to_numpy(greedy_search(model, src, MAX_LEN)["tokens"])
    tgt_in = np.concatenate([np.full((len(src), 1), BOS, "int32"), tokens[:, :-1]], axis=1)
    full = logits_of(model, src, tgt_in)  # (B, L, V)
    inference = generate.decoder_for(model, MAX_LEN)
    state = inference.encode(src)
    for t in range(MAX_LEN):
        logits, state, _ = inference.step(keras.ops.convert_to_tensor(tgt_in[:, t]), state, t)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(logits), full[:, t], atol=1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_output_layout_and_attention(models, src, kind):
    out = numpy_dict(greedy_search(models[kind], src, MAX_LEN))
    B, S = src.shape
    assert out["tokens"].shape == (B, MAX_LEN) and out["tokens"].dtype == np.int32
    assert out["lengths"].shape == (B,) and out["lengths"].dtype == np.int32
    assert out["attention"].shape == (B, MAX_LEN, S) and out["attention"].dtype == np.float32
    for b in range(B):
        n = out["lengths"][b]
        row = out["tokens"][b]
        assert PAD not in row[:n].tolist() and EOS not in row[: n - 1].tolist()
        if n < MAX_LEN or row[-1] == EOS:
            assert row[n - 1] == EOS
        np.testing.assert_array_equal(row[n:], PAD)
        # Each step's weights sum to one over the valid source positions.
        valid = src[b] != PAD
        np.testing.assert_allclose(out["attention"][b, :n][:, valid].sum(-1), 1.0, atol=1e-5)
        np.testing.assert_array_equal(out["attention"][b, :n][:, ~valid], 0.0)
        np.testing.assert_array_equal(out["attention"][b, n:], 0.0)


@pytest.mark.parametrize("kind", KINDS)
def test_beam_size_one_equals_greedy(models, src, kind):
    greedy = numpy_dict(greedy_search(models[kind], src, MAX_LEN))
    beam = numpy_dict(beam_search(models[kind], src, MAX_LEN, beam_size=1))
    np.testing.assert_array_equal(beam["tokens"], greedy["tokens"])
    np.testing.assert_array_equal(beam["lengths"], greedy["lengths"])
    np.testing.assert_allclose(beam["attention"], greedy["attention"], atol=1e-6)
    assert beam["all_tokens"].shape == (len(src), 1, MAX_LEN)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_beam_scores_are_model_log_probs(models, src, kind, alpha):
    K = 3
    out = numpy_dict(beam_search(models[kind], src, MAX_LEN, beam_size=K, length_penalty=alpha))
    B = len(src)
    assert out["all_tokens"].shape == (B, K, MAX_LEN) and out["all_scores"].shape == (B, K)
    tokens = out["all_tokens"].reshape(B * K, MAX_LEN)
    lengths = out["all_lengths"].reshape(B * K)
    log_probs = sequence_log_probs(models[kind], np.repeat(src, K, axis=0), tokens, lengths)
    expected = (log_probs / gnmt_penalty(lengths, alpha)).reshape(B, K)
    np.testing.assert_allclose(out["all_scores"], expected, rtol=1e-4, atol=1e-4)
    assert (np.diff(out["all_scores"], axis=1) <= 1e-6).all()  # best first
    np.testing.assert_array_equal(out["tokens"], out["all_tokens"][:, 0])
    np.testing.assert_array_equal(out["scores"], out["all_scores"][:, 0])
    # Hypotheses of one row are distinct, and padded after their <eos> only.
    for b in range(B):
        assert len({tuple(t) for t in out["all_tokens"][b]}) == K
        for row, n in zip(out["all_tokens"][b], out["all_lengths"][b]):
            assert row[n - 1] == EOS or n == MAX_LEN
            np.testing.assert_array_equal(row[n:], PAD)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_wide_beam_is_exact_search(kind, alpha):
    # A sound property: over the target ids {<bos>, <eos>, <unk>} (pad is never
    # generated) there are 1 + 2 + 4 + 8 = 15 hypotheses ending in <eos> within
    # 4 tokens and 16 that never end: 31 in all, and at every step at most 31
    # candidates exist. A beam of 31 therefore prunes nothing and must return
    # every hypothesis, ranked exactly as exhaustive enumeration ranks them.
    keras.utils.set_random_seed(3)
    model = build(kind, tgt_vocab_size=4)
    max_len, K = 4, 31
    src = np.array([[5, 6, 7, 0], [8, 9, 10, 11]], "int32")
    hypotheses = []
    for n in range(1, max_len + 1):
        for body in itertools.product([BOS, 3], repeat=n - 1):
            hypotheses.append(([*body, EOS] + [PAD] * (max_len - n), n))
    hypotheses += [(list(body), max_len) for body in itertools.product([BOS, 3], repeat=max_len)]
    assert len(hypotheses) == K
    tokens = np.array([h for h, _ in hypotheses], "int32")
    lengths = np.array([n for _, n in hypotheses], "int32")
    out = numpy_dict(beam_search(model, src, max_len, beam_size=K, length_penalty=alpha))
    for b in range(len(src)):
        log_probs = sequence_log_probs(model, np.repeat(src[b : b + 1], K, axis=0), tokens, lengths)
        scores = log_probs / gnmt_penalty(lengths, alpha)
        order = np.argsort(-scores, kind="stable")
        np.testing.assert_allclose(out["all_scores"][b], scores[order], rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(out["tokens"][b], tokens[order[0]])
        found = {tuple(t) for t in out["all_tokens"][b]}
        assert found == {tuple(t) for t in tokens}


@pytest.mark.tensorflow_only(
    reason="its check that both branches were exercised relies on the weights TensorFlow's "
    "seeded initializers draw; other backends draw others (decoding itself is compared "
    "across backends in tests/test_backends.py)"
)
@pytest.mark.parametrize("kind", KINDS)
def test_beam_prunes_greedy_only_for_better_hypotheses(kind):
    # With length_penalty=0 both searches maximize the summed log-probability,
    # but beam search is NOT guaranteed to beat greedy: greedy's prefix can be
    # pruned and every survivor can end worse (it happens on these random
    # models, e.g. when only greedy's prefix makes <eos> likely early). What
    # does hold, and is checked here step by step, is:
    #   - while greedy's prefix g[:t-1] survives step t-1, g[:t] is a
    #     candidate at step t, so if it is pruned there, each of the K
    #     survivors scores at least as much as g[:t];
    #   - if it survives every step, it is among the final hypotheses, so the
    #     best one scores at least as much as greedy's.
    # The beam after step t is read from a run with max_len=t (the same steps).
    # Seed 1 exercises both branches for both models.
    keras.utils.set_random_seed(1)
    model = build(kind)
    src = reversal_task(6, seed=11)[0]
    max_len, K = 6, 3
    greedy = numpy_dict(greedy_search(model, src, max_len))
    # Greedy's prefix scores, (B, L): column t - 1 scores g[:t].
    log_probs = token_log_probs(model, src, greedy["tokens"], greedy["lengths"])
    prefix_scores = np.cumsum(log_probs, axis=1)
    beams = [
        numpy_dict(beam_search(model, src, t, beam_size=K, length_penalty=0.0))
        for t in range(1, max_len + 1)
    ]
    survived = pruned = 0
    for b, g in enumerate(greedy["tokens"]):
        for t, beam in enumerate(beams, start=1):
            if tuple(g[:t]) not in {tuple(h) for h in beam["all_tokens"][b]}:
                assert (beam["all_scores"][b] >= prefix_scores[b, t - 1] - 1e-4).all(), (b, t)
                pruned += 1
                break
        else:
            assert beam["scores"][b] >= prefix_scores[b, -1] - 1e-4, b
            survived += 1
    assert survived > 0 and pruned > 0  # both branches were exercised


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_padding_does_not_change_a_rows_translation(models, src, kind, search):
    def run(src_ids):
        if search == "greedy":
            return numpy_dict(greedy_search(models[kind], src_ids, MAX_LEN))
        return numpy_dict(beam_search(models[kind], src_ids, MAX_LEN, beam_size=3))

    batched = run(src)
    for b in range(len(src)):
        n = int((src[b] != PAD).sum())
        alone = run(src[b : b + 1, :n])  # no padding at all
        np.testing.assert_array_equal(alone["tokens"][0], batched["tokens"][b])
        np.testing.assert_allclose(alone["attention"][0], batched["attention"][b, :, :n], atol=1e-5)
        np.testing.assert_array_equal(batched["attention"][b, :, n:], 0.0)
        if search == "beam":
            np.testing.assert_allclose(alone["scores"][0], batched["scores"][b], atol=1e-4)


def eos_only_model(kind):
    """A model whose output layer always prefers <eos>."""
    model = build(kind)
    dense = model.get_layer("output_dense")
    kernel, bias = dense.get_weights()
    bias = np.zeros_like(bias)
    bias[EOS] = 100.0
    dense.set_weights([np.zeros_like(kernel), bias])
    return model


@pytest.mark.parametrize("kind", KINDS)
def test_stops_as_soon_as_every_row_has_eos(monkeypatch, src, kind):
    calls = []
    cls = generate.TransformerStepDecoder if kind == "transformer" else generate.BahdanauStepDecoder
    original = cls.step

    def counting_step(self, tokens, state, index):
        calls.append(index)
        return original(self, tokens, state, index)

    monkeypatch.setattr(cls, "step", counting_step)
    model = eos_only_model(kind)
    out = numpy_dict(greedy_search(model, src, MAX_LEN))
    assert len(calls) == 1
    np.testing.assert_array_equal(out["tokens"][:, 0], EOS)
    np.testing.assert_array_equal(out["tokens"][:, 1:], PAD)
    np.testing.assert_array_equal(out["lengths"], 1)
    calls.clear()
    out = numpy_dict(beam_search(model, src, MAX_LEN, beam_size=1))
    assert len(calls) == 1
    np.testing.assert_array_equal(out["lengths"], 1)


@pytest.mark.parametrize(
    "kind, jit_compile", [("transformer", False), ("transformer", True), ("bahdanau", True)]
)
@pytest.mark.tensorflow_only(reason="tf.function")
def test_greedy_inside_tf_function(models, src, kind, jit_compile):
    model = models[kind]
    # As in an exported translator: unknown batch and length at trace time.
    fn = tf.function(
        lambda s: greedy_search(model, s, MAX_LEN),
        input_signature=[tf.TensorSpec((None, None), tf.int32)],
        jit_compile=jit_compile,
    )
    graph = numpy_dict(fn(tf.constant(src)))
    eager = numpy_dict(greedy_search(model, src, MAX_LEN))
    np.testing.assert_array_equal(graph["tokens"], eager["tokens"])
    np.testing.assert_array_equal(graph["lengths"], eager["lengths"])
    np.testing.assert_allclose(graph["attention"], eager["attention"], atol=1e-5)
    if not jit_compile:  # XLA would compile again for a new shape: slow
        other = numpy_dict(fn(tf.constant(src[:2, :4])))  # another shape, same trace
        np.testing.assert_array_equal(
            other["tokens"], numpy_dict(greedy_search(model, src[:2, :4], MAX_LEN))["tokens"]
        )


@pytest.mark.tensorflow_only(reason="tf.function with XLA")
def test_beam_inside_jit_compiled_tf_function(models, src):
    # The Transformer's step runs under XLA in test_greedy_inside_tf_function;
    # the cheaper GRU model carries the beam bookkeeping through XLA here.
    model = models["bahdanau"]
    fn = tf.function(
        lambda s: beam_search(model, s, MAX_LEN, beam_size=3),
        input_signature=[tf.TensorSpec((None, None), tf.int32)],
        jit_compile=True,
    )
    graph = numpy_dict(fn(tf.constant(src)))
    eager = numpy_dict(beam_search(model, src, MAX_LEN, beam_size=3))
    np.testing.assert_array_equal(graph["all_tokens"], eager["all_tokens"])
    np.testing.assert_allclose(graph["all_scores"], eager["all_scores"], atol=1e-4)


def test_max_len_beyond_positional_encoding_raises(models, src):
    with pytest.raises(ValueError, match=r"`max_len` must be at most .*max_len=32.*got max_len=33"):
        greedy_search(models["transformer"], src, 33)
    with pytest.raises(ValueError, match=r"`max_len` must be at most"):
        beam_search(models["transformer"], src, 40)
    with pytest.raises(ValueError, match=r"`max_len` must be at most"):
        greedy_search(models["transformer"], src, 33, use_cache=False)
    # The GRU model has no positional limit.
    assert greedy_search(models["bahdanau"], src[:1], 40)["tokens"].shape == (1, 40)


@pytest.mark.parametrize("max_len", [0, -3, 2.5, None, True])
def test_bad_max_len_raises(models, src, max_len):
    with pytest.raises(ValueError, match=r"`max_len` must be a positive integer; got max_len="):
        greedy_search(models["bahdanau"], src, max_len)
    with pytest.raises(ValueError, match=r"`max_len` must be a positive integer; got max_len="):
        beam_search(models["bahdanau"], src, max_len)


def test_huge_max_len_is_a_clear_error_not_an_out_of_memory(models, src):
    with pytest.raises(
        ValueError, match=r"`max_len` must be at most 65536 .*got max_len=1000000000"
    ):
        greedy_search(models["bahdanau"], src, 10**9)


@pytest.mark.parametrize("beam_size", [0, -1, 2.0, True])
def test_bad_beam_size_raises(models, src, beam_size):
    with pytest.raises(ValueError, match=r"`beam_size` must be a positive integer; got beam_size="):
        beam_search(models["transformer"], src, MAX_LEN, beam_size=beam_size)


@pytest.mark.parametrize("length_penalty", [-0.1, float("nan"), "0.6"])
def test_bad_length_penalty_raises(models, src, length_penalty):
    with pytest.raises(ValueError, match=r"`length_penalty` must be a finite number >= 0"):
        beam_search(models["transformer"], src, MAX_LEN, length_penalty=length_penalty)


def test_bad_use_cache_raises(models, src):
    with pytest.raises(ValueError, match="`use_cache` must be True or False"):
        greedy_search(models["transformer"], src, MAX_LEN, use_cache="yes")
    with pytest.raises(ValueError, match="`use_cache` must be True or False"):
        beam_search(models["transformer"], src, MAX_LEN, use_cache=1)


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (
            np.array([5, 6, 7]),
            ValueError,
            r"`src_ids` must have shape \(batch, length\); got shape \(3,\)",
        ),
        (
            np.array([[5.0, 6.0]]),
            TypeError,
            "`src_ids` must hold integer token ids; got dtype float64",
        ),
        (
            np.array([[5, -1]]),
            ValueError,
            r"`src_ids` must hold ids in \[0, vocab_size=30\) .*got -1",
        ),
        (
            np.array([[5, 30]]),
            ValueError,
            r"`src_ids` must hold ids in \[0, vocab_size=30\) .*got 30",
        ),
    ],
)
def test_bad_src_ids_are_named(models, bad, error, match):
    for search in (greedy_search, beam_search):
        with pytest.raises(error, match=match):
            search(models["transformer"], bad, MAX_LEN)


def test_unknown_model_raises(src):
    model = keras.Sequential([keras.layers.Dense(2)], name="other")
    with pytest.raises(ValueError, match="`model` must be built by"):
        greedy_search(model, src, MAX_LEN)


def test_decode_to_lists():
    tokens = np.array([[5, 6, 2, 0], [7, 8, 9, 4], [2, 0, 0, 0]], "int32")
    assert decode_to_lists(tokens) == [[5, 6], [7, 8, 9, 4], []]
    assert decode_to_lists(keras.ops.convert_to_tensor(tokens), lengths=[3, 2, 1]) == [
        [5, 6],
        [7, 8],
        [],
    ]
    assert decode_to_lists(np.array([[5, 9, 0]]), eos_id=9) == [[5]]
    with pytest.raises(ValueError, match="`tokens` must have shape"):
        decode_to_lists(np.array([1, 2]))
    with pytest.raises(ValueError, match="`lengths` must have one entry per row"):
        decode_to_lists(tokens, lengths=[1])


def test_module_doctest_examples_run():
    import doctest

    results = doctest.testmod(generate, optionflags=doctest.ELLIPSIS)
    assert results.failed == 0


@pytest.mark.parametrize("policy", ["mixed_float16"])
def test_mixed_precision_outputs_are_finite_float32(src, policy):
    keras.config.set_dtype_policy(policy)
    model = build("transformer")
    greedy = greedy_search(model, src, 6)
    beam = beam_search(model, src, 6, beam_size=2)
    for out in (greedy, beam):
        assert keras.backend.standardize_dtype(out["attention"].dtype) == "float32"
        assert np.isfinite(keras.ops.convert_to_numpy(out["attention"])).all()
    assert np.isfinite(keras.ops.convert_to_numpy(beam["all_scores"])).all()
