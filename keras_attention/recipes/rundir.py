"""Run directories, the common part: `run.json`, the model file, the base `Run`.

What every task's recipe shares when it writes its run directory and what
`load_run` (`recipes/runs.py`) needs to open one: the file names, the
`.keras` loading with the file named in errors, the `Run` base class, and
`run_recipe`, the frame every training recipe runs in (strategy, seed,
precision, export, backup removal). The task's own run class sits beside
its recipe (`translation.TranslationRun`, `vision.VisionRun`,
`lm.LanguageModelRun`).
"""

import json
import os
import pathlib
import warnings
import zipfile

import keras
import numpy as np

from keras_attention import _io, distribute
from keras_attention import export as _export
from keras_attention._version import __version__ as _version
from keras_attention.recipes import training

__all__ = [
    "RUN_FILE",
    "FORMAT_VERSION",
    "Run",
    "jit_compile",
    "run_recipe",
    "load_model_file",
    "read_images",
    "read_json",
    "check_strings",
    "warn_truncated",
    "to_channels",
    "training_settings",
    "check_attention_fits",
]


RUN_FILE = "run.json"
FORMAT_VERSION = 1
# What runs of keras-attention 0.1.0 wrote instead of run.json.
_LEGACY_FILES = {"task.json": "translation", "vision.json": "vision", "lm.json": "lm"}


def jit_compile(distribute_kind, default="auto"):
    """`default`, or `False` under data-parallel training: XLA cannot reach the
    variables that `MirroredStrategy` keeps on other logical CPU devices.

    The default `"auto"` is Keras' choice: XLA on TensorFlow only where a GPU
    is present, always on JAX, never on PyTorch (`torch.compile`). On a CPU,
    XLA's compile time and per-step cost outweigh what it saves for the
    recipes' small models (`benchmarks/small_models.py --levers`).
    """
    return default if distribute_kind == "none" else False


def run_recipe(train, options):
    """Runs `train(options, out)` the way every recipe runs: strategy, seed, export, cleanup.

    The data-parallel strategy is made first (splitting the CPU into logical
    devices must come before any tensor exists); the seed is set; the model
    is built, trained and saved inside the strategy's scope, at the options'
    `precision` (`training.precision_scope`: `"float32"` or `"bf16"`). A worker of a
    multi-worker run that is not the chief writes `out` and `export` to a
    temporary directory, removed at the end. The training backup is removed
    only once every file of the run (and the export) is written, so that a
    run killed before the end resumes instead of training again.

    Returns:
        The `Run` that `train` returned.
    """
    # Before training: a path that cannot be written fails now, not after the run.
    out = _io.check_destination("out", options["out"], what="a previous run")
    export = options["export"]
    if export is not None:
        _io.check_destination("export", export, _export.is_export, "a SavedModel export")
        if pathlib.Path(export).resolve() == out.resolve():
            raise ValueError(
                f"`export` and `out` are the same directory ({out}); the export needs its own "
                "(e.g. saved_models/NAME)."
            )
    strategy = distribute.make_strategy(options["distribute"], options["num_cpu_devices"])
    if strategy is not None:
        replicas = distribute.num_replicas(strategy)
        if options["batch_size"] % replicas:
            raise ValueError(
                f"`batch_size`={options['batch_size']} must be a multiple of the {replicas} "
                f"replicas of distribute={options['distribute']!r}, which split each global "
                "batch evenly (an uneven split fails inside the first step); choose "
                f"{max(replicas, options['batch_size'] // replicas * replicas)} or another "
                "multiple, or another --num-cpu-devices."
            )
        print(
            f"--distribute {options['distribute']}: {replicas} "
            f"replicas, global batch {options['batch_size']}"
        )
        out = pathlib.Path(distribute.chief_path(out))
        export = export and distribute.chief_path(export)
    keras.utils.set_random_seed(options["seed"])
    try:
        with (
            distribute.distribution_scope(strategy),
            training.precision_scope(options.get("precision", "float32")),
        ):
            run = train(options, out)
            if export:
                print(f"exported SavedModel to {run.export(export)}")
        training.remove_backup(out)
        return run
    finally:
        if strategy is not None:
            distribute.cleanup_worker_dirs()


def _physical_memory():
    """Bytes of memory of this machine, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_attention_fits(batch_size, num_heads, length, flag, memory=None):
    """Refuses, before the model is built, a sequence length whose attention cannot fit.

    One batch's attention scores alone are `batch_size * num_heads * length**2`
    float32 values; when they exceed the machine's memory (and no GPU or TPU
    brings its own), TensorFlow would spend minutes retrying allocations
    before its out-of-memory error. A length that merely comes close is left
    to try.

    Raises:
        ValueError: naming `flag` and `--batch-size`.
    """
    memory = memory if memory is not None else _physical_memory()
    needed = 4 * batch_size * num_heads * length * length
    if memory is None or needed <= memory or training._has_accelerator():
        return
    raise ValueError(
        f"{flag} {length} is too long for this machine: one batch's attention scores alone "
        f"(batch {batch_size} x {num_heads} heads x {length}^2 float32) need "
        f"{needed / 2**30:,.0f} GiB, more than its {memory / 2**30:,.0f} GiB of memory. "
        f"Lower {flag} or --batch-size."
    )


# Options that do not change what is trained: a resumed run may change them silently.
# (More --epochs is how a finished-early run is trained further.)
_NOT_TRAINING = (
    "epochs",
    "verbose",
    "out",
    "export",
    "data_dir",
    "num_eval",
    "prompt",
    "max_new_tokens",
    "distribute",
    "num_cpu_devices",
)


def training_settings(options):
    """The recipe options that shape training, JSON-ready, for `fit_with_logs(settings=)`.

    Through JSON and back (tuples as lists, paths as strings), so that they
    compare equal to the copy a backup's `state.json` holds.
    """
    settings = {k: v for k, v in _json_ready(options).items() if k not in _NOT_TRAINING}
    return json.loads(json.dumps(settings, default=str))


def _json_ready(options):
    """The recipe options as JSON (paths as strings; nothing else is kept)."""
    ready = {}
    for key, value in options.items():
        if isinstance(value, pathlib.PurePath):
            value = str(value)
        if value is None or isinstance(value, (bool, int, float, str, list, dict)):
            ready[key] = value
    return ready


class Run:
    """A run directory written by a recipe; see the module docstring.

    Args:
        path: the run directory.
        info: dict. Its `run.json`.
        model: optional `keras.Model` already in memory (the recipe's own).
    """

    kind = None
    info_keys = ()  # what the run's own methods read from run.json

    def __init__(self, path, info, model=None):
        self.path = pathlib.Path(path)
        self.info = info
        self._model = model

    def __repr__(self):
        return f"{type(self).__name__}({str(self.path)!r})"

    @property
    def model(self):
        """The trained `keras.Model` (`model.keras`, loaded with `safe_mode=True`)."""
        if self._model is None:
            self._model = load_model_file(self.path / "model.keras")
        return self._model

    @property
    def options(self):
        """The recipe's options, as `run.json` recorded them."""
        return self.info.get("options", {})

    @classmethod
    def _write_common(cls, out, model, info, options):
        out = pathlib.Path(out)
        training.save_model_file(model, out / "model.keras")
        info = {
            "format_version": FORMAT_VERSION,
            "kind": cls.kind,
            "keras_attention_version": _version,
            **info,
            "options": _json_ready(options or {}),
        }
        _io.write_json(out / RUN_FILE, info)
        return cls(out, info, model=model)

    def write_scores(self, scores):
        """Writes `scores.json`."""
        return _io.write_json(self.path / "scores.json", scores)

    @property
    def scores(self):
        """The `scores.json` of the run, or None."""
        path = self.path / "scores.json"
        return read_json(path) if path.is_file() else None


def read_json(path):
    """The JSON object (a dict) in the file `path`; a `ValueError` naming the file otherwise."""
    try:
        value = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a readable JSON file ({err}).") from None
    if not isinstance(value, dict):
        raise ValueError(
            f"{path} must hold a JSON object ({{...}}); it holds a {type(value).__name__}: "
            f"{value!r:.60}."
        )
    return value


def load_model_file(path):
    """`keras.saving.load_model(path, safe_mode=True)`, with errors that name the file.

    A missing file, a truncated archive, a broken `config.json` or weights
    that do not fit raise a `ValueError` (`FileNotFoundError` for a missing
    file) naming `path`; a file that would run code is refused by Keras'
    safe mode.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No model file at {path}.")
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):  # Keras says "File not found"
        raise ValueError(
            f"Cannot load the model file {path}: it is not a complete .keras (zip) archive "
            f"({path.stat().st_size} bytes); it was cut short or damaged."
        )
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as err:  # zipfile, json, h5py and Keras errors alike
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"Cannot load the model file {path}: {type(err).__name__}: {reason[:300]}"
        ) from err


def warn_truncated(truncated, keep):
    if truncated.any():
        warnings.warn(
            f"{int(truncated.sum())} prompt(s) were longer than the model's positions allow "
            f"with this many new tokens; each was cut to its last {keep} tokens.",
            stacklevel=3,
        )


def check_strings(name, value):
    """A str or a list of str, as a list."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise TypeError(f"`{name}` must be a str or a non-empty list of str; got {value!r:.100}.")


def read_images(images):
    """Image files or uint8 arrays -> a list of uint8 arrays `(H, W)` or `(H, W, C)`."""
    import tensorflow as tf

    if isinstance(images, (str, pathlib.PurePath)):
        images = [images]
    if (
        isinstance(images, np.ndarray)
        and images.ndim in (2, 3)
        and (images.ndim == 2 or images.shape[-1] <= 4)
    ):
        images = [images]
    result = []
    for image in images:
        if isinstance(image, (str, pathlib.PurePath)):
            try:
                raw = tf.io.read_file(str(image))
                image = tf.io.decode_image(raw, dtype=tf.uint8, expand_animations=False).numpy()
            # Missing, a folder, unreadable (NotFound, FailedPrecondition, PermissionDenied)
            # or no image (InvalidArgument).
            except tf.errors.OpError as err:
                reason = _export.error_text(err)
                raise ValueError(f"Cannot read image {str(image)!r}: {reason}") from None
        image = np.asarray(image)
        if image.dtype != np.uint8:
            raise TypeError(f"`images` must be uint8 (0..255); got dtype {image.dtype}.")
        if image.ndim not in (2, 3) or (image.ndim == 3 and not 1 <= image.shape[-1] <= 4):
            raise ValueError(
                "Each image must have shape (height, width) or (height, width, channels) with 1 "
                f"to 4 channels; got shape {image.shape}."
            )
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise ValueError(f"Each image must have a positive size; got shape {image.shape}.")
        result.append(image)
    return result


def to_channels(image, num_channels):
    """uint8 `(H, W[, C])` -> float `(H, W, num_channels)`, as `export.ImageClassifier` does."""
    x = image.astype("float32")
    if x.ndim == 2:
        x = x[..., None]
    if x.shape[-1] in (2, 4):
        x = x[..., :-1]  # drop alpha
    if num_channels == 1 and x.shape[-1] == 3:
        x = (x * np.asarray(_export.classifier.RGB_TO_GRAY, "float32")).sum(-1, keepdims=True)
    elif num_channels == 3 and x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    return x
