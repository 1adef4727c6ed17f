"""Tests for keras_attention/models/lora.py: `enable_lora` on every builder's model.

Each model: LoRA switches on in the query and value projections, the
trainable count drops to `r (d_in + d_out)` (+ bias) per target, the outputs
are unchanged right after, a fit step trains only the LoRA weights (and the
targets' biases), and the `.keras` file (merged kernels) loads with
`safe_mode=True` giving the same outputs. Then a tiny pretrained GPT is
fine-tuned on a shifted distribution with LoRA and fully.
"""

import re
import time

import keras
import numpy as np
import pytest
from keras import ops

from keras_attention import models

from helpers import assert_keras_round_trip

V, D, F, H, N, T = 20, 16, 32, 2, 2, 12
IDS = np.array([[3, 4, 5, 6, 7, 0], [8, 9, 10, 11, 12, 13]], "int32")
PAIR = {"src_ids": IDS, "tgt_in_ids": IDS}
BERT_IN = {"token_ids": IDS, "segment_ids": np.zeros_like(IDS)}


def build(kind):
    """(model, inputs, targets, targets_have_bias) of each builder."""
    keras.utils.set_random_seed(0)
    if kind == "gpt":
        return models.gpt(V, D, F, H, N, 0.0, max_len=T), IDS, 2 * N, True
    if kind == "transformer":
        return models.transformer(V, V, D, F, H, N, 0.0, max_len=T), PAIR, 6 * N, False
    if kind == "t5":
        return models.t5(V, D, F, H, N, 0.0, max_len=T), PAIR, 6 * N, False
    if kind == "bert":
        return models.bert(V, D, F, H, N, 0.0, max_len=T), BERT_IN, 2 * N, False
    if kind == "bert_classifier":
        encoder = models.bert(V, D, F, H, N, 0.0, max_len=T)
        return models.bert_classifier(encoder, 3), BERT_IN, 2 * N, False
    if kind == "vision_transformer":
        images = np.random.RandomState(0).rand(2, 8, 8, 1).astype("float32")
        return models.vision_transformer(8, 4, D, F, H, N, 0.0, 0.0, 3), images, 2 * N, False
    # bahdanau_seq2seq: the additive attention's W_q (its keys are W_k; GRUs have no LoRA).
    return models.bahdanau_seq2seq(V, V, 8, D, 1, 0.0), PAIR, 1, False


KINDS = [
    "gpt",
    "transformer",
    "t5",
    "bert",
    "bert_classifier",
    "vision_transformer",
    "bahdanau_seq2seq",
]


def count(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


def first_output(model, inputs):
    return ops.convert_to_numpy(keras.tree.flatten(model(inputs, training=False))[0])


@pytest.mark.parametrize("kind", KINDS)
def test_enable_lora_counts_outputs_training_and_round_trip(kind, tmp_path):
    model, inputs, num_targets, bias = build(kind)
    before = first_output(model, inputs)
    full = count(model.trainable_weights)
    rank = 2
    chosen = models.enable_lora(model, rank)
    assert len(chosen) == num_targets
    expected = sum(
        rank * (layer.kernel.shape[0] + layer.kernel.shape[1]) + (layer.units if bias else 0)
        for layer in chosen
    )
    assert count(model.trainable_weights) == expected < full / 4
    # B starts at zero. (Not bit for bit: with LoRA the attention projects
    # queries, keys and values separately instead of in one fused matmul.)
    np.testing.assert_allclose(first_output(model, inputs), before, atol=1e-5)

    # One SGD step moves only the trainable weights; LoRA's B leaves zero.
    frozen = {id(w): ops.convert_to_numpy(w).copy() for w in model.non_trainable_weights}
    lora_b = [layer.lora_kernel_b for layer in chosen]
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    noise = np.random.RandomState(1).normal(size=before.shape).astype("float32")
    model.fit(inputs, before + noise, epochs=1, batch_size=2, verbose=0)
    assert all(
        np.array_equal(ops.convert_to_numpy(w), frozen[id(w)]) for w in model.non_trainable_weights
    )
    assert any(np.abs(ops.convert_to_numpy(b)).max() > 0 for b in lora_b)
    tuned = first_output(model, inputs)

    # The file holds the merged kernels W + A B: the same outputs up to float
    # rounding (the loaded attention fuses its projections again).
    model.save(str(tmp_path / f"{kind}.keras"))
    restored = keras.saving.load_model(str(tmp_path / f"{kind}.keras"), safe_mode=True)
    np.testing.assert_allclose(first_output(restored, inputs), tuned, atol=1e-5)
    assert_keras_round_trip(restored, inputs, tmp_path / f"{kind}_merged.keras")
    # The loaded model holds the merged kernels; LoRA can be switched on again.
    assert len(models.enable_lora(restored, rank)) == num_targets


def test_trainable_layers_and_custom_targets():
    model, _, _, _ = build("bert_classifier")
    models.enable_lora(
        model, 2, targets=("W_q", "W_k", "W_v", "W_o"), trainable_layers=("classifier",)
    )
    head = model.get_layer("classifier")
    assert all(w.trainable for w in head.weights)
    lora = [w for w in model.trainable_weights if "lora" in w.path]
    assert len(lora) == 2 * 4 * N


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"rank": 0}, "`rank` must be a positive integer; got rank=0."),
        ({"rank": 2, "lora_alpha": -1}, "`lora_alpha` must be a positive finite number"),
        ({"rank": 2, "targets": ()}, "`targets` must name at least one layer; got targets=()."),
        ({"rank": 2, "targets": [3]}, "`targets` must be a tuple of layer names; got targets=[3]."),
        (
            {"rank": 2, "targets": ("query",)},
            "`targets` must name Dense layers of the model; got targets=['query']",
        ),
        (
            {"rank": 2, "trainable_layers": ("clasifier",)},
            "`trainable_layers` must name layers of the model; 'gpt' has no ['clasifier']",
        ),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    model, _, _, _ = build("gpt")
    with pytest.raises(ValueError, match=re.escape(message)):
        models.enable_lora(model, **kwargs)


def test_enabling_twice_raises():
    model, _, _, _ = build("gpt")
    models.enable_lora(model, 2)
    with pytest.raises(ValueError, match=re.escape("LoRA is already enabled in")):
        models.enable_lora(model, 2)


# --- Fine-tuning a pretrained GPT: LoRA against full fine-tuning. ---

CHARS, SEQ = 17, 16


def arithmetic_text(steps, num, seed):
    """Generated "text": token sequences `start + step * k` (mod 16, ids 1..16).

    Pretraining sees steps {1, 2}; the shifted distribution steps {3, 5}.
    Returns inputs and next-token targets `(num, SEQ)`.
    """
    rng = np.random.RandomState(seed)
    start = rng.randint(0, CHARS - 1, size=(num, 1))
    step = rng.choice(steps, size=(num, 1))
    seq = (start + step * np.arange(SEQ + 1)) % (CHARS - 1) + 1
    return seq[:, :-1].astype("int32"), seq[:, 1:].astype("int32")


def small_gpt():
    return models.gpt(CHARS, 32, 64, 2, 2, 0.0, max_len=SEQ, pad_id=None)


def compiled(model, learning_rate):
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def test_lora_fine_tuning_of_a_pretrained_gpt_gains_with_few_trainable_numbers(capsys):
    start = time.perf_counter()
    keras.utils.set_random_seed(0)
    base = compiled(small_gpt(), 3e-3)
    base.fit(*arithmetic_text([1, 2], 2048, 0), batch_size=64, epochs=1, verbose=0)
    weights = base.get_weights()
    train, held_out = arithmetic_text([3, 5], 768, 1), arithmetic_text([3, 5], 512, 2)
    results = {}
    for kind, learning_rate in (("lora", 1e-2), ("full", 3e-3)):  # LoRA takes a larger rate
        model = small_gpt()
        model.set_weights(weights)
        if kind == "lora":
            models.enable_lora(model, rank=4)
        compiled(model, learning_rate)
        before = model.evaluate(*held_out, batch_size=256, verbose=0)
        model.fit(*train, batch_size=64, epochs=1, verbose=0)
        after = model.evaluate(*held_out, batch_size=256, verbose=0)
        results[kind] = (count(model.trainable_weights), before, before - after)
    with capsys.disabled():
        for kind, (trainable, before, gain) in results.items():
            print(
                f"\n{kind}: {trainable} trainable numbers, held-out loss {before:.3f} -> "
                f"{before - gain:.3f} (gain {gain:.3f} nats)",
                end="",
            )
        print(f"\n({time.perf_counter() - start:.1f} s)")
    lora, full = results["lora"], results["full"]
    assert lora[0] < full[0] / 10
    assert lora[2] > 0.5 and full[2] > 0.5  # both learn the shifted distribution
