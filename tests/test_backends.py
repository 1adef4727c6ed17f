"""The same numbers on the TensorFlow, JAX and PyTorch backends.

Every public layer (through `test_integration.build_model`, which uses them
all) and every model builder is built here, on the backend this test process
runs (TensorFlow under `make test`), saved to `.keras` files, and run on fixed
inputs. Then one subprocess per other backend (`KERAS_BACKEND=jax` /
`torch`, skipped when that backend is not installed) loads the same files,
runs the same inputs, decodes with `greedy_search` / `beam_search`, trains a
tiny Transformer with `fit` from numpy arrays and from a `tf.data.Dataset`,
calls the SavedModel export functions, and writes what it got to `.npz` /
`.json` files, which the tests compare: outputs within 1e-5 (float32,
inference mode), decoded tokens equal, losses finite and decreasing, and
export refused with an error that names the TensorFlow backend.

The subprocess runs `worker()` below, so the code that makes the numbers is
the same on every backend.
"""

import importlib.util
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras import ops

from keras_attention import models as ka_models
from keras_attention.generate import beam_search, greedy_search

# Reshape in the every-layer model drops a Keras mask (see test_integration.py).
pytestmark = pytest.mark.filterwarnings("ignore:.*does not support masking:UserWarning")

BACKENDS = ("tensorflow", "jax", "torch")
ATOL = 1e-5  # float32, inference mode
V, D, F, H, BLKS, MAX_LEN = 13, 8, 16, 2, 2, 16
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------------------
# What every backend runs: the models, their inputs, decoding and `fit`.


def build_models():
    """Tiny models from every builder, plus the every-layer model.

    Returns:
        A dict: name -> (keras.Model, inputs) where inputs is a numpy array
        or a dict of numpy arrays.
    """
    from test_integration import build_model, make_batch

    rng = np.random.RandomState(0)

    def ids(batch, length, lens):
        x = rng.randint(3, V, size=(batch, length)).astype("int32")
        x[np.arange(length)[None] >= np.asarray(lens)[:, None]] = 0  # pad_id 0
        return x

    seq2seq_batch = {"src_ids": ids(3, 6, [6, 3, 1]), "tgt_in_ids": ids(3, 5, [5, 2, 4])}
    bert_batch = {
        "token_ids": ids(3, 7, [7, 4, 2]),
        "segment_ids": (np.arange(7)[None] >= np.array([[4], [2], [1]])).astype("int32"),
    }
    images = rng.uniform(0, 255, size=(3, 8, 8, 1)).astype("float32")

    def seeded(seed, builder, *args, **kwargs):
        keras.utils.set_random_seed(seed)
        return builder(*args, **kwargs)

    encoder = seeded(5, ka_models.bert, V, D, F, H, BLKS, 0.1, max_len=MAX_LEN)
    return {
        "every_layer": (build_model(seed=0), make_batch(with_empty_row=True)),
        "transformer": (
            seeded(
                1,
                ka_models.transformer,
                V,
                V,
                D,
                F,
                H,
                BLKS,
                0.1,
                max_len=MAX_LEN,
                return_attention_scores=True,
            ),
            seq2seq_batch,
        ),
        "transformer_norm_first": (
            seeded(
                2, ka_models.transformer, V, V, D, F, H, BLKS, 0.1, max_len=MAX_LEN, norm_first=True
            ),
            seq2seq_batch,
        ),
        "bahdanau_seq2seq": (
            seeded(3, ka_models.bahdanau_seq2seq, V, V, D, D, 2, 0.1, return_attention_scores=True),
            seq2seq_batch,
        ),
        "vision_transformer": (
            seeded(
                4,
                ka_models.vision_transformer,
                8,
                4,
                D,
                F,
                H,
                BLKS,
                0.1,
                0.1,
                3,
                return_attention_scores=True,
            ),
            images,
        ),
        "bert": (encoder, bert_batch),
        "bert_mlm": (seeded(6, ka_models.bert_mlm, encoder), bert_batch),
        "bert_classifier": (seeded(7, ka_models.bert_classifier, encoder, 3), bert_batch),
        "gpt": (
            seeded(8, ka_models.gpt, V, D, F, H, BLKS, 0.1, max_len=MAX_LEN, tie_embeddings=True),
            ids(3, 7, [7, 5, 2]),
        ),
        "t5": (seeded(9, ka_models.t5, V, D, F, H, BLKS, 0.1, max_len=MAX_LEN), seq2seq_batch),
    }


def _to_arrays(outputs):
    """A model's output(s) as a dict of float32 numpy arrays."""
    if not isinstance(outputs, dict):
        outputs = {"output": outputs}
    return {k: ops.convert_to_numpy(ops.cast(v, "float32")) for k, v in outputs.items()}


def run_models(models, inputs):
    """Inference-mode outputs, flattened to `{"<model>/<output>": array}`."""
    results = {}
    for name, model in models.items():
        for key, value in _to_arrays(model(inputs[name], training=False)).items():
            results[f"{name}/{key}"] = value
    return results


def decode(models, inputs):
    """Greedy and beam-search tokens (and greedy attention) of the seq2seq models."""
    results = {}
    for name in ("transformer", "bahdanau_seq2seq"):
        src = inputs[name]["src_ids"]
        greedy = greedy_search(models[name], src, max_len=6)
        results[f"{name}/greedy_tokens"] = ops.convert_to_numpy(greedy["tokens"])
        results[f"{name}/greedy_attention"] = ops.convert_to_numpy(greedy["attention"])
        beam = beam_search(models[name], src, max_len=6, beam_size=3)
        results[f"{name}/beam_tokens"] = ops.convert_to_numpy(beam["tokens"])
    return results


def fit_losses(use_tf_data, kind="transformer"):
    """Epoch losses of a tiny seq2seq model learning to reverse sequences.

    Args:
        use_tf_data: bool. Feed a `tf.data.Dataset` instead of numpy arrays.
        kind: `"transformer"` or `"bahdanau"` (the GRU encoder-decoder,
            whose decoder loops over time in the graph).

    Returns:
        A list of 8 floats, one per epoch (2 steps each).
    """
    keras.utils.set_random_seed(0)
    rng = np.random.RandomState(0)
    src = rng.randint(3, V, size=(16, 5)).astype("int32")
    tgt = src[:, ::-1].copy()
    tgt_in = np.concatenate([np.ones((16, 1), "int32"), tgt[:, :-1]], axis=1)  # bos 1
    if kind == "transformer":
        model = ka_models.transformer(V, V, D, F, H, BLKS, 0.1, max_len=MAX_LEN)
    else:
        model = ka_models.bahdanau_seq2seq(V, V, D, D, 2, 0.1)
    model.compile(
        optimizer=keras.optimizers.Adam(0.02),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x = {"src_ids": src, "tgt_in_ids": tgt_in}
    if use_tf_data:
        import tensorflow as tf

        data = tf.data.Dataset.from_tensor_slices((x, tgt)).batch(8)
        history = model.fit(data, epochs=8, shuffle=False, verbose=0)
    else:
        history = model.fit(x, tgt, batch_size=8, epochs=8, shuffle=False, verbose=0)
    return [float(v) for v in history.history["loss"]]


def export_errors(path):
    """What each SavedModel export function raises when called with `path`.

    Returns:
        A dict: `"export_errors"` maps each function's name to its
        `RuntimeError` message (None if it raised none), and
        `"export_dir_exists"` says whether anything was written at `path`.
    """
    from keras_attention import export

    calls = {
        "export_translator": lambda: export.export_translator(None, None, None, 5, path=path),
        "export_image_classifier": lambda: export.export_image_classifier(None, ["a"], path=path),
        "export_language_model": lambda: export.export_language_model(None, None, path=path),
        "Translator": lambda: export.Translator(None, None, None, 5, 5),
        "ImageClassifier": lambda: export.ImageClassifier(None, ["a"]),
    }
    errors = {}
    for name, call in calls.items():
        try:
            call()
            errors[name] = None
        except RuntimeError as error:
            errors[name] = str(error)
    return {"export_errors": errors, "export_dir_exists": os.path.exists(path)}


def worker(work_dir, out_dir):
    """Runs in a subprocess under another `KERAS_BACKEND`.

    Loads `<work_dir>/<name>.keras` and `<work_dir>/inputs.npz`, writes the
    outputs and decoded tokens to `<out_dir>/outputs.npz`, and the backend's
    name, the `fit` losses and what each SavedModel export function raised to
    `<out_dir>/report.json`.
    """
    import keras_attention.layers  # noqa: F401  (registers the layers)

    with open(os.path.join(work_dir, "names.json")) as f:
        names = json.load(f)
    inputs = _unflatten(dict(np.load(os.path.join(work_dir, "inputs.npz"))))
    models = {
        name: keras.saving.load_model(os.path.join(work_dir, f"{name}.keras"), safe_mode=True)
        for name in names
    }
    results = {**run_models(models, inputs), **decode(models, inputs)}
    np.savez(os.path.join(out_dir, "outputs.npz"), **results)
    report = {
        "backend": keras.backend.backend(),
        "numpy": fit_losses(use_tf_data=False),
        "tf_data": fit_losses(use_tf_data=True),
        "bahdanau": fit_losses(use_tf_data=False, kind="bahdanau"),
    }
    if keras.backend.backend() != "tensorflow":
        report.update(export_errors(os.path.join(out_dir, "export")))
    with open(os.path.join(out_dir, "report.json"), "w") as f:
        json.dump(report, f)


def _flatten(inputs):
    """`{model: array or dict}` -> `{"model" or "model/key": array}` for `.npz`."""
    flat = {}
    for name, value in inputs.items():
        if isinstance(value, dict):
            flat.update({f"{name}/{k}": v for k, v in value.items()})
        else:
            flat[name] = value
    return flat


def _unflatten(flat):
    inputs = {}
    for key, value in flat.items():
        name, _, sub = key.partition("/")
        if sub:
            inputs.setdefault(name, {})[sub] = value
        else:
            inputs[name] = value
    return inputs


# ---------------------------------------------------------------------------
# Tests. One test per other backend, so that one subprocess serves all its
# checks (`make test` runs with `-n 2`: module fixtures would run once per
# xdist worker).

MODEL_NAMES = [
    "every_layer",
    "transformer",
    "transformer_norm_first",
    "bahdanau_seq2seq",
    "vision_transformer",
    "bert",
    "bert_mlm",
    "bert_classifier",
    "gpt",
    "t5",
]
OTHER_BACKENDS = [b for b in BACKENDS if b != keras.backend.backend()]


def test_every_public_layer_and_builder_is_covered():
    from test_integration import build_model, layers_used, public_layer_classes

    assert set(public_layer_classes()) <= layers_used(build_model())
    builders = {
        name
        for name, obj in vars(ka_models).items()
        if callable(obj) and not isinstance(obj, type) and not name.startswith("_")
    }
    # Transforms of a built model, not builders (tests/models/test_lora.py and
    # test_quantization.py run on every backend).
    builders -= {"enable_lora", "quantize"}
    assert builders <= set(MODEL_NAMES), builders - set(MODEL_NAMES)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Builds and saves the models here; returns the work dir and the numbers."""
    work_dir = tmp_path_factory.mktemp("backends")
    built = build_models()
    assert sorted(built) == sorted(MODEL_NAMES)
    models = {name: model for name, (model, _) in built.items()}
    inputs = {name: x for name, (_, x) in built.items()}
    for name, model in models.items():
        model.save(str(work_dir / f"{name}.keras"))
    with open(work_dir / "names.json", "w") as f:
        json.dump(sorted(models), f)
    np.savez(work_dir / "inputs.npz", **_flatten(inputs))
    results = {**run_models(models, inputs), **decode(models, inputs)}
    return work_dir, results


def run_worker(backend, work_dir, out_dir):
    """Runs `worker` under `KERAS_BACKEND=backend`; returns (outputs, report)."""
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "import test_backends; test_backends.worker(sys.argv[2], sys.argv[3])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, TESTS_DIR, str(work_dir), str(out_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, f"{backend} worker failed:\n{result.stderr[-5000:]}"
    outputs = dict(np.load(out_dir / "outputs.npz"))
    with open(out_dir / "report.json") as f:
        report = json.load(f)
    assert report["backend"] == backend
    return outputs, report


def _check_losses(losses, label):
    assert len(losses) == 8, label
    assert np.all(np.isfinite(losses)), f"{label}: {losses}"
    assert losses[-1] < 0.9 * losses[0], f"{label}: loss did not decrease: {losses}"


def _installed(backend):
    """`backend` as a parameter, skipped (before any fixture runs) when not installed."""
    missing = importlib.util.find_spec(backend) is None
    reason = f"the {backend} backend is not installed (`pip install -e .[backends]`)"
    return pytest.param(backend, marks=pytest.mark.skipif(missing, reason=reason))


@pytest.mark.parametrize("backend", [_installed(b) for b in OTHER_BACKENDS])
def test_same_numbers_training_and_export_error_on(backend, reference, tmp_path):
    work_dir, expected = reference
    got, report = run_worker(backend, work_dir, tmp_path)

    # 1. Every model output within ATOL; decoded tokens equal.
    assert sorted(got) == sorted(expected)
    mismatches = []
    for key in sorted(expected):
        assert np.all(np.isfinite(expected[key])), key
        if got[key].shape != expected[key].shape:
            mismatches.append(f"{key}: shape {got[key].shape} != {expected[key].shape}")
        elif key.endswith("_tokens"):
            if not np.array_equal(got[key], expected[key]):
                mismatches.append(f"{key}: {got[key].tolist()} != {expected[key].tolist()}")
        else:
            diff = float(np.max(np.abs(got[key] - expected[key]), initial=0.0))
            if not diff <= ATOL:  # also catches NaN
                mismatches.append(f"{key}: max abs difference {diff:.3g} > {ATOL}")
    assert not mismatches, f"{backend} vs {keras.backend.backend()}:\n" + "\n".join(mismatches)

    # 2. `fit` from numpy arrays and from tf.data.
    _check_losses(report["numpy"], f"{backend}, numpy")
    _check_losses(report["tf_data"], f"{backend}, tf.data")
    _check_losses(report["bahdanau"], f"{backend}, Bahdanau seq2seq")

    # 3. SavedModel export is TensorFlow's: a clear error elsewhere.
    if backend != "tensorflow":
        assert sorted(report["export_errors"]) == [
            "ImageClassifier",
            "Translator",
            "export_image_classifier",
            "export_language_model",
            "export_translator",
        ]
        for name, message in report["export_errors"].items():
            assert message is not None, f"{name} raised no error on {backend}"
            assert "SavedModel export needs the TensorFlow backend" in message, message
            assert f"KERAS_BACKEND={backend!r}" in message, message
        assert not report["export_dir_exists"]


@pytest.mark.parametrize(
    "kind,use_tf_data", [("transformer", False), ("transformer", True), ("bahdanau", False)]
)
def test_fit_a_tiny_seq2seq_model_here(kind, use_tf_data):
    _check_losses(
        fit_losses(use_tf_data, kind), f"{keras.backend.backend()}, {kind}, tf_data={use_tf_data}"
    )


WITHOUT_TENSORFLOW = r"""
import sys

class BlockTensorFlow:  # as on a JAX GPU machine without TensorFlow
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ImportError(f"no module named {name!r} (blocked by the test)")

sys.meta_path.insert(0, BlockTensorFlow())
import numpy as np
from keras_attention import models
from keras_attention.recipes import training
from keras_attention.data import generate_dates, generate_shapes
from keras_attention.generate import greedy_search

assert generate_shapes(2, seed=0)[0].shape == (2, 28, 28) and len(generate_dates(2, seed=0)) == 2
rng = np.random.default_rng(0)
src = rng.integers(3, 20, (32, 6)).astype("int32")
tgt = src[:, ::-1].copy()
tgt_in = np.concatenate([np.ones((32, 1), "int32"), tgt[:, :-1]], axis=1)
model = models.transformer(20, 20, 16, 32, 2, 1, 0.1, max_len=8)
training.compile_seq2seq(model, learning_rate=1e-2)
losses = model.fit({"src_ids": src, "tgt_in_ids": tgt_in}, tgt, batch_size=8, epochs=2, verbose=0).history["loss"]
assert np.all(np.isfinite(losses)), losses
assert greedy_search(model, src[:2], max_len=6)["tokens"].shape == (2, 6)
try:
    from keras_attention.data import load_dates  # tokenizers and tf.data need TensorFlow
except ImportError:
    pass
else:
    raise AssertionError("load_dates imported without TensorFlow")
assert "tensorflow" not in sys.modules
print("ok")
"""


@pytest.mark.parametrize("backend", [_installed("jax")])
def test_layers_fit_and_numpy_data_work_without_tensorflow(backend):
    # What `benchmarks/gpu.sh` relies on: a machine with JAX and no TensorFlow.
    env = {**os.environ, "KERAS_BACKEND": backend}
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_TENSORFLOW],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]
