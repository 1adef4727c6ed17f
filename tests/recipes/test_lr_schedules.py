"""Learning-rate schedules (`recipes.training.learning_rate_schedule`, `--lr-schedule`): values."""

import math

import keras
import numpy as np
import pytest

from keras_attention import cli
from keras_attention.recipes import training


def _values(schedule, steps):
    return np.array([float(schedule(step)) for step in steps])


def test_warmup_rsqrt_is_the_transformer_papers_schedule():
    """Vaswani et al. 5.3: d_model**-0.5 * min(step**-0.5, step * warmup**-1.5), steps from 1,
    with the peak d_model**-0.5 * warmup**-0.5 given as the learning rate."""
    d_model, warmup = 512, 4000
    peak = d_model**-0.5 * warmup**-0.5
    schedule = training.learning_rate_schedule("warmup-rsqrt", peak)
    assert isinstance(schedule, training.TransformerSchedule) and schedule.warmup_steps == 4000
    steps = np.array([0, 1, 99, 1999, 3998, 3999, 4000, 9999, 99999])
    n = steps + 1.0  # the optimizer's iterations count from 0; the paper's steps from 1
    paper = d_model**-0.5 * np.minimum(n**-0.5, n * warmup**-1.5)
    np.testing.assert_allclose(_values(schedule, steps), paper, rtol=1e-6)
    assert _values(schedule, [3999])[0] == pytest.approx(peak, rel=1e-6)  # the peak at warmup
    # Hand-computed: half-way through warmup is half the peak; 4x the warmup is half the peak.
    small = training.learning_rate_schedule("warmup-rsqrt", 1.0, warmup_steps=10)
    np.testing.assert_allclose(_values(small, [4, 9, 39, 99]), [0.5, 1.0, 0.5, math.sqrt(0.1)])


def test_cosine_warms_up_linearly_then_decays_to_zero():
    schedule = training.learning_rate_schedule("cosine", 0.01, total_steps=110, warmup_steps=10)
    steps = np.array([0, 5, 10, 35, 60, 85, 110, 200])
    t = np.clip((steps - 10) / 100, 0, 1)
    expected = np.where(steps < 10, 0.01 * steps / 10, 0.01 * 0.5 * (1 + np.cos(np.pi * t)))
    np.testing.assert_allclose(_values(schedule, steps), expected, rtol=1e-5, atol=1e-9)
    # Default warmup: 5 % of the steps.
    default = training.learning_rate_schedule("cosine", 1.0, total_steps=200)
    np.testing.assert_allclose(_values(default, [5, 10, 105]), [0.5, 1.0, 0.5], rtol=1e-5)


def test_constant_and_bad_arguments():
    assert training.learning_rate_schedule("constant", 0.003) == 0.003
    cases = [
        (("linear", 0.1), {}, r"`kind` must be one of \['constant', 'cosine', 'warmup-rsqrt'\]"),
        (("constant", 0.0), {}, "`learning_rate`"),
        (("constant", float("nan")), {}, "`learning_rate`"),
        (("warmup-rsqrt", 0.1), {"warmup_steps": 0}, "`warmup_steps`"),
        (("cosine", 0.1), {}, "`total_steps`"),
    ]
    for args, kwargs, match in cases:
        with pytest.raises((ValueError, TypeError), match=match):
            training.learning_rate_schedule(*args, **kwargs)


def test_a_schedule_drives_the_optimizer_and_saves_with_the_model(tmp_path):
    schedule = training.learning_rate_schedule("warmup-rsqrt", 0.01, warmup_steps=3)
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="mse")
    model.fit(np.ones((8, 2)), np.ones((8, 1)), batch_size=2, epochs=1, verbose=0)  # 4 steps
    assert int(model.optimizer.iterations) == 4
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01 * math.sqrt(3 / 5))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert loaded.optimizer._learning_rate.get_config() == schedule.get_config()
    assert float(loaded.optimizer.learning_rate) == pytest.approx(0.01 * math.sqrt(3 / 5))


@pytest.mark.parametrize("kind", ["translation", "vision", "lm"])
def test_the_flags_reach_the_recipes(kind):
    argv = ["train", kind, "--lr-schedule", "warmup-rsqrt", "--warmup-steps", "3"]
    options = cli._recipe_options(cli.make_parser().parse_args(argv), [])
    assert options["lr_schedule"] == "warmup-rsqrt" and options["warmup_steps"] == 3
    with pytest.raises(SystemExit):
        cli.make_parser().parse_args(["train", kind, "--lr-schedule", "linear"])
