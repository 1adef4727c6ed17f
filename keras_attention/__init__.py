"""keras-attention: Keras 3 layers and models for attention and Transformers.

Organised like the chapter "Attention Mechanisms and Transformers" of
*Dive into Deep Learning*, floor by floor (data flows one way):

    ops, layers            the chapter's ideas as Keras layers (keras.ops only)
    data                   tf.data pipelines, tokenizers, loaders, embedded defaults
    models                 functional-API builders
    generate               step decoders, greedy/beam search, sampling
    export                 SavedModels that serve strings and images
    recipes                what the command, tutorials and benchmarks share; load_run
    cli                    the `keras-attention` command

Importing the package registers every serializable object (layers, losses,
metrics, learning-rate schedules), so a `.keras` file written by the
command loads with `keras.saving.load_model(path, safe_mode=True)` after
`import keras_attention` alone. `keras_attention.load_run(path)` opens a run
directory or an export (`keras_attention.recipes.runs`). `data`, `export`
and `recipes` need TensorFlow and are imported when first used.

The `keras-attention` command itself defers these imports until it has
parsed its arguments (so that `--help` answers at once); it calls
`register_all()` before it does any work.
"""

import importlib
import os
import sys

from keras_attention._version import __version__

__all__ = ["__version__", "load_run", "register_all", "layers", "ops"]


def register_all():
    """Imports every module that defines a serializable object (idempotent)."""
    for name in ("layers", "ops", "models", "metrics", "recipes.training"):
        importlib.import_module(f"{__name__}.{name}")


def load_run(path, kind=None, weights=False):
    """Opens a run directory or an export; see `keras_attention.recipes.runs.load_run`."""
    from keras_attention.recipes.runs import load_run as _load_run

    return _load_run(path, kind=kind, weights=weights)


def __getattr__(name):
    if name in (
        "data",
        "export",
        "recipes",
        "generate",
        "models",
        "viz",
        "metrics",
        "distribute",
        "scaling",
        "layers",
        "ops",
    ):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _run_as_command():
    """Whether this process is the command (`keras-attention` or `python -m keras_attention.cli`)."""
    if os.path.basename(sys.argv[0] if sys.argv else "") == "keras-attention":
        return True
    argv = getattr(sys, "orig_argv", [])
    return any(a == "-m" and b == f"{__name__}.cli" for a, b in zip(argv, argv[1:]))


if not _run_as_command():
    register_all()
