"""Length extrapolation of `models.gpt`: trained at `T`, evaluated at `T`, `2T` and `4T`.

A tiny GPT (`D = 16`, 2 heads, 1 block) learns a second-order Markov chain
over 7 characters (each next character drawn from `p(c | a, b)` of the two
before it, a fixed peaked table) from windows of `T = 16` tokens, for 150
Adam steps, with rotary positions and with ALiBi. The trained rotary
weights are then read, without training, with each rotary scaling of
`keras_attention` (linear interpolation, NTK-aware, YaRN) at factors 2 and
4. The facts asserted are the ones that hold from seed to seed:

- the learned table covers `max_len` positions: a longer input is a
  `ValueError` (it cannot extrapolate at all);
- ALiBi's loss at `4T` stays within a small margin of its loss at `T`;
- NTK-aware and YaRN scaling give a lower loss at `4T` than plain rotary;
- every loss is finite.

The figures are printed (`pytest -s`): one line per model, the loss (nats
per token, held-out text) at `T`, `2T`, `4T`, next to the chain's own
entropy (the floor) and `ln 7` (a model that learned nothing).
"""

import math
import re

import keras
import numpy as np
import pytest
from keras import ops

from keras_attention import models

T, VOCAB, STEPS, BATCH = 16, 7, 150, 16
LENGTHS = (T, 2 * T, 4 * T)
SCALINGS = [(scaling, factor) for scaling in ("linear", "ntk", "yarn") for factor in (2, 4)]
ALIBI_MARGIN = 0.15  # nats per token, loss at 4T over the loss at T


def markov_chain(length, seed):
    """`length` ids in `1..7` from the fixed second-order chain; its entropy in nats."""
    probs = np.random.RandomState(0).dirichlet(np.full(VOCAB, 0.2), size=(VOCAB, VOCAB))
    cumulative = probs.cumsum(-1)  # (a, b, c): P(next <= c | a, b)
    rng = np.random.RandomState(seed)
    ids = list(rng.randint(VOCAB, size=2))
    for u in rng.rand(length - 2):
        ids.append(min(int(np.searchsorted(cumulative[ids[-2], ids[-1]], u)), VOCAB - 1))
    ids = np.array(ids)
    entropy = -np.mean(np.log(probs[ids[:-2], ids[1:-1], ids[2:]]))
    return (ids + 1).astype("int32"), float(entropy)  # 0 stays free (pad_id=None anyway)


def windows(text, length, count, seed):
    """`count` (inputs, next tokens) windows of `length` at random offsets of `text`."""
    starts = np.random.RandomState(seed).randint(0, len(text) - length - 1, size=count)
    both = np.stack([text[s : s + length + 1] for s in starts])
    return both[:, :-1], both[:, 1:]


def build(positions, **scaling):
    return models.gpt(
        VOCAB + 1, 16, 32, 2, 1, 0.0, max_len=T, pad_id=None, positions=positions, **scaling
    )


def held_out_loss(model, held, length):
    inputs, targets = windows(held, length, 64, seed=4)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return float(ops.convert_to_numpy(loss(targets, model(inputs, training=False))))


@pytest.fixture(scope="module")
def losses():
    """`{model: [loss at T, 2T, 4T]}`, and the chain's entropy under `"entropy"`."""
    keras.config.set_dtype_policy("float32")
    train, _ = markov_chain(20000, seed=1)
    held, entropy = markov_chain(20000, seed=2)
    inputs, targets = windows(train, T, STEPS * BATCH, seed=3)
    table = {}
    for positions in ("rotary", "alibi"):
        keras.utils.set_random_seed(0)
        model = build(positions)
        model.compile(
            optimizer=keras.optimizers.Adam(1e-2),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        model.fit(inputs, targets, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
        table[positions] = [held_out_loss(model, held, n) for n in LENGTHS]
        if positions == "rotary":
            for scaling, factor in SCALINGS:
                scaled = build(
                    "rotary",
                    rotary_scaling=scaling,
                    rotary_scaling_factor=factor,
                    rotary_original_max_len=T if scaling == "yarn" else None,
                )
                scaled.set_weights(model.get_weights())  # rotary has no weights of its own
                table[f"rotary {scaling} x{factor}"] = [
                    held_out_loss(scaled, held, n) for n in LENGTHS
                ]
    print(
        f"\nloss (nats/token) at T={T} / 2T / 4T after {STEPS} Adam steps on {keras.backend.backend()}"
        f"; chain entropy {entropy:.3f}, ln 7 = {math.log(VOCAB):.3f}"
    )
    for name, row in table.items():
        print(f"  {name:18s} " + " / ".join(f"{value:.3f}" for value in row))
    keras.config.set_dtype_policy("float32")
    return {**table, "entropy": entropy}


def test_the_learned_table_raises_past_max_len():
    model = build("learned")
    assert model(np.ones((1, T), "int32")).shape == (1, T, VOCAB + 1)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "The sequence is longer than `max_len`: LearnedPositionalEmbedding covers "
            f"positions 0..{T - 1} (max_len={T}), but start_index=0 + sequence length={2 * T}"
        ),
    ):
        model(np.ones((1, 2 * T), "int32"))


def test_every_loss_is_finite_and_the_models_learned(losses):
    rows = {name: row for name, row in losses.items() if name != "entropy"}
    assert all(np.isfinite(row).all() for row in rows.values()), rows
    # Both trained models are well below chance at the trained length.
    for name in ("rotary", "alibi"):
        assert rows[name][0] < math.log(VOCAB) - 0.2, rows


def test_alibi_holds_its_loss_at_four_times_the_trained_length(losses):
    at_t, _, at_4t = losses["alibi"]
    assert at_4t < at_t + ALIBI_MARGIN, losses["alibi"]


@pytest.mark.parametrize("scaling", ["ntk", "yarn"])
@pytest.mark.parametrize("factor", [2, 4])
def test_ntk_and_yarn_scaling_beat_plain_rotary_at_four_times(losses, scaling, factor):
    plain = losses["rotary"][2]
    scaled = losses[f"rotary {scaling} x{factor}"][2]
    assert scaled < plain, (plain, scaled)
