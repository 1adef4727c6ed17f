import os
import sys
import tempfile

# tests/ itself on the path, for the shared `helpers` and `browser` modules.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# A private Keras home for the session: the loaders' sha256 verdicts (and any
# cache a test fills) never reach ~/.keras. tests/data/ gives each test its own.
os.environ["KERAS_HOME"] = tempfile.mkdtemp(prefix="keras-attention-tests-")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

import keras  # noqa: E402
import pytest  # noqa: E402

# Markers that skip a test on some backends (registered in pytest.ini):
# marker -> (backends that skip it, what the test needs).
_BACKEND_MARKERS = {
    "tensorflow_only": (("jax", "torch"), "needs the TensorFlow backend"),
    "xla": (("torch",), "compiles with XLA; on torch jit_compile=True means torch.compile"),
}


def pytest_collection_modifyitems(config, items):
    """Skips tests marked `tensorflow_only` or `xla` where the backend lacks them.

    `@pytest.mark.tensorflow_only(reason="tf.GradientTape")` marks a test that
    needs TensorFlow itself (`tf.function`, `tf.GradientTape`, SavedModel
    export, tensorflow-text), not just the Keras API: skipped on JAX and
    PyTorch. `@pytest.mark.xla(reason=...)` marks a test that compiles with
    `jit_compile=True`: XLA on TensorFlow and JAX; skipped on PyTorch, where
    it means `torch.compile`, which takes minutes on CPU.
    """
    backend = keras.backend.backend()
    for item in items:
        for name, (skipped_on, needs) in _BACKEND_MARKERS.items():
            marker = item.get_closest_marker(name)
            if marker is None or backend not in skipped_on:
                continue
            why = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "")
            reason = f"{needs} ({why}); KERAS_BACKEND={backend}"
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(autouse=True)
def _reset_keras_state():
    """Each test starts with float32 and a fixed seed."""
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(0)
    yield
    keras.config.set_dtype_policy("float32")
