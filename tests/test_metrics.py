import ast
import collections
import math
import pathlib
import random
import re

import keras
import numpy as np
import pytest

from keras_attention import metrics
from keras_attention.metrics import (
    MaskedAccuracy,
    MaskedSparseCategoricalCrossentropy,
    bleu,
    corpus_bleu,
)

# ---------------------------------------------------------------- bleu


def test_bleu_identical_is_one():
    assert bleu("va !", "va !", k=2) == 1.0
    assert bleu("je suis chez moi .", "je suis chez moi .", k=4) == 1.0


def test_bleu_d2l_printed_example():
    # D2L's seq2seq section prints "he's calm . => ['il', 'est', 'riche', '.'], bleu,0.658".
    # p1 = 3/4, p2 = 1/3, same length: (3/4)**(1/2) * (1/3)**(1/4).
    expected = math.sqrt(3 / 4) * (1 / 3) ** 0.25
    assert bleu("il est riche .", "il est calme .", k=2) == pytest.approx(expected, abs=1e-12)
    assert round(bleu("il est riche .", "il est calme .", k=2), 3) == 0.658


def test_bleu_brevity_penalty_only_for_short_predictions():
    # All n-grams match; the prediction is half the reference's length.
    assert bleu("a b", "a b c d", k=2) == pytest.approx(math.exp(1 - 4 / 2))
    # A longer prediction is not rewarded or penalised by length: p1 = 2/4, p2 = 1/3.
    assert bleu("a b x y", "a b", k=2) == pytest.approx((2 / 4) ** 0.5 * (1 / 3) ** 0.25)


def test_bleu_clips_repeated_ngrams():
    # "the" occurs once in the label, so only one of three counts; no bigram matches.
    assert bleu("the the the", "the cat", k=1) == pytest.approx(math.exp(0) * (1 / 3) ** 0.5)
    assert bleu("the the the", "the cat", k=2) == 0.0


def test_bleu_k_longer_than_prediction_uses_available_ngrams():
    # len_pred = 1: only unigrams are scored even with k = 4.
    assert bleu("go", "go now", k=4) == pytest.approx(math.exp(1 - 2 / 1))


def _reference_bleu(pred, label, k):
    """Textbook formula with clipped counts, written independently of D2L's loop."""
    p, l = pred.split(" "), label.split(" ")
    score = math.exp(min(0.0, 1 - len(l) / len(p)))
    for n in range(1, min(k, len(p)) + 1):
        grams = lambda toks: collections.Counter(
            tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)
        )
        pc, lc = grams(p), grams(l)
        matches = sum(min(c, lc[g]) for g, c in pc.items())
        score *= (matches / (len(p) - n + 1)) ** (0.5**n)
    return score


def test_bleu_matches_clipped_count_formula_on_random_sentences():
    rng = random.Random(0)
    words = "a b c d e".split()
    for _ in range(300):
        pred = " ".join(rng.choice(words) for _ in range(rng.randint(1, 8)))
        label = " ".join(rng.choice(words) for _ in range(rng.randint(1, 8)))
        k = rng.randint(1, 4)
        assert bleu(pred, label, k) == pytest.approx(_reference_bleu(pred, label, k), abs=1e-12)


# ---------------------------------------------------------------- corpus_bleu


def test_corpus_bleu_matches_sacrebleu():
    import sacrebleu

    hyps = ["the cat sat on the mat .", "il est riche .", "je suis chez moi ."]
    refs = ["the cat is on the mat .", "il est calme .", "je suis chez moi ."]
    expected = sacrebleu.corpus_bleu(hyps, [refs]).score
    assert corpus_bleu(hyps, refs) == pytest.approx(expected)
    assert 0 < corpus_bleu(hyps, refs) < 100
    assert corpus_bleu(refs, refs) == pytest.approx(100.0)


def test_corpus_bleu_several_references():
    import sacrebleu

    hyps = ["the cat sat on the mat", "hello there"]
    refs = [["a cat sat on the mat", "the cat sat on the mat"], ["hello there"]]
    expected = sacrebleu.corpus_bleu(
        hyps, [["a cat sat on the mat", "hello there"], ["the cat sat on the mat", None]]
    ).score
    assert corpus_bleu(hyps, refs) == pytest.approx(expected)
    assert corpus_bleu(hyps, refs) == pytest.approx(100.0)


def test_corpus_bleu_length_mismatch():
    with pytest.raises(ValueError, match="same length"):
        corpus_bleu(["a"], ["a", "b"])


def test_bleu_bad_arguments_are_named():
    # A list of tokens was an AttributeError on `.split`; k <= 0 silently gave the brevity
    # penalty alone (no n-gram was compared).
    with pytest.raises(
        TypeError, match=r"`pred_seq` must be a str of tokens joined by spaces; got a list\. Join"
    ):
        bleu(["il", "est"], "il est")
    with pytest.raises(TypeError, match=r"`label_seq` must be a str .*; got a NoneType\."):
        bleu("il est", None)
    for k in (0, -1, 1.5):
        with pytest.raises(ValueError, match=f"`k` must be a positive integer; got k={k}."):
            bleu("il est", "il est", k=k)
    assert bleu("il est", "il est", k=np.int64(2)) == 1.0


def test_corpus_bleu_bad_arguments_are_named():
    # A str was read as its characters; no sentence was an IndexError inside sacrebleu, an
    # unknown tokenizer its KeyError.
    with pytest.raises(
        TypeError, match="`hypotheses` must be a list of str, one per sentence; got a str."
    ):
        metrics.corpus_bleu("il est", ["il est"])
    with pytest.raises(TypeError, match="`references` must be a list of str"):
        metrics.corpus_bleu(["il est"], "il est")
    with pytest.raises(ValueError, match="`hypotheses` must hold at least one sentence; got none."):
        metrics.corpus_bleu([], [])
    with pytest.raises(
        ValueError, match=r"`tokenize` must be one of \[.*'13a'.*\]; got tokenize='foo'."
    ):
        metrics.corpus_bleu(["il est"], ["il est"], tokenize="foo")
    assert metrics.corpus_bleu(
        ["il est riche ."], ["il est riche ."], tokenize="none"
    ) == pytest.approx(100.0)


def test_metrics_module_imports_no_tensorflow_or_sacrebleu_at_top_level():
    tree = ast.parse(pathlib.Path(metrics.__file__).read_text())
    top = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            top.add(node.module.split(".")[0])
            if node.module == "keras_attention":  # the argument checks (keras and numpy only)
                assert [alias.name for alias in node.names] == ["_checks"]
    assert top <= {"collections", "math", "keras", "keras_attention"}


# ---------------------------------------------------------------- masked loss


def _numpy_masked_ce(labels, logits, pad_id, weights=None):
    logits = logits.astype(np.float64)
    log_probs = logits - logits.max(-1, keepdims=True)
    log_probs = log_probs - np.log(np.exp(log_probs).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_probs, labels[..., None], -1)[..., 0]
    mask = (labels != pad_id).astype(np.float64)
    if weights is not None:
        mask = mask * (weights[:, None] if weights.ndim == 1 else weights)
    return (nll * mask).sum() / mask.sum()


def _batch(seed=0, batch=4, steps=6, vocab=7, pad_id=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(1, vocab, size=(batch, steps))
    lengths = np.array([6, 3, 1, 4])[:batch]
    labels[np.arange(steps)[None, :] >= lengths[:, None]] = pad_id
    logits = rng.normal(size=(batch, steps, vocab)).astype("float32")
    return labels.astype("int32"), logits


def test_masked_loss_is_mean_over_non_pad_tokens():
    labels, logits = _batch()
    loss = MaskedSparseCategoricalCrossentropy(pad_id=0)
    expected = _numpy_masked_ce(labels, logits, 0)
    assert float(loss(labels, logits)) == pytest.approx(expected, rel=1e-5)
    # Differs from the unmasked mean (D2L's loss), which counts the pads.
    unmasked = float(keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits))
    assert abs(unmasked - expected) > 1e-3


def test_masked_loss_pad_logits_do_not_matter():
    labels, logits = _batch()
    changed = logits.copy()
    changed[labels == 0] = 100.0 * np.random.default_rng(1).normal(size=changed[labels == 0].shape)
    loss = MaskedSparseCategoricalCrossentropy()
    assert float(loss(labels, changed)) == pytest.approx(float(loss(labels, logits)), rel=1e-6)


def test_masked_loss_other_pad_id_and_probabilities():
    labels, logits = _batch(vocab=9)
    labels = np.where(labels == 0, 8, labels).astype("int32")  # pad is 8 now, 0 a real id
    labels[0, 0] = 0
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    loss = MaskedSparseCategoricalCrossentropy(pad_id=8, from_logits=False)
    assert float(loss(labels, probs)) == pytest.approx(
        _numpy_masked_ce(labels, logits, 8), rel=1e-4
    )


def test_masked_loss_sample_weight_is_weighted_token_mean():
    labels, logits = _batch()
    weights = np.array([1.0, 0.0, 2.0, 0.5], dtype="float32")
    loss = MaskedSparseCategoricalCrossentropy()
    expected = _numpy_masked_ce(labels, logits, 0, weights)
    assert float(loss(labels, logits, sample_weight=weights)) == pytest.approx(expected, rel=1e-5)
    token_weights = np.random.default_rng(2).uniform(size=labels.shape).astype("float32")
    expected = _numpy_masked_ce(labels, logits, 0, token_weights)
    assert float(loss(labels, logits, sample_weight=token_weights)) == pytest.approx(
        expected, rel=1e-5
    )


def test_masked_loss_all_padding_is_zero_not_nan():
    loss = MaskedSparseCategoricalCrossentropy()
    value = float(loss(np.zeros((2, 3), "int32"), np.zeros((2, 3, 5), "float32")))
    assert value == 0.0


def test_masked_loss_float16_predictions_computed_in_float32():
    labels, logits = _batch()
    loss = MaskedSparseCategoricalCrossentropy()
    value = loss(labels, logits.astype("float16"))
    assert keras.backend.standardize_dtype(value.dtype) == "float32"
    assert float(value) == pytest.approx(_numpy_masked_ce(labels, logits, 0), rel=1e-2)


def test_masked_loss_config_round_trip_and_serialization():
    loss = MaskedSparseCategoricalCrossentropy(pad_id=3, from_logits=False, name="ce")
    config = loss.get_config()
    assert config["pad_id"] == 3 and config["from_logits"] is False and config["name"] == "ce"
    again = MaskedSparseCategoricalCrossentropy.from_config(config)
    assert again.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert isinstance(restored, MaskedSparseCategoricalCrossentropy)
    assert restored.get_config() == config


def test_masked_loss_rejects_bad_arguments():
    with pytest.raises(ValueError, match="`reduction` must be 'sum_over_batch_size'"):
        MaskedSparseCategoricalCrossentropy(reduction="sum")
    with pytest.raises(ValueError, match="`pad_id` must be an int; got pad_id='0'"):
        MaskedSparseCategoricalCrossentropy(pad_id="0")


# ---------------------------------------------------------------- masked accuracy


def test_masked_accuracy_counts_non_pad_tokens_across_batches():
    metric = MaskedAccuracy(pad_id=0)
    correct = total = 0
    for seed in range(3):
        labels, logits = _batch(seed=seed)
        metric.update_state(labels, logits)
        mask = labels != 0
        correct += ((logits.argmax(-1) == labels) & mask).sum()
        total += mask.sum()
    assert float(metric.result()) == pytest.approx(correct / total)
    metric.reset_state()
    assert float(metric.result()) == 0.0


def test_masked_accuracy_hand_example_and_weights():
    labels = np.array([[2, 1, 0, 0], [3, 3, 3, 0]], "int32")
    preds = np.array([[2, 2, 0, 0], [3, 0, 3, 1]])
    scores = np.eye(5, dtype="float32")[preds]
    metric = MaskedAccuracy()
    metric.update_state(labels, scores)
    assert float(metric.result()) == pytest.approx(3 / 5)  # pads (predicted right or not) ignored
    weighted = MaskedAccuracy()
    weighted.update_state(labels, scores, sample_weight=np.array([1.0, 3.0], "float32"))
    assert float(weighted.result()) == pytest.approx((1 + 3 * 2) / (2 + 3 * 3))


def test_masked_accuracy_serialization():
    metric = MaskedAccuracy(pad_id=5, name="acc")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(metric))
    assert isinstance(restored, MaskedAccuracy)
    assert restored.get_config() == metric.get_config()
    assert restored.pad_id == 5


def test_loss_and_metric_work_in_fit_and_saved_model(tmp_path):
    inputs = keras.Input(shape=(None,), dtype="int32")
    x = keras.layers.Embedding(6, 8)(inputs)
    outputs = keras.layers.Dense(6)(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer="adam",
        loss=MaskedSparseCategoricalCrossentropy(),
        metrics=[MaskedAccuracy()],
    )
    labels, _ = _batch(vocab=6)
    history = model.fit(labels, labels, epochs=2, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    loss_value, acc = model.evaluate(labels, labels, verbose=0)
    expected = _numpy_masked_ce(labels, model.predict(labels, verbose=0), 0)
    assert loss_value == pytest.approx(expected, rel=1e-4)
    assert 0.0 <= acc <= 1.0
    path = tmp_path / "m.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored.loss, MaskedSparseCategoricalCrossentropy)


def test_masked_loss_and_accuracy_name_labels_of_another_shape_or_out_of_range():
    """Labels past the vocabulary were TensorFlow's SparseSoftmaxCrossEntropyWithLogits error
    (NaN on a GPU), labels of another length an `Incompatible shapes` error."""
    logits = np.zeros((1, 2, 5), "float32")
    for labels, low, high in ((np.array([[1, 7]]), 1, 7), (np.array([[-1, 1]]), -1, 1)):
        with pytest.raises(
            ValueError,
            match=re.escape(
                f"`y_true` must hold labels in [0, 5) (the last axis of y_pred); got labels from {low} to {high}."
            ),
        ):
            MaskedSparseCategoricalCrossentropy()(labels, logits)
    message = "`y_true` must have shape (the axes of y_pred but the last)=(1, 2); got y_true.shape=(1, 3)."
    with pytest.raises(ValueError, match=re.escape(message)):
        MaskedSparseCategoricalCrossentropy()(np.array([[1, 2, 3]]), logits)
    with pytest.raises(ValueError, match=re.escape(message)):
        MaskedAccuracy().update_state(np.array([[1, 2, 3]]), logits)
    # In range, the loss is the mean over two tokens of log(5).
    assert float(
        MaskedSparseCategoricalCrossentropy()(np.array([[1, 4]]), logits)
    ) == pytest.approx(math.log(5))
