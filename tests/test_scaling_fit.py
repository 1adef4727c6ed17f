"""The numpy power-law fit of `keras_attention.scaling`."""

import subprocess
import sys

import numpy as np
import pytest

from keras_attention import scaling


def test_plain_fit_recovers_exact_power_law():
    x = np.geomspace(1e3, 1e6, 6)
    fit = scaling.fit_power_law(x, scaling.power_law(x, 7.5, 0.076))
    assert fit["alpha"] == pytest.approx(0.076, rel=1e-9)
    assert fit["a"] == pytest.approx(7.5, rel=1e-9)
    assert fit["c"] == 0.0
    assert fit["rmse_log"] < 1e-10


def test_irreducible_fit_recovers_constant_and_exponent():
    x = np.geomspace(1e4, 1e7, 8)
    y = scaling.power_law(x, 20.0, 0.3, 1.2)
    fit = scaling.fit_power_law(x, y, irreducible=True, num_grid=2000)
    assert fit["c"] == pytest.approx(1.2, abs=0.01)
    assert fit["alpha"] == pytest.approx(0.3, abs=0.01)
    plain = scaling.fit_power_law(x, y)
    assert plain["alpha"] < fit["alpha"]  # a floor flattens the plain fit
    assert fit["rmse_log"] < plain["rmse_log"]


def test_irreducible_fit_never_worse_than_plain():
    rng = np.random.default_rng(0)
    x = np.geomspace(1e3, 1e5, 5)
    y = scaling.power_law(x, 5.0, 0.1) * np.exp(rng.normal(0, 0.01, 5))
    plain = scaling.fit_power_law(x, y)
    with_c = scaling.fit_power_law(x, y, irreducible=True)
    assert with_c["rmse_log"] <= plain["rmse_log"] + 1e-12
    assert 0.0 <= with_c["c"] < y.min()


@pytest.mark.parametrize(
    "x, y, irreducible, match",
    [
        ([1.0, 2.0], [1.0], False, "same length"),
        ([1.0], [1.0], False, "At least 2 points"),
        ([1.0, 2.0], [1.0, 0.5], True, "At least 3 points"),
        ([1.0, -2.0], [1.0, 0.5], False, "positive"),
        ([2.0, 2.0, 2.0], [1.0, 0.5, 0.2], False, "two distinct"),
    ],
)
def test_bad_inputs_raise(x, y, irreducible, match):
    with pytest.raises(ValueError, match=match):
        scaling.fit_power_law(x, y, irreducible=irreducible)


def test_bad_grid_raises():
    with pytest.raises(ValueError, match="num_grid"):
        scaling.fit_power_law([1.0, 2.0, 4.0], [3.0, 2.0, 1.5], irreducible=True, num_grid=1)


def test_parameter_and_flop_counts():
    assert scaling.gpt_non_embedding_params(64, 2) == 12 * 2 * 64**2
    assert scaling.gpt_non_embedding_params(64, 2, ffn_num_hiddens=128) == 2 * (4 + 4) * 64**2
    assert scaling.gpt_training_flops(1000, 10, 2, 8, 4) == 10 * (6 * 1000 + 6 * 2 * 8 * 4)


def test_module_itself_does_not_import_tensorflow():
    # The package's __init__ imports Keras (and so its backend); the module
    # alone, loaded from its file, needs only numpy.
    code = (
        "import importlib.util, sys; "
        f"spec = importlib.util.spec_from_file_location('scaling', {scaling.__file__!r}); "
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module); "
        "module.fit_power_law([1.0, 2.0, 4.0], [3.0, 2.0, 1.5], irreducible=True); "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
